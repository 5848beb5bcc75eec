//! A DataFusion table over one immutable snapshot (docs/design/0004).
//!
//! The snapshot's row groups come from the catalog, already pruned by any bound on
//! `ordered_on` the query's filters give. They are handed to DataFusion's Parquet scan as
//! *segments*: runs of consecutive row groups of one file, in row order, each a
//! `PartitionedFile` with a `ParquetAccessPlan` that reads only those row groups (a file may
//! hold row groups other versions replaced) and exact statistics from the catalog (rows,
//! `ordered_on` min/max). The row groups are split into contiguous runs of similar size, one
//! per partition, at row-group boundaries, so every partition is sorted on `ordered_on` and
//! the scan declares that ordering: an `ORDER BY ordered_on` over one dataset needs no sort,
//! only a merge of sorted partitions. DataFusion then prunes row groups and pages with the
//! footers' statistics and decodes only the projected columns. What the catalog pruned is
//! reported to `EXPLAIN` through [`SCAN_REPORTS`].

use crate::error::QueryError;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Result as DfResult, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::expressions::Column as PhysicalColumn;
use std::sync::Arc;
use tarn::RowGroup as RowGroupRef;
use tarn::{Lake, OrderedKind, OrderedValue, Snapshot};

/// The URL under which a lake's data store is registered in a query session.
pub const DATA_URL: &str = "tarn-data://lake";

tokio::task_local! {
    /// Where scans planned in this task say what the catalog pruned (one line each), for
    /// `EXPLAIN`: DataFusion's own plan only shows what reached the Parquet scan.
    pub(crate) static SCAN_REPORTS: Arc<std::sync::Mutex<Vec<String>>>;
}

/// One snapshot as a DataFusion table.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    lake: Lake,
    snapshot: Snapshot,
    /// The snapshot's schema as DataFusion sees it (see [`SnapshotTable::with_view_types`]).
    schema: SchemaRef,
}

impl SnapshotTable {
    pub fn new(lake: Lake, snapshot: Snapshot) -> Self {
        let schema = snapshot.schema().clone();
        Self {
            lake,
            snapshot,
            schema,
        }
    }

