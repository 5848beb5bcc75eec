//! tarn's catalog: the SQL database that says which datasets, branches, versions, files, row
//! groups and tags exist. It owns the commit protocol (docs/design/0001-commit.md): a
//! version becomes visible in one transaction that succeeds only if the branch head is still
//! the version the writer planned on. It also keeps the collections' key schemas. It knows nothing of Parquet or of HTTP.

mod error;
mod model;
pub mod sqlite;

pub use error::{CatalogError, Result};
pub use model::*;
pub use sqlite::SqliteCatalog;

use async_trait::async_trait;
use tarn_core::{BranchName, DatasetName, KeySchema};

/// The catalog of one lake.
///
/// # Guarantees
///
/// - [`Catalog::commit`] is atomic: the new version, its files, row groups and metadata, and
///   the move of the branch head become visible together or not at all.
/// - It is exclusive: it succeeds only if the branch head is still `base_version`; otherwise
///   it changes nothing and returns [`CatalogError::Conflict`]. Of several writers that
///   planned on the same head, exactly one commits `base_version + 1`, so versions are
///   gap-free. It never retries: re-planning on the new head is the caller's policy.
/// - A returned commit is durable when the catalog was opened with durable settings.
/// - Readers see committed versions only; a version, once committed, never changes (only
///   `vacuum` may expire it), and reads never block a commit.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// The compare-and-swap primitive. See the trait documentation.
    async fn commit(&self, request: CommitRequest) -> Result<CommitOutcome>;

    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetRecord>>;
    async fn branch(&self, dataset_id: i64, name: &BranchName) -> Result<Option<BranchRecord>>;
    async fn version(&self, branch_id: i64, version: u64) -> Result<Option<VersionRecord>>;
    /// The last version of the branch committed at or before `micros` (UTC, since epoch).
    async fn version_at_time(&self, branch_id: i64, micros: i64) -> Result<Option<u64>>;
    /// The versions of a branch, newest first, at most `limit`.
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

    /// Paths of every file that some version still references.
    async fn referenced_files(&self) -> Result<Vec<String>>;
    /// Expires versions the retention policy no longer keeps, drops the row-group lifetimes
    /// only they needed, and returns the paths of files no retained version references.
    /// Never expires a branch head or a tagged version.
    /// Unless `dry_run`, the expired versions and the unreferenced files are removed from the
    /// catalog in one transaction, before the caller deletes the files: a crash in between
    /// leaves orphans for the next vacuum, never a version that points at a deleted file.
    async fn expire(&self, policy: RetentionPolicy, dry_run: bool) -> Result<ExpireOutcome>;

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
