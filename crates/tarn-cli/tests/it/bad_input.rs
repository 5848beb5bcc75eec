//! Every SPEC §12 bad input reachable from the CLI: each case checks the exit code (2 for a
//! usage error clap rejects, 1 for any other error), that stderr starts with `error: ` and
//! names the problem, and that the lake is unchanged (`ls --json`, `log --json` of every
//! dataset, the files under `lake/data`) and nothing appeared outside it.
//!
//! Each test runs all its cases and reports every failing one at once.

use crate::common::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const DS: &str = "tarn://m/x";

/// A lake with `m/x` at v2 (ordered on `ts`, columns `ts,id,v`), and input files beside it.
struct Fixture {
    lake: TestLake,
    failures: Vec<String>,
    cases: usize,
}

impl Fixture {
    fn new() -> Self {
        let lake = TestLake::new();
        let v1: Vec<Row> = (0..10)
            .map(|k| Row::new(BASE_MS + k * 3_600_000, k))
            .collect();
        let v2: Vec<Row> = (10..20)
            .map(|k| Row::new(BASE_MS + k * 3_600_000, k))
            .collect();
        let f1 = lake.file("v1.csv", csv_text(&v1));
        let f2 = lake.file("v2.csv", csv_text(&v2));
        lake.run([
            "write",
            DS,
            f1.to_str().expect("utf-8"),
            "--ordered-on",
            "ts",
            "--meta",
            "k=1",
        ])
        .ok();
        lake.run(["write", DS, f2.to_str().expect("utf-8")]).ok();
        Self {
            lake,
            failures: Vec::new(),
            cases: 0,
        }
    }

    /// The visible state: datasets, logs, data files, and every path in the temporary
    /// directory (inputs included) except the SQLite catalog's own files.
    fn state(&self) -> String {
        let mut s = self.lake.fingerprint(&[DS]);
        for p in tree(self.lake.dir()) {
            if !p.contains("catalog.db") {
                s.push_str(&p);
                s.push('\n');
            }
        }
        s
    }

    fn path(&self, name: &str) -> String {
        self.lake.path(name).display().to_string()
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        self.lake.file(name, contents).display().to_string()
    }

    /// Runs `tarn --lake LAKE ARGS` and records a failure unless it exits `code`, prints
    /// `error: ...` naming every needle, and leaves the lake as it was.
    fn case<I, S>(&mut self, what: &str, args: I, code: i32, needles: &[&str])
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<OsString> = self.lake.args(args);
        self.raw_case(what, args, code, needles);
    }

    /// Like [`Fixture::case`] with the whole command line given (no `--lake` added).
    fn raw_case(&mut self, what: &str, args: Vec<OsString>, code: i32, needles: &[&str]) {
        self.cases += 1;
        let before = self.state();
        let run = self.lake.raw(&args);
        let mut problems = Vec::new();
        if run.code != Some(code) {
            problems.push(format!("exit code {:?}, expected {code}", run.code));
        }
        if !run.stderr.starts_with("error: ") {
            problems.push("stderr does not start with `error: `".to_string());
        }
        let lower = run.stderr.to_lowercase();
        for n in needles {
            if !lower.contains(&n.to_lowercase()) {
                problems.push(format!("stderr does not mention {n:?}"));
            }
        }
        if code == 1 && run.stderr.contains("panicked") {
            problems.push("the process panicked".into());
        }
        let after = self.state();
        if before != after {
            problems.push(format!(
                "the lake changed:\n--- before ---\n{before}\n--- after ---\n{after}"
            ));
        }
        if !problems.is_empty() {
            self.failures.push(format!(
                "[{what}] {}\n{}",
                problems.join("; "),
                run.describe()
            ));
        }
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} bad-input cases failed:\n\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n\n")
        );
    }
}