    /// With `views`, string and binary columns are read as `Utf8View` and `BinaryView`,
    /// as DataFusion reads Parquet with `schema_force_view_types`: Parquet pages decode
    /// into views without copying each value, and short values compare inline.
    pub fn with_view_types(mut self, views: bool) -> Self {
        self.schema = if views {
            view_schema(self.snapshot.schema())
        } else {
            self.snapshot.schema().clone()
        };
        self
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The bounds on `ordered_on` that `filters` imply: `[start, end)`, either open. Only
    /// comparisons of the column with a literal count; anything else leaves the range open
    /// (DataFusion still applies every filter exactly).
    fn bounds(&self, filters: &[Expr]) -> (Option<OrderedValue>, Option<OrderedValue>) {
        let column = self.snapshot.ordered_on();
        let kind = self.snapshot.kind();
        let mut start: Option<OrderedValue> = None;
        let mut end: Option<OrderedValue> = None;
        let mut raise = |v: OrderedValue| {
            if start.as_ref().is_none_or(|s| v > *s) {
                start = Some(v);
            }
        };
        let lower_end = |v: OrderedValue, end: &mut Option<OrderedValue>| {
            if end.as_ref().is_none_or(|e| v < *e) {
                *end = Some(v);
            }
        };
        let mut visit = |col_op_lit: (Operator, &ScalarValue)| {
            let (op, lit) = col_op_lit;
            let Some(v) = ordered_value(kind, lit) else {
                return;
            };
            match op {
                Operator::Gt | Operator::GtEq => raise(v),
                Operator::Lt => lower_end(v, &mut end),
                Operator::LtEq => {
                    if let Some(next) = successor(&v) {
                        lower_end(next, &mut end)
                    }
                }
                Operator::Eq => {
                    if let Some(next) = successor(&v) {
                        lower_end(next, &mut end)
                    }
                    raise(v)
                }
                _ => {}
            }
        };
        for filter in filters {
            for conjunct in split_and(filter) {
                match conjunct {
                    Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                        match (left.as_ref(), right.as_ref()) {
                            (Expr::Column(c), Expr::Literal(lit, _)) if c.name == column => {
                                visit((*op, lit))
                            }
                            (Expr::Literal(lit, _), Expr::Column(c)) if c.name == column => {
                                if let Some(op) = op.swap() {
                                    visit((op, lit))
                                }
                            }
                            _ => {}
                        }
                    }
                    Expr::Between(b) if !b.negated => {
                        if let (Expr::Column(c), Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                            (b.expr.as_ref(), b.low.as_ref(), b.high.as_ref())
                            && c.name == column
                        {
                            visit((Operator::GtEq, lo));
                            visit((Operator::LtEq, hi));
                        }
                    }
                    _ => {}
                }
            }
        }
        (start, end)
    }

    fn statistics_of(
        &self,
        rows: u64,
        bytes: u64,
        min: &OrderedValue,
        max: &OrderedValue,
    ) -> Statistics {
        let schema = &self.snapshot.schema();
        let ordered = schema.index_of(self.snapshot.ordered_on()).ok();
        let column_statistics = (0..schema.fields().len())
            .map(|i| {
                if Some(i) == ordered {
                    ColumnStatistics {
                        null_count: Precision::Exact(0),
                        min_value: scalar(self.snapshot.kind(), min, schema.field(i).data_type())
                            .map_or(Precision::Absent, Precision::Exact),
                        max_value: scalar(self.snapshot.kind(), max, schema.field(i).data_type())
                            .map_or(Precision::Absent, Precision::Exact),
                        ..ColumnStatistics::new_unknown()
                    }
                } else {
                    ColumnStatistics::new_unknown()
                }
            })
            .collect();
        Statistics {
            num_rows: Precision::Exact(rows as usize),
            total_byte_size: Precision::Inexact(bytes as usize),
            column_statistics,
        }
    }

    /// `row_groups` (in row order) as at most `n` partitions of contiguous row groups with
    /// similar row counts, so that each partition is sorted on `ordered_on`. A partition is
    /// a list of *segments*: runs of consecutive row groups of one file, each a file with an
    /// access plan that reads only them. Partitions split at row-group boundaries, never
    /// inside one, so DataFusion must not split files again (the session turns
    /// `repartition_file_scans` off): that would open files for byte ranges with no row
    /// group in them.
    async fn partitions(
        &self,
        row_groups: &[RowGroupRef],
        n: usize,
    ) -> Result<Vec<FileGroup>, QueryError> {
        let total: u64 = row_groups.iter().map(|r| r.rows.max(1)).sum();
        let n = n.clamp(1, row_groups.len().max(1)) as u64;
        let per_partition = total.div_ceil(n);
        let mut partitions = Vec::new();
        let mut start = 0;
        let mut in_current = 0;
        for (i, rg) in row_groups.iter().enumerate() {
            let rows = rg.rows.max(1);
            if i > start && in_current + rows > per_partition && (partitions.len() as u64) + 1 < n {
                partitions.push(FileGroup::new(self.segments(&row_groups[start..i]).await?));
                start = i;
                in_current = 0;
            }
            in_current += rows;
        }
        if start < row_groups.len() {
            partitions.push(FileGroup::new(self.segments(&row_groups[start..]).await?));
        }
        Ok(partitions)
    }

    /// The segments of `row_groups` (in row order): maximal runs of consecutive row groups of
    /// one file, each a file with an access plan that reads only them.
    async fn segments(
        &self,
        row_groups: &[RowGroupRef],
    ) -> Result<Vec<PartitionedFile>, QueryError> {
        let mut out = Vec::new();
        for run in row_groups.chunk_by(|a, b| a.path == b.path) {
            let first = &run[0];
            let count = match first.file_row_groups {
                Some(n) => n,
                None => self
                    .lake
                    .file_row_groups(&first.path)
                    .await
                    .map_err(QueryError::Tarn)?,
            };
            let mut plan = ParquetAccessPlan::new_none(count as usize);
            for rg in run {
                if rg.rg_index >= count {
                    return Err(QueryError::Internal(format!(
                        "row group {} of {} is past the file's {count} row groups",
                        rg.rg_index, rg.path
                    )));
                }
                plan.set(rg.rg_index as usize, RowGroupAccess::Scan);
            }
            let rows = run.iter().map(|r| r.rows).sum();
            let bytes = run.iter().map(|r| r.bytes).sum();
            let min = run
                .iter()
                .map(|r| &r.min)
                .min_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let max = run
                .iter()
                .map(|r| &r.max)
                .max_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let mut file =
                PartitionedFile::new(first.path.clone(), first.file_bytes).with_extension(plan);
            if let (Some(min), Some(max)) = (min, max) {
                file = file.with_statistics(Arc::new(self.statistics_of(rows, bytes, min, max)));
            }
            out.push(file);
        }
        Ok(out)
    }

    /// Says, for EXPLAIN, what the catalog kept of the snapshot for the bounds `[start,
    /// end)`.
    fn report(
        &self,
        start: Option<&OrderedValue>,
        end: Option<&OrderedValue>,
        row_groups: &[RowGroupRef],
        partitions: usize,
    ) {
        let _ = SCAN_REPORTS.try_with(|reports| {
            let kind = self.snapshot.kind();
            let column = self.snapshot.ordered_on();
            let bounds = match (start, end) {
                (None, None) => format!("no bound on {column}"),
                (Some(s), None) => format!("{column} >= {}", s.display(kind)),
                (None, Some(e)) => format!("{column} < {}", e.display(kind)),
                (Some(s), Some(e)) => {
                    format!("{column} >= {} AND {column} < {}", s.display(kind), e.display(kind))
                }
            };
            let total = self.snapshot.row_group_count();
            let kept = row_groups.len() as u64;
            let files: std::collections::BTreeSet<&str> =
                row_groups.iter().map(|r| r.path.as_str()).collect();
            let line = format!(
                "{}: {bounds}: {kept} of {total} row groups kept, {} pruned in the catalog; {} file{}, {partitions} partition{}",
                self.snapshot.uri(),
                total.saturating_sub(kept),
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                if partitions == 1 { "" } else { "s" },
            );
            if let Ok(mut reports) = reports.lock() {
                reports.push(line);
            }
        });
    }
}

/// The conjuncts of `a AND b AND ...`.
fn split_and(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut out = split_and(left);
            out.extend(split_and(right));
            out
        }
        other => vec![other],
    }
}

