//! `tarn query "<SQL>"` (SPEC §6, §11): exact CSV and JSON results, streaming to a file in
//! every format, bind parameters, time travel, `--as-of`, EXPLAIN, and bad input with its
//! message and exit code, leaving the lake unchanged.

use crate::common::*;
use serde_json::json;

const DS: &str = "tarn://q/x";
const HOUR_MS: i64 = 3_600_000;

/// `q/x`: v1 = hours 0..6 (ids 0..5), v2 appends hours 6..8.
fn lake_with_history() -> TestLake {
    let lake = TestLake::new();
    let rows = |r: std::ops::Range<i64>| -> Vec<Row> {
        r.map(|k| Row::new(BASE_MS + k * HOUR_MS, k)).collect()
    };
    let v1 = lake.file("v1.csv", csv_text(&rows(0..6)));
    let v2 = lake.file("v2.csv", csv_text(&rows(6..8)));
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    lake.run([
        "write",
        DS,
        &path(&v1),
        "--ordered-on",
        "ts",
        "--row-group-size",
        "4",
    ])
    .ok();
    lake.run(["write", DS, &path(&v2)]).ok();
    lake
}

#[test]
fn csv_and_json_results() {
    let lake = lake_with_history();
    let out = lake
        .run([
            "query",
            "SELECT id, v FROM \"q/x\" WHERE ts >= '2024-01-01T05:00:00Z' ORDER BY ts",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(out.stdout(), "id,v\n5,5.5\n6,6.5\n7,7.5\n");
    let out = lake
        .run([
            "--json",
            "query",
            "SELECT count(*) AS n, max(id) AS top FROM q.x",
        ])
        .ok();
    assert_eq!(out.json(), json!([{"n": 8, "top": 7}]));
    // The table on a non-terminal stdout is still a table.
    let out = lake.run(["query", "SELECT 1 + 1 AS two"]).ok();
    assert!(
        out.stdout().contains("two") && out.stdout().contains('2'),
        "{}",
        out.describe()
    );
}

#[test]
fn time_travel_params_and_as_of() {
    let lake = lake_with_history();
    let out = lake
        .run([
            "--json",
            "query",
            "SELECT (SELECT count(*) FROM tarn('tarn://q/x:v1')) AS v1, (SELECT count(*) FROM \"q/x:latest\") AS head",
        ])
        .ok();
    assert_eq!(out.json(), json!([{"v1": 6, "head": 8}]));
    let out = lake
        .run([
            "--json",
            "query",
            "SELECT count(*) AS n FROM \"q/x\" WHERE id >= $1 AND v < $2",
            "--params",
            "[2, 6.0]",
        ])
        .ok();
    assert_eq!(out.json(), json!([{"n": 4}]));
    // As of the first commit the dataset had v1 only.
    let out = lake
        .run([
            "--json",
            "query",
            "SELECT count(*) AS n FROM \"q/x\"",
            "--as-of",
            "1",
        ])
        .ok();
    assert_eq!(out.json(), json!([{"n": 6}]));
}

#[test]
fn output_files_in_every_format_read_back() {
    let lake = lake_with_history();
    let sql = "SELECT ts, id FROM \"q/x\" ORDER BY ts";
    for ext in ["parquet", "csv", "json", "jsonl", "arrow"] {
        let path = lake.path(&format!("out.{ext}"));
        let run = lake.run(["query", sql, "--output", path.to_str().expect("utf-8")]);
        let run = run.ok();
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
    // Every file holds the 8 rows, in order, with their values.
    let want: Vec<(String, i64)> = (0..8)
        .map(|k| (rfc3339_ms(BASE_MS + k * HOUR_MS), k))
        .collect();
    let text = |name: &str| std::fs::read_to_string(lake.path(name)).expect(name);
    let mut csv = String::from("ts,id\n");
    for (ts, id) in &want {
        csv.push_str(&format!("{ts},{id}\n"));
    }
    assert_eq!(text("out.csv"), csv);
    let objects: Vec<serde_json::Value> = want
        .iter()
        .map(|(ts, id)| json!({"ts": ts, "id": id}))
        .collect();
    let parsed: serde_json::Value =
        serde_json::from_str(&text("out.json")).expect("out.json is one JSON value");
    assert_eq!(parsed, serde_json::Value::Array(objects.clone()));
    let lines: Vec<serde_json::Value> = text("out.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines, objects);
    // The Parquet and Arrow results are dataset inputs like any other.
    for ext in ["parquet", "arrow"] {
        let copy = format!("tarn://q/copy-{ext}");
        let file = lake.path(&format!("out.{ext}"));
        lake.run([
            "write",
            &copy,
            file.to_str().expect("utf-8"),
            "--ordered-on",
            "ts",
        ])
        .ok();
        assert_eq!(lake.read_csv(&copy, &[]), csv, "{ext}");
    }

    // Strings are views inside a session (VARCHAR is Utf8View); files get plain Utf8.
    let sql = "SELECT id, 'row ' || CAST(id AS VARCHAR) AS label FROM \"q/x\" ORDER BY ts";
    let (parquet, arrow) = (lake.path("label.parquet"), lake.path("label.arrow"));
    for path in [&parquet, &arrow] {
        lake.run(["query", sql, "--output", path.to_str().expect("utf-8")])
            .ok();
    }
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&parquet).expect("open"),
    )
    .expect("parquet")
    .build()
    .expect("reader");
    let from_parquet: Vec<_> = reader.map(|b| b.expect("batch")).collect();
    let from_arrow: Vec<_> =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&arrow).expect("open"), None)
            .expect("arrow")
            .map(|b| b.expect("batch"))
            .collect();
    for batches in [from_parquet, from_arrow] {
        use arrow::array::AsArray;
        let labels: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                assert_eq!(
                    b.schema().field(1).data_type(),
                    &arrow::datatypes::DataType::Utf8
                );
                let c = b.column(1).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            labels,
            (0..8).map(|i| format!("row {i}")).collect::<Vec<_>>()
        );
    }
}

