//! `Lake::diff` (SPEC §11 `tarn diff`): random mutation sequences checked against a
//! brute-force multiset difference of two versions read whole; unchanged row groups are
//! never read; schema evolution, other datasets and mismatched `ordered_on` kinds.

use crate::common::*;
use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tarn::{DiffReport, ErrorKind, Lake, RowGroupTarget, WriteRequest};

const URI: &str = "tarn://diff/ds";

#[derive(Debug, Clone)]
enum Op {
    Write {
        rows: Vec<Row>,
        dup: Option<Dup>,
    },
    Overwrite(Vec<Row>),
    Delete {
        start: i64,
        end: i64,
    },
    Compact,
    /// A metadata change: a version whose row groups are all the previous version's.
    Meta(u8),
}

#[derive(Debug, Clone)]
struct Scenario {
    target: u64,
    stored_dup: Dup,
    first: Vec<Row>,
    ops: Vec<Op>,
    /// Pairs of versions to diff, taken modulo the number of versions.
    pairs: Vec<(usize, usize)>,
}

fn rows_strategy(min: usize) -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0i64..30, 0i64..3, 0i64..3), min..10)
}

fn dup_strategy() -> impl Strategy<Value = Dup> {
    prop_oneof![Just(Dup::None), Just(Dup::Id), Just(Dup::All)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (rows_strategy(1), prop::option::of(dup_strategy()))
            .prop_map(|(rows, dup)| Op::Write { rows, dup }),
        1 => rows_strategy(0).prop_map(Op::Overwrite),
        2 => (-2i64..32, 1i64..12).prop_map(|(start, len)| Op::Delete { start, end: start + len }),
        2 => Just(Op::Compact),
        1 => any::<u8>().prop_map(Op::Meta),
    ]
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        1u64..=4,
        dup_strategy(),
        rows_strategy(1),
        prop::collection::vec(op_strategy(), 1..9),
        prop::collection::vec((0usize..16, 0usize..16), 1..5),
    )
        .prop_map(|(target, stored_dup, first, ops, pairs)| Scenario {
            target,
            stored_dup,
            first,
            ops,
            pairs,
        })
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Per row, (copies in A) - (copies in B).
fn multiset(a: &[Row], b: &[Row]) -> BTreeMap<Row, i64> {
    let mut counts: BTreeMap<Row, i64> = BTreeMap::new();
    for r in a {
        *counts.entry(*r).or_default() += 1;
    }
    for r in b {
        *counts.entry(*r).or_default() -= 1;
    }
    counts.retain(|_, c| *c != 0);
    counts
}

/// Checks a report against the rows of A and B read whole.
fn check_report(report: &DiffReport, a: &[Row], b: &[Row]) -> Result<(), String> {
    let diff = multiset(a, b);
    let removed: u64 = diff.values().filter(|c| **c > 0).map(|c| *c as u64).sum();
    let added: u64 = diff
        .values()
        .filter(|c| **c < 0)
        .map(|c| c.unsigned_abs())
        .sum();
    ensure!(
        (report.added, report.removed) == (added, removed),
        "report +{} -{}, model +{added} -{removed}",
        report.added,
        report.removed
    );
    ensure!(
        report.ranges.iter().map(|r| r.added).sum::<u64>() == report.added
            && report.ranges.iter().map(|r| r.removed).sum::<u64>() == report.removed,
        "per-range counts do not sum to the totals"
    );
    let bounds: Vec<(i64, i64)> = report
        .ranges
        .iter()
        .map(|r| {
            (
                r.start.as_i64().unwrap_or(i64::MIN),
                r.end.as_i64().unwrap_or(i64::MIN),
            )
        })
        .collect();
    for (r, (s, e)) in report.ranges.iter().zip(&bounds) {
        ensure!(s <= e, "range {r:?} is reversed");
        ensure!(r.added + r.removed > 0, "empty range reported: {r:?}");
        // The model's differing rows in [start, end]: the same counts, and start and end
        // are the smallest and largest of their keys.
        let inside: Vec<(&Row, &i64)> = diff
            .iter()
            .filter(|(k, _)| k.0 >= *s && k.0 <= *e)
            .collect();
        let r_removed: u64 = inside
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(_, c)| **c as u64)
            .sum();
        let r_added: u64 = inside
            .iter()
            .filter(|(_, c)| **c < 0)
            .map(|(_, c)| c.unsigned_abs())
            .sum();
        ensure!(
            (r.added, r.removed) == (r_added, r_removed),
            "range {r:?}: the model has +{r_added} -{r_removed} in it"
        );
        let keys: BTreeSet<i64> = inside.iter().map(|(k, _)| k.0).collect();
        ensure!(
            keys.first() == Some(s) && keys.last() == Some(e),
            "range {r:?} does not start and end at differing rows ({keys:?})"
        );
    }
    for w in bounds.windows(2) {
        ensure!(
            w[0].1 < w[1].0,
            "ranges out of order or overlapping: {:?}",
            report.ranges
        );
    }
    for k in diff.keys() {
        ensure!(
            bounds.iter().any(|(s, e)| k.0 >= *s && k.0 <= *e),
            "differing row {k:?} is in no range {:?}",
            report.ranges
        );
    }
    ensure!(
        report.compared_rows <= (a.len() + b.len()) as u64,
        "compared {} rows of {} + {}",
        report.compared_rows,
        a.len(),
        b.len()
    );
    ensure!(
        report.columns_added.is_empty() && report.columns_removed.is_empty(),
        "column changes in one schema: {report:?}"
    );
    Ok(())
}

