//! Planning and executing one mutation of a snapshot (SPEC §3): which row groups it replaces
//! and the row groups it writes instead. Every mutation comes down to one *edit*: a
//! contiguous run `[a, b)` of the snapshot's row groups replaced by a sorted batch of rows,
//! which is cut at the target; then, under a row-count target, the runs of row groups that
//! `coalesce::plan` picks (off-target neighbours of the edit, and the trailing row groups
//! by the dataset's rule) are merged and cut again.
//!
//! An edit always covers every row group that shares a boundary value with it. So two row
//! groups holding the same `ordered_on` value are always written by the same mutation, in
//! one file, and the catalog's order (min, max, file, index) is the row order.

use crate::coalesce::{self, AfterEdit, Coalescing};
use crate::durable::DataStore;
use crate::error::{Result, StoreError};
use crate::merge::{self, bounds, cut_row_groups, dedup_keep_last, key_columns, merge_sorted};
use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch, not};
use arrow::datatypes::SchemaRef;
use tarn_core::{OrderedKind, OrderedValue, RowGroupTarget, WriteOptions};

/// A row group of the snapshot being mutated, in row order.
#[derive(Debug, Clone)]
pub struct RowGroupRef {
    pub id: i64,
    pub path: String,
    pub rg_index: u32,
    pub rows: u64,
    /// Compressed bytes of the row group.
    pub bytes: u64,
    pub min: OrderedValue,
    pub max: OrderedValue,
    /// Size of the file, and its number of row groups when the catalog knows it.
    pub file_bytes: u64,
    pub file_row_groups: Option<u32>,
}

/// What a mutation needs to know about its dataset.
#[derive(Debug, Clone)]
pub struct DatasetLayout {
    pub schema: SchemaRef,
    pub ordered_on: String,
    pub kind: OrderedKind,
    pub options: WriteOptions,
}

#[derive(Debug, Clone)]
pub enum Mutation {
    /// Merge rows into their ordered position (already aligned to the dataset schema).
    Write(RecordBatch),
    /// Replace every row.
    Overwrite(RecordBatch),
    /// Remove the rows with `start <= ordered_on < end`.
    DeleteRange {
        start: OrderedValue,
        end: OrderedValue,
    },
    /// Rewrite to the target without changing rows.
    Compact,
}

#[derive(Debug, Clone, Default)]
pub struct MutationOutput {
    /// Snapshot row groups the new version no longer holds.
    pub removed: Vec<i64>,
    /// New row groups, each to become one row group of the mutation's file.
    pub new_row_groups: Vec<RecordBatch>,
    /// Rows of existing row groups that were decoded and written again.
    pub rows_rewritten: u64,
    /// Rows the mutation brought in (after in-input deduplication).
    pub rows_in: u64,
}

impl MutationOutput {
    pub fn is_noop(&self) -> bool {
        self.removed.is_empty() && self.new_row_groups.is_empty()
    }
}

/// Executes `mutation` on the snapshot whose row groups are `existing` (in row order).
pub async fn execute(
    store: &DataStore,
    existing: &[RowGroupRef],
    layout: &DatasetLayout,
    mutation: Mutation,
) -> Result<MutationOutput> {
    let ctx = Ctx {
        store,
        existing,
        layout,
    };
    match mutation {
        Mutation::Write(batch) => ctx.write(batch).await,
        Mutation::Overwrite(batch) => {
            let (rows, rows_in) = ctx.prepare_input(batch)?;
            let edit = Edit {
                a: 0,
                b: existing.len(),
                rows: Some(rows),
                rows_read: 0,
            };
            let mut out = ctx.finish(edit).await?;
            out.rows_in = rows_in;
            Ok(out)
        }
        Mutation::DeleteRange { start, end } => ctx.delete_range(&start, &end).await,
        Mutation::Compact => ctx.compact().await,
    }
}

