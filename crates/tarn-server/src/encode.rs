//! Response bodies of rows (the data endpoint and SQL over HTTP): Parquet, Arrow IPC, CSV
//! or JSON lines, encoded batch by batch on a blocking thread and sent as they are made, so
//! that a response larger than memory streams and a slow client stalls only its own reader.

use crate::error::{ApiError, ApiResult};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

/// A Parquet row group of a response is closed at this encoded size (or at tarn's export
/// row count), so that a long response holds at most about this much.
const PARQUET_ROW_GROUP_BYTES: usize = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Arrow,
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(text: &str) -> ApiResult<Self> {
        Ok(match text {
            "parquet" => Self::Parquet,
            "arrow" => Self::Arrow,
            "csv" => Self::Csv,
            "jsonl" => Self::Jsonl,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown format {other:?}; use parquet, arrow, csv or jsonl"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Parquet => "application/vnd.apache.parquet",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
        }
    }
}

/// One response's encoder: each call returns the bytes it made so far.
enum Encoder {
    Parquet(parquet::arrow::ArrowWriter<Vec<u8>>),
    Arrow(arrow::ipc::writer::StreamWriter<Vec<u8>>),
    Csv { header: bool },
    Jsonl,
}

type EncodeResult<T> = std::result::Result<T, String>;

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> EncodeResult<Self> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        Ok(match format {
            Format::Parquet => Self::Parquet(
                parquet::arrow::ArrowWriter::try_new(
                    Vec::new(),
                    schema.clone(),
                    Some(tarn::parquet_export_properties(schema)),
                )
                .map_err(|x| e(&x))?,
            ),
            Format::Arrow => Self::Arrow(
                arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema).map_err(|x| e(&x))?,
            ),
            Format::Csv => Self::Csv { header: true },
            Format::Jsonl => Self::Jsonl,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> EncodeResult<Vec<u8>> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        match self {
            Self::Parquet(w) => {
                w.write(batch).map_err(|x| e(&x))?;
                if w.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
                    w.flush().map_err(|x| e(&x))?;
                }
                // The writer counts the bytes it wrote; taking them leaves its offsets right.
                Ok(std::mem::take(w.inner_mut()))
            }
            Self::Arrow(w) => {
                w.write(batch).map_err(|x| e(&x))?;
                Ok(std::mem::take(w.get_mut()))
            }
            Self::Csv { header } => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(*header)
                    .build(Vec::new());
                w.write(batch).map_err(|x| e(&x))?;
                *header = false;
                Ok(w.into_inner())
            }
            Self::Jsonl => {
                let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
                w.write(batch).map_err(|x| e(&x))?;
                w.finish().map_err(|x| e(&x))?;
                Ok(w.into_inner())
            }
        }
    }

    fn finish(self, schema: &SchemaRef) -> EncodeResult<Vec<u8>> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        match self {
            Self::Parquet(w) => w.into_inner().map_err(|x| e(&x)),
            Self::Arrow(mut w) => {
                w.finish().map_err(|x| e(&x))?;
                w.into_inner().map_err(|x| e(&x))
            }
            // A CSV response with no row still has its header.
            Self::Csv { header: true } => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(Vec::new());
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(|x| e(&x))?;
                Ok(w.into_inner())
            }
            Self::Csv { .. } | Self::Jsonl => Ok(Vec::new()),
        }
    }
}

/// A response body streaming `batches` in `format`. The encoder runs on a blocking thread,
/// one batch ahead of the client at most. An error after the first bytes ends the body
/// without the format's end (no Parquet footer, no Arrow end marker): the client sees a
/// truncated, invalid response rather than a valid short one; it is logged.
pub fn body<E>(
    format: Format,
    schema: SchemaRef,
    mut batches: BoxStream<'static, std::result::Result<RecordBatch, E>>,
) -> ApiResult<Body>
where
    E: std::fmt::Display + Send + 'static,
{
    let mut encoder = Some(Encoder::new(format, &schema).map_err(ApiError::bad_request)?);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    let span = tracing::Span::current();
    tokio::spawn(async move {
        let fail = |m: String| {
            tracing::warn!(parent: &span, error = %m, "response body ended early");
            Err(std::io::Error::other(m))
        };
        loop {
            let next = tokio::select! {
                next = batches.next() => next,
                // The client went away: drop the stream (and the query under it).
                () = tx.closed() => return,
            };
            let (Some(mut enc), next) = (encoder.take(), next) else {
                return;
            };
            let chunk = match next {
                Some(Ok(batch)) => {
                    let out = tokio::task::spawn_blocking(move || {
                        let bytes = enc.write(&batch);
                        (enc, bytes)
                    })
                    .await;
                    match out {
                        Ok((enc, Ok(bytes))) => {
                            encoder = Some(enc);
                            Ok(bytes)
                        }
                        Ok((_, Err(m))) => fail(m),
                        Err(j) => fail(j.to_string()),
                    }
                }
                Some(Err(err)) => fail(err.to_string()),
                None => {
                    let schema = schema.clone();
                    match tokio::task::spawn_blocking(move || enc.finish(&schema)).await {
                        Ok(Ok(bytes)) => {
                            if !bytes.is_empty() {
                                let _ = tx.send(Ok(Bytes::from(bytes))).await;
                            }
                            return;
                        }
                        Ok(Err(m)) => fail(m),
                        Err(j) => fail(j.to_string()),
                    }
                }
            };
            let failed = chunk.is_err();
            match chunk {
                Ok(bytes) if bytes.is_empty() => continue,
                other => {
                    if tx.send(other.map(Bytes::from)).await.is_err() || failed {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(Body::from_stream(stream))
}
