//! `tarn-bench`: the tarn side of the W1-W4 benchmarks (bench/README.md).
//!
//! Reads the data written by `bench/gen_data.py` and runs the workloads of `bench/peers.py`
//! on tarn, in-process through the `tarn` crate and end to end through the `tarn` binary,
//! appending one JSON line per (system, workload) to `--results`:
//!   {"system", "workload", "median_s", "runs", "extra": {...}}  or
//!   {"system", "workload", "error"}
//!
//! Rules, the same as the peers': inputs are decoded into memory before any timer starts
//! (in-process); each store starts empty in a fresh directory under `--work`; writes are
//! durable (files and the catalog commit are fsynced before a write returns); every
//! workload is checked after timing, and a wrong answer is an error, not a time.
//! The CLI mode times whole processes (spawn, opening the lake, reading the input file).
//!
//! `tarn-bench history` runs W6 instead (history.rs): refs, old versions and `log` on a
//! dataset with a long history. `tarn-bench sql` runs W5 (sql.rs): SQL queries through
//! `tarn_query` side by side with DuckDB on the same Parquet files. `tarn-bench registry`
//! runs W7 (registry.rs): validation against a dimension and a query through a mapping.

mod breakdown;
mod history;
mod memory;
mod registry;
mod remote;
mod scale;
mod sql;

use anyhow::{Context, Result, anyhow, bail, ensure};
use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use clap::{Parser, Subcommand, ValueEnum};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use tarn::{
    DuplicatesOn, Durability, Lake, OrderedValue, ReadRequest, RowGroupTarget, WriteRequest,
};

pub const URI: &str = "tarn://bench/w1";
const DAY_ROWS: usize = 1440;
const MINUTE_NS: i64 = 60_000_000_000;
const INPROC: &str = "tarn (in-process)";
const INPROC_1D: &str = "tarn (in-process, 1D row groups)";
const CLI: &str = "tarn (CLI)";
/// `--chunked-setup`: the W1 state is written in writes of this many days.
const CHUNK_DAYS: usize = 30;
const CHUNKED_NOTE: &str = "W1 state built untimed in 30-day writes, as the single W1 write failed";
const DURABILITY: &str = "data file + dir fsynced, SQLite WAL commit with synchronous=FULL";

#[derive(Debug, Parser)]
#[command(
    about = "Run the W1-W4 benchmark workloads on tarn (in-process and/or through the CLI), or W5 (sql), W6 (history) or W7 (registry)",
    args_conflicts_with_subcommands = true
)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<Workload>,
    /// W1-W4 (when no subcommand is given).
    #[command(flatten)]
    w1_w4: Option<Args>,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// W6: resolve every ref form, read old versions and `log`, on a dataset with a long
    /// history (bench/README.md).
    History(history::HistoryArgs),
    /// W5: SQL (tarn's DataFusion sessions) side by side with DuckDB on the very same
    /// Parquet files (bench/README.md).
    Sql(sql::SqlArgs),
    /// W7: registry validation against a full scan, and a query through a mapping against
    /// DuckDB (bench/README.md).
    Registry(registry::RegistryArgs),
    /// W8: catalog scale — a million datasets: creation rate, `ls PREFIX`, `info` and a
    /// one-week read next to a one-dataset lake (bench/README.md).
    Scale(scale::ScaleArgs),
    /// W9: W1-W4 in-process on SQLite + local and on PostgreSQL + S3, with the catalog round
    /// trips and object-store requests of each operation (bench/README.md).
    Backends(remote::RemoteArgs),
    /// M1, M2: peak resident memory of `tarn write` and of `tarn read` to every format, on
    /// datasets of N and 4·N rows (bench/README.md).
    Memory(memory::MemoryArgs),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Directory written by bench/gen_data.py.
    #[arg(long)]
    data: PathBuf,
    /// Scratch directory for the lakes (wiped and recreated per run under inproc*/ and cli/).
    #[arg(long)]
    work: PathBuf,
    /// jsonl file to append results to.
    #[arg(long)]
    results: PathBuf,
    /// W2 appends in-process (default: every day file in DATA/w2).
    #[arg(long)]
    appends: Option<usize>,
    /// W2 appends for the 1D row-group variant (default: --appends).
    #[arg(long)]
    appends_1d: Option<usize>,
    /// W2 appends through the CLI (default: --appends).
    #[arg(long)]
    cli_appends: Option<usize>,
    /// W4 repetitions (after one untimed warm-up read).
    #[arg(long, default_value_t = 15)]
    repeat: usize,
    /// W1 runs, each into a fresh lake.
    #[arg(long, default_value_t = 3)]
    w1_runs: usize,
    /// W3 runs, each on a fresh W1 state (written untimed).
    #[arg(long, default_value_t = 5)]
    w3_runs: usize,
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Skip the "tarn (in-process, 1D row groups)" variant.
    #[arg(long)]
    no_1d: bool,
    /// The `tarn` binary for --mode cli/both (default: `tarn` next to this executable).
    #[arg(long)]
    tarn: Option<PathBuf>,
    /// Keep the lakes under --work for inspection.
    #[arg(long)]
    keep: bool,
    /// Also print (to stderr) where the time of W1, W2 and W3 goes, by re-running their
    /// steps with the library's building blocks. Untimed for the results.
    #[arg(long)]
    breakdown: bool,
    /// Internal: run only this system (each system runs in a child process of its own).
    #[arg(long, value_enum, hide = true)]
    system: Option<System>,
    /// Internal: build the W1 state in 30-day writes instead of timing W1 (used to still run
    /// W4, W2 and W3 of an in-process system whose W1 write crashed).
    #[arg(long, hide = true)]
    chunked_setup: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Inproc,
    Cli,
    Both,
}

// ------------------------------------------------------------------------------------------
// inputs

