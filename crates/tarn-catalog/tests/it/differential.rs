//! The PostgreSQL catalog against the SQLite one, which is the reference: random commits
//! (appends, replaces, stale bases), branches, fast-forwards, tags, deletions and vacuums
//! applied to both, and after every step the same outcome (or the same error message) and
//! the same answer to every read. Ids that a database allocates (row groups, files) are
//! compared by what they name, since PostgreSQL's identities are not rolled back with a
//! failed transaction; commit ids, which come from the clock row, must be equal.

use crate::backends::{self, Kind, TestCatalog};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tarn_catalog::*;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};

const BRANCHES: [&str; 3] = ["main", "dev", "feat"];
const TAGS: [&str; 2] = ["t1", "t2"];
const DATASET: &str = "demand/nc";

#[derive(Debug, Clone)]
enum Op {
    /// A commit on a branch: on its head, a stale base (`head - 1`) or one ahead; adding row
    /// groups and removing some of the base's live ones (by position).
    Commit {
        branch: usize,
        base: i8,
        add: Vec<(i64, i64)>,
        remove: Vec<usize>,
    },
    Branch {
        from: usize,
        back: u64,
        name: usize,
    },
    /// A fast-forward of `source` into `target`, or into the branch it was forked from.
    Merge {
        source: usize,
        target: Option<usize>,
    },
    Tag {
        name: usize,
        branch: usize,
        back: u64,
        force: bool,
    },
    Untag {
        name: usize,
    },
    DeleteBranch {
        branch: usize,
    },
    Expire {
        keep_last: u64,
        dry_run: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0..BRANCHES.len(),
            prop_oneof![6 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
            prop::collection::vec((0i64..100, 0i64..20), 0..4),
            prop::collection::vec(0usize..6, 0..3),
        )
            .prop_map(|(branch, base, add, remove)| Op::Commit {
                branch,
                base,
                add: add.into_iter().map(|(lo, len)| (lo, lo + len)).collect(),
                remove,
            }),
        3 => (0..BRANCHES.len(), 0u64..3, 1..BRANCHES.len())
            .prop_map(|(from, back, name)| Op::Branch { from, back, name }),
        3 => (1..BRANCHES.len(), prop::option::weighted(0.3, 0..BRANCHES.len()))
            .prop_map(|(source, target)| Op::Merge { source, target }),
        2 => (0..TAGS.len(), 0..BRANCHES.len(), 0u64..3, any::<bool>())
            .prop_map(|(name, branch, back, force)| Op::Tag { name, branch, back, force }),
        1 => (0..TAGS.len()).prop_map(|name| Op::Untag { name }),
        1 => (0..BRANCHES.len()).prop_map(|branch| Op::DeleteBranch { branch }),
        1 => (1u64..3, any::<bool>()).prop_map(|(keep_last, dry_run)| Op::Expire { keep_last, dry_run }),
    ]
}

fn scalar(v: &Option<SqlScalar>) -> String {
    format!("{v:?}")
}

struct Side {
    t: TestCatalog,
    dataset: i64,
}

impl Side {
    fn c(&self) -> &Catalog {
        &self.t.catalog
    }

    async fn branch(&self, name: &str) -> Option<BranchRecord> {
        self.c()
            .reader
            .branch(self.dataset, &BranchName::new(name).expect("branch"))
            .await
            .expect("branch")
    }

    async fn branch_name(&self, id: i64) -> String {
        self.c()
            .reader
            .branch_by_id(id)
            .await
            .expect("branch")
            .map_or_else(|| format!("#{id}"), |b| b.name.to_string())
    }

