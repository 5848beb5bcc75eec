//! Writes of inputs larger than memory (docs/design/0008-streaming-writes.md). A large input
//! that arrives sorted and begins after the head's last row is cut into row groups and
//! encoded as it arrives; any other input is planned in memory by [`Lake::write`], up to
//! [`IN_MEMORY_LIMIT_BYTES`] of decoded rows.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot::Snapshot;
use crate::writer::{
    Committed, Summary, WriteOutcome, WriteRequest, commit_request, input_layout, writable_uri,
};
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use tarn_catalog::NewFile;
use tarn_core::{DuplicatesOn, OrderedValue, RowGroupTarget, TarnUri};
use tarn_store::merge::{bounds as first_last, is_sorted_on};
use tarn_store::mutation::DatasetLayout;
use tarn_store::stream::{RowGroupCutter, StreamDedup, read_rows};
use tarn_store::{RowGroupRef, merge, parquet_io, schema};

/// A stream of input rows.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// Inputs smaller than this (decoded) are planned in memory, as one batch. Small, so that a
/// bulk load starts encoding early and decoding its input overlaps encoding the file.
pub const STREAM_THRESHOLD_BYTES: usize = 4 << 20;

/// The most decoded input a write plans in memory when it cannot stream (unsorted, or
/// overlapping existing rows): past it the write fails and says what to do.
pub const IN_MEMORY_LIMIT_BYTES: usize = 2 << 30;

/// Row groups in flight between cutting and encoding.
const CHANNEL_ROW_GROUPS: usize = 1;

/// The beginning of an input, read until the write knows how to proceed.
struct Buffered {
    batches: Vec<RecordBatch>,
    bytes: usize,
    rows: usize,
}

impl Buffered {
    fn push(&mut self, batch: RecordBatch) {
        self.bytes += batch.get_array_memory_size();
        self.rows += batch.num_rows();
        self.batches.push(batch);
    }
}

/// What a streamed write did before committing.
struct Streamed {
    file: NewFile,
    /// Existing rows at the start of the file (the merged tail).
    prefix_rows: u64,
    removed: Vec<i64>,
    rows_in: u64,
}

/// How streaming ended.
enum StreamEnd {
    Done(Streamed),
    /// A batch broke the order: the rows streamed so far are in `file` after its first
    /// `prefix_rows`; `rest` is the batch that broke it and what follows.
    OutOfOrder {
        file: String,
        prefix_rows: u64,
        rest: Vec<RecordBatch>,
        unread: BatchStream,
    },
}

impl Lake {
    /// Merges a stream of rows into the dataset named by `uri` (SPEC §3), as [`Lake::write`]
    /// does with one batch, in bounded memory when the input is large, sorted on
    /// `ordered_on` and begins after the dataset's last row (a bulk load or an append).
    /// `schema` is the input's schema; every batch must have it.
    pub async fn write_stream(
        &self,
        uri: &str,
        schema: SchemaRef,
        input: BatchStream,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        self.write_stream_attempt(uri, schema, input, request, 1)
            .await
    }

