//! `serve-load`: the load benchmark of `tarn serve` (issue 12, bench/README.md).
//!
//! On loopback, against a real `tarn serve` process on a fresh lake, per run:
//! 1. **idle**: `--readers` (16) concurrent readers loop over `GET /api/v1/data` of a pinned
//!    version of a year of 1-minute rows (`tarn://load/series:vN`), each reader its own
//!    `--range-days` (3) window, Parquet, full body read; each request's latency is recorded.
//! 2. **load**: the same readers, plus one writer appending `--rows-per-commit` (60) new
//!    rows to another dataset (`tarn://load/ingest`, its head) at `--commits-per-s` (10)
//!    through `POST /api/v1/write` (the queue), each request followed to its end with
//!    `GET /api/v1/requests/ID?wait=`, plus one SSE subscriber (`GET /api/v1/events`) that
//!    takes, for each `commit` event, its receive time minus the event's `timestamp` (the
//!    commit's time; same machine, same clock).
//!
//! An error is any non-2xx answer, any failed request (transport, timeout, a body of the
//! wrong size), any write that did not succeed, and any succeeded write whose commit was not
//! notified. Verdicts: errors = 0, reader p99 under load ≤ 2× the idle p99, and the
//! commit-to-notification p99 ≤ 50 ms. The whole benchmark runs `--runs` (3) times, each on
//! a fresh lake and server; the Markdown table shows each run and the median of the runs,
//! and the raw figures go to `--results` as JSON lines. Everything is bounded: each phase by
//! its duration and `--max-requests`, each request by `--request-timeout-s`, the server's
//! start and stop by fixed timeouts; the server is stopped in every case (a guard's Drop).

use anyhow::{Context, Result, anyhow, bail, ensure};
use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use clap::Parser;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERIES: &str = "load/series";
const INGEST: &str = "load/ingest";
const MINUTE_NS: i64 = 60_000_000_000;
const DAY_MINUTES: i64 = 1440;
/// 2020-01-01T00:00:00Z in nanoseconds.
const SERIES_START_NS: i64 = 1_577_836_800_000_000_000;
/// 2030-01-01T00:00:00Z: the ingest dataset's rows start here.
const INGEST_START_NS: i64 = 1_893_456_000_000_000_000;
/// Versions the series is written in (one `tarn write` each).
const SERIES_WRITES: i64 = 4;
/// Targets of issue 12.
const MAX_P99_RATIO: f64 = 2.0;
const MAX_NOTIFY_P99_MS: f64 = 50.0;

#[derive(Debug, Parser)]
#[command(
    name = "serve-load",
    about = "Load benchmark of `tarn serve` on loopback: concurrent readers of /api/v1/data, idle and next to a writer at a fixed commit rate with an SSE subscriber"
)]
struct Args {
    /// The `tarn` binary (default: `tarn` next to this binary).
    #[arg(long)]
    tarn: Option<PathBuf>,
    /// Scratch directory; each run makes a fresh lake in WORK/run-N (removed afterwards
    /// unless --keep).
    #[arg(long, default_value = "bench/data/serve-load")]
    work: PathBuf,
    /// Directory of the results file (serve-load-<UTC time>.jsonl).
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// Whole runs (fresh lake and server each); the table shows each and their median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrent readers of /api/v1/data.
    #[arg(long, default_value_t = 16)]
    readers: usize,
    /// The writer's commit rate in the load phase (writes per second through the queue).
    #[arg(long, default_value_t = 10.0)]
    commits_per_s: f64,
    /// Seconds of the idle phase (readers only).
    #[arg(long, default_value_t = 20.0)]
    idle_s: f64,
    /// Seconds of the load phase (readers + writer + SSE subscriber).
    #[arg(long, default_value_t = 60.0)]
    load_s: f64,
    /// Untimed seconds of readers before the idle phase (connections, caches).
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Bound on the reader requests of one phase (the phase ends when it is reached).
    #[arg(long, default_value_t = 500_000)]
    max_requests: u64,
    /// Days of minutes in the series (one row per minute from 2020-01-01).
    #[arg(long, default_value_t = 365)]
    series_days: i64,
    /// Days of minutes each read asks for (`start`..`end`).
    #[arg(long, default_value_t = 3)]
    range_days: i64,
    /// Rows each commit of the writer appends (one per minute, after the last).
    #[arg(long, default_value_t = 60)]
    rows_per_commit: i64,
    /// Timeout of every HTTP request but the event stream.
    #[arg(long, default_value_t = 30.0)]
    request_timeout_s: f64,
    /// After the writer stops, how long to wait for the last requests and notifications.
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
    /// Client runtime threads (the server and this client share the machine).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Keep the lakes and the server logs of the runs.
    #[arg(long)]
    keep: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.readers >= 1, "--readers must be at least 1");
    ensure!(
        args.commits_per_s > 0.0 && args.commits_per_s <= 1000.0,
        "--commits-per-s must be in (0, 1000]"
    );
    ensure!(
        args.idle_s > 0.0 && args.load_s > 0.0 && args.idle_s <= 3600.0 && args.load_s <= 3600.0,
        "--idle-s and --load-s must be in (0, 3600]"
    );
    ensure!(
        args.range_days >= 1 && args.series_days > args.range_days,
        "--series-days must exceed --range-days (>= 1)"
    );
    ensure!(
        args.rows_per_commit >= 1,
        "--rows-per-commit must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    let code = runtime.block_on(run_all(args))?;
    std::process::exit(code);
}