#[test]
fn malformed_truncated_and_empty_inputs() {
    let mut f = Fixture::new();
    let ragged = f.file(
        "ragged.csv",
        "ts,id,v\n2024-02-01T00:00:00Z,100,1.5\n2024-02-01T01:00:00Z,101\n",
    );
    f.case(
        "ragged CSV",
        ["write", DS, &ragged],
        1,
        &["ragged.csv", "unequal"],
    );
    let good = csv_text(&[
        Row::new(BASE_MS + 86_400_000 * 40, 100),
        Row::new(BASE_MS + 86_400_000 * 41, 101),
    ]);
    let cut = f.file("cut.csv", &good[..good.len() - 12]);
    f.case(
        "CSV truncated mid-row",
        ["write", DS, &cut],
        1,
        &["cut.csv"],
    );
    let badts = f.file("badts.csv", "ts,id,v\n2024-02-30T00:00:00Z,100,1.5\n");
    f.case(
        "CSV with an impossible date in ts",
        ["write", DS, &badts],
        1,
        &["badts.csv"],
    );

    // A real Parquet and Arrow IPC file of the dataset, then cut in half.
    let parquet = f.lake.run(["read", DS, "--format", "parquet"]).ok().stdout;
    assert!(
        parquet.starts_with(b"PAR1") && parquet.len() > 100,
        "read --format parquet gave no Parquet file"
    );
    let trunc_pq = f.file("trunc.parquet", &parquet[..parquet.len() / 2]);
    f.case(
        "truncated Parquet",
        ["write", DS, &trunc_pq],
        1,
        &["trunc.parquet", "parquet"],
    );
    let head_pq = f.file("head.parquet", &parquet[..parquet.len() - 9]);
    f.case(
        "Parquet without its footer",
        ["write", DS, &head_pq],
        1,
        &["head.parquet", "parquet"],
    );
    let arrow = f.lake.run(["read", DS, "--format", "arrow"]).ok().stdout;
    assert!(
        arrow.starts_with(b"ARROW1"),
        "read --format arrow gave no Arrow IPC file"
    );
    let trunc_arrow = f.file("trunc.arrow", &arrow[..arrow.len() / 2]);
    f.case(
        "truncated Arrow IPC",
        ["write", DS, &trunc_arrow],
        1,
        &["trunc.arrow", "arrow"],
    );
    let garbage = f.file(
        "garbage.parquet",
        b"this is not parquet at all, just text\n",
    );
    f.case(
        "text named .parquet",
        ["write", DS, &garbage],
        1,
        &["garbage.parquet", "parquet"],
    );

    let empty_csv = f.file("empty.csv", "");
    let empty_pq = f.file("empty.parquet", "");
    let empty_jsonl = f.file("empty.jsonl", "");
    for (what, p) in [
        ("empty CSV", &empty_csv),
        ("empty Parquet", &empty_pq),
        ("empty JSON lines", &empty_jsonl),
    ] {
        let run = f.lake.run(["write", DS, p.as_str()]);
        let lower = run.stderr.to_lowercase();
        let named = [
            "empty",
            "missing",
            "not in the input",
            "no column",
            "too small",
        ]
        .iter()
        .any(|n| lower.contains(n));
        if !named {
            f.failures.push(format!(
                "[{what}] the error does not say the input is empty or lacks columns\n{}",
                run.describe()
            ));
        }
        f.case(what, ["write", DS, p.as_str()], 1, &[]);
        f.case(
            &format!("{what} creating a dataset"),
            ["write", "tarn://m/new", p.as_str(), "--ordered-on", "ts"],
            1,
            &[],
        );
    }
    let header_only = f.file("header.csv", "ts,id,v\n");
    f.case(
        "header-only CSV creating a dataset",
        ["write", "tarn://m/new", &header_only, "--ordered-on", "ts"],
        1,
        &[],
    );
    let bad_json = f.file(
        "bad.jsonl",
        "{\"ts\":\"2024-02-01T00:00:00Z\",\"id\":1,\"v\":1.5}\n{\"ts\": \n",
    );
    f.case(
        "malformed JSON lines",
        ["write", DS, &bad_json],
        1,
        &["bad.jsonl"],
    );
    let nul = f.file(
        "binary.csv",
        [0xffu8, 0xfe, 0x00, 0x01, b'\n', 0x80, b',', 0x81, b'\n'],
    );
    f.case(
        "binary garbage as CSV",
        ["write", DS, &nul],
        1,
        &["binary.csv"],
    );
    let missing = f.path("nofile.csv");
    f.case(
        "missing input file",
        ["write", DS, &missing],
        1,
        &["nofile.csv"],
    );
    let txt = f.file("rows.txt", &good);
    f.case(
        "unknown input extension",
        ["write", DS, &txt],
        1,
        &["--format"],
    );
    f.case(
        "stdin without --format",
        ["write", DS, "-"],
        1,
        &["stdin", "--format"],
    );
    f.finish();
}

