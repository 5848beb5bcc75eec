//! How an input's Arrow schema is matched to a dataset's (SPEC §3.1 and the timestamp trap
//! of §2). A dataset's schema is fixed by its first write, normalised: every field nullable,
//! a UTC zone always spelled `UTC`. A later input may list columns in any order; its
//! timestamps may use another unit (cast when exact) or another spelling of UTC; strings
//! may be `Utf8`, `LargeUtf8` or `Utf8View`. Anything else that differs is reported, every
//! difference in one message.

use crate::error::{Result, StoreError};
use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{cast, kernels::cmp::eq};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

fn is_utc(tz: &str) -> bool {
    matches!(
        tz.to_ascii_uppercase().as_str(),
        "UTC" | "+00:00" | "Z" | "ETC/UTC" | "GMT" | "+0000" | "00:00"
    )
}

pub fn normalize_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(unit, Some(tz)) if is_utc(tz) => {
            DataType::Timestamp(*unit, Some("UTC".into()))
        }
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

/// The schema a first write gives its dataset.
pub fn normalize_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), normalize_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// Casts `array` to the dataset's `target` type, refusing casts that would lose information.
fn conform_column(
    name: &str,
    array: &ArrayRef,
    target: &DataType,
) -> std::result::Result<ArrayRef, String> {
    let source = array.data_type();
    if source == target {
        return Ok(array.clone());
    }
    let normalized = normalize_type(source);
    let compatible = match (&normalized, target) {
        (a, b) if a == b => true,
        (DataType::Timestamp(_, tz_a), DataType::Timestamp(_, tz_b)) => tz_a == tz_b,
        _ => false,
    };
    if !compatible {
        let hint = match (&normalized, target) {
            (DataType::Timestamp(_, None), DataType::Timestamp(_, Some(_))) => {
                " (the input has no time zone: convert it to UTC first)"
            }
            (DataType::Timestamp(_, Some(_)), DataType::Timestamp(_, None)) => {
                " (the dataset's timestamps have no time zone: drop the zone from the input)"
            }
            _ => "",
        };
        return Err(format!(
            "column {name:?}: type {source} does not match the dataset's {target}{hint}"
        ));
    }
    let casted = cast(array, target).map_err(|e| format!("column {name:?}: {e}"))?;
    if let (DataType::Timestamp(from, _), DataType::Timestamp(to, _)) = (source, target)
        && crate::schema::unit_rank(*to) < crate::schema::unit_rank(*from)
    {
        // Going to a coarser unit: exact only if casting back gives the same values.
        let back = cast(&casted, source).map_err(|e| format!("column {name:?}: {e}"))?;
        let same = eq(&back, array).map_err(|e| format!("column {name:?}: {e}"))?;
        if same.true_count() + array.null_count() != array.len() {
            return Err(format!(
                "column {name:?}: timestamps in {source} would lose precision in the dataset's {target}"
            ));
        }
    }
    Ok(casted)
}

fn unit_rank(unit: arrow::datatypes::TimeUnit) -> u8 {
    use arrow::datatypes::TimeUnit::*;
    match unit {
        Second => 0,
        Millisecond => 1,
        Microsecond => 2,
        Nanosecond => 3,
    }
}

