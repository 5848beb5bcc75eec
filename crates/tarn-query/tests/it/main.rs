//! Integration tests of SQL over snapshots: results against the same computation on raw
//! rows, pruning, naming, time travel in one query, pinning, and errors.

mod functions;
mod refs;

use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch, TimestampSecondArray};
use arrow::datatypes::{Float64Type, Int64Type};
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn::{Durability, Lake, ReadRequest, RowGroupTarget, WriteRequest};
use tarn_query::datafusion::datasource::physical_plan::FileScanConfig;
use tarn_query::datafusion::datasource::source::DataSourceExec;
use tarn_query::datafusion::physical_plan::ExecutionPlan;
use tarn_query::{QueryError, QuerySession};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn lake(dir: &std::path::Path) -> Lake {
    Lake::init(dir).await.expect("init");
    Lake::open_with(dir, Durability::Relaxed)
        .await
        .expect("open")
}

/// `(ts seconds, v)` rows as a batch with `ts` timestamp[s, UTC] and `v` float64.
fn batch(rows: &[(i64, f64)]) -> RecordBatch {
    let ts: ArrayRef = Arc::new(
        TimestampSecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let v: ArrayRef = Arc::new(Float64Array::from(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    RecordBatch::try_from_iter([("ts", ts), ("v", v)]).expect("batch")
}

/// Every row of a snapshot, read with tarn's own reader.
async fn raw(lake: &Lake, uri: &str) -> Vec<(i64, f64)> {
    let snap = lake.snapshot(uri).await.expect("snapshot");
    let batches = lake
        .read(&snap, &ReadRequest::default())
        .await
        .expect("read");
    let mut out = Vec::new();
    for b in &batches {
        let ts = b
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampSecondType>();
        let v = b.column(1).as_primitive::<Float64Type>();
        out.extend((0..b.num_rows()).map(|i| (ts.value(i), v.value(i))));
    }
    out
}

async fn query(session: &QuerySession, sql: &str) -> Vec<RecordBatch> {
    session
        .sql(sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn f64s(batches: &[RecordBatch], col: usize) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(col)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn i64s(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(col);
            match c.data_type() {
                arrow::datatypes::DataType::Int64 => {
                    c.as_primitive::<Int64Type>().values().to_vec()
                }
                arrow::datatypes::DataType::Timestamp(..) => {
                    // In seconds, whatever the unit the expression produced.
                    let secs = arrow::compute::cast(
                        c,
                        &arrow::datatypes::DataType::Timestamp(
                            arrow::datatypes::TimeUnit::Second,
                            None,
                        ),
                    )
                    .expect("cast");
                    secs.as_primitive::<arrow::datatypes::TimestampSecondType>()
                        .values()
                        .to_vec()
                }
                other => panic!("column {col} is {other}"),
            }
        })
        .collect()
}

const DAY: i64 = 86_400;
const BASE: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

/// Two datasets of 10-minute data over 6 days with 1D row groups, then an upsert into day 2
/// (so a file holds a row group the head no longer has) and an append.
async fn fixture(lake: &Lake) {
    let mut a: Vec<(i64, f64)> = (0..6 * 144)
        .map(|i| (BASE + i * 600, (i % 97) as f64 * 0.5))
        .collect();
    let b: Vec<(i64, f64)> = (0..6 * 144)
        .map(|i| (BASE + i * 600, (i % 13) as f64))
        .collect();
    let req = || {
        WriteRequest::new()
            .ordered_on("ts")
            .duplicates_on(tarn::DuplicatesOn::parse("ts"))
            .row_group_target(RowGroupTarget::parse("1D").expect("target"))
    };
    lake.write("tarn://site/a", batch(&a), req())
        .await
        .expect("a v1");
    lake.write("tarn://site/b", batch(&b), req())
        .await
        .expect("b v1");
    let fix: Vec<(i64, f64)> = (0..6)
        .map(|i| (BASE + DAY + 3600 + i * 600, 1000.0 + i as f64))
        .collect();
    lake.write("tarn://site/a", batch(&fix), WriteRequest::new())
        .await
        .expect("a v2");
    let more: Vec<(i64, f64)> = (0..144).map(|i| (BASE + 6 * DAY + i * 600, 7.0)).collect();
    lake.write("tarn://site/a", batch(&more), WriteRequest::new())
        .await
        .expect("a v3");
    a.extend(more);
}

#[test]
fn aggregations_joins_windows_and_time_travel_match_raw_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        let a = raw(&lake, "tarn://site/a").await;
        let b = raw(&lake, "tarn://site/b").await;
        let a1 = raw(&lake, "tarn://site/a:v1").await;
        let session = QuerySession::new(&lake, None).await.expect("session");

        // count and sum, through the quoted name and the dotted one.
        for name in ["\"site/a\"", "site.a"] {
            let out = query(&session, &format!("SELECT count(*) AS n, sum(v) AS s FROM {name}")).await;
            assert_eq!(i64s(&out, 0), vec![a.len() as i64], "{name}");
            let sum: f64 = a.iter().map(|r| r.1).sum();
            assert!((f64s(&out, 1)[0] - sum).abs() < 1e-6, "{name}");
        }

        // Hourly averages, ordered.
        let out = query(
            &session,
            "SELECT date_bin(INTERVAL '1 hour', ts) AS h, avg(v) AS m FROM \"site/a\" GROUP BY h ORDER BY h",
        )
        .await;
        let mut hourly: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
        for (t, v) in &a {
            let e = hourly.entry(t - t.rem_euclid(3600)).or_default();
            e.0 += v;
            e.1 += 1;
        }
        assert_eq!(i64s(&out, 0), hourly.keys().copied().collect::<Vec<_>>());
        for (got, (s, n)) in f64s(&out, 1).iter().zip(hourly.values()) {
            assert!((got - s / f64::from(*n)).abs() < 1e-9);
        }

        // A join of two datasets on the ordered column.
        let out = query(
            &session,
            "SELECT a.ts, a.v + b.v AS s FROM \"site/a\" a JOIN \"site/b\" b ON a.ts = b.ts ORDER BY a.ts",
        )
        .await;
        let bmap: BTreeMap<i64, f64> = b.iter().copied().collect();
        let want: Vec<(i64, f64)> = a
            .iter()
            .filter_map(|(t, v)| bmap.get(t).map(|w| (*t, v + w)))
            .collect();
        assert_eq!(i64s(&out, 0), want.iter().map(|r| r.0).collect::<Vec<_>>());
        assert_eq!(f64s(&out, 1), want.iter().map(|r| r.1).collect::<Vec<_>>());

        // A window over the ordered column.
        let out = query(
            &session,
            "SELECT ts, sum(v) OVER (ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS w \
             FROM \"site/a\" ORDER BY ts",
        )
        .await;
        let want: Vec<f64> = (0..a.len())
            .map(|i| a[i.saturating_sub(2)..=i].iter().map(|r| r.1).sum())
            .collect();
        for (got, w) in f64s(&out, 1).iter().zip(&want) {
            assert!((got - w).abs() < 1e-9);
        }
        assert_eq!(f64s(&out, 1).len(), want.len());

        // Time travel in one query: v1 against the head, through the table function and a
        // quoted URI.
        for (old, new) in [
            ("tarn('tarn://site/a:v1')", "tarn('tarn://site/a:latest')"),
            ("\"site/a:v1\"", "\"site/a\""),
        ] {
            let out = query(
                &session,
                &format!(
                    "SELECT count(*) AS n FROM {old} o JOIN {new} h ON o.ts = h.ts WHERE o.v <> h.v"
                ),
            )
            .await;
            let head: BTreeMap<i64, f64> = a.iter().copied().collect();
            let changed = a1.iter().filter(|(t, v)| head.get(t).is_some_and(|w| w != v)).count();
            assert_eq!(changed, 6, "the upsert changed 6 rows");
            assert_eq!(i64s(&out, 0), vec![changed as i64], "{old} vs {new}");
        }

        // Bind parameters.
        let out = session
            .sql(
                "SELECT count(*) FROM \"site/b\" WHERE v > $1",
                vec![tarn_query::datafusion::common::ScalarValue::Float64(Some(10.0))],
            )
            .await
            .expect("params")
            .collect()
            .await
            .expect("collect");
        assert_eq!(i64s(&out, 0), vec![b.iter().filter(|r| r.1 > 10.0).count() as i64]);
    });
}

