//! Iterating several datasets in step over one ordered range (SPEC §4, oups'
//! `iter_intersections`). This module owns how the steps are cut (row-group boundaries, a
//! row count or a frequency), the `n_prev` warm-up rows, and the per-dataset cursors that
//! decode one row group at a time so that memory never grows with the dataset.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::read::ReadRequest;
use crate::snapshot::Snapshot;
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use futures::future::try_join_all;
use futures::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use tarn_core::{Frequency, OrderedKind, OrderedValue};
use tarn_store::parquet_io::{self, RangeFilter};
use tarn_store::schema::conform_read;
use tarn_store::{DataStore, RowGroupRef};

/// How [`Lake::intersect`] cuts `[start, end)` into steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    /// Cut at every row group's `min` that lies inside `(start, end)`, in any of the
    /// datasets (the union of their row-group boundaries). Without ties on a boundary value,
    /// each chunk then comes from a single row group; rows equal to a boundary value that
    /// spill over from the previous row group join the step that starts at that value.
    #[default]
    RowGroups,
    /// At most this many rows of every dataset per step: a step ends at the smallest
    /// ordered value at which some dataset would exceed it. A single ordered value held by
    /// more rows than that in one dataset is a step of its own: the step ends at the next
    /// value present in any dataset and holds only that value's rows.
    Rows(usize),
    /// Cut at the start of every period of the frequency (timestamp and date `ordered_on`
    /// only; see [`Frequency::check_kind`]).
    Every(Frequency),
}

impl Step {
    /// Parses `--step`: a positive integer is a row count, anything else a frequency (`1h`,
    /// `15min`, `1D`, `1MS`).
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return match t.parse::<usize>() {
                Ok(0) => Err(Error::InvalidInput(
                    "a step must hold at least 1 row".into(),
                )),
                Ok(n) => Ok(Self::Rows(n)),
                Err(_) => Err(Error::InvalidInput(format!("step {t} is too large"))),
            };
        }
        Ok(Self::Every(Frequency::parse(t)?))
    }
}

/// What [`Lake::intersect`] iterates: `start <= ordered_on < end` (unbounded when `None`),
/// the warm-up rows, the step rule, and the columns to return (all when `None`).
#[derive(Debug, Clone, Default)]
pub struct IntersectRequest {
    pub start: Option<OrderedValue>,
    pub end: Option<OrderedValue>,
    /// Rows from before `start` to prepend to each dataset's chunk in the first step:
    /// empty is 0 for every dataset, one value applies to every dataset, otherwise one value
    /// per snapshot, in the order of the snapshots.
    pub n_prev: Vec<usize>,
    pub step: Step,
    /// The same projection for every dataset; each must have every named column.
    pub columns: Option<Vec<String>>,
}

/// One step of an intersection: the range `[start, end)` and the rows of each dataset in it.
#[derive(Debug, Clone)]
pub struct IntersectStep {
    /// 0 for the first yielded step, then 1, 2, ...: steps holding no row are never yielded
    /// and take no index, so the indexes have no gaps.
    pub index: u64,
    /// Inclusive start of the step; `None` is unbounded (only a first step can be).
    pub start: Option<OrderedValue>,
    /// Exclusive end of the step; `None` is unbounded (only a last step can be).
    pub end: Option<OrderedValue>,
    /// One batch per snapshot, in the order of the snapshots, with the projected schema of
    /// that dataset; possibly 0 rows. In step 0 it starts with the dataset's warm-up rows.
    pub chunks: Vec<RecordBatch>,
    /// The first and last `ordered_on` value of each chunk (warm-up rows included), `None`
    /// for an empty chunk. Given even when the projection leaves `ordered_on` out.
    pub first_last: Vec<Option<(OrderedValue, OrderedValue)>>,
}

