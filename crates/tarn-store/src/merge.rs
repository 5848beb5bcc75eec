//! The in-memory steps of the ordered merge (SPEC §3.2–3.6), on Arrow record batches:
//! checking and stably sorting by `ordered_on`, merging sorted runs with existing rows first
//! on ties, dropping duplicates (the last written wins), and cutting rows into row groups.

use crate::error::{Result, StoreError};
use arrow::array::make_comparator;
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use std::cmp::Ordering;
use std::collections::HashSet;
use tarn_core::{DuplicatesOn, OrderedKind, OrderedValue, RowGroupTarget};

use arrow::compute::kernels::cmp;

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| StoreError::InvalidInput(format!("column {name:?} is missing")))
}

/// Rejects nulls and NaNs in `ordered_on`: they have no place in the order.
pub fn check_ordered_column(batch: &RecordBatch, ordered_on: &str) -> Result<()> {
    let col = column(batch, ordered_on)?;
    if col.null_count() > 0 {
        return Err(StoreError::InvalidInput(format!(
            "{} of {} rows have a null in ordered_on column {ordered_on:?}; the whole write was rejected",
            col.null_count(),
            col.len()
        )));
    }
    let nan = match col.data_type() {
        arrow::datatypes::DataType::Float32 | arrow::datatypes::DataType::Float64 => {
            let as64 = arrow::compute::cast(col, &arrow::datatypes::DataType::Float64)?;
            as64.as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .map_or(0, |a| a.values().iter().filter(|v| v.is_nan()).count())
        }
        _ => 0,
    };
    if nan > 0 {
        return Err(StoreError::InvalidInput(format!(
            "{nan} rows have NaN in ordered_on column {ordered_on:?}; NaN has no place in the order"
        )));
    }
    if let Some(u) = col.as_any().downcast_ref::<arrow::array::UInt64Array>() {
        let too_large = u.values().iter().filter(|v| **v > i64::MAX as u64).count();
        if too_large > 0 {
            return Err(StoreError::InvalidInput(format!(
                "{too_large} rows of ordered_on column {ordered_on:?} exceed {}, the largest value tarn can order on; \
                 store the column as int64 or shift its values",
                i64::MAX
            )));
        }
    }
    Ok(())
}

/// Makes equal values of `ordered_on` identical: `-0.0` becomes `0.0`, since the catalog
/// (like SQL) holds them equal while a total order would not.
pub fn normalize_ordered_column(batch: RecordBatch, ordered_on: &str) -> Result<RecordBatch> {
    use arrow::array::{Float32Array, Float64Array};
    let index = batch.schema().index_of(ordered_on)?;
    let col = batch.column(index);
    let normalized: ArrayRef = if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
        if !a.values().iter().any(|v| *v == 0.0 && v.is_sign_negative()) {
            return Ok(batch);
        }
        std::sync::Arc::new(arrow::compute::kernels::arity::unary::<
            _,
            _,
            arrow::datatypes::Float64Type,
        >(a, |v| v + 0.0))
    } else if let Some(a) = col.as_any().downcast_ref::<Float32Array>() {
        if !a.values().iter().any(|v| *v == 0.0 && v.is_sign_negative()) {
            return Ok(batch);
        }
        std::sync::Arc::new(arrow::compute::kernels::arity::unary::<
            _,
            _,
            arrow::datatypes::Float32Type,
        >(a, |v| v + 0.0))
    } else {
        return Ok(batch);
    };
    let mut columns = batch.columns().to_vec();
    columns[index] = normalized;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// True when `ordered_on` never decreases along the batch.
pub fn is_sorted_on(batch: &RecordBatch, ordered_on: &str) -> Result<bool> {
    is_sorted(column(batch, ordered_on)?)
}

fn is_sorted(col: &ArrayRef) -> Result<bool> {
    if col.len() < 2 {
        return Ok(true);
    }
    let cmp = make_comparator(col.as_ref(), col.as_ref(), Default::default())?;
    Ok((1..col.len()).all(|i| cmp(i - 1, i) != Ordering::Greater))
}