/// The DataSourceExec scans of a physical plan: per scan, the distinct `(file, row group)`
/// pairs its file segments read (DataFusion may split a segment into byte ranges).
fn scanned(plan: &Arc<dyn ExecutionPlan>) -> Vec<std::collections::BTreeSet<(String, usize)>> {
    let mut out = Vec::new();
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>()
    {
        let mut read = std::collections::BTreeSet::new();
        for group in &config.file_groups {
            for file in group.files() {
                let plan = file
                    .extension::<tarn_query::datafusion::datasource::physical_plan::parquet::ParquetAccessPlan>()
                    .expect("every segment has an access plan");
                for rg in plan.row_group_indexes() {
                    read.insert((file.path().to_string(), rg));
                }
            }
        }
        out.push(read);
    }
    for child in plan.children() {
        out.extend(scanned(child));
    }
    out
}

#[test]
fn a_one_day_filter_on_five_years_reads_one_row_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        // Five years of hourly rows, one row group per day: 1,827 row groups in one file.
        let rows: Vec<(i64, f64)> = (0..(5 * 365 + 2) * 24)
            .map(|h| (BASE + h * 3600, h as f64))
            .collect();
        lake.write(
            "tarn://big/hourly",
            batch(&rows),
            WriteRequest::new()
                .ordered_on("ts")
                .row_group_target(RowGroupTarget::parse("1D").expect("1D")),
        )
        .await
        .expect("write");
        let session = QuerySession::new(&lake, None).await.expect("session");
        let df = session
            .sql(
                "SELECT count(*), sum(v) FROM \"big/hourly\" \
                 WHERE ts >= '2026-03-01T00:00:00Z' AND ts < '2026-03-02T00:00:00Z'",
                vec![],
            )
            .await
            .expect("plan");
        let plan = df.clone().create_physical_plan().await.expect("physical");
        let scans = scanned(&plan);
        assert_eq!(scans.len(), 1, "one scan");
        assert_eq!(scans[0].len(), 1, "one row group of 1,827: {:?}", scans[0]);
        let out = df.collect().await.expect("collect");
        assert_eq!(i64s(&out, 0), vec![24]);
        let first = (BASE..)
            .step_by(3600)
            .position(|t| t == 1_772_323_200)
            .expect("in range") as f64;
        let want: f64 = (0..24).map(|h| first + f64::from(h)).sum();
        assert_eq!(f64s(&out, 1), vec![want]);

        // Without a filter on ts, every row group is scanned.
        let df = session
            .sql("SELECT count(*) FROM \"big/hourly\" WHERE v >= 0", vec![])
            .await
            .expect("plan");
        let plan = df.create_physical_plan().await.expect("physical");
        let total: usize = scanned(&plan).iter().map(|s| s.len()).sum();
        assert_eq!(total, 1_827);

        // EXPLAIN and EXPLAIN ANALYZE say what the catalog pruned.
        for explain in ["EXPLAIN", "EXPLAIN ANALYZE"] {
            let sql = format!(
                "{explain} SELECT count(*) FROM \"big/hourly\" \
                 WHERE ts >= '2026-03-01T00:00:00Z' AND ts < '2026-03-02T00:00:00Z'"
            );
            let out = query(&session, &sql).await;
            let rows = strings(&out);
            let pruning: Vec<&(String, String)> = rows
                .iter()
                .filter(|(kind, _)| kind == "tarn_catalog_pruning")
                .collect();
            assert_eq!(pruning.len(), 1, "{explain}: {rows:?}");
            assert_eq!(
                pruning[0].1,
                "tarn://big/hourly:v1: ts >= 2026-03-01T00:00:00Z AND ts < 2026-03-02T00:00:00Z: \
                 1 of 1827 row groups kept, 1826 pruned in the catalog; 1 file, 1 partition",
                "{explain}"
            );
            assert!(
                rows.iter().any(|(_, plan)| plan.contains("DataSourceExec")),
                "{explain}: DataFusion's plan is there too: {rows:?}"
            );
        }
    });
}

