//! The shared deployment through the `tarn` binary (SPEC §14, docs/design/0006): the README's
//! first steps on PostgreSQL + S3 print what they print on a local lake; two lake directories
//! with their own `tarn.toml` are one lake; joining with another storage is refused; and every
//! input a deployment can get wrong (credentials, bucket, endpoints, catalog URLs, keys of
//! `tarn.toml`) fails with exit 1, an `error: ` naming what is at fault, and an unchanged lake
//! (SPEC §12). Tests that need the servers skip without them (tarn-testkit says so).

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const PAYERNE_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/bsrn_payerne_ch_2016-06_1min.csv"
);
const PAYERNE: &str = "tarn://weather/payerne";
/// The small dataset of the bad-input lakes.
const DS: &str = "tarn://t/x";
/// A failure that names an unreachable server must come well within this.
const FAST: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The README journey on both backends

/// The two inputs of the journey, cut from the BSRN Payerne month: `data.csv` holds June
/// 1–20, `more.csv` June 15–30 with the station renamed, so the five days they share show
/// which write won (`--duplicates-on ts`: the newer).
fn payerne_inputs(lake: &TestLake) -> (String, String, String) {
    let text = std::fs::read_to_string(PAYERNE_CSV).expect("read the Payerne CSV");
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 30 * 1440, "one row per minute of June 2016");
    let part = |rows: &[&str], rename: bool| {
        let mut s = format!("{header}\n");
        for r in rows {
            if rename {
                s.push_str(&r.replacen(",payerne_ch,", ",payerne_ch_v2,", 1));
            } else {
                s.push_str(r);
            }
            s.push('\n');
        }
        s
    };
    let day = 1440;
    let data = lake.file("data.csv", part(&rows[..20 * day], false));
    let more = lake.file("more.csv", part(&rows[14 * day..], true));
    // June 15 06:00–06:30 of the first file: what delete-range removes, written back on dev.
    let restore = lake.file(
        "restore.csv",
        part(&rows[14 * day + 360..14 * day + 390], false),
    );
    let s = |p: std::path::PathBuf| p.display().to_string();
    (s(data), s(more), s(restore))
}

/// What the steps of a journey printed, by step.
struct Journey<'a> {
    lake: &'a TestLake,
    out: Vec<(String, String)>,
}

impl Journey<'_> {
    /// What the step printed: stdout, then stderr when there is any (`vacuum` reports
    /// there).
    fn text(&mut self, label: &str, args: &[&str]) {
        let run = self.lake.run(args).ok();
        let mut printed = run.stdout();
        if !run.stderr.is_empty() {
            printed.push_str("--- stderr ---\n");
            printed.push_str(&run.stderr);
        }
        self.out.push((label.into(), printed));
    }

    /// `--json` output with the commit times taken out (they are the only values that
    /// differ between two runs of the same commands on fresh lakes).
    fn json(&mut self, label: &str, args: &[&str]) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let mut v = self.lake.run(&all).ok().json();
        drop_times(&mut v);
        self.out.push((
            label.into(),
            serde_json::to_string_pretty(&v).expect("json"),
        ));
    }

    /// A table's cells, row by row, without the cells that are commit times.
    fn table(&mut self, label: &str, args: &[&str]) {
        let text = self.lake.run(args).ok().stdout();
        let rows: Vec<String> = text
            .lines()
            .filter(|l| l.contains('│'))
            .map(|l| {
                l.split(['│', '┆'])
                    .map(str::trim)
                    .filter(|c| !c.is_empty() && !is_commit_time(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        self.out.push((label.into(), rows.join("\n")));
    }
}

fn drop_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("timestamp");
            m.remove("created");
            m.values_mut().for_each(drop_times);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_times),
        _ => {}
    }
}

