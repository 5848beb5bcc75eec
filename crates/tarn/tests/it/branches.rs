//! Branches, tags and pinned lake states against a model (docs/design/0003).
//!
//! The model keeps, per branch, the rows of every version of its history (inherited ones
//! included), its parent and fork version, plus the tags and, after every operation, the
//! lake state and each branch's head rows at that state. Random sequences of writes and
//! deletes on random branches, branch creation and deletion, tagging and fast-forward merges
//! run against a real lake; then every `tarn://` form of every branch must resolve to the
//! model's rows, and every recorded lake state must read back as it was.

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use tarn::{ErrorKind, Lake, LakeState, RowGroupTarget, WriteRequest};

const DATASET: &str = "vc/x";

#[derive(Debug, Clone)]
enum Op {
    Write {
        branch: usize,
        rows: Vec<Row>,
    },
    Delete {
        branch: usize,
        start: i64,
        len: i64,
    },
    Branch {
        from: usize,
        version: usize,
        new: usize,
    },
    Tag {
        branch: usize,
        version: usize,
        name: usize,
        force: bool,
    },
    /// `target: None` merges into the branch the source was forked from (the usual case).
    Merge {
        source: usize,
        target: Option<usize>,
    },
    DeleteBranch {
        branch: usize,
    },
}

const NAMES: [&str; 4] = ["main", "dev", "exp", "fix"];
const TAGS: [&str; 3] = ["gold", "release-1", "t.2"];

fn op() -> impl Strategy<Value = Op> {
    let rows = proptest::collection::vec((0i64..40, 0i64..5, 0i64..100), 1..6);
    prop_oneof![
        4 => (0..4usize, rows).prop_map(|(branch, rows)| Op::Write { branch, rows }),
        1 => (0..4usize, 0i64..40, 1i64..10).prop_map(|(branch, start, len)| Op::Delete { branch, start, len }),
        2 => (0..4usize, 0..8usize, 1..4usize).prop_map(|(from, version, new)| Op::Branch { from, version, new }),
        1 => (0..4usize, 0..8usize, 0..3usize, any::<bool>()).prop_map(|(branch, version, name, force)| Op::Tag { branch, version, name, force }),
        3 => (1..4usize, proptest::option::weighted(0.25, 0..4usize)).prop_map(|(source, target)| Op::Merge { source, target }),
        1 => (1..4usize).prop_map(|branch| Op::DeleteBranch { branch }),
    ]
}

#[derive(Debug, Clone)]
struct MBranch {
    /// Rows of versions 1..=head.
    history: Vec<Vec<Row>>,
    parent: Option<String>,
    fork: u64,
    /// Index of the operation that created it (a re-created name is a new branch).
    born: usize,
}

/// Each branch's (birth, head rows) at one lake state.
type Heads = BTreeMap<String, (usize, Vec<Row>)>;

#[derive(Debug, Default)]
struct Model {
    branches: BTreeMap<String, MBranch>,
    /// Tag -> (holding branch, version).
    tags: BTreeMap<String, (String, u64)>,
    /// After each operation: the lake state and each branch's (birth, head rows).
    states: Vec<(LakeState, Heads)>,
}

impl Model {
    fn head(&self, b: &str) -> u64 {
        self.branches[b].history.len() as u64
    }

    /// The branch that holds version `v` of `b` (docs/design/0003).
    fn holder(&self, b: &str, v: u64) -> String {
        let mut cur = b.to_string();
        loop {
            let br = &self.branches[&cur];
            match &br.parent {
                Some(p) if v <= br.fork => cur = p.clone(),
                _ => return cur,
            }
        }
    }
}

fn uri(branch: &str, reference: &str) -> String {
    let mut u = format!("tarn://{DATASET}");
    if branch != "main" {
        u.push('@');
        u.push_str(branch);
    }
    if !reference.is_empty() {
        u.push(':');
        u.push_str(reference);
    }
    u
}

async fn rows_of(lake: &Lake, u: &str) -> Result<Vec<Row>, String> {
    let snap = lake.snapshot(u).await.map_err(|e| format!("{u}: {e}"))?;
    let batches = lake
        .read(&snap, &tarn::ReadRequest::default())
        .await
        .map_err(|e| format!("read {u}: {e}"))?;
    Ok(kiv_rows(&batches))
}

