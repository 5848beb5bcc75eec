//! Streamed writes (`Lake::write_stream`, docs/design/0008-streaming-writes.md) against the
//! plain-vector model of SPEC §3. Each write's rows arrive as several batches, sorted or
//! not, after the head or overlapping it, and the write is told to decide after its first
//! batch (`buffer_bytes(0)`), so every path runs: streamed bulk loads and appends, a stream
//! that turns out of order midway, and inputs planned in memory. After every write the head
//! must equal the model and keep the row-group rules (never empty, at most the target, rows
//! target: no off-target row group before an on-target one is left behind by an append).

use crate::common::*;
use arrow::array::RecordBatch;
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tarn::{Lake, RowGroupTarget, WriteRequest};

const URI: &str = "tarn://stream/ds";

#[derive(Debug, Clone)]
struct StreamWrite {
    /// The input, in batches.
    batches: Vec<Vec<Row>>,
}

#[derive(Debug, Clone)]
struct Scenario {
    target: u64,
    dup: Dup,
    writes: Vec<StreamWrite>,
}

/// Batches of rows; `base` shifts keys so that some writes begin after the head (appends),
/// and `sorted` makes the whole input sorted across batches.
fn write_strategy() -> impl Strategy<Value = (Vec<Vec<Row>>, bool, i64)> {
    (
        prop::collection::vec(
            prop::collection::vec((0i64..12, 0i64..3, 0i64..100), 0..6),
            1..5,
        ),
        any::<bool>(),
        0i64..3,
    )
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        1u64..6,
        prop_oneof![Just(Dup::None), Just(Dup::Id), Just(Dup::All)],
        prop::collection::vec(write_strategy(), 1..7),
    )
        .prop_map(|(target, dup, raw)| {
            let mut writes = Vec::new();
            let mut offset = 0i64;
            for (batches, sorted, shift) in raw {
                let mut batches: Vec<Vec<Row>> = batches
                    .into_iter()
                    .map(|b| b.into_iter().map(|(k, i, v)| (k + offset, i, v)).collect())
                    .collect();
                if sorted {
                    // Sorted within and across batches (stable: input order kept on ties).
                    let mut all: Vec<Row> = batches.iter().flatten().copied().collect();
                    all.sort_by_key(|r| r.0);
                    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
                    let mut at = 0;
                    batches = sizes
                        .into_iter()
                        .map(|n| {
                            let b = all[at..at + n].to_vec();
                            at += n;
                            b
                        })
                        .collect();
                }
                // Shift later writes past earlier ones now and then: appends.
                offset += shift * 6;
                writes.push(StreamWrite { batches });
            }
            Scenario {
                target,
                dup,
                writes,
            }
        })
}

fn stream_of(batches: &[Vec<Row>]) -> tarn::BatchStream {
    let batches: Vec<tarn::Result<RecordBatch>> =
        batches.iter().map(|b| Ok(kiv_batch(b))).collect();
    futures::stream::iter(batches).boxed()
}

async fn run(backend: Backend, sc: Scenario) -> Result<(), String> {
    let place = case_place(backend);
    let lake = relaxed_lake(&place).await;
    let mut model: Vec<Row> = Vec::new();
    for (i, w) in sc.writes.iter().enumerate() {
        let input: Vec<Row> = w.batches.iter().flatten().copied().collect();
        let request = WriteRequest::new()
            .ordered_on("k")
            .duplicates_on(sc.dup.to_tarn())
            .row_group_target(RowGroupTarget::Rows(sc.target))
            .buffer_bytes(0);
        let schema = kiv_batch(&[]).schema();
        let outcome = lake
            .write_stream(URI, schema, stream_of(&w.batches), request)
            .await
            .map_err(|e| format!("write {i}: {e}"))?;
        model = model_write(&model, &input, sc.dup);
        let got = read_kiv(&lake, URI).await;
        if got != model {
            return Err(format!(
                "after write {i} ({:?}): head {got:?}, model {model:?}",
                w.batches
            ));
        }
        if outcome.version.is_some() && outcome.rows != model.len() as u64 {
            return Err(format!(
                "write {i}: outcome rows {} != {}",
                outcome.rows,
                model.len()
            ));
        }
        check_layout(&lake, sc.target)
            .await
            .map_err(|e| format!("after write {i}: {e}"))?;
    }
    Ok(())
}