/// Everything the workloads need, decoded into memory once.
pub struct Inputs {
    data: PathBuf,
    pub w1: RecordBatch,
    pub w2: Vec<RecordBatch>,
    w2_paths: Vec<PathBuf>,
    pub w3: RecordBatch,
    start: String,
    end: String,
    pub start_ns: i64,
    pub end_ns: i64,
    w4_rows: usize,
    pub rows: usize,
}

fn read_parquet(path: &Path) -> Result<RecordBatch> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let schema = builder.schema().clone();
    let batches = builder
        .with_batch_size(1 << 20)
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("cannot decode {}", path.display()))?;
    Ok(concat_batches(&schema, &batches)?)
}

fn parse_ns(text: &str) -> Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("bad timestamp {text:?} in w4.json"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| anyhow!("timestamp {text} out of range"))
}

impl Inputs {
    pub fn load(data: &Path, max_appends: usize) -> Result<Self> {
        let w1 = read_parquet(&data.join("w1.parquet"))?;
        let mut w2_paths: Vec<PathBuf> = fs::read_dir(data.join("w2"))
            .with_context(|| format!("cannot list {}/w2", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("day_") && n.ends_with(".parquet"))
            })
            .collect();
        w2_paths.sort();
        ensure!(
            max_appends <= w2_paths.len(),
            "{max_appends} appends asked but only {} day files in {}/w2",
            w2_paths.len(),
            data.display()
        );
        let w2 = w2_paths[..max_appends]
            .iter()
            .map(|p| read_parquet(p))
            .collect::<Result<Vec<_>>>()?;
        let w3 = read_parquet(&data.join("w3.parquet"))?;
        let w4: Value = serde_json::from_str(&fs::read_to_string(data.join("w4.json"))?)?;
        let field = |k: &str| -> Result<String> {
            Ok(w4[k]
                .as_str()
                .ok_or_else(|| anyhow!("w4.json has no {k:?}"))?
                .to_string())
        };
        let (start, end) = (field("start")?, field("end")?);
        let (start_ns, end_ns) = (parse_ns(&start)?, parse_ns(&end)?);
        Ok(Self {
            data: data.to_path_buf(),
            rows: w1.num_rows(),
            w1,
            w2,
            w2_paths,
            w3,
            w4_rows: ((end_ns - start_ns) / MINUTE_NS) as usize,
            start,
            end,
            start_ns,
            end_ns,
        })
    }
}

// ------------------------------------------------------------------------------------------
// results

pub struct Recorder {
    pub path: PathBuf,
    pub errors: usize,
}

impl Recorder {
    fn emit(&self, rec: &Value) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{rec}")?;
        Ok(())
    }

    pub fn ok(
        &self,
        system: &str,
        workload: &str,
        times: &[f64],
        extra: Map<String, Value>,
    ) -> Result<()> {
        let m = median(times);
        self.emit(&json!({"system": system, "workload": workload, "median_s": m, "runs": times.len(), "extra": extra}))?;
        eprintln!(
            "[{system}] {workload}: median {m:.6} s over {} run(s)",
            times.len()
        );
        Ok(())
    }

    fn error(&mut self, system: &str, workload: &str, msg: &str) {
        self.errors += 1;
        eprintln!("[{system}] {workload}: ERROR {msg}");
        if let Err(e) = self.emit(&json!({"system": system, "workload": workload, "error": msg})) {
            eprintln!("cannot record the error: {e:#}");
        }
    }

    /// Records `result`'s error, if any, as the workload's result.
    pub fn attempt(&mut self, system: &str, workload: &str, result: Result<()>) {
        if let Err(e) = result {
            self.error(system, workload, &format!("{e:#}"));
        }
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// numpy's default (linear) percentile, so the p90 means the same as the peers'.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = p / 100.0 * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// The same fields as peers.py's `w2_extra`.
fn w2_extra(times: &[f64], extra: &mut Map<String, Value>) {
    let n10 = ((times.len() as f64 * 0.1).ceil() as usize).max(1);
    let (min, max) = min_max(times);
    extra.insert("p90_s".into(), json!(percentile(times, 90.0)));
    extra.insert("first10_median_s".into(), json!(median(&times[..n10])));
    extra.insert(
        "last10_median_s".into(),
        json!(median(&times[times.len() - n10..])),
    );
    extra.insert("min_s".into(), json!(min));
    extra.insert("max_s".into(), json!(max));
    extra.insert("total_s".into(), json!(times.iter().sum::<f64>()));
}

/// `rows_rewritten` per append: total, median, max, and how many appends rewrote anything.
fn rewrite_stats(prefix: &str, v: &[u64], extra: &mut Map<String, Value>) {
    let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    extra.insert(format!("{prefix}_total"), json!(v.iter().sum::<u64>()));
    extra.insert(format!("{prefix}_median"), json!(median(&f).round() as u64));
    extra.insert(
        format!("{prefix}_max"),
        json!(v.iter().max().copied().unwrap_or(0)),
    );
    extra.insert(
        "appends_rewriting".into(),
        json!(v.iter().filter(|&&x| x > 0).count()),
    );
}

fn tree_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += tree_bytes(&e.path()),
            Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
            Err(_) => {}
        }
    }
    total
}

fn base_extra(version: &str, rows: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), json!(version));
    m.insert("rows".into(), json!(rows));
    // Other processes competing for the CPUs make every time longer: say how busy it was.
    if let Some(load) = fs::read_to_string("/proc/loadavg").ok().and_then(|l| {
        l.split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
    }) {
        m.insert("loadavg_1m".into(), json!(load));
    }
    m
}

pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
    Ok(())
}

fn cleanup(dir: &Path, keep: bool) {
    if !keep {
        let _ = fs::remove_dir_all(dir);
    }
}

// ------------------------------------------------------------------------------------------
// verification

fn ts_values(
    batch: &RecordBatch,
) -> Result<&arrow::array::PrimitiveArray<TimestampNanosecondType>> {
    batch
        .column_by_name("ts")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| anyhow!("result has no ts column of type timestamp[ns]"))
}