/// Matches `batch` to `dataset`, reordering and casting columns. With `evolve`, input
/// columns the dataset lacks are appended to the schema (nullable); the evolved schema is
/// returned when it changed.
pub fn align_batch(
    batch: &RecordBatch,
    dataset: &SchemaRef,
    evolve: bool,
) -> Result<(RecordBatch, Option<SchemaRef>)> {
    let input = batch.schema();
    let mut problems = Vec::new();
    let mut columns = Vec::with_capacity(dataset.fields().len());
    for field in dataset.fields() {
        match input.index_of(field.name()) {
            Ok(i) => match conform_column(field.name(), batch.column(i), field.data_type()) {
                Ok(c) => columns.push(c),
                Err(p) => problems.push(p),
            },
            Err(_) => problems.push(format!(
                "column {:?} ({}) is missing from the input",
                field.name(),
                field.data_type()
            )),
        }
    }
    let mut evolved: Vec<Field> = Vec::new();
    for (i, field) in input.fields().iter().enumerate() {
        if dataset.index_of(field.name()).is_ok() {
            continue;
        }
        if evolve {
            evolved.push(Field::new(
                field.name(),
                normalize_type(field.data_type()),
                true,
            ));
            columns.push(cast(batch.column(i), &normalize_type(field.data_type()))?);
        } else {
            problems.push(format!(
                "column {:?} ({}) is not in the dataset (pass --evolve to add it)",
                field.name(),
                field.data_type()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::Schema(format!(
            "the input does not match the dataset's schema:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    let schema = if evolved.is_empty() {
        dataset.clone()
    } else {
        let mut fields: Vec<Field> = dataset
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(evolved);
        Arc::new(Schema::new(fields))
    };
    let aligned = RecordBatch::try_new(schema.clone(), columns)?;
    let changed = (schema.fields().len() != dataset.fields().len()).then_some(schema);
    Ok((aligned, changed))
}

/// Gives a batch read from a file the dataset's current schema: columns added by a later
/// `--evolve` read as nulls in older files. `columns` selects and orders the output.
pub fn conform_read(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
    }
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.schema().index_of(f.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type()).map_err(StoreError::from)
                }
            }
            Err(_) => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMillisecondArray, TimestampNanosecondArray};
    use arrow::datatypes::TimeUnit;

    fn dataset() -> SchemaRef {
        normalize_schema(&Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                false,
            ),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    #[test]
    fn reorders_and_casts_units() {
        let input = RecordBatch::try_from_iter(vec![
            ("v", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            (
                "ts",
                Arc::new(TimestampNanosecondArray::from(vec![5_000_000]).with_timezone("UTC"))
                    as ArrayRef,
            ),
        ])
        .expect("batch");
        let (out, evolved) = align_batch(&input, &dataset(), false).expect("aligns");
        assert!(evolved.is_none());
        assert_eq!(out.schema(), dataset());
        let ts = out
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("ms");
        assert_eq!(ts.value(0), 5);
    }

    #[test]
    fn rejects_lossy_units_and_lists_every_difference() {
        let input = RecordBatch::try_from_iter(vec![
            (
                "ts",
                Arc::new(TimestampNanosecondArray::from(vec![5_000_001]).with_timezone("UTC"))
                    as ArrayRef,
            ),
            ("w", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ])
        .expect("batch");
        let err = align_batch(&input, &dataset(), false)
            .expect_err("mismatch")
            .to_string();
        assert!(err.contains("lose precision"), "{err}");
        assert!(err.contains("\"v\" (Int64) is missing"), "{err}");
        assert!(err.contains("\"w\" (Int64) is not in the dataset"), "{err}");
    }

    #[test]
    fn naive_timestamps_do_not_match_utc() {
        let input = RecordBatch::try_from_iter(vec![
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![1])) as ArrayRef,
            ),
            ("v", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ])
        .expect("batch");
        let err = align_batch(&input, &dataset(), false)
            .expect_err("mismatch")
            .to_string();
        assert!(err.contains("no time zone"), "{err}");
    }

    #[test]
    fn evolve_adds_nullable_columns() {
        let input = RecordBatch::try_from_iter(vec![
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![1]).with_timezone("UTC")) as ArrayRef,
            ),
            ("v", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("w", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
        ])
        .expect("batch");
        let (out, evolved) = align_batch(&input, &dataset(), true).expect("evolves");
        let evolved = evolved.expect("schema changed");
        assert_eq!(evolved.fields().len(), 3);
        assert!(evolved.field(2).is_nullable());
        let old = RecordBatch::try_new(
            dataset(),
            vec![out.column(0).clone(), out.column(1).clone()],
        )
        .expect("old");
        let read = conform_read(&old, &evolved).expect("conforms");
        assert_eq!(read.column(2).null_count(), 1);
    }
}
