//! Retention with branches, tags and merges (SPEC §2, docs/design/0003): `vacuum
//! --keep-last/--older-than` never expires a branch head (resolved through the chain, so a
//! branch with no version of its own keeps its fork version on the parent), nor a tagged
//! version, and never deletes a file that a retained version of any branch reads; a deleted
//! branch's own files go at the next vacuum, the ones it shared do not; fast-forward merges
//! (repeated, and after a vacuum of the source) leave the target with exactly the source's rows.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tarn::{Lake, RowGroupTarget, VacuumReport, VacuumRequest, WriteRequest};

const X: &str = "tarn://ret/x";

fn uri(branch: &str, v: u64) -> String {
    if branch == "main" {
        format!("{X}:v{v}")
    } else {
        format!("tarn://ret/x@{branch}:v{v}")
    }
}

fn head_uri(branch: &str) -> String {
    if branch == "main" {
        X.to_string()
    } else {
        format!("tarn://ret/x@{branch}")
    }
}

fn req() -> WriteRequest {
    WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(2))
}

async fn write(lake: &Lake, branch: &str, rows: &[Row]) {
    let out = lake
        .write(&head_uri(branch), kiv_batch(rows), WriteRequest::new())
        .await
        .unwrap_or_else(|e| panic!("write on {branch}: {e}"));
    assert!(out.version.is_some(), "{out:?}");
}

async fn vacuum(lake: &Lake, keep_last: Option<u64>, older_than: Option<Duration>) -> VacuumReport {
    lake.vacuum(&VacuumRequest {
        keep_last,
        older_than,
        grace: Duration::ZERO,
        dry_run: false,
    })
    .await
    .expect("vacuum")
}

/// Rows of every version of every branch: `(branch, version) -> rows`.
async fn every_version(lake: &Lake) -> BTreeMap<(String, u64), Vec<Row>> {
    let mut out = BTreeMap::new();
    for b in lake.branches(X).await.expect("branches") {
        for v in 1..=b.head {
            out.insert((b.name.clone(), v), read_kiv(lake, &uri(&b.name, v)).await);
        }
    }
    out
}