impl Lake {
    /// Iterates `snapshots` in step over `[request.start, request.end)` (SPEC §4).
    ///
    /// Guarantees:
    /// - Steps partition the range: each step is `[start, end)` and starts where the
    ///   previous yielded step ended or later (steps between them held no row). The chunks
    ///   of all steps together are exactly the rows a [`Lake::read`] of each snapshot over
    ///   the range returns, in the same order, plus the warm-up rows.
    /// - Steps follow [`Step`]: with [`Step::RowGroups`] and [`Step::Every`] a step is the
    ///   intersection of the range with one interval between consecutive cut points (the
    ///   first step of an iteration with no `start` thus starts at the first cut point at
    ///   or before the data); with [`Step::Rows`] steps are contiguous from `start`.
    /// - A step where every dataset's chunk is empty is skipped and takes no index; if no
    ///   step holds a row, the stream is empty (and no warm-up row is returned).
    /// - Warm-up: with a `start`, up to `n_prev` rows of each dataset from strictly before
    ///   `start` (the last ones, in order) are prepended to that dataset's chunk in step 0,
    ///   even when the dataset has no row of its own in step 0. They do not count towards
    ///   [`Step::Rows`]. Without a `start` there is nothing before the range to prepend.
    /// - Memory: each dataset keeps a cursor over its row groups (min/max-pruned by the
    ///   catalog) and decodes one row group at a time, only the projected columns (and
    ///   `ordered_on`); warm-up rows are read backwards from the row groups before `start`,
    ///   only as many as needed. What stays in memory is a few row groups per dataset plus
    ///   the step being yielded; only a step that must hold more (a long period, a large row
    ///   count, one ordered value repeated over many row groups) holds more.
    /// - The snapshots are immutable, so concurrent writers never change what is iterated.
    ///   Resolve them with [`Lake::snapshots`] to pin every dataset to one lake state.
    ///
    /// Errors (before the first step): no snapshot, datasets whose `ordered_on` columns are
    /// of different kinds ([`OrderedKind`], time unit included), bounds of another kind or
    /// `start >= end`, an `n_prev` list whose length is neither 0, 1 nor the number of
    /// snapshots, a step of 0 rows, a frequency step on a dataset that is not ordered on
    /// time, and a column missing from a dataset.
    pub async fn intersect(
        &self,
        snapshots: Vec<Snapshot>,
        request: IntersectRequest,
    ) -> Result<BoxStream<'static, Result<IntersectStep>>> {
        let first = snapshots
            .first()
            .ok_or_else(|| Error::InvalidInput("intersect needs at least one dataset".into()))?;
        let kind = first.kind;
        for s in &snapshots[1..] {
            if s.kind != kind {
                return Err(Error::InvalidInput(format!(
                    "cannot intersect datasets ordered on different types: {} is ordered on {:?} ({}), {} on {:?} ({}); intersect datasets whose ordered_on columns have the same type (and time unit)",
                    first.uri(),
                    first.ordered_on(),
                    ordered_type(first),
                    s.uri(),
                    s.ordered_on(),
                    ordered_type(s)
                )));
            }
        }
        for (what, bound) in [("start", &request.start), ("end", &request.end)] {
            if let Some(v) = bound
                && !fits(kind, v)
            {
                return Err(Error::InvalidInput(format!(
                    "{what} bound {v} is not a value of {}'s ordered_on column {:?} ({})",
                    first.uri(),
                    first.ordered_on(),
                    ordered_type(first)
                )));
            }
        }
        if let (Some(s), Some(e)) = (&request.start, &request.end)
            && s >= e
        {
            return Err(Error::InvalidInput(format!(
                "bad range: start {} must be before end {} (the range is [start, end))",
                s.display(kind),
                e.display(kind)
            )));
        }
        let n_prev: Vec<usize> = match request.n_prev.as_slice() {
            [] => vec![0; snapshots.len()],
            [n] => vec![*n; snapshots.len()],
            many if many.len() == snapshots.len() => many.to_vec(),
            many => {
                return Err(Error::InvalidInput(format!(
                    "n_prev has {} values for {} datasets: give one value for all, or one per dataset",
                    many.len(),
                    snapshots.len()
                )));
            }
        };
        match request.step {
            Step::Rows(0) => {
                return Err(Error::InvalidInput(
                    "a step must hold at least 1 row".into(),
                ));
            }
            Step::Every(freq) => freq.check_kind(first.ordered_on(), kind)?,
            Step::RowGroups | Step::Rows(_) => {}
        }
        let read = ReadRequest {
            start: request.start.clone(),
            end: request.end.clone(),
            columns: request.columns.clone(),
        };
        let mut cursors = Vec::with_capacity(snapshots.len());
        for (snapshot, n_prev) in snapshots.into_iter().zip(n_prev) {
            let out_schema = self.read_schema(&snapshot, &read)?;
            let pending = snapshot
                .row_groups(self, read.start.as_ref(), read.end.as_ref())
                .await?;
            cursors.push(Cursor::new(snapshot, out_schema, pending, n_prev)?);
        }
        let mut boundaries: Vec<OrderedValue> = Vec::new();
        if request.step == Step::RowGroups {
            boundaries = cursors
                .iter()
                .flat_map(|c| c.pending.iter().map(|rg| rg.min.clone()))
                .filter(|min| inside(min, read.start.as_ref(), read.end.as_ref()))
                .collect();
            boundaries.sort_unstable();
            boundaries.dedup();
        }
        let state = Intersection {
            lake: self.clone(),
            kind,
            step: request.step,
            start: read.start.clone(),
            end: read.end,
            boundaries,
            cursors,
            next_start: read.start,
            index: 0,
            done: false,
        };
        Ok(stream::try_unfold(state, |mut state| async move {
            Ok(state.next_step().await?.map(|step| (step, state)))
        })
        .boxed())
    }
}

