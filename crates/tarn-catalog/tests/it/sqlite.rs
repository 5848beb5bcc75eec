//! SQLite-only tests: catalog files written by older releases migrate, and the lookups use
//! the indexes (SQLite's `EXPLAIN QUERY PLAN`). Their PostgreSQL counterparts are in
//! `postgres.rs`.

use crate::registry::{dimension, record, target};
use std::path::Path;
use std::sync::Arc;
use tarn_catalog::*;
use tarn_core::DatasetName;

fn open(path: &Path) -> Catalog {
    Catalog::new(Arc::new(SqliteCatalog::open(path, false).expect("open")))
}

fn known() -> i64 {
    tarn_catalog::sqlite::migrations::MIGRATIONS
        .last()
        .map_or(0, |m| m.0)
}

fn schema(name: &str) -> tarn_core::KeySchema {
    tarn_core::KeySchema::parse_spec(name, "quantity:str,city:str", &["frequency:str"], None)
        .expect("schema")
}

#[tokio::test]
async fn collections_persist_and_old_catalogs_migrate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    // A catalog made by the first release: only migration 1 applied.
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let (version, sql) = tarn_catalog::sqlite::migrations::MIGRATIONS[0];
        assert_eq!(version, 1);
        conn.execute_batch(sql).expect("migration 1");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_micros INTEGER NOT NULL); \
             INSERT INTO schema_migrations VALUES (1, 0);",
        )
        .expect("v1 catalog");
    }
    let catalog = open(&path);
    let weather = schema("weather");
    catalog
        .collections
        .create_collection(&weather)
        .await
        .expect("create");
    drop(catalog);
    let again = open(&path);
    let got = again
        .collections
        .collection(&DatasetName::new("weather").expect("name"))
        .await
        .expect("get")
        .expect("persisted");
    assert_eq!(got.schema, weather);
    assert_eq!(
        again.lake.table_counts().await.expect("counts")["collections"],
        1
    );
}

#[test]
fn dependents_seek_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SqliteCatalog::open(dir.path().join("catalog.db"), false).expect("open");
    for any_version in [false, true] {
        let plan =
            tarn_catalog::sqlite::dependents_query_plan(&catalog, any_version).expect("plan");
        let seek = if any_version {
            "SEARCH d USING COVERING INDEX registry_dependents (target_kind=? AND target_name=?)"
        } else {
            "SEARCH d USING COVERING INDEX registry_dependents (target_kind=? AND target_name=? AND target_version=?)"
        };
        // The dependencies are the outer loop, sought on the index; each dependent's
        // component is one primary-key lookup; nothing is scanned.
        assert_eq!(plan.first().map(String::as_str), Some(seek), "{plan:#?}");
        assert!(
            plan.iter()
                .any(|l| l.starts_with("SEARCH c USING INTEGER PRIMARY KEY")),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
    }
}