/// An RFC 3339 instant that is not in the data's June 2016: when a commit happened.
fn is_commit_time(cell: &str) -> bool {
    let b = cell.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[10] == b'T'
        && cell.ends_with('Z')
        && !cell.starts_with("2016-")
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The README's first steps (init is done), plus tags, a branch and the vacuum report.
fn journey(lake: &TestLake) -> Vec<(String, String)> {
    let (data, more, restore) = payerne_inputs(lake);
    let mut j = Journey {
        lake,
        out: Vec::new(),
    };
    let write_v1 = [
        "write",
        PAYERNE,
        &data,
        "--ordered-on",
        "ts",
        "--duplicates-on",
        "ts",
        "--row-group-size",
        "1D",
    ];
    j.text("write data.csv", &write_v1);
    j.text("write more.csv", &["write", PAYERNE, &more]);
    j.json("log", &["log", "weather/payerne"]);
    j.table("log table", &["log", "weather/payerne"]);
    j.text(
        "read v1, one day, two columns",
        &[
            "read",
            "tarn://weather/payerne:v1",
            "--start",
            "2016-06-10",
            "--end",
            "2016-06-11",
            "--columns",
            "ts,temp_air_c",
        ],
    );
    j.text(
        "read the overlap as CSV",
        &[
            "read",
            "weather/payerne",
            "--start",
            "2016-06-16T12:00:00Z",
            "--end",
            "2016-06-16T13:00:00Z",
            "--format",
            "csv",
        ],
    );
    j.text(
        "read everything as CSV",
        &["read", "weather/payerne", "--format", "csv"],
    );
    let june = lake.path("june.parquet");
    j.text(
        "read as Parquet to a file",
        &[
            "read",
            "weather/payerne",
            "--format",
            "parquet",
            "--output",
            june.to_str().expect("utf-8 path"),
        ],
    );
    let bytes = std::fs::read(&june).expect("june.parquet was written");
    j.out.push((
        "june.parquet".into(),
        format!("{} bytes, FNV-1a {:016x}", bytes.len(), fnv(&bytes)),
    ));
    // The README's query; the mean rounded, as the order in which DataFusion adds partial
    // sums may vary between runs.
    j.text(
        "query",
        &[
            "query",
            "SELECT date_trunc('day', ts) AS day, round(avg(temp_air_c), 6) AS mean, \
             count(*) AS n, min(station) AS station FROM weather.payerne \
             GROUP BY day ORDER BY day",
        ],
    );
    j.text(
        "query as CSV",
        &[
            "query",
            "SELECT station, count(*) AS n, min(ts) AS first, max(ts) AS last \
             FROM weather.payerne GROUP BY station ORDER BY station",
            "--format",
            "csv",
        ],
    );
    j.text(
        "delete-range",
        &[
            "delete-range",
            "weather/payerne",
            "--start",
            "2016-06-15T06:00:00Z",
            "--end",
            "2016-06-15T06:30:00Z",
        ],
    );
    let around = [
        "--start",
        "2016-06-15T05:58:00Z",
        "--end",
        "2016-06-15T06:02:00Z",
        "--format",
        "csv",
    ];
    fn read_around<'a>(uri: &'a str, around: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["read", uri];
        a.extend_from_slice(around);
        a
    }
    j.text(
        "read around the deletion",
        &read_around("weather/payerne", &around),
    );
    j.text("tag", &["tag", "weather/payerne", "june"]);
    j.text("branch", &["branch", "weather/payerne", "dev"]);
    j.text(
        "write the deleted rows back on dev",
        &["write", "tarn://weather/payerne@dev", &restore],
    );
    j.text(
        "read the tag",
        &read_around("tarn://weather/payerne:june", &around),
    );
    j.text(
        "read dev",
        &read_around("tarn://weather/payerne@dev", &around),
    );
    j.text(
        "read v2",
        &read_around("tarn://weather/payerne:v2", &around),
    );
    j.json("log dev", &["log", "weather/payerne@dev"]);
    j.json("log main", &["log", "weather/payerne"]);
    j.json("tags", &["tags", "weather/payerne"]);
    j.json("branches", &["branches", "weather/payerne"]);
    j.json("info", &["info", "weather/payerne"]);
    j.json("info dev", &["info", "weather/payerne@dev"]);
    j.json("ls", &["ls"]);
    j.text("vacuum --dry-run", &["vacuum", "--dry-run"]);
    j.json(
        "vacuum --dry-run --grace 0s",
        &["vacuum", "--dry-run", "--grace", "0s"],
    );
    // Files are named by random ids: their number per dataset directory is what compares.
    let mut per_dir: BTreeMap<String, usize> = BTreeMap::new();
    for f in lake.data_files() {
        let dir = f.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        *per_dir.entry(dir).or_default() += 1;
    }
    j.out.push(("storage files".into(), format!("{per_dir:?}")));
    j.out
}

