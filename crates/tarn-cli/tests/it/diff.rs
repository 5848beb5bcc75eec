//! `tarn diff <URI_A> <URI_B>` (SPEC §11): the exact `--json` report of a small history
//! (an append, then a delete-range), the human summary, and bad inputs (unknown dataset or
//! version, malformed URI, `ordered_on` of another kind, a missing argument) with their
//! message and exit code, leaving the lake unchanged.

use crate::common::*;
use serde_json::json;

const DS: &str = "tarn://m/x";
const HOUR_MS: i64 = 3_600_000;

/// `m/x`: v1 rows at hours 0..10 (row groups of 4: [0-3] [4-7] [8-9]); v2 appends hours
/// 10..13 (the two short trailing row groups are coalesced: [8-11] [12]); v3 deletes
/// [02:00, 04:00), which rewrites [0-3] as [0-1].
fn history() -> TestLake {
    let lake = TestLake::new();
    let rows = |r: std::ops::Range<i64>| -> Vec<Row> {
        r.map(|k| Row::new(BASE_MS + k * HOUR_MS, k)).collect()
    };
    let v1 = lake.file("v1.csv", csv_text(&rows(0..10)));
    let v2 = lake.file("v2.csv", csv_text(&rows(10..13)));
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
    lake.run([
        "delete-range",
        DS,
        "--start",
        "2024-01-01T02:00:00Z",
        "--end",
        "2024-01-01T04:00:00Z",
    ])
    .ok();
    lake
}

#[test]
fn json_report_of_an_append_and_a_delete() {
    let lake = history();
    let run = lake
        .run(["--json", "diff", "tarn://m/x:v1", "tarn://m/x:v3"])
        .ok();
    assert_eq!(
        run.json(),
        json!({
            "added": 3,
            "removed": 2,
            "ranges": [
                {"start": "2024-01-01T02:00:00Z", "end": "2024-01-01T03:00:00Z", "added": 0, "removed": 2},
                {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z", "added": 2, "removed": 0},
                {"start": "2024-01-01T12:00:00Z", "end": "2024-01-01T12:00:00Z", "added": 1, "removed": 0},
            ],
            "a": "tarn://m/x:v1",
            "b": "tarn://m/x:v3",
            "columns_added": [],
            "columns_removed": [],
            // [4-7] is in both versions and never read; v1's [0-3] [8-9] and v3's [0-1]
            // [8-11] [12] are, trimmed to the changed ranges [0-3] [8-11] [12].
            "unchanged_row_groups": 1,
            "changed_row_groups": 5,
            "row_groups_read": 5,
            "compared_rows": 13,
        }),
        "{}",
        run.describe()
    );
    // The SPEC keys come first, in order.
    let text = run.stdout();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap_or(usize::MAX);
    assert!(
        at("added") < at("removed") && at("removed") < at("ranges"),
        "{text}"
    );

    // The other way round, added and removed swap.
    let back = lake.run(["--json", "diff", "m/x:v3", "m/x:v1"]).ok().json();
    assert_eq!(
        (back["added"].clone(), back["removed"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(
        back["ranges"][0],
        json!({"start": "2024-01-01T02:00:00Z", "end": "2024-01-01T03:00:00Z", "added": 2, "removed": 0})
    );

    // A version against itself: nothing differs and nothing is read. Index refs resolve.
    let same = lake.run(["--json", "diff", "m/x:v3", "m/x:-1"]).ok().json();
    assert_eq!(
        (
            &same["added"],
            &same["removed"],
            &same["ranges"],
            &same["row_groups_read"],
            &same["compared_rows"]
        ),
        (&json!(0), &json!(0), &json!([]), &json!(0), &json!(0)),
        "{same}"
    );
    // Adjacent versions: only the append.
    let append = lake.run(["--json", "diff", "m/x:v1", "m/x:v2"]).ok().json();
    assert_eq!(
        (
            &append["added"],
            &append["removed"],
            &append["compared_rows"]
        ),
        (&json!(3), &json!(0), &json!(2 + 5)),
        "{append}"
    );
}

#[test]
fn human_summary_and_table() {
    let lake = history();
    let run = lake.run(["diff", "m/x:v1", "m/x"]).ok();
    let out = run.stdout();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("tarn://m/x:v1 -> tarn://m/x:v3: +3 -2 rows"),
        "{}",
        run.describe()
    );
    let table: Vec<&str> = lines.collect();
    assert!(
        table
            .iter()
            .any(|l| l.contains("start") && l.contains("removed")),
        "{out}"
    );
    let row = |s: &str, e: &str, a: &str, r: &str| {
        table
            .iter()
            .any(|l| l.contains(s) && l.contains(e) && l.contains(a) && l.contains(r))
    };
    assert!(
        row("2024-01-01T02:00:00Z", "2024-01-01T03:00:00Z", "+0", "-2"),
        "{out}"
    );
    assert!(
        row("2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "+2", "-0"),
        "{out}"
    );
    assert!(
        row("2024-01-01T12:00:00Z", "2024-01-01T12:00:00Z", "+1", "-0"),
        "{out}"
    );

    let same = lake.run(["-q", "diff", "m/x", "m/x"]).ok();
    assert_eq!(
        same.stdout(),
        "tarn://m/x:v3 -> tarn://m/x:v3: +0 -0 rows\n"
    );
    assert_eq!(same.stderr, "", "-q prints nothing on stderr");
}

#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let lake = history();
    // A dataset ordered on an integer column.
    let by_id = lake.file("by_id.csv", csv_text(&[Row::new(BASE_MS, 1)]));
    lake.run([
        "write",
        "m/by_id",
        by_id.to_str().expect("utf-8"),
        "--ordered-on",
        "id",
    ])
    .ok();
    let state = || lake.fingerprint(&[DS, "m/by_id"]);
    let before = state();
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["diff", "m/x", "nope/x"],
            1,
            &["tarn://nope/x", "dataset \"nope/x\" does not exist"],
        ),
        (
            &["diff", "m/x:v9", "m/x"],
            1,
            &["tarn://m/x:v9", "version v9 does not exist", "v1 to v3"],
        ),
        (
            &["diff", "m/x", "m/x:no-such-tag"],
            1,
            &["tag \"no-such-tag\" does not exist"],
        ),
        (
            &["diff", "m//x", "m/x"],
            1,
            &["invalid uri", "m//x", "empty segment"],
        ),
        (&["diff", "m/x", "tarn://"], 1, &["invalid uri"]),
        (
            &["diff", "m/x", "m/by_id"],
            1,
            &[
                "cannot diff",
                "tarn://m/x:v3",
                "\"ts\"",
                "tarn://m/by_id:v1",
                "\"id\"",
                "same kind",
            ],
        ),
        (&["diff", "m/x"], 2, &["<URI_B>"]),
    ];
    let mut failures = Vec::new();
    for (args, code, needles) in cases {
        for json in [false, true] {
            let mut all: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            all.extend_from_slice(args);
            let run = lake.run(&all);
            if let Err(e) = std::panic::catch_unwind(|| run.fails(*code, needles)) {
                failures.push(format!("{all:?}: {e:?}"));
            }
            if json && run.code == Some(1) && !run.stdout.is_empty() {
                failures.push(format!("{all:?}: printed on stdout: {}", run.describe()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(state(), before, "diff changed the lake");
}
