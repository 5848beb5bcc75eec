//! Input and output formats and the `--json` contract (SPEC §11): the same rows written as
//! CSV, JSON lines, Parquet and Arrow IPC read back identically; every read format round
//! trips, to stdout and to `--output FILE`; `--json` prints one JSON value with the SPEC
//! keys; successful commands print nothing on stderr when it is not a terminal (no progress
//! bar); `tarn demo` builds a lake in seconds and its suggested commands work.

use crate::common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// 300 rows in a shuffled input order, with millisecond instants and groups of rows that
/// share an instant (whose input order the write must keep).
fn input_rows() -> Vec<Row> {
    let mut rng = Rng::new(0xf0_4a75);
    let mut rows: Vec<Row> = (0..300)
        .map(|i| {
            let ts = if i % 10 == 0 {
                BASE_MS + 7_200_000
            } else {
                BASE_MS + i * 1_000_003
            };
            Row::new(ts, 1000 + i)
        })
        .collect();
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    rows
}

fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut out = Vec::new();
    merge(&mut out, rows);
    out
}

/// Panics unless the command succeeded and wrote nothing on stderr (no progress bar, no
/// warnings: stderr is a pipe here, not a terminal).
#[track_caller]
fn silent_ok(run: Run) -> Run {
    let run = run.ok();
    assert!(
        run.stderr.is_empty(),
        "a successful command must leave stderr empty: {}",
        run.describe()
    );
    run
}

fn write_stdin(lake: &TestLake, args: &[&str], input: &[u8]) -> Run {
    let args = lake.args(args);
    let mut child = tarn_cmd(lake.dir())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tarn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("feed stdin");
    Run::from_output(args, child.wait_with_output().expect("wait"))
}

const SCHEMA: &str = r#"[["ts","Timestamp(ns, \"UTC\")"],["id","Int64"],["v","Float64"]]"#;