/// The first line where two outputs differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: local {x:?}, remote {y:?}", i + 1);
        }
    }
    format!(
        "{} lines locally, {} remotely",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn the_readme_journey_prints_the_same_on_postgres_and_s3_as_on_a_local_lake() {
    let Some(remote) = TestLake::on(Backend::Remote) else {
        return;
    };
    let local = TestLake::new();
    let started = Instant::now();
    let on_local = journey(&local);
    let local_time = started.elapsed();
    let started = Instant::now();
    let on_remote = journey(&remote);
    eprintln!(
        "journey: {local_time:?} on sqlite+local, {:?} on postgres+s3",
        started.elapsed()
    );

    // The journey did what the README says (checked once, on the local lake).
    let step = |label: &str| -> &str {
        &on_local
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no step {label}"))
            .1
    };
    assert!(
        step("write data.csv").contains(": v1 (28800 rows in, 28800 rows now;"),
        "{}",
        step("write data.csv")
    );
    assert!(
        step("write more.csv").contains(": v2 (23040 rows in, 43200 rows now;"),
        "{}",
        step("write more.csv")
    );
    assert!(
        step("delete-range").contains(": v3 ("),
        "{}",
        step("delete-range")
    );
    let around: Vec<&str> = step("read around the deletion").lines().collect();
    assert!(
        around.len() == 3
            && around[1].starts_with("2016-06-15T05:58:00Z,payerne_ch_v2,")
            && around[2].starts_with("2016-06-15T05:59:00Z,payerne_ch_v2,"),
        "only 05:58 and 05:59 are left around the deleted half hour: {around:#?}"
    );
    assert_eq!(step("read dev").lines().count(), 5, "{}", step("read dev"));
    assert_eq!(step("read the tag"), step("read around the deletion"));
    assert!(
        step("query as CSV").contains("payerne_ch,20160,") // June 1–14 from data.csv
            && step("query as CSV").contains("payerne_ch_v2,23040,"),
        "the newer write won the shared days: {}",
        step("query as CSV")
    );
    assert!(
        step("vacuum --dry-run")
            .starts_with("--- stderr ---\nwould delete 0 unreferenced and 0 orphan files"),
        "{}",
        step("vacuum --dry-run")
    );

    // And every step printed the same on PostgreSQL + S3.
    let labels = |j: &[(String, String)]| j.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&on_local), labels(&on_remote));
    let mut differ = Vec::new();
    for ((label, l), (_, r)) in on_local.iter().zip(&on_remote) {
        if l != r {
            differ.push(format!("{label}: {}", first_difference(l, r)));
        }
    }
    assert!(
        differ.is_empty(),
        "the journey printed differently on postgres+s3:\n{}",
        differ.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Two directories, one lake

fn rows_between(first_id: i64, n: i64, slot: i64, slots: i64) -> Vec<Row> {
    (0..n)
        .map(|k| Row::new(BASE_MS + (k * slots + slot) * 1_000, first_id + k))
        .collect()
}

fn write_rows(lake: &TestLake, ds: &str, name: &str, rows: &[Row], message: &str) -> Run {
    let input = lake.file(name, csv_text(rows));
    lake.run([
        "write",
        ds,
        input.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
        "--message",
        message,
    ])
}

#[test]
fn two_lake_directories_with_their_own_tarn_toml_are_one_lake() {
    let Some(a) = TestLake::on(Backend::Remote) else {
        return;
    };
    let started = Instant::now();
    let (b, init) = a.join("lake-b");
    let said = init.stdout();
    let storage = &a.config().storage;
    let (bucket, prefix) = storage
        .strip_prefix("s3://")
        .and_then(|s| s.split_once('/'))
        .expect("s3://BUCKET/PREFIX");
    assert!(
        said.starts_with("joined the tarn lake of ")
            && said.contains(bucket)
            && said.contains(prefix),
        "the second init says it joined this lake: {}",
        init.describe()
    );
    let toml = |l: &TestLake| std::fs::read_to_string(l.lake.join("tarn.toml")).expect("toml");
    assert_eq!(toml(&a), toml(&b), "both files name the same lake");
    // A third directory, with --json.
    let c_dir = a.path("lake-c");
    let mut args: Vec<OsString> = vec!["--json".into()];
    args.extend(a.init_args(&c_dir));
    let v = a.raw(args).ok().json();
    assert_eq!(
        (v["status"].as_str(), v["created"].as_bool()),
        (Some("joined"), Some(false)),
        "{v}"
    );

    // A write through one directory is seen through the other, both ways.
    let ds = "shared/series";
    let first = rows_between(0, 100, 0, 1);
    write_rows(&a, ds, "first.csv", &first, "from-a").ok();
    assert_eq!(versions(&b.log(ds)), vec![1]);
    assert_eq!(b.read_csv(ds, &[]), csv_text(&first));
    let second = rows_between(1_000, 100, 100, 1);
    write_rows(&b, ds, "second.csv", &second, "from-b").ok();
    assert_eq!(versions(&a.log(ds)), vec![2, 1]);
    let mut model = first.clone();
    merge(&mut model, &second);
    assert_eq!(a.read_csv(ds, &[]), csv_text(&model));
    assert_eq!(a.fingerprint(&[ds]), b.fingerprint(&[ds]));

    // Writers in both directories at once: gap-free versions, nothing lost.
    const WRITERS: i64 = 8;
    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            let dir = if i % 2 == 0 { &a } else { &b };
            let rows = rows_between(10_000 * (i + 1), 200, i, WRITERS);
            let input = dir.file(&format!("w{i}.csv"), csv_text(&rows));
            let child = dir.spawn([
                "write".to_string(),
                ds.into(),
                input.display().to_string(),
                "--message".into(),
                format!("w-{i}"),
            ]);
            (i, rows, child)
        })
        .collect();
    let mut committed = BTreeSet::new();
    for (i, rows, (args, child)) in children {
        let run = Run::from_output(args, child.wait_with_output().expect("wait"));
        // A writer that loses a race re-plans on the new head: none may give up.
        assert_eq!(run.code, Some(0), "writer {i}: {}", run.describe());
        committed.insert(i);
        merge(&mut model, &rows);
    }
    assert_eq!(committed.len(), WRITERS as usize);
    for l in [&a, &b] {
        let log = l.log(ds);
        let n = 2 + committed.len() as u64;
        assert_eq!(
            versions(&log),
            (1..=n).rev().collect::<Vec<_>>(),
            "{log:#?}"
        );
        let messages: BTreeSet<String> = log
            .iter()
            .filter_map(|e| e["message"].as_str())
            .filter_map(|m| m.strip_prefix("w-"))
            .map(str::to_string)
            .collect();
        let want: BTreeSet<String> = committed.iter().map(i64::to_string).collect();
        assert_eq!(messages, want, "one version per writer that exited 0");
        assert_eq!(l.read_csv(ds, &[]), csv_text(&model), "nothing lost");
    }
    assert_eq!(a.fingerprint(&[ds]), b.fingerprint(&[ds]));
    eprintln!(
        "two directories: {} of {WRITERS} writers committed in {:?}",
        committed.len(),
        started.elapsed()
    );
}

