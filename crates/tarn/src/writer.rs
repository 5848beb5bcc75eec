//! Mutations and the retry policy of the commit protocol (docs/design/0001-commit.md): plan
//! on the head, write and flush the new file, commit if the head has not moved; on a
//! conflict delete the file (nothing references it), back off, and re-plan on the new head.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot::Snapshot;
use arrow::array::Array;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use std::time::Duration;
use tarn_catalog::{CatalogError, CommitRequest, NewFile, NewRowGroup};
use tarn_core::{
    DuplicatesOn, OrderedKind, OrderedValue, Ref, RowGroupTarget, TarnUri, WriteOptions,
};
use tarn_store::RowGroupRef;
use tarn_store::mutation::{self, DatasetLayout, Mutation, MutationOutput};
use tarn_store::{merge, parquet_io, schema};

pub(crate) const MAX_ATTEMPTS: u32 = 12;
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(320);

/// `batch` with the columns of `schema`, in its order and types, as a write into a dataset
/// of that schema would take it (SPEC §3.1: the same names and types in any order); the
/// error lists every difference.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    Ok(schema::align_batch(batch, schema, false)?.0)
}

/// Options of one write (SPEC §3, §11 `tarn write`).
#[derive(Debug, Clone, Default)]
pub struct WriteRequest {
    /// Required when the write creates the dataset; must match it afterwards.
    pub ordered_on: Option<String>,
    pub duplicates_on: Option<DuplicatesOn>,
    pub row_group_target: Option<RowGroupTarget>,
    /// oups's trailing rule for this write (`--max-off-target N`, SPEC §3.5); `None` keeps
    /// the dataset's rule, by default the size-tiered tail.
    pub max_off_target: Option<u32>,
    pub set_metadata: BTreeMap<String, String>,
    pub unset_metadata: Vec<String>,
    pub message: Option<String>,
    pub evolve: bool,
    /// [`Lake::write_stream`]: decoded input read before the write decides whether it
    /// streams; an input that ends before is planned in memory (default
    /// [`crate::STREAM_THRESHOLD_BYTES`]).
    pub buffer_bytes: Option<usize>,
}

impl WriteRequest {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ordered_on(mut self, column: impl Into<String>) -> Self {
        self.ordered_on = Some(column.into());
        self
    }
    pub fn duplicates_on(mut self, d: DuplicatesOn) -> Self {
        self.duplicates_on = Some(d);
        self
    }
    pub fn row_group_target(mut self, t: RowGroupTarget) -> Self {
        self.row_group_target = Some(t);
        self
    }
    pub fn max_off_target(mut self, n: u32) -> Self {
        self.max_off_target = Some(n);
        self
    }
    pub fn meta(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.set_metadata.insert(k.into(), v.into());
        self
    }
    pub fn unset_meta(mut self, k: impl Into<String>) -> Self {
        self.unset_metadata.push(k.into());
        self
    }
    pub fn message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
    pub fn evolve(mut self, yes: bool) -> Self {
        self.evolve = yes;
        self
    }
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = Some(bytes);
        self
    }
}

/// What a mutation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteOutcome {
    pub dataset: String,
    pub branch: String,
    /// The new version, or `None` when nothing changed (no version was created).
    pub version: Option<u64>,
    pub commit_id: Option<i64>,
    pub operation: String,
    /// Rows the input brought (after deduplication inside the input).
    pub rows_in: u64,
    /// Rows of the dataset at the new version.
    pub rows: u64,
    pub row_groups_written: u64,
    pub row_groups_removed: u64,
    /// Existing rows decoded and written again (0 for a pure append).
    pub rows_rewritten: u64,
    pub bytes_written: u64,
    pub attempts: u32,
}

/// A mutation before it is planned on a head.
enum Op {
    Write {
        batch: RecordBatch,
        request: WriteRequest,
    },
    Overwrite {
        batch: RecordBatch,
        request: WriteRequest,
    },
    DeleteRange {
        start: String,
        end: String,
        message: Option<String>,
    },
    Compact {
        message: Option<String>,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Write { .. } => "write",
            Op::Overwrite { .. } => "overwrite",
            Op::DeleteRange { .. } => "delete-range",
            Op::Compact { .. } => "compact",
        }
    }
}