fn ordered_type(snapshot: &Snapshot) -> String {
    snapshot
        .schema
        .field_with_name(snapshot.ordered_on())
        .map_or_else(|_| "?".into(), |f| f.data_type().to_string())
}

/// Whether `v` is a value of an `ordered_on` column of `kind`.
fn fits(kind: OrderedKind, v: &OrderedValue) -> bool {
    matches!(
        (kind, v),
        (OrderedKind::Int, OrderedValue::Int(_))
            | (OrderedKind::Float, OrderedValue::Float(_))
            | (OrderedKind::Str, OrderedValue::Str(_))
            | (OrderedKind::Timestamp(_), OrderedValue::Timestamp(_))
            | (OrderedKind::Date, OrderedValue::Date(_))
    )
}

/// `start < v < end` (a cut at `start` or `end` is already the range's own bound).
fn inside(v: &OrderedValue, start: Option<&OrderedValue>, end: Option<&OrderedValue>) -> bool {
    start.is_none_or(|s| v > s) && end.is_none_or(|e| v < e)
}

/// The larger of two lower bounds, `None` being unbounded.
fn max_lower(a: Option<OrderedValue>, b: Option<OrderedValue>) -> Option<OrderedValue> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The smaller of two upper bounds, `None` being unbounded.
fn min_upper(a: Option<OrderedValue>, b: Option<OrderedValue>) -> Option<OrderedValue> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The state of one iteration, owned by its stream.
struct Intersection {
    lake: Lake,
    kind: OrderedKind,
    step: Step,
    start: Option<OrderedValue>,
    end: Option<OrderedValue>,
    /// [`Step::RowGroups`]: the cut points inside the range, sorted and distinct.
    boundaries: Vec<OrderedValue>,
    cursors: Vec<Cursor>,
    /// Where the next step may start: every row before it has been yielded.
    next_start: Option<OrderedValue>,
    index: u64,
    done: bool,
}

