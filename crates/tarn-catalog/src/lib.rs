//! tarn's catalog: the SQL database that says which datasets, branches, versions, files, row
//! groups and tags exist. It owns the commit protocol (docs/design/0001-commit.md): a
//! version becomes visible in one transaction that succeeds only if the branch head is still
//! the version the writer planned on. It also keeps the collections' key schemas, and the
//! registry's versioned dimensions, mappings, projects and registrations
//! (docs/design/0005-registry.md). It knows nothing of Parquet or of HTTP.
//!
//! Two backends implement it, SQLite (embedded) and PostgreSQL (shared), behind the small
//! traits below; [`open`] picks one from a [`CatalogLocation`] (docs/design/0006-backends.md).

/// The datasets with their `main` heads, as both catalogs select them (the text is the
/// same SQL on SQLite and PostgreSQL; each backend adds its own placeholders).
macro_rules! datasets_select {
    () => {
        "SELECT d.name, d.ordered_on, v.version, v.rows, v.row_groups, v.bytes, c.ts_micros \
         FROM datasets d JOIN branches b ON b.dataset_id = d.id AND b.name = 'main' \
         JOIN versions v ON v.branch_id = b.id AND v.version = b.head_version \
         JOIN commits c ON c.id = v.commit_id"
    };
}

mod error;
mod location;
mod model;
pub mod ordered;
pub mod postgres;
pub mod service;
pub mod sqlite;

pub use error::{CatalogError, Result};
pub use location::{CatalogLocation, CatalogSettings};
pub use model::*;
pub use postgres::PostgresCatalog;
pub use service::ServiceStore;
pub use sqlite::SqliteCatalog;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_core::{BranchName, DatasetName, KeySchema};

/// Opens (creating its tables if needed) the catalog at `location`.
pub async fn open(location: &CatalogLocation, settings: &CatalogSettings) -> Result<Catalog> {
    match location {
        CatalogLocation::Sqlite(path) => {
            let (path, durable) = (path.clone(), settings.durable);
            let catalog = tokio::task::spawn_blocking(move || SqliteCatalog::open(path, durable))
                .await
                .map_err(|e| CatalogError::Task(e.to_string()))??;
            Ok(Catalog::new(Arc::new(catalog)))
        }
        CatalogLocation::Postgres(url) => Ok(Catalog::new(Arc::new(
            PostgresCatalog::connect(url, settings).await?,
        ))),
    }
}

/// A lake's catalog: one handle to each part of it. Cheap to clone.
///
/// A backend implements every part ([`CatalogBackend`]); [`Catalog::new`] takes it whole,
/// and the `with_*` methods swap one part (a test double that fails commits wraps only the
/// [`DatasetWriter`]).
#[derive(Debug, Clone)]
pub struct Catalog {
    pub reader: Arc<dyn DatasetReader>,
    pub writer: Arc<dyn DatasetWriter>,
    pub retention: Arc<dyn Retention>,
    pub collections: Arc<dyn CollectionStore>,
    pub registry: Arc<dyn RegistryStore>,
    pub lake: Arc<dyn LakeStore>,
    pub service: Arc<dyn ServiceStore>,
}

/// Everything a catalog backend implements.
pub trait CatalogBackend:
    DatasetReader
    + DatasetWriter
    + Retention
    + CollectionStore
    + RegistryStore
    + LakeStore
    + ServiceStore
{
}

impl<T> CatalogBackend for T where
    T: DatasetReader
        + DatasetWriter
        + Retention
        + CollectionStore
        + RegistryStore
        + LakeStore
        + ServiceStore
{
}

impl Catalog {
    pub fn new<B: CatalogBackend + 'static>(backend: Arc<B>) -> Self {
        Self {
            reader: backend.clone(),
            writer: backend.clone(),
            retention: backend.clone(),
            collections: backend.clone(),
            registry: backend.clone(),
            lake: backend.clone(),
            service: backend,
        }
    }

    /// The same catalog with `writer` making its mutations.
    pub fn with_writer(mut self, writer: Arc<dyn DatasetWriter>) -> Self {
        self.writer = writer;
        self
    }

    /// What the catalog is, for messages: `SQLite catalog /lake/catalog.db`,
    /// `PostgreSQL catalog tarn@127.0.0.1:5432/lake`.
    pub fn describe(&self) -> String {
        self.lake.describe()
    }
}