/// `init` args with the value of `opt` replaced (or the option added).
fn with_opt(mut args: Vec<OsString>, opt: &str, value: &str) -> Vec<OsString> {
    match args.iter().position(|a| a == opt) {
        Some(i) => args[i + 1] = value.into(),
        None => args.extend([opt.into(), value.into()]),
    }
    args
}

#[test]
fn joining_a_lake_with_another_storage_is_refused_naming_both() {
    let Some(lake) = lake_with_data(Backend::Remote) else {
        return;
    };
    let before = state(&lake);
    let recorded = lake.config().storage.clone();
    let dir = lake.path("lake-other");
    let other_s3 = format!("{recorded}-other");
    let other_local = lake.path("other-data").display().to_string();
    for other in [&other_s3, &other_local] {
        let run = lake.raw(with_opt(lake.init_args(&dir), "--storage", other));
        run.fails(1, &[&recorded, other, "already holds a lake"]);
        assert!(
            !dir.join("tarn.toml").exists(),
            "a refused init writes no tarn.toml: {}",
            run.describe()
        );
        assert_eq!(state(&lake), before, "{}", run.describe());
    }
}

/// The local-storage case of the test above: a refused `tarn init --storage DIR` against a
/// catalog holding another lake leaves no DIR behind.
#[test]
fn a_refused_join_leaves_no_storage_directory_behind() {
    let Some(lake) = TestLake::on(Backend::Remote) else {
        return;
    };
    let dir = lake.path("lake-other");
    let other = lake.path("other-data");
    let run = lake.raw(with_opt(
        lake.init_args(&dir),
        "--storage",
        other.to_str().expect("utf-8 path"),
    ));
    run.fails(1, &["already holds a lake"]);
    assert!(!other.exists(), "{} was created", other.display());
}

