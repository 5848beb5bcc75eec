//! The records the catalog stores and returns.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
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
    /// The queued request this commit applies (docs/design/0009): unique in the lake, so a
    /// request is applied at most once ([`crate::CatalogError::RequestApplied`]).
    pub request_id: Option<String>,
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

/// The four kinds of registry component (docs/design/0005). They order as their names do,
/// which is how listings order them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    Dimension,
    Mapping,
    Project,
    Registration,
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 4] = [
        ComponentKind::Dimension,
        ComponentKind::Mapping,
        ComponentKind::Project,
        ComponentKind::Registration,
    ];

    /// The kind's name as stored and as written on the command line (`dimension`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Dimension => "dimension",
            ComponentKind::Mapping => "mapping",
            ComponentKind::Project => "project",
            ComponentKind::Registration => "registration",
        }
    }

    /// The kind named `s` exactly (lower case), or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ComponentKind {
    type Err = crate::CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            crate::CatalogError::Refused(format!(
                "unknown component kind {s:?}: expected dimension, mapping, project or registration"
            ))
        })
    }
}

/// A registry component and its newest version.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRecord {
    pub id: i64,
    pub kind: ComponentKind,
    pub name: String,
    pub head_version: u64,
}

/// One version of a registry component. A version never changes once written.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentVersion {
    pub component_id: i64,
    pub kind: ComponentKind,
    pub name: String,
    pub version: u64,
    /// The lake commit that made this version, and its time.
    pub commit_id: i64,
    pub timestamp: DateTime<Utc>,
    pub author: String,
    pub message: String,
    /// The kind's definition, as JSON (its shape is the caller's).
    pub body_json: String,
}

/// A record of a dimension version.
#[derive(Debug, Clone, PartialEq)]
pub struct DimensionRecordRow {
    pub id: String,
    pub name: String,
    /// A JSON object of the record's other columns, as text.
    pub extra_json: String,
}

/// A row of a mapping version: `fraction` of `from_id` goes to `to_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub from_id: String,
    pub to_id: String,
    pub fraction: f64,
}

/// What a component version depends on: version `version` of a registry component (`kind`
/// is a [`ComponentKind`]'s string), or of a dataset (`kind` is [`DependencyTarget::DATASET`]
/// and `name` is like `demand/nc@main`).
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyTarget {
    pub kind: String,
    pub name: String,
    pub version: u64,
}

impl DependencyTarget {
    /// The target kind of a dataset version.
    pub const DATASET: &'static str = "dataset";
}

/// A component version that depends on `target`. `head_version` is its component's newest
/// version, so that a caller can keep only the dependents that are heads.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependent {
    pub kind: ComponentKind,
    pub name: String,
    pub version: u64,
    pub head_version: u64,
    pub target: DependencyTarget,
}

/// A component version to write: the component's first version when `base_version` is
/// `None` (the component must not exist yet), else version `base_version + 1`, which is
/// written only if the head is still `base_version` (compare-and-swap).
#[derive(Debug, Clone, PartialEq)]
pub struct NewComponentVersion {
    pub kind: ComponentKind,
    pub name: String,
    pub base_version: Option<u64>,
    pub author: String,
    pub message: String,
    pub body_json: String,
    /// The records of a dimension version (empty for the other kinds).
    pub records: Vec<DimensionRecordRow>,
    /// The rows of a mapping version (empty for the other kinds).
    pub mapping_rows: Vec<MappingRow>,
    pub dependencies: Vec<DependencyTarget>,
}

/// The lake a catalog holds: its storage, recorded once, when the lake is first used.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeRecord {
    /// The storage URL, as `tarn.toml` gives it (`data`, `s3://bucket/prefix`).
    pub storage: String,
    pub created_at: DateTime<Utc>,
}

/// The recorded lake when its storage is `storage`, else a refusal naming both.
pub(crate) fn check_claim(lake: LakeRecord, storage: &str) -> crate::Result<LakeRecord> {
    if lake.storage == storage {
        Ok(lake)
    } else {
        Err(crate::CatalogError::Refused(format!(
            "this catalog already holds a lake whose storage is {:?}, not {storage:?}; \
             use storage = {:?} to join it, or another catalog for a new lake",
            lake.storage, lake.storage
        )))
    }
}

