//! W6 "history" (issue 3): resolving every ref form and planning a read, reading an old
//! version, and `log`, on one dataset with a long history.
//!
//! The dataset is built first, timed as a whole and reported as `W6 setup`: one initial
//! week of minutes (v1), then appends of `--hours-per-append` hours each with a 1D row-group
//! target, in relaxed durability. Every 100th version is instead an upsert of one hour into
//! a past day (the first one into the first week, so that the first week's row groups at the
//! head are not v1's), and every 250th a delete of one past hour. Then a tag is put on an
//! old version and a branch `dev` is forked at the middle version, with a few versions of
//! its own.
//!
//! The setup makes all commits within minutes, so date and time refs would all land on the
//! head. Afterwards the commit times are therefore rewritten, in the catalog directly, to
//! one commit every `--hours-per-append` hours ending a day ago, in commit order, as a real
//! history of such appends would have them. Nothing else in the catalog is touched.
//!
//! Every measurement is repeated `--repeat` times, round-robin over the cases so that load
//! on the shared machine spreads over all of them, after one untimed warm-up each; every
//! result is checked (the version a ref resolves to, rows read, log length).

use crate::sql::splitmix;
use crate::{CLI, INPROC, MINUTE_NS, Recorder, default_tarn, median, min_max, secs, tree_bytes};
use anyhow::{Context, Result, bail, ensure};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use serde_json::{Map, Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use tarn::{DuplicatesOn, Durability, Lake, ReadRequest, RowGroupTarget, WriteRequest};

const URI: &str = "tarn://bench/hist";
const DEV: &str = "tarn://bench/hist@dev";
/// Issue 3: resolving any ref and planning a read, and `log --limit 20`, each ≤ 50 ms.
const TARGET_S: f64 = 0.050;
/// Issue 3: reading a range of an old version costs at most 1.2× the same range at the head.
const READ_RATIO: f64 = 1.2;
/// 2020-01-01T00:00:00Z: the first minute of the series.
const T0_NS: i64 = 1_577_836_800 * 1_000_000_000;
const DAY_MINUTES: i64 = 1440;
/// v1 holds this many days; the measured range is the first week.
const FIRST_DAYS: i64 = 7;
const TAG: &str = "old-release";
/// Own versions written on `dev` after the fork.
const DEV_VERSIONS: u64 = 5;
/// Marks a lake `--reuse` may take as it is.
const PARAMS_FILE: &str = ".w6-params";

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Versions of the dataset's main branch.
    #[arg(long, default_value_t = 10_000)]
    versions: u64,
    /// Hours of minute data per append (and hours between two commits after the rewrite of
    /// the commit times).
    #[arg(long, default_value_t = 6)]
    hours_per_append: i64,
    /// Repetitions of every measurement (after one untimed warm-up).
    #[arg(long, default_value_t = 15)]
    repeat: usize,
    /// Scratch directory (the lake goes to WORK/lake).
    #[arg(long)]
    work: PathBuf,
    /// jsonl file to append results to.
    #[arg(long)]
    pub(crate) results: PathBuf,
    /// The `tarn` binary for the `tarn log` measurements (default: `tarn` next to this
    /// executable).
    #[arg(long)]
    tarn: Option<PathBuf>,
    /// Keep the lake under --work.
    #[arg(long)]
    keep: bool,
    /// Take the lake under --work as it is when an earlier --keep run built it with the same
    /// --versions and --hours-per-append (no setup line is recorded then).
    #[arg(long)]
    reuse: bool,
}

impl HistoryArgs {
    fn params(&self) -> String {
        format!(
            "versions={} hours_per_append={} generator=1",
            self.versions, self.hours_per_append
        )
    }

    /// The middle version: `vM`, `-M`, the fork of `dev`, the date and time refs.
    fn middle(&self) -> u64 {
        self.versions / 2
    }

    fn tag_version(&self) -> u64 {
        100.min(self.middle()).max(1)
    }
}

// ------------------------------------------------------------------------------------------
// the data

