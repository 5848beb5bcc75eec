//! `diff`: the rows one snapshot has that another lacks (SPEC §11 `tarn diff`).
//!
//! Two steps. First, from the catalog alone: a row group keeps its id in every version that
//! kept it (files are immutable), so the row groups both snapshots hold are the same rows and
//! are never read. The row groups only one side holds are *changed*; their closed
//! `[min, max]` intervals of `ordered_on`, from both sides together, merge into disjoint
//! *changed ranges*, and outside them both snapshots hold exactly the same rows.
//!
//! Then, range by range, both sides are read in order (one row group at a time, the next one
//! decoded ahead) and compared group by group of equal `ordered_on`: two groups with the same
//! value are compared as multisets of whole rows (Arrow's row format gives each row a byte
//! key), a group only one side has is all added or all removed. Memory stays bounded by one
//! group of equal `ordered_on` plus a few decoded row groups per side (the current one, and
//! up to two decoded ahead), besides the two snapshots' row-group lists from the catalog:
//! never by the number of rows of a dataset or of a changed range.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot::Snapshot;
use arrow::array::{Array, ArrayRef, RecordBatch, make_array};
use arrow::compute::{CastOptions, cast_with_options, concat_batches, filter};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use futures::stream::{self, BoxStream, StreamExt};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use tarn_core::{OrderedKind, OrderedValue};
use tarn_store::schema::conform_read;
use tarn_store::{RowGroupRef, merge, parquet_io};

/// What changed from snapshot A to snapshot B, as `tarn diff --json` prints it.
///
/// Rows are compared whole (on the columns both snapshots have) and counted with
/// multiplicity: `removed` counts the rows of A that B lacks, `added` the rows of B that A
/// lacks, so a row whose value changed counts once in each. An unchanged row that moved
/// (a compaction, a rewrite of its row group) counts in neither.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiffReport {
    /// Rows of B that A does not have.
    pub added: u64,
    /// Rows of A that B does not have.
    pub removed: u64,
    /// Where the differing rows lie, in order; see [`DiffRange`].
    pub ranges: Vec<DiffRange>,
    /// The URI of A, pinned to its version.
    pub a: String,
    /// The URI of B, pinned to its version.
    pub b: String,
    /// Columns B has and A lacks (ignored by the comparison).
    pub columns_added: Vec<String>,
    /// Columns A has and B lacks (ignored by the comparison).
    pub columns_removed: Vec<String>,
    /// Row groups both snapshots hold: the same rows, never read.
    pub unchanged_row_groups: u64,
    /// Row groups only one of the snapshots holds.
    pub changed_row_groups: u64,
    /// Row groups decoded to compare the changed ranges (both sides together).
    pub row_groups_read: u64,
    /// Rows inside the changed ranges that were compared (both sides together).
    pub compared_rows: u64,
}

/// The differing rows of one changed range.
///
/// `start` and `end` are the smallest and the largest `ordered_on` among the rows this range
/// counts as added or removed, both inclusive, as JSON (timestamps in RFC 3339 UTC, dates as
/// `YYYY-MM-DD`, numbers and strings as themselves). Ranges are ordered and disjoint. A range
/// is one run of overlapping changed row groups, so its extent follows the data layout: after
/// a compaction, two edits far apart may be reported as one range spanning both.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiffRange {
    pub start: serde_json::Value,
    pub end: serde_json::Value,
    pub added: u64,
    pub removed: u64,
}

