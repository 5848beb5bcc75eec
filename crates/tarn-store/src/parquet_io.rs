//! Encoding row groups into one Parquet file, and decoding chosen row groups and columns
//! of a file. Files are plain Parquet with the Arrow schema embedded, readable by any tool.

use crate::durable::DataStore;
use crate::error::{Result, StoreError};
use arrow::array::BooleanArray;
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::ops::Range;
use std::sync::Arc;
use tarn_core::OrderedValue;

/// Rows and compressed bytes of one written row group.
#[derive(Debug, Clone, Copy)]
pub struct EncodedRowGroup {
    pub rows: u64,
    pub bytes: u64,
}

/// How tarn encodes its files (docs/benchmarks.md, "W1"): LZ4 (the raw block format of
/// Parquet 2.9, which every current reader takes) as the codec, because it is several times
/// cheaper than snappy to attempt on values that do not compress (random measurements) and
/// still compresses those that do; delta encoding for time stamps and dates, which shrinks a
/// sorted time column to almost nothing, and for integers once their dictionary falls back;
/// no dictionary attempt for floats and time stamps, which are nearly always distinct.
fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    encoding(schema)
        // Row groups are cut by tarn (one `write` + `flush` each), never by the writer.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .build()
}

/// Properties for Parquet files that tarn writes for others (`tarn read` and `tarn query`
/// with `--format parquet`): tarn's encoding, with row groups cut by the writer at 131,072
/// rows or 32 MiB encoded, whichever comes first. The writer holds its row group in memory
/// until it is cut, so this bounds the memory of a Parquet output of any size (the Parquet
/// default of 1,048,576 rows held some 60 MB).
pub fn export_properties(schema: &SchemaRef) -> WriterProperties {
    encoding(schema)
        .set_max_row_group_row_count(Some(EXPORT_ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(32 << 20))
        .build()
}

/// Rows per row group of the Parquet files of [`export_properties`].
pub const EXPORT_ROW_GROUP_ROWS: usize = 128 * 1024;

/// The codec, statistics, page and per-column encoding choices of [`writer_properties`].
fn encoding(schema: &SchemaRef) -> parquet::file::properties::WriterPropertiesBuilder {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_statistics_enabled(EnabledStatistics::Page)
        // Past 128 KiB of distinct values a dictionary stops paying off: fall back early
        // instead of interning every value of a high-cardinality column.
        .set_dictionary_page_size_limit(128 * 1024)
        // Pages of 8,192 rows let a range read skip the pages it does not need.
        .set_data_page_row_count_limit(8_192)
        .set_created_by(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        match field.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                builder = builder.set_column_dictionary_enabled(path, false);
            }
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                builder = builder
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, parquet::basic::Encoding::DELTA_BINARY_PACKED);
            }
            // Integers often repeat (codes, counts): a dictionary first, delta when it
            // falls back.
            DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
                builder = builder
                    .set_column_encoding(path, parquet::basic::Encoding::DELTA_BINARY_PACKED);
            }
            _ => {}
        }
    }
    builder
}

/// Encodes each batch as one row group of a single Parquet file written to `out`. The
/// columns of a row group are encoded in parallel on the rayon pool, then appended in order.
pub fn encode_to<W: std::io::Write + Send>(
    out: W,
    schema: &SchemaRef,
    row_groups: &[RecordBatch],
) -> Result<(W, Vec<EncodedRowGroup>)> {
    encode_iter(out, schema, row_groups.iter().cloned().map(Ok))
}