/// A SQLite + local lake joined from another directory (a shared file system) uses the same
/// files: the absolute path of its storage directory is accepted, and `data` from the other
/// directory, which names `OTHER/data`, is refused as another storage.
#[test]
fn a_local_lake_joined_from_another_directory_uses_the_same_files() {
    let lake = TestLake::new();
    seed(&lake);
    let catalog = lake.lake.join("catalog.db").display().to_string();
    let storage = lake.lake.join("data").display().to_string();
    let b = lake.path("lake-b").display().to_string();
    lake.raw(["init", &b, "--catalog", &catalog, "--storage", &storage])
        .ok();
    let read = lake
        .raw(["--lake", &b, "read", DS, "--format", "csv"])
        .ok()
        .stdout();
    assert_eq!(read, lake.read_csv(DS, &[]));
    let c = lake.path("lake-c").display().to_string();
    let run = lake.raw(["init", &c, "--catalog", &catalog, "--storage", "data"]);
    run.fails(1, &["already holds a lake"]);
}

// ---------------------------------------------------------------------------------------
// Bad input (SPEC §12)

/// A lake on `backend` with one small dataset, a tag and a branch.
fn lake_with_data(backend: Backend) -> Option<TestLake> {
    let lake = TestLake::on(backend)?;
    seed(&lake);
    Some(lake)
}

fn seed(lake: &TestLake) {
    let rows: Vec<Row> = (0..100)
        .map(|k| Row::new(BASE_MS + k * 60_000, k))
        .collect();
    write_rows(lake, DS, "seed.csv", &rows, "seed").ok();
    lake.run(["tag", DS, "seeded"]).ok();
    lake.run(["branch", DS, "dev"]).ok();
}

/// The lake's visible state, its storage's files and its tarn.toml.
fn state(lake: &TestLake) -> String {
    let mut s = lake.fingerprint(&[DS]);
    s.push_str(&std::fs::read_to_string(lake.lake.join("tarn.toml")).expect("tarn.toml"));
    s
}

/// An input for writes that must fail.
fn more_rows(lake: &TestLake) -> String {
    let rows: Vec<Row> = (0..10)
        .map(|k| Row::new(BASE_MS + k * 60_000 + 30_000, 1_000 + k))
        .collect();
    lake.file("more.csv", csv_text(&rows)).display().to_string()
}

/// The schema of a remote place's catalog URL.
fn schema_of(lake: &TestLake) -> String {
    lake.config()
        .catalog
        .split("search_path%3D")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("a search_path in the catalog URL")
        .to_string()
}

/// How many tables the place's PostgreSQL schema holds (0: nothing was recorded).
fn catalog_tables(lake: &TestLake) -> u64 {
    let servers = tarn_testkit::servers().expect("the servers");
    let out = Command::new("psql")
        .arg(&servers.postgres)
        .arg("-Atc")
        .arg(format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{}'",
            schema_of(lake)
        ))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

/// A failed `tarn init` in `place` made nothing: no lake directory or tarn.toml, and on the
/// remote backend no catalog tables and no file in the storage prefix.
#[track_caller]
fn assert_nothing_made(place: &TestLake, run: &Run) {
    assert!(
        !place.lake.join("tarn.toml").exists(),
        "a failed init writes no tarn.toml: {}",
        run.describe()
    );
    assert!(
        tree(&place.lake).is_empty(),
        "a failed init leaves nothing in the lake directory: {:?}",
        tree(&place.lake)
    );
    if place.is_remote() {
        assert_eq!(
            catalog_tables(place),
            0,
            "a failed init records nothing in the catalog: {}",
            run.describe()
        );
        assert_eq!(
            place.data_files(),
            Vec::<String>::new(),
            "a failed init puts nothing in the storage"
        );
    }
}

/// The S3 endpoint of a remote lake, and its bucket.
fn endpoint_and_bucket(lake: &TestLake) -> (String, String) {
    let endpoint = lake.config().s3.endpoint.clone().expect("an endpoint");
    let bucket = lake
        .config()
        .storage
        .strip_prefix("s3://")
        .and_then(|s| s.split('/').next())
        .expect("s3://BUCKET/...")
        .to_string();
    (endpoint, bucket)
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Writes `config` as the lake's tarn.toml.
fn set_config(lake: &TestLake, config: &tarn::LakeConfig) {
    std::fs::write(
        lake.lake.join("tarn.toml"),
        config.to_toml().expect("to toml"),
    )
    .expect("write tarn.toml");
}

/// The commands of the bad-input tests that use the catalog and the storage.
fn commands(input: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["read", DS, "--format", "csv"]),
        v(&["write", DS, input]),
        v(&["write", "t/new", input, "--ordered-on", "ts"]),
        v(&["vacuum", "--dry-run"]),
        v(&["vacuum", "--grace", "0s"]),
    ]
}