/// The `(plan_type, plan)` rows of an EXPLAIN.
fn strings(batches: &[RecordBatch]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in batches {
        let text = |i: usize| {
            arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).expect("text")
        };
        let (kind, plan) = (text(0), text(1));
        let (kind, plan) = (kind.as_string::<i32>(), plan.as_string::<i32>());
        for i in 0..b.num_rows() {
            out.push((kind.value(i).to_string(), plan.value(i).to_string()));
        }
    }
    out
}

#[test]
fn partitions_are_contiguous_runs_of_whole_row_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        // 100 days of hourly rows in daily row groups, then a rewrite of days 40..45, so the
        // snapshot's row groups come from two files and interleave.
        let rows: Vec<(i64, f64)> = (0..100 * 24).map(|h| (BASE + h * 3600, h as f64)).collect();
        let daily = || {
            WriteRequest::new()
                .ordered_on("ts")
                .row_group_target(RowGroupTarget::parse("1D").expect("1D"))
        };
        lake.write("tarn://p/x", batch(&rows), daily())
            .await
            .expect("write");
        let patch: Vec<(i64, f64)> = rows[40 * 24..45 * 24].iter().map(|r| (r.0, -r.1)).collect();
        lake.write(
            "tarn://p/x",
            batch(&patch),
            daily().duplicates_on(tarn::DuplicatesOn::parse("ts")),
        )
        .await
        .expect("update");
        let engine = tarn_query::QueryEngine::new(&lake).expect("engine");
        for partitions in [1usize, 2, 3, 7, 500] {
            let session = engine.session(None).await.expect("session");
            session
                .context()
                .state_ref()
                .write()
                .config_mut()
                .options_mut()
                .execution
                .target_partitions = partitions;
            let df = session
                .sql("SELECT ts, v FROM \"p/x\" ORDER BY ts", vec![])
                .await
                .expect("plan");
            let plan = df.clone().create_physical_plan().await.expect("physical");
            let config = find_scan(&plan).expect("a Parquet scan");
            assert_eq!(
                config.file_groups.len(),
                partitions.min(100),
                "{partitions} partitions asked"
            );
            // Every file of every partition is whole (no byte range), and the partitions
            // concatenated list each live row group once, in row order.
            let mut ranges = Vec::new();
            for group in &config.file_groups {
                let mut group_ranges = Vec::new();
                for file in group.files() {
                    assert!(file.range.is_none(), "{partitions}: {file:?}");
                    let stats = file.statistics.as_ref().expect("statistics");
                    let min = stats.column_statistics[0].min_value.get_value().cloned();
                    let max = stats.column_statistics[0].max_value.get_value().cloned();
                    group_ranges.push((min.expect("min"), max.expect("max")));
                }
                ranges.extend(group_ranges);
            }
            assert!(
                ranges.windows(2).all(|w| w[0].1 < w[1].0),
                "{partitions}: segments in row order, disjoint: {ranges:?}"
            );
            let read: usize = scanned(&plan).iter().map(|s| s.len()).sum();
            assert_eq!(read, 100, "{partitions}: every day once");
            let text = tarn_query::datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string();
            assert!(!text.contains("SortExec"), "{partitions}: no sort:\n{text}");
            let out = df.collect().await.expect("collect");
            let want: Vec<i64> = raw(&lake, "tarn://p/x").await.iter().map(|r| r.0).collect();
            assert_eq!(i64s(&out, 0), want, "{partitions}");
            let v = f64s(&out, 1);
            assert_eq!(v[40 * 24], -(40.0 * 24.0), "the update is read");
        }
    });
}

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<FileScanConfig> {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>()
    {
        return Some(config.clone());
    }
    plan.children().into_iter().find_map(find_scan)
}

