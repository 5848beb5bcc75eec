//! Killed writers (SPEC §2 crash safety, §12 "a killed writer"): `tarn write` processes are
//! SIGKILLed at seeded random instants. After each kill the lake opens, the killed write is
//! either the next version with exactly its rows or absent, every acknowledged version reads
//! back intact, and the next normal write succeeds. At the end `tarn vacuum --grace 0s`
//! removes the killed writers' orphans and nothing any version needs. Both tests run on
//! SQLite + local files and on PostgreSQL + S3.

use crate::common::*;
use std::time::{Duration, Instant};

const DS: &str = "tarn://crash/series";
const KILLS: usize = 15;
/// Rows of a write that gets killed (large enough to take a while) and of a normal write.
const BIG: i64 = 30_000;
const SMALL: i64 = 4_000;

/// The rows of write number `w` of `n` rows starting at position `start` (seconds after
/// BASE). Every write's instants carry `w` milliseconds, so no two writes share an instant
/// and the model order is simply by `ts`; each write overlaps the second half of the
/// previous one, so writes merge into existing row groups instead of only appending.
fn rows_of(w: usize, start: i64, n: i64) -> Vec<Row> {
    assert!(w < 1000);
    (0..n)
        .map(|j| {
            Row::new(
                BASE_MS + (start + j) * 1000 + w as i64,
                w as i64 * 1_000_000 + j,
            )
        })
        .collect()
}

struct Writes {
    /// (start, n) of each write index.
    specs: Vec<(i64, i64)>,
}

impl Writes {
    fn next(&mut self, n: i64) -> usize {
        let start = match self.specs.last() {
            Some((s, prev_n)) => s + prev_n / 2,
            None => 0,
        };
        self.specs.push((start, n));
        self.specs.len() - 1
    }

    fn rows(&self, w: usize) -> Vec<Row> {
        let (start, n) = self.specs[w];
        rows_of(w, start, n)
    }

    fn model(&self, landed: &[usize]) -> Vec<Row> {
        let mut all: Vec<Row> = landed.iter().flat_map(|w| self.rows(*w)).collect();
        all.sort_by_key(|r| r.ts_ms);
        all
    }
}

fn write_args(input: &std::path::Path, message: &str) -> Vec<String> {
    vec![
        "write".into(),
        DS.into(),
        input.display().to_string(),
        "--ordered-on".into(),
        "ts".into(),
        "--row-group-size".into(),
        "10000".into(),
        "--message".into(),
        message.into(),
    ]
}

