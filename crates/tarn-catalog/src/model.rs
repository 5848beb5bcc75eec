//! The records the catalog stores and returns.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName, KeySchema};

#[derive(Debug, Clone)]
pub struct DatasetRecord {
    pub id: i64,
    pub name: DatasetName,
    pub ordered_on: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct BranchRecord {
    pub id: i64,
    pub dataset_id: i64,
    pub name: BranchName,
    pub head: u64,
    /// The branch this one was forked from, and at which of its versions. Versions
    /// `1..=fork_version` of this branch are the parent's (docs/design/0003).
    pub parent_branch_id: Option<i64>,
    pub fork_version: Option<u64>,
    /// The lake-wide commit that created the branch (`None` for a `main` created with its
    /// dataset before commits were recorded for branches: it exists from its first version).
    pub created_commit: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub branch_id: i64,
    pub version: u64,
    pub commit_id: i64,
    pub timestamp: DateTime<Utc>,
    pub operation: String,
    pub message: Option<String>,
    /// Rows, row groups and bytes of the whole version.
    pub rows: u64,
    pub row_groups: u64,
    pub bytes: u64,
    pub min: Option<SqlScalar>,
    pub max: Option<SqlScalar>,
    pub schema_json: String,
    pub options_json: String,
    pub metadata: BTreeMap<String, String>,
    pub expired: bool,
}

#[derive(Debug, Clone)]
pub struct RowGroupRecord {
    pub id: i64,
    pub file_id: i64,
    pub path: String,
    pub rg_index: u32,
    pub rows: u64,
    pub bytes: u64,
    pub min: SqlScalar,
    pub max: SqlScalar,
    /// Size of the whole file, and how many row groups it holds (`None` for files written
    /// before the catalog recorded it: the footer says).
    pub file_bytes: u64,
    pub file_row_groups: Option<u32>,
}

/// Bounds on `ordered_on` for listing row groups: `start <= value < end`.
#[derive(Debug, Clone, Default)]
pub struct RowGroupRange {
    pub start: Option<SqlScalar>,
    pub end_excl: Option<SqlScalar>,
}

#[derive(Debug, Clone)]
pub struct DatasetSummary {
    pub name: DatasetName,
    pub ordered_on: String,
    pub version: u64,
    pub rows: u64,
    pub row_groups: u64,
    pub bytes: u64,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct TagRecord {
    pub name: String,
    /// The branch that holds the version (not necessarily the one named when tagging).
    pub branch_id: i64,
    pub branch: BranchName,
    pub version: u64,
    pub created_at: DateTime<Utc>,
}

/// What a fast-forward merge did.
#[derive(Debug, Clone)]
pub enum MergeOutcome {
    /// The source has no version the target lacks.
    UpToDate { version: u64 },
    /// The target's head moved from `from` to `to`; the versions in between were brought
    /// over with the merge's commit id and time.
    FastForward {
        from: u64,
        to: u64,
        commit_id: i64,
        timestamp: DateTime<Utc>,
    },
}

/// A row group written by the commit's new file.
#[derive(Debug, Clone)]
pub struct NewRowGroup {
    pub rg_index: u32,
    pub rows: u64,
    pub bytes: u64,
    pub min: SqlScalar,
    pub max: SqlScalar,
}

/// The Parquet file a commit adds (already written and flushed).
#[derive(Debug, Clone)]
pub struct NewFile {
    pub path: String,
    pub bytes: u64,
    pub row_groups: Vec<NewRowGroup>,
}

/// One mutation to make visible as version `base_version + 1`.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub dataset: DatasetName,
    pub branch: BranchName,
    /// The head the mutation was planned on; 0 for the first write of a new dataset.
    pub base_version: u64,
    /// `ordered_on` column, used when the commit creates the dataset.
    pub ordered_on: String,
    pub operation: String,
    pub message: Option<String>,
    pub schema_json: String,
    pub options_json: String,
    pub metadata: BTreeMap<String, String>,
    pub new_file: Option<NewFile>,
    /// Row groups of the base version this mutation replaces.
    pub removed_row_groups: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct CommitOutcome {
    pub version: u64,
    pub commit_id: i64,
    pub timestamp: DateTime<Utc>,
    pub rows: u64,
}

/// Which versions `vacuum` keeps. Heads and tagged versions are always kept.
#[derive(Debug, Clone, Default)]
pub struct RetentionPolicy {
    /// Keep the last N versions of each branch.
    pub keep_last: Option<u64>,
    /// Keep versions committed after this instant (microseconds since the epoch, UTC).
    pub keep_newer_than_micros: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ExpireOutcome {
    /// `(dataset, branch, version)` of each version expired (or that would be).
    pub expired_versions: Vec<(String, String, u64)>,
    /// Files no retained version references any more.
    pub unreferenced_files: Vec<String>,
}

/// A collection (SPEC §1): the key schema the names of the datasets under it follow.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRecord {
    pub id: i64,
    pub schema: KeySchema,
    pub created_at: DateTime<Utc>,
}

impl CollectionRecord {
    pub fn name(&self) -> &DatasetName {
        self.schema.collection()
    }
}