#[test]
fn explain_shows_the_scan() {
    let lake = lake_with_history();
    let out = lake
        .run([
            "query",
            "EXPLAIN SELECT * FROM \"q/x\" WHERE ts >= '2024-01-01T06:00:00Z'",
            "--format",
            "csv",
        ])
        .ok();
    let text = out.stdout();
    assert!(text.contains("DataSourceExec"), "{text}");
    assert!(text.contains(".parquet"), "{text}");
    assert!(text.contains("tarn_catalog_pruning"), "{text}");
    assert!(
        text.contains("row groups kept") && text.contains("pruned in the catalog"),
        "{text}"
    );
    let analyze = lake
        .run([
            "query",
            "EXPLAIN ANALYZE SELECT count(*), sum(id) FROM \"q/x\" WHERE ts >= '2024-01-01T06:00:00Z'",
        ])
        .ok();
    let text = analyze.stdout();
    assert!(text.contains("tarn_catalog_pruning"), "{text}");
    assert!(text.contains("output_rows"), "{text}");
}

#[test]
fn bad_queries_are_clear_errors_and_change_nothing() {
    let lake = lake_with_history();
    let before = lake.fingerprint(&["q/x"]);
    for (args, needles) in [
        (
            vec!["query", "SELECT * FROM \"q/y\""],
            vec!["unknown table \"q/y\"", "did you mean \"q/x\""],
        ),
        (
            vec!["query", "SELECT * FROM q.y"],
            vec!["unknown table \"q.y\"", "did you mean \"q/x\""],
        ),
        (
            vec!["query", "SELEC 1"],
            vec!["SQL syntax error", "SELEC", "Line: 1, Column: 1"],
        ),
        (vec!["query", "SELECT nope FROM \"q/x\""], vec!["nope"]),
        (
            vec!["query", "SELECT * FROM tarn('tarn://q/x:v7')"],
            vec!["tarn://q/x:v7", "version v7 does not exist"],
        ),
        (
            vec!["query", "SELECT * FROM tarn('tarn://q/x:v0')"],
            vec!["tarn://q/x:v0", "start at v1"],
        ),
        (
            vec!["query", "SELECT * FROM tarn(1)"],
            vec!["tarn() takes one argument"],
        ),
        (
            vec!["query", "SELECT 1", "--params", "{\"a\": 1}"],
            vec!["--params must be a JSON array"],
        ),
        (
            vec!["query", "SELECT 1", "--params", "[1,"],
            vec!["--params", "is not JSON"],
        ),
        (
            vec!["query", "SELECT 1", "--output", "x.txt"],
            vec!["cannot tell the format", "--format"],
        ),
        (
            vec!["query", "SELECT 1", "--as-of", "99"],
            vec!["commit 99 does not exist"],
        ),
    ] {
        let run = lake.run(&args);
        run.fails(1, &needles.iter().map(|s| &**s).collect::<Vec<_>>());
    }
    // Without SQL the statements come from stdin; empty input runs none.
    let run = lake.run(["query"]).ok();
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert_eq!(lake.fingerprint(&["q/x"]), before);
}