#[test]
fn the_same_rows_in_four_input_formats_read_back_identically() {
    let lake = TestLake::new();
    let rows = input_rows();
    let expected = csv_text(&sorted(&rows));
    let csv = lake.file("in.csv", csv_text(&rows));
    let jsonl = lake.file("in.jsonl", jsonl_text(&rows));
    silent_ok(lake.run([
        "write",
        "fmt/csv",
        csv.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    silent_ok(lake.run([
        "write",
        "fmt/jsonl",
        jsonl.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    // Parquet and Arrow IPC inputs made by tarn itself from the CSV dataset.
    let parquet = silent_ok(lake.run(["read", "fmt/csv", "--format", "parquet"])).stdout;
    let arrow = silent_ok(lake.run(["read", "fmt/csv", "--format", "arrow"])).stdout;
    assert!(
        parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"),
        "not a Parquet file"
    );
    assert!(arrow.starts_with(b"ARROW1"), "not an Arrow IPC file");
    // Encoded as tarn encodes its own files: LZ4, the time column delta-encoded.
    let meta =
        parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(parquet.clone()))
            .map(|r| parquet::file::reader::FileReader::metadata(&r).clone())
            .expect("a readable Parquet footer");
    for rg in meta.row_groups() {
        for col in rg.columns() {
            assert_eq!(
                col.compression(),
                parquet::basic::Compression::LZ4_RAW,
                "{}",
                col.column_path()
            );
        }
        let ts = rg
            .columns()
            .iter()
            .find(|c| c.column_path().string() == "ts")
            .expect("a ts column");
        assert!(
            ts.encodings()
                .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED),
            "ts encodings {:?}",
            ts.encodings().collect::<Vec<_>>()
        );
    }
    let pq = lake.file("in.parquet", &parquet);
    let ipc = lake.file("in.arrow", &arrow);
    silent_ok(lake.run([
        "write",
        "fmt/parquet",
        pq.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    silent_ok(lake.run([
        "write",
        "fmt/arrow",
        ipc.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    // The format named by --format instead of the extension, and stdin.
    let dat = lake.file("in.dat", jsonl_text(&rows));
    silent_ok(lake.run([
        "write",
        "fmt/dat",
        dat.to_str().expect("utf-8 path"),
        "--format",
        "jsonl",
        "--ordered-on",
        "ts",
    ]));
    silent_ok(write_stdin(
        &lake,
        &[
            "write",
            "fmt/stdin",
            "-",
            "--format",
            "csv",
            "--ordered-on",
            "ts",
        ],
        csv_text(&rows).as_bytes(),
    ));
    silent_ok(write_stdin(
        &lake,
        &[
            "write",
            "fmt/stdin-pq",
            "-",
            "--format",
            "parquet",
            "--ordered-on",
            "ts",
        ],
        &parquet,
    ));

    // Rows, types and ranges must be identical; the column order is checked last so that a
    // wrong order does not hide the rest.
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema literal");
    let sorted_pairs = |v: &Value| {
        let mut pairs: Vec<String> = v
            .as_array()
            .map(|a| a.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        pairs.sort();
        pairs
    };
    let mut order_problems = Vec::new();
    for ds in [
        "fmt/csv",
        "fmt/jsonl",
        "fmt/parquet",
        "fmt/arrow",
        "fmt/dat",
        "fmt/stdin",
        "fmt/stdin-pq",
    ] {
        assert_eq!(
            lake.read_csv(ds, &["--columns", "ts,id,v"]),
            expected,
            "rows of {ds}"
        );
        let info = lake.run(["--json", "info", ds]).ok().json();
        assert_eq!(
            sorted_pairs(&info["schema"]),
            sorted_pairs(&schema),
            "column types of {ds}: {info}"
        );
        if info["schema"] != schema {
            order_problems.push(format!(
                "{ds}: columns {} instead of {schema} (the input's order)",
                info["schema"]
            ));
        }
        if lake.read_csv(ds, &[]) != expected {
            order_problems.push(format!(
                "{ds}: `read --format csv` does not print ts,id,v in the input's column order"
            ));
        }
        assert_eq!(info["rows"], 300, "{ds}: {info}");
        assert_eq!(info["min"], rfc3339_ms(BASE_MS + 1_000_003), "{ds}: {info}");
        assert_eq!(
            info["max"],
            rfc3339_ms(BASE_MS + 299 * 1_000_003),
            "{ds}: {info}"
        );
    }

    // Several inputs of different formats make one write and one version; the second
    // input's rows follow the first's at equal instants.
    let a: Vec<Row> = (0..5)
        .map(|k| Row::new(BASE_MS + k * 1000, 1 + k))
        .collect();
    let b: Vec<Row> = (0..5)
        .map(|k| Row::new(BASE_MS + k * 1000, 11 + k))
        .collect();
    let fa = lake.file("a.csv", csv_text(&a));
    let fb = lake.file("b.jsonl", jsonl_text(&b));
    silent_ok(lake.run([
        "write",
        "fmt/multi",
        fa.to_str().expect("utf-8 path"),
        fb.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    assert_eq!(versions(&lake.log("fmt/multi")), vec![1]);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    assert_eq!(lake.read_csv("fmt/multi", &[]), csv_text(&sorted(&both)));
    assert!(
        order_problems.is_empty(),
        "a dataset must keep its input's column order:\n{}",
        order_problems.join("\n")
    );
}

#[test]
fn read_formats_to_stdout_round_trip() {
    let lake = TestLake::new();
    let rows = input_rows();
    let model = sorted(&rows);
    let csv = lake.file("in.csv", csv_text(&rows));
    silent_ok(lake.run([
        "write",
        "src",
        csv.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));

    let out_csv = silent_ok(lake.run(["read", "src", "--format", "csv"])).stdout();
    assert_eq!(
        out_csv,
        csv_text(&model),
        "csv has a header row and every row in order"
    );
    let out_jsonl = silent_ok(lake.run(["read", "src", "--format", "jsonl"])).stdout();
    assert_eq!(out_jsonl, jsonl_text(&model));
    let out_json = silent_ok(lake.run(["read", "src", "--format", "json"])).json();
    let from_lines: Vec<Value> = out_jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        out_json,
        Value::Array(from_lines.clone()),
        "json is the array of the jsonl objects"
    );
    // --json on read means --format json.
    assert_eq!(
        silent_ok(lake.run(["--json", "read", "src"])).json(),
        Value::Array(from_lines)
    );
    // The table format shows every row.
    let table = silent_ok(lake.run(["read", "src", "--format", "table"])).stdout();
    assert_eq!(
        table.matches(&rfc3339_ms(model[5].ts_ms)).count(),
        1,
        "{table}"
    );
    assert!(table.contains("│ ts"), "{table}");

    for (format, ds) in [("parquet", "back/parquet"), ("arrow", "back/arrow")] {
        let bytes = silent_ok(lake.run(["read", "src", "--format", format])).stdout;
        let f = lake.file(&format!("out.{format}"), &bytes);
        silent_ok(lake.run([
            "write",
            ds,
            f.to_str().expect("utf-8 path"),
            "--ordered-on",
            "ts",
        ]));
        assert_eq!(
            lake.read_csv(ds, &[]),
            csv_text(&model),
            "{format} round trip"
        );
    }

    // Ranges and projections: [start, end) in the ordered_on type, columns in asked order.
    let (start, end) = (model[40].ts_ms, model[120].ts_ms);
    let want: Vec<&Row> = model
        .iter()
        .filter(|r| r.ts_ms >= start && r.ts_ms < end)
        .collect();
    let got = silent_ok(lake.run([
        "read",
        "src",
        "--start",
        &rfc3339_ms(start),
        "--end",
        &rfc3339_ms(end),
        "--columns",
        "v,id",
        "--format",
        "csv",
    ]))
    .stdout();
    let mut text = String::from("v,id\n");
    for r in &want {
        text.push_str(&format!("{},{}\n", r.v, r.id));
    }
    assert_eq!(got, text);
    // A date bound means midnight UTC.
    let day = silent_ok(lake.run([
        "read",
        "src",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-03",
        "--format",
        "csv",
        "--columns",
        "id",
    ]))
    .stdout();
    let in_day: Vec<Row> = model
        .iter()
        .copied()
        .filter(|r| r.ts_ms >= BASE_MS + 86_400_000 && r.ts_ms < BASE_MS + 2 * 86_400_000)
        .collect();
    assert!(
        in_day.len() > 50 && in_day.len() < 250,
        "the day holds some of the rows"
    );
    assert_eq!(day, id_csv(&in_day));
}

#[test]
fn read_output_files_round_trip() {
    let lake = TestLake::new();
    let rows = input_rows();
    let model = sorted(&rows);
    let csv = lake.file("in.csv", csv_text(&rows));
    silent_ok(lake.run([
        "write",
        "src",
        csv.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    let mut failures = Vec::new();
    for format in ["csv", "json", "jsonl", "parquet", "arrow"] {
        let path = lake.path(&format!("out.{format}"));
        let run = lake.run([
            "read",
            "src",
            "--format",
            format,
            "--output",
            path.to_str().expect("utf-8 path"),
        ]);
        if run.code != Some(0) || !run.stdout.is_empty() || !run.stderr.is_empty() {
            failures.push(format!(
                "read --format {format} --output FILE: {}",
                run.describe()
            ));
            continue;
        }
        let bytes = std::fs::read(&path).expect("output file exists");
        match format {
            "csv" => assert_eq!(
                String::from_utf8(bytes).expect("UTF-8 output"),
                csv_text(&model)
            ),
            "jsonl" => assert_eq!(
                String::from_utf8(bytes).expect("UTF-8 output"),
                jsonl_text(&model)
            ),
            "json" => {
                let v: Value = serde_json::from_slice(&bytes).expect("json output");
                let want: Vec<Value> = model
                    .iter()
                    .map(|r| serde_json::from_str(&r.json()).expect("a JSON row"))
                    .collect();
                assert_eq!(v, Value::Array(want), "every row, in order");
            }
            _ => {
                let ds = format!("back/{format}");
                silent_ok(lake.run([
                    "write",
                    &ds,
                    path.to_str().expect("utf-8 path"),
                    "--ordered-on",
                    "ts",
                ]));
                assert_eq!(
                    lake.read_csv(&ds, &[]),
                    csv_text(&model),
                    "{format} file round trip"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `read --output FILE` and `query --output FILE` without `--format` take the format from
/// the file's extension, the same way (the file equals the one `--format` writes), and
/// refuse an extension they do not know with the same message.
#[test]
fn read_and_query_infer_the_output_format_from_the_extension() {
    let lake = TestLake::new();
    let rows = input_rows();
    let csv = lake.file("in.csv", csv_text(&rows));
    silent_ok(lake.run([
        "write",
        "src",
        csv.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]));
    let commands: [(&str, Vec<&str>); 2] = [
        ("read", vec!["read", "src"]),
        ("query", vec!["query", "SELECT * FROM src ORDER BY ts"]),
    ];
    let extensions = [
        ("csv", "csv"),
        ("CSV", "csv"),
        ("json", "json"),
        ("jsonl", "jsonl"),
        ("ndjson", "jsonl"),
        ("parquet", "parquet"),
        ("arrow", "arrow"),
        ("ipc", "arrow"),
        ("feather", "arrow"),
    ];
    let mut failures = Vec::new();
    for (name, command) in &commands {
        for (ext, format) in extensions {
            let inferred = lake.path(&format!("{name}-inferred.{ext}"));
            let explicit = lake.path(&format!("{name}-explicit.{ext}"));
            let mut args = command.clone();
            args.extend(["--output", inferred.to_str().expect("utf-8 path")]);
            let run = lake.run(&args);
            if run.code != Some(0) || !run.stdout.is_empty() || !run.stderr.is_empty() {
                failures.push(format!("{name} --output *.{ext}: {}", run.describe()));
                continue;
            }
            let mut args = command.clone();
            args.extend([
                "--format",
                format,
                "--output",
                explicit.to_str().expect("utf-8 path"),
            ]);
            silent_ok(lake.run(&args));
            let (got, want) = (
                std::fs::read(&inferred).expect("inferred"),
                std::fs::read(&explicit).expect("explicit"),
            );
            if got != want {
                failures.push(format!("{name} --output *.{ext} is not {format}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // What the inferred files hold: the rows, whatever the command.
    let model = sorted(&rows);
    let text = |name: &str| std::fs::read_to_string(lake.path(name)).expect("output");
    assert_eq!(text("read-inferred.csv"), csv_text(&model));
    assert_eq!(text("read-inferred.ndjson"), jsonl_text(&model));
    for name in ["read", "query"] {
        let path = lake.path(&format!("{name}-inferred.feather"));
        let ds = format!("back/{name}");
        silent_ok(lake.run([
            "write",
            &ds,
            path.to_str().expect("utf-8 path"),
            "--ordered-on",
            "ts",
        ]));
        assert_eq!(lake.read_csv(&ds, &[]), csv_text(&model), "{name} to Arrow");
    }

    // An unknown extension: the same error from both commands, and no file.
    let mut messages = Vec::new();
    for (name, command) in &commands {
        let path = lake.path(&format!("{name}.txt"));
        let mut args = command.clone();
        args.extend(["--output", path.to_str().expect("utf-8 path")]);
        let run = lake.run(&args);
        run.fails(
            1,
            &[
                "cannot tell the format of",
                ".txt",
                "from its extension",
                "--format",
            ],
        );
        assert!(!path.exists(), "{name} created {}", path.display());
        messages.push(run.stderr.replace(&format!("{name}.txt"), "OUT.txt"));
    }
    assert_eq!(messages[0], messages[1], "read and query say the same");
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
fn has_keys(v: &Value, want: &[&str]) {
    let got = keys(v);
    for k in want {
        assert!(got.contains(k), "missing key {k:?} in {v:#}");
    }
}

#[test]
fn json_flag_prints_the_spec_keys() {
    let lake = TestLake::uninitialized(Backend::Local).expect("a local place");
    let lake_dir = lake.lake.clone();
    // init
    let init = Run::from_output(
        vec![],
        tarn_cmd(lake.dir())
            .args(["--json", "init"])
            .arg(&lake_dir)
            .output()
            .expect("init"),
    );
    let init = silent_ok(init);
    let v = init.json();
    assert!(v.is_object(), "{v}");
    assert_eq!(v["created"], true, "{v}");
    let again = silent_ok(Run::from_output(
        vec![],
        tarn_cmd(lake.dir())
            .args(["--json", "init"])
            .arg(&lake_dir)
            .output()
            .expect("init"),
    ));
    assert_eq!(
        again.json()["created"],
        false,
        "init of an existing lake says so: {}",
        again.describe()
    );

    // write: creation, then a merge with metadata, then a no-op.
    let rows = input_rows();
    let f = lake.file("in.csv", csv_text(&rows[..200]));
    let w = silent_ok(lake.run([
        "--json",
        "write",
        "tarn://j/x",
        f.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
        "--message",
        "first",
        "--meta",
        "unit=W",
    ]))
    .json();
    has_keys(&w, &["dataset", "branch", "version", "operation", "rows"]);
    assert_eq!(
        (
            w["version"].as_u64(),
            w["rows"].as_u64(),
            w["dataset"].as_str()
        ),
        (Some(1), Some(200), Some("j/x")),
        "{w}"
    );
    let f2 = lake.file("in2.csv", csv_text(&rows[200..]));
    let w2 = silent_ok(lake.run([
        "--json",
        "write",
        "j/x",
        f2.to_str().expect("utf-8 path"),
        "--message",
        "second",
        "--meta",
        "qc=ok",
    ]))
    .json();
    assert_eq!(
        (w2["version"].as_u64(), w2["rows"].as_u64()),
        (Some(2), Some(300)),
        "{w2}"
    );
    let empty = lake.file("empty.csv", "ts,id,v\n");
    let noop = silent_ok(lake.run([
        "--json",
        "write",
        "j/x",
        empty.to_str().expect("utf-8 path"),
    ]))
    .json();
    assert_eq!(
        noop["version"],
        Value::Null,
        "a write of zero rows creates no version: {noop}"
    );
    assert_eq!(
        versions(&lake.log("j/x")),
        vec![2, 1],
        "no version for the empty write"
    );
    // ls
    let ls = silent_ok(lake.run(["--json", "ls"])).json();
    let list = ls
        .as_array()
        .unwrap_or_else(|| panic!("ls --json is not an array: {ls}"));
    assert_eq!(list.len(), 1, "{ls}");
    has_keys(&list[0], &["name", "version", "rows"]);
    assert_eq!(
        (
            list[0]["name"].as_str(),
            list[0]["version"].as_u64(),
            list[0]["rows"].as_u64()
        ),
        (Some("j/x"), Some(2), Some(300))
    );
    let under = silent_ok(lake.run(["--json", "ls", "nope"])).json();
    assert_eq!(
        under,
        json!([]),
        "ls of a prefix with no dataset is an empty list"
    );

    // info
    let info = silent_ok(lake.run(["--json", "info", "tarn://j/x"])).json();
    has_keys(
        &info,
        &[
            "name",
            "schema",
            "ordered_on",
            "duplicates_on",
            "version",
            "rows",
            "files",
            "row_groups",
            "min",
            "max",
            "metadata",
        ],
    );
    assert_eq!(info["name"], "j/x");
    assert_eq!(
        info["schema"],
        serde_json::from_str::<Value>(SCHEMA).expect("schema literal")
    );
    assert_eq!(info["ordered_on"], "ts");
    assert_eq!(info["duplicates_on"], Value::Null);
    // The default trailing rule is the size-tiered tail (SPEC §3.5, docs/design/0007).
    assert_eq!(
        (&info["coalescing"], &info["max_off_target"]),
        (&json!("tiered"), &Value::Null),
        "{info}"
    );
    assert_eq!(
        (info["version"].as_u64(), info["rows"].as_u64()),
        (Some(2), Some(300))
    );
    assert!(
        info["files"].as_u64() >= Some(1) && info["row_groups"].as_u64() >= Some(1),
        "{info}"
    );
    let model = sorted(&rows);
    assert_eq!(info["min"], rfc3339_ms(model[0].ts_ms));
    assert_eq!(info["max"], rfc3339_ms(model[299].ts_ms));
    assert_eq!(info["metadata"], json!({"unit": "W", "qc": "ok"}));
    let info_v1 = silent_ok(lake.run(["--json", "info", "tarn://j/x:v1"])).json();
    assert_eq!(
        (info_v1["version"].as_u64(), info_v1["rows"].as_u64()),
        (Some(1), Some(200))
    );
    assert_eq!(
        info_v1["metadata"],
        json!({"unit": "W"}),
        "metadata is part of the version"
    );

    // delete-range and compact print their outcome.
    let del = silent_ok(lake.run([
        "--json",
        "delete-range",
        "j/x",
        "--start",
        &rfc3339_ms(model[0].ts_ms),
        "--end",
        &rfc3339_ms(model[10].ts_ms),
    ]))
    .json();
    assert_eq!(
        (del["version"].as_u64(), del["operation"].as_str()),
        (Some(3), Some("delete-range")),
        "{del}"
    );
    let before_compact = lake.read_csv("j/x", &[]);
    let compact = silent_ok(lake.run(["--json", "compact", "j/x", "--message", "tidy"])).json();
    assert_eq!(
        (compact["version"].as_u64(), compact["operation"].as_str()),
        (Some(4), Some("compact")),
        "{compact}"
    );
    assert_eq!(
        lake.read_csv("j/x", &[]),
        before_compact,
        "compaction keeps the rows"
    );

    // log
    let log = silent_ok(lake.run(["--json", "log", "j/x"])).json();
    let entries = log
        .as_array()
        .unwrap_or_else(|| panic!("log --json is not an array: {log}"));
    assert_eq!(versions(entries), vec![4, 3, 2, 1], "newest first");
    for e in entries {
        has_keys(
            e,
            &[
                "version",
                "commit_id",
                "timestamp",
                "operation",
                "rows",
                "message",
                "upstreams",
            ],
        );
        assert!(e["upstreams"].is_array(), "{e}");
        assert!(
            e["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() >= 20),
            "RFC 3339 UTC: {e}"
        );
    }
    let ops: Vec<&str> = entries
        .iter()
        .map(|e| e["operation"].as_str().expect("operation"))
        .collect();
    assert_eq!(ops, ["compact", "delete-range", "write", "write"]);
    let rows_per_version: Vec<u64> = entries
        .iter()
        .map(|e| e["rows"].as_u64().expect("rows"))
        .collect();
    let deleted = model.iter().filter(|r| r.ts_ms < model[10].ts_ms).count() as u64;
    assert_eq!(rows_per_version, [300 - deleted, 300 - deleted, 300, 200]);
    assert_eq!(entries[3]["message"], "first");
    assert_eq!(entries[2]["message"], "second");
    assert_eq!(entries[0]["message"], "tidy");
    let limited = silent_ok(lake.run(["--json", "log", "j/x", "--limit", "2"])).json();
    assert_eq!(
        versions(limited.as_array().expect("an array")),
        vec![4, 3],
        "--limit keeps the newest"
    );

    // vacuum
    for args in [
        vec!["--json", "vacuum", "--dry-run"],
        vec!["--json", "vacuum"],
    ] {
        let vac = silent_ok(lake.run(&args)).json();
        has_keys(
            &vac,
            &[
                "dry_run",
                "expired_versions",
                "unreferenced_files",
                "orphan_files",
                "bytes_freed",
            ],
        );
        assert_eq!(vac["dry_run"], args.contains(&"--dry-run"), "{vac}");
        assert_eq!(
            vac["expired_versions"],
            json!([]),
            "all versions are kept by default: {vac}"
        );
    }
    // Every version still reads after vacuum.
    for v in 1..=4 {
        lake.run(["read", &format!("j/x:v{v}"), "--format", "csv"])
            .ok();
    }
    // Metadata alone, without an input file: one version, same rows.
    let before = silent_ok(lake.run(["--json", "info", "j/x"])).json();
    let meta = silent_ok(lake.run([
        "--json",
        "write",
        "j/x",
        "--meta",
        "owner=ana",
        "--unset-meta",
        "qc",
    ]))
    .json();
    assert_eq!(
        (meta["version"].as_u64(), meta["rows"].as_u64()),
        (
            before["version"].as_u64().map(|v| v + 1),
            before["rows"].as_u64()
        ),
        "{meta}"
    );
    let info = silent_ok(lake.run(["--json", "info", "j/x"])).json();
    assert_eq!(info["metadata"]["owner"], "ana", "{info}");
    assert_eq!(info["metadata"]["qc"], Value::Null, "qc was unset: {info}");
    let meta_noop = silent_ok(lake.run(["--json", "write", "j/x", "--meta", "owner=ana"])).json();
    assert_eq!(
        meta_noop["version"],
        Value::Null,
        "same metadata again changes nothing: {meta_noop}"
    );
}

/// `--max-off-target N` is stored with the dataset and shown by `info`, in JSON and text;
/// without it `info` names the size-tiered tail.
#[test]
fn info_names_the_trailing_rule() {
    let lake = TestLake::new();
    let rows: Vec<Row> = (0..10).map(|i| Row::new(BASE_MS + i * 1_000, i)).collect();
    let input = lake.file("in.csv", csv_text(&rows));
    let input = input.to_str().expect("utf-8 path");
    for (uri, extra, coalescing, max, text) in [
        (
            "t/tiered",
            None,
            "tiered",
            Value::Null,
            "tail:         size-tiered (fan-in 8)",
        ),
        (
            "t/oups",
            Some("2"),
            "max_off_target",
            json!(2),
            "tail:         merged past 2 off target (--max-off-target)",
        ),
    ] {
        let mut args = vec![
            "write",
            uri,
            input,
            "--ordered-on",
            "ts",
            "--row-group-size",
            "4",
        ];
        if let Some(n) = extra {
            args.extend(["--max-off-target", n]);
        }
        silent_ok(lake.run(args));
        let info = silent_ok(lake.run(["--json", "info", uri])).json();
        assert_eq!(
            (&info["coalescing"], &info["max_off_target"]),
            (&json!(coalescing), &max),
            "{info}"
        );
        let human = silent_ok(lake.run(["info", uri])).stdout();
        assert!(human.contains(text), "{human}");
    }
}

#[test]
fn human_output_and_no_progress_bar_when_not_a_terminal() {
    let lake = TestLake::new();
    let rows = input_rows();
    let f = lake.file("in.csv", csv_text(&rows));
    let w = silent_ok(lake.run([
        "write",
        "h/x",
        f.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
    ]))
    .stdout();
    assert!(
        w.contains("tarn://h/x") && w.contains("v1") && w.contains("300 rows"),
        "{w}"
    );
    for args in [
        vec!["ls"],
        vec!["info", "h/x"],
        vec!["log", "h/x"],
        vec!["read", "h/x"],
        vec!["compact", "h/x"],
    ] {
        let out = silent_ok(lake.run(&args)).stdout();
        assert!(!out.is_empty(), "{args:?} printed nothing");
        assert!(
            !out.contains('\r') && !out.contains('\u{1b}'),
            "{args:?}: terminal control characters in piped output: {out:?}"
        );
    }
    // vacuum reports its summary on stderr, but never a spinner.
    let vac = lake.run(["vacuum"]).ok();
    assert!(
        !vac.stderr.contains('\r') && !vac.stderr.contains('\u{1b}'),
        "{}",
        vac.describe()
    );
    // --quiet silences the write report.
    let f2 = lake.file("more.csv", csv_text(&[Row::new(BASE_MS + 999_999_999, 5)]));
    let q = silent_ok(lake.run(["-q", "write", "h/x", f2.to_str().expect("utf-8 path")]));
    assert!(q.stdout.is_empty(), "{}", q.describe());
}

#[test]
fn demo_builds_in_seconds_and_its_suggestions_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let demo = Run::from_output(
        vec![],
        tarn_cmd(tmp.path())
            .args(["demo", "demo"])
            .output()
            .expect("demo"),
    );
    let elapsed = started.elapsed();
    let demo = silent_ok(demo);
    assert!(
        elapsed < Duration::from_secs(30),
        "tarn demo took {elapsed:?}"
    );
    let text = demo.stdout();
    let suggestions: Vec<Vec<String>> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("tarn "))
        .map(shell_words)
        .collect();
    assert!(suggestions.len() >= 5, "demo suggests commands: {text}");
    let mut outputs = Vec::new();
    for args in &suggestions {
        let run = Run::from_output(
            args.iter().map(Into::into).collect(),
            tarn_cmd(tmp.path())
                .args(args)
                .output()
                .expect("run suggestion"),
        )
        .ok();
        if args.iter().any(|a| a == "vacuum") {
            assert!(
                run.stderr.contains("would delete"),
                "vacuum --dry-run reports what it would do: {}",
                run.describe()
            );
        } else {
            assert!(
                !run.stdout.is_empty(),
                "suggested command printed nothing: {}",
                run.describe()
            );
            assert!(run.stderr.is_empty(), "{}", run.describe());
        }
        outputs.push((args.join(" "), run.stdout()));
    }
    // The correction made at v3 shows in the head, not at v2.
    let head = outputs
        .iter()
        .find(|(a, _)| a.contains("read tarn://weather/payerne/1min --start"));
    let v2 = outputs
        .iter()
        .find(|(a, _)| a.contains("read tarn://weather/payerne/1min:v2"));
    if let (Some((_, head)), Some((_, v2))) = (head, v2) {
        assert_ne!(
            head, v2,
            "the head and v2 must differ in the corrected hour"
        );
    }
    let log = Run::from_output(
        vec![],
        tarn_cmd(tmp.path())
            .args(["--lake", "demo", "--json", "log", "weather/payerne/1min"])
            .output()
            .expect("log"),
    )
    .ok()
    .json();
    assert_eq!(
        versions(log.as_array().expect("an array")),
        vec![5, 4, 3, 2, 1]
    );

    // --json: one JSON document describing the writes.
    let json_demo = Run::from_output(
        vec![],
        tarn_cmd(tmp.path())
            .args(["--json", "demo", "demo2"])
            .output()
            .expect("demo"),
    );
    let v = silent_ok(json_demo).json();
    assert_eq!(v["writes"].as_array().map(Vec::len), Some(9), "{v}");
    assert_eq!(v["tags"][0]["name"], "qc-passed", "{v}");
    assert_eq!(v["branches"][0]["name"], "review", "{v}");
    assert_eq!(v["registry"]["project"], "us_demand", "{v}");
    assert_eq!(
        v["registry"]["registered"], "tarn://demand/carolinas/1h:v1",
        "{v}"
    );
    // 146 counties of NC and SC, 3 sectors, 168 hours.
    assert_eq!(v["registry"]["rows"], 146 * 3 * 168, "{v}");
}

/// A suggested command line split as a shell would: on blanks, outside single quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}
