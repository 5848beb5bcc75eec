use crate::model::ComponentKind;
use tarn_core::CoreError;

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The branch head moved since the writer read it: re-plan on the new head.
    #[error(
        "commit conflict on {dataset}@{branch}: planned on version {expected}, but the head is now {actual}"
    )]
    Conflict {
        dataset: String,
        branch: String,
        expected: u64,
        actual: u64,
    },
    /// The head is still the version the writer planned on, but some row groups the commit
    /// removes are not live in it (no longer, or never were): the plan does not describe
    /// that version. No other writer caused it, so planning again on the same head gives
    /// the same plan; it is not a [`CatalogError::Conflict`].
    #[error(
        "commit refused on {dataset}@{branch}: row group(s) {} it removes are not live at version {version}, the head it was planned on; nothing was written. The head did not move, so no other writer caused this: the plan does not match the version it was made on (a bug in the writer; please report it)",
        ids(row_groups)
    )]
    RowGroupsNotLive {
        dataset: String,
        branch: String,
        version: u64,
        /// The ids named that were not live (an id named twice is listed once more).
        row_groups: Vec<i64>,
    },
    #[error("dataset {0:?} does not exist")]
    DatasetNotFound(String),
    #[error("branch {branch:?} of dataset {dataset:?} does not exist")]
    BranchNotFound { dataset: String, branch: String },
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    #[error(
        "collection {name:?} overlaps collection {existing:?}: one lies inside the other, so a dataset name would belong to both"
    )]
    CollectionOverlap { name: String, existing: String },
    #[error(
        "the catalog at {path} was written by a newer tarn (schema version {found}, this tarn knows up to {known}); upgrade tarn"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    /// A registry component was to be created, but it exists: update it from its head.
    #[error("{kind} {name:?} already exists (version {head_version}); update it instead")]
    ComponentExists {
        kind: ComponentKind,
        name: String,
        head_version: u64,
    },
    /// A registry component was to be updated, but it does not exist.
    #[error("{kind} {name:?} does not exist; create it first")]
    ComponentNotFound { kind: ComponentKind, name: String },
    /// The component's head moved since the writer read it: re-read it and update again.
    #[error(
        "update conflict on {kind} {name:?}: planned on version {expected}, but the head is now version {actual}; re-read it and update again"
    )]
    ComponentConflict {
        kind: ComponentKind,
        name: String,
        expected: u64,
        actual: u64,
    },
    /// The database failed a statement (the message is the database's own).
    #[error("{catalog}: {message}")]
    Database {
        catalog: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The catalog cannot be reached or refused the connection (not running, wrong host or
    /// port, wrong credentials, timeout): nothing was written.
    #[error("cannot reach the {catalog}: {reason}")]
    Unavailable { catalog: String, reason: String },
    /// A commit was sent but its answer was lost (timeout, dropped connection): the version
    /// may or may not exist. Read the catalog to find out; never delete what it may reference.
    #[error(
        "{catalog}: the outcome of the commit is unknown ({reason}); read the dataset's log to see whether it landed"
    )]
    UnknownOutcome { catalog: String, reason: String },
    /// The operation is refused as asked (a name taken, a merge that is not a fast-forward,
    /// a branch others depend on); the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// A commit names a request that an earlier commit applied (docs/design/0009): nothing
    /// was written; the request's outcome is that earlier commit.
    #[error("request {0} was applied already")]
    RequestApplied(String),
    #[error("catalog holds invalid data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("catalog task failed: {0}")]
    Task(String),
}

impl CatalogError {
    /// A database error of `catalog`.
    pub fn database(
        catalog: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Database {
            catalog: catalog.into(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    /// Names the catalog in an error made where it was not known (an empty `catalog`).
    pub fn in_catalog(self, name: &str) -> Self {
        match self {
            Self::Database {
                catalog,
                message,
                source,
            } if catalog.is_empty() => Self::Database {
                catalog: name.to_string(),
                message,
                source,
            },
            Self::Unavailable { catalog, reason } if catalog.is_empty() => Self::Unavailable {
                catalog: name.to_string(),
                reason,
            },
            Self::UnknownOutcome { catalog, reason } if catalog.is_empty() => {
                Self::UnknownOutcome {
                    catalog: name.to_string(),
                    reason,
                }
            }
            other => other,
        }
    }

    /// A head moved under a compare-and-swap (a dataset branch's or a registry component's):
    /// nothing was written, and re-planning on the new head may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::ComponentConflict { .. })
    }
}

fn ids(row_groups: &[i64]) -> String {
    row_groups
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