impl Lake {
    /// Compares snapshot `a` with snapshot `b`: the rows `b` added and removed, in total and
    /// per changed range (see the module documentation for how, and [`DiffReport`]).
    ///
    /// Usually `a` and `b` are two versions of one dataset. Two different datasets can be
    /// compared when their `ordered_on` columns hold the same kind of value (the same time
    /// unit for timestamps); they share no row group, so every row of both is read. Columns
    /// are matched by name (the two `ordered_on` columns with each other); a column whose
    /// types differ is compared in a common type when there is an exact one (integers as
    /// Int64, numbers with a float as Float64, timestamps in the finer unit) and otherwise
    /// counts as removed from A and added in B.
    pub async fn diff(&self, a: &Snapshot, b: &Snapshot) -> Result<DiffReport> {
        let plan = Arc::new(ComparePlan::new(a, b)?);
        let rgs_a = a.row_groups(self, None, None).await?;
        let rgs_b = b.row_groups(self, None, None).await?;
        let ids_a: HashSet<i64> = rgs_a.iter().map(|rg| rg.id).collect();
        let ids_b: HashSet<i64> = rgs_b.iter().map(|rg| rg.id).collect();
        let changed_a: Vec<&RowGroupRef> =
            rgs_a.iter().filter(|rg| !ids_b.contains(&rg.id)).collect();
        let changed_b: Vec<&RowGroupRef> =
            rgs_b.iter().filter(|rg| !ids_a.contains(&rg.id)).collect();
        let ranges = changed_ranges(changed_a.iter().chain(&changed_b).copied());

        let mut report = DiffReport {
            added: 0,
            removed: 0,
            ranges: Vec::new(),
            a: a.uri().to_string(),
            b: b.uri().to_string(),
            columns_added: plan.columns_added.clone(),
            columns_removed: plan.columns_removed.clone(),
            unchanged_row_groups: (rgs_a.len() - changed_a.len()) as u64,
            changed_row_groups: (changed_a.len() + changed_b.len()) as u64,
            row_groups_read: 0,
            compared_rows: 0,
        };
        for (lo, hi) in ranges {
            let side = |rgs: &[RowGroupRef], which: Side| {
                Cursor::new(
                    self,
                    plan.clone(),
                    which,
                    overlapping(rgs, &lo, &hi).to_vec(),
                    (lo.clone(), hi.clone()),
                )
            };
            let tally = compare_range(side(&rgs_a, Side::A), side(&rgs_b, Side::B)).await?;
            report.added += tally.added;
            report.removed += tally.removed;
            report.row_groups_read += tally.row_groups_read;
            report.compared_rows += tally.compared_rows;
            if let (Some(first), Some(last)) = (tally.first, tally.last) {
                report.ranges.push(DiffRange {
                    start: first.to_json(plan.kind),
                    end: last.to_json(plan.kind),
                    added: tally.added,
                    removed: tally.removed,
                });
            }
        }
        Ok(report)
    }
}

