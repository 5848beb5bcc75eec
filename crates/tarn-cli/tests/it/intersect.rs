//! `tarn intersect` (SPEC §11): the exact `--json` lines (one object per step, chunks keyed
//! by the URIs as given), warm-up rows, row and frequency steps, the table output, and every
//! bad input with its exit code (2 for usage errors, 1 for the others) and message.

use crate::common::*;

/// A lake with `t/a` (k = 1..=6, row groups of 2 rows) and `t/b` (k = 2, 2, 5, 9, row groups
/// of 3 rows), both ordered on an integer `k`, and `ts/x` ordered on a timestamp.
fn fixture() -> TestLake {
    let lake = TestLake::new();
    let a = lake.file("a.csv", "k,v\n1,10\n2,20\n3,30\n4,40\n5,50\n6,60\n");
    let b = lake.file("b.csv", "k,v\n2,1\n2,2\n5,3\n9,4\n");
    for (uri, file, size) in [("t/a", &a, "2"), ("t/b", &b, "3")] {
        lake.run([
            "write",
            uri,
            file.to_str().expect("utf-8"),
            "--ordered-on",
            "k",
            "--row-group-size",
            size,
        ])
        .ok();
    }
    let x = lake.file("x.csv", csv_text(&[Row::new(BASE_MS, 0)]));
    lake.run([
        "write",
        "ts/x",
        x.to_str().expect("utf-8"),
        "--ordered-on",
        "ts",
    ])
    .ok();
    lake
}

/// Stdout of a successful run, line by line.
fn lines(run: Run) -> Vec<String> {
    let run = run.ok();
    assert!(run.stderr.is_empty(), "{}", run.describe());
    run.stdout().lines().map(str::to_string).collect()
}

#[test]
fn json_lines_follow_the_row_group_boundaries() {
    let lake = fixture();
    // Cut points: a's mins 1, 3, 5 and b's 2, 9. The URIs are keys exactly as given.
    assert_eq!(
        lines(lake.run(["--json", "intersect", "tarn://t/a", "t/b"])),
        [
            r#"{"step":0,"start":1,"end":2,"chunks":{"tarn://t/a":{"rows":1,"first":1,"last":1},"t/b":{"rows":0,"first":null,"last":null}}}"#,
            r#"{"step":1,"start":2,"end":3,"chunks":{"tarn://t/a":{"rows":1,"first":2,"last":2},"t/b":{"rows":2,"first":2,"last":2}}}"#,
            r#"{"step":2,"start":3,"end":5,"chunks":{"tarn://t/a":{"rows":2,"first":3,"last":4},"t/b":{"rows":0,"first":null,"last":null}}}"#,
            r#"{"step":3,"start":5,"end":9,"chunks":{"tarn://t/a":{"rows":2,"first":5,"last":6},"t/b":{"rows":1,"first":5,"last":5}}}"#,
            r#"{"step":4,"start":9,"end":null,"chunks":{"tarn://t/a":{"rows":0,"first":null,"last":null},"t/b":{"rows":1,"first":9,"last":9}}}"#,
        ]
    );
    // The range and a projection that leaves ordered_on out (first/last still shown).
    assert_eq!(
        lines(lake.run([
            "--json",
            "intersect",
            "t/a",
            "t/b",
            "--start",
            "2",
            "--end",
            "6",
            "--columns",
            "v"
        ])),
        [
            r#"{"step":0,"start":2,"end":3,"chunks":{"t/a":{"rows":1,"first":2,"last":2},"t/b":{"rows":2,"first":2,"last":2}}}"#,
            r#"{"step":1,"start":3,"end":5,"chunks":{"t/a":{"rows":2,"first":3,"last":4},"t/b":{"rows":0,"first":null,"last":null}}}"#,
            r#"{"step":2,"start":5,"end":6,"chunks":{"t/a":{"rows":1,"first":5,"last":5},"t/b":{"rows":1,"first":5,"last":5}}}"#,
        ]
    );
}