impl Intersection {
    async fn next_step(&mut self) -> Result<Option<IntersectStep>> {
        if self.done {
            return Ok(None);
        }
        let store = self.lake.store.clone();
        let (start, end) = (self.start.clone(), self.end.clone());
        // Before step 0 (this runs once: the first call yields step 0 or ends the stream).
        if self.index == 0
            && let Some(s) = &start
        {
            try_join_all(
                self.cursors
                    .iter_mut()
                    .map(|c| c.load_warm_up(&self.lake, s)),
            )
            .await?;
        }
        let look_ahead = match self.step {
            Step::Rows(n) => n.saturating_add(1),
            _ => 1,
        };
        try_join_all(
            self.cursors
                .iter_mut()
                .map(|c| c.fill(look_ahead, &store, start.as_ref(), end.as_ref())),
        )
        .await?;
        // The smallest row not yet yielded: no row lies in [next_start, first).
        let Some(first) = self.cursors.iter().filter_map(|c| c.value_at(0)).min() else {
            self.done = true;
            return Ok(None);
        };
        let (lo, hi) = match self.step {
            Step::RowGroups => {
                let b = &self.boundaries;
                let at_or_before = b.partition_point(|v| v <= &first);
                let lo = at_or_before.checked_sub(1).map(|i| b[i].clone());
                let hi = b.get(at_or_before).cloned();
                (
                    max_lower(self.next_start.clone(), lo),
                    min_upper(hi, end.clone()),
                )
            }
            Step::Every(freq) => {
                let period = freq.period_of(&first, self.kind).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{} cannot be cut by frequency {freq}",
                        first.display(self.kind)
                    ))
                })?;
                let lo = freq.period_start(period, self.kind);
                let hi = period
                    .checked_add(1)
                    .and_then(|p| freq.period_start(p, self.kind));
                (
                    max_lower(self.next_start.clone(), lo),
                    min_upper(hi, end.clone()),
                )
            }
            Step::Rows(n) => {
                // Each dataset's (n+1)-th row from here is the first it cannot take.
                let limit = self.cursors.iter().filter_map(|c| c.value_at(n)).min();
                let hi = match limit {
                    Some(v) if v <= first => {
                        // More than n rows share `first`: they make a step of their own.
                        let mut next = None;
                        for c in &mut self.cursors {
                            let after = c.first_value_after(&first, &store, &start, &end).await?;
                            next = min_upper(next, after);
                        }
                        min_upper(next, end.clone())
                    }
                    Some(v) => Some(v),
                    None => end.clone(),
                };
                (self.next_start.clone(), hi)
            }
        };
        let mut chunks = try_join_all(
            self.cursors
                .iter_mut()
                .map(|c| c.take_before(hi.as_ref(), &store, &start, &end)),
        )
        .await?;
        if self.index == 0 {
            for (chunk, cursor) in chunks.iter_mut().zip(&mut self.cursors) {
                let mut pieces = std::mem::take(&mut cursor.warm_up);
                if !pieces.is_empty() {
                    pieces.push(chunk.clone());
                    *chunk = concat_batches(&cursor.decode_schema, &pieces)?;
                }
            }
        }
        let mut out = Vec::with_capacity(chunks.len());
        let mut first_last = Vec::with_capacity(chunks.len());
        for (chunk, cursor) in chunks.into_iter().zip(&self.cursors) {
            first_last.push(cursor.first_last(&chunk));
            out.push(chunk.project(&cursor.out_columns)?);
        }
        let step = IntersectStep {
            index: self.index,
            start: lo,
            end: hi.clone(),
            chunks: out,
            first_last,
        };
        self.index += 1;
        match hi {
            Some(h) => self.next_start = Some(h),
            None => self.done = true,
        }
        Ok(Some(step))
    }
}

/// One dataset's position in an iteration: the row groups not decoded yet, and the decoded
/// rows of the range not yielded yet.
struct Cursor {
    snapshot: Snapshot,
    /// Row groups that may hold rows of the range, in row order, not decoded yet.
    pending: VecDeque<RowGroupRef>,
    /// Decoded rows in the range, in order, not yielded yet (`decode_schema`).
    buffered: VecDeque<RecordBatch>,
    buffered_rows: usize,
    /// The projected columns plus `ordered_on`, which cutting needs.
    decode_schema: SchemaRef,
    /// Where `ordered_on` is in `decode_schema`.
    ordered_index: usize,
    /// The projection of `decode_schema` to the schema the caller asked for.
    out_columns: Vec<usize>,
    n_prev: usize,
    /// The warm-up rows, in order, until step 0 takes them.
    warm_up: Vec<RecordBatch>,
}

impl Cursor {
    fn new(
        snapshot: Snapshot,
        out_schema: SchemaRef,
        pending: Vec<RowGroupRef>,
        n_prev: usize,
    ) -> Result<Self> {
        let mut fields: Vec<_> = out_schema.fields().iter().cloned().collect();
        let ordered_index = match out_schema.index_of(snapshot.ordered_on()) {
            Ok(i) => i,
            Err(_) => {
                fields.push(Arc::new(
                    snapshot
                        .schema
                        .field_with_name(snapshot.ordered_on())?
                        .clone(),
                ));
                fields.len() - 1
            }
        };
        Ok(Self {
            out_columns: (0..out_schema.fields().len()).collect(),
            decode_schema: Arc::new(Schema::new(fields)),
            ordered_index,
            snapshot,
            pending: pending.into(),
            buffered: VecDeque::new(),
            buffered_rows: 0,
            n_prev,
            warm_up: Vec::new(),
        })
    }

