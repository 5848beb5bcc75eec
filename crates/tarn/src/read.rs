//! Range reads of a snapshot (SPEC §4): only the row groups whose min/max can hold the range
//! are opened (the catalog prunes them in SQL), only the asked columns are decoded, and rows
//! come back in order, one batch per row group (or less), as a stream decoded as it is
//! polled.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot::Snapshot;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use std::sync::Arc;
use tarn_core::OrderedValue;
use tarn_store::parquet_io::{self, RangeFilter};
use tarn_store::{RowGroupRef, schema::conform_read};

/// `start <= ordered_on < end`, and the columns to return (all when `None`).
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    pub start: Option<OrderedValue>,
    pub end: Option<OrderedValue>,
    pub columns: Option<Vec<String>>,
}

impl ReadRequest {
    /// Parses textual bounds (`--start`/`--end`) in the type of the snapshot's `ordered_on`.
    pub fn parse(
        snapshot: &Snapshot,
        start: Option<&str>,
        end: Option<&str>,
        columns: Option<Vec<String>>,
    ) -> Result<Self> {
        let parse = |t: &str| snapshot.kind.parse(snapshot.ordered_on(), t);
        let request = Self {
            start: start.map(parse).transpose()?,
            end: end.map(parse).transpose()?,
            columns,
        };
        if let (Some(s), Some(e)) = (&request.start, &request.end)
            && s >= e
        {
            return Err(Error::InvalidInput(format!(
                "bad range: --start {} must be before --end {} (the range is [start, end))",
                start.unwrap_or_default(),
                end.unwrap_or_default()
            )));
        }
        Ok(request)
    }
}

impl Lake {
    /// The output schema of a read.
    pub fn read_schema(&self, snapshot: &Snapshot, request: &ReadRequest) -> Result<SchemaRef> {
        match &request.columns {
            None => Ok(snapshot.schema.clone()),
            Some(cols) => {
                let fields = cols
                    .iter()
                    .map(|c| {
                        snapshot.schema.field_with_name(c).cloned().map_err(|_| {
                            Error::InvalidInput(format!(
                                "column {c:?} is not in {} (columns: {})",
                                snapshot.dataset.name,
                                snapshot
                                    .schema
                                    .fields()
                                    .iter()
                                    .map(|f| f.name().as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Arc::new(Schema::new(fields)))
            }
        }
    }

    /// Streams the rows of `snapshot` in `request`'s range, in order.
    pub async fn read_stream(
        &self,
        snapshot: &Snapshot,
        request: &ReadRequest,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        if let (Some(s), Some(e)) = (&request.start, &request.end)
            && s >= e
        {
            return Err(Error::InvalidInput(format!(
                "bad range: start {} must be before end {} (the range is [start, end))",
                s.display(snapshot.kind),
                e.display(snapshot.kind)
            )));
        }
        let out_schema = self.read_schema(snapshot, request)?;
        let rgs = snapshot
            .row_groups(self, request.start.as_ref(), request.end.as_ref())
            .await?;
        let decode: Vec<String> = out_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let ordered_on = snapshot.ordered_on().to_string();
        let runs = runs_by_file(rgs);
        let store = self.store.clone();
        let start = request.start.clone();
        let end = request.end.clone();
        let stream = stream::iter(runs)
            .map(move |run| {
                let store = store.clone();
                let decode = decode.clone();
                let out_schema = out_schema.clone();
                let ordered_on = ordered_on.clone();
                let (start, end) = (start.clone(), end.clone());
                async move {
                    let indices: Vec<u32> = run.iter().map(|r| r.rg_index).collect();
                    // Row groups entirely inside the range need no row filter.
                    let inside = run.iter().all(|rg| {
                        start.as_ref().is_none_or(|s| rg.min >= *s)
                            && end.as_ref().is_none_or(|e| rg.max < *e)
                    });
                    let filter = (!inside).then(|| RangeFilter {
                        column: ordered_on.clone(),
                        start: start.clone(),
                        end: end.clone(),
                    });
                    let batches = parquet_io::stream_filtered(
                        &store,
                        &run[0].path,
                        &indices,
                        Some(&decode),
                        filter.as_ref(),
                    )
                    .await?;
                    Ok::<_, Error>(batches.map_err(Error::from).try_filter_map(move |batch| {
                        let out = (batch.num_rows() > 0)
                            .then(|| conform_read(&batch, &out_schema))
                            .transpose()
                            .map_err(Error::from);
                        futures::future::ready(out)
                    }))
                }
            })
            // Open the next file (its footer) while the current one is decoded; a file's
            // row groups are decoded one at a time as the stream is polled, so memory holds
            // about one row group whatever the size of the file or the range.
            .buffered(2)
            .try_flatten();
        Ok(stream.boxed())
    }

    /// Reads the rows of `snapshot` in `request`'s range into memory.
    pub async fn read(
        &self,
        snapshot: &Snapshot,
        request: &ReadRequest,
    ) -> Result<Vec<RecordBatch>> {
        self.read_stream(snapshot, request)
            .await?
            .try_collect()
            .await
    }
}

/// Groups row groups into runs of consecutive row groups of the same file.
fn runs_by_file(rgs: Vec<RowGroupRef>) -> Vec<Vec<RowGroupRef>> {
    let mut runs: Vec<Vec<RowGroupRef>> = Vec::new();
    for rg in rgs {
        match runs.last_mut() {
            Some(run) if run[0].path == rg.path => run.push(rg),
            _ => runs.push(vec![rg]),
        }
    }
    runs
}