/// Sorts rows by `ordered_on`, keeping the input order among equal values.
pub fn sort_stable(batch: &RecordBatch, ordered_on: &str) -> Result<RecordBatch> {
    let col = column(batch, ordered_on)?;
    if is_sorted(col)? {
        return Ok(batch.clone());
    }
    let positions: ArrayRef =
        std::sync::Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32));
    let indices = lexsort_to_indices(
        &[
            SortColumn {
                values: col.clone(),
                options: None,
            },
            SortColumn {
                values: positions,
                options: None,
            },
        ],
        None,
    )?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Merges two batches sorted on `ordered_on`; on equal values rows of `old` come first.
pub fn merge_sorted(old: &RecordBatch, new: &RecordBatch, ordered_on: &str) -> Result<RecordBatch> {
    if old.num_rows() == 0 {
        return Ok(new.clone());
    }
    if new.num_rows() == 0 {
        return Ok(old.clone());
    }
    let a = column(old, ordered_on)?;
    let b = column(new, ordered_on)?;
    let cmp = make_comparator(a.as_ref(), b.as_ref(), Default::default())?;
    let (n, m) = (a.len(), b.len());
    // Fast paths: disjoint runs concatenate.
    if cmp(n - 1, 0) != Ordering::Greater {
        return Ok(concat_batches(&old.schema(), [old, new])?);
    }
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if cmp(i, j) != Ordering::Greater {
            order.push((0, i));
            i += 1;
        } else {
            order.push((1, j));
            j += 1;
        }
    }
    order.extend((i..n).map(|i| (0, i)));
    order.extend((j..m).map(|j| (1, j)));
    let columns = (0..old.num_columns())
        .map(|c| {
            arrow::compute::interleave(&[old.column(c).as_ref(), new.column(c).as_ref()], &order)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(old.schema(), columns)?)
}

