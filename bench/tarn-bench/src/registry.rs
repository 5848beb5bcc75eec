//! W7 "registry" (issue 5): validating a large dataset against a real dimension, and a
//! query through a mapping, side by side with a plain scan and with DuckDB.
//!
//! The lake is built first (untimed, relaxed durability): the Census 2020 counties (3,236
//! ids = state FIPS + county FIPS, the first name kept where an id repeats), the states
//! (deduplicated by FIPS, plus 74 "U.S. Minor Outlying Islands"), three sectors, the
//! `county_to_state` mapping and a project, as `tarn demo` builds them (the same files,
//! compiled in), and one dataset of `--rows` rows written in one write as W1 writes (the
//! default 100,000-row row groups): `ts` timestamp[ns, UTC], `county` Utf8, `sector` Utf8,
//! `value` f64. Every hour holds one row per county and sector (9,708 rows), counties
//! cycling fastest, so 10 M rows are 1,031 hours. (One row per hour is impossible: 10 M
//! hours from 2020 are past the end of timestamp[ns] in 2262.) The dataset is registered to
//! the project (untimed; that validates it once).
//!
//! Measured, `--repeat` rounds after one untimed round, each round running every part in
//! turn so that load on the shared machine falls on all alike; medians:
//! - `read`: `Lake::snapshot` + `Lake::read` of the whole snapshot, all columns (what
//!   `tarn read` does): the full scan the validation target is measured against;
//! - `scan`: a new `QuerySession`, `SELECT count(*), sum(value), count(county),
//!   count(sector), min(ts)`: DataFusion decoding every column;
//! - `county`: a new `QuerySession`, `SELECT count(county)`: DataFusion decoding only the
//!   column the validation decodes;
//! - `validate`: `Registry::missing_values` of `county` against the county dimension;
//! - `query`: `Registry::prepare_query` (`--group-by county=state,sector --agg
//!   'sum(value)'`) and collecting it, against DuckDB running the same join over the same
//!   Parquet files (`read_parquet([...])`) with the mapping rows in a DuckDB table.
//!
//! Checked in the untimed round (a failure fails the benchmark): the scans' counts and sum,
//! an empty validation, and the query's groups and sums from tarn, from DuckDB and from a
//! reference computed here while generating the rows, all within 1e-9 relative. The
//! executed plan of every SQL part must show its scan producing every row (nothing answered
//! from statistics); `EXPLAIN ANALYZE` of each goes to stderr.

use crate::sql::{
    Answer, DuckWorker, answer_of_batches, answer_of_json, close, explain_analyze, splitmix,
    sql_list, table_files,
};
use crate::{INPROC, Recorder, base_extra, median, min_max, secs, with_rev};
use anyhow::{Context, Result, anyhow, ensure};
use arrow::array::{
    ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tarn::{Durability, Lake, ReadRequest, WriteRequest};
use tarn_query::QuerySession;
use tarn_registry::{
    Aggregation, DimensionInput, GroupBy, MappingInput, Pinned, ProjectDefinition, ProjectQuery,
    Registry,
};

const COUNTIES: &str = include_str!("../../../crates/tarn-cli/data/us_counties_2020.csv");
const STATES: &str = include_str!("../../../crates/tarn-cli/data/us_states.csv");
/// Issue 5: validation at most this many times a plain full scan (`Lake::read`).
const VALIDATE_TARGET: f64 = 2.0;
/// Issue 5: the county -> state aggregation at most this many times DuckDB's join.
const QUERY_TARGET: f64 = 1.5;
const DATASET: &str = "bench/registry";
const PROJECT: &str = "bench_us";
const MAPPING: &str = "county_to_state";
const SECTORS: [&str; 3] = ["res", "com", "ind"];
/// 2020-01-01T00:00:00Z.
const T0_NS: i64 = 1_577_836_800 * 1_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
const DUCKDB: &str = "duckdb";
const PARAMS_FILE: &str = ".w7-params";
const PARTS: [&str; 5] = ["read", "scan", "county", "validate", "query"];

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Scratch directory (the lake goes to WORK/lake, the inputs to WORK/inputs).
    #[arg(long)]
    work: PathBuf,
    /// jsonl file to append results to.
    #[arg(long)]
    pub(crate) results: PathBuf,
    /// Rows of the dataset.
    #[arg(long, default_value_t = 10_000_000)]
    rows: usize,
    /// Timed rounds (after one untimed round whose answers are checked).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// DuckDB's `threads`. tarn's sessions keep DataFusion's default, one partition per
    /// core (the registry makes its own sessions).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The Python with duckdb and pyarrow (bench/setup_venv.sh prints it).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// DuckDB's side (default: bench/sql_duckdb.py of the source tree this was built from).
    #[arg(long)]
    duckdb_worker: Option<PathBuf>,
    /// Run tarn only (for profiling); the query has no ratio.
    #[arg(long)]
    no_duckdb: bool,
    /// Only these parts (read, scan, county, validate, query), comma-separated.
    #[arg(long, value_delimiter = ',')]
    parts: Vec<String>,
    /// A DataFusion setting for the query's session (the one `prepare_query` returns), e.g.
    /// `--set datafusion.optimizer.enable_join_dynamic_filter_pushdown=false` (repeatable;
    /// for experiments: the registry's own settings are what is measured without it).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Experiment: run this SQL (read from the file) instead of the one `prepare_query`
    /// builds, in the session it returns (with its mapping tables). The answer is still
    /// checked.
    #[arg(long, value_name = "FILE")]
    query_sql: Option<PathBuf>,
    /// Do not print EXPLAIN ANALYZE of each SQL part (tarn's and DuckDB's) to stderr. The
    /// plans are still checked.
    #[arg(long)]
    no_explain: bool,
    /// Keep the lake under --work.
    #[arg(long)]
    keep: bool,
    /// Take the lake under --work as it is when an earlier --keep run built it with the
    /// same --rows.
    #[arg(long)]
    reuse: bool,
}

