//! The lake record, listing by prefix, and ordered values of every kind: the same answers on
//! every backend.

use crate::backends::TestCatalog;
use std::collections::BTreeMap;
use tarn_catalog::*;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};

fn commit_of(dataset: &str, path: &str, row_groups: Vec<(SqlScalar, SqlScalar)>) -> CommitRequest {
    CommitRequest {
        dataset: DatasetName::new(dataset).expect("name"),
        branch: BranchName::main(),
        base_version: 0,
        ordered_on: "k".into(),
        operation: "write".into(),
        message: Some(format!("write {dataset}")),
        schema_json: "{}".into(),
        options_json: "{}".into(),
        metadata: BTreeMap::from([("source".to_string(), "test".to_string())]),
        new_file: Some(NewFile {
            path: path.into(),
            bytes: 1000,
            row_groups: row_groups
                .into_iter()
                .enumerate()
                .map(|(i, (min, max))| NewRowGroup {
                    rg_index: i as u32,
                    rows: 1 + i as u64,
                    bytes: 10,
                    min,
                    max,
                })
                .collect(),
        }),
        removed_row_groups: vec![],
        request_id: None,
    }
}

/// The first claim records the storage; the same storage joins; another is refused, naming
/// both; of concurrent first claims from separate handles, exactly one records.
async fn claim_lake(t: TestCatalog) {
    let lake = &t.catalog.lake;
    assert_eq!(lake.lake().await.expect("lake"), None);
    let first = lake.claim_lake("s3://bucket/lake").await.expect("first");
    assert_eq!(first.storage, "s3://bucket/lake");
    let again = t.open_again().await;
    let joined = again
        .lake
        .claim_lake("s3://bucket/lake")
        .await
        .expect("join");
    assert_eq!(joined, first);
    assert_eq!(again.lake.lake().await.expect("lake"), Some(first.clone()));
    let err = again
        .lake
        .claim_lake("data")
        .await
        .expect_err("other storage");
    assert!(matches!(err, CatalogError::Refused(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("\"s3://bucket/lake\"") && message.contains("\"data\""),
        "{message}"
    );
    assert_eq!(t.counts().await["lake"], 1);
}

async fn concurrent_claims_record_one_lake(t: TestCatalog) {
    const CLAIMERS: usize = 5;
    let mut handles = Vec::new();
    for _ in 0..CLAIMERS {
        handles.push(t.open_again().await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLAIMERS));
    let tasks: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(i, catalog)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                catalog.lake.claim_lake(&format!("storage-{i}")).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let won: Vec<&LakeRecord> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, CatalogError::Refused(_)), "{e:?}");
            assert!(
                e.to_string().contains(&format!("{:?}", won[0].storage)),
                "{e}"
            );
        }
    }
    assert_eq!(
        t.catalog.lake.lake().await.expect("lake").as_ref(),
        Some(won[0])
    );
    assert_eq!(t.counts().await["lake"], 1);
}