/// Peak resident memory of a running child, polled from /proc until it exits (VmHWM is the
/// high-water mark, so the last reading is the peak up to then).
fn run_measuring_peak(mut child: std::process::Child) -> (std::process::ExitStatus, Option<u64>) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = Some(kb * 1024);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            return (status, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A result much larger than the memory the process uses streams to the file: 234 MiB of
/// incompressible rows (240,000 rows of 1 KiB of hex text), sorted, written as CSV and as
/// Parquet, while the process's peak resident memory grows (over a `SELECT 1`) by much less
/// than the result (measured: about 70 MiB for CSV, 95 MiB for Parquet).
#[test]
fn a_result_larger_than_memory_streams_to_a_file() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let lake = TestLake::new();
    let lake_dir = lake.dir().join("lake");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    const ROWS: usize = 240_000;
    runtime.block_on(async {
        let tarn = tarn::Lake::open_with(&lake_dir, tarn::Durability::Relaxed)
            .await
            .expect("open");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for chunk in 0..8 {
            let n = ROWS / 8;
            let ts: Vec<i64> = (0..n).map(|i| ((chunk * n + i) as i64) * 1_000).collect();
            let text: Vec<String> = (0..n)
                .map(|_| {
                    (0..64)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            format!("{state:016x}")
                        })
                        .collect()
                })
                .collect();
            let batch = arrow::array::RecordBatch::try_from_iter([
                (
                    "ts",
                    std::sync::Arc::new(
                        arrow::array::TimestampMillisecondArray::from(ts).with_timezone("UTC"),
                    ) as arrow::array::ArrayRef,
                ),
                (
                    "payload",
                    std::sync::Arc::new(arrow::array::StringArray::from(text)) as _,
                ),
            ])
            .expect("batch");
            tarn.write(
                "tarn://big/x",
                batch,
                tarn::WriteRequest::new()
                    .ordered_on("ts")
                    .row_group_target(tarn::RowGroupTarget::Rows(2_000)),
            )
            .await
            .expect("write");
        }
    });
    let result_bytes = (ROWS * 1024) as u64;
    // What the process needs before reading any data (code, runtime, catalog).
    let baseline = {
        let child = tarn_cmd(lake.dir())
            .args(lake.args(["query", "SELECT 1", "--format", "csv"]))
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .env("MALLOC_ARENA_MAX", "2")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        run_measuring_peak(child).1.expect("VmHWM")
    };
    for ext in ["csv", "parquet"] {
        let out = lake.path(&format!("big.{ext}"));
        let child = tarn_cmd(lake.dir())
            .args(lake.args([
                "query",
                "SELECT ts, payload FROM \"big/x\" ORDER BY ts",
                "--output",
                out.to_str().expect("utf-8"),
            ]))
            // Freed buffers go back to the system at once, so the peak measures live data
            // rather than what glibc keeps for reuse.
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .env("MALLOC_ARENA_MAX", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let (status, peak) = run_measuring_peak(child);
        assert!(status.success(), "tarn query --output {ext} failed");
        let written = std::fs::metadata(&out).expect("output").len();
        assert!(written >= result_bytes / 2, "{ext}: wrote {written} bytes");
        let grown = peak.expect("VmHWM").saturating_sub(baseline);
        // Holding the result would grow memory by all of it; a stream holds the batches in
        // flight (DataFusion's 8,192-row batches are 8 MiB here) and, for Parquet, one
        // output row group of at most 32 MiB.
        assert!(
            grown < result_bytes * 2 / 3,
            "{ext}: memory grew by {} MiB for a {} MiB result",
            grown >> 20,
            result_bytes >> 20
        );
        eprintln!(
            "{ext}: memory grew by {} MiB over a {} MiB baseline; result {} MiB",
            grown >> 20,
            baseline >> 20,
            written >> 20
        );
    }
}