// ------------------------------------------------------------------------------------------
// the data

/// First name per id, in file order; the later names of an id are dropped (the demo keeps
/// them as an `alias` column, which validation does not look at).
fn dedupe(rows: impl Iterator<Item = (String, String, String)>) -> Vec<(String, String, String)> {
    let mut seen = std::collections::HashSet::new();
    rows.filter(|(id, _, _)| seen.insert(id.clone())).collect()
}

/// (county id, name, state FIPS), as `tarn demo` registers them.
fn counties() -> Vec<(String, String, String)> {
    dedupe(COUNTIES.lines().skip(1).filter_map(|l| {
        let mut f = l.splitn(3, ',');
        let (s, c, n) = (f.next()?, f.next()?, f.next()?);
        Some((format!("{s}{c}"), n.to_string(), s.to_string()))
    }))
}

/// (FIPS, name, postal), plus 74, as `tarn demo` registers them.
fn states() -> Vec<(String, String, String)> {
    let mut out = dedupe(STATES.lines().skip(1).filter_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        let [name, postal, fips] = f.as_slice() else {
            return None;
        };
        Some((fips.to_string(), name.to_string(), postal.to_string()))
    }));
    out.push((
        "74".into(),
        "U.S. Minor Outlying Islands".into(),
        "UM".into(),
    ));
    out
}

/// The rows' shape: row `i` is hour `i / (3 n)`, county `i mod n`, sector `(i / n) mod 3`.
struct Shape {
    counties: usize,
}

impl Shape {
    fn county(&self, i: usize) -> usize {
        i % self.counties
    }
    fn sector(&self, i: usize) -> usize {
        (i / self.counties) % SECTORS.len()
    }
    fn ts(&self, i: usize) -> i64 {
        T0_NS + (i / (self.counties * SECTORS.len())) as i64 * HOUR_NS
    }
    fn value(i: usize) -> f64 {
        (splitmix(i as u64 ^ (7 << 56)) >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
}

fn dataset_batch(ids: &[String], rows: usize) -> Result<RecordBatch> {
    let shape = Shape {
        counties: ids.len(),
    };
    let ts: ArrayRef = Arc::new(
        TimestampNanosecondArray::from_iter_values((0..rows).map(|i| shape.ts(i)))
            .with_timezone("UTC"),
    );
    let county: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| ids[shape.county(i)].as_str()),
    ));
    let sector: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| SECTORS[shape.sector(i)]),
    ));
    let value: ArrayRef = Arc::new(Float64Array::from_iter_values((0..rows).map(Shape::value)));
    Ok(RecordBatch::try_from_iter([
        ("ts", ts),
        ("county", county),
        ("sector", sector),
        ("value", value),
    ])?)
}

/// What every answer is checked against, computed from the generator.
struct Reference {
    rows: usize,
    sum: f64,
    /// (state, sector) -> sum(value).
    groups: BTreeMap<(String, String), f64>,
}