/// One phase's figures.
#[derive(Debug, Default, Clone)]
struct PhaseFigures {
    phase: &'static str,
    seconds: f64,
    requests: u64,
    errors: u64,
    error_samples: Vec<String>,
    latencies_ms: Vec<f64>,
    commits: u64,
    notify_ms: Vec<f64>,
    write_to_notify_ms: Vec<f64>,
    ack_ms: Vec<f64>,
    server_cpu_s: f64,
    client_cpu_s: f64,
    loadavg: String,
}

impl PhaseFigures {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 20 {
            self.error_samples.push(what);
        }
    }
}

#[derive(Debug, Clone)]
struct RunFigures {
    run: usize,
    idle: PhaseFigures,
    load: PhaseFigures,
}

impl RunFigures {
    fn ratio(&self) -> f64 {
        pct(&self.load.latencies_ms, 0.99) / pct(&self.idle.latencies_ms, 0.99)
    }
    fn errors(&self) -> u64 {
        self.idle.errors + self.load.errors
    }
}

async fn run_all(args: Args) -> Result<i32> {
    let tarn = match &args.tarn {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("no directory for this binary"))?
            .join("tarn"),
    };
    ensure!(
        tarn.is_file(),
        "{} is not a file: build tarn (cargo build --release -p tarn-cli) or pass --tarn",
        tarn.display()
    );
    let tarn = tarn.canonicalize()?;
    std::fs::create_dir_all(&args.work)?;
    std::fs::create_dir_all(&args.results)?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let results_path = args.results.join(format!("serve-load-{stamp}.jsonl"));
    let mut results = std::fs::File::create(&results_path)
        .with_context(|| format!("cannot create {}", results_path.display()))?;
    let tarn_version = output_of(Command::new(&tarn).arg("--version")).unwrap_or_default();
    let git =
        output_of(Command::new("git").args(["rev-parse", "--short", "HEAD"])).unwrap_or_default();
    let dirty = output_of(Command::new("git").args(["status", "--porcelain"]))
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    let machine = machine();
    eprintln!(
        "serve-load: {} runs of {} readers, idle {} s, load {} s at {} commits/s; {} ({}{}); results in {}",
        args.runs,
        args.readers,
        args.idle_s,
        args.load_s,
        args.commits_per_s,
        tarn_version.trim(),
        git.trim(),
        if dirty { ", dirty tree" } else { "" },
        results_path.display()
    );
    let header = json!({
        "benchmark": "serve-load", "kind": "config", "time": stamp,
        "tarn": tarn.display().to_string(), "tarn_version": tarn_version.trim(),
        "git": git.trim(), "dirty": dirty, "machine": machine,
        "runs": args.runs, "readers": args.readers, "commits_per_s": args.commits_per_s,
        "idle_s": args.idle_s, "load_s": args.load_s, "warmup_s": args.warmup_s,
        "max_requests": args.max_requests, "series_days": args.series_days,
        "range_days": args.range_days, "rows_per_commit": args.rows_per_commit,
        "client_threads": args.client_threads,
    });
    writeln!(results, "{header}")?;

    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let dir = args.work.join(format!("run-{run}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        eprintln!("run {run}: setting up a lake in {}", dir.display());
        let figures = one_run(&args, &tarn, &dir, run).await;
        let figures = match figures {
            Ok(f) => f,
            Err(e) => {
                writeln!(
                    results,
                    "{}",
                    json!({"benchmark": "serve-load", "kind": "error", "run": run, "error": format!("{e:#}")})
                )?;
                eprintln!("run {run} failed: {e:#}");
                return Err(e.context(format!("run {run}")));
            }
        };
        for phase in [&figures.idle, &figures.load] {
            writeln!(results, "{}", phase_json(run, phase))?;
            writeln!(
                results,
                "{}",
                json!({"benchmark": "serve-load", "kind": "samples", "run": run,
                       "phase": phase.phase,
                       "reader_latency_ms": round_all(&phase.latencies_ms),
                       "notify_ms": round_all(&phase.notify_ms),
                       "write_to_notify_ms": round_all(&phase.write_to_notify_ms),
                       "write_ack_ms": round_all(&phase.ack_ms)})
            )?;
        }
        eprintln!(
            "run {run}: idle p99 {:.1} ms ({} requests), load p99 {:.1} ms ({} requests), ratio {:.2}, notification p99 {:.1} ms over {} commits, {} errors",
            pct(&figures.idle.latencies_ms, 0.99),
            figures.idle.requests,
            pct(&figures.load.latencies_ms, 0.99),
            figures.load.requests,
            figures.ratio(),
            pct(&figures.load.notify_ms, 0.99),
            figures.load.commits,
            figures.errors()
        );
        for e in figures
            .idle
            .error_samples
            .iter()
            .chain(&figures.load.error_samples)
        {
            eprintln!("  error: {e}");
        }
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        runs.push(figures);
    }
    let (table, ok) = table(&runs);
    println!("{table}");
    let summary = json!({
        "benchmark": "serve-load", "kind": "summary",
        "median_idle_p99_ms": median(runs.iter().map(|r| pct(&r.idle.latencies_ms, 0.99))),
        "median_load_p99_ms": median(runs.iter().map(|r| pct(&r.load.latencies_ms, 0.99))),
        "median_ratio": median(runs.iter().map(RunFigures::ratio)),
        "median_notify_p99_ms": median(runs.iter().map(|r| pct(&r.load.notify_ms, 0.99))),
        "errors": runs.iter().map(RunFigures::errors).sum::<u64>(),
        "targets_met": ok,
    });
    writeln!(results, "{summary}")?;
    eprintln!("results: {}", results_path.display());
    Ok(if ok { 0 } else { 1 })
}

