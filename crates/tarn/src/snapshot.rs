//! A snapshot: one immutable version of one dataset, with its schema, options and metadata.

use crate::error::{Error, Result};
use crate::lake::Lake;
use arrow::datatypes::{Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::{BranchRecord, DatasetRecord, RowGroupRange, VersionRecord};
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName, OrderedKind, OrderedValue, TarnUri, WriteOptions};
use tarn_store::RowGroupRef;

/// One immutable version of one dataset: what a `tarn://` URI resolves to.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) dataset: DatasetRecord,
    pub(crate) branch: BranchRecord,
    pub(crate) version: VersionRecord,
    pub(crate) schema: SchemaRef,
    pub(crate) kind: OrderedKind,
    pub(crate) options: WriteOptions,
}

impl Snapshot {
    pub(crate) fn new(
        dataset: DatasetRecord,
        branch: BranchRecord,
        version: VersionRecord,
    ) -> Result<Self> {
        let schema: Schema = serde_json::from_str(&version.schema_json).map_err(|e| {
            Error::Config(format!(
                "catalog holds an unreadable schema for {}: {e}",
                dataset.name
            ))
        })?;
        let options: WriteOptions = serde_json::from_str(&version.options_json).map_err(|e| {
            Error::Config(format!(
                "catalog holds unreadable options for {}: {e}",
                dataset.name
            ))
        })?;
        let field = schema.field_with_name(&dataset.ordered_on).map_err(|_| {
            Error::Config(format!(
                "ordered_on column {} missing from schema",
                dataset.ordered_on
            ))
        })?;
        let kind = OrderedKind::of(field.name(), field.data_type())?;
        Ok(Self {
            dataset,
            branch,
            version,
            schema: Arc::new(schema),
            kind,
            options,
        })
    }

    /// The dataset's name.
    pub fn name(&self) -> &DatasetName {
        &self.dataset.name
    }

    /// The branch the URI named (for a tag without a branch: the branch holding it).
    pub fn branch_name(&self) -> &BranchName {
        &self.branch.name
    }

    /// The version number on that branch.
    pub fn version(&self) -> u64 {
        self.version.version
    }

    /// The lake-wide commit that made this version visible on the branch.
    pub fn commit_id(&self) -> i64 {
        self.version.commit_id
    }

    pub fn timestamp(&self) -> chrono::DateTime<chrono::Utc> {
        self.version.timestamp
    }

    /// `write`, `delete-range`, `overwrite`, `compact`, ...
    pub fn operation(&self) -> &str {
        &self.version.operation
    }

    pub fn message(&self) -> Option<&str> {
        self.version.message.as_deref()
    }

    pub fn rows(&self) -> u64 {
        self.version.rows
    }

    pub fn row_group_count(&self) -> u64 {
        self.version.row_groups
    }

    /// Compressed bytes of the row groups of this version.
    pub fn bytes(&self) -> u64 {
        self.version.bytes
    }

    /// The smallest and largest `ordered_on` value (`None` when the version has no row).
    pub fn min(&self) -> Option<OrderedValue> {
        self.value(&self.version.min)
    }

    pub fn max(&self) -> Option<OrderedValue> {
        self.value(&self.version.max)
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The type of `ordered_on`.
    pub fn kind(&self) -> OrderedKind {
        self.kind
    }

    /// The options stored with the dataset (duplicates, row-group target, ...).
    pub fn options(&self) -> &WriteOptions {
        &self.options
    }

    pub fn ordered_on(&self) -> &str {
        &self.dataset.ordered_on
    }

    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.version.metadata
    }

    /// The URI that names exactly this snapshot.
    pub fn uri(&self) -> TarnUri {
        let mut uri = TarnUri::new(self.dataset.name.clone());
        if self.branch.name.as_str() != tarn_core::BranchName::MAIN {
            uri.branch = Some(self.branch.name.clone());
        }
        uri.with_ref(tarn_core::Ref::Version(self.version.version))
    }

    fn value(&self, scalar: &Option<SqlScalar>) -> Option<OrderedValue> {
        scalar.clone().map(|s| OrderedValue::from_sql(self.kind, s))
    }

