//! Writing read results: a table on a terminal, or CSV, JSON, JSON lines, Parquet or Arrow
//! IPC to stdout or a file. Batches are written as they arrive, so a result larger than
//! memory streams through. A table must see its rows to align them, so it shows at most
//! [`TABLE_ROWS`] rows and says how to get the rest.

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Jsonl,
    Parquet,
    Arrow,
}

/// The most rows a table shows: a terminal is for looking, files and pipes take every row
/// in the other formats.
pub const TABLE_ROWS: usize = 1_000;

/// The encoded size at which a Parquet output closes its row group.
const PARQUET_ROW_GROUP_BYTES: usize = 32 << 20;

/// The output format of `read`, `query` and `project query`: `--format`, else from
/// `--output`'s extension, else JSON with `--json`, else a table. Binary formats are not
/// written to a terminal.
pub fn choose_format(
    format: Option<OutputFormat>,
    output: Option<&str>,
    json: bool,
) -> Result<OutputFormat> {
    let format = chosen_format(format, output, json)?;
    if output.is_none()
        && matches!(format, OutputFormat::Parquet | OutputFormat::Arrow)
        && std::io::stdout().is_terminal()
    {
        bail!(
            "refusing to write binary {format:?} to a terminal; pass --output FILE or redirect stdout"
        );
    }
    Ok(format)
}

fn chosen_format(
    format: Option<OutputFormat>,
    output: Option<&str>,
    json: bool,
) -> Result<OutputFormat> {
    if let Some(f) = format {
        return Ok(f);
    }
    if let Some(path) = output {
        let ext = std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        return Ok(match ext.as_str() {
            "parquet" => OutputFormat::Parquet,
            "csv" => OutputFormat::Csv,
            "json" => OutputFormat::Json,
            "jsonl" | "ndjson" => OutputFormat::Jsonl,
            "arrow" | "ipc" | "feather" => OutputFormat::Arrow,
            _ => bail!(
                "cannot tell the format of {path:?} from its extension; pass --format (csv, json, jsonl, parquet or arrow)"
            ),
        });
    }
    Ok(if json {
        OutputFormat::Json
    } else {
        OutputFormat::Table
    })
}

/// A sink for record batches in one format.
enum Sink<W: Write + Send> {
    Table(Vec<RecordBatch>, W),
    Csv(arrow::csv::Writer<W>),
    Json(arrow::json::ArrayWriter<W>),
    Jsonl(arrow::json::LineDelimitedWriter<W>),
    Parquet(parquet::arrow::ArrowWriter<W>),
    Arrow(arrow::ipc::writer::FileWriter<W>),
}

impl<W: Write + Send> Sink<W> {
    fn new(format: OutputFormat, schema: &SchemaRef, out: W) -> Result<Self> {
        Ok(match format {
            OutputFormat::Table => Sink::Table(Vec::new(), out),
            OutputFormat::Csv => Sink::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            ),
            OutputFormat::Json => Sink::Json(arrow::json::ArrayWriter::new(out)),
            OutputFormat::Jsonl => Sink::Jsonl(arrow::json::LineDelimitedWriter::new(out)),
            OutputFormat::Parquet => Sink::Parquet(parquet::arrow::ArrowWriter::try_new(
                out,
                schema.clone(),
                Some(tarn::parquet_export_properties(schema)),
            )?),
            OutputFormat::Arrow => {
                Sink::Arrow(arrow::ipc::writer::FileWriter::try_new(out, schema)?)
            }
        })
    }

    /// Takes the rows of a batch that the sink has room for; returns how many it took.
    fn write(&mut self, batch: &RecordBatch) -> Result<usize> {
        match self {
            Sink::Table(batches, _) => {
                let held: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let take = batch.num_rows().min(TABLE_ROWS - held);
                batches.push(batch.slice(0, take));
                return Ok(take);
            }
            Sink::Csv(w) => w.write(batch)?,
            Sink::Json(w) => w.write(batch)?,
            Sink::Jsonl(w) => w.write(batch)?,
            Sink::Parquet(w) => {
                w.write(batch)?;
                // A row group is buffered (encoded) until it is flushed: close it at a size
                // bound so that a result larger than memory streams to the file.
                if w.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
                    w.flush()?;
                }
            }
            Sink::Arrow(w) => w.write(batch)?,
        }
        Ok(batch.num_rows())
    }

    fn is_full(&self) -> bool {
        matches!(self, Sink::Table(batches, _)
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() >= TABLE_ROWS)
    }

    fn finish(self, schema: &SchemaRef, more: bool) -> Result<()> {
        match self {
            Sink::Table(batches, mut out) => {
                writeln!(out, "{}", render_table(schema, &batches)?)?;
                if more {
                    writeln!(
                        out,
                        "(the first {TABLE_ROWS} rows; --format csv, json, jsonl, parquet or arrow gives every row)"
                    )?;
                }
                out.flush()?;
            }
            Sink::Csv(w) => w.into_inner().flush()?,
            Sink::Json(mut w) => {
                w.finish()?;
                let mut inner = w.into_inner();
                writeln!(inner)?;
                inner.flush()?;
            }
            Sink::Jsonl(mut w) => {
                w.finish()?;
                w.into_inner().flush()?;
            }
            Sink::Parquet(w) => {
                w.close()?;
            }
            Sink::Arrow(mut w) => w.finish()?,
        }
        Ok(())
    }
}

/// Streams `batches` to `output` (stdout when `None`) in `format`. Returns the row count.
pub async fn write_stream<E>(
    mut batches: BoxStream<'static, std::result::Result<RecordBatch, E>>,
    schema: &SchemaRef,
    format: OutputFormat,
    output: Option<&str>,
) -> Result<u64>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let writer: Box<dyn Write + Send> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create output file {path:?}"))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )),
    };
    let mut sink = Sink::new(format, schema, writer)?;
    let mut rows = 0u64;
    let mut more = false;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if sink.is_full() {
            // A full table stops reading at the first row it cannot show.
            if batch.num_rows() > 0 {
                more = true;
                break;
            }
            continue;
        }
        let taken = sink.write(&batch)?;
        rows += taken as u64;
        if taken < batch.num_rows() {
            more = true;
            break;
        }
    }
    sink.finish(schema, more)?;
    Ok(rows)
}

/// An empty terminal table with these column names, in tarn's style.
pub fn table<S: ToString>(header: &[S]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(ToString::to_string));
    t
}

/// Runs a query's plan and streams its result to `output` (stdout when `None`). Returns the
/// row count.
pub async fn write_dataframe(
    df: tarn_query::datafusion::dataframe::DataFrame,
    format: OutputFormat,
    output: Option<&str>,
) -> Result<u64> {
    let schema = df.schema().inner().clone();
    let stream = df
        .execute_stream()
        .await
        .map_err(tarn_query::QueryError::from_datafusion)?;
    // Files get the types datasets declare; sessions read strings as views.
    let plain = tarn_query::plain_types(&schema);
    if matches!(format, OutputFormat::Parquet | OutputFormat::Arrow) && plain != schema {
        let target = plain.clone();
        let stream = stream.map(move |batch| {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok::<_, tarn_query::datafusion::error::DataFusionError>(RecordBatch::try_new(
                target.clone(),
                columns,
            )?)
        });
        return write_stream(stream.boxed(), &plain, format, output).await;
    }
    write_stream(stream.boxed(), &schema, format, output).await
}

/// Renders rows as a terminal table (timestamps in RFC 3339).
pub fn render_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let mut table = table(&names);
    let options = FormatOptions::default().with_null("null");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
    }
    Ok(table.to_string())
}