pub fn verify_w4(inp: &Inputs, batches: &[RecordBatch]) -> Result<()> {
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    ensure!(
        n == inp.w4_rows,
        "W4 returned {n} rows, expected {}",
        inp.w4_rows
    );
    let first = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(ts_values)
        .transpose()?
        .map(|a| a.value(0));
    let last = batches
        .iter()
        .rev()
        .find(|b| b.num_rows() > 0)
        .map(ts_values)
        .transpose()?
        .map(|a| a.value(a.len() - 1));
    ensure!(
        first == Some(inp.start_ns) && last == Some(inp.end_ns - MINUTE_NS),
        "W4 returned the wrong range ({first:?} .. {last:?})"
    );
    Ok(())
}

/// Every W3 row is in the lake with the new values (so exactly once, since the row count
/// is checked to be unchanged).
pub async fn verify_w3(inp: &Inputs, lake: &Lake) -> Result<()> {
    let snap = lake.snapshot(URI).await?;
    ensure!(
        snap.rows() as usize == inp.rows,
        "row count after upsert is {}, expected {} (unchanged)",
        snap.rows(),
        inp.rows
    );
    let want = &inp.w3;
    let wts = ts_values(want)?;
    let (lo, hi) = (wts.value(0), wts.value(wts.len() - 1));
    let request = ReadRequest {
        start: Some(OrderedValue::Timestamp(lo)),
        end: Some(OrderedValue::Timestamp(hi + 1)),
        columns: None,
    };
    let got = lake.read(&snap, &request).await?;
    let n: usize = got.iter().map(|b| b.num_rows()).sum();
    let expected = ((hi - lo) / MINUTE_NS + 1) as usize;
    ensure!(
        n == expected,
        "{n} rows in the upserted range, expected {expected}"
    );
    let mut at: HashMap<i64, (usize, usize)> = HashMap::new();
    for (bi, b) in got.iter().enumerate() {
        for (ri, t) in ts_values(b)?.values().iter().enumerate() {
            ensure!(
                at.insert(*t, (bi, ri)).is_none(),
                "ts {t} appears twice after the upsert"
            );
        }
    }
    for (i, t) in wts.values().iter().enumerate() {
        let &(bi, ri) = at
            .get(t)
            .ok_or_else(|| anyhow!("upserted ts {t} is missing"))?;
        for c in ["a", "b", "c", "d"] {
            let g = got[bi]
                .column_by_name(c)
                .map(|a| a.as_primitive::<Float64Type>().value(ri));
            let w = want
                .column_by_name(c)
                .map(|a| a.as_primitive::<Float64Type>().value(i));
            ensure!(
                g == w,
                "column {c} at ts {t} holds {g:?}, expected the upserted {w:?}"
            );
        }
        let g = got[bi]
            .column_by_name("n")
            .map(|a| a.as_primitive::<Int64Type>().value(ri));
        let w = want
            .column_by_name("n")
            .map(|a| a.as_primitive::<Int64Type>().value(i));
        ensure!(
            g == w,
            "column n at ts {t} holds {g:?}, expected the upserted {w:?}"
        );
    }
    Ok(())
}

async fn lake_rows(dir: &Path) -> Result<u64> {
    let lake = Lake::open_with(dir, Durability::Durable).await?;
    Ok(lake.snapshot(URI).await?.rows())
}

// ------------------------------------------------------------------------------------------
// in-process

/// The catalog and store of the lake in `dir`, opened beside its `Lake`, for the steps of
/// `--breakdown` and for reads of the catalog that the facade does not offer.
pub struct Internals {
    pub catalog: tarn_catalog::Catalog,
    pub store: tarn_store::DataStore,
}

pub async fn internals(dir: &Path) -> Result<Internals> {
    let config = tarn::LakeConfig::load(dir)?;
    let catalog = tarn_catalog::open(
        &config.catalog_location(dir)?,
        &config.catalog_settings(true),
    )
    .await?;
    let store =
        tarn_store::DataStore::open(&config.storage_location(dir)?, &config.s3_settings(), true)?;
    Ok(Internals { catalog, store })
}

/// The local data directory of the lake in `dir` (the peers read its files directly).
pub fn local_data_dir(dir: &Path) -> Result<PathBuf> {
    match tarn::LakeConfig::load(dir)?.storage_location(dir)? {
        tarn_store::StorageLocation::Local(path) => Ok(path),
        other => bail!(
            "the lake in {} keeps its data in {other:?}, not in a local directory",
            dir.display()
        ),
    }
}

async fn fresh_lake(dir: &Path) -> Result<Lake> {
    fresh_dir(dir)?;
    drop(Lake::init(dir).await?);
    // Explicitly durable, whatever TARN_DURABILITY says.
    Ok(Lake::open_with(dir, Durability::Durable).await?)
}

fn w1_request(target: Option<RowGroupTarget>) -> WriteRequest {
    let r = WriteRequest::new().ordered_on("ts");
    match target {
        Some(t) => r.row_group_target(t),
        None => r,
    }
}

pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

struct InProc<'a> {
    inp: &'a Inputs,
    args: &'a Args,
    system: &'static str,
    target: Option<RowGroupTarget>,
    dir: PathBuf,
    version: String,
}