/// The columns that make the deduplication key, `ordered_on` first.
pub fn key_columns(
    schema: &SchemaRef,
    ordered_on: &str,
    duplicates_on: &DuplicatesOn,
) -> Result<Option<Vec<String>>> {
    Ok(match duplicates_on {
        DuplicatesOn::None => None,
        DuplicatesOn::All => Some(schema.fields().iter().map(|f| f.name().clone()).collect()),
        DuplicatesOn::Columns(cols) => {
            let mut key = vec![ordered_on.to_string()];
            for c in cols {
                if schema.index_of(c).is_err() {
                    return Err(StoreError::InvalidInput(format!(
                        "duplicates_on column {c:?} is not in the dataset (columns: {})",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                if c != ordered_on && !key.contains(c) {
                    key.push(c.clone());
                }
            }
            Some(key)
        }
    })
}

/// Drops every row that has a later row equal on `key` (keeps the last occurrence), among
/// the rows whose `ordered_on` lies in `scope` (`[lo, hi]`, or all rows when `None`).
///
/// `batch` must be sorted on `ordered_on`, which is part of the key: duplicates can then
/// only sit in runs of equal `ordered_on`, so only those runs are compared, and the rows in
/// scope are one contiguous slice.
pub fn dedup_keep_last(
    batch: &RecordBatch,
    ordered_on: &str,
    key: &[String],
    scope: Option<(&OrderedValue, &OrderedValue)>,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    if n < 2 {
        return Ok(batch.clone());
    }
    let col = column(batch, ordered_on)?.clone();
    let (start, end) = match scope {
        None => (0, n),
        Some((lo, hi)) => {
            let mask = in_closed_range(&col, lo, hi)?;
            let first = (0..n).find(|&i| mask.value(i));
            match first {
                None => return Ok(batch.clone()),
                Some(first) => (
                    first,
                    first + (first..n).take_while(|&i| mask.value(i)).count(),
                ),
            }
        }
    };
    let cmp = make_comparator(col.as_ref(), col.as_ref(), Default::default())?;
    // Runs of two or more equal `ordered_on` values: the only places duplicates can be.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = start;
    while i < end {
        let mut j = i + 1;
        while j < end && cmp(i, j) == Ordering::Equal {
            j += 1;
        }
        if j - i > 1 {
            runs.push((i, j));
        }
        i = j;
    }
    if runs.is_empty() {
        return Ok(batch.clone());
    }
    let mut keep = vec![true; n];
    let only_ordered = key.iter().all(|k| k == ordered_on);
    if only_ordered {
        for &(a, b) in &runs {
            keep[a..b - 1].iter_mut().for_each(|k| *k = false);
        }
    } else {
        let candidates: Vec<u32> = runs
            .iter()
            .flat_map(|&(a, b)| (a as u32)..(b as u32))
            .collect();
        let indices = UInt32Array::from(candidates.clone());
        let arrays = key
            .iter()
            .map(|k| {
                Ok(arrow::compute::take(
                    column(batch, k)?.as_ref(),
                    &indices,
                    None,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(
            arrays
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(&arrays)?;
        let mut offset = 0;
        let mut seen = HashSet::new();
        for &(a, b) in &runs {
            seen.clear();
            for r in (0..b - a).rev() {
                if !seen.insert(rows.row(offset + r)) {
                    keep[candidates[offset + r] as usize] = false;
                }
            }
            offset += b - a;
        }
    }
    Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
}

/// Rows with `lo <= ordered_on <= hi`.
pub fn in_closed_range(
    col: &ArrayRef,
    lo: &OrderedValue,
    hi: &OrderedValue,
) -> Result<BooleanArray> {
    let dt = col.data_type();
    let (Some(lo), Some(hi)) = (lo.to_array(dt), hi.to_array(dt)) else {
        return Err(StoreError::InvalidInput(format!(
            "range bound does not fit type {dt}"
        )));
    };
    let ge = cmp::gt_eq(col, &arrow::array::Scalar::new(lo))?;
    let le = cmp::lt_eq(col, &arrow::array::Scalar::new(hi))?;
    Ok(arrow::compute::and(&ge, &le)?)
}

/// Rows with `start <= ordered_on < end` (either bound optional).
pub fn in_half_open_range(
    col: &ArrayRef,
    start: Option<&OrderedValue>,
    end: Option<&OrderedValue>,
) -> Result<Option<BooleanArray>> {
    let dt = col.data_type();
    let bound = |v: &OrderedValue| {
        v.to_array(dt)
            .map(arrow::array::Scalar::new)
            .ok_or_else(|| {
                StoreError::InvalidInput(format!("range bound {v} does not fit type {dt}"))
            })
    };
    let lower = start
        .map(|s| bound(s).and_then(|b| Ok(cmp::gt_eq(col, &b)?)))
        .transpose()?;
    let upper = end
        .map(|e| bound(e).and_then(|b| Ok(cmp::lt(col, &b)?)))
        .transpose()?;
    Ok(match (lower, upper) {
        (Some(l), Some(u)) => Some(arrow::compute::and(&l, &u)?),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    })
}

/// Cuts sorted rows into row groups at the target: slices of N rows (the last may be
/// shorter), or one row group per period of the frequency. Never an empty row group.
pub fn cut_row_groups(
    batch: &RecordBatch,
    ordered_on: &str,
    kind: OrderedKind,
    target: &RowGroupTarget,
) -> Result<Vec<RecordBatch>> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(Vec::new());
    }
    match target {
        RowGroupTarget::Rows(size) => {
            let size = (*size).max(1) as usize;
            Ok((0..n)
                .step_by(size)
                .map(|s| batch.slice(s, size.min(n - s)))
                .collect())
        }
        RowGroupTarget::Frequency(freq) => {
            let col = column(batch, ordered_on)?;
            let period = |i: usize| {
                OrderedValue::from_array(col.as_ref(), i)
                    .and_then(|v| freq.period_of(&v, kind))
                    .ok_or_else(|| {
                        StoreError::InvalidInput(format!(
                            "value at row {i} cannot be cut by {freq}"
                        ))
                    })
            };
            let mut out = Vec::new();
            let mut start = 0;
            let mut current = period(0)?;
            for i in 1..n {
                let p = period(i)?;
                if p != current {
                    out.push(batch.slice(start, i - start));
                    start = i;
                    current = p;
                }
            }
            out.push(batch.slice(start, n - start));
            Ok(out)
        }
    }
}

/// The min and max `ordered_on` of a sorted, non-empty batch.
pub fn bounds(batch: &RecordBatch, ordered_on: &str) -> Result<(OrderedValue, OrderedValue)> {
    let col = column(batch, ordered_on)?;
    let get = |i| {
        OrderedValue::from_array(col.as_ref(), i)
            .ok_or_else(|| StoreError::InvalidInput(format!("no ordered value at row {i}")))
    };
    Ok((get(0)?, get(col.len().saturating_sub(1))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use std::sync::Arc;

    fn batch(k: &[i64], v: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("k", Arc::new(Int64Array::from(k.to_vec())) as ArrayRef),
            ("v", Arc::new(Int64Array::from(v.to_vec())) as ArrayRef),
        ])
        .expect("batch")
    }

    fn values(b: &RecordBatch, c: &str) -> Vec<i64> {
        b.column_by_name(c)
            .expect("col")
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn sort_is_stable() {
        let b = sort_stable(&batch(&[3, 1, 3, 1], &[0, 1, 2, 3]), "k").expect("sorts");
        assert_eq!(values(&b, "k"), vec![1, 1, 3, 3]);
        assert_eq!(values(&b, "v"), vec![1, 3, 0, 2]);
    }

    #[test]
    fn merge_puts_old_first_on_ties() {
        let m = merge_sorted(
            &batch(&[1, 2, 2], &[10, 20, 21]),
            &batch(&[2, 3], &[30, 31]),
            "k",
        )
        .expect("merges");
        assert_eq!(values(&m, "k"), vec![1, 2, 2, 2, 3]);
        assert_eq!(values(&m, "v"), vec![10, 20, 21, 30, 31]);
    }

    #[test]
    fn dedup_keeps_last() {
        let b = batch(&[1, 1, 2, 1], &[5, 6, 7, 5]);
        let b = sort_stable(&b, "k").expect("sorts");
        let d = dedup_keep_last(&b, "k", &["k".into(), "v".into()], None).expect("dedups");
        assert_eq!(values(&d, "k"), vec![1, 1, 2]);
        assert_eq!(values(&d, "v"), vec![6, 5, 7]);
        let only_k = dedup_keep_last(&b, "k", &["k".into()], None).expect("dedups");
        assert_eq!(values(&only_k, "v"), vec![5, 7]);
        let scoped = dedup_keep_last(
            &b,
            "k",
            &["k".into()],
            Some((&OrderedValue::Int(2), &OrderedValue::Int(3))),
        )
        .expect("dedups");
        assert_eq!(
            values(&scoped, "v"),
            vec![5, 6, 5, 7],
            "rows outside the scope are kept"
        );
    }

    #[test]
    fn cuts_by_rows() {
        let b = batch(&[1, 2, 3, 4, 5], &[0; 5]);
        let parts =
            cut_row_groups(&b, "k", OrderedKind::Int, &RowGroupTarget::Rows(2)).expect("cuts");
        assert_eq!(
            parts.iter().map(|p| p.num_rows()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }

    #[test]
    fn rejects_null_ordered_on() {
        let b = RecordBatch::try_from_iter(vec![(
            "k",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        )])
        .expect("batch");
        let err = check_ordered_column(&b, "k").expect_err("null").to_string();
        assert!(err.contains("1 of 2 rows have a null"), "{err}");
    }
}
