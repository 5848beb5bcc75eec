//! W5 "sql" (issue 4): tarn's SQL (DataFusion over snapshots, `tarn_query::QuerySession`)
//! side by side with DuckDB reading the very same Parquet files.
//!
//! The lake is built first (untimed, relaxed durability): `bench/w1` from gen_data.py's
//! `w1.parquet` in one write, as W1 writes it, and `--datasets` datasets
//! `bench/many/sNNN` of `--dataset-rows` minutes each, one write each. The Parquet files
//! DuckDB reads are listed from tarn's snapshots (`Snapshot::row_groups`); after a single
//! write every row group of those files is live, which is checked against the files'
//! footers, so reading the whole files is reading the snapshot.
//!
//! Queries:
//! - (a) the hourly average of one column over the 5-year dataset;
//! - (b) the daily average per dataset over all `bench/many` datasets (tarn: a `UNION ALL`
//!   of the tables with a label column; DuckDB: `read_parquet([...], filename = true)`);
//! - (c) a one-week range (w4.json's) with a daily aggregation, on the 5-year dataset.
//!
//! Each query runs once untimed on every system (the answers are compared: the same groups,
//! the same values within 1e-9, or the benchmark fails), then `--repeat` rounds, each running
//! every query on every system in turn, so that load on the shared machine falls on all of
//! them alike. tarn runs in this process, DuckDB in a Python child (bench/sql_duckdb.py),
//! both with `--threads` threads. tarn is timed twice, with a new `QuerySession` per run
//! either way (the session's tables and catalog lookups are new each time): with a runtime
//! of its own, as `tarn query` does (DataFusion's Parquet metadata cache starts empty), and
//! from one `QueryEngine` for all runs, as a long-lived service does (the cache is shared).
//! DuckDB keeps one connection, with its default caches.

use crate::{INPROC, Recorder, base_extra, median, min_max, read_parquet, secs, with_rev};
use anyhow::{Context, Result, anyhow, bail, ensure};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use tarn::{Durability, Lake, WriteRequest};
use tarn_query::datafusion::common::config::ConfigField;
use tarn_query::datafusion::functions::datetime::date_trunc::DateTruncFunc;
use tarn_query::datafusion::logical_expr::ScalarUDF;
use tarn_query::{QueryEngine, QuerySession};

/// Issue 4: each query at most this many times DuckDB's median on the same files.
const TARGET_RATIO: f64 = 1.25;
const W1_DATASET: &str = "bench/w1";
const MANY_PREFIX: &str = "bench/many/s";
/// 2020-01-01T00:00:00Z, where gen_data.py's series and the generated datasets start.
const T0_NS: i64 = 1_577_836_800 * 1_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;
const ENGINE_SHARED: &str = "tarn (in-process, one engine)";
const DUCKDB: &str = "duckdb";
const PARAMS_FILE: &str = ".w5-params";

#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// Directory written by bench/gen_data.py (its w1.parquet and w4.json are used).
    #[arg(long)]
    data: PathBuf,
    /// Scratch directory (the lake goes to WORK/lake, DuckDB's answers to WORK/answers).
    #[arg(long)]
    work: PathBuf,
    /// jsonl file to append results to.
    #[arg(long)]
    pub(crate) results: PathBuf,
    /// Timed rounds (after one untimed round whose answers are compared).
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    /// Datasets of query (b).
    #[arg(long, default_value_t = 100)]
    datasets: usize,
    /// Rows (minutes) of each dataset of query (b).
    #[arg(long, default_value_t = 100_000)]
    dataset_rows: usize,
    /// Threads of both engines: DataFusion's target_partitions, DuckDB's `threads`.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The Python with duckdb and pyarrow (bench/setup_venv.sh prints it).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// DuckDB's side (default: bench/sql_duckdb.py of the source tree this was built from).
    #[arg(long)]
    duckdb_worker: Option<PathBuf>,
    /// Run tarn only (for profiling); no ratios, no answers compared.
    #[arg(long)]
    no_duckdb: bool,
    /// Only these queries (a, b, c), comma-separated.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// A DataFusion setting for tarn's sessions, e.g. `--set
    /// datafusion.execution.batch_size=32768` (repeatable; `datafusion.execution.parquet.*`
    /// also goes to the session's Parquet table options, which tarn's scan reads).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Comparison: tarn's sessions use DataFusion's own `date_trunc` instead of tarn's,
    /// which truncates UTC and fixed-offset timestamps to hours, days and weeks with
    /// arithmetic (DataFusion 55 converts every value through chrono-tz for "UTC").
    #[arg(long)]
    datafusion_date_trunc: bool,
    /// Do not print EXPLAIN ANALYZE of each query (tarn's and DuckDB's) to stderr.
    #[arg(long)]
    no_explain: bool,
    /// Keep the lake under --work.
    #[arg(long)]
    keep: bool,
    /// Take the lake under --work as it is when an earlier --keep run built it from the same
    /// data with the same --datasets and --dataset-rows.
    #[arg(long)]
    reuse: bool,
}

