//! The pieces of a streamed write (docs/design/0008-streaming-writes.md): rows arrive
//! sorted, batch after batch, and leave as row groups cut at the target, with duplicates
//! dropped over whole runs of equal `ordered_on` values even when a run spans batches.

use crate::durable::DataStore;
use crate::error::{Result, StoreError};
use crate::merge::{self, cut_row_groups, dedup_keep_last};
use crate::mutation::RowGroupRef;
use crate::parquet_io::read_row_groups;
use crate::schema::conform_read;
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use std::cmp::Ordering;
use tarn_core::{OrderedKind, OrderedValue, RowGroupTarget};

/// Decodes `rgs` (row groups of one snapshot, in row order) as one batch of `schema`;
/// consecutive row groups of one file are read with one request.
pub async fn read_rows(
    store: &DataStore,
    rgs: &[&RowGroupRef],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < rgs.len() {
        let path = &rgs[start].path;
        let end = start + rgs[start..].iter().take_while(|r| &r.path == path).count();
        let indices: Vec<u32> = rgs[start..end].iter().map(|r| r.rg_index).collect();
        for batch in read_row_groups(store, path, &indices, None).await? {
            batches.push(conform_read(&batch, schema)?);
        }
        start = end;
    }
    Ok(concat_batches(schema, &batches)?)
}

/// Cuts a sorted stream of rows into row groups at the target: N rows each, or one per
/// period. Holds only the rows of the row group being filled.
#[derive(Debug)]
pub struct RowGroupCutter {
    schema: SchemaRef,
    ordered_on: String,
    kind: OrderedKind,
    target: RowGroupTarget,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl RowGroupCutter {
    pub fn new(
        schema: SchemaRef,
        ordered_on: &str,
        kind: OrderedKind,
        target: RowGroupTarget,
    ) -> Self {
        Self {
            schema,
            ordered_on: ordered_on.to_string(),
            kind,
            target,
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    /// Takes the next sorted rows; returns the row groups they complete.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        match self.target {
            RowGroupTarget::Rows(n) => {
                let n = n.max(1) as usize;
                let mut out = Vec::new();
                let mut batch = batch;
                while self.pending_rows + batch.num_rows() >= n {
                    let take = n - self.pending_rows;
                    self.pending.push(batch.slice(0, take));
                    batch = batch.slice(take, batch.num_rows() - take);
                    out.push(self.take_pending()?);
                }
                if batch.num_rows() > 0 {
                    self.pending_rows += batch.num_rows();
                    self.pending.push(batch);
                }
                Ok(out)
            }
            RowGroupTarget::Frequency(f) => {
                let period = |v: &OrderedValue| {
                    f.period_of(v, self.kind).ok_or_else(|| {
                        StoreError::InvalidInput(format!("{v} cannot be cut by {f}"))
                    })
                };
                let (first, last) = merge::bounds(&batch, &self.ordered_on)?;
                let current = match self.pending.last() {
                    Some(p) => Some(period(&merge::bounds(p, &self.ordered_on)?.1)?),
                    None => None,
                };
                // The whole batch continues the period being filled.
                let (pf, pl) = (period(&first)?, period(&last)?);
                if current.is_none_or(|c| c == pf) && pf == pl {
                    self.pending_rows += batch.num_rows();
                    self.pending.push(batch);
                    return Ok(Vec::new());
                }
                let mut rows = self.take_pending()?;
                if rows.num_rows() == 0 {
                    rows = batch;
                } else {
                    rows = concat_batches(&self.schema, [&rows, &batch])?;
                }
                let mut groups = cut_row_groups(&rows, &self.ordered_on, self.kind, &self.target)?;
                // The last period may continue in the next batch.
                if let Some(last) = groups.pop() {
                    self.pending_rows = last.num_rows();
                    self.pending.push(last);
                }
                Ok(groups)
            }
        }
    }

    /// The last, possibly partial, row group.
    pub fn finish(mut self) -> Result<Option<RecordBatch>> {
        let rows = self.take_pending()?;
        Ok((rows.num_rows() > 0).then_some(rows))
    }

    fn take_pending(&mut self) -> Result<RecordBatch> {
        let rows = match self.pending.len() {
            1 => self
                .pending
                .pop()
                .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())),
            _ => concat_batches(&self.schema, &self.pending)?,
        };
        self.pending.clear();
        self.pending_rows = 0;
        Ok(rows)
    }
}

/// Drops duplicates (SPEC §3.4: of rows equal on the key the last one written survives) from
/// a sorted stream of new rows. Duplicates can only sit in runs of equal `ordered_on`, so the
/// run at the end of each batch is held back until the next batch shows where it ends.
#[derive(Debug)]
pub struct StreamDedup {
    schema: SchemaRef,
    ordered_on: String,
    key: Vec<String>,
    held: Option<RecordBatch>,
}

