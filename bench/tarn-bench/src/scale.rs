//! W8: catalog scale (issue 10, item 5). One lake of `--datasets` (1,000,000) small datasets
//! on one backend, next to a lake of one dataset on the same backend:
//!
//! - creating datasets, durable, in one process: the rate of the first and of the last
//!   `--durable-sample` creations (on the empty and on the full lake), with one task and
//!   with `--concurrency` tasks; the datasets in between are written relaxed, with the same
//!   concurrency, to fill the lake in reasonable time (their rate is recorded too);
//! - `tarn ls PREFIX` of 1,000 datasets out of all of them, in-process and as a process;
//! - `tarn info` and a one-week read of a 2-week minute series, on the full lake and on the
//!   one-dataset lake, in-process and as processes;
//! - the catalog's plan for the prefix listing (`EXPLAIN QUERY PLAN` / `EXPLAIN ANALYZE`).
//!
//! Names: `scale/gGGGG/dDDD` (1,000 per group), so `scale/g0042` is 1,000 datasets.

use crate::{Recorder, secs, with_rev};
use anyhow::{Context, Result, bail, ensure};
use arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use tarn::{Durability, Lake, LakeConfig, ReadRequest, RowGroupTarget, WriteRequest};

const GROUP: usize = 1000;
const BIG: &str = "tarn://scale/one";
const WEEK_START: &str = "2024-01-04T00:00:00Z";
const WEEK_END: &str = "2024-01-11T00:00:00Z";
const MINUTE_US: i64 = 60_000_000;
/// 2024-01-01T00:00:00Z in microseconds.
const EPOCH_2024_US: i64 = 1_704_067_200_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// SQLite catalog, local files.
    Local,
    /// PostgreSQL catalog, S3 storage (the servers of scripts/with-services).
    Remote,
    /// PostgreSQL catalog, local files: the catalog's share of the cost, without the S3
    /// server that shares this machine's cores.
    Postgres,
}