/// The reads of datasets, branches, versions, row groups, tags and the lake-wide commit
/// sequence.
///
/// # Guarantees
///
/// - Reads see committed state only, never part of a transaction; each call sees one
///   consistent state (several calls may see different ones, as writers commit between them).
/// - A version, once committed, never changes (only `vacuum` may expire it), so any answer
///   about a given version stays true.
/// - Reads never block a commit, and a commit never blocks reads (WAL readers in SQLite,
///   MVCC snapshots in PostgreSQL).
#[async_trait]
pub trait DatasetReader: Send + Sync + std::fmt::Debug {
    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetRecord>>;
    async fn branch(&self, dataset_id: i64, name: &BranchName) -> Result<Option<BranchRecord>>;
    async fn branch_by_id(&self, branch_id: i64) -> Result<Option<BranchRecord>>;
    /// Every branch of a dataset, `main` first, then by name.
    async fn branches(&self, dataset_id: i64) -> Result<Vec<BranchRecord>>;
    /// Version `version` of a branch, wherever it is held: versions up to a branch's fork
    /// version are its parent's. The record's `branch_id` is the holding branch, the one to
    /// pass to [`Catalog::row_groups`].
    async fn version(&self, branch_id: i64, version: u64) -> Result<Option<VersionRecord>>;
    /// The last version of the branch's history (its own versions, then its parent's up to
    /// the fork) whose commit id is at most `commit_id`.
    async fn version_at_commit(&self, branch_id: i64, commit_id: i64) -> Result<Option<u64>>;
    /// The last commit at or before `micros` (UTC, since the epoch).
    async fn commit_at_time(&self, micros: i64) -> Result<Option<i64>>;
    /// The id of the last commit of the lake (0 for an empty lake): a lake state to pin
    /// reads of several datasets to.
    async fn last_commit(&self) -> Result<i64>;
    /// The retained versions of a branch's history, newest first, at most `limit`: its own,
    /// then its parent's up to the fork, recursively. Expired versions are left out before
    /// the limit applies, so `limit` N gives the N newest retained versions when there are
    /// that many ([`DatasetReader::version`] still finds an expired one).
    async fn versions(&self, branch_id: i64, limit: Option<u64>) -> Result<Vec<VersionRecord>>;
    /// The row groups of a version in row order, those that may hold `range` when given.
    async fn row_groups(
        &self,
        branch_id: i64,
        version: u64,
        range: RowGroupRange,
    ) -> Result<Vec<RowGroupRecord>>;
    /// Every dataset whose name is `prefix` or lies under it, with its `main` head.
    async fn datasets(&self, prefix: Option<String>) -> Result<Vec<DatasetSummary>>;
    async fn tag(&self, dataset_id: i64, name: &str) -> Result<Option<TagRecord>>;
    /// Every tag of a dataset, by name.
    async fn tags(&self, dataset_id: i64) -> Result<Vec<TagRecord>>;
}

