//! Helpers shared by the integration tests: lakes on every backend (tarn-testkit's
//! `LakePlace`: SQLite + local files, PostgreSQL + S3), building and decoding `k/id/v`
//! batches, a reference model of the ordered merge (SPEC §3), and fingerprints of a lake's
//! visible state (its log and the files of its storage).

#![allow(dead_code)]

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tarn::{Durability, Lake, OrderedValue, ReadRequest};
pub use tarn_testkit::{Backend, LakePlace};

/// A multi-threaded runtime like the one the CLI runs on (the catalog uses blocking tasks).
pub fn runtime() -> tokio::runtime::Runtime {
    tarn_testkit::runtime()
}

/// A fresh lake in `place`, without fsyncs (on PostgreSQL: `synchronous_commit` off) — fast;
/// durability is not what these tests check.
pub async fn relaxed_lake(place: &LakePlace) -> Lake {
    drop(place.init().await);
    Lake::open_with(&place.dir, Durability::Relaxed)
        .await
        .unwrap_or_else(|e| panic!("open the {} lake: {e}", place.backend.name()))
}

/// A fresh place on `backend`, for one case of a model test. The test's own place exists,
/// so the backend's servers are configured and this never skips.
pub fn case_place(backend: Backend) -> LakePlace {
    LakePlace::new(backend).expect("the servers of this test's own place are configured")
}

/// Runs `f` to completion from inside an async test (on the multi-threaded runtime of
/// `backend_tests!`): for the synchronous proptest runner of the model tests, which runs one
/// async case at a time.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// One row of the `k` (ordered_on), `id`, `v` datasets.
pub type Row = (i64, i64, i64);

pub fn kiv_batch(rows: &[Row]) -> RecordBatch {
    let col = |f: fn(&Row) -> i64| {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    RecordBatch::try_from_iter(vec![
        ("k", col(|r| r.0)),
        ("id", col(|r| r.1)),
        ("v", col(|r| r.2)),
    ])
    .expect("batch")
}

/// The values of an Int64 column (panics on nulls: these datasets have none).
pub fn i64_column(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing from {:?}", batch.schema()));
    assert_eq!(col.null_count(), 0, "column {name} has nulls");
    assert_eq!(col.data_type(), &DataType::Int64, "column {name}");
    col.as_primitive::<Int64Type>().values().to_vec()
}

/// The rows of `k/id/v` batches, in order.
pub fn kiv_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let (k, id, v) = (i64_column(b, "k"), i64_column(b, "id"), i64_column(b, "v"));
        out.extend((0..b.num_rows()).map(|i| (k[i], id[i], v[i])));
    }
    out
}

/// Every column of every row, by column name, for projected reads.
pub fn named_rows(batches: &[RecordBatch]) -> Vec<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let cols: Vec<(String, Vec<i64>)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), i64_column(b, f.name())))
            .collect();
        for i in 0..b.num_rows() {
            out.push(cols.iter().map(|(n, c)| (n.clone(), c[i])).collect());
        }
    }
    out
}

pub async fn read_all(lake: &Lake, uri: &str) -> Vec<RecordBatch> {
    let snap = lake
        .snapshot(uri)
        .await
        .unwrap_or_else(|e| panic!("snapshot {uri}: {e}"));
    lake.read(&snap, &ReadRequest::default())
        .await
        .unwrap_or_else(|e| panic!("read {uri}: {e}"))
}

pub async fn read_kiv(lake: &Lake, uri: &str) -> Vec<Row> {
    kiv_rows(&read_all(lake, uri).await)
}

pub fn int(v: i64) -> OrderedValue {
    OrderedValue::Int(v)
}

/// Which columns, besides `k`, make two rows duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dup {
    None,
    Id,
    All,
}

impl Dup {
    pub fn to_tarn(self) -> tarn::DuplicatesOn {
        match self {
            Dup::None => tarn::DuplicatesOn::None,
            Dup::Id => tarn::DuplicatesOn::Columns(vec!["id".into()]),
            Dup::All => tarn::DuplicatesOn::All,
        }
    }

    fn key(self, r: &Row) -> Option<Row> {
        match self {
            Dup::None => None,
            Dup::Id => Some((r.0, r.1, 0)),
            Dup::All => Some(*r),
        }
    }
}

