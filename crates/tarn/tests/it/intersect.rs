//! `Lake::intersect` (SPEC §4) against a brute-force model, its errors, and its memory bound.
//!
//! The model reads every dataset whole with `lake.read`, cuts the range with the step rule
//! written the plain way (every candidate cut tried in turn), and compares each step's
//! range, chunks (row by row, projected), first/last values and index.

use crate::common::*;
use arrow::array::{Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, TimestampSecondArray};
use arrow::datatypes::DataType;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::Arc;
use tarn::{
    Frequency, IntersectRequest, IntersectStep, Lake, OrderedValue, ReadRequest, RowGroupTarget,
    Snapshot, Step, WriteRequest,
};

/// Timestamp datasets space their keys this many seconds apart (`k * SPACING`).
const SPACING: i64 = 600;

#[derive(Debug, Clone)]
struct Dataset {
    target: u64,
    /// Each write's `(k, v)` rows; `id` is made unique from the write and row indexes.
    writes: Vec<Vec<(i64, i64)>>,
}

#[derive(Debug, Clone)]
enum ModelStep {
    RowGroups,
    Rows(usize),
    /// A frequency of this many minutes (timestamp datasets only).
    Minutes(i64),
}

#[derive(Debug, Clone)]
struct Scenario {
    /// `k` is a `timestamp[s, UTC]` of `k * SPACING` seconds instead of an Int64.
    timestamps: bool,
    datasets: Vec<Dataset>,
    start: Option<i64>,
    end: Option<i64>,
    n_prev: Vec<usize>,
    step: ModelStep,
    columns: Option<Vec<&'static str>>,
}

fn dataset_strategy() -> impl Strategy<Value = Dataset> {
    // Each write draws its keys from a window of the domain 0..60, so datasets have
    // stretches without rows, duplicates and overlapping writes.
    let write = (0i64..50, 1i64..20)
        .prop_flat_map(|(lo, width)| prop::collection::vec((lo..lo + width, 0i64..100), 1..15));
    (1u64..=4, prop::collection::vec(write, 1..5))
        .prop_map(|(target, writes)| Dataset { target, writes })
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    let columns = prop_oneof![
        Just(None),
        Just(Some(vec!["k"])),
        Just(Some(vec!["v"])),
        Just(Some(vec!["v", "id"])),
        Just(Some(vec!["id", "k", "v"])),
    ];
    (
        any::<bool>(),
        prop::collection::vec(dataset_strategy(), 1..=3),
        prop::option::of(-2i64..62),
        prop::option::of(-2i64..62),
        prop::collection::vec(0usize..8, 0..=3),
        0u8..3,
        1usize..6,
        prop_oneof![Just(30i64), Just(60), Just(120), Just(1440)],
        columns,
    )
        .prop_map(
            |(timestamps, datasets, start, end, n_prev, step, rows, minutes, columns)| {
                let (start, end) = match (start, end) {
                    (Some(s), Some(e)) if s >= e => (Some(e), Some(s + 1)),
                    other => other,
                };
                // n_prev: none, one for all, or one per dataset.
                let n_prev = match n_prev.len() {
                    0 | 1 => n_prev,
                    _ => (0..datasets.len())
                        .map(|i| n_prev[i % n_prev.len()])
                        .collect(),
                };
                let step = match step {
                    0 => ModelStep::RowGroups,
                    1 => ModelStep::Rows(rows),
                    _ if timestamps => ModelStep::Minutes(minutes),
                    _ => ModelStep::Rows(rows),
                };
                Scenario {
                    timestamps,
                    datasets,
                    start,
                    end,
                    n_prev,
                    step,
                    columns,
                }
            },
        )
}

fn uri(i: usize) -> String {
    format!("tarn://inter/d{i}")
}