#[tokio::test]
async fn a_migration_3_catalog_upgrades_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    // A catalog from before the registry: migrations 1 to 3, with a dataset and a collection.
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let migrations = tarn_catalog::sqlite::migrations::MIGRATIONS;
        assert_eq!(
            migrations[..3].iter().map(|m| m.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_micros INTEGER NOT NULL);",
        )
        .expect("migrations table");
        for (version, sql) in &migrations[..3] {
            conn.execute_batch(sql).expect("migration");
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .expect("record");
        }
        conn.execute_batch(
            r#"INSERT INTO commits (id, ts_micros) VALUES (1, 1000), (2, 2000);
            INSERT INTO datasets (id, name, ordered_on, created_micros) VALUES (1, 'demand/nc', 'ts', 1000);
            INSERT INTO branches (id, dataset_id, name, head_version, created_commit) VALUES (1, 1, 'main', 1, 1);
            INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, row_groups, bytes,
                min_value, max_value, schema_json, options_json, metadata_json)
                VALUES (1, 1, 2, 'write', 'first', 10, 1, 100, 1, 9, '{}', '{}', '{}');
            INSERT INTO collections (id, name, schema_json, created_micros) VALUES (1, 'weather', '{}', 1000);"#,
        )
        .expect("data");
    }
    let catalog = open(&path);
    let applied: i64 = rusqlite::Connection::open(&path)
        .expect("sqlite")
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .expect("applied");
    assert_eq!(applied, known());

    let ds = catalog
        .reader
        .dataset(&tarn_core::DatasetName::new("demand/nc").expect("name"))
        .await
        .expect("get")
        .expect("kept");
    let main = catalog
        .reader
        .branch(ds.id, &tarn_core::BranchName::main())
        .await
        .expect("get")
        .expect("main");
    let v1 = catalog
        .reader
        .version(main.id, 1)
        .await
        .expect("get")
        .expect("v1");
    assert_eq!(
        (v1.commit_id, v1.rows, v1.message.as_deref()),
        (2, 10, Some("first"))
    );
    assert_eq!(catalog.reader.last_commit().await.expect("last"), 2);
    let before = catalog.lake.table_counts().await.expect("counts");
    assert_eq!(
        (before["collections"], before["registry_components"]),
        (1, 0)
    );

    // The registry works on the upgraded catalog, and its commits follow the lake's.
    let county = catalog
        .registry
        .put_component_version(NewComponentVersion {
            dependencies: vec![target("dataset", "demand/nc@main", 1)],
            ..dimension("county", None, vec![record("37001", "Alamance")])
        })
        .await
        .expect("create");
    assert_eq!(county.commit_id, 3);
    assert!(county.timestamp.timestamp_micros() >= 2000);
    assert_eq!(
        catalog
            .registry
            .dependents("dataset", "demand/nc@main", Some(1))
            .await
            .expect("dependents")
            .len(),
        1
    );
    drop(catalog);
    let again = open(&path);
    let after = again.lake.table_counts().await.expect("counts");
    assert_eq!(after["versions"], before["versions"]);
    assert_eq!(after["registry_versions"], 1);
    assert_eq!(after["commits"], 3);
}

/// SPEC §14 / issue 10 item 4: while another process holds the SQLite write lock, a commit
/// of this process waits for it (busy timeout), and reads of the same catalog handle go on
/// through the reader pool without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_waiting_for_the_write_lock_does_not_stall_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    let catalog = open(&path);
    let name = DatasetName::new("a/b").expect("name");
    let v1 = crate::conformance::request(0, &[(0, 9, 10)], vec![], "f1");
    catalog.writer.commit(v1).await.expect("v1");

    // "Another process": its own connection, holding the write lock for a while.
    let hold = std::time::Duration::from_millis(1500);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let blocker = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("write lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(hold);
            tx.rollback().expect("release");
        })
    };
    locked_rx.recv().expect("locked");
    let started = std::time::Instant::now();
    let writer = {
        let catalog = catalog.clone();
        tokio::spawn(async move {
            let v2 = crate::conformance::request(1, &[(10, 19, 10)], vec![], "f2");
            catalog.writer.commit(v2).await
        })
    };
    // Give the commit time to reach the lock and wait on it.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let ds = catalog.reader.dataset(&name).await.expect("read");
        assert!(ds.is_some());
        assert_eq!(catalog.reader.datasets(None).await.expect("list").len(), 1);
        assert!(
            t.elapsed() < std::time::Duration::from_millis(300),
            "a read waited {:?} behind the blocked commit",
            t.elapsed()
        );
    }
    assert!(
        !writer.is_finished(),
        "the commit did not wait for the lock"
    );
    let v2 = writer
        .await
        .expect("join")
        .expect("v2 after the lock is released");
    assert_eq!(v2.version, 2);
    assert!(started.elapsed() >= hold - std::time::Duration::from_millis(200));
    blocker.join().expect("blocker");
}

/// Each `tarn` command opens the catalog, commits and exits without checkpointing; the WAL
/// must still stay short across such processes (closing every connection resets SQLite's
/// shared WAL index as a new process would), or every start and commit reads all of it.
#[tokio::test]
async fn the_wal_stays_short_across_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    let wal = dir.path().join("catalog.db-wal");
    let rounds = 400;
    let mut largest = 0;
    for i in 0..rounds {
        let catalog = open(&path);
        catalog
            .collections
            .create_collection(&schema(&format!("weather{i}")))
            .await
            .expect("create");
        drop(catalog);
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    // 256 frames of 4 KiB pages (each with its 24-byte header), plus the commit that
    // crossed the bound; without the truncating checkpoint the WAL reached several MB.
    assert!(largest > 0, "the WAL was never written");
    assert!(
        largest <= 300 * (4096 + 24),
        "the WAL grew to {largest} bytes over {rounds} commits"
    );
    let again = open(&path);
    assert_eq!(
        again.lake.table_counts().await.expect("counts")["collections"],
        rounds
    );
}
