//! Random sequences of mutations checked against a plain-vector model of SPEC §3.
//!
//! Datasets have `k: Int64` (ordered_on), `id: Int64`, `v: Int64`, keys from a small domain
//! (so overlaps, duplicates and equal row-group boundaries are frequent) and a row-group
//! target of 1 to 5 rows. After every operation the test checks the head against the model,
//! that versions are gap-free with exactly one per change, that every earlier version still
//! reads back as the model was then (time travel), random range reads and projections, and
//! the row-group layout rules (never empty, never above target, no stranded off-target row
//! group, and the trailing rule of the write: the size-tiered tail or `max_off_target`).

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, BTreeSet};
use tarn::coalesce::{self, Coalescing};
use tarn::{Lake, ReadRequest, RowGroupTarget, WriteRequest};

const URI: &str = "tarn://model/ds";

#[derive(Debug, Clone, Default)]
struct MetaChange {
    set: Vec<(String, String)>,
    unset: Vec<String>,
}

impl MetaChange {
    fn apply(&self, meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out = meta.clone();
        for k in &self.unset {
            out.remove(k);
        }
        for (k, v) in &self.set {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    fn on(&self, mut req: WriteRequest) -> WriteRequest {
        for k in &self.unset {
            req = req.unset_meta(k.clone());
        }
        for (k, v) in &self.set {
            req = req.meta(k.clone(), v.clone());
        }
        req
    }
}

/// A read to compare with the model: `[start, end)` and a projection.
#[derive(Debug, Clone)]
struct Probe {
    start: Option<i64>,
    end: Option<i64>,
    columns: Option<Vec<&'static str>>,
    /// Read this version instead of the head (taken modulo the number of versions).
    version: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    /// `dup`: the per-write `duplicates_on` override (`None`: the dataset's stored one);
    /// `max_off_target` the same for the trailing rule.
    Write {
        rows: Vec<Row>,
        dup: Option<Dup>,
        max_off_target: Option<u32>,
        meta: MetaChange,
        name_ordered_on: bool,
    },
    Overwrite {
        rows: Vec<Row>,
        meta: MetaChange,
    },
    Delete {
        start: i64,
        end: i64,
    },
    /// A delete whose bounds are keys of the current rows (picked by index modulo the row
    /// count, `end` nudged by -1, 0 or +1), so that bounds fall on row-group boundaries.
    DeleteAtKeys {
        start: usize,
        end: usize,
        nudge: i64,
    },
    Compact,
    Meta(MetaChange),
}

#[derive(Debug, Clone)]
struct Scenario {
    target: u64,
    /// The stored trailing rule: `None` is the tiered default.
    max_off_target: Option<u32>,
    stored_dup: Dup,
    first: Vec<Row>,
    ops: Vec<(Op, Vec<Probe>)>,
}

fn dup_strategy() -> impl Strategy<Value = Dup> {
    prop_oneof![Just(Dup::None), Just(Dup::Id), Just(Dup::All)]
}

fn rows_strategy(min: usize) -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0i64..40, 0i64..4, 0i64..3), min..12)
}

fn meta_strategy() -> impl Strategy<Value = MetaChange> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from);
    let value = prop_oneof![Just("1"), Just("2")].prop_map(String::from);
    (
        prop::collection::vec((key.clone(), value), 0..3),
        prop::collection::vec(key, 0..2),
    )
        .prop_map(|(set, unset)| MetaChange { set, unset })
}