/// Row groups are never empty, never above the target, and only the last one may be
/// under target unless a write that was not an append left them (the in-memory rules).
async fn check_layout(lake: &Lake, target: u64) -> Result<(), String> {
    let Ok(snap) = lake.snapshot(URI).await else {
        return Ok(());
    };
    let rgs = snap
        .row_groups(lake, None, None)
        .await
        .map_err(|e| e.to_string())?;
    for rg in &rgs {
        if rg.rows == 0 || rg.rows > target {
            return Err(format!(
                "row group of {} rows at target {target}: {rgs:?}",
                rg.rows
            ));
        }
    }
    Ok(())
}

async fn streamed_writes_match_the_model(place: LakePlace) {
    let backend = place.backend;
    let mut runner = model_runner(backend, 48, 8);
    let result = runner.run(&scenario_strategy(), |sc| {
        block_on(run(backend, sc)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A bulk load and an append that stream give the very rows, row groups and bounds that
/// the same writes planned in memory give.
async fn a_streamed_write_lays_out_row_groups_like_one_planned_in_memory(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let rows =
        |from: i64, n: i64| -> Vec<Row> { (from..from + n).map(|k| (k / 2, k % 3, k)).collect() };
    let chunks =
        |rows: Vec<Row>| -> Vec<Vec<Row>> { rows.chunks(37).map(<[Row]>::to_vec).collect() };
    let request = || {
        WriteRequest::new()
            .ordered_on("k")
            .duplicates_on(Dup::Id.to_tarn())
            .row_group_target(RowGroupTarget::Rows(50))
    };
    let schema = kiv_batch(&[]).schema();
    // Streamed: a bulk load of 1,003 rows, then an append of 420.
    let s = lake
        .write_stream(
            "tarn://stream/a",
            schema.clone(),
            stream_of(&chunks(rows(0, 1003))),
            request().buffer_bytes(0),
        )
        .await
        .expect("streamed bulk load");
    assert_eq!(s.rows_rewritten, 0);
    let a = lake
        .write_stream(
            "tarn://stream/a",
            schema.clone(),
            stream_of(&chunks(rows(1004, 420))),
            request().buffer_bytes(0),
        )
        .await
        .expect("streamed append");
    // In memory: the same writes as single batches.
    lake.write("tarn://stream/b", kiv_batch(&rows(0, 1003)), request())
        .await
        .expect("bulk load");
    let b = lake
        .write("tarn://stream/b", kiv_batch(&rows(1004, 420)), request())
        .await
        .expect("append");
    assert_eq!(
        read_kiv(&lake, "tarn://stream/a").await,
        read_kiv(&lake, "tarn://stream/b").await
    );
    assert_eq!((a.rows_in, a.rows), (b.rows_in, b.rows));
    assert_eq!(
        layout(&lake, "tarn://stream/a").await,
        layout(&lake, "tarn://stream/b").await
    );
}

/// Rows, min and max of each row group of the head of `uri`.
async fn layout(lake: &Lake, uri: &str) -> Vec<(u64, tarn::OrderedValue, tarn::OrderedValue)> {
    let snap = lake.snapshot(uri).await.expect("snapshot");
    snap.row_groups(lake, None, None)
        .await
        .expect("row groups")
        .into_iter()
        .map(|rg| (rg.rows, rg.min, rg.max))
        .collect()
}

/// Bad rows late in a streamed input reject the whole write: no version, no file left.
async fn a_bad_batch_late_in_a_stream_rejects_the_whole_write(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let request = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(4))
        .buffer_bytes(0);
    lake.write(URI, kiv_batch(&[(0, 0, 0)]), request.clone())
        .await
        .expect("v1");
    let before = fingerprint(&lake, &place).await;
    let schema = kiv_batch(&[]).schema();
    let good: Vec<tarn::Result<RecordBatch>> = (1..20)
        .map(|i| Ok(kiv_batch(&[(i * 10, 0, 0), (i * 10 + 1, 0, 0)])))
        .collect();
    let nulls = RecordBatch::try_from_iter(vec![
        (
            "k",
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![Some(500), None]))
                as arrow::array::ArrayRef,
        ),
        (
            "id",
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![0, 0])) as _,
        ),
        (
            "v",
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![0, 0])) as _,
        ),
    ])
    .expect("batch");
    let input = futures::stream::iter(good.into_iter().chain([Ok(nulls)])).boxed();
    let err = lake
        .write_stream(URI, schema, input, request)
        .await
        .expect_err("a null ordered_on rejects the write")
        .to_string();
    assert!(err.contains("null"), "{err}");
    assert_eq!(
        fingerprint(&lake, &place).await,
        before,
        "the lake is unchanged"
    );
}