impl StreamDedup {
    pub fn new(schema: SchemaRef, ordered_on: &str, key: Vec<String>) -> Self {
        Self {
            schema,
            ordered_on: ordered_on.to_string(),
            key,
            held: None,
        }
    }

    /// Takes the next sorted rows; returns the rows that are final.
    pub fn push(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = match self.held.take() {
            Some(held) => concat_batches(&self.schema, [&held, &batch])?,
            None => batch,
        };
        let n = rows.num_rows();
        if n == 0 {
            return Ok(rows);
        }
        let col = rows
            .column_by_name(&self.ordered_on)
            .ok_or_else(|| StoreError::InvalidInput("ordered_on column missing".into()))?;
        let cmp = arrow::array::make_comparator(col.as_ref(), col.as_ref(), Default::default())?;
        let run_start = (0..n)
            .rev()
            .take_while(|&i| cmp(i, n - 1) == Ordering::Equal)
            .last()
            .unwrap_or(n - 1);
        self.held = Some(rows.slice(run_start, n - run_start));
        dedup_keep_last(&rows.slice(0, run_start), &self.ordered_on, &self.key, None)
    }

    /// The rows held back so far, as they came (for a write that stops streaming).
    pub fn held_rows(self) -> Option<RecordBatch> {
        self.held
    }

    /// The rows held back at the end of the input, de-duplicated.
    pub fn finish(self) -> Result<Option<RecordBatch>> {
        match self.held {
            Some(rows) => Ok(Some(dedup_keep_last(
                &rows,
                &self.ordered_on,
                &self.key,
                None,
            )?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use std::sync::Arc;

    fn batch(k: &[i64], v: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("k", Arc::new(Int64Array::from(k.to_vec())) as ArrayRef),
            ("v", Arc::new(Int64Array::from(v.to_vec())) as ArrayRef),
        ])
        .expect("batch")
    }

    fn col(b: &RecordBatch, c: &str) -> Vec<i64> {
        b.column_by_name(c)
            .expect("col")
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    /// Cutting a stream batch by batch gives the row groups that cutting it whole gives.
    #[test]
    fn cutter_matches_cutting_whole() {
        let keys: Vec<i64> = (0..97).map(|i| i / 3).collect();
        let whole = batch(&keys, &(0..97).collect::<Vec<_>>());
        for target in [
            RowGroupTarget::Rows(10),
            RowGroupTarget::Rows(1),
            RowGroupTarget::Rows(200),
        ] {
            let expect = cut_row_groups(&whole, "k", OrderedKind::Int, &target).expect("cut");
            for step in [1, 7, 10, 33, 97] {
                let mut cutter = RowGroupCutter::new(whole.schema(), "k", OrderedKind::Int, target);
                let mut got = Vec::new();
                let mut at = 0;
                while at < 97 {
                    let n = step.min(97 - at);
                    got.extend(cutter.push(whole.slice(at, n)).expect("push"));
                    at += n;
                }
                got.extend(cutter.finish().expect("finish"));
                assert_eq!(got.len(), expect.len(), "{target} step {step}");
                for (g, e) in got.iter().zip(&expect) {
                    assert_eq!(col(g, "v"), col(e, "v"), "{target} step {step}");
                }
            }
        }
    }

    /// De-duplicating a stream batch by batch keeps what de-duplicating it whole keeps, also
    /// when a run of equal values spans several batches.
    #[test]
    fn dedup_across_batches_matches_whole() {
        let keys: Vec<i64> = vec![1, 1, 1, 2, 2, 2, 2, 2, 3, 4, 4, 5];
        let vals: Vec<i64> = vec![9, 8, 9, 1, 1, 2, 1, 3, 0, 4, 4, 5];
        let whole = batch(&keys, &vals);
        for key in [
            vec!["k".to_string()],
            vec!["k".to_string(), "v".to_string()],
        ] {
            let expect = dedup_keep_last(&whole, "k", &key, None).expect("dedup");
            for step in 1..=12 {
                let mut d = StreamDedup::new(whole.schema(), "k", key.clone());
                let mut parts = Vec::new();
                let mut at = 0;
                while at < 12 {
                    let n = step.min(12 - at);
                    parts.push(d.push(whole.slice(at, n)).expect("push"));
                    at += n;
                }
                parts.extend(d.finish().expect("finish"));
                let got = concat_batches(&whole.schema(), &parts).expect("concat");
                assert_eq!(col(&got, "k"), col(&expect, "k"), "{key:?} step {step}");
                assert_eq!(col(&got, "v"), col(&expect, "v"), "{key:?} step {step}");
            }
        }
    }
}