// ------------------------------------------------------------------------------------------
// the lake

/// One table as both engines see it: tarn's dataset and the files of its snapshot.
pub(crate) struct TableFiles {
    dataset: String,
    pub(crate) rows: u64,
    pub(crate) row_groups: usize,
    pub(crate) files: Vec<PathBuf>,
}

pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `rows` minutes from 2020-01-01 in W1's schema; values are a deterministic function of
/// (`seed`, minute), and `a` has a per-dataset mean so the groups differ.
fn dataset_batch(seed: u64, rows: usize) -> Result<RecordBatch> {
    use arrow::array::{Float64Array, Int64Array, TimestampNanosecondArray};
    let n = rows as u64;
    let uniform = |col: u64, m: u64| {
        let bits = splitmix(m ^ (col << 56) ^ (seed << 40)) >> 11;
        bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let float = |col: u64, mean: f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|m| mean + uniform(col, m)),
        ))
    };
    let ts: ArrayRef = Arc::new(
        TimestampNanosecondArray::from_iter_values((0..n).map(|m| T0_NS + m as i64 * MINUTE_NS))
            .with_timezone("UTC"),
    );
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..n).map(|m| (splitmix(m ^ (seed << 40) ^ (5 << 56)) >> 44) as i64),
    ));
    Ok(RecordBatch::try_from_iter([
        ("ts", ts),
        ("a", float(1, seed as f64)),
        ("b", float(2, 0.0)),
        ("c", float(3, 0.0)),
        ("d", float(4, 0.0)),
        ("n", ints),
    ])?)
}

fn many_dataset(i: usize) -> String {
    format!("{MANY_PREFIX}{i:03}")
}

fn params(args: &SqlArgs, w1_bytes: u64) -> String {
    format!(
        "w1_bytes={w1_bytes} datasets={} dataset_rows={} generator=1",
        args.datasets, args.dataset_rows
    )
}