#[test]
fn statements_from_stdin_run_in_order_until_the_first_error() {
    let lake = lake_with_history();
    let script = "-- a report\n\
        SELECT count(*) AS n FROM \"q/x\";\n\
        SELECT id FROM q.x\n  WHERE id >= 6 -- the appended rows; not the end\n  ORDER BY id; SELECT ';' AS s\n";
    let out = lake.run_stdin(["query", "--format", "csv"], script).ok();
    assert_eq!(out.stdout(), "n\n8\nid\n6\n7\ns\n;\n");

    // Shell commands work in scripts too.
    let out = lake
        .run_stdin(
            ["query", "--format", "csv"],
            "\\d q.x\nSELECT 1 AS one;\n\\q\nSELECT 2;\n",
        )
        .ok();
    let text = out.stdout();
    // \d prints in the shell's format, here CSV.
    assert!(
        text.starts_with(
            "column,type,nullable\nts,\"Timestamp(ns, \"\"UTC\"\")\",true\nid,Int64,true\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("one\n1\n"), "stops at \\q: {text}");
    let out = lake.run_stdin(["query"], "\\format jsonl\n\\d\n").ok();
    assert_eq!(
        out.stdout(),
        "{\"table\":\"\\\"q/x\\\"\",\"kind\":\"dataset\",\"rows\":\"8\",\"version\":\"v2\"}\n"
    );

    // The first error stops the run, names the statement, and changes nothing.
    let before = lake.fingerprint(&["q/x"]);
    let run = lake.run_stdin(
        ["query", "--format", "csv"],
        "SELECT 1 AS a;\nSELECT nope\nFROM \"q/x\";\nSELECT 3 AS c;\n",
    );
    run.fails(1, &["statement 2 (ending on line 3)", "nope"]);
    assert_eq!(run.stdout(), "a\n1\n", "statement 3 never ran");
    assert_eq!(lake.fingerprint(&["q/x"]), before);

    for (args, needles) in [
        (
            vec!["query", "--output", "x.csv"],
            vec!["--output and --params take one statement"],
        ),
        (
            vec!["query", "--format", "parquet"],
            vec!["print table, csv, json or jsonl"],
        ),
    ] {
        lake.run_stdin(args, "SELECT 1;").fails(1, &needles);
    }
    lake.run_stdin(["query"], "\\bogus\n")
        .fails(1, &["unknown shell command", "\\?"]);
    lake.run_stdin(["query"], "SELECT 1 AS a; SELEC 2;")
        .fails(1, &["statement 2", "SQL syntax error"]);
    assert_eq!(lake.fingerprint(&["q/x"]), before);
}

/// The interactive shell, on a pseudo-terminal from `script(1)` (util-linux).
#[test]
fn the_shell_on_a_terminal_edits_continues_lines_and_keeps_history() {
    use std::io::Write;
    let lake = lake_with_history();
    let history = lake.path("history");
    // `exec`: the Ctrl-C typed below reaches the terminal's foreground group; a shell left
    // waiting for tarn (dash) would take it and exit with 130 after tarn's clean exit.
    let command = format!("exec {TARN} --lake {} query", lake.lake.display());
    let mut child = std::process::Command::new("script")
        .current_dir(lake.dir())
        .env_remove("TARN_LAKE")
        .env_remove("TARN_LOG")
        .env("TARN_HISTORY", &history)
        .env("TERM", "dumb")
        .env("SHELL", "/bin/sh")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) runs; it is in util-linux (Debian: bsdutils)");
    let mut stdin = child.stdin.take().expect("stdin");
    let pause = || std::thread::sleep(std::time::Duration::from_millis(400));
    // Lines typed one by one: a statement over two lines, a line cancelled with Ctrl-C,
    // a shell command, a failing statement (the shell goes on), then \q.
    for keys in [
        "SELECT max(id) + 35\r",
        "AS answer FROM \"q/x\";\r",
        "SELECT 'cancelled' AS never\x03",
        "\\d\r",
        "SELECT nope;\r",
        "SELECT 'still here' AS after;\r",
        "\\q\r",
    ] {
        pause();
        stdin.write_all(keys.as_bytes()).expect("type");
        stdin.flush().expect("flush");
    }
    let out = child.wait_with_output().expect("wait");
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tarn SQL shell on"), "{text}");
    assert!(text.contains("42"), "the two-line statement ran: {text}");
    assert!(text.contains("(1 row in"), "{text}");
    assert!(
        text.contains("\"q/x\"") && text.contains("dataset"),
        "\\d: {text}"
    );
    assert!(text.contains("nope"), "the error is shown: {text}");
    assert!(text.contains("still here"), "the shell went on: {text}");
    assert!(
        !text
            .lines()
            .any(|l| l.contains('│') && l.contains("cancelled")),
        "Ctrl-C dropped the line: {text}"
    );
    let saved = std::fs::read_to_string(&history).expect("history saved");
    assert!(saved.contains("AS answer FROM"), "{saved}");
    assert!(saved.contains("still here"), "{saved}");
    assert!(!saved.contains("cancelled"), "{saved}");
}

/// A reader that stops early (`tarn query ... | head`) ends tarn quietly with exit 0, for
/// streamed results and for what commands print line by line.
#[test]
fn a_closed_pipe_ends_tarn_quietly() {
    use std::io::Read;
    let lake = TestLake::new();
    let mut records = String::from("id,name\n");
    for i in 0..5000 {
        records.push_str(&format!("{i:05},record number {i}\n"));
    }
    let records = lake.file("records.csv", records);
    let records = records.to_str().expect("utf-8");
    lake.run([
        "dimension",
        "create",
        "big",
        "--type",
        "geography",
        "--records",
        records,
    ])
    .ok();
    let sql = "SELECT value, value * 2 AS twice FROM generate_series(1, 30000)";
    for command in [
        vec!["query", sql, "--format", "csv"],
        vec!["query", sql, "--format", "table"],
        // printed line by line rather than streamed
        vec!["dimension", "show", "big"],
    ] {
        let (args, mut child) = lake.spawn(command);
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 64];
        stdout.read_exact(&mut first).expect("the first bytes");
        drop(stdout);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // The demo's progress is skipped, not its work: the lake is whole.
    let demo = lake.path("demo");
    let mut child = tarn_cmd(lake.dir())
        .args(["demo", demo.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 8];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("the first bytes");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let projects = tarn_cmd(lake.dir())
        .args([
            "--lake",
            demo.to_str().expect("utf-8"),
            "--json",
            "project",
            "ls",
        ])
        .output()
        .expect("project ls");
    let text = String::from_utf8_lossy(&projects.stdout);
    assert!(text.contains("us_demand"), "{text}");
}
