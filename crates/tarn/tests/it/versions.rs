//! Versions and row-group-granular rewrites (SPEC §1, §2, §3.5–3.9, §5): an upsert inside one
//! week of a 5-year series rewrites one or two row groups and keeps every other row group by
//! reference; a pure append rewrites nothing; a frequency target cuts at period boundaries;
//! every ref form resolves; no-op writes create no version; vacuum keeps what it must.

use crate::common::*;
use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::TimestampMillisecondType;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tarn::{DuplicatesOn, Lake, ReadRequest, RowGroupTarget, VacuumRequest, WriteRequest};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Monday 2018-01-01, 00:00 UTC.
fn origin_ms() -> i64 {
    NaiveDate::from_ymd_opt(2018, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .expect("date")
}

/// "Daily-ish" rows: 1 to 3 readings a day, at irregular hours, over `days` days.
fn daily_rows(days: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for d in 0..days {
        for j in 0..(1 + d % 3) {
            let t = origin_ms() + d * DAY_MS + ((d * 7 + j * 5) % 24) * HOUR_MS + j * 60_000;
            out.push((t, (d * 10 + j) as f64));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

fn ts_batch(rows: &[(i64, f64)]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "ts",
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "x",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .expect("batch")
}

fn ts_rows(batches: &[RecordBatch]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for b in batches {
        let t = b
            .column_by_name("ts")
            .expect("ts")
            .as_primitive::<TimestampMillisecondType>();
        let x = b
            .column_by_name("x")
            .expect("x")
            .as_primitive::<arrow::datatypes::Float64Type>();
        out.extend((0..b.num_rows()).map(|i| (t.value(i), x.value(i))));
    }
    out
}

async fn read_ts(lake: &Lake, uri: &str) -> Vec<(i64, f64)> {
    ts_rows(&read_all(lake, uri).await)
}

/// Upserts three readings inside one week of a 5-year series and checks what was rewritten.
async fn upsert_one_week(place: LakePlace, target: &str, max_rewritten_groups: u64) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://series/upsert";
    let rows = daily_rows(5 * 365);
    let target_rows = match RowGroupTarget::parse(target).expect("target") {
        RowGroupTarget::Rows(n) => Some(n),
        RowGroupTarget::Frequency(_) => None,
    };
    lake.write(
        uri,
        ts_batch(&rows),
        WriteRequest::new()
            .ordered_on("ts")
            .duplicates_on(DuplicatesOn::parse("ts"))
            .row_group_target(RowGroupTarget::parse(target).expect("target")),
    )
    .await
    .expect("v1");
    let before = row_group_ids(&lake, uri).await;
    assert!(
        before.len() > 30,
        "{target}: only {} row groups",
        before.len()
    );

    // Week 100 (Monday 2019-12-02): replace two readings and add one.
    let monday = origin_ms() + 100 * 7 * DAY_MS;
    let in_week: Vec<(i64, f64)> = rows
        .iter()
        .copied()
        .filter(|r| r.0 >= monday && r.0 < monday + 7 * DAY_MS)
        .collect();
    let upsert = vec![
        (in_week[1].0, -1.0),
        (monday + 3 * DAY_MS + 30 * 60_000, -2.0),
        (in_week[in_week.len() - 2].0, -3.0),
    ];
    let out = lake
        .write(
            uri,
            ts_batch(&[upsert[2], upsert[0], upsert[1]]),
            WriteRequest::new(),
        )
        .await
        .expect("v2");
    assert_eq!(out.version, Some(2));
    assert_eq!(out.rows_in, 3);

    let after = row_group_ids(&lake, uri).await;
    let before_ids: BTreeSet<i64> = before.iter().map(|r| r.0).collect();
    let after_ids: BTreeSet<i64> = after.iter().map(|r| r.0).collect();
    let removed: Vec<&(i64, String, u32, u64)> = before
        .iter()
        .filter(|r| !after_ids.contains(&r.0))
        .collect();
    let added: Vec<&(i64, String, u32, u64)> = after
        .iter()
        .filter(|r| !before_ids.contains(&r.0))
        .collect();
    let removed_rows: u64 = removed.iter().map(|r| r.3).sum();
    assert!(
        !removed.is_empty() && removed.len() as u64 <= max_rewritten_groups,
        "{target}: removed {removed:?}"
    );
    assert_eq!(out.row_groups_removed, removed.len() as u64, "{target}");
    assert_eq!(out.row_groups_written, added.len() as u64, "{target}");
    assert_eq!(
        out.rows_rewritten, removed_rows,
        "{target}: rewritten rows are the removed groups' rows"
    );
    let group_worth = target_rows.unwrap_or_else(|| removed.iter().map(|r| r.3).max().unwrap_or(0));
    assert!(
        out.rows_rewritten <= max_rewritten_groups * group_worth.max(7 * 3),
        "{target}: rewrote {} rows",
        out.rows_rewritten
    );
    // Every untouched row group is the same row group of the same file, in the same order.
    let kept_before: Vec<&(i64, String, u32, u64)> =
        before.iter().filter(|r| after_ids.contains(&r.0)).collect();
    let kept_after: Vec<&(i64, String, u32, u64)> =
        after.iter().filter(|r| before_ids.contains(&r.0)).collect();
    assert_eq!(kept_before, kept_after, "{target}");
    assert_eq!(kept_before.len(), before.len() - removed.len());
    // The new row groups are in one new file and sit where the old ones were.
    let new_files: BTreeSet<&String> = added.iter().map(|r| &r.1).collect();
    assert_eq!(new_files.len(), 1, "{target}: {added:?}");
    let first_new = after
        .iter()
        .position(|r| !before_ids.contains(&r.0))
        .expect("a new row group");
    let first_old = before
        .iter()
        .position(|r| !after_ids.contains(&r.0))
        .expect("a removed row group");
    assert_eq!(first_new, first_old, "{target}");

    let mut expected = rows.clone();
    for (t, x) in &upsert {
        match expected.iter_mut().find(|r| r.0 == *t) {
            Some(r) => r.1 = *x,
            None => expected.push((*t, *x)),
        }
    }
    expected.sort_by_key(|r| r.0);
    assert_eq!(read_ts(&lake, uri).await, expected, "{target}: head");
    assert_eq!(
        read_ts(&lake, &format!("{uri}:v1")).await,
        rows,
        "{target}: v1"
    );
    // A range read of the week opens only what it needs and returns the week.
    let snap = lake.snapshot(uri).await.expect("head");
    let week =
        ReadRequest::parse(&snap, Some("2019-12-02"), Some("2019-12-09"), None).expect("range");
    let got = ts_rows(&lake.read(&snap, &week).await.expect("read week"));
    let want: Vec<(i64, f64)> = expected
        .iter()
        .copied()
        .filter(|r| r.0 >= monday && r.0 < monday + 7 * DAY_MS)
        .collect();
    assert_eq!(got, want);
    let touched = snap
        .row_groups(&lake, week.start.as_ref(), week.end.as_ref())
        .await
        .expect("row groups");
    assert!(
        touched.len() <= 3,
        "{target}: a week's read opens {} row groups",
        touched.len()
    );
}

async fn an_upsert_inside_one_week_rewrites_one_weekly_row_group(place: LakePlace) {
    upsert_one_week(place, "1W", 1).await;
}

async fn an_upsert_inside_one_week_rewrites_at_most_two_100_row_groups(place: LakePlace) {
    upsert_one_week(place, "100", 2).await;
}

async fn a_pure_append_rewrites_nothing_and_coalesces_the_tail(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://series/append";
    let ks = |r: std::ops::Range<i64>| r.map(|k| (k, 0, k)).collect::<Vec<Row>>();
    let req = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(100));
    lake.write(uri, kiv_batch(&ks(0..300)), req)
        .await
        .expect("v1");
    let sizes = |lake: Lake| async move {
        row_group_ids(&lake, uri)
            .await
            .iter()
            .map(|r| r.3)
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100]);
    let ids_v1 = row_group_ids(&lake, uri).await;

    // The tail is on target: appending rewrites nothing.
    let out = lake
        .write(uri, kiv_batch(&ks(300..400)), WriteRequest::new())
        .await
        .expect("v2");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (0, 0, 1),
        "{out:?}"
    );
    // The size-tiered tail (the default): a short trailing row group stays...
    let out = lake
        .write(uri, kiv_batch(&ks(400..430)), WriteRequest::new())
        .await
        .expect("v3");
    assert_eq!(
        (out.rows_rewritten, out.row_groups_removed),
        (0, 0),
        "{out:?}"
    );
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 30]);
    // ... and so does a second one: both are level 1 (at least 100 / 8 rows) and the tail
    // is under target.
    let out = lake
        .write(uri, kiv_batch(&ks(430..450)), WriteRequest::new())
        .await
        .expect("v4");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (0, 0, 1),
        "{out:?}"
    );
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 30, 20]);
    // When the tail reaches the target it is merged and cut at it.
    let out = lake
        .write(uri, kiv_batch(&ks(450..510)), WriteRequest::new())
        .await
        .expect("v5");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (50, 2, 2),
        "{out:?}"
    );
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 100, 10]);
    // The first three row groups were never touched.
    assert_eq!(&row_group_ids(&lake, uri).await[..3], &ids_v1[..]);
    // max_off_target = 3 on one write lets three short row groups stand.
    let out = lake
        .write(
            uri,
            kiv_batch(&ks(510..515)),
            WriteRequest::new().max_off_target(3),
        )
        .await
        .expect("v6");
    assert_eq!(out.rows_rewritten, 0, "{out:?}");
    assert_eq!(read_kiv(&lake, uri).await, ks(0..515));
    for v in 1..=6 {
        let n = read_kiv(&lake, &format!("{uri}:v{v}")).await.len();
        assert_eq!(n, [300, 400, 430, 450, 510, 515][v - 1], "v{v}");
    }
}