/// The catalog's tables (the same in every backend), for row counts.
pub const TABLES: [&str; 17] = [
    "lake",
    "datasets",
    "branches",
    "commits",
    "versions",
    "files",
    "row_groups",
    "branch_row_groups",
    "tags",
    "collections",
    "registry_components",
    "registry_versions",
    "dimension_records",
    "mapping_rows",
    "registry_dependencies",
    "requests",
    "api_tokens",
];

/// The name range of the datasets under `prefix` (SPEC §1: `a/b` is under `a`, `ab` is not):
/// the name itself, and the names in `[prefix/, prefix0)` (`0` is the byte after `/`).
/// `None` as the first value when every name is in range.
pub(crate) fn prefix_range(prefix: Option<&str>) -> (Option<String>, String, String) {
    match prefix.map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => (Some(p.to_string()), format!("{p}/"), format!("{p}0")),
        _ => (None, String::new(), String::new()),
    }
}

fn refused(msg: String) -> crate::CatalogError {
    crate::CatalogError::Refused(msg)
}

/// The first 20 items, then how many more there are (as the design's error reports do).
fn listed<T: std::fmt::Display>(items: &[T]) -> String {
    const LIMIT: usize = 20;
    let shown: Vec<String> = items.iter().take(LIMIT).map(|i| i.to_string()).collect();
    let mut out = shown.join(", ");
    if items.len() > LIMIT {
        out.push_str(&format!(" and {} more", items.len() - LIMIT));
    }
    out
}

/// The checks of a registry write on the request alone, before any lookup (the same in every
/// backend).
pub(crate) fn check_shape(v: &NewComponentVersion) -> crate::Result<()> {
    let what = format!("{} {:?}", v.kind, v.name);
    if v.kind != ComponentKind::Dimension && !v.records.is_empty() {
        return Err(refused(format!(
            "{what}: only a dimension has records, and a {} was given {}",
            v.kind,
            v.records.len()
        )));
    }
    if v.kind != ComponentKind::Mapping && !v.mapping_rows.is_empty() {
        return Err(refused(format!(
            "{what}: only a mapping has mapping rows, and a {} was given {}",
            v.kind,
            v.mapping_rows.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let dup_ids: BTreeSet<&str> = v
        .records
        .iter()
        .filter(|r| !seen.insert(r.id.as_str()))
        .map(|r| r.id.as_str())
        .collect();
    if !dup_ids.is_empty() {
        let ids: Vec<String> = dup_ids.iter().map(|id| format!("{id:?}")).collect();
        return Err(refused(format!(
            "{what}: record ids must be unique, and {} repeat: {}",
            ids.len(),
            listed(&ids)
        )));
    }
    let mut seen = BTreeSet::new();
    let dup_pairs: BTreeSet<(&str, &str)> = v
        .mapping_rows
        .iter()
        .map(|r| (r.from_id.as_str(), r.to_id.as_str()))
        .filter(|pair| !seen.insert(*pair))
        .collect();
    if !dup_pairs.is_empty() {
        let pairs: Vec<String> = dup_pairs
            .iter()
            .map(|(from, to)| format!("{from:?} -> {to:?}"))
            .collect();
        return Err(refused(format!(
            "{what}: each (from, to) pair must appear once, and {} repeat: {}",
            pairs.len(),
            listed(&pairs)
        )));
    }
    let mut targets: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for d in &v.dependencies {
        if d.kind != DependencyTarget::DATASET && ComponentKind::parse(&d.kind).is_none() {
            return Err(refused(format!(
                "{what}: dependency kind {:?} of {:?} is neither a component kind \
                 (dimension, mapping, project, registration) nor \"dataset\"",
                d.kind, d.name
            )));
        }
        if let Some(other) = targets.insert((&d.kind, &d.name), d.version) {
            return Err(refused(format!(
                "{what}: depends on {} {:?} twice (versions {other} and {}); name each target once",
                d.kind, d.name, d.version
            )));
        }
    }
    Ok(())
}