fn round_all(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}

fn phase_json(run: usize, p: &PhaseFigures) -> Value {
    let l = &p.latencies_ms;
    let n = &p.notify_ms;
    json!({
        "benchmark": "serve-load", "kind": "phase", "run": run, "phase": p.phase,
        "seconds": p.seconds, "requests": p.requests, "errors": p.errors,
        "error_samples": p.error_samples,
        "requests_per_s": p.requests as f64 / p.seconds,
        "reader_p50_ms": pct(l, 0.5), "reader_p90_ms": pct(l, 0.9),
        "reader_p99_ms": pct(l, 0.99), "reader_max_ms": pct(l, 1.0),
        "reader_mean_ms": mean(l),
        "commits": p.commits,
        "notify_p50_ms": pct(n, 0.5), "notify_p99_ms": pct(n, 0.99), "notify_max_ms": pct(n, 1.0),
        "write_to_notify_p50_ms": pct(&p.write_to_notify_ms, 0.5),
        "write_to_notify_p99_ms": pct(&p.write_to_notify_ms, 0.99),
        "write_ack_p50_ms": pct(&p.ack_ms, 0.5), "write_ack_p99_ms": pct(&p.ack_ms, 0.99),
        "server_cpu_s": p.server_cpu_s, "client_cpu_s": p.client_cpu_s,
        "loadavg": p.loadavg,
    })
}