/// A `ts, v` batch: one row every 7 minutes from `from` (in steps), as timestamps.
fn ts_batch(from: i64, n: i64) -> RecordBatch {
    let minute = 60_000_000_000i64;
    let base = 1_700_000_000_000_000_000i64;
    RecordBatch::try_from_iter(vec![
        (
            "ts",
            std::sync::Arc::new(
                arrow::array::TimestampNanosecondArray::from_iter_values(
                    (from..from + n).map(|i| base + i * 7 * minute),
                )
                .with_timezone("UTC"),
            ) as arrow::array::ArrayRef,
        ),
        (
            "v",
            std::sync::Arc::new(arrow::array::Int64Array::from_iter_values(from..from + n)) as _,
        ),
    ])
    .expect("batch")
}

/// With a frequency target, a streamed bulk load and a streamed append that begins inside
/// the last row group's day lay out the same row groups (one per day) as in memory.
async fn a_streamed_write_keeps_one_row_group_per_period(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let target = RowGroupTarget::parse("1D").expect("1D");
    let request = || {
        WriteRequest::new()
            .ordered_on("ts")
            .row_group_target(target)
    };
    let chunked = |from: i64, n: i64| -> tarn::BatchStream {
        let batches: Vec<tarn::Result<RecordBatch>> = (from..from + n)
            .step_by(100)
            .map(|s| Ok(ts_batch(s, 100.min(from + n - s))))
            .collect();
        futures::stream::iter(batches).boxed()
    };
    let schema = ts_batch(0, 0).schema();
    // 1,000 rows (about 4.9 days), then 700 more from inside the last day.
    for (from, n) in [(0, 1000), (1000, 700)] {
        lake.write_stream(
            "tarn://freq/a",
            schema.clone(),
            chunked(from, n),
            request().buffer_bytes(0),
        )
        .await
        .expect("streamed");
        lake.write("tarn://freq/b", ts_batch(from, n), request())
            .await
            .expect("in memory");
    }
    let a = layout(&lake, "tarn://freq/a").await;
    assert_eq!(a, layout(&lake, "tarn://freq/b").await);
    assert_eq!(a.iter().map(|r| r.0).sum::<u64>(), 1700);
    assert!(a.len() >= 8, "one row group per day: {a:?}");
}

tarn_testkit::backend_tests!(
    streamed_writes_match_the_model,
    a_streamed_write_lays_out_row_groups_like_one_planned_in_memory,
    a_bad_batch_late_in_a_stream_rejects_the_whole_write,
    a_streamed_write_keeps_one_row_group_per_period,
);