/// `k` (Int64, or timestamp[s, UTC] of `k * SPACING`), `id`, `v`.
fn batch(rows: &[Row], timestamps: bool) -> RecordBatch {
    let k: ArrayRef = if timestamps {
        Arc::new(
            TimestampSecondArray::from(rows.iter().map(|r| r.0 * SPACING).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    } else {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ))
    };
    let col = |f: fn(&Row) -> i64| {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    RecordBatch::try_from_iter(vec![("k", k), ("id", col(|r| r.1)), ("v", col(|r| r.2))])
        .expect("batch")
}

/// A column as i64 values (timestamps as their raw count of seconds).
fn values(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing from {:?}", batch.schema()));
    let col = arrow::compute::cast(col, &DataType::Int64).expect("cast to i64");
    assert_eq!(col.null_count(), 0, "column {name} has nulls");
    col.as_any()
        .downcast_ref::<Int64Array>()
        .expect("i64")
        .values()
        .to_vec()
}

/// The rows of batches of the full `k/id/v` schema, `k` raw.
fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let (k, id, v) = (values(b, "k"), values(b, "id"), values(b, "v"));
        out.extend((0..b.num_rows()).map(|i| (k[i], id[i], v[i])));
    }
    out
}

fn column_names(columns: &Option<Vec<&'static str>>) -> Vec<&'static str> {
    columns.clone().unwrap_or_else(|| vec!["k", "id", "v"])
}

fn project(rows: &[Row], columns: &[&str]) -> Vec<Vec<i64>> {
    rows.iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match *c {
                    "k" => r.0,
                    "id" => r.1,
                    _ => r.2,
                })
                .collect()
        })
        .collect()
}

fn chunk_values(chunk: &RecordBatch, columns: &[&str]) -> Vec<Vec<i64>> {
    let cols: Vec<Vec<i64>> = columns.iter().map(|c| values(chunk, c)).collect();
    (0..chunk.num_rows())
        .map(|i| cols.iter().map(|c| c[i]).collect())
        .collect()
}

/// One step as the model sees it: `[start, end)` and each dataset's rows.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    start: Option<i64>,
    end: Option<i64>,
    chunks: Vec<Vec<Row>>,
}

fn in_range(k: i64, start: Option<i64>, end: Option<i64>) -> bool {
    start.is_none_or(|s| k >= s) && end.is_none_or(|e| k < e)
}

/// Cuts every dataset's rows with the intervals `[lower_i, upper_i)` (`None`: unbounded),
/// keeping the intervals that hold a row.
fn cut(rows: &[Vec<Row>], intervals: &[(Option<i64>, Option<i64>)]) -> Vec<Expected> {
    intervals
        .iter()
        .map(|&(lo, hi)| Expected {
            start: lo,
            end: hi,
            chunks: rows
                .iter()
                .map(|d| {
                    d.iter()
                        .copied()
                        .filter(|r| in_range(r.0, lo, hi))
                        .collect()
                })
                .collect(),
        })
        .filter(|e| e.chunks.iter().any(|c| !c.is_empty()))
        .collect()
}

/// The model's steps over `rows` (each dataset's rows in `[start, end)`, in order), in raw
/// `k` units, before warm-up rows.
fn model_steps(
    sc: &Scenario,
    rows: &[Vec<Row>],
    mins: &[i64],
    start: Option<i64>,
    end: Option<i64>,
) -> Vec<Expected> {
    match sc.step {
        ModelStep::RowGroups => {
            // Cut points: every row group's min strictly inside (start, end).
            let mut cuts: Vec<i64> = mins
                .iter()
                .copied()
                .filter(|m| start.is_none_or(|s| *m > s) && end.is_none_or(|e| *m < e))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let lowers = std::iter::once(start).chain(cuts.iter().copied().map(Some));
            let uppers = cuts.iter().copied().map(Some).chain(std::iter::once(end));
            cut(rows, &lowers.zip(uppers).collect::<Vec<_>>())
        }
        ModelStep::Minutes(minutes) => {
            // One interval per period that holds a row, clipped to the range.
            let len = minutes * 60;
            let mut periods: Vec<i64> =
                rows.iter().flatten().map(|r| r.0.div_euclid(len)).collect();
            periods.sort_unstable();
            periods.dedup();
            let intervals: Vec<_> = periods
                .iter()
                .map(|p| {
                    let lo = start.map_or(p * len, |s| s.max(p * len));
                    let hi = end.map_or((p + 1) * len, |e| e.min((p + 1) * len));
                    (Some(lo), Some(hi))
                })
                .collect();
            cut(rows, &intervals)
        }
        ModelStep::Rows(n) => {
            let mut out = Vec::new();
            let mut remaining: Vec<Vec<Row>> = rows.to_vec();
            let mut lo = start;
            while remaining.iter().any(|d| !d.is_empty()) {
                let below = |c: Option<i64>, d: &Vec<Row>| {
                    d.iter().filter(|r| c.is_none_or(|c| r.0 < c)).count()
                };
                // Every cut the step could end at, ascending: a value of a remaining row
                // after `lo`, then the end of the range.
                let mut cands: Vec<Option<i64>> = remaining
                    .iter()
                    .flatten()
                    .map(|r| r.0)
                    .filter(|k| lo.is_none_or(|l| *k > l))
                    .map(Some)
                    .collect();
                cands.sort_unstable();
                cands.dedup();
                cands.push(end);
                let valid = |c: Option<i64>| remaining.iter().all(|d| below(c, d) <= n);
                let holds = |c: Option<i64>| remaining.iter().any(|d| below(c, d) > 0);
                // The largest cut that keeps every dataset at n rows or fewer; if that step
                // would be empty, the first value's rows alone (more than n of them).
                let largest_valid = cands.iter().copied().rev().find(|c| valid(*c));
                let hi = match largest_valid {
                    Some(c) if holds(c) => c,
                    _ => cands
                        .iter()
                        .copied()
                        .find(|c| holds(*c))
                        .expect("the end holds every remaining row"),
                };
                out.push(Expected {
                    start: lo,
                    end: hi,
                    chunks: remaining
                        .iter()
                        .map(|d| {
                            d.iter()
                                .copied()
                                .filter(|r| hi.is_none_or(|h| r.0 < h))
                                .collect()
                        })
                        .collect(),
                });
                for d in &mut remaining {
                    d.retain(|r| hi.is_some_and(|h| r.0 >= h));
                }
                lo = hi;
            }
            out
        }
    }
}

