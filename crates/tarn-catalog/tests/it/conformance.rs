//! Conformance tests of the commit protocol and of collections, run on every backend.

use crate::backends::TestCatalog;
use std::collections::BTreeMap;
use tarn_catalog::*;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};

pub fn request(base: u64, rgs: &[(i64, i64, u64)], removed: Vec<i64>, path: &str) -> CommitRequest {
    CommitRequest {
        dataset: DatasetName::new("a/b").expect("name"),
        branch: BranchName::main(),
        base_version: base,
        ordered_on: "k".into(),
        operation: "write".into(),
        message: None,
        schema_json: "{}".into(),
        options_json: "{}".into(),
        metadata: BTreeMap::new(),
        new_file: (!rgs.is_empty()).then(|| NewFile {
            path: path.into(),
            bytes: 100,
            row_groups: rgs
                .iter()
                .enumerate()
                .map(|(i, (min, max, rows))| NewRowGroup {
                    rg_index: i as u32,
                    rows: *rows,
                    bytes: 10,
                    min: SqlScalar::Integer(*min),
                    max: SqlScalar::Integer(*max),
                })
                .collect(),
        }),
        removed_row_groups: removed,
        request_id: None,
    }
}

async fn commit_protocol(t: TestCatalog) {
    let catalog = &t.catalog;
    let name = DatasetName::new("a/b").expect("name");
    // First commit creates the dataset and main at v1.
    let v1 = catalog
        .writer
        .commit(request(0, &[(0, 9, 10), (10, 19, 10)], vec![], "f1"))
        .await
        .expect("v1");
    assert_eq!((v1.version, v1.rows), (1, 20));
    // A second writer that planned on "no dataset" conflicts.
    let err = catalog
        .writer
        .commit(request(0, &[(5, 5, 1)], vec![], "f-lost"))
        .await
        .expect_err("conflict");
    assert!(err.is_conflict(), "{err}");
    assert!(
        err.to_string()
            .contains("planned on version 0, but the head is now 1"),
        "{err}"
    );

    let ds = catalog
        .reader
        .dataset(&name)
        .await
        .expect("query")
        .expect("exists");
    let main = catalog
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("query")
        .expect("main");
    let rgs = catalog
        .reader
        .row_groups(main.id, 1, RowGroupRange::default())
        .await
        .expect("rgs");
    assert_eq!(rgs.len(), 2);

    // v2 replaces the second row group.
    let v2 = catalog
        .writer
        .commit(request(1, &[(10, 25, 16)], vec![rgs[1].id], "f2"))
        .await
        .expect("v2");
    assert_eq!((v2.version, v2.rows), (2, 26));
    assert!(v2.commit_id > v1.commit_id && v2.timestamp >= v1.timestamp);
    // A stale writer on v1 that removes the same row group loses to the race, and changes
    // nothing: the head moved, so it is a conflict, which re-planning resolves.
    let stale = catalog
        .writer
        .commit(request(1, &[(10, 30, 3)], vec![rgs[1].id], "f3"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(
            stale,
            CatalogError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{stale}"
    );
    // Removing a row group that is no longer live at the head the commit names is no race:
    // a distinct error, not a conflict, and nothing is written. So is naming a live one
    // twice, or one that was never on the branch.
    for (removed, dead) in [
        (vec![rgs[1].id], vec![rgs[1].id]),
        (vec![rgs[0].id, rgs[1].id], vec![rgs[1].id]),
        (vec![rgs[0].id, rgs[0].id], vec![rgs[0].id]),
        (vec![rgs[0].id, 999_999], vec![999_999]),
    ] {
        let gone = catalog
            .writer
            .commit(request(2, &[(40, 41, 2)], removed.clone(), "f4"))
            .await
            .expect_err("not live");
        assert!(!gone.is_conflict(), "{removed:?}: {gone}");
        let ids: Vec<String> = dead.iter().map(i64::to_string).collect();
        let text = gone.to_string();
        assert!(
            text.starts_with("commit refused on a/b@main: ")
                && text.contains(&format!(
                    "row group(s) {} it removes are not live at version 2",
                    ids.join(", ")
                ))
                && text.contains("nothing was written"),
            "{removed:?}: {text}"
        );
    }
    let head = catalog
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("query")
        .expect("main");
    assert_eq!(head.head, 2, "the refused commits wrote nothing");

    // Every version keeps exactly its row groups.
    let at1 = catalog
        .reader
        .row_groups(main.id, 1, RowGroupRange::default())
        .await
        .expect("rgs");
    let at2 = catalog
        .reader
        .row_groups(main.id, 2, RowGroupRange::default())
        .await
        .expect("rgs");
    assert_eq!(
        at1.iter().map(|r| r.id).collect::<Vec<_>>(),
        rgs.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert_eq!(at2.len(), 2);
    assert_eq!(at2[1].path, "f2");
    // Range pruning in SQL: [20, 30) only meets the new row group.
    let pruned = catalog
        .reader
        .row_groups(
            main.id,
            2,
            RowGroupRange {
                start: Some(SqlScalar::Integer(20)),
                end_excl: Some(SqlScalar::Integer(30)),
            },
        )
        .await
        .expect("rgs");
    assert_eq!(
        pruned.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["f2"]
    );

    let log = catalog.reader.versions(main.id, None).await.expect("log");
    assert_eq!(log.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    let limited = catalog
        .reader
        .versions(main.id, Some(1))
        .await
        .expect("log");
    assert_eq!(limited.len(), 1);
    let micros = v1.timestamp.timestamp_micros();
    let at = |m| async move {
        match catalog.reader.commit_at_time(m).await.expect("q") {
            Some(c) => catalog
                .reader
                .version_at_commit(main.id, c)
                .await
                .expect("q"),
            None => None,
        }
    };
    assert_eq!(at(micros).await, Some(1));
    assert_eq!(at(micros - 1).await, None);
    assert_eq!(catalog.reader.last_commit().await.expect("q"), v2.commit_id);
    assert_eq!(
        catalog
            .reader
            .version_at_commit(main.id, v1.commit_id)
            .await
            .expect("q"),
        Some(1)
    );

    // Retention: keep the last version; v1 expires and the file only it needed is released.
    let dry = catalog
        .retention
        .expire(
            RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            true,
        )
        .await
        .expect("dry run");
    assert_eq!(
        dry.expired_versions,
        vec![("a/b".to_string(), "main".to_string(), 1)]
    );
    assert!(
        dry.unreferenced_files.is_empty(),
        "f1 still holds v2's first row group"
    );
    assert!(
        !catalog
            .reader
            .version(main.id, 1)
            .await
            .expect("q")
            .expect("v1")
            .expired,
        "dry run changed nothing"
    );
    catalog
        .retention
        .expire(
            RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            false,
        )
        .await
        .expect("expire");
    assert!(
        catalog
            .reader
            .version(main.id, 1)
            .await
            .expect("q")
            .expect("v1")
            .expired
    );
    let mut files = catalog.retention.referenced_files().await.expect("files");
    files.sort();
    assert_eq!(files, ["f1", "f2"]);
    // The head still reads whole.
    assert_eq!(
        catalog
            .reader
            .row_groups(main.id, 2, RowGroupRange::default())
            .await
            .expect("rgs")
            .len(),
        2
    );
}

/// Opening a catalog again (another process) applies no migration twice and keeps what
/// was written.
async fn reopening_applies_no_migration_twice(t: TestCatalog) {
    let v1 = t
        .catalog
        .writer
        .commit(request(0, &[(0, 9, 10)], vec![], "f1"))
        .await
        .expect("v1");
    let again = t.open_again().await;
    let counts = again.lake.table_counts().await.expect("counts");
    assert_eq!((counts["datasets"], counts["versions"]), (1, 1));
    assert_eq!(
        again.reader.last_commit().await.expect("last"),
        v1.commit_id
    );
    let third = t.open_again().await;
    assert_eq!(third.lake.table_counts().await.expect("counts"), counts);
}

fn schema(name: &str) -> tarn_core::KeySchema {
    tarn_core::KeySchema::parse_spec(name, "quantity:str,city:str", &["frequency:str"], None)
        .expect("schema")
}

/// Collections: create is exclusive and refuses overlapping prefixes (by segment), get and
/// list return what was stored.
async fn collections(t: TestCatalog) {
    let catalog = &t.catalog;
    let name = |s: &str| DatasetName::new(s).expect("name");
    assert!(
        catalog
            .collections
            .collections()
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        catalog
            .collections
            .collection(&name("weather"))
            .await
            .expect("get")
            .is_none()
    );
    let weather = schema("weather");
    let created = catalog
        .collections
        .create_collection(&weather)
        .await
        .expect("create");
    assert_eq!(created.schema, weather);
    assert_eq!(created.name().as_str(), "weather");
    let got = catalog
        .collections
        .collection(&name("weather"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, created);

    let err = catalog
        .collections
        .create_collection(&schema("weather"))
        .await
        .expect_err("exists");
    assert!(matches!(err, CatalogError::CollectionExists(_)), "{err}");
    assert_eq!(err.to_string(), r#"collection "weather" already exists"#);
    for (inner, existing) in [("weather/temp", "weather"), ("weather/a/b", "weather")] {
        let err = catalog
            .collections
            .create_collection(&schema(inner))
            .await
            .expect_err(inner);
        assert!(
            matches!(&err, CatalogError::CollectionOverlap { name, existing: e } if name == inner && e == existing),
            "{err}"
        );
        assert!(
            err.to_string().contains("one lies inside the other"),
            "{err}"
        );
    }
    // Prefixes are by segment: `weatherx` and `w` do not overlap `weather`.
    for other in ["weatherx", "w", "a/b/c", "a/bc"] {
        catalog
            .collections
            .create_collection(&schema(other))
            .await
            .unwrap_or_else(|e| panic!("{other}: {e}"));
    }
    // An existing collection under the new one's prefix also overlaps.
    let err = catalog
        .collections
        .create_collection(&schema("a"))
        .await
        .expect_err("contains a/b/c and a/bc");
    assert!(
        matches!(&err, CatalogError::CollectionOverlap { existing, .. } if existing == "a/b/c"),
        "{err}"
    );

    // Of two concurrent creates of one name, exactly one wins.
    let s = schema("race");
    let (a, b) = tokio::join!(
        catalog.collections.create_collection(&s),
        catalog.collections.create_collection(&s)
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );

    let names: Vec<String> = catalog
        .collections
        .collections()
        .await
        .expect("list")
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names, ["a/b/c", "a/bc", "race", "w", "weather", "weatherx"]);
}

/// Writers with their own connections (as separate processes have) commit on the same head;
/// exactly one wins each round, the others conflict naming the new head, versions have no
/// gaps, and commit ids follow the order versions became visible.
async fn concurrent_commits_on_one_base_one_wins(t: TestCatalog) {
    const WRITERS: usize = 5;
    const ROUNDS: u64 = 4;
    let mut handles = Vec::new();
    for _ in 0..WRITERS {
        handles.push(t.open_again().await);
    }
    let mut last_commit = 0;
    for round in 0..ROUNDS {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, catalog)| {
                let (catalog, barrier) = (catalog.clone(), barrier.clone());
                let lo = (round * 100 + i as u64 * 10) as i64;
                tokio::spawn(async move {
                    barrier.wait().await;
                    catalog
                        .writer
                        .commit(request(
                            round,
                            &[(lo, lo + 9, 10)],
                            vec![],
                            &format!("r{round}-w{i}"),
                        ))
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let won: Vec<&CommitOutcome> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        assert_eq!(won[0].version, round + 1);
        assert!(won[0].commit_id > last_commit);
        last_commit = won[0].commit_id;
        for r in &results {
            match r {
                Ok(_) => {}
                Err(CatalogError::Conflict {
                    expected, actual, ..
                }) if *expected == round && *actual == round + 1 => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
    }
    let ds = t
        .catalog
        .reader
        .dataset(&DatasetName::new("a/b").expect("name"))
        .await
        .expect("dataset")
        .expect("exists");
    let main = t
        .catalog
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("branch")
        .expect("main");
    let log = t.catalog.reader.versions(main.id, None).await.expect("log");
    assert_eq!(
        log.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=ROUNDS).rev().collect::<Vec<_>>()
    );
    assert!(log.windows(2).all(|w| w[0].commit_id > w[1].commit_id));
    assert_eq!(
        t.catalog.reader.last_commit().await.expect("last"),
        last_commit
    );
    let counts = t.counts().await;
    assert_eq!(
        (counts["versions"], counts["files"], counts["commits"]),
        (ROUNDS as i64, ROUNDS as i64, ROUNDS as i64)
    );
}

/// `versions(limit)` lists retained versions only, so a limit of N gives the N newest
/// retained ones even when expired versions lie between them, on a branch's own versions
/// and across its fork into the parent's.
async fn the_log_limit_counts_retained_versions(t: TestCatalog) {
    let c = &t.catalog;
    let name = DatasetName::new("a/b").expect("name");
    for base in 0..5 {
        let k = base as i64 * 10;
        c.writer
            .commit(request(
                base,
                &[(k, k + 9, 10)],
                vec![],
                &format!("m{base}"),
            ))
            .await
            .unwrap_or_else(|e| panic!("main v{}: {e}", base + 1));
    }
    let ds = c.reader.dataset(&name).await.expect("q").expect("dataset");
    let main = c
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("q")
        .expect("main");
    c.writer
        .create_tag(ds.id, "keep", main.id, 2, false)
        .await
        .expect("tag v2");
    let dev = c
        .writer
        .create_branch(ds.id, main.id, 2, &BranchName::new("dev").expect("name"))
        .await
        .expect("dev at v2");
    for base in 2..4 {
        let k = 100 + base as i64 * 10;
        let mut r = request(base, &[(k, k + 9, 10)], vec![], &format!("d{base}"));
        r.branch = dev.name.clone();
        c.writer
            .commit(r)
            .await
            .unwrap_or_else(|e| panic!("dev v{}: {e}", base + 1));
    }
    // Keep each head and the tagged v2: main's v1, v3, v4 and dev's own v3 expire.
    c.retention
        .expire(
            RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            false,
        )
        .await
        .expect("expire");
    for (branch, want) in [(main.id, vec![5, 2]), (dev.id, vec![4, 2])] {
        let all = c.reader.versions(branch, None).await.expect("log");
        assert_eq!(
            all.iter().map(|v| v.version).collect::<Vec<_>>(),
            want,
            "branch {branch}: every retained version"
        );
        assert!(all.iter().all(|v| !v.expired), "{all:?}");
        for limit in 1..=want.len() as u64 + 1 {
            let some = c.reader.versions(branch, Some(limit)).await.expect("log");
            let n = (limit as usize).min(want.len());
            assert_eq!(
                some.iter().map(|v| v.version).collect::<Vec<_>>(),
                want[..n],
                "branch {branch}, limit {limit}"
            );
        }
    }
}

crate::backend_tests!(
    the_log_limit_counts_retained_versions,
    commit_protocol,
    concurrent_commits_on_one_base_one_wins,
    reopening_applies_no_migration_twice,
    collections
);