/// The mutations of datasets: the commit primitive, tags, branches and fast-forwards.
///
/// # Guarantees
///
/// - Each call is one transaction: what it changes becomes visible together or not at all,
///   and on any error nothing is written.
/// - Write transactions of one lake are serial (SQLite's `BEGIN IMMEDIATE`, a lock on the
///   lake's clock row in PostgreSQL), so the checks a call makes inside its transaction hold
///   until it commits, across processes and machines.
/// - Every call that makes a lake-wide commit takes the next commit id: ids increase
///   strictly in the order commits become visible, and their times never go backwards.
/// - A returned call is durable when the catalog was opened with durable settings.
/// - No call retries: re-planning on the new head is the caller's policy.
#[async_trait]
pub trait DatasetWriter: Send + Sync + std::fmt::Debug {
    /// The compare-and-swap primitive: makes `request` visible as version
    /// `request.base_version + 1` of its branch (creating the dataset and `main` when
    /// `base_version` is 0 and the dataset does not exist).
    ///
    /// - Atomic: the new version, its file, row groups and metadata, and the move of the
    ///   branch head become visible together or not at all.
    /// - Exclusive: it succeeds only if the branch head is still `base_version`; otherwise
    ///   it changes nothing and returns [`CatalogError::Conflict`]. Of several writers that
    ///   planned on the same head, exactly one commits `base_version + 1`, so versions are
    ///   gap-free.
    /// - Consistent: every row group it removes must be live at `base_version`. The head is
    ///   checked first, so a row group that a concurrent commit removed is a `Conflict`;
    ///   at an unmoved head, one that is not live is [`CatalogError::RowGroupsNotLive`]
    ///   (the plan does not describe the version it names; nothing is written).
    /// - When the answer to the transaction's `COMMIT` is lost, the result is
    ///   [`CatalogError::UnknownOutcome`]: the version may or may not exist, and the caller
    ///   must find out by reading the catalog, never by guessing.
    async fn commit(&self, request: CommitRequest) -> Result<CommitOutcome>;
    /// Names `version` of branch `branch_id` (stored against the branch that holds it).
    /// A taken name is refused unless `force`, which moves it.
    async fn create_tag(
        &self,
        dataset_id: i64,
        name: &str,
        branch_id: i64,
        version: u64,
        force: bool,
    ) -> Result<TagRecord>;
    /// Removes a tag; `false` if there was none.
    async fn delete_tag(&self, dataset_id: i64, name: &str) -> Result<bool>;
    /// Creates branch `name` at `version` of branch `from` without copying data: it shares
    /// the history up to `version` and gets its own copy of the live row-group list. It is a
    /// lake-wide commit (so pinned reads know when it appeared).
    async fn create_branch(
        &self,
        dataset_id: i64,
        from: i64,
        version: u64,
        name: &BranchName,
    ) -> Result<BranchRecord>;
    /// Deletes a branch other than `main`. Refused while a tag names one of its own versions
    /// or a branch was forked from one of them.
    async fn delete_branch(&self, dataset_id: i64, name: &BranchName) -> Result<()>;
    /// Fast-forwards `target` to `source`'s head: refused unless `source` was forked from
    /// `target` at the version that is still `target`'s head.
    async fn fast_forward(
        &self,
        dataset_id: i64,
        source: &BranchName,
        target: &BranchName,
    ) -> Result<MergeOutcome>;
}

/// Vacuum's half in the catalog: which files versions reference, and expiring versions.
#[async_trait]
pub trait Retention: Send + Sync + std::fmt::Debug {
    /// Paths of every file that some version still references.
    async fn referenced_files(&self) -> Result<Vec<String>>;
    /// Expires versions the retention policy no longer keeps, drops the row-group lifetimes
    /// only they needed, and returns the paths of files no retained version references.
    /// Never expires a branch head or a tagged version.
    /// Unless `dry_run`, the expired versions and the unreferenced files are removed from the
    /// catalog in one transaction, before the caller deletes the files: a crash in between
    /// leaves orphans for the next vacuum, never a version that points at a deleted file.
    async fn expire(&self, policy: RetentionPolicy, dry_run: bool) -> Result<ExpireOutcome>;
}

/// The collections' key schemas (SPEC §1).
#[async_trait]
pub trait CollectionStore: Send + Sync + std::fmt::Debug {
    /// Records a collection (SPEC §1). Atomic and exclusive: of several callers creating the
    /// same collection exactly one succeeds, the others get [`CatalogError::CollectionExists`];
    /// it fails with [`CatalogError::CollectionOverlap`] when an existing collection's name is
    /// a proper prefix of this one's or lies under it (a dataset then belongs to at most one
    /// collection). Datasets are not checked: whether existing names fit is the caller's call.
    async fn create_collection(&self, schema: &KeySchema) -> Result<CollectionRecord>;
    async fn collection(&self, name: &DatasetName) -> Result<Option<CollectionRecord>>;
    /// Every collection, by name.
    async fn collections(&self) -> Result<Vec<CollectionRecord>>;
}