fn probe_strategy() -> impl Strategy<Value = Probe> {
    let columns = prop_oneof![
        Just(None),
        Just(Some(vec!["k"])),
        Just(Some(vec!["v"])),
        Just(Some(vec!["v", "k"])),
        Just(Some(vec!["id", "v"])),
        Just(Some(vec!["v", "id", "k"])),
    ];
    (
        prop::option::of(-2i64..44),
        prop::option::of(-2i64..44),
        columns,
        prop::option::weighted(0.3, 0usize..16),
    )
        .prop_map(|(start, end, columns, version)| {
            let (start, end) = match (start, end) {
                (Some(s), Some(e)) if s >= e => (Some(e), Some(s + 1)),
                other => other,
            };
            Probe {
                start,
                end,
                columns,
                version,
            }
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (rows_strategy(0), prop::option::of(dup_strategy()), prop::option::weighted(0.2, 0u32..=2), prop::option::weighted(0.3, meta_strategy()), any::<bool>())
            .prop_map(|(rows, dup, max_off_target, meta, name_ordered_on)| Op::Write { rows, dup, max_off_target, meta: meta.unwrap_or_default(), name_ordered_on }),
        1 => (rows_strategy(0), prop::option::weighted(0.3, meta_strategy()))
            .prop_map(|(rows, meta)| Op::Overwrite { rows, meta: meta.unwrap_or_default() }),
        1 => (-2i64..42, 1i64..20).prop_map(|(start, len)| Op::Delete { start, end: start + len }),
        2 => (any::<usize>(), any::<usize>(), -1i64..=1).prop_map(|(start, end, nudge)| Op::DeleteAtKeys { start, end, nudge }),
        1 => Just(Op::Compact),
        1 => meta_strategy().prop_map(Op::Meta),
    ]
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![3 => 1u64..=5, 1 => 6u64..=40],
        prop::option::of(0u32..=2),
        dup_strategy(),
        rows_strategy(1),
        prop::collection::vec(
            (op_strategy(), prop::collection::vec(probe_strategy(), 1..3)),
            1..8,
        ),
    )
        .prop_map(
            |(target, max_off_target, stored_dup, first, ops)| Scenario {
                target,
                max_off_target,
                stored_dup,
                first,
                ops,
            },
        )
}

/// The model state of one version.
#[derive(Debug, Clone)]
struct State {
    rows: Vec<Row>,
    meta: BTreeMap<String, String>,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn project(rows: &[Row], probe: &Probe) -> Vec<Vec<(String, i64)>> {
    let cols = probe
        .columns
        .clone()
        .unwrap_or_else(|| vec!["k", "id", "v"]);
    rows.iter()
        .filter(|r| probe.start.is_none_or(|s| r.0 >= s) && probe.end.is_none_or(|e| r.0 < e))
        .map(|r| {
            cols.iter()
                .map(|c| {
                    let v = match *c {
                        "k" => r.0,
                        "id" => r.1,
                        _ => r.2,
                    };
                    (c.to_string(), v)
                })
                .collect()
        })
        .collect()
}

/// Checks the row groups of the head: never empty, never above target, in order, equal
/// boundary values only inside one file, and `common::tail_rules` (no stranded off-target
/// row group, the tail that `rule`, the trailing rule of the mutation, leaves) against the
/// row-group ids of the head `before` the mutation.
async fn check_layout(
    lake: &Lake,
    sc: &Scenario,
    state: &State,
    rule: Coalescing,
    before: &BTreeSet<i64>,
    after_compact: bool,
) -> Result<(), String> {
    let snap = lake.snapshot(URI).await.map_err(|e| e.to_string())?;
    let rgs = snap
        .row_groups(lake, None, None)
        .await
        .map_err(|e| e.to_string())?;
    let n = sc.target;
    let sizes: Vec<u64> = rgs.iter().map(|r| r.rows).collect();
    ensure!(sizes.iter().all(|&s| s > 0), "empty row group: {sizes:?}");
    ensure!(
        sizes.iter().all(|&s| s <= n),
        "row group above target {n}: {sizes:?}"
    );
    ensure!(
        sizes.iter().sum::<u64>() == state.rows.len() as u64,
        "row groups hold {} rows, model {}",
        sizes.iter().sum::<u64>(),
        state.rows.len()
    );
    ensure!(
        snap.rows() == state.rows.len() as u64,
        "version.rows {} != {}",
        snap.rows(),
        state.rows.len()
    );
    ensure!(
        snap.row_group_count() == rgs.len() as u64,
        "version.row_groups {} != {}",
        snap.row_group_count(),
        rgs.len()
    );
    for w in rgs.windows(2) {
        ensure!(
            w[0].min <= w[0].max && w[0].max <= w[1].min,
            "row groups out of order: {:?} then {:?}",
            w[0],
            w[1]
        );
        ensure!(
            w[0].max != w[1].min || w[0].path == w[1].path,
            "row groups sharing boundary value {} live in different files: {:?} / {:?}",
            w[1].min,
            w[0],
            w[1]
        );
    }
    tail_rules(&rgs, n, rule, before)?;
    if after_compact && let Some((_, init)) = sizes.split_last() {
        ensure!(
            init.iter().all(|&s| s == n),
            "compaction left row groups off target {n}: {sizes:?}"
        );
    }
    let info = snap.info(lake).await.map_err(|e| e.to_string())?;
    ensure!(
        info.rows == state.rows.len() as u64,
        "info.rows {} != {}",
        info.rows,
        state.rows.len()
    );
    let (min, max) = (
        state.rows.first().map(|r| r.0),
        state.rows.last().map(|r| r.0),
    );
    ensure!(
        info.min == min.map(Into::into) && info.max == max.map(Into::into),
        "info min/max {:?}/{:?}, model {min:?}/{max:?}",
        info.min,
        info.max
    );
    Ok(())
}

async fn check_versions(lake: &Lake, history: &[State]) -> Result<(), String> {
    let log = lake.log(URI, None).await.map_err(|e| e.to_string())?;
    let versions: Vec<u64> = log.iter().map(|v| v.version).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).rev().collect();
    ensure!(
        versions == expected,
        "log has versions {versions:?}, expected {expected:?}"
    );
    for w in log.windows(2) {
        ensure!(
            w[0].commit_id > w[1].commit_id,
            "commit ids not increasing: {:?}",
            log
        );
        ensure!(
            w[0].timestamp >= w[1].timestamp,
            "timestamps go backwards: {:?}",
            log
        );
    }
    for (i, state) in history.iter().enumerate() {
        let uri = format!("{URI}:v{}", i + 1);
        let snap = lake
            .snapshot(&uri)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        let got = kiv_rows(
            &lake
                .read(&snap, &ReadRequest::default())
                .await
                .map_err(|e| format!("{uri}: {e}"))?,
        );
        ensure!(
            got == state.rows,
            "{uri} reads\n  {got:?}\nbut was\n  {:?}",
            state.rows
        );
        ensure!(
            snap.metadata() == &state.meta,
            "{uri} metadata {:?}, was {:?}",
            snap.metadata(),
            state.meta
        );
        ensure!(
            snap.rows() == state.rows.len() as u64,
            "{uri}: version.rows {}",
            snap.rows()
        );
    }
    Ok(())
}