/// Merges the closed `[min, max]` intervals of row groups into disjoint ranges, in order.
fn changed_ranges<'a>(
    rgs: impl Iterator<Item = &'a RowGroupRef>,
) -> Vec<(OrderedValue, OrderedValue)> {
    let mut intervals: Vec<(OrderedValue, OrderedValue)> =
        rgs.map(|rg| (rg.min.clone(), rg.max.clone())).collect();
    intervals.sort_by(|x, y| x.0.cmp(&y.0));
    let mut merged: Vec<(OrderedValue, OrderedValue)> = Vec::new();
    for (lo, hi) in intervals {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => {
                if hi > last.1 {
                    last.1 = hi;
                }
            }
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The row groups (in row order) that may hold values in `[lo, hi]`. Row groups of one
/// snapshot are sorted by both min and max (they overlap at most on a boundary value).
fn overlapping<'a>(
    rgs: &'a [RowGroupRef],
    lo: &OrderedValue,
    hi: &OrderedValue,
) -> &'a [RowGroupRef] {
    let first = rgs.partition_point(|rg| rg.max < *lo);
    let end = rgs.partition_point(|rg| rg.min <= *hi).max(first);
    &rgs[first..end]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// How the rows of both snapshots are made comparable: which columns each side decodes, the
/// type each compared column is conformed to, and the row converters over those types.
struct ComparePlan {
    kind: OrderedKind,
    /// Per side, the snapshot's columns to decode, in comparison order (`ordered_on` first).
    columns_a: SchemaRef,
    columns_b: SchemaRef,
    /// The type both sides of each compared column are conformed to.
    types: Vec<DataType>,
    /// Byte keys of `ordered_on` alone: equal keys are equal values, and keys sort as the
    /// rows do.
    keys: RowConverter,
    /// Byte keys of whole rows (every compared column).
    rows: RowConverter,
    columns_added: Vec<String>,
    columns_removed: Vec<String>,
}

impl ComparePlan {
    fn new(a: &Snapshot, b: &Snapshot) -> Result<Self> {
        let (oa, ob) = (a.ordered_on(), b.ordered_on());
        if a.kind != b.kind {
            let describe = |s: &Snapshot| {
                let ty = s
                    .schema
                    .field_with_name(s.ordered_on())
                    .map(|f| f.data_type().to_string())
                    .unwrap_or_default();
                format!("{} is ordered on {:?} ({ty})", s.uri(), s.ordered_on())
            };
            return Err(Error::InvalidInput(format!(
                "cannot diff: {} but {}; both sides must be ordered on the same kind of value \
                 (integers, floats, strings, dates, or timestamps of one unit)",
                describe(a),
                describe(b)
            )));
        }
        let field_a = a.schema.field_with_name(oa)?.clone();
        let field_b = b.schema.field_with_name(ob)?.clone();
        let ordered_type =
            common_type(field_a.data_type(), field_b.data_type()).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "cannot diff: {} orders on {} but {} on {}",
                    a.uri(),
                    field_a.data_type(),
                    b.uri(),
                    field_b.data_type()
                ))
            })?;
        let mut pairs: Vec<(Field, Field, DataType)> = vec![(field_a, field_b, ordered_type)];
        let mut columns_removed = Vec::new();
        for fa in a.schema.fields() {
            if fa.name() == oa {
                continue;
            }
            let matched = (fa.name() != ob)
                .then(|| b.schema.field_with_name(fa.name()).ok())
                .flatten()
                .and_then(|fb| {
                    common_type(fa.data_type(), fb.data_type()).map(|t| (fb.clone(), t))
                });
            match matched {
                Some((fb, t)) => pairs.push((fa.as_ref().clone(), fb, t)),
                None => columns_removed.push(fa.name().clone()),
            }
        }
        let columns_added = b
            .schema
            .fields()
            .iter()
            .filter(|fb| !pairs.iter().any(|(_, p, _)| p.name() == fb.name()))
            .map(|fb| fb.name().clone())
            .collect();
        let types: Vec<DataType> = pairs.iter().map(|(_, _, t)| t.clone()).collect();
        let keys = RowConverter::new(vec![SortField::new(types[0].clone())])?;
        let rows = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(Self {
            kind: a.kind,
            columns_a: Arc::new(Schema::new(
                pairs.iter().map(|(f, _, _)| f.clone()).collect::<Vec<_>>(),
            )),
            columns_b: Arc::new(Schema::new(
                pairs.iter().map(|(_, f, _)| f.clone()).collect::<Vec<_>>(),
            )),
            types,
            keys,
            rows,
            columns_added,
            columns_removed,
        })
    }

    fn columns(&self, side: Side) -> &SchemaRef {
        match side {
            Side::A => &self.columns_a,
            Side::B => &self.columns_b,
        }
    }

    /// Conforms a decoded row group of `side` to the compared types, keeps its rows in
    /// `[lo, hi]` (when `trim`), and builds their byte keys.
    fn prepare(
        &self,
        side: Side,
        batch: &RecordBatch,
        bounds: Option<&(OrderedValue, OrderedValue)>,
    ) -> Result<Decoded> {
        let batch = conform_read(batch, self.columns(side))?;
        let mut columns = batch
            .columns()
            .iter()
            .zip(&self.types)
            .map(|(c, t)| to_common(c, t))
            .collect::<Result<Vec<ArrayRef>>>()?;
        if let Some((lo, hi)) = bounds {
            let keep = merge::in_closed_range(&columns[0], lo, hi)?;
            if keep.true_count() < keep.len() {
                columns = columns
                    .iter()
                    .map(|c| filter(c, &keep))
                    .collect::<Result<Vec<_>, _>>()?;
            }
        }
        Ok(Decoded {
            keys: self.keys.convert_columns(&columns[..1])?,
            rows: self.rows.convert_columns(&columns)?,
            ordered: columns.swap_remove(0),
        })
    }
}

/// The type two columns of the same name are compared in, when there is an exact one.
fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        _ if a.is_integer() && b.is_integer() => Some(Int64),
        _ if a.is_numeric() && b.is_numeric() && !a.is_decimal() && !b.is_decimal() => {
            Some(Float64)
        }
        // Compared as instants in the finer unit; a zone only changes how they display.
        (Timestamp(ua, _), Timestamp(ub, _)) => Some(Timestamp(finer(*ua, *ub), None)),
        _ => None,
    }
}