async fn diff(lake: &Lake, a: &str, b: &str) -> Result<DiffReport, String> {
    let sa = lake.snapshot(a).await.map_err(|e| format!("{a}: {e}"))?;
    let sb = lake.snapshot(b).await.map_err(|e| format!("{b}: {e}"))?;
    lake.diff(&sa, &sb)
        .await
        .map_err(|e| format!("diff {a} {b}: {e}"))
}

async fn run(backend: Backend, sc: Scenario) -> Result<(), String> {
    let place = case_place(backend);
    let lake = relaxed_lake(&place).await;
    lake.write(
        URI,
        kiv_batch(&sc.first),
        WriteRequest::new()
            .ordered_on("k")
            .duplicates_on(sc.stored_dup.to_tarn())
            .row_group_target(RowGroupTarget::Rows(sc.target)),
    )
    .await
    .map_err(|e| format!("first write: {e}"))?;
    let mut history = vec![model_write(&[], &sc.first, sc.stored_dup)];
    for op in &sc.ops {
        let before = history.last().cloned().unwrap_or_default();
        let (out, after) = match op {
            Op::Write { rows, dup } => {
                let mut req = WriteRequest::new();
                if let Some(d) = dup {
                    req = req.duplicates_on(d.to_tarn());
                }
                let out = lake.write(URI, kiv_batch(rows), req).await;
                (
                    out,
                    model_write(&before, rows, dup.unwrap_or(sc.stored_dup)),
                )
            }
            Op::Overwrite(rows) => (
                lake.overwrite(URI, kiv_batch(rows), WriteRequest::new())
                    .await,
                model_overwrite(rows, sc.stored_dup),
            ),
            Op::Delete { start, end } => (
                lake.delete_range(URI, &start.to_string(), &end.to_string(), None)
                    .await,
                model_delete(&before, *start, *end),
            ),
            Op::Compact => (lake.compact(URI, None).await, before),
            Op::Meta(n) => (
                lake.set_metadata(URI, WriteRequest::new().meta("n", n.to_string()))
                    .await,
                before,
            ),
        };
        let out = out.map_err(|e| format!("{op:?}: {e}"))?;
        if out.version.is_some() {
            history.push(after);
        }
    }
    let uri = |i: usize| format!("{URI}:v{}", i + 1);
    let ids = |groups: Vec<(i64, String, u32, u64)>| -> BTreeSet<i64> {
        groups.into_iter().map(|g| g.0).collect()
    };
    for (i, j) in &sc.pairs {
        let (i, j) = (i % history.len(), j % history.len());
        let ctx = |e: String| format!("diff v{} v{}: {e}", i + 1, j + 1);
        // The model's rows are what each version reads back (model.rs checks that).
        let (a, b) = (
            read_kiv(&lake, &uri(i)).await,
            read_kiv(&lake, &uri(j)).await,
        );
        ensure!(
            a == history[i] && b == history[j],
            "the lake and the model disagree"
        );
        let report = diff(&lake, &uri(i), &uri(j)).await?;
        check_report(&report, &a, &b).map_err(ctx)?;
        // Row groups both versions hold are never read.
        let (ga, gb) = (
            ids(row_group_ids(&lake, &uri(i)).await),
            ids(row_group_ids(&lake, &uri(j)).await),
        );
        let shared = ga.intersection(&gb).count() as u64;
        ensure!(
            report.unchanged_row_groups == shared
                && report.changed_row_groups == (ga.len() + gb.len()) as u64 - 2 * shared,
            "{}: row groups {ga:?} / {gb:?}, report {report:?}",
            ctx(String::new())
        );
        ensure!(
            report.row_groups_read <= report.changed_row_groups + 2 * shared,
            "{}",
            ctx(format!("read {} row groups", report.row_groups_read))
        );
        if i == j || ga == gb {
            ensure!(
                report.row_groups_read == 0
                    && report.compared_rows == 0
                    && report.ranges.is_empty(),
                "{}",
                ctx(format!("identical row groups, yet {report:?}"))
            );
        }
        // Diffing the other way round mirrors the report.
        let back = diff(&lake, &uri(j), &uri(i)).await?;
        let mirrored: Vec<_> = report
            .ranges
            .iter()
            .map(|r| (r.start.clone(), r.end.clone(), r.removed, r.added))
            .collect();
        let got: Vec<_> = back
            .ranges
            .iter()
            .map(|r| (r.start.clone(), r.end.clone(), r.added, r.removed))
            .collect();
        ensure!(
            got == mirrored && back.compared_rows == report.compared_rows,
            "{}",
            ctx(format!("reversed diff {back:?} does not mirror {report:?}"))
        );
    }
    Ok(())
}

