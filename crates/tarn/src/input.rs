//! Reading `tarn write` inputs: Parquet, CSV (header, schema inferred), Arrow IPC (file or
//! stream) and JSON lines, from files or stdin, batch by batch as the write takes them. Text formats carry no types, so timestamps
//! are recognised (any RFC 3339 or `YYYY-MM-DD HH:MM:SS` column becomes
//! `timestamp[ns, UTC]`; strings without an offset are taken as UTC), and when the dataset
//! exists its column types are used instead of inferred ones.

use crate::{Error, Lake, Result, WriteOutcome, WriteRequest};
use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::sync::Arc;

/// An input's wrong bytes: the error names the input and what it was read as.
fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{what}: {e}"))
}

/// A failure to open or read an input file, naming it.
fn io_error(path: &str, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_string(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The format of an HTTP body's `Content-Type` (parameters such as `charset` ignored).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/vnd.apache.parquet" | "application/x-parquet" => Self::Parquet,
            "text/csv" => Self::Csv,
            "application/vnd.apache.arrow.stream" | "application/vnd.apache.arrow.file" => {
                Self::Arrow
            }
            "application/x-ndjson" | "application/jsonl" | "application/json-lines" => Self::Jsonl,
            _ => return None,
        })
    }

    /// The file name extension tarn gives an input of this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Arrow => "arrow",
            Self::Jsonl => "jsonl",
        }
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "parquet" => Self::Parquet,
            "csv" => Self::Csv,
            "arrow" => Self::Arrow,
            "jsonl" => Self::Jsonl,
            _ => {
                return Err(format!(
                    "unknown format {s:?}; use parquet, csv, arrow or jsonl"
                ));
            }
        })
    }
}

/// Rows of the inputs of one write, read as they are taken.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// Rows per batch read from an input.
const BATCH_ROWS: usize = 65_536;
/// Records of a text input that its schema is inferred from.
const INFER_RECORDS: usize = 10_000;

/// Opens every input of one write (one write makes one version): the schema of the first,
/// and the rows of all of them in order, each batch conformed to that schema. Files are read
/// batch by batch as the rows are taken, so an input larger than memory streams.
pub fn open_inputs(
    paths: &[String],
    format: Option<InputFormat>,
    dataset: Option<&SchemaRef>,
) -> Result<(SchemaRef, Batches)> {
    let Some(first) = paths.first() else {
        return Err(Error::InvalidInput("no input given".into()));
    };
    let format_of = |path: &str| match format.or_else(|| InputFormat::from_path(path)) {
        Some(f) => Ok(f),
        None if path == "-" => Err(Error::InvalidInput(
            "reading stdin needs --format parquet|csv|arrow|jsonl".into(),
        )),
        None => Err(Error::InvalidInput(format!(
            "cannot tell the format of {path:?} from its extension; pass --format parquet|csv|arrow|jsonl"
        ))),
    };
    // Every format is known before anything is read.
    let formats = paths
        .iter()
        .map(|p| format_of(p))
        .collect::<Result<Vec<_>>>()?;
    let (schema, first_batches) = open_one(first, formats[0], dataset)?;
    let mut rest: Vec<(String, InputFormat)> = paths[1..]
        .iter()
        .cloned()
        .zip(formats[1..].iter().copied())
        .collect();
    rest.reverse();
    let dataset = dataset.cloned();
    let target = schema.clone();
    let first_path = first.clone();
    let mut current: Option<(String, Batches)> = Some((first.clone(), first_batches));
    let iter = std::iter::from_fn(move || {
        loop {
            let (path, batches) = current.as_mut()?;
            match batches.next() {
                Some(Ok(b)) if b.schema().fields() == target.fields() => return Some(Ok(b)),
                Some(Ok(b)) => {
                    let path = path.clone();
                    return Some(crate::conform_batch(&b, &target).map_err(|e| {
                        invalid(
                            &format!("input {path:?} does not match input {first_path:?}"),
                            e,
                        )
                    }));
                }
                Some(Err(e)) => {
                    current = None;
                    return Some(Err(e));
                }
                None => match rest.pop() {
                    None => {
                        current = None;
                        return None;
                    }
                    Some((path, format)) => match open_one(&path, format, dataset.as_ref()) {
                        Ok((_, batches)) => current = Some((path, batches)),
                        Err(e) => {
                            current = None;
                            return Some(Err(e));
                        }
                    },
                },
            }
        }
    });
    Ok((schema, Box::new(iter)))
}