fn finer(
    a: arrow::datatypes::TimeUnit,
    b: arrow::datatypes::TimeUnit,
) -> arrow::datatypes::TimeUnit {
    use arrow::datatypes::TimeUnit::*;
    let rank = |u| match u {
        Second => 0,
        Millisecond => 1,
        Microsecond => 2,
        Nanosecond => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

/// Converts a column to its common type. Casts are checked (an integer that does not fit
/// Int64 is an error, not a null). Timestamps keep their instant: only the unit is cast,
/// the zone is dropped without converting to local time.
fn to_common(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    let checked = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    match (array.data_type(), target) {
        (DataType::Timestamp(unit, zone), DataType::Timestamp(to, None)) => {
            let scaled = if unit == to {
                array.clone()
            } else {
                cast_with_options(array, &DataType::Timestamp(*to, zone.clone()), &checked)?
            };
            let data = scaled
                .to_data()
                .into_builder()
                .data_type(target.clone())
                .build()?;
            Ok(make_array(data))
        }
        _ => Ok(cast_with_options(array, target, &checked)?),
    }
}

/// One decoded row group of one side, trimmed to the range, with its byte keys.
struct Decoded {
    /// `ordered_on`, in the compared type.
    ordered: ArrayRef,
    keys: Rows,
    rows: Rows,
}

impl Decoded {
    fn len(&self) -> usize {
        self.keys.num_rows()
    }
}

/// Rows `rows` of one decoded row group.
struct Segment {
    batch: Arc<Decoded>,
    rows: Range<usize>,
}

/// The rows of one side that share one `ordered_on` value (possibly across row groups).
struct Group(Vec<Segment>);

impl Group {
    fn len(&self) -> u64 {
        self.0.iter().map(|s| s.rows.len() as u64).sum()
    }

    fn rows(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .flat_map(|s| s.rows.clone().map(|i| s.batch.rows.row(i).data()))
    }

    fn value(&self) -> Result<OrderedValue> {
        self.0
            .first()
            .and_then(|s| OrderedValue::from_array(s.batch.ordered.as_ref(), s.rows.start))
            .ok_or_else(|| {
                Error::Config(
                    "a data file holds a null or unorderable ordered_on value: it does not match the catalog"
                        .into(),
                )
            })
    }
}

/// Reads one side of a changed range in order, group by group of equal `ordered_on`.
struct Cursor {
    batches: BoxStream<'static, Result<Arc<Decoded>>>,
    current: Option<Arc<Decoded>>,
    pos: usize,
    row_groups_read: u64,
    compared_rows: u64,
}

impl Cursor {
    fn new(
        lake: &Lake,
        plan: Arc<ComparePlan>,
        side: Side,
        rgs: Vec<RowGroupRef>,
        bounds: (OrderedValue, OrderedValue),
    ) -> Self {
        let store = lake.store.clone();
        let decode: Vec<String> = plan
            .columns(side)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = stream::iter(rgs)
            .map(move |rg| {
                let (store, plan, decode) = (store.clone(), plan.clone(), decode.clone());
                // Row groups wholly inside the range need no trimming.
                let trim = (rg.min < bounds.0 || rg.max > bounds.1).then(|| bounds.clone());
                async move {
                    let batches = parquet_io::read_filtered(
                        &store,
                        &rg.path,
                        &[rg.rg_index],
                        Some(&decode),
                        None,
                    )
                    .await?;
                    // Conforming and building row keys is CPU work: off the async workers.
                    tokio::task::spawn_blocking(move || {
                        let batch = match batches.as_slice() {
                            [one] => one.clone(),
                            [first, ..] => concat_batches(&first.schema(), &batches)?,
                            [] => RecordBatch::new_empty(plan.columns(side).clone()),
                        };
                        plan.prepare(side, &batch, trim.as_ref()).map(Arc::new)
                    })
                    .await
                    .map_err(|e| Error::Config(format!("diff worker failed: {e}")))?
                }
            })
            // Decode the next row group while the current one is compared.
            .buffered(2)
            .boxed();
        Self {
            batches,
            current: None,
            pos: 0,
            row_groups_read: 0,
            compared_rows: 0,
        }
    }

    /// Makes the next row current; false once the side is exhausted.
    async fn fill(&mut self) -> Result<bool> {
        loop {
            if let Some(c) = &self.current
                && self.pos < c.len()
            {
                return Ok(true);
            }
            match self.batches.next().await {
                None => {
                    self.current = None;
                    return Ok(false);
                }
                Some(batch) => {
                    let batch = batch?;
                    self.row_groups_read += 1;
                    self.compared_rows += batch.len() as u64;
                    self.current = Some(batch);
                    self.pos = 0;
                }
            }
        }
    }

    /// The `ordered_on` key of the current row (after [`Cursor::fill`] returned true).
    fn key(&self) -> &[u8] {
        self.current
            .as_ref()
            .map_or(&[], |c| c.keys.row(self.pos).data())
    }

    /// Takes the rows equal on `ordered_on` to the current row, across row groups.
    async fn take_group(&mut self) -> Result<Group> {
        let mut segments = Vec::with_capacity(1);
        let Some(head) = self.current.clone() else {
            return Ok(Group(segments));
        };
        let key = head.keys.row(self.pos);
        while let Some(batch) = self.current.clone() {
            let from = self.pos;
            let mut end = from;
            while end < batch.len() && batch.keys.row(end) == key {
                end += 1;
            }
            if end > from {
                segments.push(Segment {
                    batch: batch.clone(),
                    rows: from..end,
                });
            }
            self.pos = end;
            // The group ends inside this row group, or it may go on in the next one.
            if end < batch.len() || !self.fill().await? {
                break;
            }
        }
        Ok(Group(segments))
    }
}

#[derive(Debug, Default)]
struct RangeTally {
    added: u64,
    removed: u64,
    first: Option<OrderedValue>,
    last: Option<OrderedValue>,
    row_groups_read: u64,
    compared_rows: u64,
}

impl RangeTally {
    fn record(&mut self, group: &Group, removed: u64, added: u64) -> Result<()> {
        if removed + added == 0 {
            return Ok(());
        }
        self.removed += removed;
        self.added += added;
        // Groups come in increasing order of ordered_on.
        let value = group.value()?;
        if self.first.is_none() {
            self.first = Some(value.clone());
        }
        self.last = Some(value);
        Ok(())
    }
}

/// Walks both sides of one changed range in step, one group of equal `ordered_on` at a time.
async fn compare_range(mut a: Cursor, mut b: Cursor) -> Result<RangeTally> {
    let mut tally = RangeTally::default();
    loop {
        let order = match (a.fill().await?, b.fill().await?) {
            (false, false) => break,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (true, true) => a.key().cmp(b.key()),
        };
        match order {
            Ordering::Less => {
                let group = a.take_group().await?;
                tally.record(&group, group.len(), 0)?;
            }
            Ordering::Greater => {
                let group = b.take_group().await?;
                tally.record(&group, 0, group.len())?;
            }
            Ordering::Equal => {
                let (ga, gb) = (a.take_group().await?, b.take_group().await?);
                let (removed, added) = multiset_difference(&ga, &gb);
                tally.record(&ga, removed, added)?;
            }
        }
    }
    tally.row_groups_read = a.row_groups_read + b.row_groups_read;
    tally.compared_rows = a.compared_rows + b.compared_rows;
    Ok(tally)
}

/// `(|a - b|, |b - a|)` for two groups of rows taken as multisets.
fn multiset_difference(a: &Group, b: &Group) -> (u64, u64) {
    // Usually the rows are the same and in the same order (a rewritten row group).
    if a.len() == b.len() && a.rows().eq(b.rows()) {
        return (0, 0);
    }
    let mut counts: HashMap<&[u8], i64> = HashMap::new();
    for row in a.rows() {
        *counts.entry(row).or_default() += 1;
    }
    for row in b.rows() {
        *counts.entry(row).or_default() -= 1;
    }
    counts.values().fold((0, 0), |(removed, added), &c| {
        if c > 0 {
            (removed + c as u64, added)
        } else {
            (removed, added + c.unsigned_abs())
        }
    })
}