/// [`encode_to`] over row groups that arrive one at a time (from a channel, as a streamed
/// write cuts them): each is encoded and written before the next is taken, so memory holds
/// one row group whatever the size of the file. Stops at the first error of `row_groups`.
pub fn encode_iter<W: std::io::Write + Send>(
    out: W,
    schema: &SchemaRef,
    row_groups: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<(W, Vec<EncodedRowGroup>)> {
    use parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
    use rayon::prelude::*;
    let wrap = |source| StoreError::Parquet {
        path: "<new file>".into(),
        source,
    };
    // ArrowWriter sets up the file (and embeds the Arrow schema, so that time zones and
    // string types read back exactly); the lower-level writer then takes whole columns.
    let writer =
        ArrowWriter::try_new(out, schema.clone(), Some(writer_properties(schema))).map_err(wrap)?;
    let (mut file, factory) = writer.into_serialized_writer().map_err(wrap)?;
    let mut stats = Vec::new();
    let mut index = 0;
    for batch in row_groups {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let writers = factory.create_column_writers(index).map_err(wrap)?;
        let mut leaves = Vec::with_capacity(writers.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column).map_err(wrap)?);
        }
        let chunks: Vec<ArrowColumnChunk> = writers
            .into_par_iter()
            .zip(leaves.into_par_iter())
            .map(|(mut writer, leaf)| {
                writer.write(&leaf)?;
                writer.close()
            })
            .collect::<parquet::errors::Result<_>>()
            .map_err(wrap)?;
        let mut row_group = file.next_row_group().map_err(wrap)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(wrap)?;
        }
        let meta = row_group.close().map_err(wrap)?;
        stats.push(EncodedRowGroup {
            rows: meta.num_rows() as u64,
            bytes: meta.compressed_size() as u64,
        });
        index += 1;
    }
    let out = file.into_inner().map_err(wrap)?;
    Ok((out, stats))
}

/// Encodes each batch as one row group of a single Parquet file in memory.
pub fn encode(
    schema: &SchemaRef,
    row_groups: &[RecordBatch],
) -> Result<(Bytes, Vec<EncodedRowGroup>)> {
    let values: usize = row_groups
        .iter()
        .map(|b| b.num_rows() * b.num_columns())
        .sum();
    let (bytes, stats) = encode_to(
        Vec::with_capacity((values * 8).min(1 << 30) + 4096),
        schema,
        row_groups,
    )?;
    Ok((Bytes::from(bytes), stats))
}

/// Bounds on the ordered column applied while decoding: `start <= column < end`.
#[derive(Debug, Clone)]
pub struct RangeFilter {
    pub column: String,
    pub start: Option<OrderedValue>,
    pub end: Option<OrderedValue>,
}

/// Reads one immutable file of the store for the Parquet decoder: byte ranges through
/// object_store, and the footer with its page index (so range reads can skip pages).
struct StoreFileReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

impl AsyncFileReader for StoreFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Opens a file for reading, with its footer and page index from the cache when a previous
/// read loaded them (files are immutable, so a cached footer never goes stale).
async fn open(store: &DataStore, path: &str) -> Result<(StoreFileReader, ArrowReaderMetadata)> {
    let wrap = |source| StoreError::Parquet {
        path: path.to_string(),
        source,
    };
    let location = ObjectPath::from(path);
    if let Some((size, meta)) = store.footers().get(path) {
        let reader = StoreFileReader {
            store: store.object_store().clone(),
            path: location,
            size,
        };
        return Ok((reader, meta));
    }
    let size = store.head(path).await?.size;
    let mut reader = StoreFileReader {
        store: store.object_store().clone(),
        path: location,
        size,
    };
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let meta = ArrowReaderMetadata::load_async(&mut reader, options)
        .await
        .map_err(wrap)?;
    store.footers().insert(path, size, meta.clone());
    Ok((reader, meta))
}

/// How many row groups the file at `path` holds, from its (cached) footer.
pub async fn row_group_count(store: &DataStore, path: &str) -> Result<u32> {
    let (_, meta) = open(store, path).await?;
    Ok(meta.metadata().num_row_groups() as u32)
}

/// Decodes row groups `indices` (in that order) of the file at `path`, with only `columns`
/// when given (names absent from the file are skipped: the caller fills them with nulls),
/// and only the rows `filter` keeps. With a filter, the ordered column is decoded first and
/// the pages of other columns that hold no selected row are skipped (via the page index).
pub async fn read_filtered(
    store: &DataStore,
    path: &str,
    indices: &[u32],
    columns: Option<&[String]>,
    filter: Option<&RangeFilter>,
) -> Result<Vec<RecordBatch>> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let (stream, _) = decode(store, path, indices, columns, filter, None).await?;
    stream.try_collect().await
}

/// The rows a streamed batch holds at most: a row group of the default target, and bounded
/// memory for files written with larger row groups.
pub const STREAM_BATCH_ROWS: usize = 100_000;