impl InProc<'_> {
    /// W1 `w1_runs` times into fresh lakes; returns the last lake (the W1 state).
    async fn w1(&self, rec: &Recorder) -> Result<(Lake, PathBuf)> {
        let mut times = Vec::new();
        let mut last = None;
        for i in 0..self.args.w1_runs.max(1) {
            let dir = self.dir.join(format!("w1-{i}"));
            let lake = fresh_lake(&dir).await?;
            let batch = self.inp.w1.clone();
            let t = Instant::now();
            let out = lake.write(URI, batch, w1_request(self.target)).await?;
            times.push(secs(t));
            let rows = lake.snapshot(URI).await?.rows();
            ensure!(
                rows as usize == self.inp.rows,
                "row count after W1 is {rows}, expected {}",
                self.inp.rows
            );
            if let Some((_, old_dir, _)) = last.replace((lake, dir, out)) {
                cleanup(&old_dir, self.args.keep);
            }
        }
        let (lake, dir, out) = last.ok_or_else(|| anyhow!("no W1 run"))?;
        let (min, max) = min_max(&times);
        let mut extra = self.extra();
        extra.insert("store_bytes".into(), json!(tree_bytes(&dir)));
        extra.insert("durability".into(), json!(DURABILITY));
        extra.insert("bytes".into(), json!(out.bytes_written));
        extra.insert("row_groups".into(), json!(out.row_groups_written));
        extra.insert("files".into(), json!(1));
        extra.insert(
            "row_group_target".into(),
            json!(self.target.unwrap_or_default().to_string()),
        );
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        rec.ok(self.system, "W1", &times, extra)?;
        Ok((lake, dir))
    }

    async fn w4(&self, rec: &Recorder, lake: &Lake) -> Result<()> {
        let read = || async {
            let snap = lake.snapshot(URI).await?;
            let request =
                ReadRequest::parse(&snap, Some(&self.inp.start), Some(&self.inp.end), None)?;
            Ok::<_, anyhow::Error>(lake.read(&snap, &request).await?)
        };
        verify_w4(self.inp, &read().await?)?; // warm-up
        let mut times = Vec::new();
        for _ in 0..self.args.repeat.max(1) {
            let t = Instant::now();
            let out = read().await?;
            times.push(secs(t));
            verify_w4(self.inp, &out)?;
        }
        let snap = lake.snapshot(URI).await?;
        let range = ReadRequest::parse(&snap, Some(&self.inp.start), Some(&self.inp.end), None)?;
        let rgs = snap
            .row_groups(lake, range.start.as_ref(), range.end.as_ref())
            .await?;
        let (min, max) = min_max(&times);
        let mut extra = self.extra();
        extra.insert("rows_returned".into(), json!(self.inp.w4_rows));
        extra.insert("row_groups_read".into(), json!(rgs.len()));
        extra.insert(
            "rows_decoded".into(),
            json!(rgs.iter().map(|r| r.rows).sum::<u64>()),
        );
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        extra.insert("result_type".into(), json!("Vec<arrow::RecordBatch>"));
        extra.insert("timed".into(), json!("snapshot resolution + read"));
        extra.insert(
            "cache".into(),
            json!("warm (the same range is read repeatedly)"),
        );
        rec.ok(self.system, "W4", &times, extra)
    }

    async fn w2(&self, rec: &Recorder, lake: &Lake, dir: &Path, appends: usize) -> Result<()> {
        ensure!(appends > 0, "skipped: no appends asked");
        let before = tree_bytes(dir);
        let mut times = Vec::with_capacity(appends);
        let (mut rewritten, mut rg_written, mut rg_removed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, day) in self.inp.w2[..appends].iter().enumerate() {
            let batch = day.clone();
            let t = Instant::now();
            let out = lake.write(URI, batch, WriteRequest::new()).await?;
            times.push(secs(t));
            ensure!(out.version.is_some(), "append {i} created no version");
            rewritten.push(out.rows_rewritten);
            rg_written.push(out.row_groups_written);
            rg_removed.push(out.row_groups_removed);
            if (i + 1) % 500 == 0 {
                eprintln!(
                    "[{}] W2: {} appends, last {:.1} ms",
                    self.system,
                    i + 1,
                    times[i] * 1e3
                );
            }
        }
        let snap = lake.snapshot(URI).await?;
        let want = self.inp.rows + appends * DAY_ROWS;
        ensure!(
            snap.rows() as usize == want,
            "row count after {appends} appends is {}, expected {want}",
            snap.rows()
        );
        let rgs = snap.row_groups(lake, None, None).await?;
        let mut files: Vec<&str> = rgs.iter().map(|r| r.path.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        let after = tree_bytes(dir);
        let mut extra = self.extra();
        extra.insert("appends".into(), json!(appends));
        extra.insert("rows_per_append".into(), json!(DAY_ROWS));
        extra.insert("bytes_added".into(), json!(after as i64 - before as i64));
        extra.insert("store_bytes".into(), json!(after));
        w2_extra(&times, &mut extra);
        rewrite_stats("rows_rewritten", &rewritten, &mut extra);
        extra.insert(
            "row_groups_written_total".into(),
            json!(rg_written.iter().sum::<u64>()),
        );
        extra.insert(
            "row_groups_removed_total".into(),
            json!(rg_removed.iter().sum::<u64>()),
        );
        extra.insert("files".into(), json!(files.len()));
        extra.insert("row_groups".into(), json!(rgs.len()));
        extra.insert(
            "row_group_target".into(),
            json!(snap.options().row_group_target.to_string()),
        );
        rec.ok(self.system, "W2", &times, extra)
    }

    async fn w3(&self, rec: &Recorder) -> Result<()> {
        let inp = self.inp;
        let wts = ts_values(&inp.w3)?;
        let (lo, hi) = (wts.value(0), wts.value(wts.len() - 1));
        let mut times = Vec::new();
        let mut facts = Map::new();
        for i in 0..self.args.w3_runs.max(1) {
            let dir = self.dir.join(format!("w3-{i}"));
            let lake = self.w1_state(&dir).await.context("W1 setup for W3")?;
            // The row groups the upsert's range overlaps, before it: what a row-group
            // granular upsert has to rewrite at least.
            let snap = lake.snapshot(URI).await?;
            let touched = snap
                .row_groups(
                    &lake,
                    Some(&OrderedValue::Timestamp(lo)),
                    Some(&OrderedValue::Timestamp(hi + 1)),
                )
                .await?;
            let touched_rows: u64 = touched.iter().map(|r| r.rows).sum();
            let touched_bytes: u64 = touched.iter().map(|r| r.bytes).sum();
            let before = tree_bytes(&dir);
            let batch = inp.w3.clone();
            let request = WriteRequest::new().duplicates_on(DuplicatesOn::parse("ts"));
            let t = Instant::now();
            let out = lake.write(URI, batch, request).await?;
            times.push(secs(t));
            verify_w3(inp, &lake).await?;
            let after = tree_bytes(&dir);
            facts = Map::new();
            facts.insert("upsert_rows".into(), json!(inp.w3.num_rows()));
            facts.insert("bytes_added".into(), json!(after as i64 - before as i64));
            facts.insert("store_bytes".into(), json!(after));
            facts.insert("rows_rewritten".into(), json!(out.rows_rewritten));
            facts.insert("bytes_written".into(), json!(out.bytes_written));
            facts.insert("row_groups_written".into(), json!(out.row_groups_written));
            facts.insert("row_groups_removed".into(), json!(out.row_groups_removed));
            facts.insert("touched_row_groups".into(), json!(touched.len()));
            facts.insert("touched_rows".into(), json!(touched_rows));
            facts.insert("touched_bytes".into(), json!(touched_bytes));
            // Named without "bytes" so report.py does not format the ratios as sizes.
            facts.insert(
                "rewritten_rows_vs_touched".into(),
                json!(out.rows_rewritten as f64 / touched_rows.max(1) as f64),
            );
            facts.insert(
                "written_size_vs_touched".into(),
                json!(out.bytes_written as f64 / touched_bytes.max(1) as f64),
            );
            drop(lake);
            cleanup(&dir, self.args.keep);
        }
        let (min, max) = min_max(&times);
        let mut extra = self.extra();
        extra.extend(facts);
        extra.insert("duplicates_on".into(), json!("ts (per-write override)"));
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        rec.ok(self.system, "W3", &times, extra)
    }

    /// `base_extra`, plus how the W1 state was built when not by the W1 write.
    fn extra(&self) -> Map<String, Value> {
        let mut m = base_extra(&self.version, self.inp.rows);
        if self.args.chunked_setup {
            m.insert("setup".into(), json!(CHUNKED_NOTE));
        }
        m
    }

    /// An untimed W1 state in a fresh lake at `dir`: the W1 write, or with
    /// `--chunked-setup` the same rows in writes of `CHUNK_DAYS` days.
    async fn w1_state(&self, dir: &Path) -> Result<Lake> {
        let lake = fresh_lake(dir).await?;
        if self.args.chunked_setup {
            let w1 = &self.inp.w1;
            let chunk = CHUNK_DAYS * DAY_ROWS;
            for start in (0..w1.num_rows()).step_by(chunk) {
                let part = w1.slice(start, chunk.min(w1.num_rows() - start));
                lake.write(URI, part, w1_request(self.target)).await?;
            }
        } else {
            lake.write(URI, self.inp.w1.clone(), w1_request(self.target))
                .await?;
        }
        Ok(lake)
    }

    async fn run(&self, rec: &mut Recorder, appends: usize) {
        eprintln!("== {}", self.system);
        let w1 = if self.args.chunked_setup {
            // W1 itself already failed (in the process this one replaces): build its
            // state another way, to still measure W4, W2 and W3.
            eprintln!(
                "[{}] building the W1 state in {CHUNK_DAYS}-day writes (untimed)",
                self.system
            );
            let dir = self.dir.join("w1-chunked");
            self.w1_state(&dir).await.map(|lake| (lake, dir))
        } else {
            self.w1(rec).await
        };
        match w1 {
            Ok((lake, dir)) => {
                let r = self.w4(rec, &lake).await;
                rec.attempt(self.system, "W4", r);
                let r = self.w2(rec, &lake, &dir, appends).await;
                rec.attempt(self.system, "W2", r);
                drop(lake);
                cleanup(&dir, self.args.keep);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if !self.args.chunked_setup {
                    rec.error(self.system, "W1", &msg);
                }
                for w in ["W4", "W2"] {
                    rec.error(
                        self.system,
                        w,
                        &format!("skipped: W1 state could not be built ({msg})"),
                    );
                }
            }
        }
        let r = self.w3(rec).await;
        rec.attempt(self.system, "W3", r);
    }
}