/// The registry's versioned components (docs/design/0005).
#[async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Writes a registry component version (docs/design/0005): the first one (version 1)
    /// when `v.base_version` is `None`, else version `base_version + 1`.
    ///
    /// - It is one transaction: a new lake commit (so [`Catalog::last_commit`] is the
    ///   version's `commit_id` right after, and its time never precedes an earlier commit's),
    ///   the version row, its records, mapping rows and dependencies, and the move of the
    ///   component's head become visible together or not at all.
    /// - It is exclusive: a create fails with [`CatalogError::ComponentExists`] when the
    ///   component exists; an update fails with [`CatalogError::ComponentNotFound`] when it
    ///   does not, and with [`CatalogError::ComponentConflict`] when the head is no longer
    ///   `base_version`. Of several writers on the same base exactly one succeeds, so
    ///   versions are 1, 2, 3... without gaps. It never retries.
    /// - It is refused ([`CatalogError::Refused`], naming the culprit) when records are given
    ///   for a kind other than a dimension or rows for a kind other than a mapping, when
    ///   record ids or mapping `(from_id, to_id)` pairs repeat, when a dependency's kind is
    ///   neither a component kind nor `dataset`, or when a target is named twice (all checked
    ///   first, on the request alone); and, after the create/update checks, when a dependency
    ///   on a registry component names a version that does not exist. Dataset targets are
    ///   not checked.
    /// - Whether the new version changes anything, and whether the records, rows and body are
    ///   valid for the kind, is the caller's to check: every call that succeeds makes a version.
    /// - On any error nothing is written.
    async fn put_component_version(&self, v: NewComponentVersion) -> Result<ComponentVersion>;
    async fn component(&self, kind: ComponentKind, name: &str) -> Result<Option<ComponentRecord>>;
    /// Every component of `kind` (of every kind when `None`), by kind then name.
    async fn components(&self, kind: Option<ComponentKind>) -> Result<Vec<ComponentRecord>>;
    /// Version `version` of a component (its head when `None`); `None` when the component
    /// or the version does not exist.
    async fn component_version(
        &self,
        kind: ComponentKind,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<ComponentVersion>>;
    /// Every version of a component, newest first (empty when it does not exist).
    async fn component_history(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<Vec<ComponentVersion>>;
    /// The records of a dimension version, by id.
    async fn dimension_records(
        &self,
        component_id: i64,
        version: u64,
    ) -> Result<Vec<DimensionRecordRow>>;
    /// The rows of a mapping version, by `(from_id, to_id)`.
    async fn mapping_rows(&self, component_id: i64, version: u64) -> Result<Vec<MappingRow>>;
    /// What a component version depends on, by target kind then name.
    async fn dependencies(&self, component_id: i64, version: u64) -> Result<Vec<DependencyTarget>>;
    /// The component versions that depend on `target_version` of the target (on any of its
    /// versions when `None`), by kind, name, version. `target_kind` is a component kind's
    /// string or `dataset`. Answered from one seek of the `registry_dependents` index, so its
    /// cost follows the number of dependents, not the size of the registry.
    async fn dependents(
        &self,
        target_kind: &str,
        target_name: &str,
        target_version: Option<u64>,
    ) -> Result<Vec<Dependent>>;
}

/// The lake's identity in its catalog, and facts about the catalog itself.
#[async_trait]
pub trait LakeStore: Send + Sync + std::fmt::Debug {
    /// What the catalog is, for messages (`SQLite catalog PATH`, `PostgreSQL catalog
    /// USER@HOST:PORT/DB`). Never holds a password.
    fn describe(&self) -> String;
    /// The lake this catalog holds, if one was recorded.
    async fn lake(&self) -> Result<Option<LakeRecord>>;
    /// Records the lake's storage URL, or checks it against the one recorded: the first
    /// caller records it (atomically: of several, exactly one does); every later one gets
    /// the record back when `storage` is the same, and [`CatalogError::Refused`] naming both
    /// URLs when it is not.
    async fn claim_lake(&self, storage: &str) -> Result<LakeRecord>;
    /// Row counts of the catalog's tables, by table name: for tests and diagnostics.
    async fn table_counts(&self) -> Result<BTreeMap<String, i64>>;
    /// Statements sent to a catalog server so far (`None` for an in-process catalog, where
    /// a statement is a function call, not a round trip).
    fn round_trips(&self) -> Option<u64> {
        None
    }
}
