//! Random writes and deletes on a dataset with a frequency row-group target, against the
//! plain-vector model: with a frequency target a write only plans on the row groups from
//! the first touched period on (`Lake::window`), so this checks that the window never
//! misses a row group the full list would have touched.

use crate::common::{
    Backend, Dup, LakePlace, Row, block_on, case_place, model_delete, model_runner, model_write,
    relaxed_lake,
};
use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, TimestampSecondArray};
use arrow::datatypes::{Int64Type, TimestampSecondType};
use proptest::prelude::*;
use std::sync::Arc;
use tarn::{DuplicatesOn, Lake, ReadRequest, RowGroupTarget, WriteRequest};

const HOUR: i64 = 3600;
const URI: &str = "tarn://f/x";

fn batch(rows: &[Row]) -> RecordBatch {
    let ts: ArrayRef = Arc::new(
        TimestampSecondArray::from(rows.iter().map(|r| r.0 * HOUR).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let col = |f: fn(&Row) -> i64| {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    RecordBatch::try_from_iter(vec![("k", ts), ("id", col(|r| r.1)), ("v", col(|r| r.2))])
        .expect("batch")
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column(0).as_primitive::<TimestampSecondType>();
        let id = b.column(1).as_primitive::<Int64Type>();
        let v = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((k.value(i) / HOUR, id.value(i), v.value(i)));
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<Row>),
    Delete(i64, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::collection::vec((0i64..120, 0i64..3, 0i64..100), 1..12).prop_map(Op::Write),
        1 => (0i64..120, 1i64..30).prop_map(|(a, len)| Op::Delete(a, a + len)),
    ]
}

async fn check(lake: &Lake, model: &[Row], freq: &str) {
    let snap = lake.snapshot(URI).await.expect("head");
    let rows = rows_of(
        &lake
            .read(&snap, &ReadRequest::default())
            .await
            .expect("read"),
    );
    assert_eq!(rows, model, "head differs from the model");
    let f = tarn::Frequency::parse(freq).expect("freq");
    let mut periods = Vec::new();
    for rg in snap.row_groups(lake, None, None).await.expect("rgs") {
        assert!(rg.rows > 0, "empty row group");
        let (lo, hi) = (
            f.period_of(&rg.min, snap.kind()),
            f.period_of(&rg.max, snap.kind()),
        );
        assert_eq!(lo, hi, "row group {rg:?} spans two periods of {freq}");
        periods.push(lo);
    }
    let mut sorted = periods.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        periods.len(),
        "two row groups share a period: {periods:?}"
    );
}

#[derive(Debug, Clone)]
struct Case {
    freq: &'static str,
    dup: Dup,
    first: Vec<Row>,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just("1D"), Just("6h"), Just("1h")],
        prop_oneof![Just(Dup::None), Just(Dup::Id)],
        proptest::collection::vec((0i64..120, 0i64..3, 0i64..100), 1..30),
        proptest::collection::vec(op(), 1..8),
    )
        .prop_map(|(freq, dup, first, ops)| Case {
            freq,
            dup,
            first,
            ops,
        })
}

/// One case, in a fresh lake of `backend`.
async fn run(backend: Backend, case: Case) {
    let Case {
        freq,
        dup,
        first,
        ops,
    } = case;
    let place = case_place(backend);
    let lake = relaxed_lake(&place).await;
    let request = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::parse(freq).expect("target"))
        .duplicates_on(match dup {
            Dup::Id => DuplicatesOn::parse("id"),
            _ => DuplicatesOn::None,
        });
    lake.write(URI, batch(&first), request)
        .await
        .expect("first write");
    let mut model = model_write(&[], &first, dup);
    check(&lake, &model, freq).await;
    for op in ops {
        match op {
            Op::Write(rows) => {
                lake.write(URI, batch(&rows), WriteRequest::new())
                    .await
                    .expect("write");
                model = model_write(&model, &rows, dup);
            }
            Op::Delete(a, b) => {
                let (s, e) = (format!("{}", a * HOUR), format!("{}", b * HOUR));
                let to_ts = |secs: &str| {
                    chrono::DateTime::from_timestamp(secs.parse().expect("int"), 0)
                        .expect("ts")
                        .to_rfc3339()
                };
                lake.delete_range(URI, &to_ts(&s), &to_ts(&e), None)
                    .await
                    .expect("delete");
                model = model_delete(&model, a, b);
            }
        }
        check(&lake, &model, freq).await;
    }
}

async fn frequency_targets_match_the_model(place: LakePlace) {
    let backend = place.backend;
    // The case proptest once shrank a failure to (it was in
    // tests/proptest-regressions/freq_model.txt while this was a `proptest!`).
    run(
        backend,
        Case {
            freq: "1D",
            dup: Dup::None,
            first: vec![(0, 0, 0)],
            ops: vec![Op::Write(vec![(1, 0, 0)])],
        },
    )
    .await;
    // A failing case panics (as in the `proptest!` form this was): proptest catches the
    // panic, shrinks, and reports the smallest case.
    let mut runner = model_runner(backend, 24, 6);
    runner
        .run(&case(), |case| {
            block_on(run(backend, case));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

tarn_testkit::backend_tests!(frequency_targets_match_the_model);