#[test]
fn wrong_aws_credentials_fail_init_and_writes_naming_the_bucket() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let (endpoint, bucket) = endpoint_and_bucket(&place);
    let wrong_secret = [("AWS_SECRET_ACCESS_KEY", Some("wrong"))];
    let unknown_key = [("AWS_ACCESS_KEY_ID", Some("nobody"))];
    for env in [&wrong_secret, &unknown_key] {
        let run = place.raw_env(place.init_args(&place.lake), env);
        run.fails(1, &["S3 bucket", &bucket, &endpoint, "403"]);
        assert_nothing_made(&place, &run);
    }

    let lake = lake_with_data(Backend::Remote).expect("servers");
    let before = state(&lake);
    // Joining the lake with wrong credentials writes no tarn.toml either.
    let dir = lake.path("lake-b");
    let run = lake.raw_env(lake.init_args(&dir), &wrong_secret);
    run.fails(1, &["S3 bucket", &bucket, &endpoint]);
    assert!(!dir.exists(), "{}", run.describe());
    let input = more_rows(&lake);
    for args in commands(&input) {
        let run = lake.run_env(&args, &wrong_secret);
        run.fails(1, &["S3 bucket", &bucket, &endpoint]);
    }
    assert_eq!(state(&lake), before, "the lake is unchanged");
}

#[test]
fn an_unknown_bucket_fails_init_naming_it() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let bucket = format!("tarn-no-such-bucket-{}", std::process::id());
    let run = place.raw(with_opt(
        place.init_args(&place.lake),
        "--storage",
        &format!("s3://{bucket}/lake"),
    ));
    run.fails(1, &[&format!("S3 bucket {bucket}"), "does not exist"]);
    assert_nothing_made(&place, &run);
}

/// A loopback listener that accepts connections (the kernel does) and never answers.
fn silent_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[test]
fn an_unreachable_s3_endpoint_fails_within_its_timeouts_naming_it() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let closed = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let run = place.raw(with_opt(
        place.init_args(&place.lake),
        "--s3-endpoint",
        &format!("http://{closed}"),
    ));
    let elapsed = started.elapsed();
    run.fails(1, &[&closed, "S3 bucket"]);
    assert!(elapsed < FAST, "init took {elapsed:?}");
    assert_nothing_made(&place, &run);

    let lake = lake_with_data(Backend::Remote).expect("servers");
    let before = state(&lake);
    let original = std::fs::read_to_string(lake.lake.join("tarn.toml")).expect("tarn.toml");
    let input = more_rows(&lake);
    let (_silent, silent_port) = silent_listener();
    let silent = format!("127.0.0.1:{silent_port}");
    for (what, at) in [("closed", &closed), ("silent", &silent)] {
        let mut config = lake.config().clone();
        config.s3.endpoint = Some(format!("http://{at}"));
        config.s3.connect_timeout = Some(Duration::from_secs(1));
        config.s3.request_timeout = Some(Duration::from_secs(2));
        config.s3.retries = Some(0);
        set_config(&lake, &config);
        for args in commands(&input) {
            let started = Instant::now();
            let run = lake.run(&args);
            let elapsed = started.elapsed();
            run.fails(1, &["S3 bucket", at]);
            assert!(
                elapsed < FAST,
                "{what} endpoint: took {elapsed:?}: {}",
                run.describe()
            );
        }
    }
    std::fs::write(lake.lake.join("tarn.toml"), original).expect("restore tarn.toml");
    assert_eq!(state(&lake), before, "the lake is unchanged");
}