/// `--max-off-target 1`, stored with the dataset, keeps oups's rule: a second short trailing
/// row group makes two off target, and they are merged.
async fn max_off_target_keeps_oups_rule_for_the_tail(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://series/oups";
    let ks = |r: std::ops::Range<i64>| r.map(|k| (k, 0, k)).collect::<Vec<Row>>();
    let req = WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(100))
        .max_off_target(1);
    lake.write(uri, kiv_batch(&ks(0..430)), req)
        .await
        .expect("v1");
    let info = lake
        .snapshot(uri)
        .await
        .expect("head")
        .info(&lake)
        .await
        .expect("info");
    assert_eq!(
        (info.coalescing, info.max_off_target),
        ("max_off_target", Some(1))
    );
    let sizes = |lake: Lake| async move {
        row_group_ids(&lake, uri)
            .await
            .iter()
            .map(|r| r.3)
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 30]);
    let out = lake
        .write(uri, kiv_batch(&ks(430..450)), WriteRequest::new())
        .await
        .expect("v2");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (30, 1, 1),
        "{out:?}"
    );
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 50]);
    let out = lake
        .write(uri, kiv_batch(&ks(450..510)), WriteRequest::new())
        .await
        .expect("v3");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (50, 1, 2),
        "{out:?}"
    );
    assert_eq!(sizes(lake.clone()).await, vec![100, 100, 100, 100, 100, 10]);
    assert_eq!(read_kiv(&lake, uri).await, ks(0..510));
}