fn killed_writers_leave_old_or_new_versions_and_vacuum_cleans_up(lake: TestLake) {
    let mut writes = Writes { specs: Vec::new() };
    // versions[v - 1] = the writes whose rows version v holds.
    let mut versions_landed: Vec<Vec<usize>> = Vec::new();
    let mut landed: Vec<usize> = Vec::new();

    // A first big write, timed to spread the kills over a whole write.
    let w0 = writes.next(BIG);
    let input = lake.file("w0.csv", csv_text(&writes.rows(w0)));
    let started = Instant::now();
    lake.run(write_args(&input, "write-0")).ok();
    let write_ms = (started.elapsed().as_millis() as u64).max(50);
    landed.push(w0);
    versions_landed.push(landed.clone());

    let seed = 0x7a12_c0de_u64;
    let mut rng = Rng::new(seed);
    let (mut killed, mut finished, mut landed_kills) = (0, 0, 0);
    for iteration in 0..KILLS {
        let head_before = versions_landed.len() as u64;
        let w = writes.next(BIG);
        let input = lake.file(&format!("w{w}.csv"), csv_text(&writes.rows(w)));
        // Kills spread over the whole write (later writes take a little longer than the
        // first, so some finish before the kill: those must simply have landed).
        let delay = rng.below(write_ms * 3 / 2 + 1);
        let context = format!(
            "iteration {iteration} (seed {seed:#x}, kill after {delay} ms of a ~{write_ms} ms write)"
        );
        let (args, mut child) = lake.spawn(write_args(&input, &format!("killed-{w}")));
        std::thread::sleep(Duration::from_millis(delay));
        let exited_before_kill = child.try_wait().expect("try_wait").is_some();
        child.kill().expect("SIGKILL the writer");
        let run = Run::from_output(args, child.wait_with_output().expect("reap the writer"));
        if exited_before_kill {
            finished += 1;
            assert_eq!(
                run.code,
                Some(0),
                "{context}: a write that was not killed must succeed: {}",
                run.describe()
            );
        } else if run.code.is_none() {
            killed += 1;
        } else {
            finished += 1;
        }

        // The lake opens and lists the dataset.
        lake.run(["--json", "ls"]).ok();
        let log = lake.log(DS);
        let head = versions(&log)[0];
        let expected_rows_before = writes.model(&landed).len() as u64;
        match head as i64 - head_before as i64 {
            0 => {
                assert_ne!(
                    run.code,
                    Some(0),
                    "{context}: the writer exited 0 but its version is missing: {log:#?}"
                );
                assert_eq!(
                    log[0]["rows"].as_u64(),
                    Some(expected_rows_before),
                    "{context}"
                );
            }
            1 => {
                landed_kills += 1;
                assert_eq!(
                    log[0]["message"],
                    format!("killed-{w}"),
                    "{context}: {log:#?}"
                );
                assert_eq!(
                    log[0]["rows"].as_u64(),
                    Some(expected_rows_before + BIG as u64),
                    "{context}: the killed write landed, so with all its rows"
                );
                landed.push(w);
                versions_landed.push(landed.clone());
                assert_eq!(
                    lake.read_csv(&format!("{DS}:v{head}"), &[]),
                    csv_text(&writes.model(&landed)),
                    "{context}: v{head}"
                );
            }
            n => panic!("{context}: one killed write made {n} versions: {log:#?}"),
        }
        assert_eq!(
            versions(&log),
            (1..=head).rev().collect::<Vec<_>>(),
            "{context}: versions must stay gap-free"
        );
        let info = lake.run(["--json", "info", DS]).ok().json();
        assert_eq!(info["version"].as_u64(), Some(head), "{context}: {info}");

        // A normal write after the kill succeeds and makes the next version.
        let n = writes.next(SMALL);
        let input = lake.file(&format!("w{n}.csv"), csv_text(&writes.rows(n)));
        let out = lake.run(write_args(&input, &format!("write-{n}"))).ok();
        assert!(
            out.stdout().contains(&format!("v{}", head + 1)),
            "{context}: {}",
            out.describe()
        );
        landed.push(n);
        versions_landed.push(landed.clone());
        assert_eq!(
            lake.read_csv(DS, &[]),
            csv_text(&writes.model(&landed)),
            "{context}: head after the next write"
        );
        let _ = std::fs::remove_file(&input);
    }
    eprintln!(
        "crash on {}: {killed} writers killed, {finished} finished first, {landed_kills} killed \
         writes landed; {} versions; writes took ~{write_ms} ms",
        lake.backend().name(),
        versions_landed.len()
    );

    // Vacuum with no grace: only orphans go, and every version still reads back.
    let before = lake.data_files();
    let report = lake.run(["--json", "vacuum", "--grace", "0s"]).ok().json();
    let orphans: Vec<String> = report["orphan_files"]
        .as_array()
        .unwrap_or_else(|| panic!("vacuum --json without orphan_files: {report}"))
        .iter()
        .map(|f| f.as_str().expect("orphan path").to_string())
        .collect();
    assert_eq!(
        report["expired_versions"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(
        report["unreferenced_files"],
        serde_json::json!([]),
        "{report}"
    );
    let after = lake.data_files();
    for o in &orphans {
        assert!(
            before.contains(o),
            "vacuum reports an orphan {o} that was not on disk: {before:#?}"
        );
        assert!(
            !after.contains(o),
            "vacuum reports {o} deleted but it is still there"
        );
    }
    assert_eq!(
        after.len(),
        before.len() - orphans.len(),
        "vacuum deleted exactly the reported orphans"
    );
    // Each version added exactly one file and none expired, so exactly one file per version
    // is referenced; everything else a killed writer left (including half-written temporary
    // files) is an orphan older than the zero grace period.
    assert_eq!(
        after.len(),
        versions_landed.len(),
        "after `vacuum --grace 0s` only the {} referenced files may remain, found: {after:#?}",
        versions_landed.len()
    );
    let log = lake.log(DS);
    assert_eq!(
        versions(&log),
        (1..=versions_landed.len() as u64).rev().collect::<Vec<_>>()
    );
    for (i, set) in versions_landed.iter().enumerate() {
        let v = i + 1;
        assert_eq!(
            lake.read_csv(&format!("{DS}:v{v}"), &["--columns", "id"]),
            id_csv(&writes.model(set)),
            "v{v} after vacuum"
        );
    }
    assert_eq!(
        lake.read_csv(DS, &[]),
        csv_text(&writes.model(&landed)),
        "head after vacuum"
    );
    // A second vacuum finds nothing more.
    let again = lake.run(["--json", "vacuum", "--grace", "0s"]).ok().json();
    assert_eq!(again["orphan_files"], serde_json::json!([]), "{again}");
    assert_eq!(again["bytes_freed"], 0, "{again}");
}

/// What a writer killed at each point of its put leaves in the storage, made deterministic:
/// a complete but uncommitted file (killed between the put and the commit) and, on local
/// storage, a staged, half-written file (killed inside the put: tarn writes `NAME#N` and
/// renames it to `NAME` when done; an S3 put is atomic, so S3 has no such file). Vacuum
/// keeps them within the grace period (a writer may still be running) and deletes them
/// after it; committed files stay.
fn vacuum_takes_a_killed_writers_files_only_after_the_grace_period(lake: TestLake) {
    let rows: Vec<Row> = (0..1000).map(|k| Row::new(BASE_MS + k * 1000, k)).collect();
    let input = lake.file("in.csv", csv_text(&rows));
    lake.run(write_args(&input, "only")).ok();
    let committed = lake.data_files();
    assert_eq!(committed.len(), 1, "{committed:?}");
    let parquet = lake.run(["read", DS, "--format", "parquet"]).ok().stdout;
    let uncommitted = "0123456789abcdef0123456789abcdef.parquet";
    lake.plant_file(&format!("crash/series/{uncommitted}"), parquet.clone());
    let mut planted = 1;
    if !lake.is_remote() {
        let staged = "fedcba9876543210fedcba9876543210.parquet#1";
        let dir = lake.lake.join("data").join("crash/series");
        std::fs::write(dir.join(staged), &parquet[..parquet.len() / 2])
            .expect("plant a staged file");
        planted += 1;
    }

    // Within the grace period (default 1h) nothing is taken.
    let report = lake.run(["--json", "vacuum"]).ok().json();
    assert_eq!(report["orphan_files"], serde_json::json!([]), "{report}");
    assert_eq!(lake.data_files().len(), 1 + planted);

    let report = lake.run(["--json", "vacuum", "--grace", "0s"]).ok().json();
    let left = lake.data_files();
    assert!(
        report["orphan_files"].as_array().is_some_and(|a| a
            .iter()
            .any(|f| f.as_str() == Some(&format!("crash/series/{uncommitted}")))),
        "the uncommitted file is an orphan: {report}"
    );
    assert_eq!(
        report["orphan_files"].as_array().map(Vec::len),
        Some(planted),
        "{report}"
    );
    assert_eq!(
        left, committed,
        "after `vacuum --grace 0s` only the committed file may remain (the staged `#1` file of a writer killed \
         inside its put is an orphan too): {report}"
    );
    assert_eq!(lake.read_csv(DS, &[]), csv_text(&rows));
}

crate::lake_tests!(
    killed_writers_leave_old_or_new_versions_and_vacuum_cleans_up,
    vacuum_takes_a_killed_writers_files_only_after_the_grace_period,
);