fn reference(counties: &[(String, String, String)], rows: usize) -> Reference {
    let shape = Shape {
        counties: counties.len(),
    };
    let mut sums = vec![[0.0f64; 3]; counties.len()];
    let mut seen = vec![[false; 3]; counties.len()];
    let mut sum = 0.0;
    for i in 0..rows {
        let v = Shape::value(i);
        let (c, s) = (shape.county(i), shape.sector(i));
        sums[c][s] += v;
        seen[c][s] = true;
        sum += v;
    }
    let mut groups = BTreeMap::new();
    for (c, (_, _, state)) in counties.iter().enumerate() {
        for (s, sector) in SECTORS.iter().enumerate() {
            if seen[c][s] {
                *groups
                    .entry((state.clone(), sector.to_string()))
                    .or_insert(0.0) += sums[c][s];
            }
        }
    }
    Reference { rows, sum, groups }
}

// ------------------------------------------------------------------------------------------
// the lake

fn write_inputs(dir: &Path, counties: &[(String, String, String)]) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut csv = String::from("id,name,state\n");
    let mut c2s = String::from("from_id,to_id\n");
    for (id, name, state) in counties {
        csv.push_str(&format!("{id},{name},{state}\n"));
        c2s.push_str(&format!("{id},{state}\n"));
    }
    fs::write(dir.join("counties.csv"), csv)?;
    fs::write(dir.join("county_to_state.csv"), c2s)?;
    let mut csv = String::from("id,name,postal\n");
    for (id, name, postal) in states() {
        csv.push_str(&format!("{id},{name},{postal}\n"));
    }
    fs::write(dir.join("states.csv"), csv)?;
    fs::write(
        dir.join("sectors.csv"),
        "id,name\nres,Residential\ncom,Commercial\nind,Industrial\n",
    )?;
    Ok(())
}

struct Built {
    lake: Lake,
    /// The registered snapshot's URI (names exactly its version).
    uri: String,
    facts: Map<String, Value>,
}

fn params(args: &RegistryArgs) -> String {
    format!("rows={} generator=1", args.rows)
}