/// The tree of branches, tags and versions the retention tests vacuum:
///
/// - main: v1..v5, each rewriting or adding row groups; `gold` tags v1;
/// - idle: forked at main v2, no version of its own (its head is main's v2);
/// - exp: forked at main v3, own v4..v7; `silver` tags v4;
/// - idle2: forked at exp v5, no version of its own (its head is exp's v5).
async fn tree_of_branches(lake: &Lake) {
    lake.write(
        X,
        kiv_batch(&[(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]),
        req(),
    )
    .await
    .expect("main v1");
    write(lake, "main", &[(1, 2, 2)]).await; // rewrites [0, 1]
    write(lake, "main", &[(10, 3, 3)]).await; // appends
    write(lake, "main", &[(2, 4, 4)]).await; // rewrites [2, 3]
    write(lake, "main", &[(0, 5, 5)]).await; // rewrites the first row group again
    lake.tag(&uri("main", 1), "gold", false)
        .await
        .expect("gold");
    lake.create_branch(&uri("main", 2), "idle")
        .await
        .expect("idle");
    lake.create_branch(&uri("main", 3), "exp")
        .await
        .expect("exp");
    write(lake, "exp", &[(3, 6, 6)]).await; // v4: rewrites a row group shared with main
    write(lake, "exp", &[(20, 6, 6)]).await; // v5
    write(lake, "exp", &[(0, 7, 7)]).await; // v6: rewrites another shared row group
    write(lake, "exp", &[(21, 7, 7), (3, 8, 8)]).await; // v7
    lake.tag(&uri("exp", 4), "silver", false)
        .await
        .expect("silver");
    lake.create_branch(&uri("exp", 5), "idle2")
        .await
        .expect("idle2");
}

async fn heads_tags_and_shared_files_survive(
    place: LakePlace,
    keep_last: Option<u64>,
    older_than: Option<Duration>,
) {
    let lake = relaxed_lake(&place).await;
    tree_of_branches(&lake).await;
    let before = every_version(&lake).await;
    assert_eq!(before.len(), 5 + 2 + 7 + 5);
    let files_before = place.files().await;

    // What the policy may drop: main's v3 and v4, exp's v6. Versions 1 and 2 of main are
    // a tag and idle's head; exp's v4 is a tag, v5 idle2's head, v7 its head.
    let expired_main = [3u64, 4];
    let expired_exp = [6u64];
    let report = vacuum(&lake, keep_last, older_than).await;
    let mut expired = report.expired_versions.clone();
    expired.sort();
    assert_eq!(
        expired,
        vec!["ret/x@exp:v6", "ret/x@main:v3", "ret/x@main:v4"],
        "{report:?}"
    );
    assert!(report.orphan_files.is_empty(), "{report:?}");

    // Which versions each branch can still read: its own retained ones, and the retained
    // ones of the branch that holds each inherited version.
    let holder = |b: &str, v: u64| -> &'static str {
        match (b, v) {
            ("main", _) | (_, 1..=2) => "main",
            ("idle", _) => unreachable!(),
            (_, 3) => "main",
            _ => "exp",
        }
    };
    let mut retained = BTreeSet::new();
    for ((b, v), rows) in &before {
        let h = holder(b, *v);
        let gone =
            (h == "main" && expired_main.contains(v)) || (h == "exp" && expired_exp.contains(v));
        let u = uri(b, *v);
        if gone {
            let err = lake.snapshot(&u).await.expect_err(&u).to_string();
            assert!(err.contains("removed by `tarn vacuum`"), "{u}: {err}");
        } else {
            assert_eq!(&read_kiv(&lake, &u).await, rows, "{u} after vacuum");
            retained.insert(u);
        }
    }
    for u in [
        "main:v1", "main:v2", "main:v5", "idle:v2", "exp:v4", "exp:v5", "exp:v7", "idle2:v5",
    ] {
        let (b, v) = u.split_once(":v").expect("u");
        assert!(
            retained.contains(&uri(b, v.parse().expect("v"))),
            "{u} must be retained"
        );
    }
    // The log lists the retained versions, and a limit counts those: expired versions lie
    // between main's head and v2, and between exp's head and v5.
    for (b, want) in [("main", vec![5u64, 2, 1]), ("exp", vec![7, 5, 4, 2, 1])] {
        for limit in (1..=want.len() as u64 + 1).map(Some).chain([None]) {
            let got: Vec<u64> = lake
                .log(&head_uri(b), limit)
                .await
                .expect("log")
                .iter()
                .map(|v| v.version)
                .collect();
            let n = limit.map_or(want.len(), |l| (l as usize).min(want.len()));
            assert_eq!(got, want[..n], "log of {b}, limit {limit:?}");
        }
    }
    // Tags and heads still resolve.
    assert_eq!(
        read_kiv(&lake, &format!("{X}:gold")).await,
        before[&("main".to_string(), 1)]
    );
    assert_eq!(
        read_kiv(&lake, &format!("{X}:silver")).await,
        before[&("exp".to_string(), 4)]
    );
    for b in ["main", "idle", "exp", "idle2"] {
        let head = lake.snapshot(&head_uri(b)).await.expect("head").version();
        assert_eq!(
            read_kiv(&lake, &head_uri(b)).await,
            before[&(b.to_string(), head)],
            "{b}"
        );
    }
    // Exactly the files the retained versions read are left, and some went.
    let mut needed = BTreeSet::new();
    for u in &retained {
        needed.extend(files_of(&lake, u).await);
    }
    let files_after = place.files().await;
    assert_eq!(files_after, needed, "files left after vacuum");
    assert!(
        files_after.len() < files_before.len(),
        "vacuum deleted nothing"
    );
    let deleted: BTreeSet<String> = files_before.difference(&files_after).cloned().collect();
    assert_eq!(
        report
            .unreferenced_files
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        deleted
    );

    // The same policy again finds nothing more.
    let again = vacuum(&lake, keep_last, older_than).await;
    assert!(
        again.expired_versions.is_empty() && again.unreferenced_files.is_empty(),
        "{again:?}"
    );
    // A branch with no version of its own still takes its first write on the fork point.
    for (b, base) in [("idle", 2u64), ("idle2", 5)] {
        write(&lake, b, &[(1, 9, 9)]).await;
        let want = model_write(&before[&(b.to_string(), base)], &[(1, 9, 9)], Dup::None);
        assert_eq!(read_kiv(&lake, &head_uri(b)).await, want, "{b}");
        assert_eq!(
            lake.snapshot(&head_uri(b)).await.expect("head").version(),
            base + 1
        );
    }
}