/// Builds (or with --reuse takes) the lake; returns it and the seconds its setup took.
async fn build(args: &SqlArgs, dir: &Path) -> Result<(Lake, Option<f64>)> {
    let w1_path = args.data.join("w1.parquet");
    let w1_bytes = fs::metadata(&w1_path)
        .with_context(|| format!("{} is not a gen_data.py output", args.data.display()))?
        .len();
    let want = params(args, w1_bytes);
    if args.reuse && fs::read_to_string(dir.join(PARAMS_FILE)).ok().as_deref() == Some(&want) {
        eprintln!("[W5] reusing the lake in {}", dir.display());
        return Ok((Lake::open_with(dir, Durability::Relaxed).await?, None));
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let w1 = read_parquet(&w1_path)?;
    let start = Instant::now();
    drop(Lake::init(dir).await?);
    let lake = Lake::open_with(dir, Durability::Relaxed).await?;
    // As W1 writes it: one write, the default 100,000-row row groups.
    lake.write(
        &format!("tarn://{W1_DATASET}"),
        w1,
        WriteRequest::new().ordered_on("ts"),
    )
    .await?;
    for i in 0..args.datasets {
        let batch = dataset_batch(i as u64, args.dataset_rows)?;
        lake.write(
            &format!("tarn://{}", many_dataset(i)),
            batch,
            WriteRequest::new().ordered_on("ts"),
        )
        .await?;
    }
    let setup_s = secs(start);
    fs::write(dir.join(PARAMS_FILE), want)?;
    eprintln!(
        "[W5] setup: bench/w1 and {} datasets of {} rows in {setup_s:.1} s",
        args.datasets, args.dataset_rows
    );
    Ok((lake, Some(setup_s)))
}

/// The files of `dataset`'s head snapshot, checked to hold exactly its rows: every row group
/// of every file is one of the snapshot's.
pub(crate) async fn table_files(lake: &Lake, data_dir: &Path, dataset: &str) -> Result<TableFiles> {
    let snapshot = lake.snapshot(dataset).await?;
    let row_groups = snapshot.row_groups(lake, None, None).await?;
    let mut per_file: Vec<(String, usize)> = Vec::new();
    for rg in &row_groups {
        match per_file.last_mut() {
            Some((path, n)) if *path == rg.path => *n += 1,
            _ => per_file.push((rg.path.clone(), 1)),
        }
    }
    let mut files = Vec::new();
    let mut file_rows = 0u64;
    for (path, live) in &per_file {
        ensure!(
            !files.contains(&data_dir.join(path)),
            "{dataset}: {path} appears in two runs of row groups; its whole file is not the snapshot"
        );
        let full = data_dir.join(path);
        let file =
            fs::File::open(&full).with_context(|| format!("cannot open {}", full.display()))?;
        let reader = parquet::file::reader::SerializedFileReader::new(file)?;
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        ensure!(
            meta.num_row_groups() == *live,
            "{dataset}: {path} has {} row groups, of which {live} are live in the snapshot; \
             DuckDB would read rows the snapshot does not hold",
            meta.num_row_groups()
        );
        file_rows += meta.file_metadata().num_rows() as u64;
        files.push(full);
    }
    ensure!(
        file_rows == snapshot.rows(),
        "{dataset}: the files hold {file_rows} rows, the snapshot {}",
        snapshot.rows()
    );
    Ok(TableFiles {
        dataset: dataset.to_string(),
        rows: snapshot.rows(),
        row_groups: row_groups.len(),
        files,
    })
}

// ------------------------------------------------------------------------------------------
// the queries

struct Query {
    id: &'static str,
    title: String,
    tarn_sql: String,
    duckdb_sql: String,
    /// Columns that identify a row of the answer; the others are compared as numbers.
    keys: &'static [&'static str],
    expect_rows: usize,
    input_rows: u64,
    files: usize,
    row_groups: usize,
    /// DuckDB's values of a key column that stand for tarn's (file path -> dataset).
    labels: HashMap<String, String>,
}