async fn a_weekly_target_appends_new_weeks_and_rewrites_only_the_open_one(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://series/weekly";
    let rows = daily_rows(10 * 7);
    lake.write(
        uri,
        ts_batch(&rows),
        WriteRequest::new()
            .ordered_on("ts")
            .row_group_target(RowGroupTarget::parse("1W").expect("1W")),
    )
    .await
    .expect("v1");
    assert_eq!(row_group_ids(&lake, uri).await.len(), 10);
    // A whole new week: nothing rewritten.
    let next: Vec<(i64, f64)> = (0..7)
        .map(|d| (origin_ms() + (70 + d) * DAY_MS, 1.0))
        .collect();
    let out = lake
        .write(uri, ts_batch(&next), WriteRequest::new())
        .await
        .expect("v2");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (0, 0, 1),
        "{out:?}"
    );
    // One more reading in that week: that week's row group, and only it, is rewritten.
    let late = (origin_ms() + 76 * DAY_MS + 23 * HOUR_MS, 2.0);
    let out = lake
        .write(uri, ts_batch(&[late]), WriteRequest::new())
        .await
        .expect("v3");
    assert_eq!(
        (
            out.rows_rewritten,
            out.row_groups_removed,
            out.row_groups_written
        ),
        (7, 1, 1),
        "{out:?}"
    );
    assert_eq!(row_group_ids(&lake, uri).await.len(), 11);
}

fn day_of(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .expect("ts")
        .date_naive()
}