/// Every case in a fresh lake of the test's backend.
async fn diff_matches_a_brute_force_model(place: LakePlace) {
    let backend = place.backend;
    let mut runner = model_runner(backend, 32, 8);
    runner
        .run(&scenario_strategy(), |sc| {
            block_on(run(backend, sc)).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Keys 0..n, one row each, `v = k`.
fn rows(range: std::ops::Range<i64>) -> Vec<Row> {
    range.map(|k| (k, 0, k)).collect()
}

async fn unchanged_row_groups_are_never_read(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://diff/large";
    let v = |n: u32| format!("{uri}:v{n}");
    let req = WriteRequest::new()
        .ordered_on("k")
        .duplicates_on(tarn::DuplicatesOn::parse("k"))
        .row_group_target(RowGroupTarget::Rows(1000));
    lake.write(uri, kiv_batch(&rows(0..50_000)), req)
        .await
        .expect("v1");
    // v2 appends one row group.
    lake.write(uri, kiv_batch(&rows(50_000..51_000)), WriteRequest::new())
        .await
        .expect("v2");
    let report = diff(&lake, &v(1), &v(2)).await.expect("diff");
    assert_eq!((report.added, report.removed), (1000, 0), "{report:?}");
    assert_eq!(report.unchanged_row_groups, 50, "{report:?}");
    assert_eq!(report.changed_row_groups, 1, "{report:?}");
    assert_eq!(report.row_groups_read, 1, "{report:?}");
    assert_eq!(
        report.compared_rows, 1000,
        "only the appended row group is read: {report:?}"
    );
    assert_eq!(
        serde_json::to_value(&report.ranges).expect("json"),
        serde_json::json!([{"start": 50_000, "end": 50_999, "added": 1000, "removed": 0}])
    );

    // A version against itself reads nothing; so does a metadata-only version.
    let same = diff(&lake, &v(2), &v(2)).await.expect("diff");
    assert_eq!(
        (
            same.added,
            same.removed,
            same.row_groups_read,
            same.compared_rows
        ),
        (0, 0, 0, 0),
        "{same:?}"
    );
    assert!(same.ranges.is_empty());
    lake.set_metadata(uri, WriteRequest::new().meta("k", "v"))
        .await
        .expect("v3");
    let meta = diff(&lake, &v(2), &v(3)).await.expect("diff");
    assert_eq!(
        (meta.row_groups_read, meta.compared_rows),
        (0, 0),
        "{meta:?}"
    );

    // v4 deletes 100 rows inside one row group: only that row group is read, on each side.
    lake.delete_range(uri, "20500", "20600", None)
        .await
        .expect("v4");
    let del = diff(&lake, &v(3), &v(4)).await.expect("diff");
    assert_eq!((del.added, del.removed), (0, 100), "{del:?}");
    assert_eq!(
        (del.row_groups_read, del.compared_rows),
        (2, 1900),
        "{del:?}"
    );
    assert_eq!(
        serde_json::to_value(&del.ranges).expect("json"),
        serde_json::json!([{"start": 20_500, "end": 20_599, "added": 0, "removed": 100}])
    );

    // v5 upserts one row (duplicates_on k: the new value replaces the old one).
    lake.write(uri, kiv_batch(&[(7_777, 1, -1)]), WriteRequest::new())
        .await
        .expect("v5");
    let up = diff(&lake, &v(4), &v(5)).await.expect("diff");
    assert_eq!((up.added, up.removed), (1, 1), "{up:?}");
    assert_eq!(up.compared_rows, 2000, "{up:?}");
    assert_eq!(
        serde_json::to_value(&up.ranges).expect("json"),
        serde_json::json!([{"start": 7_777, "end": 7_777, "added": 1, "removed": 1}])
    );

    // v6 compacts (the row group of v4 is off target): every row group is rewritten and
    // compared, and no row differs.
    let out = lake.compact(uri, None).await.expect("v6");
    assert!(out.row_groups_written > 0, "{out:?}");
    let compact = diff(&lake, &v(5), &v(6)).await.expect("diff");
    assert_eq!((compact.added, compact.removed), (0, 0), "{compact:?}");
    assert!(compact.ranges.is_empty(), "{compact:?}");
    assert_eq!(compact.compared_rows, 2 * 50_900, "{compact:?}");
    // The whole history at once. Ranges follow the changed row groups: the compaction
    // moved every boundary after the delete, so one range runs from the deleted rows to
    // the appended ones, and the rest of the append is a range of its own.
    let all = diff(&lake, &v(1), &v(6)).await.expect("diff");
    assert_eq!((all.added, all.removed), (1001, 101), "{all:?}");
    assert_eq!(all.compared_rows, 50_000 + 50_900, "{all:?}");
    assert_eq!(
        serde_json::to_value(&all.ranges).expect("json"),
        serde_json::json!([
            {"start": 7_777, "end": 7_777, "added": 1, "removed": 1},
            {"start": 20_500, "end": 50_099, "added": 100, "removed": 100},
            {"start": 50_100, "end": 50_999, "added": 900, "removed": 0},
        ])
    );
}

async fn an_evolved_column_is_reported_and_left_out_of_the_comparison(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://diff/evolve";
    lake.write(
        uri,
        kiv_batch(&rows(0..6)),
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(3)),
    )
    .await
    .expect("v1");
    let with_w = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from(vec![4, 9])) as ArrayRef),
        ("id", Arc::new(Int64Array::from(vec![0, 0])) as ArrayRef),
        ("v", Arc::new(Int64Array::from(vec![4, 9])) as ArrayRef),
        ("w", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
    ])
    .expect("batch");
    lake.write(uri, with_w, WriteRequest::new().evolve(true))
        .await
        .expect("v2");
    let report = diff(&lake, &format!("{uri}:v1"), &format!("{uri}:v2"))
        .await
        .expect("diff");
    assert_eq!(report.columns_added, vec!["w"]);
    assert!(report.columns_removed.is_empty());
    // (4, 0, 4) is now there twice: one more copy, and (9, 0, 9) is new.
    assert_eq!((report.added, report.removed), (2, 0), "{report:?}");
    assert_eq!(
        serde_json::to_value(&report.ranges).expect("json"),
        serde_json::json!([{"start": 4, "end": 9, "added": 2, "removed": 0}])
    );
    let back = diff(&lake, &format!("{uri}:v2"), &format!("{uri}:v1"))
        .await
        .expect("diff");
    assert_eq!(back.columns_removed, vec!["w"]);
    assert_eq!((back.added, back.removed), (0, 2), "{back:?}");
}