#[test]
fn sessions_of_one_engine_share_its_runtime_and_metadata_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        let engine = tarn_query::QueryEngine::new(&lake).expect("engine");
        let first = engine.session(None).await.expect("session");
        let cache = first
            .context()
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        assert_eq!(cache.len(), 0);
        query(&first, "SELECT sum(v) FROM \"site/a\"").await;
        let cached = cache.len();
        assert!(cached > 0, "the scan cached its footers");
        let second = engine.session(None).await.expect("session");
        assert!(Arc::ptr_eq(
            &first.context().runtime_env(),
            &second.context().runtime_env()
        ));
        query(&second, "SELECT sum(v) FROM \"site/a\"").await;
        assert_eq!(cache.len(), cached, "the second session found them cached");
        // A session of its own has a cache of its own.
        let own = QuerySession::new(&lake, None).await.expect("session");
        assert!(!Arc::ptr_eq(
            &first.context().runtime_env(),
            &own.context().runtime_env()
        ));
    });
}

#[test]
fn order_by_ordered_on_needs_no_sort() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        let session = QuerySession::new(&lake, None).await.expect("session");
        let df = session
            .sql("SELECT ts, v FROM \"site/a\" ORDER BY ts", vec![])
            .await
            .expect("plan");
        let plan = df.clone().create_physical_plan().await.expect("physical");
        let text = tarn_query::datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        assert!(!text.contains("SortExec"), "no sort needed:\n{text}");
        let out = df.collect().await.expect("collect");
        let ts = i64s(&out, 0);
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert_eq!(ts.len(), raw(&lake, "tarn://site/a").await.len());
    });
}

