//! Version control from the command line (SPEC §5, §11, §12; docs/design/0003): `tarn tag`,
//! `tag -d`, `tags`, `branch`, `branch -d`, `branches`, `merge`, `log` on a branch, and
//! `read`/`info`/`diff --as-of`, with their `--json` output checked field by field and their
//! human output once each; then every bad input, each with its exit code (2 for a usage
//! error, else 1), its `error:` message, and an unchanged lake (datasets, logs, branches,
//! tags and data files).

use crate::common::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const DS: &str = "tarn://m/x";
const HOUR_MS: i64 = 3_600_000;

fn rows(r: std::ops::Range<i64>) -> Vec<Row> {
    r.map(|k| Row::new(BASE_MS + k * HOUR_MS, k)).collect()
}

fn hour(k: i64) -> String {
    rfc3339_ms(BASE_MS + k * HOUR_MS)
}

/// `tarn --json write URI <rows as CSV> EXTRA...`, returning the outcome.
fn write(lake: &TestLake, uri: &str, rows: &[Row], extra: &[&str]) -> Value {
    static INPUTS: AtomicUsize = AtomicUsize::new(0);
    let name = format!("in-{}.csv", INPUTS.fetch_add(1, Ordering::Relaxed));
    let file = lake.file(&name, csv_text(rows));
    let mut args = vec!["--json", "write", uri, file.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    lake.run(args).ok().json()
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn commit_of(entry: &Value) -> i64 {
    entry["commit_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no commit_id in {entry}"))
}

#[test]
fn tags_branches_merges_and_branch_logs_in_json_and_text() {
    let lake = TestLake::new();
    write(
        &lake,
        DS,
        &rows(0..4),
        &["--ordered-on", "ts", "--row-group-size", "2"],
    );
    write(&lake, DS, &rows(4..6), &[]);
    let main_log = lake.log(DS);
    let (c1, c2) = (commit_of(&main_log[1]), commit_of(&main_log[0]));

    // tag
    let gold = lake
        .run(["--json", "tag", "tarn://m/x:v1", "gold"])
        .ok()
        .json();
    assert_eq!(
        keys(&gold),
        ["branch", "created", "dataset", "name", "uri", "version"]
    );
    assert_eq!(
        (
            &gold["name"],
            &gold["dataset"],
            &gold["branch"],
            &gold["version"],
            &gold["uri"]
        ),
        (
            &json!("gold"),
            &json!("m/x"),
            &json!("main"),
            &json!(1),
            &json!("tarn://m/x:v1")
        )
    );
    assert!(is_rfc3339_utc(&gold["created"]), "{gold}");
    let text = lake.run(["tag", "m/x", "gold2"]).ok();
    assert_eq!(text.stdout(), "tagged tarn://m/x:v2 as gold2\n");
    lake.run(["-q", "tag", "m/x:0", "first"]).ok();
    // tags
    let tags = lake.run(["--json", "tags", "m/x"]).ok().json();
    let listed: Vec<(String, String, u64, String)> = tags
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            assert_eq!(keys(t), keys(&gold), "{t}");
            (
                t["name"].as_str().expect("name").into(),
                t["branch"].as_str().expect("branch").into(),
                t["version"].as_u64().expect("version"),
                t["uri"].as_str().expect("uri").into(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("first".into(), "main".into(), 1, "tarn://m/x:v1".into()),
            ("gold".into(), "main".into(), 1, "tarn://m/x:v1".into()),
            ("gold2".into(), "main".into(), 2, "tarn://m/x:v2".into()),
        ]
    );
    assert_eq!(tags[1]["created"], gold["created"]);
    let table = lake.run(["tags", "m/x"]).ok().stdout();
    for needle in ["tag", "branch", "version", "created (UTC)"] {
        assert!(table.contains(needle), "{table}");
    }
    let gold_line = table.lines().find(|l| l.contains(" gold ")).expect(&table);
    assert!(
        gold_line.contains("main") && gold_line.contains("v1"),
        "{table}"
    );
    assert_eq!(
        lake.read_csv("m/x:gold", &[]),
        csv_text(&rows(0..4)),
        "a tag reads its version"
    );
    // tag -d
    let deleted = lake.run(["tag", "-d", "m/x", "gold2"]).ok();
    assert_eq!(deleted.stdout(), "deleted tag gold2\n");
    let deleted = lake.run(["--json", "tag", "--delete", "m/x", "first"]).ok();
    assert_eq!(deleted.json(), json!({"deleted": "first"}));
    let left = lake.run(["--json", "tags", "m/x"]).ok().json();
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    // --force moves a tag.
    let moved = lake
        .run(["--json", "tag", "m/x:v2", "gold", "--force"])
        .ok()
        .json();
    assert_eq!(
        (&moved["version"], &moved["uri"]),
        (&json!(2), &json!("tarn://m/x:v2"))
    );

    // branch
    let dev = lake
        .run(["--json", "branch", "tarn://m/x:v1", "dev"])
        .ok()
        .json();
    assert_eq!(
        dev,
        json!({"name": "dev", "dataset": "m/x", "head": 1, "parent": "main",
               "fork_version": 1, "created_commit": c2 + 1})
    );
    let exp = lake.run(["branch", "m/x", "exp"]).ok();
    assert_eq!(
        exp.stdout(),
        "created branch tarn://m/x@exp at v2 of main\n"
    );
    // branches
    let branches = lake.run(["--json", "branches", "m/x"]).ok().json();
    assert_eq!(
        branches,
        json!([
            {"name": "main", "dataset": "m/x", "head": 2, "parent": null,
             "fork_version": null, "created_commit": c1},
            {"name": "dev", "dataset": "m/x", "head": 1, "parent": "main",
             "fork_version": 1, "created_commit": c2 + 1},
            {"name": "exp", "dataset": "m/x", "head": 2, "parent": "main",
             "fork_version": 2, "created_commit": c2 + 2},
        ])
    );
    let table = lake.run(["branches", "m/x"]).ok().stdout();
    for needle in ["branch", "head", "forked from", "created at commit"] {
        assert!(table.contains(needle), "{table}");
    }
    let dev_line = table.lines().find(|l| l.contains(" dev ")).expect(&table);
    assert!(
        dev_line.contains("main:v1") && dev_line.contains(&(c2 + 1).to_string()),
        "{table}"
    );
    let main_line = table.lines().find(|l| l.contains(" main ")).expect(&table);
    assert!(main_line.contains(" - "), "{table}");

    // log on a branch: its own versions, then main's up to the fork.
    let out = write(&lake, "tarn://m/x@dev", &rows(10..12), &[]);
    assert_eq!(
        (&out["branch"], &out["version"], &out["rows"]),
        (&json!("dev"), &json!(2), &json!(6))
    );
    let dev_log = lake.log("tarn://m/x@dev");
    assert_eq!(versions(&dev_log), vec![2, 1]);
    assert_eq!(dev_log[1], main_log[1], "dev's v1 is main's v1");
    assert_eq!(
        keys(&dev_log[0]),
        [
            "commit_id",
            "message",
            "operation",
            "rows",
            "timestamp",
            "upstreams",
            "version"
        ]
    );
    assert_eq!(
        (
            &dev_log[0]["operation"],
            &dev_log[0]["rows"],
            &dev_log[0]["message"],
            &dev_log[0]["upstreams"]
        ),
        (&json!("write"), &json!(6), &json!(null), &json!([]))
    );
    assert_eq!(dev_log[0]["commit_id"], out["commit_id"]);
    assert!(is_rfc3339_utc(&dev_log[0]["timestamp"]));
    let limited = lake
        .run(["--json", "log", "tarn://m/x@dev", "--limit", "1"])
        .ok()
        .json();
    assert_eq!(versions(limited.as_array().expect("array")), vec![2]);
    let text = lake.run(["log", "m/x@dev"]).ok().stdout();
    let at = |v: &str| {
        text.lines()
            .position(|l| l.contains(&format!(" {v} ")))
            .unwrap_or_else(|| panic!("{v} missing: {text}"))
    };
    assert!(at("v2") < at("v1"), "{text}");
    assert_eq!(lake.log(DS), main_log, "dev's write left main alone");

    // merge: up to date, then fast-forwards.
    let merge = lake
        .run(["--json", "merge", "tarn://m/x@exp", "main"])
        .ok()
        .json();
    assert_eq!(
        merge,
        json!({"dataset": "m/x", "source": "exp", "target": "main", "outcome": "up-to-date",
               "from_version": 2, "to_version": 2, "commit_id": null})
    );
    let text = lake.run(["merge", "m/x@exp", "main"]).ok();
    assert_eq!(text.stdout(), "m/x@main is up to date with exp (v2)\n");
    let out = write(&lake, "tarn://m/x@exp", &rows(6..8), &[]);
    let merge = lake
        .run(["--json", "merge", "tarn://m/x@exp", "main"])
        .ok()
        .json();
    let ff = commit_of(&out) + 1;
    assert_eq!(
        merge,
        json!({"dataset": "m/x", "source": "exp", "target": "main", "outcome": "fast-forward",
               "from_version": 2, "to_version": 3, "commit_id": ff})
    );
    let log = lake.log(DS);
    assert_eq!(versions(&log), vec![3, 2, 1]);
    assert_eq!(
        commit_of(&log[0]),
        ff,
        "main's copy becomes visible with the merge"
    );
    assert_eq!(lake.read_csv(DS, &[]), csv_text(&rows(0..8)));
    let out = write(&lake, "m/x@exp", &rows(8..9), &[]);
    let text = lake.run(["merge", "m/x@exp", "main"]).ok();
    assert_eq!(
        text.stdout(),
        format!(
            "fast-forwarded m/x@main from v3 to v4 (commit {})\n",
            commit_of(&out) + 1
        )
    );
    let branches = lake.run(["--json", "branches", "m/x"]).ok().json();
    assert_eq!(
        (
            &branches[0]["head"],
            &branches[2]["name"],
            &branches[2]["fork_version"]
        ),
        (&json!(4), &json!("exp"), &json!(4)),
        "{branches}"
    );

    // branch -d
    let text = lake.run(["branch", "-d", "tarn://m/x@exp"]).ok();
    assert_eq!(text.stdout(), "deleted branch tarn://m/x@exp\n");
    let deleted = lake.run(["--json", "branch", "--delete", "m/x@dev"]).ok();
    assert_eq!(deleted.json(), json!({"deleted": "m/x@dev"}));
    let branches = lake.run(["--json", "branches", "m/x"]).ok().json();
    assert_eq!(branches.as_array().map(Vec::len), Some(1), "{branches}");
    assert_eq!(lake.read_csv(DS, &[]), csv_text(&rows(0..9)));
    assert_eq!(lake.read_csv("m/x:gold", &[]), csv_text(&rows(0..6)));
}

#[test]
fn as_of_pins_read_info_and_diff() {
    let lake = TestLake::new();
    write(
        &lake,
        DS,
        &rows(0..4),
        &["--ordered-on", "ts", "--row-group-size", "2"],
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    write(&lake, DS, &rows(4..6), &[]);
    let dev = lake.run(["--json", "branch", DS, "dev"]).ok().json();
    let c3 = dev["created_commit"].as_i64().expect("created_commit");
    let c4 = commit_of(&write(&lake, "m/x@dev", &rows(10..12), &[]));
    let c5 = commit_of(
        &lake
            .run([
                "--json",
                "delete-range",
                DS,
                "--start",
                &hour(0),
                "--end",
                &hour(1),
            ])
            .ok()
            .json(),
    );
    let log = lake.log(DS);
    assert_eq!(versions(&log), vec![3, 2, 1]);
    let (c1, c2) = (commit_of(&log[2]), commit_of(&log[1]));
    assert_eq!((c1, c2, c3, c4, c5), (1, 2, 3, 4, 5));
    let t1 = chrono::DateTime::parse_from_rfc3339(log[2]["timestamp"].as_str().expect("t1"))
        .expect("t1");
    let t2 = chrono::DateTime::parse_from_rfc3339(log[1]["timestamp"].as_str().expect("t2"))
        .expect("t2");
    let between = (t1 + (t2 - t1) / 2).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();

    // read --as-of: commit ids, a time between two commits, a date; an explicit ref wins.
    let after_delete = rows(1..6);
    for (uri, as_of, want) in [
        (DS, "1", rows(0..4)),
        (DS, between.as_str(), rows(0..4)),
        (DS, "2", rows(0..6)),
        (DS, "4", rows(0..6)),
        (DS, "5", after_delete.clone()),
        (DS, today.as_str(), after_delete.clone()),
        ("m/x:v1", "5", rows(0..4)),
        ("m/x@dev", "3", rows(0..6)),
        ("m/x@dev", "4", [rows(0..6), rows(10..12)].concat()),
        ("m/x@dev:latest", "3", rows(0..6)),
    ] {
        assert_eq!(
            lake.read_csv(uri, &["--as-of", as_of]),
            csv_text(&want),
            "read {uri} --as-of {as_of}"
        );
    }
    let table = lake.run(["read", DS, "--as-of", "1"]).ok().stdout();
    assert!(
        table.contains(&hour(3)) && !table.contains(&hour(4)),
        "{table}"
    );

    // info --as-of
    let info = lake
        .run(["--json", "info", DS, "--as-of", &between])
        .ok()
        .json();
    assert_eq!(
        (
            &info["name"],
            &info["branch"],
            &info["version"],
            &info["commit_id"],
            &info["timestamp"],
            &info["rows"],
            &info["min"],
            &info["max"],
        ),
        (
            &json!("m/x"),
            &json!("main"),
            &json!(1),
            &json!(c1),
            &log[2]["timestamp"],
            &json!(4),
            &json!(hour(0)),
            &json!(hour(3)),
        ),
        "{info}"
    );
    let info = lake
        .run(["--json", "info", "m/x@dev", "--as-of", "4"])
        .ok()
        .json();
    assert_eq!(
        (
            &info["branch"],
            &info["version"],
            &info["commit_id"],
            &info["rows"],
            &info["max"]
        ),
        (
            &json!("dev"),
            &json!(3),
            &json!(c4),
            &json!(8),
            &json!(hour(11))
        ),
        "{info}"
    );
    let info = lake
        .run(["--json", "info", DS, "--as-of", &today])
        .ok()
        .json();
    assert_eq!((&info["version"], &info["rows"]), (&json!(3), &json!(5)));
    let text = lake.run(["info", DS, "--as-of", "1"]).ok().stdout();
    assert_eq!(
        text.lines().next(),
        Some(
            format!(
                "m/x @main v1 (commit 1, {})",
                log[2]["timestamp"].as_str().expect("t")
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(text.contains("rows:         4"), "{text}");

    // diff --as-of: both sides at one lake state.
    let diff = lake
        .run(["--json", "diff", DS, "m/x@dev", "--as-of", "4"])
        .ok()
        .json();
    assert_eq!(
        (
            &diff["a"],
            &diff["b"],
            &diff["added"],
            &diff["removed"],
            &diff["ranges"],
            &diff["columns_added"],
            &diff["columns_removed"],
        ),
        (
            &json!("tarn://m/x:v2"),
            &json!("tarn://m/x@dev:v3"),
            &json!(2),
            &json!(0),
            &json!([{"start": hour(10), "end": hour(11), "added": 2, "removed": 0}]),
            &json!([]),
            &json!([]),
        ),
        "{diff}"
    );
    let diff = lake
        .run(["--json", "diff", DS, "m/x@dev", "--as-of", "5"])
        .ok()
        .json();
    assert_eq!(
        (&diff["a"], &diff["b"], &diff["added"], &diff["removed"]),
        (
            &json!("tarn://m/x:v3"),
            &json!("tarn://m/x@dev:v3"),
            &json!(3),
            &json!(0)
        ),
        "{diff}"
    );
    let diff = lake
        .run(["--json", "diff", DS, "m/x@dev", "--as-of", "3"])
        .ok()
        .json();
    assert_eq!(
        (&diff["a"], &diff["b"], &diff["added"], &diff["removed"]),
        (
            &json!("tarn://m/x:v2"),
            &json!("tarn://m/x@dev:v2"),
            &json!(0),
            &json!(0)
        ),
        "dev at its creation is main's v2: {diff}"
    );
    let text = lake
        .run(["-q", "diff", DS, "m/x@dev", "--as-of", "4"])
        .ok()
        .stdout();
    assert_eq!(
        text.lines().next(),
        Some("tarn://m/x:v2 -> tarn://m/x@dev:v3: +2 -0 rows"),
        "{text}"
    );
}

/// Runs bad-input cases against one lake, checking each one's exit code, `error:` line,
/// empty stdout and the lake's fingerprint, and reports every failure at once.
struct Cases {
    lake: TestLake,
    failures: Vec<String>,
    count: usize,
}

impl Cases {
    /// `m/x`: main v1, v2 (tag `gold` on v1); `dev` forked at v1 with its own v2 (tag
    /// `dev-rc`); `exp` forked at v2 with its own v3, and `kid` forked from exp's v3.
    fn new() -> Self {
        let lake = TestLake::new();
        write(&lake, DS, &rows(0..4), &["--ordered-on", "ts"]);
        write(&lake, DS, &rows(4..6), &[]);
        lake.run(["tag", "m/x:v1", "gold"]).ok();
        lake.run(["branch", "m/x:v1", "dev"]).ok();
        write(&lake, "m/x@dev", &rows(10..11), &[]);
        lake.run(["tag", "m/x@dev:v2", "dev-rc"]).ok();
        lake.run(["branch", "m/x", "exp"]).ok();
        write(&lake, "m/x@exp", &rows(20..21), &[]);
        lake.run(["branch", "m/x@exp", "kid"]).ok();
        let last = lake.run(["--json", "branches", "m/x"]).ok().json();
        assert_eq!(last[3]["name"], "kid");
        assert_eq!(last[3]["created_commit"], 7, "{last}");
        Self {
            lake,
            failures: Vec::new(),
            count: 0,
        }
    }

    fn case(&mut self, args: &[&str], code: i32, needles: &[&str]) {
        self.count += 1;
        let before = self.lake.fingerprint(&[DS]);
        let run = self.lake.run(args);
        let mut problems = Vec::new();
        if run.code != Some(code) {
            problems.push(format!("exit code {:?}, expected {code}", run.code));
        }
        if !run.stderr.starts_with("error: ") {
            problems.push("stderr does not start with `error: `".into());
        }
        for n in needles {
            if !run.stderr.contains(n) {
                problems.push(format!("stderr does not say {n:?}"));
            }
        }
        if !run.stdout.is_empty() {
            problems.push("printed on stdout".into());
        }
        if run.stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        let after = self.lake.fingerprint(&[DS]);
        if before != after {
            problems.push(format!("the lake changed:\n{before}\n---\n{after}"));
        }
        if !problems.is_empty() {
            self.failures.push(format!(
                "{args:?}: {}\n{}",
                problems.join("; "),
                run.describe()
            ));
        }
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n\n{}",
            self.failures.len(),
            self.count,
            self.failures.join("\n\n")
        );
    }
}

#[test]
fn bad_tags_and_branches_fail_clearly_and_change_nothing() {
    let mut c = Cases::new();
    // Unknown dataset, branch, version, tag.
    c.case(
        &["tag", "m/nope", "t1"],
        1,
        &["tarn://m/nope", "dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["tag", "m/x@nope", "t1"],
        1,
        &["tarn://m/x@nope", "branch \"nope\" does not exist"],
    );
    c.case(
        &["tag", "m/x:v9", "t1"],
        1,
        &[
            "tarn://m/x:v9",
            "version v9 does not exist",
            "m/x@main has versions v1 to v2",
        ],
    );
    c.case(
        &["tag", "m/x@dev:-3", "t1"],
        1,
        &["index -3 is out of range", "m/x@dev"],
    );
    c.case(
        &["tag", "m/x:silver", "t1"],
        1,
        &["tarn://m/x:silver", "tag \"silver\" does not exist"],
    );
    c.case(
        &["tag", "-d", "m/x", "silver"],
        1,
        &["tarn://m/x", "tag \"silver\" does not exist"],
    );
    c.case(
        &["tag", "-d", "m/nope", "gold"],
        1,
        &["dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["tags", "m/nope"],
        1,
        &["dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["branches", "m/nope"],
        1,
        &["dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["branch", "m/x@nope", "b2"],
        1,
        &["branch \"nope\" does not exist"],
    );
    c.case(
        &["branch", "m/x:v9", "b2"],
        1,
        &["version v9 does not exist"],
    );
    c.case(
        &["branch", "m/x:silver", "b2"],
        1,
        &["tag \"silver\" does not exist"],
    );
    c.case(
        &["branch", "m/nope", "b2"],
        1,
        &["dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["branch", "-d", "m/x@nope"],
        1,
        &["tarn://m/x@nope", "branch \"nope\" does not exist"],
    );
    c.case(&["log", "m/x@nope"], 1, &["branch \"nope\" does not exist"]);
    c.case(
        &["read", "m/x@dev:v9"],
        1,
        &["m/x@dev has versions v1 to v2"],
    );
    // A tag through a branch that does not hold its version.
    c.case(
        &["read", "m/x@exp:dev-rc"],
        1,
        &[
            "tag \"dev-rc\" names m/x@dev:v2",
            "not in the history of branch \"exp\"",
        ],
    );
    // Tag names that read as another ref, or are not names at all.
    for name in ["v3", "latest", "2024-01-01", "0"] {
        c.case(
            &["tag", "m/x", name],
            1,
            &[
                "bad tag name",
                &format!("\"{name}\""),
                "reads as a version, index, date or time",
            ],
        );
    }
    c.case(
        &["tag", "m/x", "--", "-1"],
        1,
        &["bad tag name", "\"-1\"", "reads as a version"],
    );
    c.case(
        &["tag", "m/x", "-1"],
        2,
        &["unexpected argument '-1'", "-- -1"],
    );
    c.case(
        &["tag", "m/x", "a b"],
        1,
        &["bad tag name", "\"a b\"", "' '"],
    );
    c.case(
        &["tag", "m/x", ".hidden"],
        1,
        &["bad tag name", "may not start with '.'"],
    );
    c.case(&["tag", "m/x", "a/b"], 1, &["bad tag name", "'/'"]);
    // Tags are immutable without --force.
    c.case(
        &["tag", "m/x:v2", "gold"],
        1,
        &[
            "tag \"gold\" already exists",
            "main:v1",
            "--force",
            "tarn tag -d",
        ],
    );
    c.case(
        &["tag", "m/x@dev", "gold"],
        1,
        &["tag \"gold\" already exists"],
    );
    c.case(
        &["tag", "-d", "m/x", "gold", "--force"],
        2,
        &["'--delete' cannot be used with '--force'"],
    );
    c.case(
        &["tag", "-d", "m/x:v1", "gold"],
        1,
        &[
            "tarn://m/x:v1",
            "a tag belongs to the dataset",
            "drop the \":v1\" part",
        ],
    );
    c.case(
        &["branch", "-d", "m/x@dev:v2"],
        1,
        &[
            "tarn://m/x@dev:v2",
            "removes the whole branch",
            "drop the \":v2\" part",
        ],
    );
    // Branch names.
    c.case(
        &["branch", "m/x", "a/b"],
        1,
        &["bad branch name", "\"a/b\"", "may not contain '/'"],
    );
    c.case(
        &["branch", "m/x", ".x"],
        1,
        &["bad branch name", "\".x\"", "starts with '.'"],
    );
    c.case(&["branch", "m/x", "a b"], 1, &["bad branch name", "' '"]);
    c.case(
        &["branch", "m/x", "dev"],
        1,
        &["branch \"dev\" already exists", "tarn branch -d"],
    );
    c.case(
        &["branch", "m/x@kid", "main"],
        1,
        &["branch \"main\" already exists"],
    );
    // Deletions that would lose something.
    c.case(
        &["branch", "-d", "m/x"],
        1,
        &["the main branch cannot be deleted"],
    );
    c.case(
        &["branch", "-d", "tarn://m/x@main"],
        1,
        &["the main branch cannot be deleted"],
    );
    c.case(
        &["branch", "-d", "m/x@dev"],
        1,
        &[
            "branch \"dev\" holds versions named by tags (dev-rc)",
            "delete those tags first",
        ],
    );
    c.case(
        &["branch", "-d", "m/x@exp"],
        1,
        &[
            "branch \"exp\" has branches forked from its own versions (kid)",
            "delete them first",
        ],
    );
    // Usage errors.
    c.case(&["tag"], 2, &["<URI>", "<NAME>"]);
    c.case(&["tag", "m/x"], 2, &["<NAME>"]);
    c.case(&["tags"], 2, &["<DATASET>"]);
    c.case(&["branches"], 2, &["<DATASET>"]);
    c.case(&["branch", "m/x"], 2, &["<NEW>"]);
    c.case(
        &["branch", "-d", "m/x@kid", "other"],
        2,
        &["'--delete' cannot be used with '[NEW]'"],
    );
    c.finish();
}

#[test]
fn bad_merges_as_of_and_writes_fail_clearly_and_change_nothing() {
    let mut c = Cases::new();
    let ok = c
        .lake
        .file("ok.csv", csv_text(&rows(30..31)))
        .display()
        .to_string();
    // Merges that are not a fast-forward of a branch into the one it was forked from.
    c.case(
        &["merge", "m/x@dev", "main"],
        1,
        &[
            "main has moved since dev was forked from it at v1 (main is now at v2)",
            "only a fast-forward merge is supported",
        ],
    );
    c.case(
        &["merge", "m/x@kid", "main"],
        1,
        &["branch \"kid\" was not forked from \"main\""],
    );
    c.case(
        &["merge", "m/x@exp", "kid"],
        1,
        &["branch \"exp\" was not forked from \"kid\""],
    );
    c.case(
        &["merge", "m/x", "exp"],
        1,
        &["branch \"main\" was not forked from \"exp\""],
    );
    c.case(
        &["merge", "m/x@dev:v2", "main"],
        1,
        &[
            "tarn://m/x@dev:v2",
            "merge takes a branch, not a version",
            "drop the \":v2\" part",
        ],
    );
    c.case(
        &["merge", "m/x@dev:dev-rc", "main"],
        1,
        &["merge takes a branch, not a version"],
    );
    c.case(
        &["merge", "m/x@dev:-1", "main"],
        1,
        &["merge takes a branch, not a version"],
    );
    c.case(
        &["merge", "m/x@dev", "dev"],
        1,
        &["cannot merge branch \"dev\" into itself"],
    );
    c.case(
        &["merge", "m/x", "main"],
        1,
        &["cannot merge branch \"main\" into itself"],
    );
    c.case(
        &["merge", "m/x@nope", "main"],
        1,
        &["branch \"nope\" does not exist"],
    );
    c.case(
        &["merge", "m/x@dev", "nope"],
        1,
        &["tarn://m/x@nope", "branch \"nope\" does not exist"],
    );
    c.case(
        &["merge", "m/nope@dev", "main"],
        1,
        &["dataset \"m/nope\" does not exist"],
    );
    c.case(
        &["merge", "m/x@dev", "a/b"],
        1,
        &["bad target branch", "\"a/b\""],
    );
    c.case(&["merge", "m/x@dev"], 2, &["<TARGET>"]);
    c.case(&["merge"], 2, &["<SOURCE>", "<TARGET>"]);
    // --as-of that names no lake state.
    c.case(
        &["read", DS, "--as-of", "yesterday"],
        1,
        &[
            "--as-of \"yesterday\"",
            "expected a commit id (e.g. 42), a date (2024-05-01) or an RFC 3339 time",
        ],
    );
    c.case(
        &["info", DS, "--as-of", "v1"],
        1,
        &["--as-of \"v1\"", "expected a commit id"],
    );
    c.case(
        &["info", DS, "--as-of", "2000-01-01"],
        1,
        &["--as-of 2000-01-01", "no commit was made at or before it"],
    );
    c.case(
        &["read", DS, "--as-of", "2000-01-01T00:00:00Z"],
        1,
        &["no commit was made at or before it"],
    );
    c.case(
        &["diff", DS, "m/x@dev", "--as-of", "8"],
        1,
        &[
            "--as-of 8: commit 8 does not exist",
            "this lake's commits are 1 to 7",
        ],
    );
    c.case(
        &["read", DS, "--as-of", "0"],
        1,
        &["commit 0 does not exist", "1 to 7"],
    );
    c.case(
        &["info", DS, "--as-of", "2024-02-30"],
        1,
        &["--as-of 2024-02-30", "not a valid one"],
    );
    c.case(
        &["read", "m/x@kid", "--as-of", "6"],
        1,
        &[
            "tarn://m/x@kid",
            "branch \"kid\" did not exist yet at commit 6",
        ],
    );
    c.case(
        &["diff", "m/x@kid", DS, "--as-of", "6"],
        1,
        &["branch \"kid\" did not exist yet at commit 6"],
    );
    c.case(&["read", DS, "--as-of"], 2, &["--as-of <AS_OF>"]);
    // Writes go to an existing branch head.
    c.case(
        &["write", "m/x@nope", &ok],
        1,
        &["tarn://m/x@nope", "branch \"nope\" does not exist"],
    );
    c.case(
        &["write", "m/x@dev:v1", &ok],
        1,
        &["writes go to the head of a branch"],
    );
    c.case(
        &["write", "m/x:gold", &ok],
        1,
        &["writes go to the head of a branch"],
    );
    c.case(
        &[
            "delete-range",
            "m/x@nope",
            "--start",
            &hour(0),
            "--end",
            &hour(1),
        ],
        1,
        &["branch \"nope\" does not exist"],
    );
    c.finish();
}
