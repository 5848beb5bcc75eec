//! Several `tarn write` processes on one dataset at once (SPEC §2 optimistic concurrency,
//! §12 "two writers at once", docs/design/0001-commit.md): a writer that loses a race
//! re-plans on the new head, so every writer commits exactly one version; versions are
//! consecutive; the rows are the ordered merge of every writer's rows in commit order; a
//! reader running meanwhile only ever sees whole versions. Every test runs on SQLite + local
//! files and on PostgreSQL + S3.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WRITERS: usize = 6;
const ROWS: i64 = 240;
const DS: &str = "tarn://sensors/concurrent";

/// Writer `i`'s rows, in its input order: `ROWS` rows spread over the same 24 hours as every
/// other writer (so every write overlaps every other and merges into its row groups), given
/// in reverse order (the write must sort them), plus two rows at one instant shared by all
/// writers and the seed, in this input order (ties keep commit order, then input order).
fn writer_rows(i: usize) -> Vec<Row> {
    let id0 = (i as i64 + 1) * 10_000;
    let mut rows: Vec<Row> = (0..ROWS)
        .rev()
        .map(|k| {
            Row::new(
                BASE_MS + (k * WRITERS as i64 + i as i64) * 60_000 + 1_000,
                id0 + k,
            )
        })
        .collect();
    let shared = BASE_MS + 3_600_000 + 30_000;
    rows.insert(ROWS as usize / 2, Row::new(shared, id0 + ROWS));
    rows.insert(ROWS as usize / 2 + 1, Row::new(shared, id0 + ROWS + 1));
    rows
}

fn seed_rows() -> Vec<Row> {
    let mut rows: Vec<Row> = (0..50)
        .map(|k| Row::new(BASE_MS + k * 1_800_000, k))
        .collect();
    rows.push(Row::new(BASE_MS + 3_600_000 + 30_000, 50)); // the shared instant
    rows
}

struct Outcome {
    /// Writer index -> rows: every writer, as each must commit.
    committed: BTreeMap<usize, Vec<Row>>,
}

fn run_writers(lake: &TestLake, relaxed: bool) -> Outcome {
    let inputs: Vec<_> = (0..WRITERS)
        .map(|i| lake.file(&format!("writer{i}.csv"), csv_text(&writer_rows(i))))
        .collect();
    let children: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let mut args: Vec<String> = Vec::new();
            if relaxed {
                args.extend(["--durability".into(), "relaxed".into()]);
            }
            args.extend([
                "write".into(),
                DS.into(),
                input.display().to_string(),
                "--ordered-on".into(),
                "ts".into(),
                "--row-group-size".into(),
                "64".into(),
                "--message".into(),
                format!("writer-{i}"),
            ]);
            lake.spawn(&args)
        })
        .collect();
    let mut outcome = Outcome {
        committed: BTreeMap::new(),
    };
    for (i, (args, child)) in children.into_iter().enumerate() {
        let run = Run::from_output(args, child.wait_with_output().expect("wait for writer"));
        // A writer that loses a race re-plans on the new head: none may give up.
        assert_eq!(
            run.code,
            Some(0),
            "writer {i} did not commit: {}",
            run.describe()
        );
        outcome.committed.insert(i, writer_rows(i));
    }
    assert_eq!(outcome.committed.len(), WRITERS);
    outcome
}