/// [`read_filtered`] as a stream: one batch per row group (row groups larger than
/// [`STREAM_BATCH_ROWS`] come in several), decoded as the stream is polled. Only the row
/// group being decoded is in memory: its column chunks, then its batch.
pub async fn stream_filtered(
    store: &DataStore,
    path: &str,
    indices: &[u32],
    columns: Option<&[String]>,
    filter: Option<&RangeFilter>,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    if indices.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    Ok(decode(
        store,
        path,
        indices,
        columns,
        filter,
        Some(STREAM_BATCH_ROWS),
    )
    .await?
    .0)
}

/// Opens a decoding stream over row groups `indices` of the file at `path`, with batches of
/// at most `max_batch_rows` (a whole row group per batch when `None`); also returns the
/// file's footer.
async fn decode(
    store: &DataStore,
    path: &str,
    indices: &[u32],
    columns: Option<&[String]>,
    filter: Option<&RangeFilter>,
    max_batch_rows: Option<usize>,
) -> Result<(BoxStream<'static, Result<RecordBatch>>, ArrowReaderMetadata)> {
    let wrap = |source| StoreError::Parquet {
        path: path.to_string(),
        source,
    };
    let (reader, meta) = open(store, path).await?;
    let n = meta.metadata().num_row_groups();
    if let Some(bad) = indices.iter().find(|i| **i as usize >= n) {
        return Err(StoreError::InvalidInput(format!(
            "{path} has {n} row groups, the catalog asks for row group {bad}: the file does not match the catalog"
        )));
    }
    let file_schema = meta.schema().clone();
    let parquet_schema = meta.metadata().file_metadata().schema_descr_ptr();
    let mask = match columns {
        Some(cols) => {
            let roots: Vec<usize> = cols
                .iter()
                .filter_map(|c| file_schema.index_of(c).ok())
                .collect();
            ProjectionMask::roots(&parquet_schema, roots)
        }
        None => ProjectionMask::all(),
    };
    let largest = indices
        .iter()
        .map(|i| meta.metadata().row_group(*i as usize).num_rows() as usize)
        .max()
        .unwrap_or(1)
        .max(1);
    let batch_rows = max_batch_rows.map_or(largest, |m| largest.min(m.max(1)));
    let footer = meta.clone();
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
        .with_row_groups(indices.iter().map(|i| *i as usize).collect())
        .with_projection(mask)
        .with_batch_size(batch_rows);
    if let Some(f) = filter {
        let index = file_schema.index_of(&f.column).map_err(|_| {
            StoreError::InvalidInput(format!("{path} has no column {:?}", f.column))
        })?;
        let (start, end) = (f.start.clone(), f.end.clone());
        let predicate = ArrowPredicateFn::new(
            ProjectionMask::roots(&parquet_schema, [index]),
            move |batch: RecordBatch| {
                let keep =
                    crate::merge::in_half_open_range(batch.column(0), start.as_ref(), end.as_ref())
                        .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
                Ok(keep.unwrap_or_else(|| BooleanArray::from(vec![true; batch.num_rows()])))
            },
        );
        builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    }
    let stream = builder.build().map_err(wrap)?;
    let path = path.to_string();
    let stream = stream
        .map_err(move |source| StoreError::Parquet {
            path: path.clone(),
            source,
        })
        .boxed();
    Ok((stream, footer))
}

/// Decodes row groups `indices` of the file at `path` whole, one batch per row group.
pub async fn read_row_groups(
    store: &DataStore,
    path: &str,
    indices: &[u32],
    columns: Option<&[String]>,
) -> Result<Vec<RecordBatch>> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let (stream, meta) = decode(store, path, indices, columns, None, None).await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let all = if batches.len() == 1 {
        batches
            .into_iter()
            .next()
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()))
    } else {
        concat_batches(&schema, &batches)?
    };
    let mut out = Vec::with_capacity(indices.len());
    let mut offset = 0;
    for i in indices {
        let size = meta.metadata().row_group(*i as usize).num_rows() as usize;
        out.push(all.slice(offset, size));
        offset += size;
    }
    Ok(out)
}