async fn check_probe(lake: &Lake, history: &[State], probe: &Probe) -> Result<(), String> {
    let index = probe
        .version
        .map_or(history.len() - 1, |v| v % history.len());
    let uri = format!("{URI}:v{}", index + 1);
    let snap = lake
        .snapshot(&uri)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let request = ReadRequest {
        start: probe.start.map(int),
        end: probe.end.map(int),
        columns: probe
            .columns
            .as_ref()
            .map(|c| c.iter().map(|s| s.to_string()).collect()),
    };
    let batches = lake
        .read(&snap, &request)
        .await
        .map_err(|e| format!("{uri} {probe:?}: {e}"))?;
    let want_cols: Vec<&str> = probe
        .columns
        .clone()
        .unwrap_or_else(|| vec!["k", "id", "v"]);
    for b in &batches {
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        ensure!(
            names == want_cols,
            "{uri} {probe:?}: batch columns {names:?}"
        );
        ensure!(
            b.num_rows() > 0,
            "{uri} {probe:?}: empty batch in the stream"
        );
    }
    let got = named_rows(&batches);
    let want = project(&history[index].rows, probe);
    ensure!(
        got == want,
        "{uri} {probe:?} reads\n  {got:?}\nexpected\n  {want:?}"
    );
    Ok(())
}

fn rule(max_off_target: Option<u32>) -> Coalescing {
    max_off_target.map_or(
        Coalescing::Tiered {
            fan_in: coalesce::FAN_IN,
        },
        Coalescing::MaxOffTarget,
    )
}