/// Minutes `[first, first + n)` after `T0_NS`, in W1's schema (`ts`, `a`-`d`, `n`).
/// Values are a deterministic function of the minute; `offset` is added to the floats (the
/// upserts use 1000, like w3).
fn minutes(first: i64, n: i64, offset: f64) -> Result<RecordBatch> {
    let range = first..first + n;
    let ts: Vec<i64> = range.clone().map(|m| T0_NS + m * MINUTE_NS).collect();
    let float = |col: u64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(range.clone().map(|m| {
            let bits = splitmix((m as u64) ^ (col << 56)) >> 11;
            bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0 + offset
        })))
    };
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
        range
            .clone()
            .map(|m| (splitmix(m as u64 ^ (5 << 56)) >> 40) as i64),
    ));
    let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC"));
    Ok(RecordBatch::try_from_iter([
        ("ts", ts),
        ("a", float(1)),
        ("b", float(2)),
        ("c", float(3)),
        ("d", float(4)),
        ("n", ints),
    ])?)
}

fn rfc3339(minute: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(T0_NS + minute * MINUTE_NS)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A day in `[FIRST_DAYS, full_days)`, picked by `seed`: never the first week, never the
/// day appends are still filling.
fn past_day(seed: u64, full_days: i64) -> Option<i64> {
    let span = full_days - FIRST_DAYS;
    (span >= 1).then(|| FIRST_DAYS + (splitmix(seed) % span as u64) as i64)
}

// ------------------------------------------------------------------------------------------
// setup

#[derive(Default)]
struct SetupTimes {
    appends: Vec<f64>,
    upserts: Vec<f64>,
    deletes: Vec<f64>,
    rows_rewritten: u64,
}

/// Builds the history into `dir`; returns the setup line's extra fields.
async fn build(args: &HistoryArgs, dir: &Path) -> Result<(f64, Map<String, Value>)> {
    ensure!(
        args.versions >= 20,
        "--versions {} is too few for the refs measured (at least 20)",
        args.versions
    );
    ensure!(
        (1..=24).contains(&args.hours_per_append),
        "--hours-per-append must be 1 to 24"
    );
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let start = Instant::now();
    drop(Lake::init(dir).await?);
    let lake = Lake::open_with(dir, Durability::Relaxed).await?;
    let step_minutes = args.hours_per_append * 60;
    let mut times = SetupTimes::default();

    let first = minutes(0, FIRST_DAYS * DAY_MINUTES, 0.0)?;
    let request = WriteRequest::new()
        .ordered_on("ts")
        .row_group_target(RowGroupTarget::parse("1D")?)
        .message("first week");
    lake.write(URI, first, request).await?;
    let mut next = FIRST_DAYS * DAY_MINUTES;
    let mut version = 1;
    while version < args.versions {
        let v = version + 1;
        let full_days = next / DAY_MINUTES;
        let t = Instant::now();
        let (kind, out) = if v % 100 == 50 {
            // A correction of one hour; the first one in the first week.
            let day = if v == 50 {
                Some(3)
            } else {
                past_day(v, full_days)
            };
            match day {
                Some(day) => {
                    let hour = (splitmix(v + 1) % 24) as i64;
                    let batch = minutes(day * DAY_MINUTES + hour * 60, 60, 1000.0)?;
                    let request = WriteRequest::new()
                        .duplicates_on(DuplicatesOn::parse("ts"))
                        .message("correction");
                    ("upsert", lake.write(URI, batch, request).await?)
                }
                None => append(&lake, &mut next, step_minutes).await?,
            }
        } else if v % 250 == 125 {
            delete_hour(&lake, v, full_days, &mut next, step_minutes).await?
        } else {
            append(&lake, &mut next, step_minutes).await?
        };
        let dt = secs(t);
        ensure!(
            out.version == Some(v),
            "{kind} for v{v} made version {:?}",
            out.version
        );
        times.rows_rewritten += out.rows_rewritten;
        match kind {
            "upsert" => times.upserts.push(dt),
            "delete" => times.deletes.push(dt),
            _ => times.appends.push(dt),
        }
        version = v;
        if v % 1000 == 0 {
            eprintln!(
                "[W6] setup: v{v}, {:.1} s, last {kind} {:.1} ms",
                secs(start),
                dt * 1e3
            );
        }
    }
    let main_s = secs(start);

    lake.tag(&format!("{URI}:v{}", args.tag_version()), TAG, false)
        .await?;
    lake.create_branch(&format!("{URI}:v{}", args.middle()), "dev")
        .await?;
    // Corrections of the day after the first week, which every version holds.
    let dev_day = FIRST_DAYS;
    for i in 0..DEV_VERSIONS {
        let hour = i as i64;
        let batch = minutes(dev_day * DAY_MINUTES + hour * 60, 60, 2000.0)?;
        let request = WriteRequest::new()
            .duplicates_on(DuplicatesOn::parse("ts"))
            .message("correction on dev");
        let out = lake.write(DEV, batch, request).await?;
        ensure!(
            out.version == Some(args.middle() + i + 1),
            "write {i} on dev made version {:?}",
            out.version
        );
    }
    drop(lake);
    let catalog = dir.join("catalog.db");
    backdate(&catalog, args.hours_per_append * 3_600_000_000)?;
    let total = secs(start);
    fs::write(dir.join(PARAMS_FILE), args.params())?;

    let mut extra = Map::new();
    extra.insert("main_versions_s".into(), json!(main_s));
    let (appends, upserts, deletes) = (&times.appends, &times.upserts, &times.deletes);
    let n10 = (appends.len() / 10).max(1);
    extra.insert("appends".into(), json!(appends.len()));
    extra.insert("append_median_s".into(), json!(median(appends)));
    extra.insert(
        "append_first10_median_s".into(),
        json!(median(&appends[..n10])),
    );
    extra.insert(
        "append_last10_median_s".into(),
        json!(median(&appends[appends.len() - n10..])),
    );
    extra.insert("upserts".into(), json!(upserts.len()));
    extra.insert("upsert_median_s".into(), json!(median(upserts)));
    extra.insert("deletes".into(), json!(deletes.len()));
    extra.insert("delete_median_s".into(), json!(median(deletes)));
    extra.insert("rows_rewritten_total".into(), json!(times.rows_rewritten));
    extra.insert("hours_per_append".into(), json!(args.hours_per_append));
    extra.insert("row_group_target".into(), json!("1D"));
    extra.insert(
        "durability".into(),
        json!("relaxed (no fsync; SQLite synchronous=NORMAL)"),
    );
    Ok((total, extra))
}

async fn append(
    lake: &Lake,
    next: &mut i64,
    step_minutes: i64,
) -> Result<(&'static str, tarn::WriteOutcome)> {
    let batch = minutes(*next, step_minutes, 0.0)?;
    *next += step_minutes;
    Ok(("append", lake.write(URI, batch, WriteRequest::new()).await?))
}

/// Deletes one hour of a past day; tries other days when the hour was already deleted
/// (a delete that removes nothing makes no version).
async fn delete_hour(
    lake: &Lake,
    v: u64,
    full_days: i64,
    next: &mut i64,
    step_minutes: i64,
) -> Result<(&'static str, tarn::WriteOutcome)> {
    for attempt in 0..16 {
        let Some(day) = past_day(v * 31 + attempt, full_days) else {
            break;
        };
        let first = day * DAY_MINUTES + (splitmix(v + 2) % 24) as i64 * 60;
        let out = lake
            .delete_range(
                URI,
                &rfc3339(first),
                &rfc3339(first + 60),
                Some("remove a bad hour".into()),
            )
            .await?;
        if out.version.is_some() {
            return Ok(("delete", out));
        }
    }
    append(lake, next, step_minutes).await
}

/// Spreads the commit times: commit `i` of `n` at `now - 1 day - (n - i) * spacing`, so a
/// date or time ref lands in the middle of the history as on a real one. Commit order and
/// monotonic times are kept; nothing else is changed.
fn backdate(catalog: &Path, spacing_micros: i64) -> Result<()> {
    let conn = rusqlite::Connection::open(catalog)?;
    let end = chrono::Utc::now().timestamp_micros() - 86_400_000_000;
    let last: i64 = conn.query_row("SELECT max(id) FROM commits", [], |r| r.get(0))?;
    conn.execute(
        "UPDATE commits SET ts_micros = ?1 - (?2 - id) * ?3",
        rusqlite::params![end, last, spacing_micros],
    )?;
    // Fold the WAL into catalog.db, so its size is the catalog's.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// measurements

/// Runs `cases` round-robin: `repeat` rounds after one warm-up round, whose results are
/// dropped. Returns each case's results.
async fn round_robin<C, T>(
    cases: &[C],
    repeat: usize,
    mut run: impl AsyncFnMut(&C) -> Result<T>,
) -> Result<Vec<Vec<T>>> {
    let mut out: Vec<Vec<T>> = cases.iter().map(|_| Vec::with_capacity(repeat)).collect();
    for round in 0..=repeat.max(1) {
        for (i, case) in cases.iter().enumerate() {
            let r = run(case).await?;
            if round > 0 {
                out[i].push(r);
            }
        }
    }
    Ok(out)
}

struct RefCase {
    name: String,
    uri: String,
    /// `--as-of`: resolved with `Lake::state_at` and `Lake::snapshot_at`.
    as_of: Option<String>,
    /// The version it must resolve to, when known in advance.
    expect: Option<u64>,
}

/// The parts of one resolve + plan.
struct Planned {
    resolve_s: f64,
    total_s: f64,
    version: u64,
    row_groups: usize,
}

struct Week {
    start: String,
    end: String,
    rows: usize,
    first_ns: i64,
    last_ns: i64,
}

impl Week {
    fn first() -> Self {
        let minutes = FIRST_DAYS * DAY_MINUTES;
        Self {
            start: rfc3339(0),
            end: rfc3339(minutes),
            rows: minutes as usize,
            first_ns: T0_NS,
            last_ns: T0_NS + (minutes - 1) * MINUTE_NS,
        }
    }
}

async fn resolve_and_plan(lake: &Lake, case: &RefCase, week: &Week) -> Result<Planned> {
    let t = Instant::now();
    let snapshot = match &case.as_of {
        None => lake.snapshot(&case.uri).await?,
        Some(as_of) => {
            let state = lake.state_at(as_of).await?;
            lake.snapshot_at(&case.uri, Some(state)).await?
        }
    };
    let resolve_s = secs(t);
    let request = ReadRequest::parse(&snapshot, Some(&week.start), Some(&week.end), None)?;
    let rgs = snapshot
        .row_groups(lake, request.start.as_ref(), request.end.as_ref())
        .await?;
    let total_s = secs(t);
    Ok(Planned {
        resolve_s,
        total_s,
        version: snapshot.version(),
        row_groups: rgs.len(),
    })
}

fn ref_cases(args: &HistoryArgs, lake_state: &CommitTimes) -> Vec<RefCase> {
    let (n, m) = (args.versions, args.middle());
    let case = |name: &str, uri: String, expect: Option<u64>| RefCase {
        name: name.to_string(),
        uri,
        as_of: None,
        expect,
    };
    let dev_head = m + DEV_VERSIONS;
    let early = 100.min(m);
    vec![
        case("live head", URI.into(), Some(n)),
        case("latest", format!("{URI}:latest"), Some(n)),
        case("v1", format!("{URI}:v1"), Some(1)),
        case(&format!("v{m}"), format!("{URI}:v{m}"), Some(m)),
        case(
            &format!("v{}", n - 1),
            format!("{URI}:v{}", n - 1),
            Some(n - 1),
        ),
        case("index 0", format!("{URI}:0"), Some(1)),
        case("index -1", format!("{URI}:-1"), Some(n)),
        case(
            &format!("index -{m}"),
            format!("{URI}:-{m}"),
            Some(n - m + 1),
        ),
        case(
            &format!("date {} (middle)", lake_state.middle_date),
            format!("{URI}:{}", lake_state.middle_date),
            None,
        ),
        case(
            &format!("time {}", lake_state.middle_time),
            format!("{URI}:{}", lake_state.middle_time),
            Some(m),
        ),
        case(
            &format!("tag {TAG} (v{})", args.tag_version()),
            format!("{URI}:{TAG}"),
            Some(args.tag_version()),
        ),
        case(
            &format!("branch @dev head (v{dev_head})"),
            DEV.into(),
            Some(dev_head),
        ),
        case(
            &format!("branch @dev:v{early}"),
            format!("{DEV}:v{early}"),
            Some(early),
        ),
        RefCase {
            name: format!("--as-of {m} (commit id)"),
            uri: URI.into(),
            as_of: Some(m.to_string()),
            expect: Some(m),
        },
    ]
}

/// Times of the middle commit, for the date and time refs.
struct CommitTimes {
    middle_date: String,
    middle_time: String,
}

async fn commit_times(lake: &Lake, middle: u64) -> Result<CommitTimes> {
    let snap = lake.snapshot(&format!("{URI}:v{middle}")).await?;
    let t = snap.timestamp();
    Ok(CommitTimes {
        middle_date: t.format("%Y-%m-%d").to_string(),
        // A second after the commit: the time ref names the last commit at or before it.
        middle_time: (t + chrono::Duration::seconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

struct W6<'a> {
    args: &'a HistoryArgs,
    lake_dir: PathBuf,
    version: String,
}

impl W6<'_> {
    fn extra(&self) -> Map<String, Value> {
        let mut m = crate::base_extra(&self.version, 0);
        m.remove("rows");
        m.insert("versions".into(), json!(self.args.versions));
        m
    }

    fn target(extra: &mut Map<String, Value>, median_s: f64, target_s: f64, text: &str) {
        extra.insert("target_s".into(), json!(target_s));
        extra.insert("target".into(), json!(text));
        extra.insert("met".into(), json!(median_s <= target_s));
    }

    async fn refs(&self, rec: &Recorder, lake: &Lake) -> Result<()> {
        let times = commit_times(lake, self.args.middle()).await?;
        let cases = ref_cases(self.args, &times);
        let week = Week::first();
        // Check every case once, and keep what it resolved to.
        let mut facts = Vec::new();
        for case in &cases {
            let p = resolve_and_plan(lake, case, &week)
                .await
                .with_context(|| format!("{} ({})", case.name, case.uri))?;
            if let Some(want) = case.expect {
                ensure!(
                    p.version == want,
                    "{} ({}) resolved to v{}, expected v{want}",
                    case.name,
                    case.uri,
                    p.version
                );
            }
            ensure!(
                p.row_groups >= FIRST_DAYS as usize,
                "{}: {} row groups for the first week",
                case.name,
                p.row_groups
            );
            facts.push(p);
        }
        let runs = round_robin(&cases, self.args.repeat, async |case| {
            resolve_and_plan(lake, case, &week).await
        })
        .await?;
        for ((case, p), runs) in cases.iter().zip(&facts).zip(&runs) {
            let times: Vec<f64> = runs.iter().map(|r| r.total_s).collect();
            let res: Vec<f64> = runs.iter().map(|r| r.resolve_s).collect();
            let times = &times;
            let m = median(times);
            let mut extra = self.extra();
            Self::target(&mut extra, m, TARGET_S, "≤ 50 ms");
            extra.insert("uri".into(), json!(case.uri));
            if let Some(a) = &case.as_of {
                extra.insert("as_of".into(), json!(a));
            }
            extra.insert("resolved".into(), json!(format!("v{}", p.version)));
            extra.insert("resolve_median_s".into(), json!(median(&res)));
            extra.insert("row_groups_planned".into(), json!(p.row_groups));
            let (min, max) = min_max(times);
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            extra.insert(
                "timed".into(),
                json!("lake.snapshot(uri) + snapshot.row_groups(first week)"),
            );
            rec.ok(
                INPROC,
                &format!("W6 resolve+plan {}", case.name),
                times,
                extra,
            )?;
        }
        Ok(())
    }

    async fn reads(&self, rec: &Recorder, lake: &Lake) -> Result<()> {
        let week = Week::first();
        let m = self.args.middle();
        let cases = [
            ("head".to_string(), URI.to_string()),
            ("v1".to_string(), format!("{URI}:v1")),
            (format!("v{m}"), format!("{URI}:v{m}")),
        ];
        let read = |uri: String| {
            let week = &week;
            async move {
                let t = Instant::now();
                let snap = lake.snapshot(&uri).await?;
                let request = ReadRequest::parse(&snap, Some(&week.start), Some(&week.end), None)?;
                let out = lake.read(&snap, &request).await?;
                let dt = secs(t);
                let n: usize = out.iter().map(|b| b.num_rows()).sum();
                ensure!(n == week.rows, "{uri}: {n} rows, expected {}", week.rows);
                let first = out
                    .first()
                    .map(crate::ts_values)
                    .transpose()?
                    .map(|a| a.value(0));
                let last = out
                    .last()
                    .map(crate::ts_values)
                    .transpose()?
                    .map(|a| a.value(a.len() - 1));
                ensure!(
                    first == Some(week.first_ns) && last == Some(week.last_ns),
                    "{uri}: wrong range {first:?} .. {last:?}"
                );
                Ok::<_, anyhow::Error>(dt)
            }
        };
        let times = round_robin(
            &cases,
            self.args.repeat,
            async |(_, uri): &(String, String)| read(uri.clone()).await,
        )
        .await?;
        let head = median(&times[0]);
        // Which row groups each version reads: v1's came from the first write, the head's
        // partly from the correction into the first week.
        let mut layouts = Vec::new();
        for (_, uri) in &cases {
            let snap = lake.snapshot(uri).await?;
            let request = ReadRequest::parse(&snap, Some(&week.start), Some(&week.end), None)?;
            let rgs = snap
                .row_groups(lake, request.start.as_ref(), request.end.as_ref())
                .await?;
            let mut files: Vec<&str> = rgs.iter().map(|r| r.path.as_str()).collect();
            files.sort_unstable();
            files.dedup();
            let files = files.len();
            let ids: Vec<i64> = rgs.iter().map(|r| r.id).collect();
            layouts.push((
                rgs.len(),
                files,
                rgs.iter().map(|r| r.rows).sum::<u64>(),
                ids,
            ));
        }
        for (i, ((name, uri), times)) in cases.iter().zip(&times).enumerate() {
            let med = median(times);
            let mut extra = self.extra();
            if i == 0 {
                extra.insert("target".into(), json!("the reference for the old versions"));
            } else {
                Self::target(
                    &mut extra,
                    med,
                    READ_RATIO * head,
                    &format!("≤ 1.2 × read(head) = {:.2} ms", READ_RATIO * head * 1e3),
                );
                extra.insert("vs_head".into(), json!(med / head));
            }
            let (rgs, files, rows, ids) = &layouts[i];
            extra.insert("uri".into(), json!(uri));
            extra.insert(
                "range".into(),
                json!(format!("[{}, {})", week.start, week.end)),
            );
            extra.insert("rows_returned".into(), json!(week.rows));
            extra.insert("row_groups_read".into(), json!(rgs));
            extra.insert("files_read".into(), json!(files));
            extra.insert("rows_decoded".into(), json!(rows));
            extra.insert(
                "row_groups_shared_with_head".into(),
                json!(ids.iter().filter(|id| layouts[0].3.contains(id)).count()),
            );
            let (min, max) = min_max(times);
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            extra.insert(
                "timed".into(),
                json!("lake.snapshot(uri) + lake.read (all columns)"),
            );
            extra.insert("cache".into(), json!("warm"));
            rec.ok(
                INPROC,
                &format!("W6 read first week at {name}"),
                times,
                extra,
            )?;
        }
        Ok(())
    }

    async fn log_inproc(&self, rec: &Recorder, lake: &Lake) -> Result<()> {
        let n = self.args.versions;
        let cases: [(&str, Option<u64>); 2] = [("log --limit 20", Some(20)), ("log (all)", None)];
        let times = round_robin(&cases, self.args.repeat, async |&(_, limit)| {
            let t = Instant::now();
            let log = lake.log(URI, limit).await?;
            let dt = secs(t);
            let want = limit.unwrap_or(n) as usize;
            ensure!(
                log.len() == want,
                "log has {} entries, expected {want}",
                log.len()
            );
            ensure!(
                log.first().map(|v| v.version) == Some(n),
                "log does not start at the head v{n}"
            );
            Ok(dt)
        })
        .await?;
        for ((name, limit), times) in cases.iter().zip(&times) {
            let med = median(times);
            let mut extra = self.extra();
            match limit {
                Some(_) => Self::target(&mut extra, med, TARGET_S, "≤ 50 ms"),
                None => {
                    extra.insert("target".into(), json!("for information"));
                }
            }
            extra.insert("entries".into(), json!(limit.unwrap_or(n)));
            extra.insert("timed".into(), json!(format!("lake.log(uri, {limit:?})")));
            let (min, max) = min_max(times);
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            rec.ok(INPROC, &format!("W6 {name}"), times, extra)?;
        }
        Ok(())
    }

    fn log_cli(&self, rec: &Recorder, tarn: &Path) -> Result<()> {
        let n = self.args.versions;
        let cases: [(&str, bool, Option<u64>); 4] = [
            ("tarn log --limit 20", false, Some(20)),
            ("tarn --json log --limit 20", true, Some(20)),
            ("tarn log (all)", false, None),
            ("tarn --json log (all)", true, None),
        ];
        let run = |json_out: bool, limit: Option<u64>| -> Result<f64> {
            let mut cmd = Command::new(tarn);
            cmd.arg("--lake").arg(&self.lake_dir);
            if json_out {
                cmd.arg("--json");
            }
            cmd.args(["log", URI]);
            if let Some(l) = limit {
                cmd.args(["--limit", &l.to_string()]);
            }
            cmd.env_remove("TARN_LAKE")
                .env_remove("TARN_LOG")
                .stdin(Stdio::null());
            let t = Instant::now();
            let out = cmd
                .output()
                .with_context(|| format!("cannot run {}", tarn.display()))?;
            let dt = secs(t);
            if !out.status.success() {
                bail!(
                    "tarn log failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let want = limit.unwrap_or(n) as usize;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if json_out {
                let v: Value = serde_json::from_str(&stdout).context("tarn --json log")?;
                let got = v.as_array().map_or(0, Vec::len);
                ensure!(
                    got == want,
                    "tarn --json log printed {got} entries, expected {want}"
                );
            } else {
                let got = stdout.lines().filter(|l| l.contains(" v")).count();
                ensure!(
                    got >= want && stdout.contains(&format!("v{n} ")),
                    "tarn log printed {got} version lines, expected {want}"
                );
            }
            Ok(dt)
        };
        let repeat = self.args.repeat.max(1);
        let mut times = vec![Vec::new(); cases.len()];
        for round in 0..=repeat {
            for (i, &(_, json_out, limit)) in cases.iter().enumerate() {
                let dt = run(json_out, limit)?;
                if round > 0 {
                    times[i].push(dt);
                }
            }
        }
        let version = crate::tarn_version(tarn);
        for ((name, _, limit), times) in cases.iter().zip(&times) {
            let med = median(times);
            let mut extra = self.extra();
            extra.insert("version".into(), json!(version));
            match limit {
                Some(_) => Self::target(&mut extra, med, TARGET_S, "≤ 50 ms"),
                None => {
                    extra.insert("target".into(), json!("for information"));
                }
            }
            extra.insert("entries".into(), json!(limit.unwrap_or(n)));
            extra.insert("timed".into(), json!("the whole process (spawn to exit)"));
            let (min, max) = min_max(times);
            extra.insert("min_s".into(), json!(min));
            extra.insert("max_s".into(), json!(max));
            rec.ok(CLI, &format!("W6 {name}"), times, extra)?;
        }
        Ok(())
    }

    /// catalog.db's size and row counts, the data files: for information.
    fn catalog_facts(&self, rec: &Recorder) -> Result<()> {
        let catalog = self.lake_dir.join("catalog.db");
        let conn = rusqlite::Connection::open(&catalog)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let mut extra = self.extra();
        extra.insert("target".into(), json!("for information"));
        extra.insert("catalog_bytes".into(), json!(fs::metadata(&catalog)?.len()));
        for table in [
            "commits",
            "versions",
            "files",
            "row_groups",
            "branch_row_groups",
            "branches",
            "tags",
        ] {
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            extra.insert(format!("{table}_rows"), json!(n));
        }
        let live: i64 = conn.query_row(
            "SELECT count(*) FROM branch_row_groups b JOIN branches br ON br.id = b.branch_id \
             WHERE br.name = 'main' AND b.removed_in IS NULL",
            [],
            |r| r.get(0),
        )?;
        extra.insert("live_row_groups_main".into(), json!(live));
        let data = self.lake_dir.join("data");
        extra.insert("data_files".into(), json!(count_files(&data)));
        extra.insert("data_bytes".into(), json!(tree_bytes(&data)));
        rec.emit(&json!({
            "system": INPROC,
            "workload": "W6 catalog and files",
            "median_s": null,
            "runs": 0,
            "extra": extra,
        }))?;
        eprintln!("[{INPROC}] W6 catalog and files: {}", Value::Object(extra));
        Ok(())
    }
}

fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// The catalog's plans for the queries ref resolution, planning and `log` run, printed to
/// stderr. The SQL is copied from crates/tarn-catalog/src/sqlite/mod.rs (keep in step).
fn explain(catalog: &Path, versions: u64) -> Result<()> {
    let conn = rusqlite::Connection::open(catalog)?;
    let old = versions / 2;
    let queries: [(&str, String); 6] = [
        (
            "row groups of the head in a range",
            format!(
                "SELECT rg.id FROM branch_row_groups b JOIN row_groups rg ON rg.id = b.row_group_id \
                 JOIN files f ON f.id = rg.file_id WHERE b.branch_id = 1 AND b.removed_in IS NULL AND {versions} = {versions} \
                 AND b.max_value >= 0 AND b.min_value < 1 ORDER BY b.min_value, b.max_value, rg.file_id, rg.rg_index"
            ),
        ),
        (
            "row groups of an old version in a range",
            format!(
                "SELECT rg.id FROM branch_row_groups b JOIN row_groups rg ON rg.id = b.row_group_id \
                 JOIN files f ON f.id = rg.file_id WHERE b.branch_id = 1 AND b.added_in <= {old} \
                 AND (b.removed_in IS NULL OR b.removed_in > {old}) \
                 AND b.max_value >= 0 AND b.min_value < 1 ORDER BY b.min_value, b.max_value, rg.file_id, rg.rg_index"
            ),
        ),
        (
            "commit at a time",
            "SELECT max(id) FROM commits WHERE ts_micros <= 0".into(),
        ),
        (
            "version at a commit",
            format!(
                "SELECT max(version) FROM versions WHERE branch_id = 1 AND commit_id <= {old} AND version <= {versions}"
            ),
        ),
        (
            "one version",
            format!(
                "SELECT v.version FROM versions v JOIN commits c ON c.id = v.commit_id \
                 WHERE v.branch_id = 1 AND v.version = {old}"
            ),
        ),
        (
            "log",
            format!(
                "SELECT v.version FROM versions v JOIN commits c ON c.id = v.commit_id \
                 WHERE v.branch_id = 1 AND v.version <= {versions} AND v.version > 0 \
                 ORDER BY v.version DESC LIMIT 20"
            ),
        ),
    ];
    for (name, sql) in queries {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))?
            .collect::<rusqlite::Result<_>>()?;
        eprintln!("[W6] EXPLAIN QUERY PLAN, {name}:");
        for line in plan {
            eprintln!("[W6]   {line}");
        }
    }
    Ok(())
}

pub async fn run(args: &HistoryArgs) -> Result<usize> {
    let lake_dir = args.work.join("lake");
    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let version = crate::with_rev(format!("tarn {}", env!("CARGO_PKG_VERSION")));
    let ctx = W6 {
        args,
        lake_dir: lake_dir.clone(),
        version,
    };
    let reused = args.reuse
        && fs::read_to_string(lake_dir.join(PARAMS_FILE)).is_ok_and(|p| p == args.params());
    if reused {
        eprintln!("[W6] reusing the lake in {}", lake_dir.display());
    } else {
        eprintln!(
            "[W6] building {} versions in {}",
            args.versions,
            lake_dir.display()
        );
        fs::create_dir_all(&args.work)?;
        match build(args, &lake_dir).await {
            Ok((total, extra)) => {
                let mut e = ctx.extra();
                e.insert("target".into(), json!("for information"));
                e.extend(extra);
                rec.ok(
                    INPROC,
                    &format!("W6 setup ({} versions)", args.versions),
                    &[total],
                    e,
                )?;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                rec.error(INPROC, "W6 setup", &msg);
                return Ok(rec.errors);
            }
        }
    }
    if let Err(e) = explain(&lake_dir.join("catalog.db"), args.versions) {
        eprintln!("[W6] EXPLAIN QUERY PLAN failed: {e:#}");
    }
    let lake = Lake::open_with(&lake_dir, Durability::Durable).await?;
    let r = ctx.refs(&rec, &lake).await;
    rec.attempt(INPROC, "W6 resolve+plan", r);
    let r = ctx.reads(&rec, &lake).await;
    rec.attempt(INPROC, "W6 read first week", r);
    let r = ctx.log_inproc(&rec, &lake).await;
    rec.attempt(INPROC, "W6 log", r);
    drop(lake);
    match args.tarn.clone().or_else(default_tarn) {
        Some(tarn) => {
            let r = ctx.log_cli(&rec, &tarn);
            rec.attempt(CLI, "W6 tarn log", r);
        }
        None => rec.error(
            CLI,
            "W6 tarn log",
            "no `tarn` binary next to tarn-bench; pass --tarn",
        ),
    }
    let r = ctx.catalog_facts(&rec);
    rec.attempt(INPROC, "W6 catalog and files", r);
    if !args.keep {
        let _ = fs::remove_dir_all(&lake_dir);
    }
    Ok(rec.errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_in_order_and_deterministic() -> Result<()> {
        let a = minutes(10, 5, 0.0)?;
        let b = minutes(10, 5, 0.0)?;
        assert_eq!(a, b);
        let ts = crate::ts_values(&a)?;
        assert_eq!(ts.value(0), T0_NS + 10 * MINUTE_NS);
        assert_eq!(ts.value(4) - ts.value(3), MINUTE_NS);
        Ok(())
    }

    #[test]
    fn past_days_skip_the_first_week_and_the_open_day() {
        assert_eq!(past_day(1, FIRST_DAYS), None);
        for seed in 0..100 {
            let d = past_day(seed, 20).expect("a day");
            assert!((FIRST_DAYS..20).contains(&d));
        }
    }

    #[test]
    fn rfc3339_names_the_minute() {
        assert_eq!(rfc3339(0), "2020-01-01T00:00:00Z");
        assert_eq!(rfc3339(61), "2020-01-01T01:01:00Z");
    }
}