async fn keep_last_never_expires_heads_tags_or_files_a_branch_reads(place: LakePlace) {
    heads_tags_and_shared_files_survive(place, Some(1), None).await;
}

async fn older_than_never_expires_heads_tags_or_files_a_branch_reads(place: LakePlace) {
    heads_tags_and_shared_files_survive(place, None, Some(Duration::ZERO)).await;
}

async fn a_deleted_branch_leaves_its_own_files_to_vacuum_and_keeps_shared_ones(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    lake.write(
        X,
        kiv_batch(&[(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0)]),
        req(),
    )
    .await
    .expect("main v1");
    lake.create_branch(X, "dev").await.expect("dev");
    write(&lake, "dev", &[(1, 1, 1)]).await; // rewrites a row group main shares
    write(&lake, "dev", &[(30, 1, 1)]).await; // appends
    write(&lake, "main", &[(40, 2, 2)]).await;
    let main_before = every_version(&lake).await;
    let mut main_files = BTreeSet::new();
    let mut dev_files = BTreeSet::new();
    for v in 1..=2 {
        main_files.extend(files_of(&lake, &uri("main", v)).await);
    }
    for v in 1..=3 {
        dev_files.extend(files_of(&lake, &uri("dev", v)).await);
    }
    let dev_only: BTreeSet<String> = dev_files.difference(&main_files).cloned().collect();
    assert_eq!(dev_only.len(), 2, "dev wrote two files of its own");
    assert!(
        dev_files.intersection(&main_files).count() > 0,
        "dev shares main's v1 file"
    );

    // While dev exists, nothing is unreferenced.
    let report = vacuum(&lake, None, None).await;
    assert!(report.unreferenced_files.is_empty(), "{report:?}");

    lake.delete_branch("tarn://ret/x@dev")
        .await
        .expect("delete dev");
    let dry = lake
        .vacuum(&VacuumRequest {
            grace: Duration::ZERO,
            dry_run: true,
            ..VacuumRequest::default()
        })
        .await
        .expect("dry run");
    assert_eq!(
        dry.unreferenced_files
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        dev_only
    );
    assert!(
        dry.orphan_files.is_empty() && dry.expired_versions.is_empty(),
        "{dry:?}"
    );
    assert_eq!(
        place.files().await,
        &main_files | &dev_only,
        "a dry run deletes nothing"
    );
    let report = vacuum(&lake, None, None).await;
    assert_eq!(report.unreferenced_files, dry.unreferenced_files);
    assert!(report.bytes_freed > 0);
    assert_eq!(place.files().await, main_files);
    let main_after = every_version(&lake).await;
    let main_only: BTreeMap<_, _> = main_before
        .into_iter()
        .filter(|((b, _), _)| b == "main")
        .collect();
    assert_eq!(main_after, main_only);
    // The name can be used again, for a new branch.
    let again = lake
        .create_branch(&uri("main", 1), "dev")
        .await
        .expect("dev again");
    assert_eq!(again.head, 1);
    assert_eq!(
        read_kiv(&lake, "tarn://ret/x@dev").await,
        main_after[&("main".to_string(), 1)]
    );
}