/// Opens one input: its schema and its rows, with every error naming the input.
fn open_one(
    path: &str,
    format: InputFormat,
    dataset: Option<&SchemaRef>,
) -> Result<(SchemaRef, Batches)> {
    let what = format!("input {path:?} is not valid {format:?}");
    let named = |e: Error| match e {
        e @ Error::Io { .. } => e,
        e => invalid(&what, e),
    };
    let (schema, batches) = open_reader(path, format, dataset).map_err(named)?;
    let batches = batches.map(move |b| b.map_err(|e| invalid(&what, e)));
    Ok((schema, Box::new(batches)))
}

/// A reader's batches as tarn results.
fn boxed<I>(reader: I) -> Batches
where
    I: Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send + 'static,
{
    Box::new(reader.map(|b| b.map_err(Error::from)))
}

/// Where an input's bytes come from: a file or stdin.
fn source(path: &str) -> Result<Box<dyn Read + Send>> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    Ok(Box::new(file))
}

/// A seekable file with the input's bytes: the file itself, or stdin copied to an unnamed
/// temporary file (Parquet and the Arrow file format keep their footer at the end).
fn seekable(path: &str) -> Result<std::fs::File> {
    if path == "-" {
        return spool(&mut std::io::stdin().lock());
    }
    std::fs::File::open(path).map_err(|e| io_error(path, e))
}

/// Copies `input` to an unnamed temporary file, rewound.
fn spool(input: &mut impl Read) -> Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "tarn-stdin-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error(&path.display().to_string(), e))?;
    // Unnamed from now on: the space is freed when the file is closed, whatever happens.
    let _ = std::fs::remove_file(&path);
    std::io::copy(input, &mut file).map_err(|e| io_error("stdin", e))?;
    file.rewind().map_err(|e| io_error("stdin", e))?;
    Ok(file)
}

/// The first `records` lines of a text input (for schema inference), read from `reader`;
/// the rest stays in it.
fn head_lines(reader: &mut impl BufRead, records: usize) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    for _ in 0..records {
        if reader
            .read_until(b'\n', &mut head)
            .map_err(|e| Error::InvalidInput(e.to_string()))?
            == 0
        {
            break;
        }
    }
    Ok(head)
}

fn open_reader(
    path: &str,
    format: InputFormat,
    dataset: Option<&SchemaRef>,
) -> Result<(SchemaRef, Batches)> {
    match format {
        InputFormat::Parquet => {
            let parquet = |e: parquet::errors::ParquetError| Error::InvalidInput(e.to_string());
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                seekable(path)?,
            )
            .map_err(parquet)?
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(parquet)?;
            Ok((reader.schema(), boxed(reader)))
        }
        InputFormat::Arrow => {
            let mut input = BufReader::new(source(path)?);
            let start = input.fill_buf().map_err(|e| io_error(path, e))?;
            if !start.starts_with(b"ARROW1") {
                let reader = arrow::ipc::reader::StreamReader::try_new(input, None)?;
                return Ok((reader.schema(), boxed(reader)));
            }
            // The file format: seek in the file, or in stdin's bytes spooled to a file.
            let file = if path == "-" {
                spool(&mut input)?
            } else {
                drop(input);
                seekable(path)?
            };
            let reader = arrow::ipc::reader::FileReader::try_new(file, None)?;
            Ok((reader.schema(), boxed(reader)))
        }
        InputFormat::Csv | InputFormat::Jsonl => text_reader(source(path)?, format, dataset),
    }
}