    /// Applies `op` and says what came of it, in words comparable across backends.
    async fn apply(&self, op: &Op, step: usize) -> String {
        let c = self.c();
        match op {
            Op::Commit {
                branch,
                base,
                add,
                remove,
            } => {
                let Some(b) = self.branch(BRANCHES[*branch]).await else {
                    return "no branch".into();
                };
                let base = (b.head as i64 + i64::from(*base)).max(0) as u64;
                let live = c
                    .reader
                    .row_groups(b.id, b.head, RowGroupRange::default())
                    .await
                    .expect("live");
                let removed: Vec<i64> = remove
                    .iter()
                    .filter_map(|i| live.get(*i).map(|r| r.id))
                    .collect();
                let request = CommitRequest {
                    dataset: DatasetName::new(DATASET).expect("name"),
                    branch: b.name.clone(),
                    base_version: base,
                    ordered_on: "ts".into(),
                    operation: "write".into(),
                    message: Some(format!("step {step}")),
                    schema_json: "{}".into(),
                    options_json: "{}".into(),
                    metadata: BTreeMap::from([("step".to_string(), step.to_string())]),
                    new_file: (!add.is_empty()).then(|| NewFile {
                        path: format!("s{step}"),
                        bytes: 100,
                        row_groups: add
                            .iter()
                            .enumerate()
                            .map(|(i, (lo, hi))| NewRowGroup {
                                rg_index: i as u32,
                                rows: (hi - lo + 1) as u64,
                                bytes: 10 * (i as u64 + 1),
                                min: SqlScalar::Integer(*lo),
                                max: SqlScalar::Integer(*hi),
                            })
                            .collect(),
                    }),
                    removed_row_groups: removed,
                    request_id: None,
                };
                match c.writer.commit(request).await {
                    Ok(o) => format!("v{} c{} rows {}", o.version, o.commit_id, o.rows),
                    // Its message names row-group ids, which each database allocates.
                    Err(e)
                        if e.to_string()
                            .contains(" it removes are not live at version ") =>
                    {
                        let text = e.to_string();
                        let (_, rest) = text.split_once(" it removes").unwrap_or_default();
                        format!("error: row group(s) … it removes{rest}")
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
            Op::Branch { from, back, name } => {
                let Some(b) = self.branch(BRANCHES[*from]).await else {
                    return "no branch".into();
                };
                let version = b.head.saturating_sub(*back);
                let name = BranchName::new(BRANCHES[*name]).expect("branch");
                match c
                    .writer
                    .create_branch(self.dataset, b.id, version, &name)
                    .await
                {
                    Ok(r) => format!(
                        "{} at v{} fork {:?} commit {:?}",
                        r.name, r.head, r.fork_version, r.created_commit
                    ),
                    Err(e) => format!("error: {e}"),
                }
            }
            Op::Merge { source, target } => {
                let s = BranchName::new(BRANCHES[*source]).expect("branch");
                let t = match target {
                    Some(t) => BRANCHES[*t].to_string(),
                    None => match self
                        .branch(s.as_str())
                        .await
                        .and_then(|b| b.parent_branch_id)
                    {
                        Some(parent) => self.branch_name(parent).await,
                        None => return "no parent".into(),
                    },
                };
                let t = BranchName::new(t).expect("branch");
                match c.writer.fast_forward(self.dataset, &s, &t).await {
                    Ok(MergeOutcome::UpToDate { version }) => format!("up to date v{version}"),
                    Ok(MergeOutcome::FastForward {
                        from,
                        to,
                        commit_id,
                        ..
                    }) => format!("v{from} -> v{to} c{commit_id}"),
                    Err(e) => format!("error: {e}"),
                }
            }
            Op::Tag {
                name,
                branch,
                back,
                force,
            } => {
                let Some(b) = self.branch(BRANCHES[*branch]).await else {
                    return "no branch".into();
                };
                let version = b.head.saturating_sub(*back);
                match c
                    .writer
                    .create_tag(self.dataset, TAGS[*name], b.id, version, *force)
                    .await
                {
                    Ok(t) => format!("{} = {}:v{}", t.name, t.branch, t.version),
                    Err(e) => format!("error: {e}"),
                }
            }
            Op::Untag { name } => match c.writer.delete_tag(self.dataset, TAGS[*name]).await {
                Ok(found) => format!("deleted {found}"),
                Err(e) => format!("error: {e}"),
            },
            Op::DeleteBranch { branch } => {
                let name = BranchName::new(BRANCHES[*branch]).expect("branch");
                match c.writer.delete_branch(self.dataset, &name).await {
                    Ok(()) => "deleted".into(),
                    Err(e) => format!("error: {e}"),
                }
            }
            Op::Expire { keep_last, dry_run } => {
                let policy = RetentionPolicy {
                    keep_last: Some(*keep_last),
                    ..Default::default()
                };
                match c.retention.expire(policy, *dry_run).await {
                    Ok(o) => {
                        let mut versions = o.expired_versions.clone();
                        versions.sort();
                        format!("expired {versions:?}, files {:?}", o.unreferenced_files)
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
        }
    }

    /// Everything the readers say about the lake, with database-allocated ids replaced by
    /// what they name.
    async fn snapshot(&self) -> Vec<String> {
        let c = self.c();
        let mut out = Vec::new();
        let last = c.reader.last_commit().await.expect("last");
        out.push(format!("last commit {last}"));
        for d in c.reader.datasets(None).await.expect("datasets") {
            out.push(format!(
                "dataset {} v{} rows {} rgs {} bytes {}",
                d.name, d.version, d.rows, d.row_groups, d.bytes
            ));
        }
        for b in c.reader.branches(self.dataset).await.expect("branches") {
            let parent = match b.parent_branch_id {
                Some(p) => self.branch_name(p).await,
                None => "-".into(),
            };
            out.push(format!(
                "branch {} head {} parent {parent} fork {:?} created {:?}",
                b.name, b.head, b.fork_version, b.created_commit
            ));
            // The log lists the retained versions; `version` reaches expired ones too.
            let retained: BTreeMap<u64, (i64, i64)> = c
                .reader
                .versions(b.id, None)
                .await
                .expect("versions")
                .iter()
                .map(|v| (v.version, (v.branch_id, v.commit_id)))
                .collect();
            out.push(format!(
                "  retained {:?}",
                retained.keys().rev().collect::<Vec<_>>()
            ));
            for n in (1..=b.head).rev() {
                let Some(v) = c.reader.version(b.id, n).await.expect("version") else {
                    out.push(format!("  v{n} is missing"));
                    continue;
                };
                out.push(format!(
                    "  v{} of {} c{} {} {:?} rows {} rgs {} bytes {} [{}, {}] {:?} expired {}",
                    v.version,
                    self.branch_name(v.branch_id).await,
                    v.commit_id,
                    v.operation,
                    v.message,
                    v.rows,
                    v.row_groups,
                    v.bytes,
                    scalar(&v.min),
                    scalar(&v.max),
                    v.metadata,
                    v.expired
                ));
                let listed = retained.get(&v.version).copied();
                let want = (!v.expired).then_some((v.branch_id, v.commit_id));
                if listed != want {
                    out.push(format!(
                        "  versions() disagrees on v{}: {listed:?}",
                        v.version
                    ));
                }
                for rg in c
                    .reader
                    .row_groups(v.branch_id, v.version, RowGroupRange::default())
                    .await
                    .expect("row groups")
                {
                    out.push(format!(
                        "    {}#{} rows {} bytes {} [{:?}, {:?}] file {} of {:?}",
                        rg.path,
                        rg.rg_index,
                        rg.rows,
                        rg.bytes,
                        rg.min,
                        rg.max,
                        rg.file_bytes,
                        rg.file_row_groups
                    ));
                }
                for (start, end) in [(Some(30), Some(60)), (Some(90), None), (None, Some(10))] {
                    let range = RowGroupRange {
                        start: start.map(SqlScalar::Integer),
                        end_excl: end.map(SqlScalar::Integer),
                    };
                    let found: Vec<String> = c
                        .reader
                        .row_groups(v.branch_id, v.version, range)
                        .await
                        .expect("range")
                        .iter()
                        .map(|r| format!("{}#{}", r.path, r.rg_index))
                        .collect();
                    out.push(format!("    [{start:?}, {end:?}): {found:?}"));
                }
            }
            let at: Vec<Option<u64>> = {
                let mut at = Vec::new();
                for commit in 0..=last {
                    at.push(
                        c.reader
                            .version_at_commit(b.id, commit)
                            .await
                            .expect("at commit"),
                    );
                }
                at
            };
            out.push(format!("  at commits {at:?}"));
        }
        for t in c.reader.tags(self.dataset).await.expect("tags") {
            out.push(format!("tag {} = {}:v{}", t.name, t.branch, t.version));
        }
        let mut files = c.retention.referenced_files().await.expect("files");
        files.sort();
        out.push(format!("files {files:?}"));
        out
    }
}

async fn side(kind: Kind) -> Side {
    let t = backends::open(kind).await.expect("backend");
    t.catalog
        .writer
        .commit(CommitRequest {
            dataset: DatasetName::new(DATASET).expect("name"),
            branch: BranchName::main(),
            base_version: 0,
            ordered_on: "ts".into(),
            operation: "create".into(),
            message: None,
            schema_json: "{}".into(),
            options_json: "{}".into(),
            metadata: BTreeMap::new(),
            new_file: Some(NewFile {
                path: "s0".into(),
                bytes: 100,
                row_groups: (0..4)
                    .map(|i| NewRowGroup {
                        rg_index: i,
                        rows: 10,
                        bytes: 10,
                        min: SqlScalar::Integer(i64::from(i) * 25),
                        max: SqlScalar::Integer(i64::from(i) * 25 + 24),
                    })
                    .collect(),
            }),
            removed_row_groups: vec![],
            request_id: None,
        })
        .await
        .expect("v1");
    let dataset = t
        .catalog
        .reader
        .dataset(&DatasetName::new(DATASET).expect("name"))
        .await
        .expect("dataset")
        .expect("exists")
        .id;
    let main = t
        .catalog
        .reader
        .branch(dataset, &BranchName::main())
        .await
        .expect("branch")
        .expect("main");
    t.catalog
        .writer
        .create_branch(dataset, main.id, 1, &BranchName::new("dev").expect("name"))
        .await
        .expect("dev");
    Side { t, dataset }
}

async fn run(ops: Vec<Op>) -> Result<(), String> {
    let (sqlite, postgres) = (side(Kind::Sqlite).await, side(Kind::Postgres).await);
    for (step, op) in ops.iter().enumerate() {
        let (a, b) = (
            sqlite.apply(op, step + 1).await,
            postgres.apply(op, step + 1).await,
        );
        if a != b {
            return Err(format!(
                "step {} {op:?}: SQLite says {a:?}, PostgreSQL {b:?}",
                step + 1
            ));
        }
        let (a, b) = (sqlite.snapshot().await, postgres.snapshot().await);
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            return Err(format!(
                "after step {} {op:?} ({a:?} -> outcome), reads differ at line {first}:\n\
                 SQLite:     {:?}\nPostgreSQL: {:?}\nfull SQLite:\n{}",
                step + 1,
                a.get(first),
                b.get(first),
                a.join("\n")
            ));
        }
    }
    Ok(())
}

#[test]
fn postgres_answers_as_sqlite_does() {
    if backends::postgres_admin_url().is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cases = std::env::var("TARN_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..30), |ops| {
        rt.block_on(run(ops)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