    async fn write_stream_attempt(
        &self,
        uri: &str,
        schema: SchemaRef,
        mut input: BatchStream,
        request: WriteRequest,
        attempt: u32,
    ) -> Result<WriteOutcome> {
        let target = writable_uri(uri)?;
        let mut buffered = Buffered {
            batches: Vec::new(),
            bytes: 0,
            rows: 0,
        };
        let threshold = request.buffer_bytes.unwrap_or(STREAM_THRESHOLD_BYTES);
        while buffered.bytes < threshold || buffered.rows == 0 {
            match input.try_next().await? {
                Some(batch) => buffered.push(batch),
                None => return self.write_buffered(uri, &schema, buffered, request).await,
            }
        }
        let head = self.head(&target).await?;
        if head.is_none() {
            self.check_new_dataset_name(&target).await?;
        }
        let empty = RecordBatch::new_empty(schema.clone());
        let (layout, _, _) = input_layout(&target, head.as_ref(), &empty, &request)?;
        let mut aligned = Vec::with_capacity(buffered.batches.len());
        for b in std::mem::take(&mut buffered.batches) {
            aligned.push(prepare(&b, &layout)?);
        }
        buffered.batches = aligned;
        let existing = match &head {
            Some(h) => h.row_groups(self, None, None).await?,
            None => Vec::new(),
        };
        let Some(prefix) = stream_prefix(&existing, &buffered.batches, &layout)? else {
            return self
                .write_in_memory(uri, &layout, buffered.batches, input, request)
                .await;
        };
        // With a row-count target, stream once the new rows fill the tail to a target
        // row group (SPEC §3.5 then merges the whole tail); until then keep reading.
        if let RowGroupTarget::Rows(n) = layout.options.row_group_target {
            let tail_rows: u64 = prefix.iter().map(|rg| rg.rows).sum();
            while (buffered.rows as u64) + tail_rows < n {
                match input.try_next().await? {
                    Some(batch) => {
                        let batch = prepare(&batch, &layout)?;
                        buffered.push(batch);
                    }
                    None => return self.write_buffered(uri, &schema, buffered, request).await,
                }
            }
            if !sorted_after(&buffered.batches, &layout.ordered_on, None)? {
                return self
                    .write_in_memory(uri, &layout, buffered.batches, input, request)
                    .await;
            }
        }
        let base_version = head.as_ref().map_or(0, |h| h.version.version);
        let end = self
            .stream_file(&target, &layout, &prefix, buffered.batches, input)
            .await?;
        let streamed = match end {
            StreamEnd::Done(s) => s,
            StreamEnd::OutOfOrder {
                file,
                prefix_rows,
                rest,
                unread,
            } => {
                let mut batches = self
                    .read_back(&file, prefix_rows, &layout.schema)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await?;
                let _ = self.store.delete(&file).await;
                batches.extend(rest);
                return self
                    .write_in_memory(uri, &layout, batches, unread, request)
                    .await;
            }
        };
        let metadata = new_metadata(head.as_ref(), &request);
        let summary = Summary {
            operation: "write",
            base_version,
            rows_in: streamed.rows_in,
            rows_rewritten: streamed.prefix_rows,
            row_groups_removed: streamed.removed.len() as u64,
            attempt,
            planned_branch: head.as_ref().map(|h| h.branch.id),
        };
        // The dataset keeps the options of its first write; overrides apply per write.
        let stored = DatasetLayout {
            options: head
                .as_ref()
                .map_or_else(|| layout.options.clone(), |h| h.options.clone()),
            ..layout.clone()
        };
        let commit = commit_request(
            &target,
            &stored,
            &metadata,
            &request.message,
            &summary,
            Some(streamed.file.clone()),
            streamed.removed.clone(),
        )?;
        let path = streamed.file.path.clone();
        let prefix_rows = streamed.prefix_rows;
        match self
            .commit_file(&target, commit, Some(streamed.file), &summary, true)
            .await?
        {
            Committed::Done(outcome) => Ok(outcome),
            Committed::Conflict => {
                // The new file holds the input's rows after its prefix: plan them again on
                // the new head, reading them back from it, then drop it (nothing
                // references it).
                let retried = if attempt >= crate::writer::MAX_ATTEMPTS {
                    Err(Error::TooManyConflicts {
                        what: format!("write of {target}"),
                        attempts: attempt,
                    })
                } else {
                    tokio::time::sleep(crate::writer::jitter(
                        crate::writer::FIRST_BACKOFF * 2u32.pow(attempt.min(6)),
                        attempt,
                    ))
                    .await;
                    let rows = self.read_back(&path, prefix_rows, &layout.schema).await?;
                    Box::pin(self.write_stream_attempt(
                        uri,
                        layout.schema.clone(),
                        rows,
                        request,
                        attempt + 1,
                    ))
                    .await
                };
                let _ = self.store.delete(&path).await;
                retried
            }
        }
    }

    /// A small input: one batch, planned in memory.
    async fn write_buffered(
        &self,
        uri: &str,
        schema: &SchemaRef,
        buffered: Buffered,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        let batch = match buffered.batches.as_slice() {
            [] => RecordBatch::new_empty(schema.clone()),
            [one] => one.clone(),
            all => concat_batches(&all[0].schema(), all)?,
        };
        self.write(uri, batch, request).await
    }

    /// A large input that cannot stream: read the rest into memory, within the limit.
    async fn write_in_memory(
        &self,
        uri: &str,
        layout: &DatasetLayout,
        mut batches: Vec<RecordBatch>,
        mut rest: BatchStream,
        request: WriteRequest,
    ) -> Result<WriteOutcome> {
        let mut bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        loop {
            if bytes > IN_MEMORY_LIMIT_BYTES {
                return Err(Error::InvalidInput(format!(
                    "{uri}: the input is larger than {} GiB decoded and is not sorted on {:?} after the dataset's last row; \
                     tarn sorts and merges such input in memory, up to that size: sort the input on {:?}, or write it in parts",
                    IN_MEMORY_LIMIT_BYTES >> 30,
                    layout.ordered_on,
                    layout.ordered_on
                )));
            }
            match rest.try_next().await? {
                Some(b) => {
                    let b = prepare(&b, layout)?;
                    bytes += b.get_array_memory_size();
                    batches.push(b);
                }
                None => break,
            }
        }
        let batch = concat_batches(&layout.schema, &batches)?;
        drop(batches);
        self.write(uri, batch, request).await
    }