/// A CSV or JSON lines reader: the schema is inferred from the first records (kept in
/// memory and read again), then the rows are parsed as they are taken.
fn text_reader(
    input: Box<dyn Read + Send>,
    format: InputFormat,
    dataset: Option<&SchemaRef>,
) -> Result<(SchemaRef, Batches)> {
    let mut input = BufReader::new(input);
    if format == InputFormat::Csv {
        // The header and INFER_RECORDS records.
        let head = head_lines(&mut input, INFER_RECORDS + 1)?;
        let csv = arrow::csv::reader::Format::default().with_header(true);
        let (inferred, _) = csv.infer_schema(Cursor::new(&head), Some(INFER_RECORDS))?;
        let schema = text_schema(&inferred, dataset);
        let reader = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_format(csv)
            .with_batch_size(BATCH_ROWS)
            .build(Cursor::new(head).chain(input))?;
        return Ok((schema, boxed(reader)));
    }
    let head = head_lines(&mut input, INFER_RECORDS)?;
    let (inferred, _) =
        arrow::json::reader::infer_json_schema(Cursor::new(&head), Some(INFER_RECORDS))?;
    let inferred = json_timestamps(inferred, &head);
    let schema = text_schema(&inferred, dataset);
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::new(Cursor::new(head).chain(input)))?;
    Ok((schema, boxed(reader)))
}

/// Reads a whole in-memory text input into one batch (the demo's embedded CSV files).
pub fn read_text(
    bytes: Vec<u8>,
    format: InputFormat,
    dataset: Option<&SchemaRef>,
) -> Result<RecordBatch> {
    let (schema, batches) = text_reader(Box::new(Cursor::new(bytes)), format, dataset)?;
    let batches = batches.collect::<Result<Vec<_>>>()?;
    Ok(concat_batches(&schema, &batches)?)
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
                    .is_some_and(|s| s.len() >= 16 && tarn_core::time::parse_instant(s).is_some());
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

impl Lake {
    /// Writes the rows of input files (SPEC §11 `tarn write <URI> <INPUT>...`; `-` is
    /// stdin) as one version, in bounded memory: inputs are parsed on a blocking thread a
    /// couple of batches ahead of [`Lake::write_stream`]. `format` overrides the extension.
    pub async fn write_inputs(
        &self,
        uri: &str,
        paths: &[String],
        format: Option<InputFormat>,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        // Text inputs are parsed in the dataset's types when it exists; typed inputs
        // (Parquet, Arrow) need no lookup before the write's own.
        let text = paths.iter().any(|p| {
            matches!(
                format.or_else(|| InputFormat::from_path(p)),
                Some(InputFormat::Csv | InputFormat::Jsonl) | None
            )
        });
        let dataset_schema = match text {
            true => {
                let target = crate::writer::writable_uri(uri)?;
                self.head(&target).await?.map(|h| h.schema.clone())
            }
            false => None,
        };
        let inputs = paths.to_vec();
        let (schema, batches) = tokio::task::spawn_blocking(move || {
            open_inputs(&inputs, format, dataset_schema.as_ref())
        })
        .await
        .map_err(|e| Error::Config(format!("input task failed: {e}")))??;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let reader = tokio::task::spawn_blocking(move || {
            for batch in batches {
                let failed = batch.is_err();
                if tx.blocking_send(batch).is_err() || failed {
                    break;
                }
            }
        });
        let rows = futures::StreamExt::boxed(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|batch| (batch, rx))
        }));
        let outcome = self.write_stream(uri, schema, rows, request).await;
        // The write stops taking rows when it fails: the reader then stops too.
        let _ = reader.await;
        outcome
    }
}