/// Keeps, among rows with `lo <= k <= hi`, only the last occurrence of each key.
fn keep_last(rows: Vec<Row>, dup: Dup, lo: i64, hi: i64) -> Vec<Row> {
    if dup == Dup::None {
        return rows;
    }
    let mut seen = BTreeSet::new();
    let mut keep = vec![true; rows.len()];
    for (i, r) in rows.iter().enumerate().rev() {
        if r.0 < lo || r.0 > hi {
            continue;
        }
        if let Some(key) = dup.key(r)
            && !seen.insert(key)
        {
            keep[i] = false;
        }
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

/// SPEC §3 `write`, on a plain vector: stable sort of the input by `k`, merge with existing
/// rows first on ties, then "the last written wins" among rows in `[min(new), max(new)]`.
pub fn model_write(existing: &[Row], input: &[Row], dup: Dup) -> Vec<Row> {
    let mut new = input.to_vec();
    new.sort_by_key(|r| r.0);
    let (Some(lo), Some(hi)) = (new.first().map(|r| r.0), new.last().map(|r| r.0)) else {
        return existing.to_vec();
    };
    let mut merged: Vec<Row> = existing.iter().chain(new.iter()).copied().collect();
    merged.sort_by_key(|r| r.0);
    keep_last(merged, dup, lo, hi)
}

/// SPEC §3 `overwrite`: the input, stably sorted and de-duplicated.
pub fn model_overwrite(input: &[Row], dup: Dup) -> Vec<Row> {
    let mut new = input.to_vec();
    new.sort_by_key(|r| r.0);
    keep_last(new, dup, i64::MIN, i64::MAX)
}

pub fn model_delete(existing: &[Row], start: i64, end: i64) -> Vec<Row> {
    existing
        .iter()
        .copied()
        .filter(|r| r.0 < start || r.0 >= end)
        .collect()
}

/// `(version, commit_id, timestamp, operation, rows)` of each version, newest first.
pub type LogEntry = (u64, i64, String, String, u64);

pub async fn log_of(lake: &Lake, uri: &str) -> Vec<LogEntry> {
    lake.log(uri, None)
        .await
        .unwrap_or_else(|e| panic!("log {uri}: {e}"))
        .into_iter()
        .map(|v| (v.version, v.commit_id, v.timestamp, v.operation, v.rows))
        .collect()
}

/// Paths of the files the row groups of `uri` live in.
pub async fn files_of(lake: &Lake, uri: &str) -> BTreeSet<String> {
    let snap = lake
        .snapshot(uri)
        .await
        .unwrap_or_else(|e| panic!("snapshot {uri}: {e}"));
    snap.row_groups(lake, None, None)
        .await
        .unwrap_or_else(|e| panic!("row groups {uri}: {e}"))
        .into_iter()
        .map(|rg| rg.path)
        .collect()
}

/// `(id, path, rg_index, rows)` of each row group of `uri`, in row order.
pub async fn row_group_ids(lake: &Lake, uri: &str) -> Vec<(i64, String, u32, u64)> {
    let snap = lake
        .snapshot(uri)
        .await
        .unwrap_or_else(|e| panic!("snapshot {uri}: {e}"));
    snap.row_groups(lake, None, None)
        .await
        .unwrap_or_else(|e| panic!("row groups {uri}: {e}"))
        .into_iter()
        .map(|rg| (rg.id, rg.path, rg.rg_index, rg.rows))
        .collect()
}

/// What a lake shows of itself: each dataset's head and log, and the files of its storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub datasets: Vec<(String, u64, u64)>,
    pub logs: BTreeMap<String, Vec<LogEntry>>,
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    pub files: BTreeSet<String>,
}

pub async fn fingerprint(lake: &Lake, place: &LakePlace) -> Fingerprint {
    let datasets = lake.datasets(None).await.expect("datasets");
    let mut logs = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for d in &datasets {
        let uri = format!("tarn://{}", d.name);
        logs.insert(d.name.to_string(), log_of(lake, &uri).await);
        let snap = lake.snapshot(&uri).await.expect("head");
        metadata.insert(d.name.to_string(), snap.metadata().clone());
    }
    Fingerprint {
        datasets: datasets
            .iter()
            .map(|d| (d.name.to_string(), d.version, d.rows))
            .collect(),
        logs,
        metadata,
        files: place.files().await,
    }
}

/// A proptest runner for the model tests: `TARN_MODEL_CASES` cases when set (longer runs by
/// hand), else `local_cases` on SQLite + local files and `remote_cases` on PostgreSQL + S3
/// (every case makes a fresh schema and prefix and each step is a few round trips to the
/// servers, so fewer cases keep that variant near a minute); no persistence file.
pub fn model_runner(
    backend: Backend,
    local_cases: u32,
    remote_cases: u32,
) -> proptest::test_runner::TestRunner {
    let default_cases = match backend {
        Backend::Local => local_cases,
        Backend::Remote => remote_cases,
    };
    let cases = std::env::var("TARN_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

/// The row-group rules of SPEC §3.5–3.6 for a row-count target, on the row groups `rgs` of
/// a head that a mutation under `rule` made from a head whose row-group ids were `before`:
/// never empty, never above target; no stranded off-target row group (outside the trailing
/// run of off-target row groups, two off-target row groups never touch, and none that the
/// mutation kept lies next to one it wrote); and the tail `rule` leaves: at most
/// `max(max_off_target, 1)` row groups under oups's rule; under the tiered rule levels in
/// order (a smaller row group never before a bigger one), fewer than F per level, so at most
/// `tiered_tail_bound(T, F, 1)`, and fewer rows than the target.
pub fn tail_rules(
    rgs: &[tarn::RowGroup],
    target: u64,
    rule: tarn::coalesce::Coalescing,
    before: &BTreeSet<i64>,
) -> Result<(), String> {
    use tarn::coalesce::{self, Coalescing};
    let sizes: Vec<u64> = rgs.iter().map(|r| r.rows).collect();
    if let Some(i) = sizes.iter().position(|&s| s == 0 || s > target) {
        return Err(format!(
            "row group {i} empty or above target {target}: {sizes:?}"
        ));
    }
    let off = |i: usize| sizes[i] < target;
    let trailing = (0..sizes.len()).rev().take_while(|&i| off(i)).count();
    let body = sizes.len() - trailing;
    let written: Vec<bool> = rgs.iter().map(|r| !before.contains(&r.id)).collect();
    for i in 0..body {
        if off(i) && i + 1 < body && off(i + 1) {
            return Err(format!(
                "off-target row groups {i} and {} touch outside the tail: {sizes:?}",
                i + 1
            ));
        }
        let next_to_written = (i > 0 && written[i - 1]) || (i + 1 < sizes.len() && written[i + 1]);
        if off(i) && !written[i] && next_to_written {
            return Err(format!(
                "off-target row group {i} kept next to a new one (stranded): {sizes:?}, \
                 new {written:?}"
            ));
        }
    }
    let tail = &sizes[body..];
    match rule {
        Coalescing::MaxOffTarget(max) => {
            if trailing > (max as usize).max(1) {
                return Err(format!(
                    "{trailing} trailing row groups under target {target} \
                     (max_off_target {max}): {sizes:?}"
                ));
            }
        }
        Coalescing::Tiered { fan_in } => {
            let bound = coalesce::tiered_tail_bound(target, fan_in, 1);
            let levels: Vec<u32> = tail
                .iter()
                .map(|&s| coalesce::level(s, target, fan_in))
                .collect();
            if trailing > bound {
                return Err(format!(
                    "{trailing} trailing row groups under target {target}, bound {bound}: \
                     {sizes:?}"
                ));
            }
            if levels.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!(
                    "tiered tail with a smaller row group before a bigger one: {sizes:?} \
                     (levels {levels:?})"
                ));
            }
            if let Some(l) = levels
                .iter()
                .find(|&l| levels.iter().filter(|&x| x == l).count() >= fan_in as usize)
            {
                return Err(format!(
                    "tiered tail with {fan_in} row groups of level {l}: {sizes:?}"
                ));
            }
            if tail.len() > 1 && tail.iter().sum::<u64>() >= target {
                return Err(format!("tiered tail holding the target: {sizes:?}"));
            }
        }
    }
    Ok(())
}