impl BackendArg {
    pub fn system(self) -> &'static str {
        match self {
            BackendArg::Local => "tarn (SQLite + local)",
            BackendArg::Remote => "tarn (PostgreSQL + S3)",
            BackendArg::Postgres => "tarn (PostgreSQL + local)",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    #[arg(long, value_enum, default_value_t = BackendArg::Local)]
    pub backend: BackendArg,
    /// Datasets in the big lake.
    #[arg(long, default_value_t = 1_000_000)]
    pub datasets: usize,
    /// Durable creations timed at the start and at the end (each split between one task and
    /// --concurrency tasks).
    #[arg(long, default_value_t = 20_000)]
    pub durable_sample: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Repetitions of each listing, info and read.
    #[arg(long, default_value_t = 15)]
    pub repeat: usize,
    /// Scratch directory (the lakes' tarn.toml files; local data).
    #[arg(long)]
    pub work: PathBuf,
    #[arg(long)]
    pub results: PathBuf,
    /// The `tarn` binary (default: `tarn` next to this executable).
    #[arg(long)]
    pub tarn: Option<PathBuf>,
    /// Measure again on the big lake left by an earlier run in --work (skip creating it).
    #[arg(long)]
    pub reuse: bool,
}

/// A lake directory for `backend` in `dir`: the default layout, or a fresh PostgreSQL
/// schema and S3 prefix on the servers of scripts/with-services.
pub async fn new_lake(dir: &Path, backend: BackendArg) -> Result<Lake> {
    crate::fresh_dir(dir)?;
    let config = match backend {
        BackendArg::Local => LakeConfig::default(),
        BackendArg::Remote | BackendArg::Postgres => {
            let servers = tarn_testkit::servers().context(
                "no servers: run under scripts/with-services (TARN_TEST_POSTGRES, TARN_TEST_S3_*)",
            )?;
            let name = tarn_testkit::unique("tarn_bench");
            servers.create_schema(&name);
            let mut config = servers.config(&name, &name);
            if backend == BackendArg::Postgres {
                config.storage = dir.join("data").display().to_string();
                config.s3 = Default::default();
            }
            config
        }
    };
    Lake::init_with(dir, config).await?;
    Ok(Lake::open_with(dir, Durability::Durable).await?)
}

/// 24 hourly rows (a small first write).
fn small_batch(seed: usize) -> Result<RecordBatch> {
    let ts: Vec<i64> = (0..24)
        .map(|h| EPOCH_2024_US + h * 60 * MINUTE_US)
        .collect();
    let v: Vec<f64> = (0..24).map(|h| (seed * 24 + h) as f64).collect();
    batch(ts, v)
}

fn batch(ts: Vec<i64>, v: Vec<f64>) -> Result<RecordBatch> {
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC"));
    let v: ArrayRef = Arc::new(Float64Array::from(v));
    Ok(RecordBatch::try_from_iter([("ts", ts), ("v", v)])?)
}

fn name(i: usize) -> String {
    format!("tarn://scale/g{:04}/d{:03}", i / GROUP, i % GROUP)
}

/// Creates datasets `range` with `tasks` concurrent writers; returns the seconds taken.
async fn create(lake: &Lake, range: std::ops::Range<usize>, tasks: usize) -> Result<f64> {
    let t = Instant::now();
    let n = range.len();
    let mut writes = futures::stream::iter(range)
        .map(|i| {
            let lake = lake.clone();
            async move {
                let out = lake
                    .write(
                        &name(i),
                        small_batch(i)?,
                        WriteRequest::new().ordered_on("ts"),
                    )
                    .await?;
                ensure!(out.version == Some(1), "{}: {out:?}", name(i));
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(tasks.max(1));
    let mut done = 0;
    while let Some(r) = writes.next().await {
        r?;
        done += 1;
        if done % 50_000 == 0 {
            eprintln!("  created {done} of {n} ({:.0}/s)", done as f64 / secs(t));
        }
    }
    Ok(secs(t))
}

/// 2 weeks of minutes from 2024-01-01, 1D row groups.
async fn write_big(lake: &Lake) -> Result<()> {
    let n = 14 * 1440;
    let ts: Vec<i64> = (0..n).map(|m| EPOCH_2024_US + m * MINUTE_US).collect();
    let v: Vec<f64> = (0..n).map(|m| (m % 977) as f64).collect();
    let request = WriteRequest::new()
        .ordered_on("ts")
        .row_group_target(RowGroupTarget::parse("1D")?);
    lake.write(BIG, batch(ts, v)?, request).await?;
    Ok(())
}

struct Ctx<'a> {
    args: &'a ScaleArgs,
    rec: &'a mut Recorder,
    tarn: PathBuf,
}

impl Ctx<'_> {
    fn system(&self) -> &'static str {
        self.args.backend.system()
    }

    fn record(&self, workload: &str, times: &[f64], mut extra: Map<String, Value>) -> Result<()> {
        extra.insert("backend".into(), json!(self.args.backend.system()));
        self.rec.ok(self.system(), workload, times, extra)
    }

    fn creations(
        &self,
        what: &str,
        n: usize,
        tasks: usize,
        s: f64,
        lake_size: usize,
    ) -> Result<()> {
        let mut extra = Map::new();
        extra.insert("datasets".into(), json!(n));
        extra.insert("tasks".into(), json!(tasks));
        extra.insert("per_second".into(), json!(n as f64 / s));
        extra.insert("lake_datasets_before".into(), json!(lake_size));
        self.record(what, &[s / n as f64], extra)
    }

    fn process(&self, lake: &Path, args: &[&str]) -> Result<(f64, String)> {
        let t = Instant::now();
        let out = Command::new(&self.tarn)
            .arg("--lake")
            .arg(lake)
            .args(args)
            .env_remove("TARN_LAKE")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.tarn.display()))?;
        let dt = secs(t);
        if !out.status.success() {
            bail!(
                "`tarn {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((dt, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// `ls` (where a prefix is given), `info` and the week read on each lake, in-process and
    /// as processes. Rounds go over the lakes in turn, so that both see the same machine
    /// (cache, load) and neither gains from being measured first or last.
    async fn measure(&mut self, lakes: &[Subject<'_>]) -> Result<()> {
        let mut times: Vec<Rounds> = lakes.iter().map(|_| Rounds::default()).collect();
        for _ in 0..self.args.repeat.max(1) {
            for (subject, t) in lakes.iter().zip(times.iter_mut()) {
                self.round(subject, t).await?;
            }
        }
        for (subject, t) in lakes.iter().zip(&times) {
            for (metric, times) in t.named() {
                if !times.is_empty() {
                    let name = format!("W8 {metric} ({})", subject.tag);
                    self.record(&name, times, Map::new())?;
                }
            }
        }
        Ok(())
    }

    /// One round of [`Ctx::measure`] on one lake, into `t`.
    async fn round(&self, subject: &Subject<'_>, t: &mut Rounds) -> Result<()> {
        let (dir, lake) = (subject.dir, subject.lake);
        if let Some(prefix) = subject.prefix.as_deref() {
            let time = Instant::now();
            let found = lake.datasets(Some(prefix)).await?;
            t.ls.push(secs(time));
            ensure!(
                found.len() == GROUP,
                "ls {prefix}: {} datasets",
                found.len()
            );
            let (dt, out) = self.process(dir, &["--json", "ls", prefix])?;
            let n = serde_json::from_str::<Value>(&out)?
                .as_array()
                .map_or(0, Vec::len);
            ensure!(n == GROUP, "tarn ls {prefix}: {n} datasets");
            t.tarn_ls.push(dt);
        }
        let time = Instant::now();
        let snap = lake.snapshot(BIG).await?;
        let i = snap.info(lake).await?;
        t.info.push(secs(time));
        ensure!(i.rows == 14 * 1440, "info: {} rows", i.rows);
        let time = Instant::now();
        let snap = lake.snapshot(BIG).await?;
        let req = ReadRequest::parse(&snap, Some(WEEK_START), Some(WEEK_END), None)?;
        let rows: usize = lake
            .read(&snap, &req)
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        t.read.push(secs(time));
        ensure!(rows == 7 * 1440, "week read: {rows} rows");
        t.tarn_info
            .push(self.process(dir, &["--json", "info", BIG])?.0);
        let (dt, out) = self.process(
            dir,
            &[
                "read", BIG, "--start", WEEK_START, "--end", WEEK_END, "--format", "csv",
            ],
        )?;
        ensure!(
            out.lines().count() == 7 * 1440 + 1,
            "tarn read: {} lines",
            out.lines().count()
        );
        t.tarn_read.push(dt);
        Ok(())
    }
}

/// The times of [`Ctx::measure`] on one lake, one list per measurement.
#[derive(Default)]
struct Rounds {
    ls: Vec<f64>,
    tarn_ls: Vec<f64>,
    info: Vec<f64>,
    read: Vec<f64>,
    tarn_info: Vec<f64>,
    tarn_read: Vec<f64>,
}

impl Rounds {
    /// Each measurement with its name in the results.
    fn named(&self) -> [(&'static str, &Vec<f64>); 6] {
        [
            ("ls PREFIX, in-process", &self.ls),
            ("tarn ls PREFIX", &self.tarn_ls),
            ("info, in-process", &self.info),
            ("one-week read, in-process", &self.read),
            ("tarn info", &self.tarn_info),
            ("tarn read one week", &self.tarn_read),
        ]
    }
}

/// A lake [`Ctx::measure`] times: its name in the results, directory and prefix to list.
struct Subject<'a> {
    tag: String,
    dir: &'a Path,
    lake: &'a Lake,
    prefix: Option<String>,
}

pub async fn run(args: &ScaleArgs) -> Result<usize> {
    let tarn = match &args.tarn {
        Some(t) => t.clone(),
        None => crate::default_tarn().context("no tarn binary next to tarn-bench; pass --tarn")?,
    };
    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let mut ctx = Ctx {
        args,
        rec: &mut rec,
        tarn,
    };
    let work = args.work.join(match args.backend {
        BackendArg::Local => "local",
        BackendArg::Remote => "remote",
        BackendArg::Postgres => "postgres",
    });
    std::fs::create_dir_all(&work)?;
    eprintln!(
        "W8 on {} ({}), {} datasets",
        ctx.system(),
        with_rev(String::new()),
        args.datasets
    );

    // The one-dataset lake.
    let one_dir = work.join("one");
    let one = new_lake(&one_dir, args.backend).await?;
    write_big(&one).await?;

    let big_dir = work.join("big");
    let n = args.datasets;
    let sample = args.durable_sample.min(n / 2);
    let half = sample / 2;
    let tasks = args.concurrency.max(1);
    let big = if args.reuse {
        Lake::open_with(&big_dir, Durability::Durable).await?
    } else {
        let lake = new_lake(&big_dir, args.backend).await?;
        write_big(&lake).await?;
        // Durable, on the empty lake: one task, then `tasks` tasks.
        let s = create(&lake, 0..half, 1).await?;
        ctx.creations(
            "W8 create datasets, durable, 1 task (empty lake)",
            half,
            1,
            s,
            0,
        )?;
        let s = create(&lake, half..sample, tasks).await?;
        ctx.creations(
            &format!("W8 create datasets, durable, {tasks} tasks (empty lake)"),
            sample - half,
            tasks,
            s,
            half,
        )?;
        // The fill, relaxed.
        let relaxed = Lake::open_with(&big_dir, Durability::Relaxed).await?;
        let fill_end = n - sample;
        if fill_end > sample {
            let s = create(&relaxed, sample..fill_end, tasks).await?;
            ctx.creations(
                &format!("W8 create datasets, relaxed, {tasks} tasks (fill)"),
                fill_end - sample,
                tasks,
                s,
                sample,
            )?;
        }
        drop(relaxed);
        // Durable again, on the full lake.
        let s = create(&lake, fill_end..fill_end + half, 1).await?;
        ctx.creations(
            "W8 create datasets, durable, 1 task (full lake)",
            half,
            1,
            s,
            fill_end,
        )?;
        let s = create(&lake, fill_end + half..n, tasks).await?;
        ctx.creations(
            &format!("W8 create datasets, durable, {tasks} tasks (full lake)"),
            n - fill_end - half,
            tasks,
            s,
            fill_end + half,
        )?;
        lake
    };
    let total = big.datasets(Some("scale/g0000")).await?.len();
    ensure!(total == GROUP, "scale/g0000 holds {total} datasets");
    let prefix = format!("scale/g{:04}", (n / GROUP) / 2);
    let lakes = [
        Subject {
            tag: "1 dataset".into(),
            dir: &one_dir,
            lake: &one,
            prefix: None,
        },
        Subject {
            tag: format!("{n} datasets"),
            dir: &big_dir,
            lake: &big,
            prefix: Some(prefix.clone()),
        },
    ];
    ctx.measure(&lakes).await?;
    plans(&big_dir, &prefix).await?;
    let errors = ctx.rec.errors;
    Ok(errors)
}

/// Prints the catalog's plan for the prefix listing of `tarn ls`.
async fn plans(dir: &Path, prefix: &str) -> Result<()> {
    let config = LakeConfig::load(dir)?;
    let (exact, lo, hi) = (
        prefix.to_string(),
        format!("{prefix}/"),
        format!("{prefix}0"),
    );
    match config.catalog_location(dir)? {
        tarn_catalog::CatalogLocation::Sqlite(path) => {
            let c = tarn_catalog::SqliteCatalog::open(&path, false)?;
            let plan = c.query_plan(
                tarn_catalog::sqlite::DATASETS_UNDER_PREFIX,
                &[&exact, &lo, &hi],
            )?;
            eprintln!(
                "EXPLAIN QUERY PLAN of the prefix listing (SQLite):\n  {}",
                plan.join("\n  ")
            );
        }
        tarn_catalog::CatalogLocation::Postgres(url) => {
            let c = tarn_catalog::PostgresCatalog::connect(&url, &config.catalog_settings(false))
                .await?;
            let plan = c
                .query_plan(
                    &format!("ANALYZE {}", tarn_catalog::postgres::DATASETS_UNDER_PREFIX),
                    &[&exact, &lo, &hi],
                )
                .await?;
            eprintln!(
                "EXPLAIN ANALYZE of the prefix listing (PostgreSQL):\n  {}",
                plan.join("\n  ")
            );
        }
    }
    Ok(())
}