/// `host:port` of a PostgreSQL URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[test]
fn a_wrong_postgres_password_fails_naming_the_catalog() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let at = authority(&place.config().catalog).to_string();
    let wrong = [("PGPASSWORD", Some("wrong"))];
    let missing = [("PGPASSWORD", None)];
    let run = place.raw_env(place.init_args(&place.lake), &wrong);
    run.fails(
        1,
        &[
            "PostgreSQL catalog",
            &at,
            "password authentication failed",
            "PGPASSWORD",
        ],
    );
    assert_nothing_made(&place, &run);
    let run = place.raw_env(place.init_args(&place.lake), &missing);
    run.fails(1, &["PostgreSQL catalog", &at, "password", "PGPASSWORD"]);
    assert_nothing_made(&place, &run);

    let lake = lake_with_data(Backend::Remote).expect("servers");
    let before = state(&lake);
    let input = more_rows(&lake);
    let mut all = commands(&input);
    all.extend([
        vec!["ls".to_string()],
        vec!["log".into(), DS.into()],
        vec!["tag".into(), DS.into(), "t2".into()],
    ]);
    for env in [&wrong, &missing] {
        for args in &all {
            let run = lake.run_env(args, env);
            run.fails(1, &["PostgreSQL catalog", &at, "password"]);
        }
    }
    assert_eq!(state(&lake), before, "the lake is unchanged");
}

#[test]
fn an_unreachable_postgres_fails_fast_naming_host_and_port() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let real = authority(&place.config().catalog).to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let run = place.raw(with_opt(
        place.init_args(&place.lake),
        "--catalog",
        &place.config().catalog.replacen(&real, &closed, 1),
    ));
    let elapsed = started.elapsed();
    run.fails(1, &["PostgreSQL catalog", &closed]);
    assert!(elapsed < FAST, "init took {elapsed:?}");
    assert_nothing_made(&place, &run);

    let lake = lake_with_data(Backend::Remote).expect("servers");
    let before = state(&lake);
    let original = std::fs::read_to_string(lake.lake.join("tarn.toml")).expect("tarn.toml");
    let input = more_rows(&lake);
    let (_silent, silent_port) = silent_listener();
    let silent = format!("127.0.0.1:{silent_port}");
    let mut all = commands(&input);
    all.extend([vec!["ls".to_string()], vec!["log".into(), DS.into()]]);
    for (what, at) in [("closed", &closed), ("silent", &silent)] {
        let mut config = lake.config().clone();
        config.catalog = config.catalog.replacen(&real, at, 1);
        config.postgres.connect_timeout = Some(Duration::from_secs(1));
        set_config(&lake, &config);
        for args in &all {
            let started = Instant::now();
            let run = lake.run(args);
            let elapsed = started.elapsed();
            run.fails(1, &["PostgreSQL catalog", at]);
            assert!(
                elapsed < FAST,
                "{what} port: took {elapsed:?}: {}",
                run.describe()
            );
        }
    }
    std::fs::write(lake.lake.join("tarn.toml"), original).expect("restore tarn.toml");
    assert_eq!(state(&lake), before, "the lake is unchanged");
}

#[test]
fn a_catalog_schema_that_does_not_exist_fails_init_naming_it() {
    let Some(place) = TestLake::uninitialized(Backend::Remote) else {
        return;
    };
    let schema = schema_of(&place);
    let missing = format!("{schema}_missing");
    let catalog = place.config().catalog.replacen(&schema, &missing, 1);
    let run = place.raw(with_opt(
        place.init_args(&place.lake),
        "--catalog",
        &catalog,
    ));
    run.fails(1, &[&missing, "search_path"]);
    assert_nothing_made(&place, &run);
}

#[test]
fn a_catalog_url_with_an_unknown_scheme_or_a_password_is_refused_by_init() {
    let place = TestLake::uninitialized(Backend::Local).expect("a local place");
    let lake = place.lake.display().to_string();
    let run = place.raw([
        "init",
        &lake,
        "--catalog",
        "mysql://tarn@127.0.0.1:3306/lake",
    ]);
    run.fails(
        1,
        &[
            "mysql://tarn@127.0.0.1:3306/lake",
            "unknown scheme \"mysql\"",
            "postgres://",
        ],
    );
    assert_nothing_made(&place, &run);
    let run = place.raw(["init", &lake, "--storage", "gs://bucket/lake"]);
    run.fails(1, &["gs://bucket/lake", "unknown scheme \"gs\"", "s3://"]);
    assert_nothing_made(&place, &run);
    // A password in the URL: refused before anything is asked of the server, and not echoed.
    let run = place.raw([
        "init",
        &lake,
        "--catalog",
        "postgres://tarn:s3cret@127.0.0.1:5432/lake",
    ]);
    run.fails(
        1,
        &[
            "postgres://tarn@127.0.0.1:5432/lake",
            "password",
            "PGPASSWORD",
        ],
    );
    assert!(
        !run.stderr.contains("s3cret"),
        "the message must not repeat the password: {}",
        run.describe()
    );
    assert_nothing_made(&place, &run);
    // TLS is asked for, and tarn does not speak it: refused before connecting.
    let run = place.raw([
        "init",
        &lake,
        "--catalog",
        "postgres://tarn@127.0.0.1:9/lake?sslmode=require",
    ]);
    run.fails(1, &["tarn@127.0.0.1:9/lake", "sslmode=require", "TLS"]);
    assert_nothing_made(&place, &run);
}