/// The ordered value of a literal compared with the column (DataFusion has already coerced
/// literals to the column's type).
fn ordered_value(kind: OrderedKind, lit: &ScalarValue) -> Option<OrderedValue> {
    use arrow::datatypes::TimeUnit;
    Some(match (kind, lit) {
        (OrderedKind::Int, ScalarValue::Int64(Some(v))) => OrderedValue::Int(*v),
        (OrderedKind::Int, ScalarValue::Int32(Some(v))) => OrderedValue::Int(i64::from(*v)),
        (OrderedKind::Int, ScalarValue::Int16(Some(v))) => OrderedValue::Int(i64::from(*v)),
        (OrderedKind::Int, ScalarValue::Int8(Some(v))) => OrderedValue::Int(i64::from(*v)),
        (OrderedKind::Float, ScalarValue::Float64(Some(v))) if !v.is_nan() => {
            OrderedValue::Float(*v)
        }
        (OrderedKind::Str, ScalarValue::Utf8(Some(s))) => OrderedValue::Str(s.clone()),
        (OrderedKind::Date, ScalarValue::Date32(Some(d))) => OrderedValue::Date(*d),
        (OrderedKind::Timestamp(unit), s) => {
            let (v, u) = match s {
                ScalarValue::TimestampSecond(Some(v), _) => (*v, TimeUnit::Second),
                ScalarValue::TimestampMillisecond(Some(v), _) => (*v, TimeUnit::Millisecond),
                ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, TimeUnit::Microsecond),
                ScalarValue::TimestampNanosecond(Some(v), _) => (*v, TimeUnit::Nanosecond),
                _ => return None,
            };
            if u != unit {
                return None;
            }
            OrderedValue::Timestamp(v)
        }
        _ => return None,
    })
}

/// The smallest value above `v`, where there is an obvious one (integers, times, dates).
fn successor(v: &OrderedValue) -> Option<OrderedValue> {
    match v {
        OrderedValue::Int(i) => i.checked_add(1).map(OrderedValue::Int),
        OrderedValue::Timestamp(t) => t.checked_add(1).map(OrderedValue::Timestamp),
        OrderedValue::Date(d) => d.checked_add(1).map(OrderedValue::Date),
        OrderedValue::Float(_) | OrderedValue::Str(_) => None,
    }
}