    /// Row groups of this snapshot that may hold `[start, end)`, in row order.
    pub async fn row_groups(
        &self,
        lake: &Lake,
        start: Option<&OrderedValue>,
        end: Option<&OrderedValue>,
    ) -> Result<Vec<RowGroupRef>> {
        let range = RowGroupRange {
            start: start.map(OrderedValue::to_sql),
            end_excl: end.map(OrderedValue::to_sql),
        };
        let records = lake
            .catalog
            .reader
            .row_groups(self.version.branch_id, self.version.version, range)
            .await?;
        Ok(records
            .into_iter()
            .map(|r| RowGroupRef {
                id: r.id,
                path: r.path,
                rg_index: r.rg_index,
                rows: r.rows,
                bytes: r.bytes,
                min: OrderedValue::from_sql(self.kind, r.min),
                max: OrderedValue::from_sql(self.kind, r.max),
                file_bytes: r.file_bytes,
                file_row_groups: r.file_row_groups,
            })
            .collect())
    }

    /// `tarn info --json`: `{name, schema, ordered_on, duplicates_on, version, rows, files,
    /// row_groups, min, max, metadata}` plus branch, bytes, row-group target and the rule for
    /// the trailing row groups (`coalescing`, with `max_off_target` when it is oups's rule).
    pub async fn info(&self, lake: &Lake) -> Result<DatasetInfo> {
        let rgs = self.row_groups(lake, None, None).await?;
        let mut files: Vec<&str> = rgs.iter().map(|r| r.path.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        Ok(DatasetInfo {
            name: self.dataset.name.to_string(),
            branch: self.branch.name.to_string(),
            schema: self
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect(),
            ordered_on: self.ordered_on().to_string(),
            duplicates_on: self.options.duplicates_on.to_json(),
            row_group_target: self.options.row_group_target.to_string(),
            coalescing: match self.options.max_off_target {
                None => "tiered",
                Some(_) => "max_off_target",
            },
            max_off_target: self.options.max_off_target,
            version: self.version.version,
            commit_id: self.version.commit_id,
            timestamp: self
                .version
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            rows: self.version.rows,
            files: files.len() as u64,
            row_groups: rgs.len() as u64,
            bytes: self.version.bytes,
            min: self.value(&self.version.min).map(|v| v.to_json(self.kind)),
            max: self.value(&self.version.max).map(|v| v.to_json(self.kind)),
            metadata: self.version.metadata.clone(),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetInfo {
    pub name: String,
    pub branch: String,
    /// `[(column, type)]` in schema order.
    pub schema: Vec<(String, String)>,
    pub ordered_on: String,
    pub duplicates_on: serde_json::Value,
    pub row_group_target: String,
    /// How the trailing row groups are merged (SPEC §3.5): `"tiered"`, the size-tiered tail
    /// (docs/design/0007), or `"max_off_target"`, oups's rule with `max_off_target`.
    pub coalescing: &'static str,
    /// `null` under the tiered tail.
    pub max_off_target: Option<u32>,
    pub version: u64,
    pub commit_id: i64,
    pub timestamp: String,
    pub rows: u64,
    pub files: u64,
    pub row_groups: u64,
    pub bytes: u64,
    pub min: Option<serde_json::Value>,
    pub max: Option<serde_json::Value>,
    pub metadata: BTreeMap<String, String>,
}

/// One entry of `tarn log --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    pub version: u64,
    pub commit_id: i64,
    pub timestamp: String,
    pub operation: String,
    pub rows: u64,
    pub message: Option<String>,
    /// Versions this one was computed from (lineage, SPEC §8; empty until jobs record reads).
    pub upstreams: Vec<String>,
}

impl From<&VersionRecord> for VersionInfo {
    fn from(v: &VersionRecord) -> Self {
        Self {
            version: v.version,
            commit_id: v.commit_id,
            timestamp: v
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            operation: v.operation.clone(),
            rows: v.rows,
            message: v.message.clone(),
            upstreams: Vec::new(),
        }
    }
}

impl Lake {
    /// The retained versions of the URI's branch, newest first, at most `limit`.
    pub async fn log(&self, uri: &str, limit: Option<u64>) -> Result<Vec<VersionInfo>> {
        let snapshot = self
            .snapshot(
                &TarnUri::parse_lenient(uri)?
                    .with_ref(tarn_core::Ref::Live)
                    .to_string(),
            )
            .await?;
        let versions = self
            .catalog
            .reader
            .versions(snapshot.branch.id, limit)
            .await?;
        // The catalog lists retained versions only, so the limit counts those.
        Ok(versions.iter().map(VersionInfo::from).collect())
    }

    /// Datasets under `prefix` with their `main` head.
    pub async fn datasets(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<tarn_catalog::DatasetSummary>> {
        Ok(self
            .catalog
            .reader
            .datasets(prefix.map(str::to_string))
            .await?)
    }
}
