//! Encoding row groups into one Parquet file, and decoding chosen row groups and columns
//! of a file. Files are plain Parquet with the Arrow schema embedded, readable by any tool.

use crate::durable::DataStore;
use crate::error::{Result, StoreError};
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::file::metadata::PageIndexPolicy;
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows and compressed bytes of one written row group.
#[derive(Debug, Clone, Copy)]
pub struct EncodedRowGroup {
    pub rows: u64,
    pub bytes: u64,
}

fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        // Row groups are cut by tarn (one `write` + `flush` each), never by the writer.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_created_by(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    // Dictionaries only pay off for repeated values: skip the attempt for measurements
    // and time stamps, which are nearly always distinct.
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Timestamp(_, _)
        ) {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    builder.build()
}

/// Encodes each batch as one row group of a single Parquet file.
pub fn encode(schema: &SchemaRef, row_groups: &[RecordBatch]) -> Result<(Bytes, Vec<EncodedRowGroup>)> {
    let wrap = |source| StoreError::Parquet {
        path: "<new file>".into(),
        source,
    };
    let capacity: usize = row_groups.iter().map(|b| b.get_array_memory_size()).sum::<usize>() / 2 + 4096;
    let mut writer = ArrowWriter::try_new(Vec::with_capacity(capacity), schema.clone(), Some(writer_properties(schema)))
        .map_err(wrap)?;
    for batch in row_groups.iter().filter(|b| b.num_rows() > 0) {
        writer.write(batch).map_err(wrap)?;
        writer.flush().map_err(wrap)?;
    }
    let stats = writer
        .flushed_row_groups()
        .iter()
        .map(|rg| EncodedRowGroup {
            rows: rg.num_rows() as u64,
            bytes: rg.compressed_size() as u64,
        })
        .collect();
    let bytes = writer.into_inner().map_err(wrap)?;
    Ok((Bytes::from(bytes), stats))
}

/// Decodes row groups `indices` (in that order) of the file at `path`, with only `columns`
/// when given (names absent from the file are skipped: the caller fills them with nulls).
/// Returns one batch per row group.
pub async fn read_row_groups(
    store: &DataStore,
    path: &str,
    indices: &[u32],
    columns: Option<&[String]>,
) -> Result<Vec<RecordBatch>> {
    let wrap = |source| StoreError::Parquet {
        path: path.to_string(),
        source,
    };
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(store.object_store().clone(), ObjectPath::from(path));
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip))
        .await
        .map_err(wrap)?;
    let metadata = builder.metadata().clone();
    let n = metadata.num_row_groups();
    if let Some(bad) = indices.iter().find(|i| **i as usize >= n) {
        return Err(StoreError::InvalidInput(format!(
            "{path} has {n} row groups, the catalog asks for row group {bad}: the file does not match the catalog"
        )));
    }
    let file_schema = builder.schema().clone();
    let mask = match columns {
        Some(cols) => {
            let roots: Vec<usize> = cols.iter().filter_map(|c| file_schema.index_of(c).ok()).collect();
            ProjectionMask::roots(builder.parquet_schema(), roots)
        }
        None => ProjectionMask::all(),
    };
    let sizes: Vec<usize> = indices
        .iter()
        .map(|i| metadata.row_group(*i as usize).num_rows() as usize)
        .collect();
    let largest = sizes.iter().copied().max().unwrap_or(1).max(1);
    let stream = builder
        .with_row_groups(indices.iter().map(|i| *i as usize).collect())
        .with_projection(mask)
        .with_batch_size(largest)
        .build()
        .map_err(wrap)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(wrap)?;
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let all = if batches.len() == 1 {
        batches.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(schema.clone()))
    } else {
        concat_batches(&schema, &batches)?
    };
    let mut out = Vec::with_capacity(sizes.len());
    let mut offset = 0;
    for size in sizes {
        out.push(all.slice(offset, size));
        offset += size;
    }
    Ok(out)
}