/// Builds (or with --reuse takes) the lake with the registry and the registered dataset.
async fn build(
    args: &RegistryArgs,
    dir: &Path,
    counties: &[(String, String, String)],
) -> Result<Built> {
    let want = params(args);
    if args.reuse && fs::read_to_string(dir.join(PARAMS_FILE)).ok().as_deref() == Some(&want) {
        eprintln!("[W7] reusing the lake in {}", dir.display());
        let lake = Lake::open_with(dir, Durability::Relaxed).await?;
        let reg = Registry::new(&lake)
            .registration(PROJECT, DATASET, None)
            .await?;
        return Ok(Built {
            lake,
            uri: reg.body.uri,
            facts: Map::new(),
        });
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let inputs = args.work.join("inputs");
    write_inputs(&inputs, counties)?;
    drop(Lake::init(dir).await?);
    let lake = Lake::open_with(dir, Durability::Relaxed).await?;
    let registry = Registry::new(&lake);
    for (name, t, file) in [
        ("county", "geography", "counties.csv"),
        ("state", "geography", "states.csv"),
        ("sector", "sector", "sectors.csv"),
    ] {
        registry
            .create_dimension(&DimensionInput {
                name,
                dimension_type: Some(t),
                records: &inputs.join(file),
                id_column: "id",
                name_column: "name",
                message: Some("W7"),
            })
            .await
            .with_context(|| format!("dimension {name}"))?;
    }
    registry
        .create_mapping(&MappingInput {
            name: MAPPING,
            from: Some("county"),
            to: Some("state"),
            records: &inputs.join("county_to_state.csv"),
            from_column: "from_id",
            to_column: "to_id",
            fraction_column: "fraction",
            disaggregation: false,
            message: Some("W7"),
        })
        .await
        .context("mapping county_to_state")?;
    registry
        .create_project(
            &ProjectDefinition {
                name: PROJECT.into(),
                description: "W7".into(),
                dimensions: vec!["county".into(), "state".into(), "sector".into()],
                mappings: vec![MAPPING.into()],
            },
            Some("W7"),
        )
        .await?;
    let ids: Vec<String> = counties.iter().map(|c| c.0.clone()).collect();
    let t = Instant::now();
    let batch = dataset_batch(&ids, args.rows)?;
    let generate_s = secs(t);
    let t = Instant::now();
    // As W1 writes it: one write, the default 100,000-row row groups.
    lake.write(
        &format!("tarn://{DATASET}"),
        batch,
        WriteRequest::new().ordered_on("ts"),
    )
    .await?;
    let write_s = secs(t);
    let t = Instant::now();
    let outcome = registry
        .register_dataset(
            PROJECT,
            &format!("tarn://{DATASET}"),
            &[
                ("county".into(), "county".into()),
                ("sector".into(), "sector".into()),
            ],
            Some("W7"),
        )
        .await?;
    let register_s = secs(t);
    fs::write(dir.join(PARAMS_FILE), want)?;
    eprintln!(
        "[W7] setup: {} rows generated in {generate_s:.1} s, written in {write_s:.1} s, \
         registered (county and sector validated) in {register_s:.2} s",
        args.rows
    );
    let mut facts = Map::new();
    facts.insert("setup_write_s".into(), json!(write_s));
    facts.insert(
        "setup_register_dataset_s".into(),
        json!(register_s), // two columns validated
    );
    Ok(Built {
        lake,
        uri: outcome.registration.body.uri,
        facts,
    })
}

/// The mapping rows, as stored in the catalog, as a Parquet file for DuckDB.
async fn mapping_file(lake: &Lake, path: &Path) -> Result<usize> {
    let mapping = Registry::new(lake).mapping(MAPPING, None).await?;
    let batch = mapping.rows_batch()?;
    let mut w =
        parquet::arrow::ArrowWriter::try_new(fs::File::create(path)?, batch.schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(mapping.rows.len())
}

// ------------------------------------------------------------------------------------------
// the parts

struct Sqls {
    scan: String,
    county: String,
    /// What `missing_values` runs (copied from crates/tarn-registry/src/registration.rs,
    /// for EXPLAIN ANALYZE only; keep it in step).
    validate: String,
    duckdb: String,
}

fn sqls(uri: &str, files: &[PathBuf]) -> Sqls {
    let t = format!("tarn('{}')", uri.replace('\'', "''"));
    Sqls {
        scan: format!(
            "SELECT count(*) AS n, sum(value) AS s, count(county) AS n_county, \
             count(sector) AS n_sector, min(ts) AS t0 FROM {t}"
        ),
        county: format!("SELECT count(county) AS n FROM {t}"),
        validate: format!(
            "SELECT CAST(\"county\" AS VARCHAR) AS v, count(*) AS n FROM {t} GROUP BY \"county\""
        ),
        duckdb: format!(
            "SELECT m.to_id AS state, d.sector AS sector, sum(d.value * m.fraction) AS sum_value \
             FROM read_parquet({}) AS d JOIN {MAPPING} AS m ON d.county = m.from_id \
             GROUP BY m.to_id, d.sector ORDER BY state, sector",
            sql_list(files)
        ),
    }
}

fn project_query() -> Result<ProjectQuery> {
    Ok(ProjectQuery {
        project: PROJECT.into(),
        datasets: vec![DATASET.into()],
        group_by: GroupBy::parse_list("county=state,sector")?,
        aggregations: vec![Aggregation::parse("sum(value)")?],
        filter: None,
        time_resample: None,
    })
}

fn first_i64(batches: &[RecordBatch], column: &str) -> Result<i64> {
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| anyhow!("empty result"))?;
    let c = b
        .column_by_name(column)
        .ok_or_else(|| anyhow!("no column {column}"))?;
    let c = arrow::compute::cast(c, &DataType::Int64)?;
    Ok(c.as_primitive::<Int64Type>().value(0))
}

/// The full scan through the library: snapshot + read of every column.
async fn part_read(lake: &Lake, uri: &str, want: &Reference) -> Result<f64> {
    let t = Instant::now();
    let snapshot = lake.snapshot(uri).await?;
    let batches = lake
        .read(
            &snapshot,
            &ReadRequest {
                start: None,
                end: None,
                columns: None,
            },
        )
        .await?;
    let dt = secs(t);
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    ensure!(
        n == want.rows,
        "read returned {n} rows, expected {}",
        want.rows
    );
    ensure!(
        batches.first().map(|b| b.num_columns()) == Some(4),
        "read returned the wrong columns"
    );
    Ok(dt)
}

/// A new session, the SQL, collected.
async fn run_sql(lake: &Lake, sql: &str) -> Result<(f64, Vec<RecordBatch>)> {
    let t = Instant::now();
    let session = QuerySession::new(lake, None).await?;
    let batches = session.sql(sql, vec![]).await?.collect().await?;
    Ok((secs(t), batches))
}

async fn part_scan(lake: &Lake, sql: &str, want: &Reference) -> Result<f64> {
    let (dt, batches) = run_sql(lake, sql).await?;
    for c in ["n", "n_county", "n_sector"] {
        let n = first_i64(&batches, c)?;
        ensure!(
            n as usize == want.rows,
            "scan: {c} = {n}, expected {}",
            want.rows
        );
    }
    let s = batches[0]
        .column_by_name("s")
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| anyhow!("scan: no sum"))?
        .value(0);
    ensure!(
        close(s, want.sum),
        "scan: sum(value) = {s}, expected {}",
        want.sum
    );
    Ok(dt)
}