#[test]
fn wrong_schema_and_ordered_on() {
    let mut f = Fixture::new();
    let t = |k: i64| super::common::rfc3339_ms(BASE_MS + 86_400_000 * 40 + k * 1000);
    let missing = f.file("missing.csv", format!("ts,id\n{},100\n", t(0)));
    f.case(
        "missing column",
        ["write", DS, &missing],
        1,
        &["\"v\"", "missing"],
    );
    let extra = f.file("extra.csv", format!("ts,id,v,w\n{},100,1.5,7\n", t(0)));
    f.case(
        "extra column",
        ["write", DS, &extra],
        1,
        &["\"w\"", "--evolve"],
    );
    let renamed = f.file("renamed.csv", format!("time,id,v\n{},100,1.5\n", t(0)));
    f.case(
        "ordered_on column missing",
        ["write", DS, &renamed],
        1,
        &["\"ts\"", "\"time\""],
    );
    let wrong_type = f.file("wrongtype.csv", format!("ts,id,v\n{},abc,1.5\n", t(0)));
    f.case(
        "string in an integer column (CSV)",
        ["write", DS, &wrong_type],
        1,
        &["abc", "int64"],
    );
    let wrong_json = f.file(
        "wrongtype.jsonl",
        format!("{{\"ts\":\"{}\",\"id\":\"text\",\"v\":1.5}}\n", t(0)),
    );
    f.case(
        "string in an integer column (JSON)",
        ["write", DS, &wrong_json],
        1,
        &["text", "id"],
    );
    let ts_type = f.file("tsint.csv", "ts,id,v\n5,100,1.5\n");
    f.case(
        "integer in the timestamp column",
        ["write", DS, &ts_type],
        1,
        &["ts"],
    );
    let null_ts = f.file(
        "nullts.csv",
        format!("ts,id,v\n{},100,1.5\n,101,2.5\n{},102,3.5\n", t(0), t(2)),
    );
    f.case(
        "null ordered_on",
        ["write", DS, &null_ts],
        1,
        &["null", "\"ts\""],
    );
    f.case(
        "null ordered_on creating a dataset",
        ["write", "tarn://m/new", &null_ts, "--ordered-on", "ts"],
        1,
        &["null", "\"ts\""],
    );
    let null_json = f.file(
        "nullts.jsonl",
        format!(
            "{{\"ts\":\"{}\",\"id\":1,\"v\":1.5}}\n{{\"ts\":null,\"id\":2,\"v\":2.5}}\n",
            t(0)
        ),
    );
    f.case(
        "null ordered_on (JSON)",
        ["write", DS, &null_json],
        1,
        &["null", "\"ts\""],
    );
    let ok = f.file("ok.csv", format!("ts,id,v\n{},100,1.5\n", t(0)));
    f.case(
        "new dataset without --ordered-on",
        ["write", "tarn://m/new", &ok],
        1,
        &["--ordered-on"],
    );
    f.case(
        "--ordered-on a column not in the input",
        ["write", "tarn://m/new", &ok, "--ordered-on", "nosuch"],
        1,
        &["nosuch"],
    );
    f.case(
        "--ordered-on another column than the dataset's",
        ["write", DS, &ok, "--ordered-on", "id"],
        1,
        &["\"ts\"", "\"id\""],
    );
    f.case(
        "--duplicates-on a column not in the input",
        [
            "write",
            "tarn://m/new",
            &ok,
            "--ordered-on",
            "ts",
            "--duplicates-on",
            "nosuch",
        ],
        1,
        &["nosuch"],
    );
    f.case(
        "frequency target on an integer ordered_on",
        [
            "write",
            "tarn://m/new",
            &ok,
            "--ordered-on",
            "id",
            "--row-group-size",
            "1D",
        ],
        1,
        &["1D", "\"id\""],
    );
    f.finish();
}