/// Checks the log against the writers' outcome and returns the CSV text of every version
/// (index 0 = version 1), computed from the model in commit order.
fn check_log_and_rows(lake: &TestLake, outcome: &Outcome, seed: Option<&[Row]>) -> Vec<String> {
    let log = lake.log(DS);
    let expected_versions = outcome.committed.len() + usize::from(seed.is_some());
    let got = versions(&log);
    let want: Vec<u64> = (1..=expected_versions as u64).rev().collect();
    assert_eq!(
        got, want,
        "versions must be gap-free 1..={expected_versions}, newest first: {log:#?}"
    );

    // Commit ids strictly increase and timestamps never go back, in version order.
    let oldest_first: Vec<&Value> = log.iter().rev().collect();
    for w in oldest_first.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            b["commit_id"].as_i64() > a["commit_id"].as_i64(),
            "commit ids must increase: {a} then {b}"
        );
        assert!(
            b["timestamp"].as_str() >= a["timestamp"].as_str(),
            "commit timestamps must not go back: {a} then {b}"
        );
        assert!(
            b["rows"].as_u64() >= a["rows"].as_u64(),
            "pure inserts never lose rows: {a} then {b}"
        );
    }

    // Replay the model in commit order (the message says which writer made each version).
    let mut model: Vec<Row> = Vec::new();
    let mut states = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for entry in &oldest_first {
        let message = entry["message"]
            .as_str()
            .unwrap_or_else(|| panic!("version without message: {entry}"));
        assert_eq!(entry["operation"], "write", "{entry}");
        let rows: Vec<Row> = if message == "seed" {
            seed.expect("a seed version only when seeded").to_vec()
        } else {
            let i: usize = message
                .strip_prefix("writer-")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected message {message:?}"));
            assert!(seen.insert(i), "writer {i} committed twice: {log:#?}");
            outcome
                .committed
                .get(&i)
                .unwrap_or_else(|| {
                    panic!("writer {i} failed but its version is in the log: {log:#?}")
                })
                .clone()
        };
        let mut sorted = rows;
        sorted.sort_by_key(|r| r.ts_ms); // stable: equal instants keep input order
        merge(&mut model, &sorted);
        assert_eq!(
            entry["rows"].as_u64(),
            Some(model.len() as u64),
            "row count of {entry}"
        );
        states.push(csv_text(&model));
    }
    assert_eq!(
        seen.len(),
        outcome.committed.len(),
        "every writer that exited 0 has a version"
    );

    // The head and every version read back as the model says.
    assert_eq!(
        lake.read_csv(DS, &[]),
        *states.last().expect("at least one version"),
        "head rows"
    );
    for (i, state) in states.iter().enumerate() {
        assert_eq!(
            lake.read_csv(&format!("{DS}:v{}", i + 1), &[]),
            *state,
            "rows of v{}",
            i + 1
        );
    }
    // jsonl agrees with the CSV view of the head.
    let jsonl = lake.run(["read", DS, "--format", "jsonl"]).ok().stdout();
    assert_eq!(jsonl, jsonl_text(&model), "head rows as JSON lines");
    // Every writer's rows, each exactly once, and the seed's are in the head.
    let head_ids = lake.read_csv(DS, &["--columns", "id"]);
    let mut ids: Vec<i64> = head_ids
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap_or_else(|e| panic!("id {l:?}: {e}")))
        .collect();
    ids.sort_unstable();
    let mut want: Vec<i64> = outcome
        .committed
        .values()
        .flatten()
        .chain(seed.unwrap_or_default())
        .map(|r| r.id)
        .collect();
    want.sort_unstable();
    assert_eq!(ids, want, "the head holds every writer's rows");
    states
}

fn six_durable_writers_on_a_seeded_dataset_and_a_reader(lake: TestLake) {
    let seed = seed_rows();
    let input = lake.file("seed.csv", csv_text(&seed));
    lake.run([
        "write",
        DS,
        input.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
        "--row-group-size",
        "64",
        "--message",
        "seed",
    ])
    .ok();

    // A reader reads the head in a loop while the writers run.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let args = lake.args(["read", DS, "--format", "csv"]);
        let cwd = lake.dir().to_path_buf();
        std::thread::spawn(move || {
            let mut reads = Vec::new();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let out = tarn_cmd(&cwd).args(&args).output().expect("run reader");
                reads.push(Run::from_output(args.clone(), out));
            }
            reads
        })
    };
    let started = Instant::now();
    let outcome = run_writers(&lake, false);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader thread");
    eprintln!(
        "durable: {} writers committed in {elapsed:?}; {} concurrent reads",
        outcome.committed.len(),
        reads.len()
    );
    let states = check_log_and_rows(&lake, &outcome, Some(&seed));
    let files = lake.data_files();
    assert_eq!(
        files.len(),
        outcome.committed.len() + 1,
        "one data file per version, no leftovers: {files:#?}"
    );
    assert!(!reads.is_empty());
    for r in reads {
        let r = r.ok();
        let text = r.stdout();
        assert!(
            states.contains(&text),
            "a concurrent read saw a state that is no version ({} lines): {}",
            text.lines().count(),
            r.describe()
        );
    }
}