fn raw(v: &Option<OrderedValue>) -> Option<i64> {
    v.as_ref().map(|v| match v {
        OrderedValue::Int(x) | OrderedValue::Timestamp(x) => *x,
        other => panic!("unexpected bound {other:?}"),
    })
}

fn ordered(sc: &Scenario, raw: i64) -> OrderedValue {
    if sc.timestamps {
        OrderedValue::Timestamp(raw)
    } else {
        OrderedValue::Int(raw)
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

async fn build(lake: &Lake, sc: &Scenario) -> Result<Vec<Snapshot>, String> {
    let mut snapshots = Vec::new();
    for (i, d) in sc.datasets.iter().enumerate() {
        for (w, write) in d.writes.iter().enumerate() {
            let rows: Vec<Row> = write
                .iter()
                .enumerate()
                .map(|(j, &(k, v))| (k, (w * 100 + j) as i64, v))
                .collect();
            lake.write(
                &uri(i),
                batch(&rows, sc.timestamps),
                WriteRequest::new()
                    .ordered_on("k")
                    .row_group_target(RowGroupTarget::Rows(d.target)),
            )
            .await
            .map_err(|e| format!("write {}: {e}", uri(i)))?;
        }
        snapshots.push(
            lake.snapshot(&uri(i))
                .await
                .map_err(|e| format!("snapshot: {e}"))?,
        );
    }
    Ok(snapshots)
}

async fn run(backend: Backend, sc: Scenario) -> Result<(), String> {
    let place = case_place(backend);
    let lake = relaxed_lake(&place).await;
    let snapshots = build(&lake, &sc).await?;
    // Bounds in raw units: timestamp bounds fall between keys, not on them.
    let scale = |v: i64| if sc.timestamps { v * SPACING + 7 } else { v };
    let (start, end) = (sc.start.map(scale), sc.end.map(scale));

    let mut all_rows = Vec::new();
    let mut in_range_rows = Vec::new();
    let mut mins = Vec::new();
    for s in &snapshots {
        let rows = rows_of(
            &lake
                .read(s, &ReadRequest::default())
                .await
                .map_err(|e| e.to_string())?,
        );
        in_range_rows.push(
            rows.iter()
                .copied()
                .filter(|r| in_range(r.0, start, end))
                .collect::<Vec<_>>(),
        );
        all_rows.push(rows);
        for rg in s
            .row_groups(&lake, None, None)
            .await
            .map_err(|e| e.to_string())?
        {
            mins.extend(raw(&Some(rg.min)));
        }
    }
    let mut expected = model_steps(&sc, &in_range_rows, &mins, start, end);
    if let (Some(s), Some(first)) = (start, expected.first_mut()) {
        for (i, chunk) in first.chunks.iter_mut().enumerate() {
            let n = match sc.n_prev.as_slice() {
                [] => 0,
                [n] => *n,
                many => many[i],
            };
            let before: Vec<Row> = all_rows[i].iter().copied().filter(|r| r.0 < s).collect();
            let warm_up = &before[before.len().saturating_sub(n)..];
            chunk.splice(0..0, warm_up.iter().copied());
        }
    }

    let step = match sc.step {
        ModelStep::RowGroups => Step::RowGroups,
        ModelStep::Rows(n) => Step::Rows(n),
        ModelStep::Minutes(m) => {
            Step::Every(Frequency::parse(&format!("{m}min")).map_err(|e| e.to_string())?)
        }
    };
    let request = IntersectRequest {
        start: start.map(|v| ordered(&sc, v)),
        end: end.map(|v| ordered(&sc, v)),
        n_prev: sc.n_prev.clone(),
        step,
        columns: sc
            .columns
            .as_ref()
            .map(|c| c.iter().map(|s| s.to_string()).collect()),
    };
    let got: Vec<IntersectStep> = lake
        .intersect(snapshots.clone(), request)
        .await
        .map_err(|e| format!("intersect: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("intersect stream: {e}"))?;

    let columns = column_names(&sc.columns);
    // Both sides as `[start, end) rows per chunk`, for failure messages.
    let outline = |bounds: (Option<i64>, Option<i64>), rows: Vec<usize>| {
        format!("[{:?}, {:?}) rows {rows:?}", bounds.0, bounds.1)
    };
    let got_outline = got
        .iter()
        .map(|g| {
            let rows = g.chunks.iter().map(|c| c.num_rows()).collect();
            outline((raw(&g.start), raw(&g.end)), rows)
        })
        .collect::<Vec<_>>()
        .join("\n  ");
    let expected_outline = expected
        .iter()
        .map(|e| outline((e.start, e.end), e.chunks.iter().map(Vec::len).collect()))
        .collect::<Vec<_>>()
        .join("\n  ");
    let sides = format!("got\n  {got_outline}\nexpected\n  {expected_outline}");
    ensure!(
        got.len() == expected.len(),
        "{} steps, the model has {}:\n{sides}",
        got.len(),
        expected.len(),
    );
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        ensure!(g.index == i as u64, "step {i} has index {}", g.index);
        ensure!(
            (raw(&g.start), raw(&g.end)) == (e.start, e.end),
            "step {i} is [{:?}, {:?}), the model's [{:?}, {:?}):\n{sides}",
            raw(&g.start),
            raw(&g.end),
            e.start,
            e.end,
        );
        ensure!(
            g.chunks.len() == snapshots.len() && g.first_last.len() == snapshots.len(),
            "step {i}: {} chunks and {} first/last for {} datasets",
            g.chunks.len(),
            g.first_last.len(),
            snapshots.len()
        );
        for (d, (chunk, want)) in g.chunks.iter().zip(&e.chunks).enumerate() {
            let names: Vec<String> = chunk
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            ensure!(
                names == columns,
                "step {i} dataset {d}: columns {names:?}, asked {columns:?}"
            );
            let got_rows = chunk_values(chunk, &columns);
            ensure!(
                got_rows == project(want, &columns),
                "step {i} [{:?}, {:?}) dataset {d}:\n  got      {got_rows:?}\n  expected {:?}",
                e.start,
                e.end,
                project(want, &columns)
            );
            let want_fl = want
                .first()
                .zip(want.last())
                .map(|(f, l)| (ordered(&sc, f.0), ordered(&sc, l.0)));
            ensure!(
                g.first_last[d] == want_fl,
                "step {i} dataset {d}: first/last {:?}, expected {want_fl:?}",
                g.first_last[d]
            );
        }
    }
    Ok(())
}

/// Every case in a fresh lake of the test's backend.
async fn intersections_match_the_model(place: LakePlace) {
    let backend = place.backend;
    let mut runner = model_runner(backend, 32, 8);
    let result = runner.run(&scenario_strategy(), |sc| {
        block_on(run(backend, sc)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Steps of `uris` as `(start, end, rows per chunk)`, and the chunks' rows.
async fn steps_of(
    lake: &Lake,
    uris: &[&str],
    request: IntersectRequest,
) -> (
    Vec<(Option<i64>, Option<i64>, Vec<usize>)>,
    Vec<Vec<Vec<Row>>>,
) {
    let mut snapshots = Vec::new();
    for u in uris {
        snapshots.push(lake.snapshot(u).await.expect("snapshot"));
    }
    let steps: Vec<IntersectStep> = lake
        .intersect(snapshots, request)
        .await
        .expect("intersect")
        .try_collect()
        .await
        .expect("steps");
    let shape = steps
        .iter()
        .map(|s| {
            (
                raw(&s.start),
                raw(&s.end),
                s.chunks.iter().map(|c| c.num_rows()).collect(),
            )
        })
        .collect();
    let rows = steps
        .iter()
        .map(|s| {
            s.chunks
                .iter()
                .map(|c| kiv_rows(std::slice::from_ref(c)))
                .collect()
        })
        .collect();
    (shape, rows)
}

/// Hand-picked cases, so that a failure reads plainly: warm-up rows reach step 0 even for a
/// dataset whose first row in the range comes much later, sparse data skips empty steps
/// without gaps in the indexes, and a value repeated past the row step is a step alone.
async fn warm_up_reaches_step_zero_and_empty_steps_are_skipped(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = |n| {
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(n))
    };
    // a: 50..56; b: 0..4 then 100..102 (nothing in [4, 100)).
    let a: Vec<Row> = (50..56).map(|k| (k, 0, 0)).collect();
    let b: Vec<Row> = (0..4).chain(100..102).map(|k| (k, 1, 0)).collect();
    lake.write("tarn://h/a", kiv_batch(&a), req(2))
        .await
        .expect("a");
    lake.write("tarn://h/b", kiv_batch(&b), req(2))
        .await
        .expect("b");
    let (shape, rows) = steps_of(
        &lake,
        &["tarn://h/a", "tarn://h/b"],
        IntersectRequest {
            start: Some(int(50)),
            n_prev: vec![1, 3],
            ..IntersectRequest::default()
        },
    )
    .await;
    // Cut points: a's mins 52, 54 and b's 100; [50, 52) holds b's warm-up.
    assert_eq!(
        shape,
        vec![
            (Some(50), Some(52), vec![2, 3]),
            (Some(52), Some(54), vec![2, 0]),
            (Some(54), Some(100), vec![2, 0]),
            (Some(100), None, vec![0, 2]),
        ]
    );
    assert_eq!(rows[0][1], vec![(1, 1, 0), (2, 1, 0), (3, 1, 0)]);
    // a has nothing before 50: its warm-up is empty, not an error.
    assert_eq!(rows[0][0], vec![(50, 0, 0), (51, 0, 0)]);

    // A fixed row step over sparse data: no empty step, indexes without gaps.
    let (shape, _) = steps_of(
        &lake,
        &["tarn://h/b"],
        IntersectRequest {
            step: Step::Rows(3),
            ..IntersectRequest::default()
        },
    )
    .await;
    assert_eq!(
        shape,
        vec![(None, Some(3), vec![3]), (Some(3), None, vec![3])]
    );

    // Five rows at k=7 with a step of 2 rows: the value is a step of its own.
    let c: Vec<Row> = [
        (6, 0, 0),
        (7, 0, 1),
        (7, 0, 2),
        (7, 0, 3),
        (7, 0, 4),
        (7, 0, 5),
        (8, 0, 0),
    ]
    .to_vec();
    lake.write("tarn://h/c", kiv_batch(&c), req(2))
        .await
        .expect("c");
    let (shape, rows) = steps_of(
        &lake,
        &["tarn://h/c"],
        IntersectRequest {
            step: Step::Rows(2),
            ..IntersectRequest::default()
        },
    )
    .await;
    assert_eq!(
        shape,
        vec![
            (None, Some(7), vec![1]),
            (Some(7), Some(8), vec![5]),
            (Some(8), None, vec![1]),
        ]
    );
    assert_eq!(rows[1][0], c[1..6].to_vec());
}

/// Row groups written before a column was added read back with nulls in it, in the
/// projected column order, in every step (including warm-up rows from old row groups).
async fn evolved_schemas_fill_new_columns_with_nulls(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let old: Vec<Row> = (1..5).map(|k| (k, 0, 0)).collect();
    lake.write(
        "tarn://ev/a",
        kiv_batch(&old),
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(2)),
    )
    .await
    .expect("v1");
    let k: ArrayRef = Arc::new(Int64Array::from(vec![5, 6]));
    let w: ArrayRef = Arc::new(Int64Array::from(vec![50, 60]));
    let evolved = RecordBatch::try_from_iter(vec![
        ("k", k.clone()),
        ("id", k.clone()),
        ("v", k),
        ("w", w),
    ])
    .expect("batch");
    lake.write("tarn://ev/a", evolved, WriteRequest::new().evolve(true))
        .await
        .expect("v2");
    let snapshot = lake.snapshot("tarn://ev/a").await.expect("head");
    let steps: Vec<IntersectStep> = lake
        .intersect(
            vec![snapshot],
            IntersectRequest {
                start: Some(int(3)),
                n_prev: vec![1],
                columns: Some(vec!["w".into(), "k".into()]),
                ..IntersectRequest::default()
            },
        )
        .await
        .expect("intersect")
        .try_collect()
        .await
        .expect("steps");
    let got: Vec<Vec<(Option<i64>, i64)>> = steps
        .iter()
        .map(|s| {
            let c = &s.chunks[0];
            let names: Vec<String> = c
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["w", "k"]);
            let w = c
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("w");
            let k = values(c, "k");
            (0..c.num_rows())
                .map(|i| (w.iter().nth(i).flatten(), k[i]))
                .collect()
        })
        .collect();
    assert_eq!(
        got,
        vec![
            vec![(None, 2), (None, 3), (None, 4)],
            vec![(Some(50), 5), (Some(60), 6)],
        ]
    );
}

/// Every request the library must refuse, with a message naming the problem.
async fn rejects_bad_requests(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let req = WriteRequest::new().ordered_on("k");
    lake.write("tarn://e/i", kiv_batch(&[(1, 0, 0)]), req.clone())
        .await
        .expect("i");
    lake.write("tarn://e/t", batch(&[(1, 0, 0)], true), req.clone())
        .await
        .expect("t");
    let i = lake.snapshot("tarn://e/i").await.expect("i");
    let t = lake.snapshot("tarn://e/t").await.expect("t");
    let cases: Vec<(&str, Vec<Snapshot>, IntersectRequest, &[&str])> = vec![
        (
            "no dataset",
            vec![],
            IntersectRequest::default(),
            &["at least one"],
        ),
        (
            "different kinds",
            vec![i.clone(), t.clone()],
            IntersectRequest::default(),
            &["different types", "e/i", "e/t", "Int64", "Timestamp"],
        ),
        (
            "n_prev count",
            vec![i.clone(), i.clone()],
            IntersectRequest {
                n_prev: vec![1, 2, 3],
                ..IntersectRequest::default()
            },
            &["n_prev has 3 values for 2 datasets"],
        ),
        (
            "start >= end",
            vec![i.clone()],
            IntersectRequest {
                start: Some(int(5)),
                end: Some(int(5)),
                ..IntersectRequest::default()
            },
            &["bad range", "5"],
        ),
        (
            "bound of another kind",
            vec![t.clone()],
            IntersectRequest {
                start: Some(int(5)),
                ..IntersectRequest::default()
            },
            &["start bound 5", "Timestamp"],
        ),
        (
            "zero-row step",
            vec![i.clone()],
            IntersectRequest {
                step: Step::Rows(0),
                ..IntersectRequest::default()
            },
            &["at least 1 row"],
        ),
        (
            "frequency on integers",
            vec![i.clone()],
            IntersectRequest {
                step: Step::Every(Frequency::parse("1h").expect("valid")),
                ..IntersectRequest::default()
            },
            &["1h", "not a timestamp"],
        ),
        (
            "unknown column",
            vec![i.clone()],
            IntersectRequest {
                columns: Some(vec!["nosuch".into()]),
                ..IntersectRequest::default()
            },
            &["nosuch"],
        ),
    ];
    for (what, snapshots, request, needles) in cases {
        let err = match lake.intersect(snapshots, request).await {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), tarn::ErrorKind::InvalidInput, "{what}: {err}");
        let msg = err.to_string();
        for n in needles {
            assert!(msg.contains(n), "{what}: {msg:?} does not mention {n:?}");
        }
    }
    // A frequency works on a timestamp dataset.
    let ok = lake
        .intersect(
            vec![t],
            IntersectRequest {
                step: Step::Every(Frequency::parse("1h").expect("valid")),
                ..IntersectRequest::default()
            },
        )
        .await
        .expect("frequency on timestamps")
        .count()
        .await;
    assert_eq!(ok, 1);
}

// ---------------------------------------------------------------------------------------
// Memory bound.

const MEMORY_CHILD_ENV: &str = "TARN_INTERSECT_MEMORY_CHILD";
/// Random payload bytes per row: incompressible, so decoded and stored sizes are alike.
const PAYLOAD: usize = 1024;
const ROWS_PER_DATASET: i64 = 131_072;
const WRITES: i64 = 4;
/// Row-group targets of the two datasets: about 2 MiB and 3 MiB decoded.
const TARGETS: [u64; 2] = [2_048, 3_000];
const MEMORY_START: i64 = 2 * ROWS_PER_DATASET / 4;
const MEMORY_N_PREV: usize = 5_000;

/// A small deterministic RNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let bytes = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Rows `k = 2i + offset` for `i` in `range`, with `PAYLOAD` random bytes each.
fn payload_batch(range: std::ops::Range<i64>, offset: i64, rng: &mut Rng) -> RecordBatch {
    let n = (range.end - range.start) as usize;
    let mut bytes = vec![0u8; n * PAYLOAD];
    rng.fill(&mut bytes);
    let k: ArrayRef = Arc::new(Int64Array::from(
        range.map(|i| 2 * i + offset).collect::<Vec<_>>(),
    ));
    let payload: ArrayRef = Arc::new(BinaryArray::from_iter_values(bytes.chunks(PAYLOAD)));
    RecordBatch::try_from_iter(vec![("k", k), ("payload", payload)]).expect("batch")
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// SPEC §4: "memory stays bounded by a few row groups per dataset, never by the dataset
/// size".
///
/// Two datasets of 131,072 rows of 1 KiB random bytes each (128 MiB decoded per dataset,
/// as incompressible on disk), in row groups of 2,048 and 3,000 rows (2 MiB and 3 MiB
/// decoded) written in 4 appends each, are iterated from a quarter of the way in, with
/// 5,000 warm-up rows each (read backwards over three and two row groups): about 203 MiB
/// in 81 steps. It takes a few seconds in a debug build.
///
/// The iteration runs in a child process that does nothing else: the test re-runs this
/// binary for `memory_child`, which reports its peak resident memory (`VmHWM` of
/// /proc/self/status) before the iteration, after step 0 (the warm-up), and at the end,
/// having reset the peak after step 0 (`5` to /proc/self/clear_refs) so that the rest
/// measures the steady state. The child runs with a fixed glibc mmap threshold, so that
/// buffers of row-group size are returned to the system when freed and the resident size
/// follows live memory rather than what the allocator keeps for reuse. The assertions:
/// the steady-state growth is at most 6 row groups per dataset, step 0 adds at most that
/// plus twice the warm-up rows, and the overall growth stays under a quarter of the data
/// iterated (decoding a whole dataset would take 128 MiB). Linux only.
async fn memory_stays_bounded_by_row_groups(place: LakePlace) {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status");
        return;
    }
    {
        let lake = relaxed_lake(&place).await;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let per_write = ROWS_PER_DATASET / WRITES;
        for (d, target) in TARGETS.iter().enumerate() {
            for w in 0..WRITES {
                let rows = w * per_write..(w + 1) * per_write;
                lake.write(
                    &format!("tarn://mem/d{d}"),
                    payload_batch(rows, d as i64, &mut rng),
                    WriteRequest::new()
                        .ordered_on("k")
                        .row_group_target(RowGroupTarget::Rows(*target)),
                )
                .await
                .expect("write");
            }
        }
    }
    let exe = std::env::current_exe().expect("current exe");
    // The child opens the lake from its tarn.toml, so it reads from this test's backend (its
    // servers' settings are in the environment it inherits).
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "intersect::memory_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEMORY_CHILD_ENV, &place.dir)
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout
        .lines()
        .find_map(|l| Some(l.split_once("MEMORY ")?.1))
        .unwrap_or_else(|| panic!("no MEMORY line from the child:\n{stdout}"));
    let field = |name: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report:?}"))
    };
    let before = field("hwm_before_kib");
    let step0 = field("hwm_step0_kib").saturating_sub(before);
    let reset = field("rss_reset_kib");
    let after = field("hwm_after_kib").saturating_sub(before);
    let (rows, steps) = (field("rows"), field("steps"));

    let row_kib = |rows: u64| rows * (PAYLOAD as u64 + 8) / 1024;
    let iterated = 2 * (ROWS_PER_DATASET - MEMORY_START / 2) as u64 + 2 * MEMORY_N_PREV as u64;
    assert_eq!(rows, iterated, "the child did not see every row: {report}");
    assert!(steps > 50, "too few steps: {report}");
    let iterated_kib = row_kib(iterated);
    // 6 row groups of each dataset, and the warm-up rows twice (kept, then concatenated).
    let steady_budget: u64 = TARGETS.iter().map(|t| 6 * row_kib(*t)).sum();
    let warm_up_budget = steady_budget + 2 * row_kib(2 * MEMORY_N_PREV as u64);
    eprintln!(
        "intersect memory: iterating {iterated_kib} KiB grew the peak by {step0} KiB in step 0 \
         (budget {warm_up_budget}) and by {after} KiB after it (budget {steady_budget}): {report}"
    );
    assert!(
        step0.max(after) < iterated_kib / 4,
        "iterating {iterated_kib} KiB grew the peak by {} KiB: {report}",
        step0.max(after)
    );
    assert!(
        step0 <= warm_up_budget,
        "step 0 grew the peak by {step0} KiB, above {warm_up_budget} KiB: {report}"
    );
    if reset > 0 {
        assert!(
            after <= steady_budget,
            "after step 0 the peak grew by {after} KiB, above 6 row groups per dataset \
             ({steady_budget} KiB): {report}"
        );
    }
}

/// The measuring half of [`memory_stays_bounded_by_row_groups`]; does nothing unless run
/// by it.
#[test]
#[ignore = "run by memory_stays_bounded_by_row_groups in a child process"]
fn memory_child() {
    let Some(dir) = std::env::var_os(MEMORY_CHILD_ENV) else {
        return;
    };
    runtime().block_on(async {
        let lake = Lake::open_with(&dir, tarn::Durability::Relaxed)
            .await
            .expect("open lake");
        let snapshots = vec![
            lake.snapshot("tarn://mem/d0").await.expect("d0"),
            lake.snapshot("tarn://mem/d1").await.expect("d1"),
        ];
        let request = IntersectRequest {
            start: Some(int(MEMORY_START)),
            n_prev: vec![MEMORY_N_PREV],
            ..IntersectRequest::default()
        };
        let (hwm_before, _) = memory_kib();
        let mut steps = lake.intersect(snapshots, request).await.expect("intersect");
        let (mut rows, mut count, mut max_rss) = (0u64, 0u64, 0u64);
        let (mut hwm_step0, mut rss_reset) = (0, 0);
        while let Some(step) = steps.next().await {
            let step = step.expect("step");
            for chunk in &step.chunks {
                rows += chunk.num_rows() as u64;
                // Touch the payload, as a consumer would.
                let payload = chunk.column_by_name("payload").expect("payload");
                assert_eq!(payload.null_count(), 0);
            }
            count += 1;
            drop(step);
            max_rss = max_rss.max(memory_kib().1);
            if count == 1 {
                hwm_step0 = memory_kib().0;
                // Linux resets VmHWM to the current RSS on "5" (since 4.0): the rest of
                // the run then measures the steady state without the warm-up.
                if std::fs::write("/proc/self/clear_refs", "5").is_ok() {
                    rss_reset = memory_kib().1;
                }
            }
        }
        let (hwm_after, _) = memory_kib();
        println!(
            "MEMORY hwm_before_kib={hwm_before} hwm_step0_kib={hwm_step0} rss_reset_kib={rss_reset} hwm_after_kib={hwm_after} max_rss_kib={max_rss} rows={rows} steps={count}"
        );
    });
}

tarn_testkit::backend_tests!(
    intersections_match_the_model,
    warm_up_reaches_step_zero_and_empty_steps_are_skipped,
    evolved_schemas_fill_new_columns_with_nulls,
    rejects_bad_requests,
    memory_stays_bounded_by_row_groups,
);