pub(crate) fn sql_list(files: &[PathBuf]) -> String {
    let quoted: Vec<String> = files
        .iter()
        .map(|f| format!("'{}'", f.display().to_string().replace('\'', "''")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn queries(w1: &TableFiles, many: &[TableFiles], start: &str, end: &str) -> Vec<Query> {
    let hours = (w1.rows as usize).div_ceil(60);
    let a = Query {
        id: "a",
        title: format!("(a) hourly avg(a) over {W1_DATASET}"),
        tarn_sql: format!(
            "SELECT date_trunc('hour', ts) AS hour, avg(a) AS avg_a FROM \"{W1_DATASET}\" GROUP BY 1"
        ),
        // DuckDB 2 has no date_trunc for TIMESTAMPTZ_NS (the files' type): a cast to
        // TIMESTAMPTZ (µs) is needed, which the hour boundaries survive.
        duckdb_sql: format!(
            "SELECT date_trunc('hour', ts::TIMESTAMPTZ) AS hour, avg(a) AS avg_a FROM read_parquet({}) GROUP BY 1",
            sql_list(&w1.files)
        ),
        keys: &["hour"],
        expect_rows: hours,
        input_rows: w1.rows,
        files: w1.files.len(),
        row_groups: w1.row_groups,
        labels: HashMap::new(),
    };
    let union: Vec<String> = many
        .iter()
        .map(|t| format!("SELECT '{0}' AS dataset, ts, a FROM \"{0}\"", t.dataset))
        .collect();
    let all_files: Vec<PathBuf> = many.iter().flat_map(|t| t.files.clone()).collect();
    let labels = many
        .iter()
        .flat_map(|t| {
            t.files
                .iter()
                .map(|f| (f.display().to_string(), t.dataset.clone()))
        })
        .collect();
    let days_per_dataset: usize = many.first().map_or(0, |t| (t.rows as usize).div_ceil(1440));
    let b = Query {
        id: "b",
        title: format!(
            "(b) daily avg(a) per dataset over {} datasets of {} rows",
            many.len(),
            many.first().map_or(0, |t| t.rows)
        ),
        tarn_sql: format!(
            "SELECT dataset, date_trunc('day', ts) AS day, avg(a) AS avg_a FROM ({}) GROUP BY 1, 2",
            union.join(" UNION ALL ")
        ),
        duckdb_sql: format!(
            "SELECT filename AS dataset, date_trunc('day', ts::TIMESTAMPTZ) AS day, avg(a) AS avg_a \
             FROM read_parquet({}, filename = true) GROUP BY 1, 2",
            sql_list(&all_files)
        ),
        keys: &["dataset", "day"],
        expect_rows: many.len() * days_per_dataset,
        input_rows: many.iter().map(|t| t.rows).sum(),
        files: all_files.len(),
        row_groups: many.iter().map(|t| t.row_groups).sum(),
        labels,
    };
    let aggregates = "count(*) AS n, avg(a) AS avg_a, min(b) AS min_b, max(c) AS max_c";
    let c = Query {
        id: "c",
        title: format!("(c) one week [{start}, {end}) of {W1_DATASET}, daily count/avg/min/max"),
        tarn_sql: format!(
            "SELECT date_trunc('day', ts) AS day, {aggregates} FROM \"{W1_DATASET}\" \
             WHERE ts >= '{start}' AND ts < '{end}' GROUP BY 1"
        ),
        duckdb_sql: format!(
            "SELECT date_trunc('day', ts::TIMESTAMPTZ) AS day, {aggregates} FROM read_parquet({}) \
             WHERE ts >= '{start}' AND ts < '{end}' GROUP BY 1",
            sql_list(&w1.files)
        ),
        keys: &["day"],
        expect_rows: 7,
        input_rows: w1.rows,
        files: w1.files.len(),
        row_groups: w1.row_groups,
        labels: HashMap::new(),
    };
    vec![a, b, c]
}

// ------------------------------------------------------------------------------------------
// answers

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Int(i64),
    Float(Option<f64>),
}

impl Cell {
    pub(crate) fn key(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format!("{f:?}"),
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => *f,
            Cell::Text(_) => None,
        }
    }
}

pub(crate) struct Answer {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Cell>>,
}

fn cells_of(column: &ArrayRef) -> Result<Vec<Cell>> {
    use arrow::compute::cast;
    let n = column.len();
    Ok(match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let s = cast(column, &DataType::Utf8)?;
            let s = s.as_string::<i32>();
            (0..n).map(|i| Cell::Text(s.value(i).to_string())).collect()
        }
        DataType::Timestamp(unit, _) => {
            let scale = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let v = cast(column, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            (0..n).map(|i| Cell::Int(v.value(i) * scale)).collect()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let v = cast(column, &DataType::Float64)?;
            let v = v.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| Cell::Float((!v.is_null(i)).then(|| v.value(i))))
                .collect()
        }
        t if t.is_integer() || matches!(t, DataType::Date32) => {
            let v = cast(column, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            (0..n).map(|i| Cell::Int(v.value(i))).collect()
        }
        t => bail!("no comparison for result columns of type {t}"),
    })
}