async fn a_daily_target_puts_one_day_per_row_group(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://series/daily";
    // 30 days, 0 to 5 readings a day at scattered times (some days empty), unsorted.
    let mut rows = Vec::new();
    for d in 0..30i64 {
        for j in 0..(d * 7 % 6) {
            rows.push((
                origin_ms() + d * DAY_MS + ((j * 13 + d) % 24) * HOUR_MS + j,
                (d * 100 + j) as f64,
            ));
        }
    }
    rows.push((origin_ms() + 5 * DAY_MS - 1, -1.0)); // the last millisecond of a day
    rows.push((origin_ms() + 5 * DAY_MS, -2.0)); // the first of the next
    let mut shuffled = rows.clone();
    shuffled.reverse();
    shuffled.swap(0, 7);
    lake.write(
        uri,
        ts_batch(&shuffled),
        WriteRequest::new()
            .ordered_on("ts")
            .row_group_target(RowGroupTarget::parse("1D").expect("1D")),
    )
    .await
    .expect("v1");
    let check = |lake: Lake, what: &'static str| async move {
        let rows = read_ts(&lake, uri).await;
        let days: BTreeSet<NaiveDate> = rows.iter().map(|r| day_of(r.0)).collect();
        let snap = lake.snapshot(uri).await.expect("head");
        let rgs = snap
            .row_groups(&lake, None, None)
            .await
            .expect("row groups");
        assert_eq!(rgs.len(), days.len(), "{what}: one row group per day");
        let mut seen = BTreeSet::new();
        for rg in &rgs {
            let (tarn::OrderedValue::Timestamp(lo), tarn::OrderedValue::Timestamp(hi)) =
                (&rg.min, &rg.max)
            else {
                panic!("not timestamps: {rg:?}");
            };
            assert_eq!(day_of(*lo), day_of(*hi), "{what}: {rg:?} spans two days");
            assert!(
                seen.insert(day_of(*lo)),
                "{what}: two row groups for {}",
                day_of(*lo)
            );
        }
        // Each row group holds every reading of its day.
        for rg in &rgs {
            let tarn::OrderedValue::Timestamp(lo) = rg.min else {
                unreachable!()
            };
            let n = rows.iter().filter(|r| day_of(r.0) == day_of(lo)).count() as u64;
            assert_eq!(rg.rows, n, "{what}: {}", day_of(lo));
        }
    };
    check(lake.clone(), "v1").await;
    let mut sorted = rows.clone();
    sorted.sort_by_key(|r| r.0);
    assert_eq!(read_ts(&lake, uri).await, sorted);
    // A reading into an existing day rewrites that day's row group only; one into an
    // empty day rewrites nothing.
    for (at, x, rewritten) in [
        (4 * DAY_MS + 12 * HOUR_MS, 7.0, 1),
        (6 * DAY_MS + HOUR_MS, 8.0, 0),
    ] {
        let before = row_group_ids(&lake, uri).await;
        let out = lake
            .write(uri, ts_batch(&[(origin_ms() + at, x)]), WriteRequest::new())
            .await
            .expect("write");
        check(lake.clone(), "after a write").await;
        let after = row_group_ids(&lake, uri).await;
        let after_ids: BTreeSet<i64> = after.iter().map(|r| r.0).collect();
        let removed = before.iter().filter(|r| !after_ids.contains(&r.0)).count();
        assert_eq!(removed, rewritten, "{out:?}");
        assert_eq!(out.row_groups_removed, rewritten as u64, "{out:?}");
        assert_eq!(after.len(), before.len() + 1 - rewritten);
    }
}