/// What a mutation commits, once planned on a head.
struct Plan {
    layout: DatasetLayout,
    metadata: BTreeMap<String, String>,
    message: Option<String>,
    output: MutationOutput,
    /// Create a version even when no row changes (metadata or schema changed, compaction).
    force_version: bool,
}

pub(crate) fn writable_uri(uri: &str) -> Result<TarnUri> {
    let uri = TarnUri::parse_lenient(uri)?;
    match uri.reference {
        Ref::Live | Ref::Latest => Ok(uri),
        _ => Err(Error::InvalidInput(format!(
            "{uri}: writes go to the head of a branch; drop the \":{}\" part",
            uri.reference
        ))),
    }
}

pub(crate) fn resolve_options(base: &WriteOptions, request: &WriteRequest) -> WriteOptions {
    WriteOptions {
        duplicates_on: request
            .duplicates_on
            .clone()
            .unwrap_or_else(|| base.duplicates_on.clone()),
        row_group_target: request.row_group_target.unwrap_or(base.row_group_target),
        max_off_target: request.max_off_target.or(base.max_off_target),
    }
}

impl Lake {
    /// Merges `batch` into the dataset named by `uri` (SPEC §3), creating it on first write.
    pub async fn write(
        &self,
        uri: &str,
        batch: RecordBatch,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        self.mutate(uri, Op::Write { batch, request }).await
    }

    /// Replaces every row of the dataset (creating it if needed).
    pub async fn overwrite(
        &self,
        uri: &str,
        batch: RecordBatch,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        self.mutate(uri, Op::Overwrite { batch, request }).await
    }

    /// Removes rows with `start <= ordered_on < end`; bounds are parsed in the column's type.
    pub async fn delete_range(
        &self,
        uri: &str,
        start: &str,
        end: &str,
        message: Option<String>,
    ) -> Result<WriteOutcome> {
        self.mutate(
            uri,
            Op::DeleteRange {
                start: start.to_string(),
                end: end.to_string(),
                message,
            },
        )
        .await
    }

    /// Rewrites the dataset's row groups to the target; the new version holds the same rows.
    pub async fn compact(&self, uri: &str, message: Option<String>) -> Result<WriteOutcome> {
        self.mutate(uri, Op::Compact { message }).await
    }