async fn part_county(lake: &Lake, sql: &str, want: &Reference) -> Result<f64> {
    let (dt, batches) = run_sql(lake, sql).await?;
    let n = first_i64(&batches, "n")?;
    ensure!(
        n as usize == want.rows,
        "county scan: {n} rows, expected {}",
        want.rows
    );
    Ok(dt)
}

async fn part_validate(lake: &Lake, uri: &str, columns: &BTreeMap<String, Pinned>) -> Result<f64> {
    let t = Instant::now();
    let missing = Registry::new(lake).missing_values(uri, columns).await?;
    let dt = secs(t);
    ensure!(
        missing.is_empty(),
        "validation found values that are no county: {missing:?}"
    );
    Ok(dt)
}

struct QueryRun {
    total_s: f64,
    prepare_s: f64,
    batches: Vec<RecordBatch>,
    sql: String,
}

/// `prepare_query` with `--set` applied to its session.
async fn prepare(
    lake: &Lake,
    q: &ProjectQuery,
    settings: &[(String, String)],
    replace: Option<&str>,
) -> Result<tarn_registry::PreparedQuery> {
    let mut prepared = Registry::new(lake).prepare_query(q).await?;
    if let Some(sql) = replace {
        prepared.sql = sql.to_string();
    }
    if !settings.is_empty() {
        let state = prepared.session.context().state_ref();
        let mut state = state.write();
        for (k, v) in settings {
            state
                .config_mut()
                .options_mut()
                .set(k, v)
                .with_context(|| format!("DataFusion setting {k}={v}"))?;
        }
    }
    Ok(prepared)
}

async fn part_query(
    lake: &Lake,
    q: &ProjectQuery,
    settings: &[(String, String)],
    replace: Option<&str>,
) -> Result<QueryRun> {
    let t = Instant::now();
    let prepared = prepare(lake, q, settings, replace).await?;
    let prepare_s = secs(t);
    let batches = prepared.dataframe().await?.collect().await?;
    Ok(QueryRun {
        total_s: secs(t),
        prepare_s,
        batches,
        sql: prepared.sql.clone(),
    })
}

/// The query's answer against the reference: the same groups, sums within 1e-9.
fn check_answer(what: &str, got: &Answer, want: &Reference) -> Result<()> {
    ensure!(
        got.columns == ["state", "sector", "sum_value"],
        "{what}: columns {:?}, expected state, sector, sum_value",
        got.columns
    );
    ensure!(
        got.rows.len() == want.groups.len(),
        "{what}: {} groups, expected {}",
        got.rows.len(),
        want.groups.len()
    );
    for row in &got.rows {
        let key = (row[0].key(), row[1].key());
        let expected = want
            .groups
            .get(&key)
            .ok_or_else(|| anyhow!("{what}: unexpected group {key:?}"))?;
        let value = row[2]
            .number()
            .ok_or_else(|| anyhow!("{what}: group {key:?} has no sum"))?;
        ensure!(
            close(value, *expected),
            "{what}: group {key:?}: sum {value}, expected {expected}"
        );
    }
    Ok(())
}