/// tarn.toml texts with one mistake each, made from the lake's good file, and what the error
/// must name.
fn broken_configs(lake: &TestLake, good: &str) -> Vec<(String, String, Vec<String>)> {
    let path = lake.lake.join("tarn.toml").display().to_string();
    let line = |key: &str| {
        good.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {good}"))
            .to_string()
    };
    let storage = line("storage");
    let catalog = line("catalog");
    let endpoint_typo = if good.contains("\nendpoint = ") {
        good.replacen("\nendpoint = ", "\nendpiont = ", 1)
    } else {
        format!("{good}\n[s3]\nendpiont = \"http://127.0.0.1:8333\"\n")
    };
    let other_storage = if lake.is_remote() {
        format!("{}-other", lake.config().storage)
    } else {
        "elsewhere".into()
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "`storag` for `storage`".into(),
            good.replacen(&storage, &storage.replacen("storage", "storag", 1), 1),
            s(&[&path, "unknown field `storag`", "`storage`"]),
        ),
        (
            "`[s3] endpiont`".into(),
            endpoint_typo,
            s(&[&path, "unknown field `endpiont`", "`endpoint`"]),
        ),
        (
            "`[postgres] conect_timeout`".into(),
            format!("{good}\n[postgres]\nconect_timeout = \"1s\"\n"),
            s(&[&path, "unknown field `conect_timeout`", "`connect_timeout`"]),
        ),
        (
            "a mysql:// catalog".into(),
            good.replacen(
                &catalog,
                "catalog = \"mysql://tarn@127.0.0.1:3306/lake\"",
                1,
            ),
            s(&[
                "mysql://tarn@127.0.0.1:3306/lake",
                "unknown scheme \"mysql\"",
            ]),
        ),
        (
            "a gs:// storage".into(),
            good.replacen(&storage, "storage = \"gs://bucket/lake\"", 1),
            s(&["gs://bucket/lake", "unknown scheme \"gs\""]),
        ),
        (
            "another storage than the catalog records".into(),
            good.replacen(&storage, &format!("storage = {other_storage:?}"), 1),
            s(&[&path, &lake.config().storage, &other_storage]),
        ),
    ]
}

/// Every command on a lake whose tarn.toml has a mistake fails naming it, and leaves the
/// file and the lake as they were.
fn a_broken_tarn_toml_fails_every_command_naming_the_mistake(lake: TestLake) {
    seed(&lake);
    let before = state(&lake);
    let files_before = tree(&lake.lake);
    let toml = lake.lake.join("tarn.toml");
    let good = std::fs::read_to_string(&toml).expect("tarn.toml");
    let input = more_rows(&lake);
    let lake_dir = lake.lake.display().to_string();
    let mut all = commands(&input);
    all.extend(
        [
            &["ls"][..],
            &["log", DS],
            &["info", DS],
            &["tags", DS],
            &["tag", DS, "t2"],
            &["branch", DS, "b2"],
            &[
                "delete-range",
                DS,
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-02",
            ],
            &["compact", DS],
            &["query", "SELECT count(*) FROM t.x"],
            &["init", &lake_dir],
        ]
        .map(|a| a.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
    );
    for (what, text, needles) in broken_configs(&lake, &good) {
        std::fs::write(&toml, &text).expect("write the broken tarn.toml");
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        for args in &all {
            let run = lake.run(args);
            assert!(run.code == Some(1), "{what}: must fail: {}", run.describe());
            run.fails(1, &needles);
        }
        assert_eq!(
            std::fs::read_to_string(&toml).expect("tarn.toml"),
            text,
            "{what}: no command rewrites the broken file"
        );
    }
    std::fs::write(&toml, &good).expect("restore tarn.toml");
    assert_eq!(
        tree(&lake.lake),
        files_before,
        "nothing appeared in the lake directory"
    );
    assert_eq!(state(&lake), before, "the lake is unchanged");
}

crate::lake_tests!(a_broken_tarn_toml_fails_every_command_naming_the_mistake);