    /// Changes only metadata: creates a version with the same rows.
    pub async fn set_metadata(&self, uri: &str, request: WriteRequest) -> Result<WriteOutcome> {
        let head = self.head(&writable_uri(uri)?).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "{uri}: dataset does not exist; metadata is set on an existing dataset"
            ))
        })?;
        let empty = RecordBatch::new_empty(head.schema.clone());
        self.write(uri, empty, request).await
    }

    async fn mutate(&self, uri: &str, op: Op) -> Result<WriteOutcome> {
        let uri = writable_uri(uri)?;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let head = self.head(&uri).await?;
            // Only the write that creates a dataset checks its name against a collection's
            // key schema: appends pay nothing.
            if head.is_none() && matches!(op, Op::Write { .. } | Op::Overwrite { .. }) {
                self.check_new_dataset_name(&uri).await?;
            }
            let plan = self.plan(&uri, head.as_ref(), &op).await?;
            let base_version = head.as_ref().map_or(0, |h| h.version.version);
            let base_rows = head.as_ref().map_or(0, |h| h.version.rows);
            if plan.output.is_noop() && !plan.force_version {
                return Ok(WriteOutcome {
                    dataset: uri.dataset.to_string(),
                    branch: uri.branch_name().to_string(),
                    version: None,
                    commit_id: None,
                    operation: op.name().into(),
                    rows_in: plan.output.rows_in,
                    rows: base_rows,
                    row_groups_written: 0,
                    row_groups_removed: 0,
                    rows_rewritten: 0,
                    bytes_written: 0,
                    attempts: attempt,
                });
            }
            let new_file = self.write_file(&uri, &plan).await?;
            let summary = Summary {
                operation: op.name(),
                base_version,
                rows_in: plan.output.rows_in,
                rows_rewritten: plan.output.rows_rewritten,
                row_groups_removed: plan.output.removed.len() as u64,
                attempt,
                planned_branch: head.as_ref().map(|h| h.branch.id),
            };
            let request = commit_request(
                &uri,
                &plan.layout,
                &plan.metadata,
                &plan.message,
                &summary,
                new_file.clone(),
                plan.output.removed.clone(),
            )?;
            match self
                .commit_file(&uri, request, new_file, &summary, false)
                .await?
            {
                Committed::Done(outcome) => return Ok(outcome),
                Committed::Conflict => {
                    tokio::time::sleep(jitter(backoff, attempt)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        Err(Error::TooManyConflicts {
            what: format!("{} of {uri}", op.name()),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn plan(&self, uri: &TarnUri, head: Option<&Snapshot>, op: &Op) -> Result<Plan> {
        let all_row_groups = || async {
            match head {
                Some(h) => h.row_groups(self, None, None).await,
                None => Ok(Vec::new()),
            }
        };
        let base_metadata = head.map(|h| h.version.metadata.clone()).unwrap_or_default();
        match op {
            Op::Write { batch, request } | Op::Overwrite { batch, request } => {
                let (layout, aligned, schema_changed) = input_layout(uri, head, batch, request)?;
                let mut metadata = base_metadata.clone();
                for k in &request.unset_metadata {
                    metadata.remove(k);
                }
                metadata.extend(request.set_metadata.clone());
                let (existing, mutation) = match (op, head) {
                    (Op::Write { .. }, Some(h)) => {
                        let existing = match input_min(&aligned, &layout.ordered_on)? {
                            Some(min) => {
                                let lo = match &layout.options.row_group_target {
                                    RowGroupTarget::Frequency(f) => f
                                        .period_of(&min, layout.kind)
                                        .and_then(|p| f.period_start(p, layout.kind))
                                        .unwrap_or(min),
                                    RowGroupTarget::Rows(_) => min,
                                };
                                self.window(h, lo, &layout.options.row_group_target).await?
                            }
                            None => Vec::new(),
                        };
                        (existing, Mutation::Write(aligned))
                    }
                    (Op::Write { .. }, None) => (Vec::new(), Mutation::Write(aligned)),
                    _ => (all_row_groups().await?, Mutation::Overwrite(aligned)),
                };
                let output = mutation::execute(&self.store, &existing, &layout, mutation).await?;
                // Row changes show in the output; a first write (even of zero rows) creates
                // the dataset, which `schema_changed` covers.
                let force_version = metadata != base_metadata || schema_changed;
                // The dataset keeps the options of its first write; overrides apply per write.
                let stored_options =
                    head.map_or_else(|| layout.options.clone(), |h| h.options.clone());
                Ok(Plan {
                    layout: DatasetLayout {
                        options: stored_options,
                        ..layout
                    },
                    metadata,
                    message: request.message.clone(),
                    output,
                    force_version,
                })
            }
            Op::DeleteRange {
                start,
                end,
                message,
            } => {
                let head =
                    head.ok_or_else(|| Error::NotFound(format!("{uri}: dataset does not exist")))?;
                let s = head.kind.parse(head.ordered_on(), start)?;
                let e = head.kind.parse(head.ordered_on(), end)?;
                if s >= e {
                    return Err(Error::InvalidInput(format!(
                        "bad range: start {start} must be before end {end} (the range is [start, end))"
                    )));
                }
                let layout = layout_of(head);
                let existing = self
                    .window(head, s.clone(), &layout.options.row_group_target)
                    .await?;
                let output = mutation::execute(
                    &self.store,
                    &existing,
                    &layout,
                    Mutation::DeleteRange { start: s, end: e },
                )
                .await?;
                Ok(Plan {
                    layout,
                    metadata: base_metadata,
                    message: message.clone(),
                    output,
                    force_version: false,
                })
            }
            Op::Compact { message } => {
                let head =
                    head.ok_or_else(|| Error::NotFound(format!("{uri}: dataset does not exist")))?;
                let layout = layout_of(head);
                let existing = all_row_groups().await?;
                let output =
                    mutation::execute(&self.store, &existing, &layout, Mutation::Compact).await?;
                Ok(Plan {
                    layout,
                    metadata: base_metadata,
                    message: message.clone(),
                    output,
                    force_version: true,
                })
            }
        }
    }

    /// The row groups a mutation starting at `lo` can touch. With a frequency target (where
    /// datasets have many small row groups, one per period, and nothing coalesces) that is
    /// every row group from the first one whose max reaches `lo` to the end, widened back over
    /// row groups sharing a boundary value: planning costs the touched region, not the whole
    /// dataset. With a row-count target, trailing coalescing may reach any run of row groups
    /// under target before the edit, so the whole (short) list is used.
    async fn window(
        &self,
        head: &Snapshot,
        lo: OrderedValue,
        target: &RowGroupTarget,
    ) -> Result<Vec<RowGroupRef>> {
        if matches!(target, RowGroupTarget::Rows(_)) {
            return head.row_groups(self, None, None).await;
        }
        let mut start = lo;
        let mut window = head.row_groups(self, Some(&start), None).await?;
        while let Some(first) = window.first()
            && first.min < start
        {
            start = first.min.clone();
            window = head.row_groups(self, Some(&start), None).await?;
        }
        Ok(window)
    }

    /// Encodes the plan's new row groups into one file and makes it durable.
    async fn write_file(&self, uri: &TarnUri, plan: &Plan) -> Result<Option<NewFile>> {
        if plan.output.new_row_groups.is_empty() {
            return Ok(None);
        }
        let schema = plan.layout.schema.clone();
        let groups = plan.output.new_row_groups.clone();
        let bounds = groups
            .iter()
            .map(|g| merge::bounds(g, &plan.layout.ordered_on))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let path = format!("{}/{}.parquet", uri.dataset, uuid::Uuid::new_v4().simple());
        let (stats, size) = self
            .store
            .write_new(&path, move |out| {
                Ok(parquet_io::encode_to(out, &schema, &groups)?.1)
            })
            .await?;
        Ok(Some(NewFile {
            path,
            bytes: size,
            row_groups: new_row_groups(&stats, &bounds),
        }))
    }
}

/// The catalog rows of a new file's row groups: what the encoder wrote, with the bounds of
/// each row group's `ordered_on`.
pub fn new_row_groups(
    stats: &[parquet_io::EncodedRowGroup],
    bounds: &[(OrderedValue, OrderedValue)],
) -> Vec<NewRowGroup> {
    stats
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(i, (s, (min, max)))| NewRowGroup {
            rg_index: i as u32,
            rows: s.rows,
            bytes: s.bytes,
            min: min.to_sql(),
            max: max.to_sql(),
        })
        .collect()
}

/// What a planned mutation reports in its outcome, besides what the commit returns.
pub(crate) struct Summary {
    pub operation: &'static str,
    pub base_version: u64,
    pub rows_in: u64,
    pub rows_rewritten: u64,
    pub row_groups_removed: u64,
    pub attempt: u32,
    /// The catalog id of the branch the plan was made on (`None` for a new dataset).
    pub planned_branch: Option<i64>,
}

/// How a commit attempt ended.
pub(crate) enum Committed {
    Done(WriteOutcome),
    /// The head moved: plan again on the new head. The new file was deleted, unless the
    /// caller asked to keep it.
    Conflict,
}

/// The catalog request of a mutation that writes `new_file` and removes `removed`.
pub(crate) fn commit_request(
    uri: &TarnUri,
    layout: &DatasetLayout,
    metadata: &BTreeMap<String, String>,
    message: &Option<String>,
    summary: &Summary,
    new_file: Option<NewFile>,
    removed: Vec<i64>,
) -> Result<CommitRequest> {
    Ok(CommitRequest {
        dataset: uri.dataset.clone(),
        branch: uri.branch_name(),
        base_version: summary.base_version,
        ordered_on: layout.ordered_on.clone(),
        operation: summary.operation.into(),
        message: message.clone(),
        schema_json: serde_json::to_string(layout.schema.as_ref())
            .map_err(|e| Error::Config(e.to_string()))?,
        options_json: serde_json::to_string(&layout.options)
            .map_err(|e| Error::Config(e.to_string()))?,
        metadata: metadata.clone(),
        new_file,
        removed_row_groups: removed,
        request_id: None,
    })
}

impl Lake {
    /// Commits a planned mutation whose file (if any) is durable, and says what it did.
    pub(crate) async fn commit_file(
        &self,
        uri: &TarnUri,
        request: CommitRequest,
        new_file: Option<NewFile>,
        summary: &Summary,
        keep_file_on_conflict: bool,
    ) -> Result<Committed> {
        let path = new_file.as_ref().map(|f| f.path.clone());
        let outcome = |version: u64, commit_id: i64, rows: u64| WriteOutcome {
            dataset: uri.dataset.to_string(),
            branch: uri.branch_name().to_string(),
            version: Some(version),
            commit_id: Some(commit_id),
            operation: summary.operation.into(),
            rows_in: summary.rows_in,
            rows,
            row_groups_written: new_file.as_ref().map_or(0, |f| f.row_groups.len() as u64),
            row_groups_removed: summary.row_groups_removed,
            rows_rewritten: summary.rows_rewritten,
            bytes_written: new_file.as_ref().map_or(0, |f| f.bytes),
            attempts: summary.attempt,
        };
        let mut request = request;
        request.request_id = self.request_id.as_deref().map(str::to_string);
        match self.catalog.writer.commit(request).await {
            Ok(done) => {
                tracing::debug!(dataset = %uri.dataset, version = done.version, attempt = summary.attempt, "committed");
                Ok(Committed::Done(outcome(
                    done.version,
                    done.commit_id,
                    done.rows,
                )))
            }
            Err(e) if e.is_conflict() => {
                // A definite "no": no version references the file, so it can go now
                // (unless the caller still reads it: a streamed write's retry does).
                if let Some(p) = &path
                    && !keep_file_on_conflict
                {
                    let _ = self.store.delete(p).await;
                }
                tracing::debug!(dataset = %uri.dataset, attempt = summary.attempt, "commit conflict, re-planning");
                Ok(Committed::Conflict)
            }
            // Some row groups the plan removes are not live at the head it names, which
            // has not moved: not a race (a concurrent commit that removed them would have
            // moved the head, a `Conflict`), so planning again on that head would plan the
            // same and fail the same. The one race that ends here is a branch deleted and
            // made again under the same name at the same version while this write ran:
            // the catalog checked the plan against a branch it was not made on. Then,
            // and only then, re-plan on the new branch.
            Err(e @ CatalogError::RowGroupsNotLive { .. }) => {
                let now_on = self.head(uri).await?.map(|h| h.branch.id);
                let replan = now_on != summary.planned_branch;
                // A definite "no", as for a conflict: the file goes unless a re-plan
                // still reads it.
                if let Some(p) = &path
                    && !(replan && keep_file_on_conflict)
                {
                    let _ = self.store.delete(p).await;
                }
                if !replan {
                    return Err(e.into());
                }
                tracing::debug!(dataset = %uri.dataset, attempt = summary.attempt, "branch replaced, re-planning");
                Ok(Committed::Conflict)
            }
            Err(CatalogError::DatasetNotFound(d)) => {
                if let Some(p) = &path {
                    let _ = self.store.delete(p).await;
                }
                Err(Error::NotFound(format!(
                    "{uri}: dataset {d:?} does not exist"
                )))
            }
            // The answer to COMMIT was lost: re-read the catalog (SPEC §2) rather than
            // guess. Found: the commit landed. Not found: keep the file (vacuum takes
            // it after the grace period if nothing references it) and report.
            Err(e @ CatalogError::UnknownOutcome { .. }) => {
                if let (Some(p), Ok(Some(head))) = (&path, self.head(uri).await)
                    && head.version.version == summary.base_version + 1
                    && head
                        .row_groups(self, None, None)
                        .await
                        .is_ok_and(|rgs| rgs.iter().any(|rg| &rg.path == p))
                {
                    tracing::warn!(dataset = %uri.dataset, "commit outcome was unknown; it landed");
                    return Ok(Committed::Done(outcome(
                        head.version.version,
                        head.version.commit_id,
                        head.version.rows,
                    )));
                }
                Err(e.into())
            }
            // Any other failure: keep the file, as above.
            Err(e) => Err(e.into()),
        }
    }
}

fn layout_of(head: &Snapshot) -> DatasetLayout {
    DatasetLayout {
        schema: head.schema.clone(),
        ordered_on: head.ordered_on().to_string(),
        kind: head.kind,
        options: head.options.clone(),
    }
}

/// The layout a write runs with, the input aligned to it, and whether the schema changed.
pub(crate) fn input_layout(
    uri: &TarnUri,
    head: Option<&Snapshot>,
    batch: &RecordBatch,
    request: &WriteRequest,
) -> Result<(DatasetLayout, RecordBatch, bool)> {
    match head {
        Some(h) => {
            if let Some(col) = &request.ordered_on
                && col != h.ordered_on()
            {
                return Err(Error::InvalidInput(format!(
                    "{uri}: the dataset is ordered on {:?}, not {col:?}",
                    h.ordered_on()
                )));
            }
            let (aligned, evolved) = schema::align_batch(batch, &h.schema, request.evolve)?;
            let changed = evolved.is_some();
            let schema: SchemaRef = evolved.unwrap_or_else(|| h.schema.clone());
            let aligned = if changed {
                aligned
            } else {
                aligned.with_schema(schema.clone())?
            };
            Ok((
                DatasetLayout {
                    schema,
                    ordered_on: h.ordered_on().to_string(),
                    kind: h.kind,
                    options: resolve_options(&h.options, request),
                },
                aligned,
                changed,
            ))
        }
        None => {
            let ordered_on = request.ordered_on.clone().ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{uri}: dataset {:?} does not exist; pass --ordered-on COLUMN to create it",
                    uri.dataset.as_str()
                ))
            })?;
            if uri.branch_name().as_str() != tarn_core::BranchName::MAIN {
                return Err(Error::NotFound(format!(
                    "{uri}: dataset {:?} does not exist, so neither does its branch {:?}",
                    uri.dataset.as_str(),
                    uri.branch_name().as_str()
                )));
            }
            let schema = schema::normalize_schema(batch.schema().as_ref());
            let field = schema.field_with_name(&ordered_on).map_err(|_| {
                Error::InvalidInput(format!(
                    "ordered_on column {ordered_on:?} is not in the input (columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let kind = OrderedKind::of(&ordered_on, field.data_type())?;
            let options = resolve_options(&WriteOptions::default(), request);
            if let RowGroupTarget::Frequency(f) = &options.row_group_target {
                f.check_kind(&ordered_on, kind)?;
            }
            merge::key_columns(&schema, &ordered_on, &options.duplicates_on)?;
            let (aligned, _) = schema::align_batch(batch, &schema, false)?;
            Ok((
                DatasetLayout {
                    schema,
                    ordered_on,
                    kind,
                    options,
                },
                aligned,
                true,
            ))
        }
    }
}

/// Spreads retries of competing writers apart, without a shared random source.
pub(crate) fn jitter(base: Duration, attempt: u32) -> Duration {
    let seed = std::process::id() as u64 ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let spread = (seed ^ nanos) % (base.as_micros() as u64 + 1);
    base + Duration::from_micros(spread)
}

/// The smallest `ordered_on` of a batch (`None` when empty). Nulls and NaNs are rejected
/// first, as the write itself would.
fn input_min(batch: &RecordBatch, ordered_on: &str) -> Result<Option<OrderedValue>> {
    merge::check_ordered_column(batch, ordered_on)?;
    let column = batch.column_by_name(ordered_on).ok_or_else(|| {
        Error::InvalidInput(format!("ordered_on column {ordered_on:?} is missing"))
    })?;
    if column.is_empty() {
        return Ok(None);
    }
    let cmp = arrow::array::make_comparator(column.as_ref(), column.as_ref(), Default::default())?;
    let smallest = (1..column.len()).fold(0, |best, i| if cmp(i, best).is_lt() { i } else { best });
    Ok(OrderedValue::from_array(column.as_ref(), smallest))
}
