//! SPEC §12 at the library level: every wrong input gets a clear error (one that names the
//! problem) and leaves the lake exactly as it was: same datasets, same logs, same metadata,
//! same files under the data directory.

use crate::common::*;
use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use std::sync::Arc;
use tarn::{ErrorKind, Lake, OrderedValue, ReadRequest, RowGroupTarget, WriteRequest};

const URI: &str = "tarn://bad/x";

struct Env {
    place: LakePlace,
    lake: Lake,
}

/// A lake in `place` with `bad/x` (k/id/v, two versions, metadata) and `bad/f` (float
/// ordered_on).
async fn env(place: LakePlace) -> Env {
    let lake = relaxed_lake(&place).await;
    let req = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(3))
        .meta("owner", "tests");
    lake.write(
        URI,
        kiv_batch(&[(1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 0, 4)]),
        req,
    )
    .await
    .expect("v1");
    lake.write(URI, kiv_batch(&[(5, 0, 5), (6, 0, 6)]), WriteRequest::new())
        .await
        .expect("v2");
    lake.write(
        "tarn://bad/f",
        float_batch(&[0.5, 1.5]),
        WriteRequest::new().ordered_on("f"),
    )
    .await
    .expect("float v1");
    Env { place, lake }
}

fn float_batch(fs: &[f64]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        ("f", Arc::new(Float64Array::from(fs.to_vec())) as ArrayRef),
        (
            "v",
            Arc::new(Int64Array::from(vec![1; fs.len()])) as ArrayRef,
        ),
    ])
    .expect("batch")
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn ints(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

/// Runs `f`, expects an error containing every needle, and an unchanged lake.
async fn rejects<T: std::fmt::Debug>(
    env: &Env,
    what: &str,
    needles: &[&str],
    f: impl std::future::Future<Output = tarn::Result<T>>,
) -> tarn::Error {
    let before = fingerprint(&env.lake, &env.place).await;
    let err = match f.await {
        Ok(v) => panic!("{what}: accepted, returned {v:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{what}: error does not say {n:?}: {msg}");
    }
    let after = fingerprint(&env.lake, &env.place).await;
    assert_eq!(before, after, "{what}: the lake changed");
    err
}

async fn wrong_schemas_are_rejected_with_every_difference(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let missing = batch(vec![("k", ints(&[7])), ("id", ints(&[0]))]);
    let err = rejects(
        &env,
        "missing column",
        &["\"v\"", "missing from the input"],
        lake.write(URI, missing, WriteRequest::new()),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let extra = batch(vec![
        ("k", ints(&[7])),
        ("id", ints(&[0])),
        ("v", ints(&[0])),
        ("w", ints(&[0])),
    ]);
    rejects(
        &env,
        "extra column",
        &["\"w\"", "not in the dataset", "--evolve"],
        lake.write(URI, extra, WriteRequest::new()),
    )
    .await;

    let wrong_type = batch(vec![
        ("k", ints(&[7])),
        ("id", Arc::new(StringArray::from(vec!["zero"])) as ArrayRef),
        ("v", ints(&[0])),
    ]);
    rejects(
        &env,
        "wrong type",
        &["\"id\"", "Utf8", "Int64"],
        lake.write(URI, wrong_type, WriteRequest::new()),
    )
    .await;

    // Every difference in one message.
    let all = batch(vec![
        ("k", ints(&[7])),
        ("id", Arc::new(StringArray::from(vec!["z"])) as ArrayRef),
        ("w", ints(&[0])),
    ]);
    rejects(
        &env,
        "several differences",
        &["\"id\"", "\"v\"", "\"w\""],
        lake.write(URI, all, WriteRequest::new()),
    )
    .await;

    // Any column order is fine, and --evolve adds a nullable column.
    let reordered = batch(vec![
        ("v", ints(&[7])),
        ("k", ints(&[7])),
        ("id", ints(&[0])),
    ]);
    lake.write(URI, reordered, WriteRequest::new())
        .await
        .expect("columns in another order");
    let evolved = batch(vec![
        ("k", ints(&[8])),
        ("id", ints(&[0])),
        ("v", ints(&[8])),
        ("w", ints(&[1])),
    ]);
    let out = lake
        .write(URI, evolved, WriteRequest::new().evolve(true))
        .await
        .expect("evolve");
    assert_eq!(out.version, Some(4));
    let snap = lake.snapshot(URI).await.expect("head");
    assert!(snap.schema().field_with_name("w").expect("w").is_nullable());
    let w = read_all(lake, URI).await;
    let w: Vec<Option<i64>> = w
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("w").expect("w");
            let c = c.as_any().downcast_ref::<Int64Array>().expect("int");
            c.iter().collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(w.iter().filter(|x| x.is_some()).count(), 1, "{w:?}");
    assert_eq!(w.len(), 8);
}

async fn null_and_nan_ordered_on_reject_the_whole_write(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let with_null = batch(vec![
        (
            "k",
            Arc::new(Int64Array::from(vec![Some(9), None, Some(10)])) as ArrayRef,
        ),
        ("id", ints(&[0, 0, 0])),
        ("v", ints(&[0, 0, 0])),
    ]);
    rejects(
        &env,
        "null ordered_on",
        &["1 of 3 rows", "null", "\"k\""],
        lake.write(URI, with_null, WriteRequest::new()),
    )
    .await;
    let nan = float_batch(&[2.5, f64::NAN, 3.5]);
    rejects(
        &env,
        "NaN ordered_on",
        &["NaN", "\"f\""],
        lake.write("tarn://bad/f", nan.clone(), WriteRequest::new()),
    )
    .await;
    rejects(
        &env,
        "NaN ordered_on at creation",
        &["NaN"],
        lake.write("tarn://bad/g", nan, WriteRequest::new().ordered_on("f")),
    )
    .await;
    rejects(
        &env,
        "NaN bound",
        &["NaN"],
        lake.delete_range("tarn://bad/f", "NaN", "1", None),
    )
    .await;
}

async fn unknown_datasets_versions_and_refs_say_what_is_missing(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    for (uri, needles) in [
        (
            "tarn://bad/nope",
            vec!["tarn://bad/nope", "dataset \"bad/nope\" does not exist"],
        ),
        (
            "tarn://bad/x:v3",
            vec!["version v3 does not exist", "v1 to v2"],
        ),
        ("tarn://bad/x:v99", vec!["v99", "v1 to v2"]),
        ("tarn://bad/x:2", vec!["index 2 is out of range"]),
        ("tarn://bad/x:-3", vec!["index -3 is out of range"]),
        ("tarn://bad/x@dev", vec!["branch \"dev\" does not exist"]),
        ("tarn://bad/x:gold", vec!["tag \"gold\" does not exist"]),
        (
            "tarn://bad/x:2000-01-01",
            vec![
                "no version was committed at or before 2000-01-01",
                "first version",
            ],
        ),
        (
            "tarn://bad/x:2000-01-01T00:00:00Z",
            vec!["no version was committed at or before"],
        ),
    ] {
        let err = rejects(&env, uri, &needles, lake.snapshot(uri)).await;
        assert_eq!(err.kind(), ErrorKind::NotFound, "{uri}: {err}");
    }
    rejects(
        &env,
        "log of a missing dataset",
        &["does not exist"],
        lake.log("tarn://bad/nope", None),
    )
    .await;
    rejects(
        &env,
        "delete on a missing dataset",
        &["does not exist"],
        lake.delete_range("tarn://bad/nope", "1", "2", None),
    )
    .await;
    rejects(
        &env,
        "compact a missing dataset",
        &["does not exist"],
        lake.compact("tarn://bad/nope", None),
    )
    .await;
    rejects(
        &env,
        "metadata on a missing dataset",
        &["does not exist"],
        lake.set_metadata("tarn://bad/nope", WriteRequest::new().meta("a", "b")),
    )
    .await;
    rejects(
        &env,
        "write to a missing branch",
        &["branch \"dev\""],
        lake.write(
            "tarn://bad/x@dev",
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new(),
        ),
    )
    .await;
    rejects(
        &env,
        "first write without ordered_on",
        &["bad/new", "ordered-on"],
        lake.write(
            "tarn://bad/new",
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new(),
        ),
    )
    .await;
}

async fn malformed_uris_and_traversal_names_are_rejected(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    for (uri, needle) in [
        ("tarn://", "dataset name is missing"),
        ("s3://bucket/x", "only the tarn:// scheme"),
        ("tarn://bad/x@:v1", "branch after '@' is empty"),
        ("tarn://bad/x:v0", "start at v1"),
        ("tarn://bad x", "' '"),
        ("tarn://bad/x:2024-02-30", "not a valid one"),
        ("tarn://bad/x:2024-01-01T25:00:00Z", "not RFC 3339"),
        ("tarn://bad/x:bad tag", "' '"),
        ("tarn://../x", "starts with '.'"),
        ("../x", "starts with '.'"),
        ("tarn:///abs", "dataset name"),
        ("/abs", "absolute"),
        ("tarn://a/./b", "starts with '.'"),
        ("a/../../b", "starts with '.'"),
        ("tarn://a//b", "empty segment"),
        ("tarn://a\\b", "'\\\\'"),
        ("tarn://caf\u{e9}", "'\u{e9}'"),
    ] {
        let quoted = format!("{uri:?}");
        let err = rejects(&env, uri, &[needle, &quoted], lake.snapshot(uri)).await;
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{uri}: {err}");
        rejects(
            &env,
            &format!("write to {uri}"),
            &[needle],
            lake.write(
                uri,
                kiv_batch(&[(1, 0, 0)]),
                WriteRequest::new().ordered_on("k"),
            ),
        )
        .await;
    }
    // Nothing escaped the storage: its files are the same (`rejects` compares them), and
    // nothing named after a traversal landed in the lake directory or the two above it
    // (locally the storage is `lake/data`, so `../x` and `../../x` would land there).
    // On S3 the object paths are normalised within the prefix, which the fingerprint
    // lists.
    let tmp = env.place.tmp.path();
    for dir in [env.place.dir.as_path(), tmp, tmp.parent().expect("parent")] {
        let outside: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name() == "x" || e.file_name() == "abs" || e.file_name() == "b")
            .collect();
        assert!(outside.is_empty(), "{}: {outside:?}", dir.display());
    }
}

async fn writes_name_a_branch_head_not_a_version(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    for uri in [
        "tarn://bad/x:v1",
        "tarn://bad/x:-1",
        "tarn://bad/x:2024-01-01",
        "tarn://bad/x:gold",
    ] {
        rejects(
            &env,
            uri,
            &["writes go to the head of a branch", "drop the"],
            lake.write(uri, kiv_batch(&[(9, 0, 0)]), WriteRequest::new()),
        )
        .await;
        rejects(
            &env,
            uri,
            &["head of a branch"],
            lake.delete_range(uri, "1", "2", None),
        )
        .await;
        rejects(&env, uri, &["head of a branch"], lake.compact(uri, None)).await;
        rejects(
            &env,
            uri,
            &["head of a branch"],
            lake.set_metadata(uri, WriteRequest::new().meta("a", "b")),
        )
        .await;
        rejects(
            &env,
            uri,
            &["head of a branch"],
            lake.overwrite(uri, kiv_batch(&[(9, 0, 0)]), WriteRequest::new()),
        )
        .await;
    }
    // `latest` is the head.
    let out = lake
        .write(
            "tarn://bad/x:latest",
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new(),
        )
        .await
        .expect("latest is writable");
    assert_eq!(out.version, Some(3));
}

async fn bad_ranges_are_rejected(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let snap = lake.snapshot(URI).await.expect("head");
    for (s, e) in [("5", "5"), ("5", "3")] {
        let err = ReadRequest::parse(&snap, Some(s), Some(e), None)
            .expect_err("bad range")
            .to_string();
        assert!(
            err.contains("bad range") && err.contains(s) && err.contains(e),
            "{err}"
        );
        rejects(
            &env,
            &format!("delete [{s}, {e})"),
            &["bad range"],
            lake.delete_range(URI, s, e, None),
        )
        .await;
    }
    for (s, e, needle) in [("x", "5", "\"x\""), ("1", "2.5", "expected an integer")] {
        assert!(ReadRequest::parse(&snap, Some(s), Some(e), None).is_err());
        rejects(
            &env,
            &format!("delete [{s}, {e})"),
            &[needle],
            lake.delete_range(URI, s, e, None),
        )
        .await;
    }
    rejects(
        &env,
        "unknown column",
        &["\"nope\"", "columns: k, id, v"],
        lake.read(
            &snap,
            &ReadRequest::parse(&snap, None, None, Some(vec!["nope".into()])).expect("parses"),
        ),
    )
    .await;
}

/// `ReadRequest`'s fields are public, so a range built by hand (as the HTTP server or the SQL
/// layer will) reaches `Lake::read` without `ReadRequest::parse`'s check. SPEC §12: a bad
/// range is an error, not a silently empty result.
async fn read_rejects_an_inverted_range_built_by_hand(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let snap = lake.snapshot(URI).await.expect("head");
    for (s, e) in [(5, 3), (4, 4)] {
        let inverted = ReadRequest {
            start: Some(OrderedValue::Int(s)),
            end: Some(OrderedValue::Int(e)),
            columns: None,
        };
        rejects(
            &env,
            &format!("read [{s}, {e})"),
            &["bad range"],
            lake.read(&snap, &inverted),
        )
        .await;
        let err = match lake.read_stream(&snap, &inverted).await {
            Ok(_) => panic!("read_stream [{s}, {e}) accepted"),
            Err(err) => err,
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

async fn bad_options_are_rejected(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let err = RowGroupTarget::parse("1Q").expect_err("1Q").to_string();
    assert!(
        err.contains("\"1Q\"") && err.contains("unknown unit"),
        "{err}"
    );
    for bad in ["0", "0D", "D1", "-5", "", "1.5D"] {
        assert!(RowGroupTarget::parse(bad).is_err(), "{bad:?} parsed");
    }
    // A frequency cannot cut an integer column.
    let day = RowGroupTarget::parse("1D").expect("1D");
    rejects(
        &env,
        "frequency on an int column",
        &["1D", "\"k\"", "not a timestamp"],
        lake.write(
            "tarn://bad/new",
            kiv_batch(&[(1, 0, 0)]),
            WriteRequest::new().ordered_on("k").row_group_target(day),
        ),
    )
    .await;
    rejects(
        &env,
        "frequency override on an int column",
        &["not a timestamp"],
        lake.write(
            URI,
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new().row_group_target(day),
        ),
    )
    .await;
    // duplicates_on must name columns of the dataset.
    rejects(
        &env,
        "duplicates_on at creation",
        &["duplicates_on", "\"nope\""],
        lake.write(
            "tarn://bad/new",
            kiv_batch(&[(1, 0, 0)]),
            WriteRequest::new()
                .ordered_on("k")
                .duplicates_on(tarn::DuplicatesOn::parse("id,nope")),
        ),
    )
    .await;
    rejects(
        &env,
        "duplicates_on override",
        &["duplicates_on", "\"nope\""],
        lake.write(
            URI,
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new().duplicates_on(tarn::DuplicatesOn::parse("nope")),
        ),
    )
    .await;
    // ordered_on must be in the input, orderable, and the dataset's own.
    rejects(
        &env,
        "ordered_on not in the input",
        &["\"ts\"", "not in the input", "k, id, v"],
        lake.write(
            "tarn://bad/new",
            kiv_batch(&[(1, 0, 0)]),
            WriteRequest::new().ordered_on("ts"),
        ),
    )
    .await;
    rejects(
        &env,
        "another ordered_on",
        &["ordered on \"k\"", "\"v\""],
        lake.write(
            URI,
            kiv_batch(&[(9, 0, 0)]),
            WriteRequest::new().ordered_on("v"),
        ),
    )
    .await;
    let bools = batch(vec![(
        "b",
        Arc::new(arrow::array::BooleanArray::from(vec![true])) as ArrayRef,
    )]);
    rejects(
        &env,
        "boolean ordered_on",
        &["\"b\"", "Boolean"],
        lake.write("tarn://bad/new", bools, WriteRequest::new().ordered_on("b")),
    )
    .await;
}

fn ts_batch(ts: ArrayRef, v: &[i64]) -> RecordBatch {
    batch(vec![("ts", ts), ("v", ints(v))])
}

async fn timestamps_are_cast_exactly_or_rejected(place: LakePlace) {
    let env = env(place).await;
    let lake = &env.lake;
    let uri = "tarn://bad/ts";
    // Created with a "+00:00" zone: stored as UTC.
    let ms = [1_700_000_000_000i64, 1_700_000_000_001];
    let first =
        Arc::new(TimestampMillisecondArray::from(ms.to_vec()).with_timezone("+00:00")) as ArrayRef;
    lake.write(
        uri,
        ts_batch(first, &[1, 2]),
        WriteRequest::new().ordered_on("ts"),
    )
    .await
    .expect("v1");
    let snap = lake.snapshot(uri).await.expect("v1");
    assert_eq!(
        snap.schema().field_with_name("ts").expect("ts").data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );

    // ns, us and s inputs that are exact in ms are cast.
    let ns = Arc::new(
        TimestampNanosecondArray::from(vec![1_700_000_000_002_000_000]).with_timezone("UTC"),
    ) as ArrayRef;
    lake.write(uri, ts_batch(ns, &[3]), WriteRequest::new())
        .await
        .expect("exact ns");
    let us =
        Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_003_000]).with_timezone("UTC"))
            as ArrayRef;
    lake.write(uri, ts_batch(us, &[4]), WriteRequest::new())
        .await
        .expect("exact us");
    let s = Arc::new(TimestampSecondArray::from(vec![1_700_000_001]).with_timezone("+00:00"))
        as ArrayRef;
    lake.write(uri, ts_batch(s, &[5]), WriteRequest::new())
        .await
        .expect("s, +00:00");
    let got = read_all(lake, uri).await;
    let values: Vec<i64> = got
        .iter()
        .flat_map(|b| {
            assert_eq!(
                b.column(0).data_type(),
                &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            );
            b.column(0)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("ms")
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(
        values,
        vec![
            1_700_000_000_000,
            1_700_000_000_001,
            1_700_000_000_002,
            1_700_000_000_003,
            1_700_000_001_000
        ]
    );

    // Lossy ns -> ms is rejected.
    let lossy = Arc::new(
        TimestampNanosecondArray::from(vec![1_700_000_000_002_000_001]).with_timezone("UTC"),
    ) as ArrayRef;
    rejects(
        &env,
        "lossy ns",
        &["\"ts\"", "lose precision"],
        lake.write(uri, ts_batch(lossy, &[6]), WriteRequest::new()),
    )
    .await;
    // Naive timestamps into a UTC dataset: rejected with a hint.
    let naive = Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_005])) as ArrayRef;
    rejects(
        &env,
        "naive into UTC",
        &["\"ts\"", "no time zone", "convert it to UTC"],
        lake.write(uri, ts_batch(naive, &[6]), WriteRequest::new()),
    )
    .await;
    // Another zone is not UTC.
    let paris = Arc::new(
        TimestampMillisecondArray::from(vec![1_700_000_000_005]).with_timezone("Europe/Paris"),
    ) as ArrayRef;
    rejects(
        &env,
        "Europe/Paris into UTC",
        &["\"ts\"", "Europe/Paris"],
        lake.write(uri, ts_batch(paris, &[6]), WriteRequest::new()),
    )
    .await;

    // A naive dataset takes naive input only, with the reverse hint.
    let naive_uri = "tarn://bad/naive";
    let naive = Arc::new(TimestampMillisecondArray::from(vec![1_000])) as ArrayRef;
    lake.write(
        naive_uri,
        ts_batch(naive, &[1]),
        WriteRequest::new().ordered_on("ts"),
    )
    .await
    .expect("naive v1");
    let utc =
        Arc::new(TimestampMillisecondArray::from(vec![2_000]).with_timezone("UTC")) as ArrayRef;
    rejects(
        &env,
        "UTC into naive",
        &["drop the zone"],
        lake.write(naive_uri, ts_batch(utc, &[2]), WriteRequest::new()),
    )
    .await;

    // Range bounds are parsed in the column's type.
    let snap = lake.snapshot(uri).await.expect("head");
    let r = ReadRequest::parse(
        &snap,
        Some("2023-11-14T22:13:20.001Z"),
        Some("2023-11-14T22:13:20.003+00:00"),
        None,
    )
    .expect("bounds");
    let rows: usize = lake
        .read(&snap, &r)
        .await
        .expect("read")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 2);
    rejects(
        &env,
        "unparsable time bound",
        &["\"soon\"", "RFC 3339"],
        lake.delete_range(uri, "soon", "2030-01-01", None),
    )
    .await;
}