#[test]
fn n_prev_prepends_warm_up_rows_to_step_zero() {
    let lake = fixture();
    // a gets 1, 2 before 3; b gets its last row before 3 (the second k=2).
    assert_eq!(
        lines(lake.run([
            "--json",
            "intersect",
            "t/a",
            "t/b",
            "--start",
            "3",
            "--n-prev",
            "2,1"
        ])),
        [
            r#"{"step":0,"start":3,"end":5,"chunks":{"t/a":{"rows":4,"first":1,"last":4},"t/b":{"rows":1,"first":2,"last":2}}}"#,
            r#"{"step":1,"start":5,"end":9,"chunks":{"t/a":{"rows":2,"first":5,"last":6},"t/b":{"rows":1,"first":5,"last":5}}}"#,
            r#"{"step":2,"start":9,"end":null,"chunks":{"t/a":{"rows":0,"first":null,"last":null},"t/b":{"rows":1,"first":9,"last":9}}}"#,
        ]
    );
    // One value applies to every dataset; more than there is takes what there is.
    assert_eq!(
        lines(lake.run([
            "--json",
            "intersect",
            "t/a",
            "t/b",
            "--start",
            "5",
            "--end",
            "9",
            "--n-prev",
            "10"
        ])),
        [
            r#"{"step":0,"start":5,"end":9,"chunks":{"t/a":{"rows":6,"first":1,"last":6},"t/b":{"rows":3,"first":2,"last":5}}}"#,
        ]
    );
}

#[test]
fn fixed_steps_of_rows_and_of_time() {
    let lake = fixture();
    // At most 3 rows of each dataset: the first step ends before a's 4th row (k=4).
    assert_eq!(
        lines(lake.run(["--json", "intersect", "t/a", "t/b", "--step", "3"])),
        [
            r#"{"step":0,"start":null,"end":4,"chunks":{"t/a":{"rows":3,"first":1,"last":3},"t/b":{"rows":2,"first":2,"last":2}}}"#,
            r#"{"step":1,"start":4,"end":null,"chunks":{"t/a":{"rows":3,"first":4,"last":6},"t/b":{"rows":2,"first":5,"last":9}}}"#,
        ]
    );

    // Hourly steps on timestamps: the hour from 02:00 holds no row and is skipped.
    let min = 60_000;
    let p = lake.file(
        "p.csv",
        csv_text(&[
            Row::new(BASE_MS, 1),
            Row::new(BASE_MS + 20 * min, 2),
            Row::new(BASE_MS + 40 * min, 3),
            Row::new(BASE_MS + 70 * min, 4),
            Row::new(BASE_MS + 185 * min, 5),
        ]),
    );
    let q = lake.file(
        "q.csv",
        csv_text(&[
            Row::new(BASE_MS + 30 * min, 6),
            Row::new(BASE_MS + 190 * min, 7),
        ]),
    );
    for (uri, file) in [("ts/p", &p), ("ts/q", &q)] {
        lake.run([
            "write",
            uri,
            file.to_str().expect("utf-8"),
            "--ordered-on",
            "ts",
        ])
        .ok();
    }
    assert_eq!(
        lines(lake.run(["--json", "intersect", "ts/p", "ts/q", "--step", "1h"])),
        [
            r#"{"step":0,"start":"2024-01-01T00:00:00Z","end":"2024-01-01T01:00:00Z","chunks":{"ts/p":{"rows":3,"first":"2024-01-01T00:00:00Z","last":"2024-01-01T00:40:00Z"},"ts/q":{"rows":1,"first":"2024-01-01T00:30:00Z","last":"2024-01-01T00:30:00Z"}}}"#,
            r#"{"step":1,"start":"2024-01-01T01:00:00Z","end":"2024-01-01T02:00:00Z","chunks":{"ts/p":{"rows":1,"first":"2024-01-01T01:10:00Z","last":"2024-01-01T01:10:00Z"},"ts/q":{"rows":0,"first":null,"last":null}}}"#,
            r#"{"step":2,"start":"2024-01-01T03:00:00Z","end":"2024-01-01T04:00:00Z","chunks":{"ts/p":{"rows":1,"first":"2024-01-01T03:05:00Z","last":"2024-01-01T03:05:00Z"},"ts/q":{"rows":1,"first":"2024-01-01T03:10:00Z","last":"2024-01-01T03:10:00Z"}}}"#,
        ]
    );
    // Bounds in RFC 3339 that cut periods, with a warm-up row.
    assert_eq!(
        lines(lake.run([
            "--json",
            "intersect",
            "ts/p",
            "--step",
            "1h",
            "--start",
            "2024-01-01T00:30:00Z",
            "--end",
            "2024-01-01T01:30:00Z",
            "--n-prev",
            "1",
        ])),
        [
            r#"{"step":0,"start":"2024-01-01T00:30:00Z","end":"2024-01-01T01:00:00Z","chunks":{"ts/p":{"rows":2,"first":"2024-01-01T00:20:00Z","last":"2024-01-01T00:40:00Z"}}}"#,
            r#"{"step":1,"start":"2024-01-01T01:00:00Z","end":"2024-01-01T01:30:00Z","chunks":{"ts/p":{"rows":1,"first":"2024-01-01T01:10:00Z","last":"2024-01-01T01:10:00Z"}}}"#,
        ]
    );
}