// ------------------------------------------------------------------------------------------
// CLI

struct Cli<'a> {
    inp: &'a Inputs,
    args: &'a Args,
    tarn: PathBuf,
    dir: PathBuf,
    version: String,
}

impl Cli<'_> {
    /// Runs `tarn --lake LAKE --durability durable ARGS`, timing the whole process.
    fn tarn(&self, lake: &Path, args: &[OsString]) -> Result<(f64, String)> {
        let mut cmd = Command::new(&self.tarn);
        cmd.arg("--lake")
            .arg(lake)
            .args(["--durability", "durable"])
            .args(args)
            .env_remove("TARN_LAKE")
            .env_remove("TARN_LOG")
            .stdin(Stdio::null());
        let t = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", self.tarn.display()))?;
        let dt = secs(t);
        if !out.status.success() {
            bail!(
                "`tarn {}` failed ({}): {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((dt, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn init(&self, lake: &Path) -> Result<()> {
        fresh_dir(lake)?;
        let out = Command::new(&self.tarn)
            .arg("init")
            .arg(lake)
            .arg("--quiet")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.tarn.display()))?;
        ensure!(
            out.status.success(),
            "tarn init failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// `tarn --json write URI FILE EXTRA...`: time and outcome.
    fn write(&self, lake: &Path, file: &Path, extra: &[&str]) -> Result<(f64, WriteFacts)> {
        let mut args: Vec<OsString> =
            vec!["--json".into(), "write".into(), URI.into(), file.into()];
        args.extend(extra.iter().map(OsString::from));
        let (dt, stdout) = self.tarn(lake, &args)?;
        let v: Value = serde_json::from_str(&stdout)
            .with_context(|| format!("tarn write printed {stdout:?}"))?;
        Ok((dt, WriteFacts::from_json(&v)))
    }

    async fn w1(&self, rec: &Recorder) -> Result<PathBuf> {
        let mut times = Vec::new();
        let mut last: Option<(PathBuf, WriteFacts)> = None;
        for i in 0..self.args.w1_runs.max(1) {
            let lake = self.dir.join(format!("w1-{i}"));
            self.init(&lake)?;
            let (dt, facts) = self.write(
                &lake,
                &self.inp.data.join("w1.parquet"),
                &["--ordered-on", "ts"],
            )?;
            times.push(dt);
            let rows = lake_rows(&lake).await?;
            ensure!(
                rows as usize == self.inp.rows,
                "row count after W1 is {rows}, expected {}",
                self.inp.rows
            );
            if let Some((old, _)) = last.replace((lake, facts)) {
                cleanup(&old, self.args.keep);
            }
        }
        let (lake, facts) = last.ok_or_else(|| anyhow!("no W1 run"))?;
        let (min, max) = min_max(&times);
        let mut extra = base_extra(&self.version, self.inp.rows);
        extra.insert("store_bytes".into(), json!(tree_bytes(&lake)));
        extra.insert("durability".into(), json!(DURABILITY));
        extra.insert("bytes".into(), json!(facts.bytes_written));
        extra.insert("row_groups".into(), json!(facts.row_groups_written));
        extra.insert("input".into(), json!("w1.parquet (decoded by the process)"));
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        rec.ok(CLI, "W1", &times, extra)?;
        Ok(lake)
    }

    fn w4(&self, rec: &Recorder, lake: &Path) -> Result<()> {
        let out = self.dir.join("w4.arrow");
        let args: Vec<OsString> = vec![
            "read".into(),
            URI.into(),
            "--start".into(),
            self.inp.start.clone().into(),
            "--end".into(),
            self.inp.end.clone().into(),
            "--format".into(),
            "arrow".into(),
            "--output".into(),
            out.clone().into(),
        ];
        let check = || -> Result<()> {
            let reader = arrow::ipc::reader::FileReader::try_new(File::open(&out)?, None)?;
            let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            verify_w4(self.inp, &batches)
        };
        self.tarn(lake, &args)?; // warm-up
        check()?;
        let mut times = Vec::new();
        for _ in 0..self.args.repeat.max(1) {
            let _ = fs::remove_file(&out);
            times.push(self.tarn(lake, &args)?.0);
            check()?;
        }
        let (min, max) = min_max(&times);
        let mut extra = base_extra(&self.version, self.inp.rows);
        extra.insert("rows_returned".into(), json!(self.inp.w4_rows));
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        extra.insert(
            "output".into(),
            json!("Arrow IPC file (--format arrow --output FILE)"),
        );
        extra.insert(
            "cache".into(),
            json!("warm (the same range is read repeatedly)"),
        );
        rec.ok(CLI, "W4", &times, extra)
    }

    async fn w2(&self, rec: &Recorder, lake: &Path, appends: usize) -> Result<()> {
        ensure!(appends > 0, "skipped: no appends asked");
        ensure!(
            appends <= self.inp.w2_paths.len(),
            "only {} day files",
            self.inp.w2_paths.len()
        );
        let before = tree_bytes(lake);
        let mut times = Vec::with_capacity(appends);
        let mut rewritten = Vec::new();
        for (i, day) in self.inp.w2_paths[..appends].iter().enumerate() {
            let (dt, facts) = self.write(lake, day, &[])?;
            times.push(dt);
            rewritten.push(facts.rows_rewritten);
            if (i + 1) % 100 == 0 {
                eprintln!("[{CLI}] W2: {} appends, last {:.1} ms", i + 1, dt * 1e3);
            }
        }
        let rows = lake_rows(lake).await?;
        let want = self.inp.rows + appends * DAY_ROWS;
        ensure!(
            rows as usize == want,
            "row count after {appends} appends is {rows}, expected {want}"
        );
        let after = tree_bytes(lake);
        let mut extra = base_extra(&self.version, self.inp.rows);
        extra.insert("appends".into(), json!(appends));
        extra.insert("rows_per_append".into(), json!(DAY_ROWS));
        extra.insert("bytes_added".into(), json!(after as i64 - before as i64));
        extra.insert("store_bytes".into(), json!(after));
        w2_extra(&times, &mut extra);
        rewrite_stats("rows_rewritten", &rewritten, &mut extra);
        extra.insert(
            "input".into(),
            json!("day_NNNN.parquet (one process per append)"),
        );
        rec.ok(CLI, "W2", &times, extra)
    }

    async fn w3(&self, rec: &Recorder) -> Result<()> {
        let mut times = Vec::new();
        let mut facts = Map::new();
        for i in 0..self.args.w3_runs.max(1) {
            let lake = self.dir.join(format!("w3-{i}"));
            self.init(&lake)?;
            self.write(
                &lake,
                &self.inp.data.join("w1.parquet"),
                &["--ordered-on", "ts"],
            )
            .context("W1 setup for W3")?;
            let before = tree_bytes(&lake);
            let (dt, out) = self.write(
                &lake,
                &self.inp.data.join("w3.parquet"),
                &["--duplicates-on", "ts"],
            )?;
            times.push(dt);
            let l = Lake::open_with(&lake, Durability::Durable).await?;
            verify_w3(self.inp, &l).await?;
            drop(l);
            let after = tree_bytes(&lake);
            facts = Map::new();
            facts.insert("upsert_rows".into(), json!(self.inp.w3.num_rows()));
            facts.insert("bytes_added".into(), json!(after as i64 - before as i64));
            facts.insert("store_bytes".into(), json!(after));
            facts.insert("rows_rewritten".into(), json!(out.rows_rewritten));
            facts.insert("bytes_written".into(), json!(out.bytes_written));
            cleanup(&lake, self.args.keep);
        }
        let (min, max) = min_max(&times);
        let mut extra = base_extra(&self.version, self.inp.rows);
        extra.extend(facts);
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        rec.ok(CLI, "W3", &times, extra)
    }

    async fn run(&self, rec: &mut Recorder, appends: usize) {
        eprintln!("== {CLI} ({})", self.tarn.display());
        match self.w1(rec).await {
            Ok(lake) => {
                let r = self.w4(rec, &lake);
                rec.attempt(CLI, "W4", r);
                let r = self.w2(rec, &lake, appends).await;
                rec.attempt(CLI, "W2", r);
                cleanup(&lake, self.args.keep);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                rec.error(CLI, "W1", &msg);
                for w in ["W4", "W2"] {
                    rec.error(
                        CLI,
                        w,
                        &format!("skipped: W1 state could not be built ({msg})"),
                    );
                }
            }
        }
        let r = self.w3(rec).await;
        rec.attempt(CLI, "W3", r);
    }
}

#[derive(Debug, Default)]
struct WriteFacts {
    rows_rewritten: u64,
    bytes_written: u64,
    row_groups_written: u64,
}

impl WriteFacts {
    fn from_json(v: &Value) -> Self {
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Self {
            rows_rewritten: n("rows_rewritten"),
            bytes_written: n("bytes_written"),
            row_groups_written: n("row_groups_written"),
        }
    }
}

// ------------------------------------------------------------------------------------------

pub fn default_tarn() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.with_file_name(format!("tarn{}", std::env::consts::EXE_SUFFIX));
    p.is_file().then_some(p)
}