#[test]
fn a_session_is_pinned_to_one_lake_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        let before = raw(&lake, "tarn://site/b").await.len() as i64;
        let session = QuerySession::new(&lake, None).await.expect("session");
        // A writer commits after the session started: the session does not see it.
        let more: Vec<(i64, f64)> = (0..10).map(|i| (BASE + 30 * DAY + i, 1.0)).collect();
        lake.write("tarn://site/b", batch(&more), WriteRequest::new())
            .await
            .expect("write");
        let out = query(&session, "SELECT count(*) FROM \"site/b\"").await;
        assert_eq!(i64s(&out, 0), vec![before]);
        let fresh = QuerySession::new(&lake, None).await.expect("session");
        let out = query(&fresh, "SELECT count(*) FROM \"site/b\"").await;
        assert_eq!(i64s(&out, 0), vec![before + 10]);
    });
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        // A dataset whose name makes site.a ambiguous once it exists too.
        lake.write(
            "tarn://site.a",
            batch(&[(BASE, 1.0)]),
            WriteRequest::new().ordered_on("ts"),
        )
        .await
        .expect("write");
        let session = QuerySession::new(&lake, None).await.expect("session");
        let err = |sql: &str| {
            let session = &session;
            let sql = sql.to_string();
            async move {
                match session.sql(&sql, vec![]).await {
                    Ok(df) => match df.collect().await {
                        Ok(_) => panic!("{sql} succeeded"),
                        Err(e) => QueryError::from_datafusion(e),
                    },
                    Err(e) => e,
                }
            }
        };
        let e = err("SELECT * FROM \"site/aa\"").await;
        assert!(matches!(e, QueryError::UnknownTable { .. }), "{e}");
        assert!(e.to_string().contains("did you mean \"site/a\""), "{e}");
        let e = err("SELECT * FROM site.a").await;
        assert!(e.to_string().contains("ambiguous"), "{e}");
        assert!(
            e.to_string().contains("\"site/a\"") && e.to_string().contains("\"site.a\""),
            "{e}"
        );
        let e = err("SELECT * FROM tarn('tarn://site/a:v9')").await;
        assert!(e.to_string().contains("version v9 does not exist"), "{e}");
        let e = err("SELECT * FROM tarn('tarn://site/a@nope')").await;
        assert!(
            e.to_string().contains("branch \"nope\" does not exist"),
            "{e}"
        );
        let e = err("SELECT * FROM tarn(42)").await;
        assert!(e.to_string().contains("tarn() takes one argument"), "{e}");
        let e = err("SELEC 1").await;
        assert!(e.to_string().contains("SELEC"), "{e}");
        let e = err("SELECT nope FROM \"site/a\"").await;
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(e.is_user_error(), "{e}");
    });
}

#[test]
fn statistics_come_from_the_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        fixture(&lake).await;
        let snap = lake.snapshot("tarn://site/a").await.expect("snapshot");
        let table = tarn_query::SnapshotTable::new(lake.clone(), snap.clone());
        let stats =
            tarn_query::datafusion::catalog::TableProvider::statistics(&table).expect("stats");
        assert_eq!(
            stats.num_rows.get_value().copied(),
            Some(snap.rows() as usize)
        );
        let ts = &stats.column_statistics[0];
        let first = raw(&lake, "tarn://site/a").await;
        let min = ts.min_value.get_value().expect("min").clone();
        assert_eq!(
            min,
            tarn_query::datafusion::common::ScalarValue::TimestampSecond(
                Some(first[0].0),
                Some("UTC".into())
            )
        );
        let max = ts.max_value.get_value().expect("max").clone();
        assert_eq!(
            max,
            tarn_query::datafusion::common::ScalarValue::TimestampSecond(
                first.last().map(|l| l.0),
                Some("UTC".into())
            )
        );
    });
}