fn six_relaxed_writers_race_to_create_the_dataset(lake: TestLake) {
    let outcome = run_writers(&lake, true);
    eprintln!("relaxed: {} writers committed", outcome.committed.len());
    check_log_and_rows(&lake, &outcome, None);
    // The dataset keeps the options of its first write.
    let info = lake.run(["--json", "info", DS]).ok().json();
    assert_eq!(info["ordered_on"], "ts", "{info}");
    assert_eq!(
        info["version"].as_u64(),
        Some(outcome.committed.len() as u64),
        "{info}"
    );
    // Losers deleted the files of their failed attempts: each version added exactly one file
    // and nothing else is left under data/.
    let files = lake.data_files();
    assert_eq!(
        files.len(),
        outcome.committed.len(),
        "one data file per version, no leftovers of conflicting attempts: {files:#?}"
    );
}

/// Writers that all find the dataset missing race to create it: exactly one creates it, the
/// others must re-plan on the version it made (a merge), never report that the dataset they
/// just saw appear "does not exist", and every one commits. Many short rounds, as the window
/// is small.
fn racing_creators_never_fail(lake: TestLake) {
    const ROUNDS: usize = 20;
    let mut problems = Vec::new();
    for round in 0..ROUNDS {
        let ds = format!("race/r{round}");
        let inputs: Vec<_> = (0..WRITERS)
            .map(|i| {
                let rows: Vec<Row> = (0..3)
                    .map(|k| Row::new(BASE_MS + k * 1000 + i as i64, (i * 10 + k as usize) as i64))
                    .collect();
                lake.file(&format!("race{round}-{i}.csv"), csv_text(&rows))
            })
            .collect();
        let children: Vec<_> = inputs
            .iter()
            .map(|input| {
                lake.spawn([
                    "--durability",
                    "relaxed",
                    "write",
                    ds.as_str(),
                    input.to_str().expect("utf-8"),
                    "--ordered-on",
                    "ts",
                ])
            })
            .collect();
        for (args, child) in children {
            let run = Run::from_output(args, child.wait_with_output().expect("wait"));
            if run.code != Some(0) {
                problems.push(format!("round {round}: {}", run.describe()));
            }
        }
        let committed = WRITERS as u64;
        let log = lake.log(&ds);
        if versions(&log) != (1..=committed).rev().collect::<Vec<_>>() {
            problems.push(format!(
                "round {round}: {committed} writers but the log is {log:#?}"
            ));
        }
        if log.first().and_then(|e| e["rows"].as_u64()) != Some(3 * committed) {
            problems.push(format!(
                "round {round}: {committed} writers of 3 rows but the log is {log:#?}"
            ));
        }
        let ids = lake.read_csv(&ds, &["--columns", "id"]);
        let mut got: Vec<&str> = ids.lines().skip(1).collect();
        got.sort_unstable();
        let mut want: Vec<String> = (0..WRITERS)
            .flat_map(|i| (0..3).map(move |k| (i * 10 + k).to_string()))
            .collect();
        want.sort_unstable();
        if got != want {
            problems.push(format!("round {round}: the ids are {got:?}, not {want:?}"));
        }
    }
    eprintln!("racing creators: {ROUNDS} rounds of {WRITERS}, every writer committed");
    assert!(
        problems.is_empty(),
        "{} writer(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Writers on `main` and on two branches run at once, while another process creates a
/// branch and tags the head (docs/design/0003): every branch ends with exactly its own
/// writers' rows on top of the shared seed, gap-free, and no write to a branch leaks into
/// another one.
fn writers_on_several_branches_at_once(lake: TestLake) {
    const PER_BRANCH: usize = 3;
    let seed = seed_rows();
    let seed_file = lake.file("seed.csv", csv_text(&seed));
    lake.run([
        "write",
        DS,
        seed_file.to_str().expect("utf-8 path"),
        "--ordered-on",
        "ts",
        "--row-group-size",
        "16",
    ])
    .ok();
    for b in ["dev", "exp"] {
        lake.run(["branch", DS, b]).ok();
    }
    let branches = ["main", "dev", "exp"];
    let rows_of = |b: usize, w: usize| -> Vec<Row> {
        // Distinct instants per writer, interleaved with the seed and the other writers.
        let id0 = ((b * PER_BRANCH + w) as i64 + 1) * 1_000;
        (0..40)
            .map(|k| {
                Row::new(
                    BASE_MS + k * 1_200_000 + (b * PER_BRANCH + w) as i64 * 7_000 + 1_000,
                    id0 + k,
                )
            })
            .collect()
    };
    let uri = |b: &str| {
        if b == "main" {
            DS.to_string()
        } else {
            format!("{DS}@{b}")
        }
    };
    let mut children = Vec::new();
    for (bi, b) in branches.iter().enumerate() {
        for w in 0..PER_BRANCH {
            let input = lake.file(&format!("{b}-{w}.csv"), csv_text(&rows_of(bi, w)));
            children.push((
                Some((bi, w)),
                lake.spawn([
                    "--durability".to_string(),
                    "relaxed".into(),
                    "write".into(),
                    uri(b),
                    input.display().to_string(),
                ]),
            ));
        }
    }
    children.push((None, lake.spawn(["branch", DS, "side"])));
    children.push((None, lake.spawn(["tag", DS, "during"])));
    let mut committed: BTreeMap<usize, Vec<Vec<Row>>> = BTreeMap::new();
    for (who, (args, child)) in children {
        let run = Run::from_output(args, child.wait_with_output().expect("wait"));
        match who {
            Some((bi, w)) => {
                assert_eq!(run.code, Some(0), "writer {bi}/{w}: {}", run.describe());
                committed.entry(bi).or_default().push(rows_of(bi, w));
            }
            None => assert_eq!(run.code, Some(0), "{}", run.describe()),
        }
    }
    for (bi, b) in branches.iter().enumerate() {
        let mut want = seed.clone();
        let mine = committed.get(&bi).cloned().unwrap_or_default();
        assert_eq!(mine.len(), PER_BRANCH, "{b}: every writer committed");
        for rows in &mine {
            merge(&mut want, rows);
        }
        let log = lake.log(&uri(b));
        assert_eq!(
            versions(&log),
            (1..=1 + mine.len() as u64).rev().collect::<Vec<_>>(),
            "{b}: gap-free versions, the seed shared"
        );
        let ids = lake.read_csv(&uri(b), &["--columns", "id"]);
        assert_eq!(ids, id_csv(&want), "{b} holds exactly its writers' rows");
    }
    // The branch and the tag made while writers ran name some version of main.
    let side = lake.run(["--json", "branches", DS]).ok().json();
    let side = side
        .as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == "side"))
        .cloned()
        .expect("branch side exists");
    assert_eq!(side["parent"], "main");
    let tags = lake.run(["--json", "tags", DS]).ok().json();
    assert_eq!(tags[0]["name"], "during");
    assert_eq!(tags[0]["branch"], "main");
    let at = |r: &str| lake.read_csv(&format!("{DS}:{r}"), &["--columns", "id"]);
    assert_eq!(
        at("during"),
        at(&format!("v{}", tags[0]["version"])),
        "the tag reads its version"
    );
}

crate::lake_tests!(
    six_durable_writers_on_a_seeded_dataset_and_a_reader,
    six_relaxed_writers_race_to_create_the_dataset,
    racing_creators_never_fail,
    writers_on_several_branches_at_once,
);