fn i32_batch(keys: &[i32]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int32Array::from(keys.to_vec())) as ArrayRef),
        (
            "id",
            Arc::new(Int64Array::from(vec![0; keys.len()])) as ArrayRef,
        ),
        ("v", Arc::new(Int32Array::from(keys.to_vec())) as ArrayRef),
    ])
    .expect("batch")
}

fn ts_batch(name: &str, ms: &[i64], zone: Option<&str>) -> RecordBatch {
    let ts =
        TimestampMillisecondArray::from(ms.to_vec()).with_timezone_opt(zone.map(str::to_string));
    RecordBatch::try_from_iter(vec![
        (name, Arc::new(ts) as ArrayRef),
        ("x", Arc::new(Int64Array::from(ms.to_vec())) as ArrayRef),
    ])
    .expect("batch")
}

async fn other_datasets_compare_on_common_columns_when_ordered_alike(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = |col: &str| {
        WriteRequest::new()
            .ordered_on(col)
            .row_group_target(RowGroupTarget::Rows(2))
    };
    // Two datasets share no row group: everything is read, the rows decide.
    lake.write("tarn://x/a", kiv_batch(&rows(0..5)), req("k"))
        .await
        .expect("a");
    lake.write("tarn://x/b", kiv_batch(&rows(2..8)), req("k"))
        .await
        .expect("b");
    let report = diff(&lake, "tarn://x/a", "tarn://x/b").await.expect("diff");
    assert_eq!((report.added, report.removed), (3, 2), "{report:?}");
    assert_eq!(report.unchanged_row_groups, 0);
    assert_eq!(report.compared_rows, 11, "{report:?}");
    check_report(
        &report,
        &read_kiv(&lake, "tarn://x/a").await,
        &read_kiv(&lake, "tarn://x/b").await,
    )
    .expect("model");

    // Int32 against Int64 compare as Int64: the same values are the same rows.
    lake.write("tarn://x/narrow", i32_batch(&[0, 1, 2, 3, 4]), req("k"))
        .await
        .expect("narrow");
    let report = diff(&lake, "tarn://x/narrow", "tarn://x/a")
        .await
        .expect("diff");
    assert_eq!((report.added, report.removed), (0, 0), "{report:?}");

    // A naive and a UTC timestamp column of one unit hold the same instants; other
    // ordered_on names are matched with each other.
    lake.write(
        "tarn://x/utc",
        ts_batch("ts", &[0, 1000, 2000], Some("UTC")),
        req("ts"),
    )
    .await
    .expect("utc");
    lake.write(
        "tarn://x/naive",
        ts_batch("time", &[1000, 2000, 3000], None),
        req("time"),
    )
    .await
    .expect("naive");
    let report = diff(&lake, "tarn://x/utc", "tarn://x/naive")
        .await
        .expect("diff");
    assert_eq!((report.added, report.removed), (1, 1), "{report:?}");
    assert!(report.columns_added.is_empty() && report.columns_removed.is_empty());
    assert_eq!(
        serde_json::to_value(&report.ranges).expect("json"),
        serde_json::json!([
            {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:00:00Z", "added": 0, "removed": 1},
            {"start": "1970-01-01T00:00:03Z", "end": "1970-01-01T00:00:03Z", "added": 1, "removed": 0},
        ])
    );

    // Integers against timestamps: refused, naming both sides.
    let a = lake.snapshot("tarn://x/a").await.expect("a");
    let t = lake.snapshot("tarn://x/utc").await.expect("utc");
    let err = lake.diff(&a, &t).await.expect_err("different kinds");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("tarn://x/a:v1")
            && msg.contains("tarn://x/utc:v1")
            && msg.contains("same kind"),
        "{msg}"
    );
}

tarn_testkit::backend_tests!(
    diff_matches_a_brute_force_model,
    unchanged_row_groups_are_never_read,
    an_evolved_column_is_reported_and_left_out_of_the_comparison,
    other_datasets_compare_on_common_columns_when_ordered_alike,
);