async fn a_fast_forwarded_main_keeps_its_merged_versions_when_the_source_goes(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    lake.write(X, kiv_batch(&[(0, 0, 0), (1, 0, 0), (2, 0, 0)]), req())
        .await
        .expect("main v1");
    lake.create_branch(X, "dev").await.expect("dev");
    write(&lake, "dev", &[(1, 1, 1)]).await;
    write(&lake, "dev", &[(10, 2, 2)]).await;
    write(&lake, "dev", &[(0, 3, 3)]).await;
    lake.tag(&uri("dev", 3), "rc", false).await.expect("rc");
    let dev = every_version(&lake).await;
    let merged = lake.merge("tarn://ret/x@dev", "main").await.expect("merge");
    assert_eq!(
        (merged.outcome, merged.from_version, merged.to_version),
        ("fast-forward", 1, 4)
    );
    // The tag moved to main's copy, so dev can be deleted.
    let rc = lake.tags(X).await.expect("tags");
    assert_eq!((rc[0].branch.as_str(), rc[0].version), ("main", 3));
    lake.delete_branch("tarn://ret/x@dev")
        .await
        .expect("delete dev");
    for v in 1..=4 {
        assert_eq!(
            read_kiv(&lake, &uri("main", v)).await,
            dev[&("dev".to_string(), v)],
            "main:v{v}"
        );
    }
    let report = vacuum(&lake, None, None).await;
    assert!(report.unreferenced_files.is_empty(), "{report:?}");
    for v in 1..=4 {
        assert_eq!(
            read_kiv(&lake, &uri("main", v)).await,
            dev[&("dev".to_string(), v)],
            "main:v{v} after vacuum"
        );
    }
    // keep_last 1: the tagged v3 and the head stay, with exactly their files.
    let report = vacuum(&lake, Some(1), None).await;
    assert_eq!(
        report.expired_versions,
        vec!["ret/x@main:v1", "ret/x@main:v2"]
    );
    assert_eq!(
        read_kiv(&lake, &format!("{X}:rc")).await,
        dev[&("dev".to_string(), 3)]
    );
    assert_eq!(read_kiv(&lake, X).await, dev[&("dev".to_string(), 4)]);
    let mut needed = files_of(&lake, &uri("main", 3)).await;
    needed.extend(files_of(&lake, X).await);
    assert_eq!(place.files().await, needed);
}

/// The usual "work on dev, publish to main" loop: each fast-forward makes main's versions
/// exactly dev's, also when dev rewrites a row group from before an earlier fast-forward.
async fn repeated_fast_forwards_give_main_exactly_the_sources_rows(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    lake.write(
        X,
        kiv_batch(&[(1, 0, 0), (2, 0, 0), (10, 0, 0), (11, 0, 0)]),
        req(),
    )
    .await
    .expect("main v1");
    lake.create_branch(X, "dev").await.expect("dev");
    let rounds: [&[Row]; 4] = [
        &[(20, 1, 1)],             // append
        &[(1, 2, 2)],              // rewrites a row group main had before the first fork
        &[(11, 3, 3), (21, 3, 3)], // rewrites two
        &[(2, 4, 4)],
    ];
    for (i, rows) in rounds.iter().enumerate() {
        write(&lake, "dev", rows).await;
        if i == 3 {
            // A delete-range in the same round.
            lake.delete_range("tarn://ret/x@dev", "10", "12", None)
                .await
                .expect("delete");
        }
        // dev's versions as dev holds them (after the merge, main holds them all).
        let dev_head = lake
            .snapshot(&head_uri("dev"))
            .await
            .expect("dev")
            .version();
        let mut dev = Vec::new();
        for v in 1..=dev_head {
            dev.push((
                read_kiv(&lake, &uri("dev", v)).await,
                row_group_ids(&lake, &uri("dev", v)).await,
            ));
        }
        let info = lake.merge("tarn://ret/x@dev", "main").await.expect("merge");
        assert_eq!(info.outcome, "fast-forward", "round {i}");
        let head = lake.snapshot(X).await.expect("main").version();
        assert_eq!((info.to_version, head), (dev_head, dev_head));
        for v in 1..=head {
            let (rows, groups) = &dev[v as usize - 1];
            assert_eq!(
                &read_kiv(&lake, &uri("main", v)).await,
                rows,
                "round {i}: main:v{v}"
            );
            assert_eq!(
                &row_group_ids(&lake, &uri("main", v)).await,
                groups,
                "round {i}: main:v{v} row groups"
            );
        }
        // Nothing left to merge.
        let again = lake.merge("tarn://ret/x@dev", "main").await.expect("again");
        assert_eq!(again.outcome, "up-to-date");
    }
    // After the loop, main is still writable on its own and dev can go.
    write(&lake, "main", &[(2, 5, 5)]).await;
    lake.delete_branch("tarn://ret/x@dev")
        .await
        .expect("delete dev");
    vacuum(&lake, None, None).await;
    let rows = read_kiv(&lake, X).await;
    let mut keys: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "no row twice: {rows:?}");
}