/// `datasets(prefix)`: the name itself and the names under it by segment (`a` covers `a` and
/// `a/x`, not `ab`, `a-b` or `a0`), every name for no prefix or an empty one, and a trailing
/// slash changes nothing.
async fn datasets_by_prefix(t: TestCatalog) {
    let names = [
        "a", "a-b", "a.c", "a/x", "a/x/y", "a/z", "a0", "a=1", "ab", "b", "b/a",
    ];
    for (i, name) in names.iter().enumerate() {
        let v = SqlScalar::Integer(i as i64);
        t.catalog
            .writer
            .commit(commit_of(name, &format!("f{i}"), vec![(v.clone(), v)]))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let listed = |prefix: Option<&str>| {
        let reader = t.catalog.reader.clone();
        let prefix = prefix.map(str::to_string);
        async move {
            reader
                .datasets(prefix)
                .await
                .expect("datasets")
                .into_iter()
                .map(|d| d.name.to_string())
                .collect::<Vec<_>>()
        }
    };
    let all: Vec<String> = {
        let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        all.sort();
        all
    };
    assert_eq!(listed(None).await, all);
    assert_eq!(listed(Some("")).await, all);
    assert_eq!(listed(Some("/")).await, all);
    assert_eq!(listed(Some("a")).await, ["a", "a/x", "a/x/y", "a/z"]);
    assert_eq!(listed(Some("a/")).await, ["a", "a/x", "a/x/y", "a/z"]);
    assert_eq!(listed(Some("a/x")).await, ["a/x", "a/x/y"]);
    assert_eq!(listed(Some("ab")).await, ["ab"]);
    assert_eq!(listed(Some("b")).await, ["b", "b/a"]);
    assert!(listed(Some("c")).await.is_empty());
    assert!(listed(Some("a/q")).await.is_empty());
    let summary = t
        .catalog
        .reader
        .datasets(Some("a/z".into()))
        .await
        .expect("datasets");
    assert_eq!(
        (summary[0].version, summary[0].rows, summary[0].row_groups),
        (1, 1, 1)
    );
    assert_eq!(summary[0].ordered_on, "k");
}

/// Values of one kind in order, with their ties.
fn ordered_kinds() -> Vec<(&'static str, Vec<SqlScalar>)> {
    let ints = [
        i64::MIN,
        -1_000_000_007,
        -256,
        -1,
        0,
        1,
        255,
        256,
        1 << 40,
        i64::MAX,
    ];
    let reals = [
        f64::NEG_INFINITY,
        -1e300,
        -2.5,
        -f64::MIN_POSITIVE,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        0.1,
        2.5,
        1e300,
        f64::INFINITY,
    ];
    let texts = [
        "", "A", "Z", "a", "a b", "aa", "b", "z", "~", "é", "ö", "日本", "😀",
    ];
    vec![
        (
            "ints",
            ints.iter().map(|i| SqlScalar::Integer(*i)).collect(),
        ),
        ("reals", reals.iter().map(|f| SqlScalar::Real(*f)).collect()),
        (
            "texts",
            texts
                .iter()
                .map(|s| SqlScalar::Text(s.to_string()))
                .collect(),
        ),
    ]
}

fn cmp(a: &SqlScalar, b: &SqlScalar) -> std::cmp::Ordering {
    match (a, b) {
        (SqlScalar::Integer(x), SqlScalar::Integer(y)) => x.cmp(y),
        (SqlScalar::Real(x), SqlScalar::Real(y)) => x.partial_cmp(y).expect("no NaN"),
        (SqlScalar::Text(x), SqlScalar::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => unreachable!("one kind per dataset"),
    }
}

/// Every kind of ordered value round-trips (row groups and version bounds), row groups come
/// back in value order, and range pruning keeps exactly those that may meet the range, for
/// every pair of bounds.
async fn ordered_values_round_trip_and_prune(t: TestCatalog) {
    for (kind, values) in ordered_kinds() {
        // Row groups [v_i, v_{i+1}] over the sorted values, written shuffled, plus a point
        // row group per value: overlaps and ties on both ends.
        let mut rgs: Vec<(SqlScalar, SqlScalar)> = values
            .windows(2)
            .map(|w| (w[0].clone(), w[1].clone()))
            .chain(values.iter().map(|v| (v.clone(), v.clone())))
            .collect();
        rgs.reverse();
        let name = format!("ordered/{kind}");
        let v1 = t
            .catalog
            .writer
            .commit(commit_of(&name, &format!("{kind}.parquet"), rgs.clone()))
            .await
            .expect("commit");
        let ds = t
            .catalog
            .reader
            .dataset(&DatasetName::new(&name).expect("name"))
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
        let version = t
            .catalog
            .reader
            .version(main.id, v1.version)
            .await
            .expect("version")
            .expect("v1");
        let (lo, hi) = (&values[0], &values[values.len() - 1]);
        assert_eq!(
            version.min.as_ref().map(|m| cmp(m, lo)),
            Some(std::cmp::Ordering::Equal),
            "{kind}"
        );
        assert_eq!(
            version.max.as_ref().map(|m| cmp(m, hi)),
            Some(std::cmp::Ordering::Equal),
            "{kind}"
        );

        let read = |range: RowGroupRange| {
            let reader = t.catalog.reader.clone();
            async move {
                reader
                    .row_groups(main.id, 1, range)
                    .await
                    .expect("row groups")
            }
        };
        let whole = read(RowGroupRange::default()).await;
        assert_eq!(whole.len(), rgs.len(), "{kind}");
        // In value order (min, then max, then position in the file), each bound as written.
        let mut expected: Vec<(usize, &(SqlScalar, SqlScalar))> = rgs.iter().enumerate().collect();
        expected.sort_by(|(i, a), (j, b)| cmp(&a.0, &b.0).then(cmp(&a.1, &b.1)).then(i.cmp(j)));
        for (got, (index, (min, max))) in whole.iter().zip(&expected) {
            assert_eq!(got.rg_index as usize, *index, "{kind}");
            assert_eq!(cmp(&got.min, min), std::cmp::Ordering::Equal, "{kind}");
            assert_eq!(cmp(&got.max, max), std::cmp::Ordering::Equal, "{kind}");
            if let (SqlScalar::Text(a), SqlScalar::Text(b)) = (&got.min, min) {
                assert_eq!(a, b);
            }
            if let (SqlScalar::Integer(a), SqlScalar::Integer(b)) = (&got.max, max) {
                assert_eq!(a, b);
            }
        }
        for start in values.iter().map(Some).chain([None]) {
            for end in values.iter().map(Some).chain([None]) {
                let range = RowGroupRange {
                    start: start.cloned(),
                    end_excl: end.cloned(),
                };
                let mut got: Vec<u32> = read(range).await.iter().map(|r| r.rg_index).collect();
                got.sort();
                let want: Vec<u32> = rgs
                    .iter()
                    .enumerate()
                    .filter(|(_, (min, max))| {
                        start.is_none_or(|s| cmp(max, s).is_ge())
                            && end.is_none_or(|e| cmp(min, e).is_lt())
                    })
                    .map(|(i, _)| i as u32)
                    .collect();
                assert_eq!(got, want, "{kind} [{start:?}, {end:?})");
            }
        }
    }
}

crate::backend_tests!(
    claim_lake,
    concurrent_claims_record_one_lake,
    datasets_by_prefix,
    ordered_values_round_trip_and_prune,
);