async fn apply(lake: &Lake, model: &mut Model, step: usize, op: &Op) -> Result<(), String> {
    let exists = |m: &Model, i: usize| m.branches.contains_key(NAMES[i]);
    match op {
        Op::Write { branch, rows } => {
            let b = NAMES[*branch];
            if !exists(model, *branch) {
                // Only main may come into being by a write.
                let r = lake
                    .write(&uri(b, ""), kiv_batch(rows), WriteRequest::new())
                    .await;
                if b == "main" {
                    r.map_err(|e| e.to_string())?;
                    model.branches.insert(
                        b.into(),
                        MBranch {
                            history: vec![model_write(&[], rows, Dup::None)],
                            parent: None,
                            fork: 0,
                            born: step,
                        },
                    );
                } else {
                    let e = r.err().ok_or("a write to a missing branch succeeded")?;
                    if e.kind() != ErrorKind::NotFound {
                        return Err(format!("write to missing branch: {e}"));
                    }
                }
                return Ok(());
            }
            let out = lake
                .write(&uri(b, ""), kiv_batch(rows), WriteRequest::new())
                .await
                .map_err(|e| e.to_string())?;
            let br = model.branches.get_mut(b).ok_or("branch")?;
            let next = model_write(br.history.last().ok_or("empty history")?, rows, Dup::None);
            if out.version != Some(br.history.len() as u64 + 1) {
                return Err(format!("write on {b}: version {:?}", out.version));
            }
            br.history.push(next);
        }
        Op::Delete { branch, start, len } => {
            let b = NAMES[*branch];
            if !exists(model, *branch) {
                return Ok(());
            }
            let out = lake
                .delete_range(
                    &uri(b, ""),
                    &start.to_string(),
                    &(start + len).to_string(),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            let br = model.branches.get_mut(b).ok_or("branch")?;
            let head = br.history.last().ok_or("empty")?.clone();
            let next = model_delete(&head, *start, start + len);
            match out.version {
                None if next == head => {}
                Some(v) if v == br.history.len() as u64 + 1 && next != head => {
                    br.history.push(next)
                }
                other => return Err(format!("delete on {b}: version {other:?}")),
            }
        }
        Op::Branch { from, version, new } => {
            let (f, n) = (NAMES[*from], NAMES[*new]);
            if !exists(model, *from) {
                return Ok(());
            }
            let head = model.head(f);
            let v = (*version as u64 % head) + 1;
            let r = lake.create_branch(&uri(f, &format!("v{v}")), n).await;
            if model.branches.contains_key(n) {
                let e = r.err().ok_or("re-created an existing branch")?;
                if !e.to_string().contains("already exists") {
                    return Err(format!("branch exists: {e}"));
                }
                return Ok(());
            }
            let info = r.map_err(|e| e.to_string())?;
            if info.head != v || info.parent.as_deref() != Some(f) {
                return Err(format!("branch info {info:?}"));
            }
            let history = model.branches[f].history[..v as usize].to_vec();
            model.branches.insert(
                n.into(),
                MBranch {
                    history,
                    parent: Some(f.into()),
                    fork: v,
                    born: step,
                },
            );
        }
        Op::Tag {
            branch,
            version,
            name,
            force,
        } => {
            let (b, t) = (NAMES[*branch], TAGS[*name]);
            if !exists(model, *branch) {
                return Ok(());
            }
            let v = (*version as u64 % model.head(b)) + 1;
            let r = lake.tag(&uri(b, &format!("v{v}")), t, *force).await;
            if model.tags.contains_key(t) && !force {
                let e = r.err().ok_or("re-tagged without --force")?;
                if !e.to_string().contains("already exists") {
                    return Err(format!("tag exists: {e}"));
                }
                return Ok(());
            }
            let info = r.map_err(|e| e.to_string())?;
            let holder = model.holder(b, v);
            if info.branch != holder || info.version != v {
                return Err(format!("tag info {info:?}, expected {holder}:v{v}"));
            }
            model.tags.insert(t.into(), (holder, v));
        }
        Op::Merge { source, target } => {
            let s = NAMES[*source];
            let Some(src) = model.branches.get(s) else {
                return Ok(());
            };
            let t = match target {
                Some(t) => NAMES[*t],
                None => match &src.parent {
                    Some(p) => NAMES
                        .iter()
                        .find(|n| **n == p.as_str())
                        .copied()
                        .ok_or("parent")?,
                    None => return Ok(()),
                },
            };
            if !model.branches.contains_key(t) {
                return Ok(());
            }
            let r = lake.merge(&uri(s, ""), t).await;
            let src = model.branches[s].clone();
            let ok = s != t && src.parent.as_deref() == Some(t);
            let up_to_date = ok && src.history.len() as u64 == src.fork;
            let ff = ok && !up_to_date && model.head(t) == src.fork;
            if up_to_date {
                let info = r.map_err(|e| e.to_string())?;
                if info.outcome != "up-to-date" {
                    return Err(format!("expected up-to-date: {info:?}"));
                }
            } else if ff {
                let info = r.map_err(|e| e.to_string())?;
                if info.outcome != "fast-forward" || info.to_version != src.history.len() as u64 {
                    return Err(format!("expected fast-forward: {info:?}"));
                }
                let head = src.history.len() as u64;
                model.branches.get_mut(t).ok_or("t")?.history = src.history.clone();
                model.branches.get_mut(s).ok_or("s")?.fork = head;
                for (holder, v) in model.tags.values_mut() {
                    if holder == s && *v <= head {
                        *holder = t.to_string();
                    }
                }
            } else {
                let e = r
                    .err()
                    .ok_or_else(|| format!("merge {s} -> {t} succeeded"))?;
                if e.kind() != ErrorKind::InvalidInput {
                    return Err(format!("merge refusal kind: {e}"));
                }
            }
        }
        Op::DeleteBranch { branch } => {
            let b = NAMES[*branch];
            if !exists(model, *branch) {
                return Ok(());
            }
            let r = lake.delete_branch(&uri(b, "")).await;
            let fork = model.branches[b].fork;
            let tagged = model.tags.values().any(|(h, _)| h == b);
            let has_child = model
                .branches
                .values()
                .any(|c| c.parent.as_deref() == Some(b) && c.fork > fork);
            if tagged || has_child {
                let e = r.err().ok_or("deleted a branch others depend on")?;
                if e.kind() != ErrorKind::InvalidInput {
                    return Err(format!("delete refusal kind: {e}"));
                }
                return Ok(());
            }
            r.map_err(|e| e.to_string())?;
            let parent = model.branches.remove(b).ok_or("b")?.parent;
            for c in model.branches.values_mut() {
                if c.parent.as_deref() == Some(b) {
                    c.parent = parent.clone();
                }
            }
        }
    }
    Ok(())
}

async fn check(lake: &Lake, model: &Model) -> Result<(), String> {
    let mut listed: Vec<String> = lake
        .branches(DATASET)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|b| b.name)
        .collect();
    listed.sort();
    let expected: Vec<String> = model.branches.keys().cloned().collect();
    if listed != expected {
        return Err(format!("branches {listed:?}, model {expected:?}"));
    }
    for (name, br) in &model.branches {
        let head = br.history.len();
        for (i, rows) in br.history.iter().enumerate() {
            let v = i + 1;
            let got = rows_of(lake, &uri(name, &format!("v{v}"))).await?;
            if &got != rows {
                return Err(format!("{name}:v{v}: {got:?} != {rows:?}"));
            }
        }
        for (reference, v) in [
            ("", head),
            ("latest", head),
            ("-1", head),
            ("0", 1),
            (&format!("-{head}"), 1),
            (&format!("{}", head - 1), head),
        ] {
            let got = rows_of(lake, &uri(name, reference)).await?;
            if got != br.history[v - 1] {
                return Err(format!("{name}:{reference} is not v{v}"));
            }
        }
        let e = lake
            .snapshot(&uri(name, &format!("v{}", head + 1)))
            .await
            .err()
            .ok_or("a version past the head resolved")?;
        if e.kind() != ErrorKind::NotFound {
            return Err(format!("past head: {e}"));
        }
        let log: Vec<u64> = lake
            .log(&uri(name, ""), None)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.version)
            .collect();
        if log != (1..=head as u64).rev().collect::<Vec<_>>() {
            return Err(format!("log of {name}: {log:?}"));
        }
        let limited = lake
            .log(&uri(name, ""), Some(2))
            .await
            .map_err(|e| e.to_string())?;
        if limited.len() != head.min(2) {
            return Err(format!("log --limit 2 of {name}: {}", limited.len()));
        }
    }
    for (tag, (holder, v)) in &model.tags {
        let rows = &model.branches[holder].history[*v as usize - 1];
        let got = rows_of(lake, &uri("main", tag)).await?;
        if &got != rows {
            return Err(format!("tag {tag}: {got:?} != {rows:?}"));
        }
        // Through a branch, a tag resolves only if its version is in that branch's history.
        for (name, br) in &model.branches {
            // Name the branch even for main: `tarn://x:tag` does not go through a branch.
            let via = format!("tarn://{DATASET}@{name}:{tag}");
            let through = lake.snapshot(&via).await;
            let in_history = *v <= br.history.len() as u64 && model.holder(name, *v) == *holder;
            match through {
                Ok(_) if in_history => {
                    let got = rows_of(lake, &via).await?;
                    if &got != rows {
                        return Err(format!("tag {tag} through {name}: {got:?} != {rows:?}"));
                    }
                }
                Err(e) if !in_history && e.kind() == ErrorKind::NotFound => {}
                Ok(_) => return Err(format!("tag {tag} resolved through {name}")),
                Err(e) => return Err(format!("tag {tag} through {name}: {e}")),
            }
        }
    }
    for (state, heads) in &model.states {
        for (name, br) in &model.branches {
            let got = lake.snapshot_at(&uri(name, ""), Some(*state)).await;
            match heads.get(name) {
                Some((born, rows)) if *born == br.born => {
                    let snap = got.map_err(|e| format!("{name} at {state:?}: {e}"))?;
                    let batches = lake
                        .read(&snap, &tarn::ReadRequest::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    if &kiv_rows(&batches) != rows {
                        return Err(format!("{name} at {state:?} changed"));
                    }
                }
                _ => {
                    let e = got
                        .err()
                        .ok_or_else(|| format!("{name} resolved at {state:?} before it existed"))?;
                    if !e.to_string().contains("did not exist yet") {
                        return Err(format!("{name} at {state:?}: {e}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Twelve rows in four row groups, so that writes rewrite some row groups and keep others.
fn seed() -> Vec<Row> {
    (0..12).map(|i| (i * 3, 100 + i, i)).collect()
}

/// Runs `ops` on a fresh lake in `place`, then checks every form and state against the model.
async fn run_case(place: &LakePlace, ops: Vec<Op>) -> Result<(), String> {
    {
        {
            let lake = relaxed_lake(place).await;
            // Small row groups, so that branches share some row groups and rewrite others.
            lake.write(
                &uri("main", ""),
                kiv_batch(&seed()),
                WriteRequest::new()
                    .ordered_on("k")
                    .row_group_target(RowGroupTarget::Rows(3)),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut model = Model::default();
            model.branches.insert(
                "main".into(),
                MBranch {
                    history: vec![seed()],
                    parent: None,
                    fork: 0,
                    born: 0,
                },
            );
            for (step, op) in ops.iter().enumerate() {
                apply(&lake, &mut model, step + 1, op)
                    .await
                    .map_err(|e| format!("step {step} {op:?}: {e}"))?;
                let state = lake.state().await.map_err(|e| e.to_string())?;
                let heads = model
                    .branches
                    .iter()
                    .map(|(n, b)| {
                        (
                            n.clone(),
                            (b.born, b.history.last().cloned().unwrap_or_default()),
                        )
                    })
                    .collect();
                model.states.push((state, heads));
            }
            check(&lake, &model).await
        }
    }
}

/// Every case in a fresh lake of the test's backend.
async fn branches_and_tags_match_the_model(place: LakePlace) {
    let backend = place.backend;
    let mut runner = model_runner(backend, 24, 6);
    runner
        .run(&proptest::collection::vec(op(), 1..20), |ops| {
            block_on(run_case(&case_place(backend), ops)).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The usual loop, fixed: work on a branch, fast-forward main, work on, fast-forward again,
/// rewriting row groups main had before the first fork.
async fn repeated_fast_forwards_match_the_model(place: LakePlace) {
    let ops = vec![
        Op::Branch {
            from: 0,
            version: 0,
            new: 1,
        },
        Op::Write {
            branch: 1,
            rows: vec![(40, 1, 1)],
        },
        Op::Merge {
            source: 1,
            target: None,
        },
        Op::Write {
            branch: 1,
            rows: vec![(1, 2, 2), (19, 2, 2)],
        },
        Op::Merge {
            source: 1,
            target: None,
        },
    ];
    run_case(&place, ops)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

tarn_testkit::backend_tests!(
    branches_and_tags_match_the_model,
    repeated_fast_forwards_match_the_model,
);
