//! The facade's error: a detailed enum whose messages say what went wrong and how to fix
//! it, and a small stable [`ErrorKind`] that the CLI maps to exit codes.

use tarn_catalog::CatalogError;
use tarn_core::CoreError;
use tarn_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(
        "{what}: gave up after {attempts} attempts because other writers kept committing first; retry later"
    )]
    TooManyConflicts { what: String, attempts: u32 },
    #[error("{0}")]
    Config(String),
    /// A server tarn relies on besides the catalog (e.g. a NATS request queue) cannot be
    /// reached or did not answer in time: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Something that should not happen (unreadable state of tarn's own making).
    #[error("{0}")]
    Internal(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of failure an [`Error`] is, stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input (URI, data, option) is wrong: fix it and retry.
    InvalidInput,
    /// A dataset, branch, version or tag does not exist.
    NotFound,
    /// Other writers won every attempt.
    Conflict,
    /// The catalog or the storage cannot be reached (down, wrong address or credentials,
    /// timeout): nothing was changed; retry when it is back.
    Unavailable,
    /// Storage, catalog or configuration failed.
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Core(_) | Error::InvalidInput(_) | Error::Catalog(CatalogError::Refused(_)) => {
                ErrorKind::InvalidInput
            }
            Error::Store(
                StoreError::Schema(_) | StoreError::InvalidInput(_) | StoreError::Core(_),
            ) => ErrorKind::InvalidInput,
            Error::Catalog(
                CatalogError::CollectionExists(_)
                | CatalogError::CollectionOverlap { .. }
                | CatalogError::ComponentExists { .. },
            ) => ErrorKind::InvalidInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unavailable(_) | Error::Catalog(CatalogError::Unavailable { .. }) => {
                ErrorKind::Unavailable
            }
            Error::Catalog(
                CatalogError::DatasetNotFound(_)
                | CatalogError::BranchNotFound { .. }
                | CatalogError::ComponentNotFound { .. },
            ) => ErrorKind::NotFound,
            Error::TooManyConflicts { .. }
            | Error::Catalog(
                CatalogError::Conflict { .. }
                | CatalogError::ComponentConflict { .. }
                | CatalogError::RequestApplied(_),
            ) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// The commit named a queued request that an earlier commit applied
    /// ([`crate::Lake::for_request`]): nothing was written.
    pub fn is_request_applied(&self) -> bool {
        matches!(self, Error::Catalog(CatalogError::RequestApplied(_)))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
