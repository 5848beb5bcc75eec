//! `--breakdown`: where the time of a tarn write or read goes.
//!
//! Re-runs W1, some W2 appends, W3 and W4 step by step with the building blocks `Lake::write`
//! and `Lake::read` are made of (`tarn_store::mutation::execute`, `parquet_io::encode`,
//! `DataStore::put`, `Catalog::commit`, ...), timing each step, next to the same operation
//! through the public API. Printed to stderr; nothing goes to the results file. The steps
//! follow crates/tarn/src/writer.rs and read.rs; if those change, the sum of the steps
//! drifting away from the API time says so.

use crate::Internals;
use crate::{Inputs, MINUTE_NS, URI, fresh_lake, median, secs, ts_values};
use anyhow::Result;
use arrow::array::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tarn::{DuplicatesOn, Lake, OrderedKind, ReadRequest, TarnUri, WriteOptions, WriteRequest};
use tarn_catalog::{CommitRequest, NewFile};
use tarn_store::mutation::{self, DatasetLayout, Mutation};
use tarn_store::{DataStore, merge, parquet_io, schema};

/// Seconds per step of one mutation, in order.
type Steps = Vec<(&'static str, f64)>;

/// One write, step by step, committed like `Lake::write` commits it.
async fn write_steps(
    lake: &Lake,
    parts: &Internals,
    batch: &RecordBatch,
    duplicates_on: Option<DuplicatesOn>,
    seq: usize,
) -> Result<Steps> {
    let uri = TarnUri::parse_lenient(URI)?;
    let mut steps = Steps::new();
    let t = Instant::now();
    let head = match lake.snapshot(URI).await {
        Ok(s) => Some(s),
        Err(e) if e.kind() == tarn::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    steps.push(("resolve head", secs(t)));

    let t = Instant::now();
    let existing = match &head {
        Some(h) => h.row_groups(lake, None, None).await?,
        None => Vec::new(),
    };
    steps.push(("list row groups", secs(t)));

    let t = Instant::now();
    let (layout, stored_options, aligned) = match &head {
        Some(h) => {
            let (aligned, _) = schema::align_batch(batch, h.schema(), false)?;
            let mut options = h.options().clone();
            if let Some(d) = &duplicates_on {
                options.duplicates_on = d.clone();
            }
            let layout = DatasetLayout {
                schema: h.schema().clone(),
                ordered_on: h.ordered_on().to_string(),
                kind: h.kind(),
                options,
            };
            (
                layout,
                h.options().clone(),
                aligned.with_schema(h.schema().clone())?,
            )
        }
        None => {
            let s = schema::normalize_schema(batch.schema().as_ref());
            let kind = OrderedKind::of("ts", s.field_with_name("ts")?.data_type())?;
            let (aligned, _) = schema::align_batch(batch, &s, false)?;
            let options = WriteOptions {
                duplicates_on: duplicates_on.unwrap_or_default(),
                ..WriteOptions::default()
            };
            let layout = DatasetLayout {
                schema: s,
                ordered_on: "ts".into(),
                kind,
                options: options.clone(),
            };
            (layout, options, aligned)
        }
    };
    steps.push(("align input", secs(t)));

    // The old row groups the mutation will decode, decoded alone first (warms the cache the
    // same way the real write would find it: the file was just written or read).
    let t = Instant::now();
    let out = mutation::execute(&parts.store, &existing, &layout, Mutation::Write(aligned)).await?;
    let merge_s = secs(t);
    let removed: Vec<_> = existing
        .iter()
        .filter(|r| out.removed.contains(&r.id))
        .collect();
    let t = Instant::now();
    let mut old = Vec::new();
    for rg in &removed {
        old.extend(
            parquet_io::read_row_groups(&parts.store, &rg.path, &[rg.rg_index], None).await?,
        );
    }
    let decode_s = secs(t);
    steps.push(("plan+merge (execute)", merge_s));
    steps.push(("  of which decode old rgs (re-measured)", decode_s));
    // The merge kernels on the same rows, one by one (re-measured; see mutation.rs).
    let old = old
        .iter()
        .map(|b| schema::conform_read(b, &layout.schema))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let old = arrow::compute::concat_batches(&layout.schema, &old)?;
    let (input, _) = schema::align_batch(batch, &layout.schema, false)?;
    let t = Instant::now();
    let sorted = merge::sort_stable(&input, &layout.ordered_on)?;
    steps.push(("  sort input (re-measured)", secs(t)));
    let t = Instant::now();
    let merged = merge::merge_sorted(&old, &sorted, &layout.ordered_on)?;
    steps.push(("  merge_sorted old + new (re-measured)", secs(t)));
    let key = merge::key_columns(
        &layout.schema,
        &layout.ordered_on,
        &layout.options.duplicates_on,
    )?;
    let t = Instant::now();
    if let Some(key) = key
        && sorted.num_rows() > 0
    {
        let (lo, hi) = merge::bounds(&sorted, &layout.ordered_on)?;
        merge::dedup_keep_last(&merged, &layout.ordered_on, &key, Some((&lo, &hi)))?;
    }
    steps.push(("  dedup_keep_last (re-measured)", secs(t)));

    let t = Instant::now();
    let bounds = out
        .new_row_groups
        .iter()
        .map(|g| merge::bounds(g, &layout.ordered_on))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (bytes, stats) = parquet_io::encode(&layout.schema, &out.new_row_groups)?;
    steps.push(("encode parquet", secs(t)));

    let path = format!(
        "{}/breakdown-{}-{seq}.parquet",
        uri.dataset,
        std::process::id()
    );
    let size = bytes.len() as u64;
    // The same bytes without fsync, to a scratch name, to split write from fsync.
    if let Some(root) = parts.store.local_root() {
        let relaxed = DataStore::local(root.clone(), false)?;
        let scratch = format!("{path}.nofsync");
        let t = Instant::now();
        relaxed.put(&scratch, bytes.clone()).await?;
        steps.push(("  put without fsync (re-measured)", secs(t)));
        relaxed.delete(&scratch).await?;
    }
    let t = Instant::now();
    parts.store.put(&path, bytes).await?;
    steps.push(("put + fsync file and dir", secs(t)));

    let t = Instant::now();
    let request = CommitRequest {
        dataset: uri.dataset.clone(),
        branch: uri.branch_name(),
        base_version: head.as_ref().map_or(0, |h| h.version()),
        ordered_on: layout.ordered_on.clone(),
        operation: "write".into(),
        message: None,
        schema_json: serde_json::to_string(layout.schema.as_ref())?,
        options_json: serde_json::to_string(&stored_options)?,
        metadata: head
            .as_ref()
            .map(|h| h.metadata().clone())
            .unwrap_or_else(BTreeMap::new),
        new_file: Some(NewFile {
            path,
            bytes: size,
            row_groups: tarn::new_row_groups(&stats, &bounds),
        }),
        removed_row_groups: out.removed.clone(),
        request_id: None,
    };
    parts.catalog.writer.commit(request).await?;
    steps.push(("catalog commit (SQLite, synchronous=FULL)", secs(t)));
    Ok(steps)
}

fn print(title: &str, api: f64, runs: &[Steps]) {
    eprintln!("-- breakdown: {title} (median of {} run(s))", runs.len());
    let Some(first) = runs.first() else { return };
    let mut sum = 0.0;
    for (i, (name, _)) in first.iter().enumerate() {
        let v: Vec<f64> = runs.iter().filter_map(|r| r.get(i).map(|s| s.1)).collect();
        let m = median(&v);
        if !name.starts_with(' ') {
            sum += m;
        }
        eprintln!("   {name:<45} {:>10.3} ms", m * 1e3);
    }
    eprintln!("   {:<45} {:>10.3} ms", "sum of steps", sum * 1e3);
    eprintln!(
        "   {:<45} {:>10.3} ms",
        "same operation through the API",
        api * 1e3
    );
}

/// Appends timed step by step (and as many again through the API).
pub const APPENDS: usize = 40;

pub async fn run(inp: &Inputs, dir: &Path, keep: bool) -> Result<()> {
    eprintln!("== breakdown (stderr only)");
    // W1, step by step into a fresh lake, then through the API into another.
    let lake = fresh_lake(&dir.join("steps")).await?;
    let parts = crate::internals(&dir.join("steps")).await?;
    let w1_steps = write_steps(&lake, &parts, &inp.w1, None, 0).await?;
    let api_lake = fresh_lake(&dir.join("api")).await?;
    let t = Instant::now();
    api_lake
        .write(URI, inp.w1.clone(), WriteRequest::new().ordered_on("ts"))
        .await?;
    print("W1 bulk write", secs(t), &[w1_steps]);

    // W4 on the W1 state.
    let mut snap_t = Vec::new();
    let mut list_t = Vec::new();
    let mut decode_t = Vec::new();
    let mut read_t = Vec::new();
    let mut api_t = Vec::new();
    for i in 0..16 {
        let t = Instant::now();
        let snap = lake.snapshot(URI).await?;
        let s = secs(t);
        let req = ReadRequest::parse(&snap, Some(&inp.start), Some(&inp.end), None)?;
        let t = Instant::now();
        let rgs = snap
            .row_groups(&lake, req.start.as_ref(), req.end.as_ref())
            .await?;
        let l = secs(t);
        let t = Instant::now();
        for rg in &rgs {
            parquet_io::read_row_groups(&parts.store, &rg.path, &[rg.rg_index], None).await?;
        }
        let d = secs(t);
        let t = Instant::now();
        lake.read(&snap, &req).await?;
        let r = secs(t);
        let t = Instant::now();
        let snap = lake.snapshot(URI).await?;
        let req = ReadRequest::parse(&snap, Some(&inp.start), Some(&inp.end), None)?;
        lake.read(&snap, &req).await?;
        let a = secs(t);
        if i > 0 {
            snap_t.push(s);
            list_t.push(l);
            decode_t.push(d);
            read_t.push(r);
            api_t.push(a);
        }
    }
    let runs: Vec<Steps> = (0..snap_t.len())
        .map(|i| {
            vec![
                ("resolve snapshot", snap_t[i]),
                ("  list row groups in range (re-measured)", list_t[i]),
                ("  decode those row groups (re-measured)", decode_t[i]),
                ("lake.read (list + decode + filter)", read_t[i]),
            ]
        })
        .collect();
    print("W4 one-week read", median(&api_t), &runs);

    // W2: appends step by step, then as many through the API, on the same lake.
    let n = APPENDS.min(inp.w2.len() / 2);
    if n > 0 {
        let mut runs = Vec::new();
        for (i, day) in inp.w2[..n].iter().enumerate() {
            runs.push(write_steps(&lake, &parts, day, None, i + 1).await?);
        }
        let mut api = Vec::new();
        for day in &inp.w2[n..2 * n] {
            let t = Instant::now();
            lake.write(URI, day.clone(), WriteRequest::new()).await?;
            api.push(secs(t));
        }
        print(
            &format!("W2 append (first {n} appends step by step, next {n} via the API)"),
            median(&api),
            &runs,
        );
    }

    // W3 on the fresh API lake (W1 state).
    let w3_steps = {
        let l = fresh_lake(&dir.join("w3-steps")).await?;
        let l_parts = crate::internals(&dir.join("w3-steps")).await?;
        l.write(URI, inp.w1.clone(), WriteRequest::new().ordered_on("ts"))
            .await?;
        write_steps(&l, &l_parts, &inp.w3, Some(DuplicatesOn::parse("ts")), 0).await?
    };
    let t = Instant::now();
    api_lake
        .write(
            URI,
            inp.w3.clone(),
            WriteRequest::new().duplicates_on(DuplicatesOn::parse("ts")),
        )
        .await?;
    print("W3 upsert of 432 rows", secs(t), &[w3_steps]);
    let wts = ts_values(&inp.w3)?;
    let span = (wts.value(wts.len() - 1) - wts.value(0)) / MINUTE_NS + 1;
    eprintln!("   (the upsert spans {span} minutes of w1)");
    drop((lake, api_lake));
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