#[test]
fn unknown_names_and_refs() {
    let mut f = Fixture::new();
    for cmd in ["read", "info", "log"] {
        f.case(
            &format!("{cmd} of an unknown dataset"),
            [cmd, "tarn://m/nope"],
            1,
            &["\"m/nope\"", "does not exist"],
        );
        f.case(
            &format!("{cmd} of an unknown branch"),
            [cmd, "tarn://m/x@dev"],
            1,
            &["\"dev\"", "does not exist"],
        );
    }
    f.case(
        "unknown dataset, bare name",
        ["read", "m/nope"],
        1,
        &["m/nope", "does not exist"],
    );
    f.case(
        "unknown version",
        ["read", "tarn://m/x:v9"],
        1,
        &["tarn://m/x:v9", "v9", "v1 to v2"],
    );
    f.case(
        "unknown tag",
        ["read", "tarn://m/x:gold"],
        1,
        &["tarn://m/x:gold", "tag", "\"gold\""],
    );
    f.case(
        "index past the end",
        ["read", "tarn://m/x:2"],
        1,
        &["tarn://m/x:2", "index 2", "out of range"],
    );
    f.case(
        "negative index past the start",
        ["read", "tarn://m/x:-3"],
        1,
        &["tarn://m/x:-3", "out of range"],
    );
    f.case(
        "date before the first commit",
        ["read", "tarn://m/x:2000-01-01"],
        1,
        &["tarn://m/x:2000-01-01", "no version"],
    );
    f.case(
        "timestamp before the first commit",
        ["info", "tarn://m/x:2000-01-01T00:00:00Z"],
        1,
        &["2000-01-01T00:00:00Z", "no version"],
    );
    f.case(
        "delete-range on an unknown dataset",
        [
            "delete-range",
            "tarn://m/nope",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
        ],
        1,
        &["m/nope", "does not exist"],
    );
    f.case(
        "compact of an unknown dataset",
        ["compact", "tarn://m/nope"],
        1,
        &["m/nope", "does not exist"],
    );
    let ok = f.file(
        "ok.csv",
        csv_text(&[Row::new(BASE_MS + 86_400_000 * 40, 100)]),
    );
    f.case(
        "write to an unknown branch",
        ["write", "tarn://m/x@dev", &ok],
        1,
        &["\"dev\"", "does not exist"],
    );
    f.case(
        "write to a branch of an unknown dataset",
        ["write", "tarn://m/nope@dev", &ok, "--ordered-on", "ts"],
        1,
        &[
            "tarn://m/nope@dev",
            "\"m/nope\" does not exist",
            "starts on main",
        ],
    );
    f.finish();
}

#[test]
fn malformed_uris_and_path_traversal() {
    let mut f = Fixture::new();
    let ok = f.file(
        "ok.csv",
        csv_text(&[Row::new(BASE_MS + 86_400_000 * 40, 100)]),
    );
    let cases: &[(&str, &[&str])] = &[
        ("tarn://", &["dataset name is missing"]),
        ("tarn://a//b", &["empty segment"]),
        ("tarn://../x", &["'.'"]),
        ("tarn:///abs", &["absolute"]),
        ("s3://x", &["tarn://"]),
        ("tarn://a/./b", &["'.'"]),
        ("tarn://a/", &["empty segment"]),
        ("tarn://a b", &["' '"]),
        ("tarn://m/x@", &["branch"]),
        ("tarn://m/x@a/b", &["branch"]),
        ("tarn://m/x:v0", &["v0"]),
        ("tarn://m/x:2023-13-01", &["2023-13-01"]),
        ("tarn://m/x:2023-01-01T25:00:00Z", &["rfc 3339"]),
        ("tarn://m/x:bad tag", &["' '"]),
        ("../escape", &["'.'"]),
        ("a/../../escape", &["'.'"]),
        ("/etc/escape", &["absolute"]),
        ("m/x@..", &["branch", "'.'"]),
        ("tarn://é", &["'é'"]),
        ("tarn://a\\b", &["'\\\\'"]),
    ];
    for (uri, needles) in cases {
        let mut with_uri: Vec<&str> = needles.to_vec();
        if !uri.contains('\\') {
            with_uri.push(uri); // the error quotes the URI
        }
        f.case(&format!("read {uri}"), ["read", uri], 1, &with_uri);
        f.case(
            &format!("write {uri}"),
            ["write", uri, ok.as_str(), "--ordered-on", "ts"],
            1,
            &with_uri,
        );
    }
    f.case(
        "log of a malformed URI",
        ["log", "tarn://a//b"],
        1,
        &["tarn://a//b"],
    );
    f.case(
        "info of a malformed URI",
        ["info", "tarn:///abs"],
        1,
        &["tarn:///abs"],
    );
    f.case(
        "delete-range of a traversal",
        [
            "delete-range",
            "../x",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
        ],
        1,
        &["'.'"],
    );
    // Writes go to a branch head only.
    for r in ["v1", "-1", "0", "2024-01-01", "gold"] {
        let uri = format!("tarn://m/x:{r}");
        f.case(
            &format!("write {uri}"),
            ["write", uri.as_str(), ok.as_str()],
            1,
            &[uri.as_str(), "head"],
        );
    }
    f.case(
        "delete-range on a pinned version",
        [
            "delete-range",
            "tarn://m/x:v1",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-02",
        ],
        1,
        &["tarn://m/x:v1", "head"],
    );
    f.finish();
}