/// A vacuum of the source between its writes and the merge drops the source's lifetimes of
/// row groups it rewrote; the merge must still close them on the target.
async fn a_fast_forward_after_vacuuming_the_source_closes_what_it_rewrote(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    lake.write(
        X,
        kiv_batch(&[(1, 0, 0), (2, 0, 0), (10, 0, 0), (11, 0, 0)]),
        req(),
    )
    .await
    .expect("main v1");
    lake.create_branch(X, "dev").await.expect("dev");
    write(&lake, "dev", &[(1, 5, 5)]).await; // v2: rewrites [1, 2]
    write(&lake, "dev", &[(20, 1, 1)]).await; // v3
    write(&lake, "dev", &[(10, 6, 6)]).await; // v4: rewrites [10, 11]
    let dev_head = read_kiv(&lake, "tarn://ret/x@dev").await;
    let dev_groups = row_group_ids(&lake, "tarn://ret/x@dev").await;
    let report = vacuum(&lake, Some(1), None).await;
    assert_eq!(
        report.expired_versions,
        vec!["ret/x@dev:v2", "ret/x@dev:v3"],
        "{report:?}"
    );
    let merged = lake.merge("tarn://ret/x@dev", "main").await.expect("merge");
    assert_eq!(merged.to_version, 4);
    assert_eq!(read_kiv(&lake, X).await, dev_head);
    assert_eq!(row_group_ids(&lake, X).await, dev_groups);
    assert_eq!(read_kiv(&lake, &uri("main", 1)).await.len(), 4);
    for v in 2..=3 {
        let err = lake
            .snapshot(&uri("main", v))
            .await
            .expect_err("expired")
            .to_string();
        assert!(err.contains("removed by `tarn vacuum`"), "{err}");
    }
    // Then main keeps only what it reads.
    lake.delete_branch("tarn://ret/x@dev")
        .await
        .expect("delete dev");
    vacuum(&lake, Some(1), None).await;
    assert_eq!(read_kiv(&lake, X).await, dev_head);
    assert_eq!(place.files().await, files_of(&lake, X).await);
}

tarn_testkit::backend_tests!(
    keep_last_never_expires_heads_tags_or_files_a_branch_reads,
    older_than_never_expires_heads_tags_or_files_a_branch_reads,
    a_deleted_branch_leaves_its_own_files_to_vacuum_and_keeps_shared_ones,
    a_fast_forwarded_main_keeps_its_merged_versions_when_the_source_goes,
    repeated_fast_forwards_give_main_exactly_the_sources_rows,
    a_fast_forward_after_vacuuming_the_source_closes_what_it_rewrote,
);