fn tarn_version(tarn: &Path) -> String {
    let out = Command::new(tarn).arg("--version").output();
    let v = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    with_rev(if v.is_empty() { "tarn ?".into() } else { v })
}

/// `TARN_BENCH_REV` (set by bench/run.sh to the git revision) is appended to the version.
pub fn with_rev(v: String) -> String {
    match std::env::var("TARN_BENCH_REV") {
        Ok(r) if !r.is_empty() => format!("{v} ({r})"),
        _ => v,
    }
}

#[tokio::main]
async fn main() {
    let cli = BenchArgs::parse();
    let (outcome, results) = match (&cli.command, &cli.w1_w4) {
        (Some(Workload::History(h)), _) => (history::run(h).await, &h.results),
        (Some(Workload::Sql(s)), _) => (sql::run(s).await, &s.results),
        (Some(Workload::Registry(r)), _) => (registry::run(r).await, &r.results),
        (Some(Workload::Scale(s)), _) => (scale::run(s).await, &s.results),
        (Some(Workload::Backends(b)), _) => (remote::run(b).await, &b.results),
        (Some(Workload::Memory(m)), _) => (memory::run(m).map(|()| 0), &m.results),
        (None, Some(args)) => (run(args).await, &args.results),
        (None, None) => {
            // clap already refuses this (--data, --work and --results are required).
            eprintln!("tarn-bench: nothing to run; see --help");
            std::process::exit(2);
        }
    };
    match outcome {
        Ok(0) => {}
        Ok(n) => {
            eprintln!(
                "tarn-bench: {n} workload(s) failed (see the error lines in {})",
                results.display()
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("tarn-bench: error: {e:#}");
            std::process::exit(2);
        }
    }
}

async fn run(args: &Args) -> Result<usize> {
    if std::env::var("TARN_DURABILITY").as_deref() == Ok("relaxed") {
        eprintln!(
            "tarn-bench: note: TARN_DURABILITY=relaxed is ignored, the benchmark is always durable"
        );
    }
    let n_days = fs::read_dir(args.data.join("w2"))
        .with_context(|| {
            format!(
                "{} is not a gen_data.py output (no w2/)",
                args.data.display()
            )
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .count();
    let counts = Counts {
        appends: args.appends.unwrap_or(n_days),
        appends_1d: args.appends_1d.unwrap_or(args.appends.unwrap_or(n_days)),
        cli_appends: args.cli_appends.unwrap_or(args.appends.unwrap_or(n_days)),
    };
    for (what, n) in [
        ("--appends", counts.appends),
        ("--appends-1d", counts.appends_1d),
        ("--cli-appends", counts.cli_appends),
    ] {
        ensure!(
            n <= n_days,
            "{what} {n} but only {n_days} day files in {}/w2",
            args.data.display()
        );
    }
    match args.system {
        Some(system) => child(args, system, &counts).await,
        None => parent(args),
    }
}

struct Counts {
    appends: usize,
    appends_1d: usize,
    cli_appends: usize,
}

/// Runs each system in a child process of its own, so that one that crashes (an abort on
/// a failed allocation cannot be caught) still leaves error lines, and the others run.
fn parent(args: &Args) -> Result<usize> {
    let mut systems = Vec::new();
    if args.breakdown {
        systems.push(System::Breakdown);
    }
    if matches!(args.mode, Mode::Inproc | Mode::Both) {
        systems.push(System::Inproc);
        if !args.no_1d {
            systems.push(System::Inproc1d);
        }
    }
    if matches!(args.mode, Mode::Cli | Mode::Both) {
        if args.tarn.is_none() && default_tarn().is_none() {
            bail!(
                "no `tarn` binary next to tarn-bench; build it (cargo build --release -p tarn-cli) or pass --tarn"
            );
        }
        systems.push(System::Cli);
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    // Every workload of every system, as recorded (by the child or here): false if an error.
    let mut errors = 0;
    for system in systems {
        let (status, mut recorded, tail) = run_child(&exe, system, false, &args.results)?;
        let why = |status: &std::process::ExitStatus, tail: &[String]| {
            format!(
                "the tarn-bench process of this system died ({status}): {}",
                tail.join(" / ")
            )
        };
        // 1: workloads failed and said so; 2: the run could not start. Else it crashed.
        let crashed = !matches!(status.code(), Some(0..=2));
        if status.success() {
            // Every workload recorded a time or its own error.
        } else if system == System::Breakdown {
            eprintln!("tarn-bench: breakdown failed: {}", why(&status, &tail));
            errors += 1;
        } else if crashed && !recorded.contains_key("W1") && system != System::Cli {
            // Died in W1 (an abort): record it, then measure the rest on a W1 state built
            // another way.
            rec.error(system.name(), "W1", &why(&status, &tail));
            recorded.insert("W1".into(), false);
            let (status2, recorded2, tail2) = run_child(&exe, system, true, &args.results)?;
            let msg = format!(
                "W1 crashed; with the W1 state built in {CHUNK_DAYS}-day writes: {}",
                why(&status2, &tail2)
            );
            for (w, ok) in recorded2 {
                recorded.insert(w, ok);
            }
            for w in ["W2", "W3", "W4"] {
                if !recorded.contains_key(w) {
                    rec.error(system.name(), w, &msg);
                    recorded.insert(w.into(), false);
                }
            }
        } else {
            for w in ["W1", "W2", "W3", "W4"] {
                if !recorded.contains_key(w) {
                    rec.error(system.name(), w, &why(&status, &tail));
                    recorded.insert(w.into(), false);
                }
            }
        }
        errors += recorded.values().filter(|ok| !**ok).count();
    }
    Ok(errors)
}

/// Runs one system in a child process, passing its stderr through. Returns its exit status,
/// the workloads it recorded (true if a time, false if an error) and the tail of its stderr.
fn run_child(
    exe: &Path,
    system: System,
    chunked_setup: bool,
    results: &Path,
) -> Result<(std::process::ExitStatus, HashMap<String, bool>, Vec<String>)> {
    let offset = fs::metadata(results).map_or(0, |m| m.len());
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .arg("--system")
        .arg(system.arg())
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    if chunked_setup {
        cmd.arg("--chunked-setup");
    }
    let mut child = cmd.spawn().context("cannot start a tarn-bench child")?;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            eprintln!("{line}");
            // Keep what says why, not the backtrace.
            let noise = line.starts_with(' ')
                || line.starts_with("stack backtrace")
                || line.starts_with("note:")
                || line.starts_with("==")
                || line.starts_with("loading inputs")
                || line.starts_with("w1 ");
            if !noise {
                tail.push(line);
                if tail.len() > 2 {
                    tail.remove(0);
                }
            }
        }
    }
    let status = child.wait()?;
    Ok((status, recorded_since(results, offset, system.name()), tail))
}

/// Workloads of `system` recorded after `offset` in the results file: true if a time.
fn recorded_since(path: &Path, offset: u64, system: &str) -> HashMap<String, bool> {
    let text = fs::read(path).unwrap_or_default();
    let new = text.get(offset as usize..).unwrap_or_default();
    String::from_utf8_lossy(new)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["system"] == system)
        .filter_map(|v| {
            Some((
                v["workload"].as_str()?.to_string(),
                v.get("error").is_none(),
            ))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Inproc,
    Inproc1d,
    Cli,
    Breakdown,
}

impl System {
    fn arg(self) -> &'static str {
        match self {
            System::Inproc => "inproc",
            System::Inproc1d => "inproc1d",
            System::Cli => "cli",
            System::Breakdown => "breakdown",
        }
    }

    fn name(self) -> &'static str {
        match self {
            System::Inproc => INPROC,
            System::Inproc1d => INPROC_1D,
            System::Cli => CLI,
            System::Breakdown => "breakdown",
        }
    }
}

async fn child(args: &Args, system: System, counts: &Counts) -> Result<usize> {
    // Decode only the day files this system appends.
    let decoded = match system {
        System::Inproc => counts.appends,
        System::Inproc1d => counts.appends_1d,
        System::Cli => 0,
        System::Breakdown => counts.appends.min(2 * breakdown::APPENDS),
    };
    eprintln!("loading inputs from {}", args.data.display());
    let t = Instant::now();
    let inp = Inputs::load(&args.data, decoded)?;
    eprintln!(
        "w1 {} rows, {} day files ({decoded} decoded), w3 {} rows, w4 [{}, {}) ({:.1} s)",
        inp.rows,
        inp.w2_paths.len(),
        inp.w3.num_rows(),
        inp.start,
        inp.end,
        secs(t)
    );
    fs::create_dir_all(&args.work)?;
    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let version = with_rev(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    match system {
        System::Breakdown => breakdown::run(&inp, &args.work.join("breakdown"), args.keep).await?,
        System::Inproc | System::Inproc1d => {
            let one_day = system == System::Inproc1d;
            let runner = InProc {
                inp: &inp,
                args,
                system: system.name(),
                target: if one_day {
                    Some(RowGroupTarget::parse("1D")?)
                } else {
                    None
                },
                dir: args.work.join(if one_day { "inproc-1d" } else { "inproc" }),
                version,
            };
            runner
                .run(
                    &mut rec,
                    if one_day {
                        counts.appends_1d
                    } else {
                        counts.appends
                    },
                )
                .await;
        }
        System::Cli => {
            let tarn = match &args.tarn {
                Some(p) => p.clone(),
                None => default_tarn()
                    .ok_or_else(|| anyhow!("no `tarn` binary next to tarn-bench; pass --tarn"))?,
            };
            let c = Cli {
                inp: &inp,
                args,
                version: tarn_version(&tarn),
                tarn,
                dir: args.work.join("cli"),
            };
            c.run(&mut rec, counts.cli_appends).await;
        }
    }
    Ok(rec.errors)
}