#[test]
fn non_utf8_arguments() {
    let mut f = Fixture::new();
    let bad = OsString::from_vec(b"m/x\xff\xfe".to_vec());
    f.case(
        "non-UTF-8 dataset name (read)",
        [OsString::from("read"), bad.clone()],
        2,
        &["utf-8"],
    );
    let ok = f.file(
        "ok.csv",
        csv_text(&[Row::new(BASE_MS + 86_400_000 * 40, 100)]),
    );
    f.case(
        "non-UTF-8 dataset name (write)",
        [
            OsString::from("write"),
            bad.clone(),
            OsString::from(&ok),
            OsString::from("--ordered-on"),
            OsString::from("ts"),
        ],
        2,
        &["utf-8"],
    );
    let mut bad_path = f.lake.dir().as_os_str().to_os_string().into_vec();
    bad_path.extend_from_slice(b"/in\xff.csv");
    let bad_path = OsString::from_vec(bad_path);
    std::fs::write(
        &bad_path,
        csv_text(&[Row::new(BASE_MS + 86_400_000 * 40, 100)]),
    )
    .expect("write non-UTF-8 file name");
    f.case(
        "non-UTF-8 input path",
        [OsString::from("write"), OsString::from(DS), bad_path],
        2,
        &["utf-8"],
    );
    let mut bad_meta = b"k=".to_vec();
    bad_meta.push(0xff);
    f.case(
        "non-UTF-8 metadata",
        [
            OsString::from("write"),
            OsString::from(DS),
            OsString::from(&ok),
            OsString::from("--meta"),
            OsString::from_vec(bad_meta),
        ],
        2,
        &["utf-8"],
    );
    f.finish();
}