/// A catalog bound as a literal of the column's type, for statistics.
fn scalar(
    kind: OrderedKind,
    v: &OrderedValue,
    data_type: &arrow::datatypes::DataType,
) -> Option<ScalarValue> {
    let tz = match data_type {
        arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    use arrow::datatypes::TimeUnit;
    let s = match (kind, v) {
        (OrderedKind::Int, OrderedValue::Int(i)) => ScalarValue::Int64(Some(*i)),
        (OrderedKind::Float, OrderedValue::Float(f)) => ScalarValue::Float64(Some(*f)),
        (OrderedKind::Str, OrderedValue::Str(s)) => ScalarValue::Utf8(Some(s.clone())),
        (OrderedKind::Date, OrderedValue::Date(d)) => ScalarValue::Date32(Some(*d)),
        (OrderedKind::Timestamp(unit), OrderedValue::Timestamp(t)) => match unit {
            TimeUnit::Second => ScalarValue::TimestampSecond(Some(*t), tz),
            TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(*t), tz),
            TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(*t), tz),
            TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(*t), tz),
        },
        _ => return None,
    };
    // Integer columns narrower than Int64 take their own type.
    s.cast_to(data_type).ok()
}

/// `schema` with its top-level `Utf8` and `Binary` columns as view types. `LargeUtf8` and
/// `LargeBinary` stay as they are, so that [`plain_types`] gives back exactly the declared
/// schema.
fn view_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            DataType::Binary => Arc::new(f.as_ref().clone().with_data_type(DataType::BinaryView)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with its top-level view columns as the plain types they stand for (`Utf8View`
/// as `Utf8`, `BinaryView` as `Binary`): the types datasets declare. Results that leave
/// tarn as files (Parquet, Arrow IPC) take these, whatever the session read them as.
pub fn plain_types(schema: &SchemaRef) -> SchemaRef {
    let plain = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !schema
        .fields()
        .iter()
        .any(|f| plain(f.data_type()).is_some())
    {
        return schema.clone();
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match plain(f.data_type()) {
            Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
            None => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Bounds on ordered_on prune row groups in the catalog, and DataFusion's Parquet scan
        // prunes with every filter; the filter itself still runs on what is read.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        let s = &self.snapshot;
        match (s.min(), s.max()) {
            (Some(min), Some(max)) => Some(self.statistics_of(s.rows(), s.bytes(), &min, &max)),
            _ => None,
        }
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (start, end) = self.bounds(filters);
        let empty_range = matches!((&start, &end), (Some(s), Some(e)) if s >= e);
        let row_groups = if empty_range {
            Vec::new()
        } else {
            self.snapshot
                .row_groups(&self.lake, start.as_ref(), end.as_ref())
                .await
                .map_err(|e| QueryError::Tarn(e).into_datafusion())?
        };
        let schema = self.schema();
        let partitions = state.config_options().execution.target_partitions.max(1);
        let groups = self
            .partitions(&row_groups, partitions)
            .await
            .map_err(QueryError::into_datafusion)?;
        self.report(start.as_ref(), end.as_ref(), &row_groups, groups.len());
        if row_groups.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let ordered = schema.index_of(self.snapshot.ordered_on())?;
        let ordering = LexOrdering::new(vec![
            PhysicalSortExpr::new_default(Arc::new(PhysicalColumn::new(
                self.snapshot.ordered_on(),
                ordered,
            )))
            .asc()
            .nulls_last(),
        ]);
        let source = Arc::new(ParquetSource::new(schema.clone()));
        let mut builder = FileScanConfigBuilder::new(ObjectStoreUrl::parse(DATA_URL)?, source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit);
        if let Some(stats) = self.statistics() {
            builder = builder.with_statistics(stats);
        }
        if let Some(ordering) = ordering {
            builder = builder.with_output_ordering(vec![ordering]);
        }
        let format = ParquetFormat::default().with_options(state.default_table_options().parquet);
        format.create_physical_plan(state, builder.build()).await
    }
}