/// A `UInt64` ordered_on is an integer column, but values above i64::MAX cannot be kept in the
/// catalog's min/max: the write must be refused with a message that names the column and the
/// limit, and the lake left as it was.
async fn u64_ordered_on_beyond_i64_is_rejected_clearly(place: LakePlace) {
    let env = env(place).await;
    let big = batch(vec![
        (
            "u",
            Arc::new(arrow::array::UInt64Array::from(vec![1, u64::MAX])) as ArrayRef,
        ),
        ("v", ints(&[1, 2])),
    ]);
    rejects(
        &env,
        "u64 above i64::MAX",
        &["\"u\"", "9223372036854775807"],
        env.lake
            .write("tarn://bad/u64", big, WriteRequest::new().ordered_on("u")),
    )
    .await;
    // Values that fit are fine.
    let small = batch(vec![
        (
            "u",
            Arc::new(arrow::array::UInt64Array::from(vec![3, 1])) as ArrayRef,
        ),
        ("v", ints(&[1, 2])),
    ]);
    env.lake
        .write("tarn://bad/u64", small, WriteRequest::new().ordered_on("u"))
        .await
        .expect("small u64");
}

tarn_testkit::backend_tests!(
    wrong_schemas_are_rejected_with_every_difference,
    null_and_nan_ordered_on_reject_the_whole_write,
    unknown_datasets_versions_and_refs_say_what_is_missing,
    malformed_uris_and_traversal_names_are_rejected,
    writes_name_a_branch_head_not_a_version,
    bad_ranges_are_rejected,
    read_rejects_an_inverted_range_built_by_hand,
    bad_options_are_rejected,
    timestamps_are_cast_exactly_or_rejected,
    u64_ordered_on_beyond_i64_is_rejected_clearly,
);