#[test]
fn table_shows_one_row_per_step() {
    let lake = fixture();
    let out = lake
        .run(["intersect", "t/a", "t/b", "--step", "3"])
        .ok()
        .stdout();
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split('┆')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            ["step", "start", "end", "t/a rows", "t/b rows"],
            ["0", "-", "4", "3", "2"],
            ["1", "4", "-", "3", "2"],
        ],
        "{out}"
    );
    // Nothing in the range: no table, a note on stderr, success.
    let run = lake.run(["intersect", "t/a", "--start", "100"]).ok();
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert!(run.stderr.contains("no step"), "{}", run.describe());
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let lake = fixture();
    let cases: &[(&str, &[&str], i32, &[&str])] = &[
        (
            "unknown dataset",
            &["intersect", "t/a", "t/nosuch"],
            1,
            &["t/nosuch", "does not exist"],
        ),
        (
            "--n-prev count",
            &["intersect", "t/a", "t/b", "--n-prev", "1,2,3"],
            2,
            &["--n-prev has 3 values for 2 URIs"],
        ),
        (
            "--n-prev not a number",
            &["intersect", "t/a", "--n-prev", "x"],
            2,
            &["'x'", "--n-prev"],
        ),
        (
            "bad step",
            &["intersect", "t/a", "--step", "3x"],
            2,
            &["3x", "--step", "unknown unit"],
        ),
        (
            "zero-row step",
            &["intersect", "t/a", "--step", "0"],
            2,
            &["--step", "at least 1 row"],
        ),
        (
            "start = end",
            &["intersect", "t/a", "--start", "5", "--end", "5"],
            1,
            &["bad range", "--start 5", "--end 5"],
        ),
        (
            "start > end",
            &["intersect", "t/a", "--start", "6", "--end", "2"],
            1,
            &["bad range"],
        ),
        (
            "unparseable start",
            &["intersect", "t/a", "--start", "soon"],
            1,
            &["soon", "integer"],
        ),
        (
            "frequency on integers",
            &["intersect", "t/a", "--step", "1h"],
            1,
            &["1h", "not a timestamp"],
        ),
        (
            "different ordered_on types",
            &["intersect", "t/a", "ts/x"],
            1,
            &["different types", "t/a", "ts/x"],
        ),
        (
            "unknown column",
            &["intersect", "t/a", "--columns", "nosuch"],
            1,
            &["nosuch"],
        ),
        (
            "same URI twice",
            &["intersect", "t/a", "t/a"],
            2,
            &["t/a is given twice"],
        ),
        ("no URI", &["intersect"], 2, &["<URIS>"]),
    ];
    let before = lake.fingerprint(&["t/a", "t/b", "ts/x"]);
    let mut failures = Vec::new();
    for (what, args, code, needles) in cases {
        for json in [false, true] {
            let mut all = Vec::new();
            if json {
                all.push("--json");
            }
            all.extend_from_slice(args);
            let run = lake.run(&all);
            let lower = run.stderr.to_lowercase();
            let mut wrong = Vec::new();
            if run.code != Some(*code) {
                wrong.push(format!("exit code {:?}, expected {code}", run.code));
            }
            if !run.stderr.starts_with("error: ") {
                wrong.push("stderr does not start with `error: `".into());
            }
            for n in *needles {
                if !lower.contains(&n.to_lowercase()) {
                    wrong.push(format!("stderr does not mention {n:?}"));
                }
            }
            if !run.stdout.is_empty() {
                wrong.push("printed on stdout".into());
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{what} (--json: {json}): {}\n{}",
                    wrong.join("; "),
                    run.describe()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        2 * cases.len(),
        failures.join("\n\n")
    );
    assert_eq!(lake.fingerprint(&["t/a", "t/b", "ts/x"]), before);
}