/// Runs `sql` in `session` and returns the rows its scans (`DataSourceExec`) produced,
/// from the executed plan's metrics: fewer than the dataset's rows means part of the answer
/// came from statistics.
async fn scanned_rows(session: &QuerySession, sql: &str) -> Result<usize> {
    use tarn_query::datafusion::physical_plan::{ExecutionPlan, collect};
    fn walk(plan: &Arc<dyn ExecutionPlan>, total: &mut usize) {
        if plan.name() == "DataSourceExec" {
            *total += plan
                .metrics()
                .and_then(|m| m.output_rows())
                .unwrap_or_default();
        }
        for child in plan.children() {
            walk(child, total);
        }
    }
    let df = session.sql(sql, vec![]).await?;
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    collect(plan.clone(), task).await?;
    let mut total = 0;
    walk(&plan, &mut total);
    Ok(total)
}

// ------------------------------------------------------------------------------------------
// the run

pub async fn run(args: &RegistryArgs) -> Result<usize> {
    ensure!(args.repeat >= 1, "--repeat must be at least 1");
    ensure!(args.rows >= 1, "--rows must be at least 1");
    for p in &args.parts {
        ensure!(
            PARTS.contains(&p.as_str()),
            "--parts {p:?}: not one of {}",
            PARTS.join(", ")
        );
    }
    let on = |p: &str| args.parts.is_empty() || args.parts.iter().any(|x| x == p);
    let settings: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("--set {s}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    let replace = match &args.query_sql {
        Some(p) => {
            Some(fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
        }
        None => None,
    };
    let replace = replace.as_deref();
    fs::create_dir_all(&args.work)?;
    let counties = counties();
    ensure!(
        counties.len() == 3236,
        "the county file gives {} ids, expected 3,236",
        counties.len()
    );
    let lake_dir = args.work.join("lake");
    let built = build(args, &lake_dir, &counties).await?;
    let (lake, uri) = (&built.lake, built.uri.as_str());
    let t = Instant::now();
    let want = reference(&counties, args.rows);
    eprintln!(
        "[W7] {uri}: {} rows; reference answer ({} groups) in {:.1} s",
        want.rows,
        want.groups.len(),
        secs(t)
    );
    let data_dir = crate::local_data_dir(&lake_dir)?;
    let files = table_files(lake, &data_dir, DATASET).await?;
    let sql = sqls(uri, &files.files);
    let q = project_query()?;
    let registration = Registry::new(lake)
        .registration(PROJECT, DATASET, None)
        .await?;
    let columns: BTreeMap<String, Pinned> = registration
        .body
        .columns
        .iter()
        .filter(|(c, _)| *c == "county")
        .map(|(c, p)| (c.clone(), p.clone()))
        .collect();
    ensure!(columns.len() == 1, "the registration has no county column");

    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let version = with_rev(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores != args.threads {
        eprintln!(
            "[W7] note: tarn's sessions use {cores} partitions (one per core), DuckDB {} threads",
            args.threads
        );
    }

    let mut duck = None;
    if on("query") && !args.no_duckdb {
        let script = args
            .duckdb_worker
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql_duckdb.py"));
        let started = async {
            let path = args.work.join("county_to_state.parquet");
            let n = mapping_file(lake, &path).await?;
            let mut d = DuckWorker::start(&args.python, &script, args.threads)?;
            d.execute(&format!(
                "CREATE OR REPLACE TABLE {MAPPING} AS SELECT * FROM read_parquet('{}')",
                path.display()
            ))?;
            eprintln!("[W7] DuckDB: {n} mapping rows loaded into table {MAPPING}");
            Ok::<_, anyhow::Error>(d)
        }
        .await;
        match started {
            Ok(d) => duck = Some(d),
            Err(e) => rec.error(DUCKDB, "W7 query", &format!("{e:#}")),
        }
    }

    // Untimed round: every part once, answers and plans checked.
    let mut query_sql = String::new();
    let check = async {
        if on("read") {
            part_read(lake, uri, &want).await.context("read")?;
        }
        if on("scan") {
            part_scan(lake, &sql.scan, &want).await.context("scan")?;
        }
        if on("county") {
            part_county(lake, &sql.county, &want)
                .await
                .context("county scan")?;
        }
        if on("validate") {
            part_validate(lake, uri, &columns)
                .await
                .context("validate")?;
        }
        if on("query") {
            let r = part_query(lake, &q, &settings, replace)
                .await
                .context("query")?;
            check_answer("tarn", &answer_of_batches(&r.batches)?, &want)?;
            eprintln!("[W7] tarn's query (Registry::prepare_query):\n{}", r.sql);
            query_sql = r.sql;
            if let Some(d) = duck.as_mut() {
                let path = args.work.join("duckdb-answer.json");
                d.run(&sql.duckdb, Some(&path), false)?;
                check_answer("DuckDB", &answer_of_json(&path, &HashMap::new())?, &want)?;
                let _ = fs::remove_file(&path);
                eprintln!(
                    "[W7] tarn, DuckDB and the reference agree ({} groups)",
                    want.groups.len()
                );
            }
        }
        // Every SQL part scans every row: nothing is answered from statistics.
        let session = QuerySession::new(lake, None).await?;
        let mut plans: Vec<(&str, &str)> = Vec::new();
        if on("scan") {
            plans.push(("scan", &sql.scan));
        }
        if on("county") {
            plans.push(("county", &sql.county));
        }
        if on("validate") {
            plans.push(("validate", &sql.validate));
        }
        for (name, text) in plans {
            let n = scanned_rows(&session, text).await?;
            ensure!(
                n == want.rows,
                "{name}: the scan produced {n} rows, expected {}: answered from statistics?",
                want.rows
            );
            if !args.no_explain {
                let plan = explain_analyze(&session, text).await?;
                eprintln!("[W7] tarn EXPLAIN ANALYZE, {name}:\n{plan}");
            }
        }
        if on("query") {
            let prepared = prepare(lake, &q, &settings, replace).await?;
            let n = scanned_rows(&prepared.session, &prepared.sql).await?;
            ensure!(
                n == want.rows,
                "query: the scan produced {n} rows, expected {}",
                want.rows
            );
            if !args.no_explain {
                let plan = explain_analyze(&prepared.session, &prepared.sql).await?;
                eprintln!("[W7] tarn EXPLAIN ANALYZE, query:\n{plan}");
            }
            if let (Some(d), false) = (duck.as_mut(), args.no_explain) {
                eprintln!("[W7] DuckDB EXPLAIN ANALYZE, query:");
                d.run(&sql.duckdb, None, true)?;
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = check.await {
        let msg = format!("untimed round: {e:#}");
        for p in PARTS.iter().filter(|p| on(p)) {
            rec.error(INPROC, &format!("W7 {p}"), &msg);
        }
        if duck.is_some() {
            rec.error(DUCKDB, "W7 query", &msg);
        }
        return Ok(rec.errors);
    }

    // Timed rounds.
    let mut times: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut prepare = Vec::new();
    let mut duck_times = Vec::new();
    for round in 0..args.repeat {
        let step = async {
            if on("read") {
                let dt = part_read(lake, uri, &want).await?;
                times.entry("read").or_default().push(dt);
            }
            if on("scan") {
                let dt = part_scan(lake, &sql.scan, &want).await?;
                times.entry("scan").or_default().push(dt);
            }
            if on("county") {
                let dt = part_county(lake, &sql.county, &want).await?;
                times.entry("county").or_default().push(dt);
            }
            if on("validate") {
                let dt = part_validate(lake, uri, &columns).await?;
                times.entry("validate").or_default().push(dt);
            }
            if on("query") {
                let r = part_query(lake, &q, &settings, replace).await?;
                let n: usize = r.batches.iter().map(|b| b.num_rows()).sum();
                ensure!(
                    n == want.groups.len(),
                    "query: {n} groups, expected {}",
                    want.groups.len()
                );
                times.entry("query").or_default().push(r.total_s);
                prepare.push(r.prepare_s);
                if let Some(d) = duck.as_mut() {
                    let (s, n) = d.run(&sql.duckdb, None, false)?;
                    ensure!(
                        n == want.groups.len(),
                        "DuckDB: {n} groups, expected {}",
                        want.groups.len()
                    );
                    duck_times.push(s);
                }
            }
            Ok::<_, anyhow::Error>(())
        };
        if let Err(e) = step.await {
            let msg = format!("round {round}: {e:#}");
            for p in PARTS.iter().filter(|p| on(p)) {
                rec.error(INPROC, &format!("W7 {p}"), &msg);
            }
            if duck.is_some() {
                rec.error(DUCKDB, "W7 query", &msg);
            }
            return Ok(rec.errors);
        }
        eprintln!("[W7] round {} of {} done", round + 1, args.repeat);
    }

    // Results.
    let med = |p: &str| times.get(p).map(|t| median(t));
    let mut common = Map::new();
    common.insert("input_rows".into(), json!(want.rows));
    common.insert("files".into(), json!(files.files.len()));
    common.insert("row_groups".into(), json!(files.row_groups));
    common.insert("counties".into(), json!(counties.len()));
    common.insert("partitions".into(), json!(cores));
    common.extend(built.facts.clone());
    let describe = |p: &str| -> &'static str {
        match p {
            "read" => "full scan: Lake::snapshot + Lake::read of every column (tarn read)",
            "scan" => {
                "full scan through DataFusion: new QuerySession, count(*), sum(value), count(county), count(sector), min(ts)"
            }
            "county" => {
                "scan of the county column through DataFusion: new QuerySession, count(county)"
            }
            "validate" => {
                "Registry::missing_values of county against dimension county (3,236 records)"
            }
            _ => {
                "Registry::prepare_query (--group-by county=state,sector --agg sum(value)) + collect"
            }
        }
    };
    for p in PARTS {
        let Some(t) = times.get(p) else { continue };
        let m = median(t);
        let (min, max) = min_max(t);
        let mut extra = base_extra(&version, want.rows);
        extra.extend(common.clone());
        extra.insert("measures".into(), json!(describe(p)));
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        match p {
            "validate" => {
                extra.insert(
                    "target".into(),
                    json!(format!("≤ {VALIDATE_TARGET}× full scan (read)")),
                );
                if let Some(r) = med("read") {
                    extra.insert("reference".into(), json!("W7 read"));
                    extra.insert("reference_median_s".into(), json!(r));
                    extra.insert("ratio".into(), json!(m / r));
                    extra.insert("met".into(), json!(m <= VALIDATE_TARGET * r));
                }
                if let Some(s) = med("scan") {
                    extra.insert("ratio_to_scan".into(), json!(m / s));
                }
                if let Some(c) = med("county") {
                    extra.insert("ratio_to_county_scan".into(), json!(m / c));
                }
                extra.insert("sql".into(), json!(sql.validate));
            }
            "query" => {
                extra.insert("target".into(), json!(format!("≤ {QUERY_TARGET}× DuckDB")));
                extra.insert("prepare_median_s".into(), json!(median(&prepare)));
                let mut variant: Vec<String> =
                    args.settings.iter().map(|s| format!("--set {s}")).collect();
                if let Some(p) = &args.query_sql {
                    variant.push(format!("--query-sql {}", p.display()));
                }
                if !variant.is_empty() {
                    extra.insert("settings".into(), json!(variant.join(" ")));
                }
                extra.insert("result_rows".into(), json!(want.groups.len()));
                if !duck_times.is_empty() {
                    let d = median(&duck_times);
                    extra.insert("reference".into(), json!(DUCKDB));
                    extra.insert("reference_median_s".into(), json!(d));
                    extra.insert("ratio".into(), json!(m / d));
                    extra.insert("met".into(), json!(m <= QUERY_TARGET * d));
                }
                extra.insert(
                    "sql".into(),
                    json!(query_sql.split_whitespace().collect::<Vec<_>>().join(" ")),
                );
            }
            "scan" => {
                extra.insert("sql".into(), json!(sql.scan));
            }
            "county" => {
                extra.insert("sql".into(), json!(sql.county));
            }
            _ => {}
        }
        rec.ok(INPROC, &format!("W7 {p}"), t, extra)?;
    }
    if let (Some(d), false) = (duck.as_ref(), duck_times.is_empty()) {
        let (min, max) = min_max(&duck_times);
        let mut extra = Map::new();
        extra.insert("version".into(), json!(d.version));
        extra.insert("rows".into(), json!(want.rows));
        extra.extend(common.clone());
        extra.insert(
            "measures".into(),
            json!("read_parquet([files]) joined with the mapping rows (a DuckDB table), sum(value * fraction) by state, sector"),
        );
        extra.insert("settings".into(), d.settings.clone());
        extra.insert("result_rows".into(), json!(want.groups.len()));
        extra.insert("min_s".into(), json!(min));
        extra.insert("max_s".into(), json!(max));
        extra.insert(
            "sql".into(),
            json!(sql.duckdb.chars().take(400).collect::<String>()),
        );
        rec.ok(DUCKDB, "W7 query", &duck_times, extra)?;
    }
    drop(duck);
    drop(built);
    if !args.keep {
        let _ = fs::remove_dir_all(&lake_dir);
        let _ = fs::remove_dir_all(args.work.join("inputs"));
        let _ = fs::remove_file(args.work.join("county_to_state.parquet"));
    }
    Ok(rec.errors)
}