struct Ctx<'a> {
    store: &'a DataStore,
    existing: &'a [RowGroupRef],
    layout: &'a DatasetLayout,
}

/// Replace `existing[a..b]` by `rows` (sorted), having decoded `rows_read` existing rows.
struct Edit {
    a: usize,
    b: usize,
    rows: Option<RecordBatch>,
    rows_read: u64,
}

/// One entry of the row-group sequence after an edit.
enum Slot {
    Kept(usize),
    New(RecordBatch),
}

impl Ctx<'_> {
    fn ordered_on(&self) -> &str {
        &self.layout.ordered_on
    }

    /// Reads the given snapshot row groups, in order, as one batch of the dataset's schema.
    async fn read(&self, indices: impl IntoIterator<Item = usize>) -> Result<RecordBatch> {
        let rgs: Vec<&RowGroupRef> = indices.into_iter().map(|i| &self.existing[i]).collect();
        crate::stream::read_rows(self.store, &rgs, &self.layout.schema).await
    }

    fn key(&self) -> Result<Option<Vec<String>>> {
        key_columns(
            &self.layout.schema,
            self.ordered_on(),
            &self.layout.options.duplicates_on,
        )
    }

    /// Checks, sorts and de-duplicates an input batch. Returns it and its row count.
    fn prepare_input(&self, batch: RecordBatch) -> Result<(RecordBatch, u64)> {
        merge::check_ordered_column(&batch, self.ordered_on())?;
        let batch = merge::normalize_ordered_column(batch, self.ordered_on())?;
        if let RowGroupTarget::Frequency(f) = &self.layout.options.row_group_target {
            f.check_kind(self.ordered_on(), self.layout.kind)?;
        }
        let mut sorted = merge::sort_stable(&batch, self.ordered_on())?;
        if let Some(key) = self.key()? {
            sorted = dedup_keep_last(&sorted, self.ordered_on(), &key, None)?;
        }
        let n = sorted.num_rows() as u64;
        Ok((sorted, n))
    }

    /// Widens `[a, b)` so that no row group outside it shares a boundary value with it.
    fn close_over_equal_bounds(&self, mut a: usize, mut b: usize) -> (usize, usize) {
        let rgs = self.existing;
        if a >= b {
            return (a, b);
        }
        while a > 0 && rgs[a - 1].max == rgs[a].min {
            a -= 1;
        }
        while b < rgs.len() && rgs[b].min == rgs[b - 1].max {
            b += 1;
        }
        (a, b)
    }

    async fn write(&self, batch: RecordBatch) -> Result<MutationOutput> {
        let (sorted, rows_in) = self.prepare_input(batch)?;
        if rows_in == 0 {
            return Ok(MutationOutput::default());
        }
        let (new_min, new_max) = bounds(&sorted, self.ordered_on())?;
        let overlaps = |rg: &RowGroupRef| -> Result<bool> {
            Ok(match &self.layout.options.row_group_target {
                RowGroupTarget::Rows(_) => rg.max >= new_min && rg.min <= new_max,
                // With a frequency target a period lives in one row group: touch the whole
                // periods the new rows fall in.
                RowGroupTarget::Frequency(f) => {
                    let kind = self.layout.kind;
                    let period = |v: &OrderedValue| {
                        f.period_of(v, kind).ok_or_else(|| {
                            StoreError::InvalidInput(format!("{v} cannot be cut by {f}"))
                        })
                    };
                    period(&rg.max)? >= period(&new_min)? && period(&rg.min)? <= period(&new_max)?
                }
            })
        };
        let mut first = None;
        let mut last = None;
        for (i, rg) in self.existing.iter().enumerate() {
            if overlaps(rg)? {
                first.get_or_insert(i);
                last = Some(i);
            }
        }
        let edit = match (first, last) {
            (Some(a), Some(l)) => {
                let (a, b) = self.close_over_equal_bounds(a, l + 1);
                let old = self.read(a..b).await?;
                let rows_read = old.num_rows() as u64;
                let mut merged = merge_sorted(&old, &sorted, self.ordered_on())?;
                if let Some(key) = self.key()? {
                    merged = dedup_keep_last(
                        &merged,
                        self.ordered_on(),
                        &key,
                        Some((&new_min, &new_max)),
                    )?;
                }
                Edit {
                    a,
                    b,
                    rows: Some(merged),
                    rows_read,
                }
            }
            _ => {
                let at = self.existing.partition_point(|rg| rg.min <= new_max);
                Edit {
                    a: at,
                    b: at,
                    rows: Some(sorted),
                    rows_read: 0,
                }
            }
        };
        let mut out = self.finish(edit).await?;
        out.rows_in = rows_in;
        Ok(out)
    }

    async fn delete_range(
        &self,
        start: &OrderedValue,
        end: &OrderedValue,
    ) -> Result<MutationOutput> {
        let touched: Vec<usize> = (0..self.existing.len())
            .filter(|&i| {
                let rg = &self.existing[i];
                rg.max >= *start && rg.min < *end
            })
            .collect();
        let (Some(&first), Some(&last)) = (touched.first(), touched.last()) else {
            return Ok(MutationOutput::default());
        };
        let (a, b) = self.close_over_equal_bounds(first, last + 1);
        let covered = |rg: &RowGroupRef| rg.min >= *start && rg.max < *end;
        let to_read: Vec<usize> = (a..b).filter(|&i| !covered(&self.existing[i])).collect();
        let mut deleted = to_read.len() < b - a;
        let rows = if to_read.is_empty() {
            None
        } else {
            let old = self.read(to_read.iter().copied()).await?;
            let col = old
                .column_by_name(self.ordered_on())
                .ok_or_else(|| StoreError::InvalidInput("ordered_on column missing".into()))?
                .clone();
            let inside = merge::in_half_open_range(&col, Some(start), Some(end))?
                .unwrap_or_else(|| BooleanArray::from(vec![false; col.len()]));
            deleted |= inside.true_count() > 0;
            Some(filter_record_batch(&old, &not(&inside)?)?)
        };
        // Row groups overlap the range but no row lies in it: nothing to change, no version.
        if !deleted {
            return Ok(MutationOutput::default());
        }
        let rows_read = to_read.iter().map(|&i| self.existing[i].rows).sum();
        self.finish(Edit {
            a,
            b,
            rows,
            rows_read,
        })
        .await
    }

    fn on_target(&self) -> Result<bool> {
        let rgs = self.existing;
        Ok(match &self.layout.options.row_group_target {
            RowGroupTarget::Rows(n) => rgs.iter().enumerate().all(|(i, rg)| {
                if i + 1 == rgs.len() {
                    rg.rows <= *n
                } else {
                    rg.rows == *n
                }
            }),
            RowGroupTarget::Frequency(f) => {
                let kind = self.layout.kind;
                let mut previous = None;
                for rg in rgs {
                    let (lo, hi) = (f.period_of(&rg.min, kind), f.period_of(&rg.max, kind));
                    if lo.is_none() || lo != hi || (previous.is_some() && previous >= lo) {
                        return Ok(false);
                    }
                    previous = hi;
                }
                true
            }
        })
    }

    async fn compact(&self) -> Result<MutationOutput> {
        if self.existing.is_empty() || self.on_target()? {
            return Ok(MutationOutput::default());
        }
        let all = self.read(0..self.existing.len()).await?;
        let rows_read = all.num_rows() as u64;
        self.finish(Edit {
            a: 0,
            b: self.existing.len(),
            rows: Some(all),
            rows_read,
        })
        .await
    }

    fn rows_of(&self, slot: &Slot) -> u64 {
        match slot {
            Slot::Kept(i) => self.existing[*i].rows,
            Slot::New(b) => b.num_rows() as u64,
        }
    }

    /// The first and last `ordered_on` of a row group.
    fn bounds_of(&self, slot: &Slot) -> Result<(OrderedValue, OrderedValue)> {
        match slot {
            Slot::Kept(i) => Ok((self.existing[*i].min.clone(), self.existing[*i].max.clone())),
            Slot::New(b) => bounds(b, &self.layout.ordered_on),
        }
    }

    /// Reads the kept row groups `kept` (emptying it) for a merge: they leave the version
    /// and their rows count as rewritten.
    async fn take(
        &self,
        kept: &mut Vec<usize>,
        removed: &mut Vec<i64>,
        rows_rewritten: &mut u64,
    ) -> Result<Option<RecordBatch>> {
        if kept.is_empty() {
            return Ok(None);
        }
        let batch = self.read(kept.iter().copied()).await?;
        *rows_rewritten += batch.num_rows() as u64;
        removed.extend(kept.drain(..).map(|i| self.existing[i].id));
        Ok(Some(batch))
    }

    /// Applies an edit, then merges the runs of row groups that `coalesce::plan` picks.
    async fn finish(&self, edit: Edit) -> Result<MutationOutput> {
        let layout = self.layout;
        let target = &layout.options.row_group_target;
        let new_groups = match &edit.rows {
            Some(rows) => cut_row_groups(rows, &layout.ordered_on, layout.kind, target)?,
            None => Vec::new(),
        };
        let mut removed: Vec<i64> = self.existing[edit.a..edit.b]
            .iter()
            .map(|rg| rg.id)
            .collect();
        let mut rows_rewritten = edit.rows_read;
        let written = edit.a..edit.a + new_groups.len();
        let mut slots: Vec<Slot> = (0..edit.a).map(Slot::Kept).collect();
        slots.extend(new_groups.into_iter().map(Slot::New));
        slots.extend((edit.b..self.existing.len()).map(Slot::Kept));

        if let RowGroupTarget::Rows(n) = target {
            let rows: Vec<u64> = slots.iter().map(|s| self.rows_of(s)).collect();
            let mut tied = Vec::with_capacity(slots.len().saturating_sub(1));
            for pair in slots.windows(2) {
                tied.push(match pair {
                    [Slot::Kept(i), Slot::Kept(j)] => {
                        self.existing[*i].max == self.existing[*j].min
                    }
                    [x, y] => self.bounds_of(x)?.1 == self.bounds_of(y)?.0,
                    _ => false,
                });
            }
            let runs = coalesce::plan(
                AfterEdit {
                    rows: &rows,
                    tied: &tied,
                    written,
                },
                *n,
                Coalescing::of(&layout.options),
            );
            // From the last run back, so that the indices of the earlier ones stay valid.
            for run in runs.into_iter().rev() {
                let start = run.start;
                let mut parts = Vec::new();
                let mut kept = Vec::new();
                let taken: Vec<Slot> = slots.drain(run).collect();
                for slot in taken {
                    match slot {
                        Slot::Kept(i) => kept.push(i),
                        Slot::New(b) => {
                            let old = self.take(&mut kept, &mut removed, &mut rows_rewritten);
                            parts.extend(old.await?);
                            parts.push(b);
                        }
                    }
                }
                let old = self.take(&mut kept, &mut removed, &mut rows_rewritten);
                parts.extend(old.await?);
                let merged = concat_batches(&layout.schema, &parts)?;
                let cut = cut_row_groups(&merged, &layout.ordered_on, layout.kind, target)?;
                slots.splice(start..start, cut.into_iter().map(Slot::New));
            }
        }
        let new_row_groups = slots
            .into_iter()
            .filter_map(|s| match s {
                Slot::New(b) if b.num_rows() > 0 => Some(b),
                _ => None,
            })
            .collect();
        Ok(MutationOutput {
            removed,
            new_row_groups,
            rows_rewritten,
            rows_in: 0,
        })
    }
}