#[test]
fn bad_options_frequencies_and_ranges() {
    let mut f = Fixture::new();
    let ok = f.file(
        "ok.csv",
        csv_text(&[Row::new(BASE_MS + 86_400_000 * 40, 100)]),
    );
    f.case(
        "bad frequency",
        ["write", DS, &ok, "--row-group-size", "1Q"],
        2,
        &["1Q", "frequency"],
    );
    f.case(
        "zero frequency",
        [
            "write",
            "tarn://m/new",
            &ok,
            "--ordered-on",
            "ts",
            "--row-group-size",
            "0D",
        ],
        2,
        &["0D"],
    );
    f.case(
        "zero rows per row group",
        ["write", DS, &ok, "--row-group-size", "0"],
        2,
        &["row-group"],
    );
    f.case(
        "negative max-off-target",
        ["write", DS, &ok, "--max-off-target", "-1"],
        2,
        &["-1"],
    );
    f.case(
        "--meta without =",
        ["write", DS, &ok, "--meta", "novalue"],
        2,
        &["novalue", "KEY=VALUE"],
    );
    f.case(
        "unknown --format (read)",
        ["read", DS, "--format", "xml"],
        2,
        &["xml"],
    );
    f.case(
        "unknown --format (write)",
        ["write", DS, &ok, "--format", "xml"],
        2,
        &["xml"],
    );
    f.case(
        "unknown --durability",
        ["--durability", "fast", "write", DS, &ok],
        2,
        &["fast"],
    );
    f.case("bad vacuum grace", ["vacuum", "--grace", "5x"], 2, &["5x"]);
    f.case(
        "bad vacuum older-than",
        ["vacuum", "--older-than", "soon"],
        2,
        &["soon"],
    );
    f.case(
        "negative log limit",
        ["log", DS, "--limit", "-1"],
        2,
        &["-1"],
    );

    // Ranges: start >= end, unparseable bounds.
    for (s, e) in [
        ("2024-01-02", "2024-01-01"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T05:00:00Z", "2024-01-01T04:59:59Z"),
    ] {
        f.case(
            &format!("read [{s}, {e})"),
            ["read", DS, "--start", s, "--end", e],
            1,
            &["range", s, e],
        );
        f.case(
            &format!("delete-range [{s}, {e})"),
            ["delete-range", DS, "--start", s, "--end", e],
            1,
            &["range", s, e],
        );
    }
    f.case(
        "unparseable --start",
        ["read", DS, "--start", "notadate"],
        1,
        &["notadate", "ts"],
    );
    f.case(
        "unparseable --end",
        ["read", DS, "--end", "2024-13-45"],
        1,
        &["2024-13-45"],
    );
    f.case(
        "unparseable delete-range bound",
        [
            "delete-range",
            DS,
            "--start",
            "yesterday",
            "--end",
            "2024-01-02",
        ],
        1,
        &["yesterday"],
    );
    f.case(
        "unknown column",
        ["read", DS, "--columns", "ts,nosuch"],
        1,
        &["nosuch"],
    );
    f.finish();
}

#[test]
fn usage_errors_exit_2() {
    let mut f = Fixture::new();
    f.case("write without input", ["write", DS], 2, &["<INPUTS>"]);
    f.case("write without anything", ["write"], 2, &["<URI>"]);
    f.case("read without URI", ["read"], 2, &["<URI>"]);
    f.case(
        "delete-range without --end",
        ["delete-range", DS, "--start", "2024-01-01"],
        2,
        &["--end"],
    );
    f.case("unknown flag", ["read", DS, "--bogus"], 2, &["--bogus"]);
    f.case("unknown subcommand", ["frobnicate"], 2, &["frobnicate"]);
    f.finish();
    // A bare `tarn` prints clap's help (not an `error: ` line) but still exits 2.
    let bare = TestLake::new().raw(Vec::<OsString>::new());
    assert_eq!(bare.code, Some(2), "{}", bare.describe());
    assert!(bare.stderr.contains("Usage: tarn"), "{}", bare.describe());
    assert!(bare.stdout.is_empty(), "{}", bare.describe());
}

#[test]
fn not_a_lake() {
    let mut f = Fixture::new();
    let plain = f.lake.path("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    std::fs::write(plain.join("keep.txt"), "x").expect("write");
    let ok = f.file("ok.csv", csv_text(&[Row::new(BASE_MS, 1)]));
    for args in [
        vec!["read", "m/x"],
        vec!["ls"],
        vec!["write", "m/x", ok.as_str(), "--ordered-on", "ts"],
        vec!["vacuum", "--grace", "0s"],
    ] {
        let mut full: Vec<OsString> = vec!["--lake".into(), plain.clone().into_os_string()];
        full.extend(args.iter().map(OsString::from));
        f.raw_case(
            &format!("--lake a plain dir: {}", args.join(" ")),
            full,
            1,
            &["not a tarn lake", "tarn init"],
        );
    }
    assert_eq!(
        tree(&plain),
        vec!["keep.txt".to_string()],
        "nothing may be created in a directory that is no lake"
    );
    let nowhere = f.lake.path("does-not-exist");
    f.raw_case(
        "--lake a missing dir",
        vec![
            "--lake".into(),
            nowhere.clone().into_os_string(),
            "ls".into(),
        ],
        1,
        &["not a tarn lake"],
    );
    assert!(
        !nowhere.exists(),
        "a missing --lake directory must not be created"
    );
    // No --lake, no TARN_LAKE, no tarn.toml above the working directory (a temp dir).
    f.raw_case(
        "no lake anywhere",
        vec!["ls".into()],
        1,
        &["no lake found", "--lake"],
    );
    // TARN_LAKE is used when --lake is not given.
    let run = {
        let out = tarn_cmd(f.lake.dir())
            .env("TARN_LAKE", &f.lake.lake)
            .args(["--json", "ls"])
            .output()
            .expect("run");
        Run::from_output(vec![], out)
    }
    .ok();
    assert_eq!(run.json()[0]["name"], "m/x", "{}", run.describe());
    let demo_dir = f.lake.path("plain");
    f.raw_case(
        "demo into a non-empty directory",
        vec!["demo".into(), demo_dir.into_os_string()],
        1,
        &["not empty"],
    );
    f.finish();
}