async fn every_ref_form_resolves(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://refs/x";
    let mut contents = Vec::new();
    for v in 1..=4i64 {
        let rows: Vec<Row> = (0..v).map(|k| (k, v, 0)).collect();
        let req = WriteRequest::new().ordered_on("k").message(format!("v{v}"));
        lake.overwrite(uri, kiv_batch(&rows), req)
            .await
            .expect("write");
        contents.push(rows);
        // Commit times are microseconds: keep consecutive versions apart.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let log = lake.log(uri, None).await.expect("log");
    let ts: BTreeMap<u64, String> = log
        .iter()
        .map(|l| (l.version, l.timestamp.clone()))
        .collect();
    let version_of = |r: &str| {
        let lake = lake.clone();
        let full = format!("{uri}{r}");
        async move {
            let snap = lake
                .snapshot(&full)
                .await
                .unwrap_or_else(|e| panic!("{full}: {e}"));
            let rows = read_kiv(&lake, &full).await;
            (snap.version(), rows)
        }
    };
    let mut cases: Vec<(String, u64)> = vec![
        ("".into(), 4),
        (":".into(), 4),
        (":latest".into(), 4),
        (":v1".into(), 1),
        (":v3".into(), 3),
        (":0".into(), 1),
        (":+1".into(), 2),
        (":3".into(), 4),
        (":-1".into(), 4),
        (":-2".into(), 3),
        (":-4".into(), 1),
    ];
    for (v, t) in &ts {
        cases.push((format!(":{t}"), *v));
    }
    // Between two commits: the earlier one.
    let t2 = DateTime::parse_from_rfc3339(&ts[&2])
        .expect("rfc3339")
        .with_timezone(&Utc);
    let t3 = DateTime::parse_from_rfc3339(&ts[&3])
        .expect("rfc3339")
        .with_timezone(&Utc);
    assert!(t3 - t2 >= chrono::Duration::milliseconds(2), "{t2} {t3}");
    let between = t2 + chrono::Duration::milliseconds(1);
    cases.push((
        format!(
            ":{}",
            between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
        2,
    ));
    // The same instant in another offset.
    let in_paris = between.with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"));
    cases.push((format!(":{}", in_paris.to_rfc3339()), 2));
    // A date means the end of that day (UTC).
    let t4 = DateTime::parse_from_rfc3339(&ts[&4])
        .expect("rfc3339")
        .with_timezone(&Utc);
    cases.push((format!(":{}", t4.date_naive().format("%Y-%m-%d")), 4));
    cases.push((
        format!(
            ":{}",
            (t4.date_naive() + chrono::Duration::days(400)).format("%Y-%m-%d")
        ),
        4,
    ));
    for (r, want) in cases {
        let (got, rows) = version_of(&r).await;
        assert_eq!(got, want, "{uri}{r}");
        assert_eq!(rows, contents[want as usize - 1], "{uri}{r}");
    }
    let t1 = DateTime::parse_from_rfc3339(&ts[&1])
        .expect("rfc3339")
        .with_timezone(&Utc);
    let before = t1 - chrono::Duration::microseconds(1);
    let err = lake
        .snapshot(&format!(
            "{uri}:{}",
            before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ))
        .await
        .expect_err("before the first commit")
        .to_string();
    assert!(
        err.contains("no version was committed at or before"),
        "{err}"
    );
    let day_before = t1.date_naive().pred_opt().expect("date");
    let err = lake
        .snapshot(&format!("{uri}:{}", day_before.format("%Y-%m-%d")))
        .await
        .expect_err("the day before")
        .to_string();
    assert!(
        err.contains("no version was committed at or before"),
        "{err}"
    );
    assert!(day_before.year() > 2000);
    // A pinned snapshot never sees later writes.
    let pinned = lake
        .snapshot(&format!("{uri}:latest"))
        .await
        .expect("latest");
    lake.write(uri, kiv_batch(&[(99, 9, 9)]), WriteRequest::new())
        .await
        .expect("v5");
    let rows = kiv_rows(
        &lake
            .read(&pinned, &ReadRequest::default())
            .await
            .expect("read pinned"),
    );
    assert_eq!(rows, contents[3]);
    assert_eq!(pinned.uri().to_string(), "tarn://refs/x:v4");
}

async fn no_op_writes_create_no_version_and_metadata_changes_do(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://meta/x";
    let rows: Vec<Row> = (0..10).map(|k| (k, 0, k)).collect();
    lake.write(
        uri,
        kiv_batch(&rows),
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(4))
            .meta("unit", "kW"),
    )
    .await
    .expect("v1");
    let log = log_of(&lake, uri).await;
    let files = place.files().await;

    let out = lake
        .write(uri, kiv_batch(&[]), WriteRequest::new())
        .await
        .expect("empty write");
    assert_eq!(out.version, None, "{out:?}");
    assert_eq!(out.rows, 10);
    // Setting a key to the value it has is no change either.
    let out = lake
        .write(uri, kiv_batch(&[]), WriteRequest::new().meta("unit", "kW"))
        .await
        .expect("same meta");
    assert_eq!(out.version, None, "{out:?}");
    let out = lake
        .set_metadata(uri, WriteRequest::new().unset_meta("absent"))
        .await
        .expect("unset absent");
    assert_eq!(out.version, None, "{out:?}");
    let out = lake
        .delete_range(uri, "100", "200", None)
        .await
        .expect("delete nothing");
    assert_eq!(
        out.version, None,
        "a delete past the end touches nothing: {out:?}"
    );
    assert_eq!(log_of(&lake, uri).await, log);
    assert_eq!(place.files().await, files);

    // Metadata only: a new version with the same rows and the same row groups.
    let groups_v1 = row_group_ids(&lake, uri).await;
    let out = lake
        .set_metadata(
            uri,
            WriteRequest::new()
                .meta("source", "sensor-7")
                .meta("unit", "MW"),
        )
        .await
        .expect("metadata");
    assert_eq!(out.version, Some(2));
    assert_eq!(
        (
            out.row_groups_written,
            out.rows_rewritten,
            out.bytes_written
        ),
        (0, 0, 0),
        "{out:?}"
    );
    assert_eq!(place.files().await, files, "metadata writes no file");
    assert_eq!(row_group_ids(&lake, &format!("{uri}:v2")).await, groups_v1);
    assert_eq!(read_kiv(&lake, uri).await, rows);
    let meta = |m: &[(&str, &str)]| {
        m.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let v1 = lake.snapshot(&format!("{uri}:v1")).await.expect("v1");
    let v2 = lake.snapshot(&format!("{uri}:v2")).await.expect("v2");
    assert_eq!(v1.metadata(), &meta(&[("unit", "kW")]));
    assert_eq!(
        v2.metadata(),
        &meta(&[("source", "sensor-7"), ("unit", "MW")])
    );
    // Unset, alone or with a write of rows: one version each.
    let out = lake
        .set_metadata(uri, WriteRequest::new().unset_meta("source"))
        .await
        .expect("unset");
    assert_eq!(out.version, Some(3));
    let out = lake
        .write(
            uri,
            kiv_batch(&[(10, 0, 10)]),
            WriteRequest::new().unset_meta("unit").meta("rows", "11"),
        )
        .await
        .expect("rows and metadata");
    assert_eq!(out.version, Some(4));
    let v3 = lake.snapshot(&format!("{uri}:v3")).await.expect("v3");
    let v4 = lake.snapshot(uri).await.expect("v4");
    assert_eq!(v3.metadata(), &meta(&[("unit", "MW")]));
    assert_eq!(v4.metadata(), &meta(&[("rows", "11")]));
    assert_eq!(
        v3.info(&lake).await.expect("info").metadata,
        meta(&[("unit", "MW")])
    );
    let ops: Vec<String> = log_of(&lake, uri).await.into_iter().map(|l| l.3).collect();
    assert_eq!(ops.len(), 4);
    // Compaction always makes a version, with the same rows.
    let out = lake.compact(uri, None).await.expect("compact");
    assert_eq!(out.version, Some(5));
    assert_eq!(
        read_kiv(&lake, uri).await,
        read_kiv(&lake, &format!("{uri}:v4")).await
    );
}

async fn vacuum_keeps_heads_and_only_what_retained_versions_need(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let a = "tarn://vac/a";
    let b = "tarn://vac/b";
    let req = || {
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(5))
    };
    // a: v1 [0-4] in file F1; v2 rewrites it (F2: [0..3] [4]), so F1 is needed by v1
    // only; v3 appends [10-14] and takes F2's short [4] with it (SPEC §3.5: no short row
    // group stranded before a full one), F3: [4, 10-13] [14]; v4 rewrites F2's other row
    // group (F4), so F2 is needed by v2 and v3 only; v5 deletes [0, 5).
    lake.write(
        a,
        kiv_batch(&(0..5).map(|k| (k, 0, 0)).collect::<Vec<_>>()),
        req(),
    )
    .await
    .expect("a v1");
    lake.write(a, kiv_batch(&[(2, 1, 1)]), req())
        .await
        .expect("a v2");
    lake.write(
        a,
        kiv_batch(&(10..15).map(|k| (k, 2, 2)).collect::<Vec<_>>()),
        req(),
    )
    .await
    .expect("a v3");
    lake.write(a, kiv_batch(&[(3, 3, 3)]), req())
        .await
        .expect("a v4");
    lake.delete_range(a, "0", "5", None).await.expect("a v5");
    let f1 = files_of(&lake, &format!("{a}:v1")).await;
    let f2: BTreeSet<String> = files_of(&lake, &format!("{a}:v2"))
        .await
        .difference(&f1)
        .cloned()
        .collect();
    assert_eq!(f2.len(), 1);
    assert!(files_of(&lake, &format!("{a}:v3")).await.is_superset(&f2));
    assert!(files_of(&lake, &format!("{a}:v4")).await.is_disjoint(&f2));
    lake.write(b, kiv_batch(&[(1, 0, 0)]), req())
        .await
        .expect("b v1");
    let mut contents = BTreeMap::new();
    for v in 1..=5 {
        contents.insert(v, read_kiv(&lake, &format!("{a}:v{v}")).await);
    }
    let b_rows = read_kiv(&lake, b).await;

    // A dry run reports and changes nothing.
    let before = place.files().await;
    let dry = lake
        .vacuum(&VacuumRequest {
            keep_last: Some(2),
            grace: Duration::ZERO,
            dry_run: true,
            ..VacuumRequest::default()
        })
        .await
        .expect("dry run");
    assert_eq!(
        dry.expired_versions,
        vec!["vac/a@main:v1", "vac/a@main:v2", "vac/a@main:v3"]
    );
    assert_eq!(
        dry.unreferenced_files
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        f1.union(&f2).cloned().collect(),
        "only v1 needed F1, only v2 and v3 F2"
    );
    assert_eq!(place.files().await, before);
    assert_eq!(read_kiv(&lake, &format!("{a}:v1")).await, contents[&1]);

    let needed = |lake: Lake, versions: Vec<String>| async move {
        let mut out = BTreeSet::new();
        for v in versions {
            out.extend(files_of(&lake, &v).await);
        }
        out
    };
    let report = lake
        .vacuum(&VacuumRequest {
            keep_last: Some(2),
            grace: Duration::ZERO,
            ..VacuumRequest::default()
        })
        .await
        .expect("vacuum");
    assert_eq!(report.expired_versions, dry.expired_versions);
    assert_eq!(report.unreferenced_files, dry.unreferenced_files);
    let keep = needed(
        lake.clone(),
        vec![format!("{a}:v4"), format!("{a}:v5"), b.to_string()],
    )
    .await;
    assert_eq!(
        place.files().await,
        keep,
        "exactly the files of retained versions remain"
    );
    for v in 1..=3 {
        let err = lake
            .snapshot(&format!("{a}:v{v}"))
            .await
            .expect_err("expired")
            .to_string();
        assert!(err.contains("removed by `tarn vacuum`"), "{err}");
    }
    for v in 4..=5 {
        assert_eq!(
            read_kiv(&lake, &format!("{a}:v{v}")).await,
            contents[&v],
            "v{v}"
        );
    }
    assert_eq!(
        read_kiv(&lake, b).await,
        b_rows,
        "a one-version dataset keeps its head"
    );
    let versions: Vec<u64> = log_of(&lake, a).await.iter().map(|l| l.0).collect();
    assert_eq!(versions, vec![5, 4]);

    // Vacuuming again with the same policy finds nothing more.
    let again = lake
        .vacuum(&VacuumRequest {
            keep_last: Some(2),
            grace: Duration::ZERO,
            ..VacuumRequest::default()
        })
        .await
        .expect("vacuum again");
    assert!(
        again.expired_versions.is_empty()
            && again.unreferenced_files.is_empty()
            && again.orphan_files.is_empty(),
        "{again:?}"
    );

    // Versions keep being numbered after the head; older_than 0 keeps only heads.
    let out = lake
        .write(a, kiv_batch(&[(30, 6, 6)]), req())
        .await
        .expect("a v6");
    assert_eq!(out.version, Some(6));
    let v6 = read_kiv(&lake, a).await;
    let report = lake
        .vacuum(&VacuumRequest {
            older_than: Some(Duration::ZERO),
            grace: Duration::ZERO,
            ..VacuumRequest::default()
        })
        .await
        .expect("vacuum older_than 0");
    assert_eq!(
        report.expired_versions,
        vec!["vac/a@main:v4", "vac/a@main:v5"]
    );
    let keep = needed(lake.clone(), vec![a.to_string(), b.to_string()]).await;
    assert_eq!(place.files().await, keep);
    assert_eq!(read_kiv(&lake, a).await, v6);
    assert_eq!(read_kiv(&lake, b).await, b_rows);
    // The head still takes writes that merge into its row groups.
    lake.write(a, kiv_batch(&[(7, 7, 7)]), req())
        .await
        .expect("a v7");
    let mut want = v6.clone();
    want = model_write(&want, &[(7, 7, 7)], Dup::None);
    assert_eq!(read_kiv(&lake, a).await, want);
}

/// `--evolve` adds a column; row groups written before it read it as nulls, under every
/// projection and range (including a projection of only the new column), at every version.
async fn an_evolved_column_reads_as_nulls_from_older_files(place: LakePlace) {
    use arrow::array::{Int64Array, StringArray};
    let lake = relaxed_lake(&place).await;
    let uri = "tarn://evolve/x";
    let req = || {
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(2))
    };
    lake.write(uri, kiv_batch(&[(1, 0, 1), (2, 0, 2), (3, 0, 3)]), req())
        .await
        .expect("v1");
    let with_w = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from(vec![10, 11])) as ArrayRef),
        ("id", Arc::new(Int64Array::from(vec![0, 0])) as ArrayRef),
        ("v", Arc::new(Int64Array::from(vec![10, 11])) as ArrayRef),
        ("w", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
    ])
    .expect("batch");
    let out = lake
        .write(uri, with_w, req().evolve(true))
        .await
        .expect("v2");
    // v1 is [1 2] [3]: the short [3] is merged with the new rows rather than stranded
    // before them (SPEC §3.5), so the rewritten row 3 gets a null `w` in the new file.
    assert_eq!(out.rows_rewritten, 1, "{out:?}");
    let snap = lake.snapshot(uri).await.expect("head");
    let w_of = |batches: Vec<RecordBatch>| -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("w").expect("w");
                c.as_string::<i32>()
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let expect_all = vec![
        None,
        None,
        None,
        Some("a".to_string()),
        Some("b".to_string()),
    ];
    for (start, end, cols, want) in [
        (None, None, vec!["w"], expect_all.clone()),
        (None, None, vec!["w", "k"], expect_all.clone()),
        (Some("2"), None, vec!["w"], expect_all[1..].to_vec()),
        (None, Some("11"), vec!["w"], expect_all[..4].to_vec()),
        (Some("1"), Some("3"), vec!["w"], vec![None, None]),
    ] {
        let r = ReadRequest::parse(
            &snap,
            start,
            end,
            Some(cols.iter().map(|c| c.to_string()).collect()),
        )
        .expect("request");
        let batches = lake
            .read(&snap, &r)
            .await
            .unwrap_or_else(|e| panic!("{start:?}..{end:?} {cols:?}: {e}"));
        for b in &batches {
            let schema = b.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, cols, "{start:?}..{end:?}");
        }
        assert_eq!(w_of(batches), want, "{start:?}..{end:?} {cols:?}");
    }
    // Merging into an old row group carries the nulls along; v1 never had the column.
    lake.write(
        uri,
        kiv_batch(&[(2, 1, 5)]),
        WriteRequest::new().evolve(false),
    )
    .await
    .expect_err("the input lacks w");
    let with_w = RecordBatch::try_from_iter(vec![
        ("k", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
        ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("v", Arc::new(Int64Array::from(vec![5])) as ArrayRef),
        (
            "w",
            Arc::new(StringArray::from(vec![Some("c")])) as ArrayRef,
        ),
    ])
    .expect("batch");
    lake.write(uri, with_w, WriteRequest::new())
        .await
        .expect("v3");
    assert_eq!(
        w_of(read_all(&lake, uri).await),
        vec![
            None,
            None,
            Some("c".into()),
            None,
            Some("a".into()),
            Some("b".into())
        ]
    );
    let v1 = lake.snapshot(&format!("{uri}:v1")).await.expect("v1");
    assert!(v1.schema().field_with_name("w").is_err());
    assert_eq!(
        read_kiv(&lake, &format!("{uri}:v1")).await,
        vec![(1, 0, 1), (2, 0, 2), (3, 0, 3)]
    );
}

tarn_testkit::backend_tests!(
    an_upsert_inside_one_week_rewrites_one_weekly_row_group,
    an_upsert_inside_one_week_rewrites_at_most_two_100_row_groups,
    a_pure_append_rewrites_nothing_and_coalesces_the_tail,
    max_off_target_keeps_oups_rule_for_the_tail,
    a_weekly_target_appends_new_weeks_and_rewrites_only_the_open_one,
    a_daily_target_puts_one_day_per_row_group,
    every_ref_form_resolves,
    no_op_writes_create_no_version_and_metadata_changes_do,
    vacuum_keeps_heads_and_only_what_retained_versions_need,
    an_evolved_column_reads_as_nulls_from_older_files,
);
