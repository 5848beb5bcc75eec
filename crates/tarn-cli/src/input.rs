//! Reading `tarn write` inputs: Parquet, CSV (header, schema inferred), Arrow IPC (file or
//! stream) and JSON lines, from files or stdin. Text formats carry no types, so timestamps
//! are recognised (any RFC 3339 or `YYYY-MM-DD HH:MM:SS` column becomes
//! `timestamp[ns, UTC]`; strings without an offset are taken as UTC), and when the dataset
//! exists its column types are used instead of inferred ones.

use anyhow::{Context, Result, bail};
use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::io::{BufReader, Cursor, Read, Seek};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Parquet,
    Csv,
    Arrow,
    Jsonl,
}

impl InputFormat {
    pub fn from_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        Some(match ext {
            "parquet" | "pq" => Self::Parquet,
            "csv" => Self::Csv,
            "arrow" | "ipc" | "feather" | "arrows" => Self::Arrow,
            "jsonl" | "ndjson" | "json" => Self::Jsonl,
            _ => return None,
        })
    }
}

/// Reads every input into one batch (one write makes one version).
pub fn read_inputs(
    paths: &[String],
    format: Option<InputFormat>,
    dataset: Option<&SchemaRef>,
) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for path in paths {
        let format = match format.or_else(|| InputFormat::from_path(path)) {
            Some(f) => f,
            None if path == "-" => bail!("reading stdin needs --format parquet|csv|arrow|jsonl"),
            None => bail!(
                "cannot tell the format of {path:?} from its extension; pass --format parquet|csv|arrow|jsonl"
            ),
        };
        let bytes = if path == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            buf
        } else {
            std::fs::read(path).with_context(|| format!("cannot read input {path:?}"))?
        };
        let batch = read_bytes(bytes, format, dataset)
            .with_context(|| format!("input {path:?} is not valid {format:?}"))?;
        batches.push(batch);
    }
    let Some(first) = batches.first() else {
        bail!("no input given");
    };
    let schema = first.schema();
    let mut aligned = Vec::with_capacity(batches.len());
    for (i, b) in batches.iter().enumerate() {
        if b.schema().fields() != schema.fields() {
            let a = tarn::conform_batch(b, &schema).with_context(|| {
                format!("input {:?} does not match input {:?}", paths[i], paths[0])
            })?;
            aligned.push(a);
        } else {
            aligned.push(b.clone());
        }
    }
    Ok(concat_batches(&schema, &aligned)?)
}

pub fn read_bytes(
    bytes: Vec<u8>,
    format: InputFormat,
    dataset: Option<&SchemaRef>,
) -> Result<RecordBatch> {
    match format {
        InputFormat::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(bytes),
            )?
            .with_batch_size(65_536)
            .build()?;
            let schema = reader.schema();
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(concat_batches(&schema, &batches)?)
        }
        InputFormat::Arrow => {
            if bytes.starts_with(b"ARROW1") {
                let reader = arrow::ipc::reader::FileReader::try_new(Cursor::new(bytes), None)?;
                let schema = reader.schema();
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(concat_batches(&schema, &batches)?)
            } else {
                let reader = arrow::ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)?;
                let schema = reader.schema();
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(concat_batches(&schema, &batches)?)
            }
        }
        InputFormat::Csv => {
            let mut cursor = Cursor::new(bytes);
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (inferred, _) = format.infer_schema(&mut cursor, Some(10_000))?;
            cursor.rewind()?;
            let schema = text_schema(&inferred, dataset);
            let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_format(format)
                .with_batch_size(65_536)
                .build(cursor)?;
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(concat_batches(&schema, &batches)?)
        }
        InputFormat::Jsonl => {
            let mut cursor = BufReader::new(Cursor::new(bytes));
            let (inferred, _) =
                arrow::json::reader::infer_json_schema_from_seekable(&mut cursor, Some(10_000))?;
            let inferred = json_timestamps(inferred, cursor.get_mut().get_ref());
            let schema = text_schema(&inferred, dataset);
            let reader = arrow::json::ReaderBuilder::new(schema.clone())
                .with_batch_size(65_536)
                .build(cursor)?;
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(concat_batches(&schema, &batches)?)
        }
    }
}

/// The schema to parse a text input with: the dataset's type for its columns, else the
/// inferred type with timestamps as `timestamp[ns, UTC]`.
fn text_schema(inferred: &Schema, dataset: Option<&SchemaRef>) -> SchemaRef {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            if let Some(d) = dataset.and_then(|d| d.field_with_name(f.name()).ok()) {
                return Field::new(f.name(), d.data_type().clone(), true);
            }
            let data_type = match f.data_type() {
                DataType::Timestamp(_, _) => {
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
                }
                other => other.clone(),
            };
            Field::new(f.name(), data_type, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// JSON has no timestamp type: a string column whose first value is a date-time becomes one.
fn json_timestamps(inferred: Schema, bytes: &[u8]) -> Schema {
    let first_line = bytes
        .split(|b| *b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(Ok(serde_json::Value::Object(row))) =
        first_line.map(serde_json::from_slice::<serde_json::Value>)
    else {
        return inferred;
    };
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let is_time = matches!(f.data_type(), DataType::Utf8)
                && row
                    .get(f.name())
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| s.len() >= 16 && tarn::core::time::parse_instant(s).is_some());
            if is_time {
                Field::new(
                    f.name(),
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    true,
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Schema::new(fields)
}