/// The ids of the head's row groups (a kept row group keeps its id).
async fn row_group_id_set(lake: &Lake) -> Result<BTreeSet<i64>, String> {
    let snap = lake.snapshot(URI).await.map_err(|e| e.to_string())?;
    Ok(snap
        .row_groups(lake, None, None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

async fn run(backend: Backend, sc: Scenario) -> Result<(), String> {
    let place = case_place(backend);
    let lake = relaxed_lake(&place).await;
    let mut history: Vec<State> = Vec::new();

    let mut request = WriteRequest::new()
        .ordered_on("k")
        .duplicates_on(sc.stored_dup.to_tarn())
        .row_group_target(RowGroupTarget::Rows(sc.target));
    if let Some(n) = sc.max_off_target {
        request = request.max_off_target(n);
    }
    let first = lake
        .write(URI, kiv_batch(&sc.first), request)
        .await
        .map_err(|e| format!("first write: {e}"))?;
    ensure!(
        first.version == Some(1),
        "first write created {:?}",
        first.version
    );
    history.push(State {
        rows: model_write(&[], &sc.first, sc.stored_dup),
        meta: BTreeMap::new(),
    });
    check_versions(&lake, &history).await?;
    let stored_rule = rule(sc.max_off_target);
    check_layout(
        &lake,
        &sc,
        &history[0],
        stored_rule,
        &BTreeSet::new(),
        false,
    )
    .await?;
    // The rule of the last mutation that wrote row groups.
    let mut last_rule = stored_rule;

    for (step, (op, probes)) in sc.ops.iter().enumerate() {
        let before = history.last().cloned().ok_or("no history")?;
        let ids_before = row_group_id_set(&lake).await?;
        let ctx = |e: String| format!("op #{step} {op:?}: {e}");
        // What the model says, and whether the op must create a version: `Some(true)` must,
        // `Some(false)` must not, `None` may (a delete that removes no row).
        let (after, must_version, outcome) = match op {
            Op::Write {
                rows,
                dup,
                max_off_target,
                meta,
                name_ordered_on,
            } => {
                let mut req = meta.on(WriteRequest::new());
                if let Some(d) = dup {
                    req = req.duplicates_on(d.to_tarn());
                }
                if let Some(n) = max_off_target {
                    req = req.max_off_target(*n);
                }
                if !rows.is_empty() {
                    last_rule = rule(max_off_target.or(sc.max_off_target));
                }
                if *name_ordered_on {
                    req = req.ordered_on("k");
                }
                let out = lake
                    .write(URI, kiv_batch(rows), req)
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                let after = State {
                    rows: model_write(&before.rows, rows, dup.unwrap_or(sc.stored_dup)),
                    meta: meta.apply(&before.meta),
                };
                let must = !rows.is_empty() || after.meta != before.meta;
                (after, Some(must), out)
            }
            Op::Overwrite { rows, meta } => {
                let out = lake
                    .overwrite(URI, kiv_batch(rows), meta.on(WriteRequest::new()))
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                let after = State {
                    rows: model_overwrite(rows, sc.stored_dup),
                    meta: meta.apply(&before.meta),
                };
                let must = !before.rows.is_empty() || !rows.is_empty() || after.meta != before.meta;
                (after, Some(must), out)
            }
            Op::Delete { .. } | Op::DeleteAtKeys { .. } => {
                let (start, end) = match *op {
                    Op::Delete { start, end } => (start, end),
                    Op::DeleteAtKeys { start, end, nudge } if !before.rows.is_empty() => {
                        let n = before.rows.len();
                        let (a, b) = (before.rows[start % n].0, before.rows[end % n].0 + nudge);
                        if a < b {
                            (a, b)
                        } else {
                            (b.min(a), a.max(b) + 1)
                        }
                    }
                    _ => (0, 1),
                };
                let out = lake
                    .delete_range(URI, &start.to_string(), &end.to_string(), None)
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                let after = State {
                    rows: model_delete(&before.rows, start, end),
                    meta: before.meta.clone(),
                };
                let must = (after.rows != before.rows).then_some(true);
                (after, must, out)
            }
            Op::Compact => {
                let out = lake
                    .compact(URI, None)
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                (before.clone(), Some(true), out)
            }
            Op::Meta(meta) => {
                let out = lake
                    .set_metadata(URI, meta.on(WriteRequest::new()))
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                let after = State {
                    rows: before.rows.clone(),
                    meta: meta.apply(&before.meta),
                };
                let must = after.meta != before.meta;
                (after, Some(must), out)
            }
        };
        let head_before = history.len() as u64;
        match outcome.version {
            Some(v) => {
                ensure!(
                    v == head_before + 1,
                    "{}",
                    ctx(format!("created v{v}, head was v{head_before}"))
                );
                ensure!(
                    must_version != Some(false),
                    "{}",
                    ctx("created a version although nothing changed".into())
                );
                ensure!(
                    outcome.rows == after.rows.len() as u64,
                    "{}",
                    ctx(format!(
                        "outcome.rows {} != model {}",
                        outcome.rows,
                        after.rows.len()
                    ))
                );
                history.push(after);
            }
            None => {
                ensure!(
                    must_version != Some(true),
                    "{}",
                    ctx("created no version although the dataset changed".into())
                );
                ensure!(
                    after.rows == before.rows && after.meta == before.meta,
                    "{}",
                    ctx("no version, but the model changed".into())
                );
            }
        }
        check_versions(&lake, &history).await.map_err(ctx)?;
        let head = history.last().ok_or("no history")?;
        if !matches!(op, Op::Write { .. } | Op::Meta(_)) {
            last_rule = stored_rule;
        }
        if outcome.version.is_some() {
            let compacted = matches!(op, Op::Compact);
            check_layout(&lake, &sc, head, last_rule, &ids_before, compacted)
                .await
                .map_err(ctx)?;
        }
        for probe in probes {
            check_probe(&lake, &history, probe).await.map_err(ctx)?;
        }
    }
    Ok(())
}

/// Every case in a fresh lake of the test's backend.
async fn random_mutations_match_the_model(place: LakePlace) {
    let backend = place.backend;
    let mut runner = model_runner(backend, 40, 8);
    let result = runner.run(&scenario_strategy(), |sc| {
        block_on(run(backend, sc)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Hand-picked cases of the semantics the model encodes, so a failure reads plainly.
async fn ties_keep_existing_rows_first_and_input_order(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = || {
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(2))
    };
    lake.write(URI, kiv_batch(&[(5, 0, 0), (3, 0, 1), (5, 0, 2)]), req())
        .await
        .expect("v1");
    lake.write(
        URI,
        kiv_batch(&[(5, 1, 0), (4, 1, 1), (5, 1, 2), (3, 1, 3)]),
        req(),
    )
    .await
    .expect("v2");
    assert_eq!(
        read_kiv(&lake, URI).await,
        vec![
            (3, 0, 1),
            (3, 1, 3),
            (4, 1, 1),
            (5, 0, 0),
            (5, 0, 2),
            (5, 1, 0),
            (5, 1, 2)
        ]
    );
}

async fn duplicates_on_keeps_the_last_written_only_inside_the_new_range(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = || {
        WriteRequest::new()
            .ordered_on("k")
            .duplicates_on(tarn::DuplicatesOn::parse("id"))
            .row_group_target(RowGroupTarget::Rows(3))
    };
    // Inside one write the last row in input order wins.
    lake.write(
        URI,
        kiv_batch(&[(1, 0, 10), (2, 0, 20), (1, 0, 11), (9, 0, 90)]),
        req(),
    )
    .await
    .expect("v1");
    assert_eq!(
        read_kiv(&lake, URI).await,
        vec![(1, 0, 11), (2, 0, 20), (9, 0, 90)]
    );
    // The newest write wins, and rows outside [min(new), max(new)] are left alone.
    lake.write(URI, kiv_batch(&[(2, 0, 21), (2, 1, 5), (3, 0, 30)]), req())
        .await
        .expect("v2");
    assert_eq!(
        read_kiv(&lake, URI).await,
        vec![(1, 0, 11), (2, 0, 21), (2, 1, 5), (3, 0, 30), (9, 0, 90)]
    );
    assert_eq!(
        read_kiv(&lake, &format!("{URI}:v1")).await,
        vec![(1, 0, 11), (2, 0, 20), (9, 0, 90)]
    );
}

fn float_rows(batches: &[arrow::array::RecordBatch]) -> Vec<(f64, i64)> {
    use arrow::array::AsArray;
    let mut out = Vec::new();
    for b in batches {
        let f = b
            .column_by_name("f")
            .expect("f")
            .as_primitive::<arrow::datatypes::Float64Type>();
        let v = b
            .column_by_name("v")
            .expect("v")
            .as_primitive::<arrow::datatypes::Int64Type>();
        out.extend((0..b.num_rows()).map(|i| (f.value(i), v.value(i))));
    }
    out
}

fn float_batch(rows: &[(f64, i64)]) -> arrow::array::RecordBatch {
    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use std::sync::Arc;
    arrow::array::RecordBatch::try_from_iter(vec![
        (
            "f",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "v",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .expect("batch")
}

/// delete-range is half-open: a row group ending exactly at `end` keeps its last rows.
async fn delete_range_keeps_rows_at_its_end(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(3));
    let rows: Vec<Row> = [0, 1, 2, 3, 4, 5, 5, 6]
        .iter()
        .map(|&k| (k, 0, k))
        .collect();
    lake.write(URI, kiv_batch(&rows), req).await.expect("v1");
    // Row groups [0 1 2] [3 4 5] [5 6]: [3, 5) covers none of them whole.
    let out = lake.delete_range(URI, "3", "5", None).await.expect("v2");
    assert_eq!(out.version, Some(2));
    assert_eq!(read_kiv(&lake, URI).await, model_delete(&rows, 3, 5));
    let out = lake.delete_range(URI, "0", "3", None).await.expect("v3");
    assert_eq!(out.version, Some(3));
    assert_eq!(read_kiv(&lake, URI).await, model_delete(&rows, 0, 5));
    let out = lake.delete_range(URI, "5", "6", None).await.expect("v4");
    assert_eq!(out.version, Some(4));
    assert_eq!(read_kiv(&lake, URI).await, vec![(6, 0, 6)]);
    assert_eq!(read_kiv(&lake, &format!("{URI}:v1")).await, rows);
}

/// A float `ordered_on` holding both -0.0 and 0.0: a range read and a delete-range of the
/// same `[start, end)` must agree on which rows lie in it, and a full read must come back in
/// one consistent order (the merge sorts with Arrow's total order, -0.0 < 0.0).
async fn float_zeros_of_both_signs_are_ordered_one_way_everywhere(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://model/zeros";
    let req = WriteRequest::new()
        .ordered_on("f")
        .row_group_target(RowGroupTarget::Rows(1));
    lake.write(uri, float_batch(&[(-1.0, 0), (0.0, 1)]), req)
        .await
        .expect("v1");
    lake.write(uri, float_batch(&[(-0.0, 2)]), WriteRequest::new())
        .await
        .expect("v2");
    let full = float_rows(&read_all(&lake, uri).await);
    // Sorted under the order the merge uses.
    assert!(
        full.windows(2).all(|w| w[0].0.total_cmp(&w[1].0).is_le()),
        "rows out of order: {full:?}"
    );
    let snap = lake.snapshot(uri).await.expect("head");
    let range = ReadRequest::parse(&snap, Some("-0.5"), Some("0"), None).expect("range");
    let in_range = float_rows(&lake.read(&snap, &range).await.expect("range read"));
    let outside: Vec<(f64, i64)> = full
        .iter()
        .copied()
        .filter(|r| !in_range.contains(r))
        .collect();
    lake.delete_range(uri, "-0.5", "0", None)
        .await
        .expect("delete");
    let left = float_rows(&read_all(&lake, uri).await);
    assert_eq!(
        left, outside,
        "read [-0.5, 0) returned {in_range:?} of {full:?}, but delete-range [-0.5, 0) left {left:?}"
    );
}

tarn_testkit::backend_tests!(
    random_mutations_match_the_model,
    ties_keep_existing_rows_first_and_input_order,
    duplicates_on_keeps_the_last_written_only_inside_the_new_range,
    delete_range_keeps_rows_at_its_end,
    float_zeros_of_both_signs_are_ordered_one_way_everywhere,
);