pub(crate) fn answer_of_batches(batches: &[RecordBatch]) -> Result<Answer> {
    let Some(first) = batches.first() else {
        return Ok(Answer {
            columns: Vec::new(),
            rows: Vec::new(),
        });
    };
    let columns = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for b in batches {
        let cols = b
            .columns()
            .iter()
            .map(cells_of)
            .collect::<Result<Vec<_>>>()?;
        for r in 0..b.num_rows() {
            rows.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(Answer { columns, rows })
}

pub(crate) fn answer_of_json(path: &Path, labels: &HashMap<String, String>) -> Result<Answer> {
    let v: Value = serde_json::from_str(
        &fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    let columns = v["columns"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no columns", path.display()))?
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    let rows = v["rows"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no rows", path.display()))?
        .iter()
        .map(|row| {
            row.as_array()
                .ok_or_else(|| anyhow!("{}: a row is no list", path.display()))?
                .iter()
                .map(|c| {
                    Ok(match c {
                        Value::String(s) => Cell::Text(labels.get(s).unwrap_or(s).clone()),
                        Value::Number(x) if x.is_i64() => Cell::Int(x.as_i64().unwrap_or(0)),
                        Value::Number(x) => Cell::Float(x.as_f64()),
                        Value::Null => Cell::Float(None),
                        other => bail!("unexpected value {other} in {}", path.display()),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Answer { columns, rows })
}

pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The same groups with the same values (numbers within 1e-9, relative).
fn compare(q: &Query, what: &str, got: &Answer, want: &Answer) -> Result<()> {
    ensure!(
        got.columns == want.columns,
        "query {}: {what} has columns {:?}, DuckDB {:?}",
        q.id,
        got.columns,
        want.columns
    );
    ensure!(
        got.rows.len() == q.expect_rows && want.rows.len() == q.expect_rows,
        "query {}: {what} returned {} rows, DuckDB {}, expected {}",
        q.id,
        got.rows.len(),
        want.rows.len(),
        q.expect_rows
    );
    let key_idx: Vec<usize> = q
        .keys
        .iter()
        .map(|k| {
            got.columns
                .iter()
                .position(|c| c == k)
                .ok_or_else(|| anyhow!("query {}: no key column {k}", q.id))
        })
        .collect::<Result<_>>()?;
    let key = |row: &[Cell]| key_idx.iter().map(|&i| row[i].key()).collect::<Vec<_>>();
    let wanted: HashMap<Vec<String>, &Vec<Cell>> = want.rows.iter().map(|r| (key(r), r)).collect();
    ensure!(
        wanted.len() == want.rows.len(),
        "query {}: DuckDB's answer repeats a group",
        q.id
    );
    for row in &got.rows {
        let k = key(row);
        let other = wanted
            .get(&k)
            .ok_or_else(|| anyhow!("query {}: {what} has group {k:?}, DuckDB not", q.id))?;
        for (i, (g, w)) in row.iter().zip(other.iter()).enumerate() {
            if key_idx.contains(&i) {
                continue;
            }
            let same = match (g.number(), w.number()) {
                (Some(a), Some(b)) => close(a, b),
                _ => g == w,
            };
            ensure!(
                same,
                "query {}: group {k:?}, column {}: {what} {g:?}, DuckDB {w:?}",
                q.id,
                got.columns[i]
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// tarn

/// Applies `--threads` and `--set` to a session.
fn configure(session: &QuerySession, threads: usize, settings: &[(String, String)]) -> Result<()> {
    let state = session.context().state_ref();
    let mut state = state.write();
    let options = state.config_mut().options_mut();
    options.execution.target_partitions = threads;
    for (k, v) in settings {
        options
            .set(k, v)
            .with_context(|| format!("DataFusion setting {k}={v}"))?;
    }
    // tarn's scan takes its Parquet options from the session's table options, which were
    // copied from the config when the session was made.
    for (k, v) in settings {
        if let Some(field) = k.strip_prefix("datafusion.execution.parquet.") {
            state
                .table_options_mut()
                .parquet
                .global
                .set(field, v)
                .with_context(|| format!("Parquet table option {field}={v}"))?;
        }
    }
    Ok(())
}

struct TarnRun {
    total_s: f64,
    plan_s: f64,
    batches: Vec<RecordBatch>,
}

async fn new_session(
    lake: &Lake,
    args: &SqlArgs,
    settings: &[(String, String)],
    engine: Option<&QueryEngine>,
) -> Result<QuerySession> {
    let session = match engine {
        Some(engine) => engine.session(None).await?,
        None => QuerySession::new(lake, None).await?,
    };
    configure(&session, args.threads, settings)?;
    if args.datafusion_date_trunc {
        session
            .context()
            .register_udf(ScalarUDF::from(DateTruncFunc::new()));
    }
    Ok(session)
}

/// One run: a new session (of `engine` if given, else with a runtime of its own),
/// planning (catalog lookups included), execution.
async fn run_tarn(
    lake: &Lake,
    args: &SqlArgs,
    settings: &[(String, String)],
    engine: Option<&QueryEngine>,
    sql: &str,
) -> Result<TarnRun> {
    let t = Instant::now();
    let session = new_session(lake, args, settings, engine).await?;
    let df = session.sql(sql, vec![]).await?;
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    let plan_s = secs(t);
    let batches = tarn_query::datafusion::physical_plan::collect(plan, task).await?;
    Ok(TarnRun {
        total_s: secs(t),
        plan_s,
        batches,
    })
}

async fn explain_tarn(session: &QuerySession, q: &Query) -> Result<()> {
    let plan = explain_analyze(session, &q.tarn_sql).await?;
    eprintln!("[W5] tarn EXPLAIN ANALYZE, query {}:", q.id);
    eprintln!("{plan}");
    Ok(())
}

/// `EXPLAIN ANALYZE` of `sql` in `session`: the plan column, as text (a table would pad
/// every line to the longest).
pub(crate) async fn explain_analyze(session: &QuerySession, sql: &str) -> Result<String> {
    let batches = session
        .sql(&format!("EXPLAIN ANALYZE {sql}"), vec![])
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let plan = arrow::compute::cast(b.column(b.num_columns() - 1), &DataType::Utf8)?;
        let plan = plan.as_string::<i32>();
        for i in 0..plan.len() {
            out.push(plan.value(i).to_string());
        }
    }
    Ok(out.join("\n"))
}

// ------------------------------------------------------------------------------------------
// DuckDB

pub(crate) struct DuckWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub(crate) version: String,
    pub(crate) settings: Value,
}

impl DuckWorker {
    pub(crate) fn start(python: &Path, script: &Path, threads: usize) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(script)
            .arg("--threads")
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} {}; pass --python (bench/setup_venv.sh prints it)",
                    python.display(),
                    script.display()
                )
            })?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let mut w = Self {
            child,
            stdin,
            stdout,
            version: String::new(),
            settings: Value::Null,
        };
        let ready = w.read_line().context("DuckDB worker did not start")?;
        w.version = ready["version"].as_str().unwrap_or("?").to_string();
        w.settings = ready["settings"].clone();
        Ok(w)
    }

    fn read_line(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line)?;
        ensure!(n > 0, "the DuckDB worker exited (see its stderr above)");
        Ok(serde_json::from_str(&line)?)
    }

    /// Runs `sql`; returns DuckDB's seconds and row count.
    pub(crate) fn run(
        &mut self,
        sql: &str,
        result: Option<&Path>,
        explain: bool,
    ) -> Result<(f64, usize)> {
        self.request(json!({"sql": sql, "result": result.map(|p| p.display().to_string()), "explain": explain}))
    }

    /// Runs a statement that returns no rows (`CREATE TABLE ...`); returns DuckDB's seconds.
    pub(crate) fn execute(&mut self, sql: &str) -> Result<f64> {
        Ok(self.request(json!({"sql": sql, "execute": true}))?.0)
    }

    fn request(&mut self, req: Value) -> Result<(f64, usize)> {
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        let reply = self.read_line()?;
        if let Some(e) = reply.get("error") {
            bail!("DuckDB: {}", e.as_str().unwrap_or_default());
        }
        let s = reply["seconds"]
            .as_f64()
            .ok_or_else(|| anyhow!("DuckDB worker: bad reply {reply}"))?;
        Ok((s, reply["rows"].as_u64().unwrap_or(0) as usize))
    }
}

impl Drop for DuckWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// the run

#[derive(Default)]
struct Times {
    total: Vec<f64>,
    plan: Vec<f64>,
}

pub async fn run(args: &SqlArgs) -> Result<usize> {
    ensure!(args.repeat >= 1, "--repeat must be at least 1");
    ensure!(args.threads >= 1, "--threads must be at least 1");
    ensure!(args.datasets >= 1, "--datasets must be at least 1");
    let settings: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("--set {s}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    let w4: Value = serde_json::from_str(
        &fs::read_to_string(args.data.join("w4.json"))
            .with_context(|| format!("{} is not a gen_data.py output", args.data.display()))?,
    )?;
    let (start, end) = match (w4["start"].as_str(), w4["end"].as_str()) {
        (Some(s), Some(e)) => (s.to_string(), e.to_string()),
        _ => bail!("w4.json has no start and end"),
    };

    fs::create_dir_all(&args.work)?;
    let lake_dir = args.work.join("lake");
    let (lake, setup_s) = build(args, &lake_dir).await?;
    let data_dir = crate::local_data_dir(&lake_dir)?;
    let w1 = table_files(&lake, &data_dir, W1_DATASET).await?;
    let mut many = Vec::new();
    for i in 0..args.datasets {
        many.push(table_files(&lake, &data_dir, &many_dataset(i)).await?);
    }
    let mut all = queries(&w1, &many, &start, &end);
    if !args.queries.is_empty() {
        all.retain(|q| args.queries.iter().any(|x| x == q.id));
        ensure!(
            !all.is_empty(),
            "--queries {:?}: none of a, b, c",
            args.queries
        );
    }

    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let version = with_rev(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    if workers != args.threads {
        eprintln!(
            "[W5] note: {workers} tokio workers run DataFusion (one per core), {} partitions",
            args.threads
        );
    }

    let mut duck = if args.no_duckdb {
        None
    } else {
        let script = args
            .duckdb_worker
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql_duckdb.py"));
        match DuckWorker::start(&args.python, &script, args.threads) {
            Ok(w) => Some(w),
            Err(e) => {
                for q in &all {
                    rec.error(DUCKDB, &workload(q), &format!("{e:#}"));
                }
                None
            }
        }
    };

    // Untimed round: every system once, answers compared.
    let answers = args.work.join("answers");
    fs::create_dir_all(&answers)?;
    let engine = QueryEngine::new(&lake)?;
    let mut failed: Vec<bool> = vec![false; all.len()];
    // Queries DuckDB failed (an error is recorded, no time).
    let mut duck_failed: Vec<bool> = vec![duck.is_none(); all.len()];
    for (qi, q) in all.iter().enumerate() {
        let check = async {
            let fresh = run_tarn(&lake, args, &settings, None, &q.tarn_sql).await?;
            let one = run_tarn(&lake, args, &settings, Some(&engine), &q.tarn_sql).await?;
            let got = answer_of_batches(&fresh.batches)?;
            let again = answer_of_batches(&one.batches)?;
            if let Some(d) = duck.as_mut() {
                let path = answers.join(format!("duckdb-{}.json", q.id));
                d.run(&q.duckdb_sql, Some(&path), false)?;
                let want = answer_of_json(&path, &q.labels)?;
                compare(q, "tarn", &got, &want)?;
                compare(q, "tarn (one engine)", &again, &want)?;
                eprintln!(
                    "[W5] query {}: tarn and DuckDB agree ({} groups)",
                    q.id,
                    got.rows.len()
                );
            } else {
                ensure!(
                    got.rows.len() == q.expect_rows,
                    "query {}: tarn returned {} rows, expected {}",
                    q.id,
                    got.rows.len(),
                    q.expect_rows
                );
            }
            Ok::<_, anyhow::Error>(())
        };
        if let Err(e) = check.await {
            let msg = format!("{e:#}");
            for system in [INPROC, ENGINE_SHARED, DUCKDB] {
                rec.error(system, &workload(q), &msg);
            }
            failed[qi] = true;
            duck_failed[qi] = true;
        }
    }

    // Timed rounds.
    let mut tarn_fresh: Vec<Times> = all.iter().map(|_| Times::default()).collect();
    let mut tarn_one: Vec<Times> = all.iter().map(|_| Times::default()).collect();
    let mut duck_times: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    let mut tarn_rows = vec![0usize; all.len()];
    for round in 0..args.repeat {
        for (qi, q) in all.iter().enumerate() {
            if failed[qi] {
                continue;
            }
            let step = async {
                let fresh = run_tarn(&lake, args, &settings, None, &q.tarn_sql).await?;
                let one = run_tarn(&lake, args, &settings, Some(&engine), &q.tarn_sql).await?;
                for (what, r) in [("tarn", &fresh), ("tarn (one engine)", &one)] {
                    let n: usize = r.batches.iter().map(|b| b.num_rows()).sum();
                    ensure!(
                        n == q.expect_rows,
                        "query {}: {what} returned {n} rows, expected {}",
                        q.id,
                        q.expect_rows
                    );
                }
                tarn_rows[qi] = q.expect_rows;
                tarn_fresh[qi].total.push(fresh.total_s);
                tarn_fresh[qi].plan.push(fresh.plan_s);
                tarn_one[qi].total.push(one.total_s);
                tarn_one[qi].plan.push(one.plan_s);
                Ok::<_, anyhow::Error>(())
            };
            if let Err(e) = step.await {
                let msg = format!("round {round}: {e:#}");
                rec.error(INPROC, &workload(q), &msg);
                rec.error(ENGINE_SHARED, &workload(q), &msg);
                failed[qi] = true;
                continue;
            }
            if let (Some(d), false) = (duck.as_mut(), duck_failed[qi]) {
                let outcome = match d.run(&q.duckdb_sql, None, false) {
                    Ok((s, n)) if n == q.expect_rows => Ok(s),
                    Ok((_, n)) => Err(anyhow!("{n} rows, expected {}", q.expect_rows)),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(s) => duck_times[qi].push(s),
                    Err(e) => {
                        rec.error(DUCKDB, &workload(q), &format!("round {round}: {e:#}"));
                        duck_failed[qi] = true;
                    }
                }
            }
        }
        eprintln!("[W5] round {} of {} done", round + 1, args.repeat);
    }

    // Results.
    for (qi, q) in all.iter().enumerate() {
        if failed[qi] {
            continue;
        }
        let duck_median =
            (!duck_failed[qi] && !duck_times[qi].is_empty()).then(|| median(&duck_times[qi]));
        let mut common = Map::new();
        common.insert("query".into(), json!(q.title));
        common.insert("result_rows".into(), json!(q.expect_rows));
        common.insert("input_rows".into(), json!(q.input_rows));
        common.insert("files".into(), json!(q.files));
        common.insert("row_groups".into(), json!(q.row_groups));
        common.insert("threads".into(), json!(args.threads));
        for (system, times, session) in [
            (INPROC, &tarn_fresh[qi], "a new QuerySession per run"),
            (
                ENGINE_SHARED,
                &tarn_one[qi],
                "one QuerySession for all runs",
            ),
        ] {
            let m = median(&times.total);
            let (min, max) = min_max(&times.total);
            let mut extra = base_extra(&version, q.input_rows as usize);
            extra.extend(common.clone());
            extra.insert("session".into(), json!(session));
            extra.insert("plan_median_s".into(), json!(median(&times.plan)));
            extra.insert("target".into(), json!(format!("≤ {TARGET_RATIO}× DuckDB")));
            if let Some(d) = duck_median {
                extra.insert("duckdb_median_s".into(), json!(d));
                extra.insert("ratio".into(), json!(m / d));
                extra.insert("met".into(), json!(m <= TARGET_RATIO * d));
            }
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            extra.insert("target_partitions".into(), json!(args.threads));
            extra.insert("tokio_workers".into(), json!(workers));
            let mut variant: Vec<String> =
                args.settings.iter().map(|s| format!("--set {s}")).collect();
            if args.datafusion_date_trunc {
                variant.push("--datafusion-date-trunc".into());
            }
            if !variant.is_empty() {
                extra.insert("settings".into(), json!(variant.join(" ")));
            }
            if let Some(s) = setup_s {
                extra.insert("setup_s".into(), json!(s));
            }
            extra.insert(
                "sql".into(),
                json!(q.tarn_sql.chars().take(300).collect::<String>()),
            );
            rec.ok(system, &workload(q), &times.total, extra)?;
        }
        if let (Some(d), Some(_)) = (duck.as_ref(), duck_median) {
            let (min, max) = min_max(&duck_times[qi]);
            let mut extra = Map::new();
            extra.insert("version".into(), json!(d.version));
            extra.insert("rows".into(), json!(q.input_rows));
            extra.extend(common.clone());
            extra.insert("settings".into(), d.settings.clone());
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            extra.insert(
                "sql".into(),
                json!(q.duckdb_sql.chars().take(300).collect::<String>()),
            );
            rec.ok(DUCKDB, &workload(q), &duck_times[qi], extra)?;
        }
    }

    if !args.no_explain {
        for (qi, q) in all.iter().enumerate() {
            if failed[qi] {
                continue;
            }
            let session = new_session(&lake, args, &settings, None).await?;
            if let Err(e) = explain_tarn(&session, q).await {
                eprintln!("[W5] tarn EXPLAIN ANALYZE of query {} failed: {e:#}", q.id);
            }
            if let Some(d) = duck.as_mut() {
                eprintln!("[W5] DuckDB EXPLAIN ANALYZE, query {}:", q.id);
                if let Err(e) = d.run(&q.duckdb_sql, None, true) {
                    eprintln!(
                        "[W5] DuckDB EXPLAIN ANALYZE of query {} failed: {e:#}",
                        q.id
                    );
                }
            }
        }
    }
    drop(duck);
    drop(engine);
    drop(lake);
    let _ = fs::remove_dir_all(&answers);
    if !args.keep {
        let _ = fs::remove_dir_all(&lake_dir);
    }
    Ok(rec.errors)
}

fn workload(q: &Query) -> String {
    format!("W5 {}", q.id)
}