    fn decode_columns(&self) -> Vec<String> {
        self.decode_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Decodes one row group, keeping the rows in `[start, end)`, in `decode_schema`.
    async fn decode(
        &self,
        store: &DataStore,
        rg: &RowGroupRef,
        start: Option<&OrderedValue>,
        end: Option<&OrderedValue>,
    ) -> Result<Vec<RecordBatch>> {
        // A row group entirely inside the range needs no row filter.
        let inside = start.is_none_or(|s| rg.min >= *s) && end.is_none_or(|e| rg.max < *e);
        let filter = (!inside).then(|| RangeFilter {
            column: self.snapshot.ordered_on().to_string(),
            start: start.cloned(),
            end: end.cloned(),
        });
        let (store, path, index) = (store.clone(), rg.path.clone(), rg.rg_index);
        let (columns, schema) = (self.decode_columns(), self.decode_schema.clone());
        // Decoding is CPU work: run it as its own task, so that the datasets of one step
        // decode in parallel and the caller's task stays responsive.
        tokio::spawn(async move {
            let batches = parquet_io::read_filtered(
                &store,
                &path,
                &[index],
                Some(columns.as_slice()),
                filter.as_ref(),
            )
            .await?;
            batches
                .iter()
                .filter(|b| b.num_rows() > 0)
                .map(|b| Ok(conform_read(b, &schema)?))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(Error::Config(format!(
                "decoding row group {index} of {} was cancelled: {e}",
                rg.path
            ))),
        })
    }

    /// Decodes the next row group into the buffer; `false` when none is left.
    async fn load_next(
        &mut self,
        store: &DataStore,
        start: Option<&OrderedValue>,
        end: Option<&OrderedValue>,
    ) -> Result<bool> {
        let Some(rg) = self.pending.pop_front() else {
            return Ok(false);
        };
        for batch in self.decode(store, &rg, start, end).await? {
            self.buffered_rows += batch.num_rows();
            self.buffered.push_back(batch);
        }
        Ok(true)
    }

    /// Decodes row groups until `rows` rows are buffered or none is left.
    async fn fill(
        &mut self,
        rows: usize,
        store: &DataStore,
        start: Option<&OrderedValue>,
        end: Option<&OrderedValue>,
    ) -> Result<()> {
        while self.buffered_rows < rows && self.load_next(store, start, end).await? {}
        Ok(())
    }

    fn ordered_value(&self, batch: &RecordBatch, row: usize) -> Option<OrderedValue> {
        OrderedValue::from_array(batch.column(self.ordered_index), row)
    }

    /// The ordered value of the `i`-th buffered row.
    fn value_at(&self, mut i: usize) -> Option<OrderedValue> {
        for batch in &self.buffered {
            if i < batch.num_rows() {
                return self.ordered_value(batch, i);
            }
            i -= batch.num_rows();
        }
        None
    }

    /// How many leading rows of `batch` (sorted) are `< bound`, or `<= bound` if `or_equal`.
    fn rows_below(&self, batch: &RecordBatch, bound: &OrderedValue, or_equal: bool) -> usize {
        let (mut lo, mut hi) = (0, batch.num_rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let below = self
                .ordered_value(batch, mid)
                .is_some_and(|v| if or_equal { v <= *bound } else { v < *bound });
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first ordered value greater than `v` among the rows not yielded yet, decoding
    /// further row groups while every buffered row equals `v`.
    async fn first_value_after(
        &mut self,
        v: &OrderedValue,
        store: &DataStore,
        start: &Option<OrderedValue>,
        end: &Option<OrderedValue>,
    ) -> Result<Option<OrderedValue>> {
        let mut checked = 0;
        loop {
            for batch in self.buffered.iter().skip(checked) {
                let at = self.rows_below(batch, v, true);
                if at < batch.num_rows() {
                    return Ok(self.ordered_value(batch, at));
                }
                checked += 1;
            }
            if !self.load_next(store, start.as_ref(), end.as_ref()).await? {
                return Ok(None);
            }
        }
    }

    /// Removes and returns the rows `< hi` (all rows when `hi` is `None`), decoding the row
    /// groups that can hold some.
    async fn take_before(
        &mut self,
        hi: Option<&OrderedValue>,
        store: &DataStore,
        start: &Option<OrderedValue>,
        end: &Option<OrderedValue>,
    ) -> Result<RecordBatch> {
        // Row groups are in row order, so their mins are sorted: once the next one starts
        // at or after `hi`, no later one holds a row before it.
        while self
            .pending
            .front()
            .is_some_and(|rg| hi.is_none_or(|h| rg.min < *h))
        {
            self.load_next(store, start.as_ref(), end.as_ref()).await?;
        }
        let mut taken = Vec::new();
        while let Some(batch) = self.buffered.pop_front() {
            let n = hi.map_or(batch.num_rows(), |h| self.rows_below(&batch, h, false));
            self.buffered_rows -= n;
            if n == batch.num_rows() {
                taken.push(batch);
            } else {
                if n > 0 {
                    taken.push(batch.slice(0, n));
                }
                self.buffered
                    .push_front(batch.slice(n, batch.num_rows() - n));
                break;
            }
        }
        Ok(match taken.len() {
            0 => RecordBatch::new_empty(self.decode_schema.clone()),
            1 => taken.swap_remove(0),
            _ => concat_batches(&self.decode_schema, &taken)?,
        })
    }

    /// Reads the last `n_prev` rows before `start` into `warm_up`, walking the row groups
    /// before `start` backwards and decoding only as many as it takes.
    async fn load_warm_up(&mut self, lake: &Lake, start: &OrderedValue) -> Result<()> {
        if self.n_prev == 0 {
            return Ok(());
        }
        let before = self.snapshot.row_groups(lake, None, Some(start)).await?;
        let mut newest_first = Vec::new();
        let mut rows = 0;
        for rg in before.iter().rev() {
            if rows >= self.n_prev {
                break;
            }
            let batches = self.decode(&lake.store, rg, None, Some(start)).await?;
            for batch in batches.into_iter().rev() {
                let keep = batch.num_rows().min(self.n_prev - rows);
                rows += keep;
                newest_first.push(if keep == batch.num_rows() {
                    batch
                } else {
                    // Copy the rows kept, so that the rest of the row group is freed now.
                    let tail = batch.slice(batch.num_rows() - keep, keep);
                    concat_batches(&self.decode_schema, [&tail])?
                });
                if rows >= self.n_prev {
                    break;
                }
            }
        }
        newest_first.reverse();
        self.warm_up = newest_first;
        Ok(())
    }

    fn first_last(&self, chunk: &RecordBatch) -> Option<(OrderedValue, OrderedValue)> {
        let n = chunk.num_rows();
        if n == 0 {
            return None;
        }
        Some((
            self.ordered_value(chunk, 0)?,
            self.ordered_value(chunk, n - 1)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps() {
        assert_eq!(Step::parse("3").ok(), Some(Step::Rows(3)));
        assert_eq!(
            Step::parse("1h").ok(),
            Some(Step::Every(Frequency::parse("1h").expect("valid")))
        );
        assert!(Step::parse("0").is_err());
        assert!(Step::parse("3x").is_err());
        assert!(Step::parse("").is_err());
    }

    #[test]
    fn bounds_treat_none_as_unbounded() {
        let v = OrderedValue::Int;
        assert_eq!(max_lower(None, Some(v(3))), Some(v(3)));
        assert_eq!(max_lower(Some(v(4)), Some(v(3))), Some(v(4)));
        assert_eq!(min_upper(None, Some(v(3))), Some(v(3)));
        assert_eq!(min_upper(Some(v(4)), Some(v(3))), Some(v(3)));
        assert_eq!(min_upper(None, None), None);
        assert!(inside(&v(3), Some(&v(2)), None));
        assert!(!inside(&v(2), Some(&v(2)), None));
        assert!(!inside(&v(5), None, Some(&v(5))));
    }
}