#[test]
fn a_collection_is_one_table_with_its_key_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        let schema = tarn::core::key::KeySchema::parse_spec(
            "weather",
            "quantity:str,city:str",
            &["year:int"],
            None,
        )
        .expect("schema");
        lake.create_collection(schema).await.expect("collection");
        let mut want: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (i, city) in ["berlin", "paris", "rome"].iter().enumerate() {
            let rows: Vec<(i64, f64)> = (0..50).map(|k| (BASE + k * 600, (k * (i as i64 + 1)) as f64)).collect();
            let e = want.entry((*city).to_string()).or_default();
            e.0 += rows.iter().map(|r| r.1).sum::<f64>();
            e.1 += rows.len();
            lake.write(
                &format!("tarn://weather/temp-{city}/2024"),
                batch(&rows),
                WriteRequest::new().ordered_on("ts"),
            )
            .await
            .expect("write");
        }
        let session = QuerySession::new(&lake, None).await.expect("session");
        // A dataset created after the session started is not part of its lake state.
        lake.write("tarn://weather/temp-oslo/2024", batch(&[(BASE, 1.0)]), WriteRequest::new().ordered_on("ts"))
            .await
            .expect("write");
        let out = query(
            &session,
            "SELECT city, year, count(*) AS n, avg(v) AS m FROM weather GROUP BY city, year ORDER BY city",
        )
        .await;
        let cities: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_string::<i32>();
                (0..b.num_rows()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(cities, want.keys().cloned().collect::<Vec<_>>());
        assert_eq!(i64s(&out, 1), vec![2024; 3]);
        assert_eq!(i64s(&out, 2), want.values().map(|v| v.1 as i64).collect::<Vec<_>>());
        for (got, (s, n)) in f64s(&out, 3).iter().zip(want.values()) {
            assert!((got - s / *n as f64).abs() < 1e-9);
        }
        // A filter on a key field opens only that dataset.
        let df = session
            .sql("SELECT count(*) FROM weather WHERE city = 'paris'", vec![])
            .await
            .expect("plan");
        let plan = df.clone().create_physical_plan().await.expect("physical");
        let scans = scanned(&plan);
        assert_eq!(scans.len(), 1, "one member scanned: {scans:?}");
        assert!(scans[0].iter().all(|(p, _)| p.starts_with("weather/temp-paris/")), "{scans:?}");
        assert_eq!(i64s(&df.collect().await.expect("collect"), 0), vec![50]);
    });
}

/// String and binary columns are read as views, as DataFusion reads Parquet by default;
/// `datafusion.execution.parquet.schema_force_view_types = false` reads them as declared.
/// Either way the values are those written, and `plain_types` gives back the declared types.
#[test]
fn strings_are_read_as_views_unless_the_session_says_otherwise() {
    use arrow::array::{BinaryArray, StringArray};
    use arrow::datatypes::DataType;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let lake = lake(dir.path()).await;
        let names: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    "{}-{i}",
                    ["short", "a name longer than twelve bytes"][i % 2]
                )
            })
            .collect();
        let ts: ArrayRef = Arc::new(
            TimestampSecondArray::from((0..300).map(|i| BASE + i).collect::<Vec<_>>())
                .with_timezone("UTC"),
        );
        let name: ArrayRef = Arc::new(StringArray::from_iter_values(&names));
        let blob: ArrayRef = Arc::new(BinaryArray::from_iter_values(
            names.iter().map(|n| n.as_bytes()),
        ));
        let batch = RecordBatch::try_from_iter([("ts", ts), ("name", name), ("blob", blob)])
            .expect("batch");
        lake.write("tarn://s/x", batch, WriteRequest::new().ordered_on("ts"))
            .await
            .expect("write");
        let sql = "SELECT name, blob FROM \"s/x\" WHERE name LIKE 'a name%' ORDER BY ts";
        let want: Vec<&String> = names.iter().filter(|n| n.starts_with("a name")).collect();

        let session = QuerySession::new(&lake, None).await.expect("session");
        let out = query(&session, sql).await;
        let schema = out[0].schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8View);
        assert_eq!(schema.field(1).data_type(), &DataType::BinaryView);
        let got: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let (n, v) = (b.column(0).as_string_view(), b.column(1).as_binary_view());
                (0..b.num_rows())
                    .map(|i| {
                        assert_eq!(n.value(i).as_bytes(), v.value(i));
                        n.value(i).to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
        let plain = tarn_query::plain_types(&schema);
        assert_eq!(plain.field(0).data_type(), &DataType::Utf8);
        assert_eq!(plain.field(1).data_type(), &DataType::Binary);

        let session = QuerySession::new(&lake, None).await.expect("session");
        session
            .context()
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let out = query(&session, sql).await;
        assert_eq!(out[0].schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(out[0].schema().field(1).data_type(), &DataType::Binary);
        let got: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let n = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| n.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
    });
}