/// Nearest-rank percentile (`q` = 1 is the maximum); NaN when empty.
fn pct(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The Markdown tables: each run's phases, the median of the runs, and the verdicts.
fn table(runs: &[RunFigures]) -> (String, bool) {
    let mut out = String::new();
    out.push_str("| run | phase | requests | req/s | errors | reader p50 | p90 | p99 | max (ms) | commits | notify p50 | p99 | max (ms) | write→notified p99 (ms) | server CPU |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let row = |out: &mut String, run: &str, p: &PhaseFigures| {
        let l = &p.latencies_ms;
        let load = p.phase == "load";
        let dash = |s: String| if load { s } else { "–".into() };
        out.push_str(&format!(
            "| {run} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |\n",
            p.phase,
            p.requests,
            p.requests as f64 / p.seconds,
            p.errors,
            ms(pct(l, 0.5)),
            ms(pct(l, 0.9)),
            ms(pct(l, 0.99)),
            ms(pct(l, 1.0)),
            dash(p.commits.to_string()),
            dash(ms(pct(&p.notify_ms, 0.5))),
            dash(ms(pct(&p.notify_ms, 0.99))),
            dash(ms(pct(&p.notify_ms, 1.0))),
            dash(ms(pct(&p.write_to_notify_ms, 0.99))),
            100.0 * p.server_cpu_s / p.seconds,
        ));
    };
    for r in runs {
        row(&mut out, &r.run.to_string(), &r.idle);
        row(&mut out, &r.run.to_string(), &r.load);
    }
    if runs.len() > 1 {
        for phase in ["idle", "load"] {
            let pick = |r: &RunFigures| -> PhaseFigures {
                if phase == "idle" {
                    r.idle.clone()
                } else {
                    r.load.clone()
                }
            };
            let ps: Vec<PhaseFigures> = runs.iter().map(pick).collect();
            let med = |f: &dyn Fn(&PhaseFigures) -> f64| median(ps.iter().map(f));
            let load = phase == "load";
            let dash = |s: String| if load { s } else { "–".into() };
            out.push_str(&format!(
                "| median | {phase} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |\n",
                med(&|p| p.requests as f64),
                med(&|p| p.requests as f64 / p.seconds),
                med(&|p| p.errors as f64),
                ms(med(&|p| pct(&p.latencies_ms, 0.5))),
                ms(med(&|p| pct(&p.latencies_ms, 0.9))),
                ms(med(&|p| pct(&p.latencies_ms, 0.99))),
                ms(med(&|p| pct(&p.latencies_ms, 1.0))),
                dash(format!("{:.0}", med(&|p| p.commits as f64))),
                dash(ms(med(&|p| pct(&p.notify_ms, 0.5)))),
                dash(ms(med(&|p| pct(&p.notify_ms, 0.99)))),
                dash(ms(med(&|p| pct(&p.notify_ms, 1.0)))),
                dash(ms(med(&|p| pct(&p.write_to_notify_ms, 0.99)))),
                med(&|p| 100.0 * p.server_cpu_s / p.seconds),
            ));
        }
    }
    out.push('\n');
    out.push_str("| run | reader p99 load / idle (≤ 2) | notification p99 (≤ 50 ms) | errors (= 0) | all met |\n");
    out.push_str("|---|---|---|---|---|\n");
    let verdict = |out: &mut String, run: &str, ratio: f64, notify: f64, errors: u64| -> bool {
        let a = ratio <= MAX_P99_RATIO;
        let b = notify <= MAX_NOTIFY_P99_MS;
        let c = errors == 0;
        out.push_str(&format!(
            "| {run} | {ratio:.2} ({}) | {} ms ({}) | {errors} ({}) | {} |\n",
            yes(a),
            ms(notify),
            yes(b),
            yes(c),
            yes(a && b && c)
        ));
        a && b && c
    };
    let mut all = true;
    for r in runs {
        all &= verdict(
            &mut out,
            &r.run.to_string(),
            r.ratio(),
            pct(&r.load.notify_ms, 0.99),
            r.errors(),
        );
    }
    let ok = if runs.len() > 1 {
        let errors: u64 = runs.iter().map(RunFigures::errors).sum();
        verdict(
            &mut out,
            "median (errors: total)",
            median(runs.iter().map(RunFigures::ratio)),
            median(runs.iter().map(|r| pct(&r.load.notify_ms, 0.99))),
            errors,
        )
    } else {
        all
    };
    (out, ok)
}

// ---------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------

async fn one_run(args: &Args, tarn: &Path, dir: &Path, run: usize) -> Result<RunFigures> {
    let lake = dir.join("lake");
    let setup = setup_lake(args, tarn, dir, &lake)?;
    let server = Server::start(tarn, &lake, &dir.join("server.log"))?;
    eprintln!(
        "run {run}: {} ({} rows at v{}), serving at {}",
        setup.series_uri, setup.series_rows, setup.series_version, server.base
    );
    let timeout = Duration::from_secs_f64(args.request_timeout_s);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(args.readers * 2)
        .tcp_nodelay(true)
        .build()?;
    // The writer, its waits and the event stream get their own connections.
    let side = reqwest::Client::builder().tcp_nodelay(true).build()?;

    let readers = reader_windows(args, &setup, &server.base);
    // Check every window once: a Parquet body of the expected rows; its size is then
    // checked on every request (a pinned version's bytes never change).
    let mut sizes = Vec::new();
    for r in &readers {
        sizes.push(check_window(&client, r, &setup.read_token).await?);
    }
    let readers: Vec<Arc<Window>> = readers
        .into_iter()
        .zip(sizes)
        .map(|(mut w, size)| {
            w.body_bytes = size;
            Arc::new(w)
        })
        .collect();

    // Untimed warm-up with every reader.
    let _ = read_phase(
        &client,
        &readers,
        &setup.read_token,
        Duration::from_secs_f64(args.warmup_s),
        args.max_requests,
    )
    .await;

    // Idle: readers only.
    let cpu0 = (server.cpu_seconds(), self_cpu_seconds());
    let t0 = Instant::now();
    let idle = read_phase(
        &client,
        &readers,
        &setup.read_token,
        Duration::from_secs_f64(args.idle_s),
        args.max_requests,
    )
    .await;
    let mut idle_fig = PhaseFigures {
        phase: "idle",
        seconds: t0.elapsed().as_secs_f64(),
        server_cpu_s: server.cpu_seconds() - cpu0.0,
        client_cpu_s: self_cpu_seconds() - cpu0.1,
        loadavg: loadavg(),
        ..Default::default()
    };
    absorb_reads(&mut idle_fig, idle);

    // Load: readers + writer + event stream.
    let mut load_fig = PhaseFigures {
        phase: "load",
        ..Default::default()
    };
    let notifications: Arc<Mutex<Notifications>> = Arc::default();
    let events = subscribe(
        &side,
        &server.base,
        &setup.read_token,
        notifications.clone(),
    )
    .await
    .context("the event stream")?;
    let cpu0 = (server.cpu_seconds(), self_cpu_seconds());
    let t0 = Instant::now();
    let duration = Duration::from_secs_f64(args.load_s);
    let writer = tokio::spawn(write_loop(
        side.clone(),
        server.base.clone(),
        setup.write_token.clone(),
        args.commits_per_s,
        args.rows_per_commit,
        setup.ingest_next_ns,
        duration,
        timeout,
        run,
    ));
    let reads = read_phase(
        &client,
        &readers,
        &setup.read_token,
        duration,
        args.max_requests,
    )
    .await;
    let writes = writer.await.context("the writer panicked")?;
    load_fig.seconds = t0.elapsed().as_secs_f64();
    load_fig.server_cpu_s = server.cpu_seconds() - cpu0.0;
    load_fig.client_cpu_s = self_cpu_seconds() - cpu0.1;
    load_fig.loadavg = loadavg();
    absorb_reads(&mut load_fig, reads);

    // Every write to its end, then every succeeded commit's notification.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_s);
    let mut finished = Vec::new();
    for w in writes {
        match w {
            WriteOutcome::Refused(e) => load_fig.error(e),
            WriteOutcome::Queued {
                sent,
                ack_ms,
                request_id,
                waiter,
            } => {
                load_fig.ack_ms.push(ack_ms);
                let left = drain_until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                match tokio::time::timeout(left + timeout, waiter).await {
                    Ok(Ok(Ok(version))) => finished.push((sent, version)),
                    Ok(Ok(Err(e))) => load_fig.error(format!("write {request_id}: {e}")),
                    Ok(Err(e)) => load_fig.error(format!("write {request_id}: waiter: {e}")),
                    Err(_) => load_fig.error(format!("write {request_id}: not finished")),
                }
            }
        }
    }
    load_fig.commits = finished.len() as u64;
    loop {
        let missing = {
            let n = lock(&notifications);
            finished
                .iter()
                .filter(|(_, v)| !n.by_version.contains_key(v))
                .count()
        };
        if missing == 0 || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    events.abort();
    let n = lock(&notifications);
    if let Some(e) = &n.failure {
        load_fig.error(format!("event stream: {e}"));
    }
    for (sent, version) in &finished {
        match n.by_version.get(version) {
            Some(note) => {
                load_fig.notify_ms.push(note.latency_ms);
                let e2e = (note.received - *sent)
                    .num_microseconds()
                    .unwrap_or(i64::MAX);
                load_fig.write_to_notify_ms.push(e2e as f64 / 1000.0);
            }
            None => load_fig.error(format!("no commit event for {INGEST} v{version}")),
        }
    }
    for (v, count) in &n.duplicates {
        load_fig.error(format!("{count} extra commit events for v{v}"));
    }
    drop(n);
    let stopped = server.stop();
    if let Err(e) = stopped {
        load_fig.error(format!("server stop: {e:#}"));
    }
    Ok(RunFigures {
        run,
        idle: idle_fig,
        load: load_fig,
    })
}

struct Setup {
    series_uri: String,
    series_version: u64,
    series_rows: u64,
    read_token: String,
    write_token: String,
    ingest_next_ns: i64,
}

fn setup_lake(args: &Args, tarn: &Path, dir: &Path, lake: &Path) -> Result<Setup> {
    run_tarn(tarn, None, &[OsArg::from("init"), lake.into()])?;
    // The series: `series_days` of minutes in SERIES_WRITES writes (versions), default
    // row-group target. Written relaxed (setup only; the server's writes are durable).
    let total = args.series_days * DAY_MINUTES;
    for i in 0..SERIES_WRITES {
        let from = total * i / SERIES_WRITES;
        let to = total * (i + 1) / SERIES_WRITES;
        let file = dir.join(format!("series-{i}.parquet"));
        std::fs::write(&file, parquet_bytes(&series_batch(from, to)?)?)?;
        run_tarn(
            tarn,
            Some(lake),
            &[
                "write".into(),
                format!("tarn://{SERIES}").into(),
                file.as_path().into(),
                "--ordered-on".into(),
                "ts".into(),
            ],
        )?;
        std::fs::remove_file(&file)?;
    }
    let info: Value = serde_json::from_str(&run_tarn(
        tarn,
        Some(lake),
        &[
            "--json".into(),
            "info".into(),
            format!("tarn://{SERIES}").into(),
        ],
    )?)
    .context("tarn info --json")?;
    let series_version = info["version"]
        .as_u64()
        .ok_or_else(|| anyhow!("tarn info: no version in {info}"))?;
    let series_rows = info["rows"]
        .as_u64()
        .ok_or_else(|| anyhow!("tarn info: no rows in {info}"))?;
    ensure!(
        series_rows == total as u64,
        "the series holds {series_rows} rows, not {total}"
    );
    // The ingest dataset: one batch, so the writer's requests only append.
    let file = dir.join("ingest-0.parquet");
    std::fs::write(
        &file,
        parquet_bytes(&ingest_batch(INGEST_START_NS, args.rows_per_commit)?)?,
    )?;
    run_tarn(
        tarn,
        Some(lake),
        &[
            "write".into(),
            format!("tarn://{INGEST}").into(),
            file.as_path().into(),
            "--ordered-on".into(),
            "ts".into(),
        ],
    )?;
    std::fs::remove_file(&file)?;
    let token = |name: &str, scope: &str| -> Result<String> {
        let out = run_tarn(
            tarn,
            Some(lake),
            &[
                "--json".into(),
                "token".into(),
                "create".into(),
                name.into(),
                "--scope".into(),
                scope.into(),
            ],
        )?;
        let v: Value = serde_json::from_str(&out).context("tarn token create --json")?;
        Ok(v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("no token in {v}"))?
            .to_string())
    };
    Ok(Setup {
        series_uri: format!("tarn://{SERIES}:v{series_version}"),
        series_version,
        series_rows,
        read_token: token("load-reader", "read:")?,
        write_token: token("load-writer", &format!("write:{INGEST}"))?,
        ingest_next_ns: INGEST_START_NS + args.rows_per_commit * MINUTE_NS,
    })
}

type OsArg = std::ffi::OsString;

/// Runs `tarn [--lake LAKE] ARGS` to its end (relaxed durability: setup only) and returns
/// its stdout.
fn run_tarn(tarn: &Path, lake: Option<&Path>, args: &[OsArg]) -> Result<String> {
    let mut cmd = Command::new(tarn);
    if let Some(l) = lake {
        cmd.arg("--lake").arg(l);
    }
    cmd.args(args)
        .env("TARN_DURABILITY", "relaxed")
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", tarn.display()))?;
    if !out.status.success() {
        bail!(
            "tarn {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn ts_field() -> Field {
    Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

/// Minutes `from..to` of the series: ts, a-d (uniform in [-1, 1)), n.
fn series_batch(from: i64, to: i64) -> Result<RecordBatch> {
    let ts: Vec<i64> = (from..to)
        .map(|m| SERIES_START_NS + m * MINUTE_NS)
        .collect();
    let col = |c: u64| -> Float64Array {
        (from..to)
            .map(|m| 2.0 * unit(splitmix(m as u64 ^ (c << 56))) - 1.0)
            .collect()
    };
    let n: Int64Array = (from..to)
        .map(|m| (splitmix(m as u64 ^ (9 << 56)) >> 40) as i64)
        .collect();
    let schema = Schema::new(vec![
        ts_field(),
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("c", DataType::Float64, false),
        Field::new("d", DataType::Float64, false),
        Field::new("n", DataType::Int64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(col(1)),
            Arc::new(col(2)),
            Arc::new(col(3)),
            Arc::new(col(4)),
            Arc::new(n),
        ],
    )?)
}

/// `rows` minutes of the ingest dataset from `first_ns`: ts, value, n.
fn ingest_batch(first_ns: i64, rows: i64) -> Result<RecordBatch> {
    let ts: Vec<i64> = (0..rows).map(|i| first_ns + i * MINUTE_NS).collect();
    let value: Float64Array = ts.iter().map(|t| unit(splitmix(*t as u64))).collect();
    let n: Int64Array = ts.iter().map(|t| (t / MINUTE_NS) % 1000).collect();
    let schema = Schema::new(vec![
        ts_field(),
        Field::new("value", DataType::Float64, false),
        Field::new("n", DataType::Int64, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(value),
            Arc::new(n),
        ],
    )?)
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None)?;
    writer.write(batch)?;
    Ok(writer.into_inner()?)
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// A running `tarn serve`; dropping it stops the process (SIGTERM, then SIGKILL after 10 s),
/// also when the benchmark panics or fails.
struct Server {
    child: Option<Child>,
    base: String,
    pid: u32,
    clock_ticks: f64,
}

impl Server {
    fn start(tarn: &Path, lake: &Path, log: &Path) -> Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let mut child = Command::new(tarn)
            .arg("--lake")
            .arg(lake)
            .args(["--durability", "durable", "serve", "--addr", "127.0.0.1:0"])
            .env_remove("TARN_DURABILITY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {} serve", tarn.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut server = Self {
            child: Some(child),
            base: String::new(),
            pid,
            clock_ticks: output_of(Command::new("getconf").arg("CLK_TCK"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(100.0),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // Drain stdout for the server's whole life (a full pipe would block it).
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                eprintln!("[tarn serve] {line}");
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
            anyhow!(
                "tarn serve printed no first line within 60 s (its log: {})",
                log.display()
            )
        })?;
        let base = first
            .strip_prefix("listening on ")
            .filter(|b| b.starts_with("http://127.0.0.1:"))
            .ok_or_else(|| anyhow!("unexpected first line of tarn serve: {first:?}"))?;
        server.base = base.trim_end_matches('/').to_string();
        Ok(server)
    }

    /// User + system CPU seconds of the server process so far.
    fn cpu_seconds(&self) -> f64 {
        proc_cpu(&format!("/proc/{}/stat", self.pid)) / self.clock_ticks
    }

    /// Stops the server and checks it exits by itself on SIGTERM.
    fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().expect("a running server");
        terminate(&mut child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child);
        }
    }
}

fn terminate(child: &mut Child) -> Result<()> {
    if child.try_wait()?.is_some() {
        bail!("tarn serve had exited already");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "tarn serve exited with {status}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("tarn serve did not stop within 10 s of SIGTERM (killed)")
}

/// utime + stime (clock ticks) of a /proc/PID/stat file.
fn proc_cpu(path: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // Fields after the command name (in parentheses, which may hold spaces).
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let get = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    get(14) + get(15)
}

fn self_cpu_seconds() -> f64 {
    let ticks = output_of(Command::new("getconf").arg("CLK_TCK"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0);
    proc_cpu("/proc/self/stat") / ticks
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": output_of(Command::new("uname").arg("-r")).unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------------------

struct Window {
    url: String,
    query: Vec<(String, String)>,
    rows: usize,
    body_bytes: usize,
}

fn rfc3339(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reader i reads its own `range_days` window, the windows spread over the series.
fn reader_windows(args: &Args, setup: &Setup, base: &str) -> Vec<Window> {
    let span = args.series_days - args.range_days;
    (0..args.readers)
        .map(|i| {
            let day = span * i as i64 / args.readers as i64;
            let start = SERIES_START_NS + day * DAY_MINUTES * MINUTE_NS;
            let end = start + args.range_days * DAY_MINUTES * MINUTE_NS;
            Window {
                url: format!("{base}/api/v1/data"),
                query: vec![
                    ("uri".into(), setup.series_uri.clone()),
                    ("start".into(), rfc3339(start)),
                    ("end".into(), rfc3339(end)),
                    ("format".into(), "parquet".into()),
                ],
                rows: (args.range_days * DAY_MINUTES) as usize,
                body_bytes: 0,
            }
        })
        .collect()
}

/// One request of the window, decoded: the expected rows in order. Returns the body size.
async fn check_window(client: &reqwest::Client, w: &Window, token: &str) -> Result<usize> {
    let resp = client
        .get(&w.url)
        .query(&w.query)
        .bearer_auth(token)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status.is_success(),
        "GET /api/v1/data {:?}: {status}: {}",
        w.query,
        String::from_utf8_lossy(&body)
    );
    let size = body.len();
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)?.build()?;
    let mut rows = 0;
    let mut first = None;
    for batch in reader {
        let batch = batch?;
        ensure!(batch.num_columns() == 6, "{} columns", batch.num_columns());
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| anyhow!("ts is not timestamp[ns]"))?;
        if first.is_none() && !ts.is_empty() {
            first = Some(ts.value(0));
        }
        rows += batch.num_rows();
    }
    ensure!(
        rows == w.rows,
        "GET /api/v1/data {:?}: {rows} rows, expected {}",
        w.query,
        w.rows
    );
    let start = &w.query[1].1;
    ensure!(
        first.map(rfc3339).as_deref() == Some(start.as_str()),
        "first row {first:?}, expected {start}"
    );
    Ok(size)
}

#[derive(Default)]
struct ReadOutcome {
    latencies_ms: Vec<f64>,
    errors: Vec<String>,
}

fn absorb_reads(fig: &mut PhaseFigures, outcomes: Vec<ReadOutcome>) {
    for o in outcomes {
        fig.requests += (o.latencies_ms.len() + o.errors.len()) as u64;
        fig.latencies_ms.extend(o.latencies_ms);
        for e in o.errors {
            fig.error(e);
        }
    }
}

/// All readers for `duration` (or until `max_requests` requests of the phase started).
async fn read_phase(
    client: &reqwest::Client,
    windows: &[Arc<Window>],
    token: &str,
    duration: Duration,
    max_requests: u64,
) -> Vec<ReadOutcome> {
    let stop = Instant::now() + duration;
    let started = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = windows
        .iter()
        .map(|w| {
            let (client, w, token, started) = (
                client.clone(),
                w.clone(),
                token.to_string(),
                started.clone(),
            );
            tokio::spawn(async move {
                let mut out = ReadOutcome::default();
                while Instant::now() < stop
                    && started.fetch_add(1, Ordering::Relaxed) < max_requests
                {
                    let t = Instant::now();
                    let result = async {
                        let resp = client
                            .get(&w.url)
                            .query(&w.query)
                            .bearer_auth(&token)
                            .send()
                            .await?;
                        let status = resp.status();
                        let body = resp.bytes().await?;
                        anyhow::Ok((status, body))
                    }
                    .await;
                    let elapsed = t.elapsed().as_secs_f64() * 1000.0;
                    match result {
                        Ok((status, body)) if status.is_success() => {
                            if body.len() == w.body_bytes {
                                out.latencies_ms.push(elapsed);
                            } else {
                                out.errors.push(format!(
                                    "GET /api/v1/data: {} bytes, expected {}",
                                    body.len(),
                                    w.body_bytes
                                ));
                            }
                        }
                        Ok((status, body)) => out.errors.push(format!(
                            "GET /api/v1/data: {status}: {}",
                            String::from_utf8_lossy(&body[..body.len().min(200)])
                        )),
                        Err(e) => out.errors.push(format!("GET /api/v1/data: {e:#}")),
                    }
                }
                out
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        match t.await {
            Ok(o) => outcomes.push(o),
            Err(e) => outcomes.push(ReadOutcome {
                latencies_ms: Vec::new(),
                errors: vec![format!("a reader panicked: {e}")],
            }),
        }
    }
    outcomes
}

// ---------------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------------

enum WriteOutcome {
    Refused(String),
    Queued {
        /// When the POST was sent (the client's clock).
        sent: DateTime<Utc>,
        /// POST to 202.
        ack_ms: f64,
        request_id: String,
        /// The request's end: the version it committed.
        waiter: tokio::task::JoinHandle<Result<u64>>,
    },
}

/// `commits_per_s` POST /api/v1/write for `duration`, each followed to its end by a task.
#[allow(clippy::too_many_arguments)]
async fn write_loop(
    client: reqwest::Client,
    base: String,
    token: String,
    commits_per_s: f64,
    rows: i64,
    mut next_ns: i64,
    duration: Duration,
    timeout: Duration,
    run: usize,
) -> Vec<WriteOutcome> {
    let stop = Instant::now() + duration;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / commits_per_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = (commits_per_s * duration.as_secs_f64()).ceil() as u64 + 1;
    let mut out = Vec::new();
    let url = format!("{base}/api/v1/write");
    let uri = format!("tarn://{INGEST}");
    for k in 0..limit {
        tick.tick().await;
        if Instant::now() >= stop {
            break;
        }
        let body = match ingest_batch(next_ns, rows).and_then(|b| parquet_bytes(&b)) {
            Ok(b) => b,
            Err(e) => {
                out.push(WriteOutcome::Refused(format!("body: {e:#}")));
                continue;
            }
        };
        next_ns += rows * MINUTE_NS;
        let sent = Utc::now();
        let t = Instant::now();
        let resp = client
            .post(&url)
            .query(&[("uri", uri.as_str()), ("ordered_on", "ts")])
            .bearer_auth(&token)
            .header("content-type", "application/vnd.apache.parquet")
            .header("idempotency-key", format!("serve-load-{run}-{k}"))
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let outcome = async {
            let resp = resp?;
            let status = resp.status();
            let text = resp.text().await?;
            ensure!(
                status == reqwest::StatusCode::ACCEPTED,
                "POST /api/v1/write: {status}: {text}"
            );
            let v: Value = serde_json::from_str(&text)?;
            let id = v["request_id"]
                .as_str()
                .ok_or_else(|| anyhow!("POST /api/v1/write: no request_id in {text}"))?
                .to_string();
            anyhow::Ok(id)
        }
        .await;
        let ack_ms = t.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(request_id) => {
                let waiter = tokio::spawn(wait_request(
                    client.clone(),
                    format!("{base}/api/v1/requests/{request_id}"),
                    token.clone(),
                    timeout,
                ));
                out.push(WriteOutcome::Queued {
                    sent,
                    ack_ms,
                    request_id,
                    waiter,
                });
            }
            Err(e) => out.push(WriteOutcome::Refused(format!("{e:#}"))),
        }
    }
    out
}

/// `GET /api/v1/requests/ID?wait=` until the request ends (at most `timeout` in all).
async fn wait_request(
    client: reqwest::Client,
    url: String,
    token: String,
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(!left.is_zero(), "not finished within {timeout:?}");
        let wait = left.as_secs_f64().min(10.0);
        let resp = client
            .get(&url)
            .query(&[("wait", format!("{wait:.3}"))])
            .bearer_auth(&token)
            .timeout(left + Duration::from_secs(5))
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        ensure!(status.is_success(), "GET {url}: {status}: {text}");
        let v: Value = serde_json::from_str(&text)?;
        match v["status"].as_str() {
            Some("succeeded") => {
                return v["version"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("succeeded without a version: {text}"));
            }
            Some("failed") => bail!("failed: {}", v["error"]),
            Some("queued" | "running") => continue,
            _ => bail!("GET {url}: unexpected answer {text}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The event stream
// ---------------------------------------------------------------------------------------

struct Notification {
    received: DateTime<Utc>,
    latency_ms: f64,
}

#[derive(Default)]
struct Notifications {
    by_version: HashMap<u64, Notification>,
    duplicates: BTreeMap<u64, u64>,
    requests: u64,
    failure: Option<String>,
}

/// Opens `GET /api/v1/events?prefix=INGEST` and records every `commit` event of INGEST
/// in the background; returns once the stream answered 200.
async fn subscribe(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    into: Arc<Mutex<Notifications>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .get(format!("{base}/api/v1/events"))
            .query(&[("prefix", INGEST)])
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .map_err(|_| anyhow!("no answer within 10 s"))??;
    let status = resp.status();
    ensure!(status.is_success(), "GET /api/v1/events: {status}");
    Ok(tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buffer = String::new();
        loop {
            let chunk = match stream.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    lock(&into).failure = Some(format!("{e}"));
                    return;
                }
                None => {
                    lock(&into).failure = Some("the stream ended".into());
                    return;
                }
            };
            let received = Utc::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let mut kind = "message";
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                let mut n = lock(&into);
                match kind {
                    "commit" => match parse_commit(&data, received) {
                        Ok(Some((version, note))) => {
                            if let std::collections::hash_map::Entry::Vacant(e) =
                                n.by_version.entry(version)
                            {
                                e.insert(note);
                            } else {
                                *n.duplicates.entry(version).or_default() += 1;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            n.failure = Some(format!("a commit event: {e:#}: {data}"));
                        }
                    },
                    "request" => n.requests += 1,
                    _ => {}
                }
            }
        }
    }))
}

/// A commit event of INGEST on main: its version and latency.
fn parse_commit(data: &str, received: DateTime<Utc>) -> Result<Option<(u64, Notification)>> {
    let v: Value = serde_json::from_str(data)?;
    if v["dataset"] != INGEST || v["branch"] != "main" {
        return Ok(None);
    }
    let version = v["version"].as_u64().ok_or_else(|| anyhow!("no version"))?;
    let ts = v["timestamp"]
        .as_str()
        .ok_or_else(|| anyhow!("no timestamp"))?;
    let ts = DateTime::parse_from_rfc3339(ts)?.with_timezone(&Utc);
    let latency = (received - ts)
        .num_microseconds()
        .ok_or_else(|| anyhow!("latency out of range"))?;
    Ok(Some((
        version,
        Notification {
            received,
            latency_ms: latency as f64 / 1000.0,
        },
    )))
}

/// The mutex's value, also after a panic of another holder (the figures stay readable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