    /// The rows of `path` after its first `skip` rows, as a stream.
    async fn read_back(&self, path: &str, skip: u64, schema: &SchemaRef) -> Result<BatchStream> {
        let n = parquet_io::row_group_count(&self.store, path).await?;
        let indices: Vec<u32> = (0..n).collect();
        let stream = parquet_io::stream_filtered(&self.store, path, &indices, None, None).await?;
        let schema = schema.clone();
        let mut skip = skip as usize;
        Ok(stream
            .map_err(Error::from)
            .try_filter_map(move |b| {
                let out = if skip >= b.num_rows() {
                    skip -= b.num_rows();
                    None
                } else {
                    let b = b.slice(skip, b.num_rows() - skip);
                    skip = 0;
                    Some(b)
                };
                let out = out
                    .map(|b| schema::conform_read(&b, &schema).map_err(Error::from))
                    .transpose();
                futures::future::ready(out)
            })
            .boxed())
    }

    /// Cuts `prefix`'s rows, then the input's, into row groups and encodes them into a new
    /// file as they come.
    async fn stream_file(
        &self,
        uri: &TarnUri,
        layout: &DatasetLayout,
        prefix: &[RowGroupRef],
        first: Vec<RecordBatch>,
        mut rest: BatchStream,
    ) -> Result<StreamEnd> {
        let path = format!("{}/{}.parquet", uri.dataset, uuid::Uuid::new_v4().simple());
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<tarn_store::Result<RecordBatch>>(CHANNEL_ROW_GROUPS);
        let store = self.store.clone();
        let encode_schema = layout.schema.clone();
        let encode_path = path.clone();
        let encoder = tokio::spawn(async move {
            store
                .write_new(&encode_path, move |out| {
                    let groups = std::iter::from_fn(move || rx.blocking_recv());
                    Ok(parquet_io::encode_iter(out, &encode_schema, groups)?.1)
                })
                .await
        });
        let mut cutter = RowGroupCutter::new(
            layout.schema.clone(),
            &layout.ordered_on,
            layout.kind,
            layout.options.row_group_target,
        );
        let key = merge::key_columns(
            &layout.schema,
            &layout.ordered_on,
            &layout.options.duplicates_on,
        )?;
        let mut dedup = match (&layout.options.duplicates_on, key) {
            (DuplicatesOn::None, _) | (_, None) => None,
            (_, Some(key)) => Some(StreamDedup::new(
                layout.schema.clone(),
                &layout.ordered_on,
                key,
            )),
        };
        let mut bounds: Vec<(OrderedValue, OrderedValue)> = Vec::new();
        let mut rows_in = 0u64;
        // Sends complete row groups to the encoder; false when the encoder stopped.
        async fn send(
            tx: &tokio::sync::mpsc::Sender<tarn_store::Result<RecordBatch>>,
            groups: Vec<RecordBatch>,
            ordered_on: &str,
            bounds: &mut Vec<(OrderedValue, OrderedValue)>,
        ) -> Result<bool> {
            for g in groups {
                bounds.push(first_last(&g, ordered_on)?);
                if tx.send(Ok(g)).await.is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        let prefix_refs: Vec<&RowGroupRef> = prefix.iter().collect();
        let tail = read_rows(&self.store, &prefix_refs, &layout.schema).await?;
        let prefix_rows = tail.num_rows() as u64;
        let mut open = send(&tx, cutter.push(tail)?, &layout.ordered_on, &mut bounds).await?;
        let mut last: Option<OrderedValue> = None;
        let mut pending: std::collections::VecDeque<RecordBatch> = first.into();
        let mut out_of_order: Option<Vec<RecordBatch>> = None;
        let mut failure: Option<Error> = None;
        while open {
            let batch = match pending.pop_front() {
                Some(b) => b,
                None => match rest.try_next().await {
                    Ok(Some(b)) => match prepare(&b, layout) {
                        Ok(b) => b,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
            };
            if batch.num_rows() == 0 {
                continue;
            }
            if !sorted_after(
                std::slice::from_ref(&batch),
                &layout.ordered_on,
                last.as_ref(),
            )? {
                let mut rest_batches = vec![batch];
                rest_batches.extend(pending.drain(..));
                out_of_order = Some(rest_batches);
                break;
            }
            last = Some(first_last(&batch, &layout.ordered_on)?.1);
            let rows = match &mut dedup {
                Some(d) => d.push(batch)?,
                None => batch,
            };
            rows_in += rows.num_rows() as u64;
            open = send(&tx, cutter.push(rows)?, &layout.ordered_on, &mut bounds).await?;
        }
        if let Some(rest_batches) = &mut out_of_order {
            // Rows held back for deduplication were not written: they go with the rest.
            if let Some(held) = dedup.take().and_then(|d| d.held_rows()) {
                rest_batches.insert(0, held);
            }
            if let Some(last_group) = cutter.finish()?
                && open
            {
                send(&tx, vec![last_group], &layout.ordered_on, &mut bounds).await?;
            }
        } else if failure.is_none() {
            let mut tail_groups = Vec::new();
            if let Some(d) = dedup.take()
                && let Some(held) = d.finish()?
            {
                rows_in += held.num_rows() as u64;
                tail_groups.extend(cutter.push(held)?);
            }
            tail_groups.extend(cutter.finish()?);
            if open {
                send(&tx, tail_groups, &layout.ordered_on, &mut bounds).await?;
            }
        }
        if let Some(e) = failure.take() {
            // The encoder sees the error, stops and removes its temporary file.
            let _ = tx
                .send(Err(tarn_store::StoreError::InvalidInput(e.to_string())))
                .await;
            drop(tx);
            let _ = encoder.await;
            return Err(e);
        }
        drop(tx);
        let (stats, size) = encoder
            .await
            .map_err(|e| tarn_store::StoreError::Task(e.to_string()))??;
        let row_groups = crate::writer::new_row_groups(&stats, &bounds);
        if let Some(batches) = out_of_order {
            return Ok(StreamEnd::OutOfOrder {
                file: path,
                prefix_rows,
                rest: batches,
                unread: rest,
            });
        }
        Ok(StreamEnd::Done(Streamed {
            file: NewFile {
                path,
                bytes: size,
                row_groups,
            },
            prefix_rows,
            removed: prefix.iter().map(|rg| rg.id).collect(),
            rows_in,
        }))
    }
}

/// Aligns an input batch to the dataset's schema and checks its `ordered_on` (SPEC §3.2).
fn prepare(batch: &RecordBatch, layout: &DatasetLayout) -> Result<RecordBatch> {
    let (aligned, _) = schema::align_batch(batch, &layout.schema, false)?;
    let aligned = aligned.with_schema(layout.schema.clone())?;
    merge::check_ordered_column(&aligned, &layout.ordered_on)?;
    Ok(merge::normalize_ordered_column(
        aligned,
        &layout.ordered_on,
    )?)
}

/// True when the batches are sorted, one after the other, and begin at or after `after`.
fn sorted_after(
    batches: &[RecordBatch],
    ordered_on: &str,
    after: Option<&OrderedValue>,
) -> Result<bool> {
    let mut last = after.cloned();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        if !is_sorted_on(b, ordered_on)? {
            return Ok(false);
        }
        let (first, end) = first_last(b, ordered_on)?;
        if last.as_ref().is_some_and(|l| first < *l) {
            return Ok(false);
        }
        last = Some(end);
    }
    Ok(true)
}

/// When the input can stream, the existing row groups that go first into the new file:
/// the trailing off-target row groups (all of them: the new rows fill at least a target
/// row group), or with a frequency target those of the first new row's period; `None` when
/// the input is unsorted or does not begin after the head's last row.
fn stream_prefix(
    existing: &[RowGroupRef],
    batches: &[RecordBatch],
    layout: &DatasetLayout,
) -> Result<Option<Vec<RowGroupRef>>> {
    if !sorted_after(batches, &layout.ordered_on, None)? {
        return Ok(None);
    }
    let Some(first_batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let first = first_last(first_batch, &layout.ordered_on)?.0;
    let Some(last_rg) = existing.last() else {
        return Ok(Some(Vec::new()));
    };
    // A row equal to the last existing value shares a boundary with the last row group.
    if first <= last_rg.max {
        return Ok(None);
    }
    let mut t = existing.len();
    match &layout.options.row_group_target {
        RowGroupTarget::Rows(n) => {
            while t > 0 && existing[t - 1].rows < *n {
                t -= 1;
            }
        }
        RowGroupTarget::Frequency(f) => {
            let kind = layout.kind;
            let p = f.period_of(&first, kind);
            while t > 0 && p.is_some() && f.period_of(&existing[t - 1].max, kind) == p {
                t -= 1;
            }
        }
    }
    // Closed over equal boundary values.
    while t > 0 && t < existing.len() && existing[t - 1].max == existing[t].min {
        t -= 1;
    }
    Ok(Some(existing[t..].to_vec()))
}

/// The metadata of the version a write creates.
fn new_metadata(head: Option<&Snapshot>, request: &WriteRequest) -> BTreeMap<String, String> {
    let mut metadata = head.map(|h| h.version.metadata.clone()).unwrap_or_default();
    for k in &request.unset_metadata {
        metadata.remove(k);
    }
    metadata.extend(request.set_metadata.clone());
    metadata
}
