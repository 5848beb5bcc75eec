//! Tags, branches and fast-forward merges (docs/design/0003) on every backend: what each
//! call returns, what it refuses (with the same words), and what reads see after it.

use crate::backends::TestCatalog;
use std::collections::BTreeMap;
use tarn_catalog::*;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};

fn on(branch: &str, base: u64, rgs: &[(i64, i64)], removed: Vec<i64>, path: &str) -> CommitRequest {
    CommitRequest {
        dataset: DatasetName::new("demand/nc").expect("name"),
        branch: BranchName::new(branch).expect("branch"),
        base_version: base,
        ordered_on: "ts".into(),
        operation: "write".into(),
        message: Some(format!("{path} on {branch}")),
        schema_json: "{}".into(),
        options_json: "{}".into(),
        metadata: BTreeMap::new(),
        new_file: (!rgs.is_empty()).then(|| NewFile {
            path: path.into(),
            bytes: 100,
            row_groups: rgs
                .iter()
                .enumerate()
                .map(|(i, (min, max))| NewRowGroup {
                    rg_index: i as u32,
                    rows: 10,
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

fn name(s: &str) -> BranchName {
    BranchName::new(s).expect("branch")
}

fn refusal(e: CatalogError) -> String {
    assert!(matches!(e, CatalogError::Refused(_)), "{e:?}");
    e.to_string()
}

async fn paths(catalog: &Catalog, branch: i64, version: u64) -> Vec<String> {
    catalog
        .reader
        .row_groups(branch, version, RowGroupRange::default())
        .await
        .expect("row groups")
        .into_iter()
        .map(|r| format!("{}#{}", r.path, r.rg_index))
        .collect()
}

async fn tags_branches_and_fast_forwards(t: TestCatalog) {
    let c = &t.catalog;
    c.writer
        .commit(on("main", 0, &[(0, 9), (10, 19)], vec![], "m1"))
        .await
        .expect("v1");
    let ds = c
        .reader
        .dataset(&DatasetName::new("demand/nc").expect("name"))
        .await
        .expect("dataset")
        .expect("exists");
    let main = c
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("branch")
        .expect("main");
    assert_eq!(main.created_commit, Some(1));
    let m1 = paths(c, main.id, 1).await;
    let first = c
        .reader
        .row_groups(main.id, 1, RowGroupRange::default())
        .await
        .expect("rgs");
    c.writer
        .commit(on("main", 1, &[(10, 29)], vec![first[1].id], "m2"))
        .await
        .expect("v2");

    // Tags name a version; a taken name is refused unless forced, which moves it.
    let t1 = c
        .writer
        .create_tag(ds.id, "t1", main.id, 1, false)
        .await
        .expect("tag");
    assert_eq!(
        (
            t1.name.as_str(),
            t1.branch_id,
            t1.branch.as_str(),
            t1.version
        ),
        ("t1", main.id, "main", 1)
    );
    assert_eq!(
        refusal(
            c.writer
                .create_tag(ds.id, "t1", main.id, 2, false)
                .await
                .expect_err("taken")
        ),
        "tag \"t1\" already exists (it names main:v1); tags are immutable: delete it with \
         `tarn tag -d` or move it with `--force`"
    );
    let moved = c
        .writer
        .create_tag(ds.id, "t1", main.id, 2, true)
        .await
        .expect("force");
    assert_eq!(moved.version, 2);
    for v in [0, 3] {
        assert_eq!(
            refusal(
                c.writer
                    .create_tag(ds.id, "bad", main.id, v, false)
                    .await
                    .expect_err("no such version")
            ),
            format!("version v{v} does not exist on branch main (it has v1 to v2)")
        );
    }
    c.writer
        .create_tag(ds.id, "a0", main.id, 1, false)
        .await
        .expect("tag");
    let listed: Vec<(String, u64)> = c
        .reader
        .tags(ds.id)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| (t.name, t.version))
        .collect();
    assert_eq!(listed, [("a0".to_string(), 1), ("t1".to_string(), 2)]);
    assert!(c.writer.delete_tag(ds.id, "a0").await.expect("delete"));
    assert!(!c.writer.delete_tag(ds.id, "a0").await.expect("delete"));
    assert!(c.reader.tag(ds.id, "a0").await.expect("tag").is_none());

    // A branch shares the history up to its fork and is a lake-wide commit.
    let before = c.reader.last_commit().await.expect("last");
    let dev = c
        .writer
        .create_branch(ds.id, main.id, 1, &name("dev"))
        .await
        .expect("dev");
    assert_eq!(
        (
            dev.head,
            dev.parent_branch_id,
            dev.fork_version,
            dev.created_commit
        ),
        (1, Some(main.id), Some(1), Some(before + 1))
    );
    assert_eq!(c.reader.last_commit().await.expect("last"), before + 1);
    assert_eq!(
        refusal(
            c.writer
                .create_branch(ds.id, main.id, 2, &name("dev"))
                .await
                .expect_err("taken")
        ),
        "branch \"dev\" already exists; pick another name or delete it with `tarn branch -d`"
    );
    assert_eq!(paths(c, dev.id, 1).await, m1);
    let held = c
        .reader
        .version(dev.id, 1)
        .await
        .expect("version")
        .expect("v1");
    assert_eq!((held.branch_id, held.version), (main.id, 1));
    let d2 = c
        .writer
        .commit(on("dev", 1, &[(30, 39)], vec![], "d2"))
        .await
        .expect("dev v2");
    assert_eq!((d2.version, d2.rows), (2, 30));
    let log: Vec<(i64, u64)> = c
        .reader
        .versions(dev.id, None)
        .await
        .expect("log")
        .iter()
        .map(|v| (v.branch_id, v.version))
        .collect();
    assert_eq!(log, [(dev.id, 2), (main.id, 1)]);
    assert_eq!(
        c.reader.versions(dev.id, Some(1)).await.expect("log").len(),
        1
    );
    // Lake states: before the branch's own commit it is at v1 (its parent's).
    assert_eq!(
        c.reader
            .version_at_commit(dev.id, d2.commit_id - 1)
            .await
            .expect("at"),
        Some(1)
    );
    assert_eq!(
        c.reader
            .version_at_commit(dev.id, d2.commit_id)
            .await
            .expect("at"),
        Some(2)
    );
    assert_eq!(
        c.reader.version_at_commit(dev.id, 0).await.expect("at"),
        None
    );
    let branches: Vec<String> = c
        .reader
        .branches(ds.id)
        .await
        .expect("branches")
        .into_iter()
        .map(|b| b.name.to_string())
        .collect();
    assert_eq!(branches, ["main", "dev"]);

    // dev was forked at v1 and main moved to v2: not a fast-forward.
    assert_eq!(
        refusal(
            c.writer
                .fast_forward(ds.id, &name("dev"), &BranchName::main())
                .await
                .expect_err("moved")
        ),
        "main has moved since dev was forked from it at v1 (main is now at v2): only a \
         fast-forward merge is supported; re-create dev from main's head and apply the change \
         again"
    );
    assert_eq!(
        refusal(
            c.writer
                .fast_forward(ds.id, &BranchName::main(), &name("dev"))
                .await
                .expect_err("not forked")
        ),
        "branch \"main\" was not forked from \"dev\": only a fast-forward into the branch it \
         was forked from is supported"
    );
    assert_eq!(
        refusal(
            c.writer
                .fast_forward(ds.id, &name("dev"), &name("dev"))
                .await
                .expect_err("itself")
        ),
        "cannot merge branch \"dev\" into itself"
    );
    assert_eq!(
        refusal(
            c.writer
                .fast_forward(ds.id, &name("nope"), &name("dev"))
                .await
                .expect_err("missing")
        ),
        "branch \"nope\" does not exist"
    );

    // feat forks main's head, writes twice (replacing one of main's row groups) and is
    // fast-forwarded into main.
    let feat = c
        .writer
        .create_branch(ds.id, main.id, 2, &name("feat"))
        .await
        .expect("feat");
    match c
        .writer
        .fast_forward(ds.id, &name("feat"), &BranchName::main())
        .await
        .expect("nothing to merge")
    {
        MergeOutcome::UpToDate { version } => assert_eq!(version, 2),
        other => panic!("{other:?}"),
    }
    let at_fork = c
        .reader
        .row_groups(feat.id, 2, RowGroupRange::default())
        .await
        .expect("rgs");
    c.writer
        .commit(on("feat", 2, &[(40, 49)], vec![], "f3"))
        .await
        .expect("feat v3");
    c.writer
        .commit(on("feat", 3, &[(0, 5)], vec![at_fork[0].id], "f4"))
        .await
        .expect("feat v4");
    c.writer
        .create_tag(ds.id, "reviewed", feat.id, 3, false)
        .await
        .expect("tag");
    let main_before = paths(c, main.id, 2).await;
    let merged = c
        .writer
        .fast_forward(ds.id, &name("feat"), &BranchName::main())
        .await
        .expect("fast-forward");
    let MergeOutcome::FastForward {
        from,
        to,
        commit_id,
        ..
    } = merged
    else {
        panic!("{merged:?}");
    };
    assert_eq!((from, to), (2, 4));
    assert_eq!(c.reader.last_commit().await.expect("last"), commit_id);
    let main_now = c
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("branch")
        .expect("main");
    assert_eq!(main_now.head, 4);
    assert_eq!(paths(c, main.id, 4).await, paths(c, feat.id, 4).await);
    assert_eq!(paths(c, main.id, 3).await, paths(c, feat.id, 3).await);
    assert_eq!(paths(c, main.id, 2).await, main_before);
    let v4 = c
        .reader
        .version(main.id, 4)
        .await
        .expect("version")
        .expect("v4");
    assert_eq!(
        (v4.branch_id, v4.commit_id, v4.message.as_deref()),
        (main.id, commit_id, Some("f4 on feat"))
    );
    // Pinned to the lake before the merge, main is still at v2.
    assert_eq!(
        c.reader
            .version_at_commit(main.id, commit_id - 1)
            .await
            .expect("at"),
        Some(2)
    );
    // The tag moved to main's copy; feat forks at its head now, so it is up to date.
    let reviewed = c
        .reader
        .tag(ds.id, "reviewed")
        .await
        .expect("tag")
        .expect("kept");
    assert_eq!(
        (
            reviewed.branch_id,
            reviewed.branch.as_str(),
            reviewed.version
        ),
        (main.id, "main", 3)
    );
    let feat_now = c
        .reader
        .branch_by_id(feat.id)
        .await
        .expect("branch")
        .expect("feat");
    assert_eq!((feat_now.head, feat_now.fork_version), (4, Some(4)));
    assert!(matches!(
        c.writer
            .fast_forward(ds.id, &name("feat"), &BranchName::main())
            .await
            .expect("again"),
        MergeOutcome::UpToDate { version: 4 }
    ));
    let feat_log: Vec<(i64, u64)> = c
        .reader
        .versions(feat.id, None)
        .await
        .expect("log")
        .iter()
        .map(|v| (v.branch_id, v.version))
        .collect();
    assert_eq!(
        feat_log,
        [(main.id, 4), (main.id, 3), (main.id, 2), (main.id, 1)]
    );

    // Deleting branches.
    assert_eq!(
        refusal(
            c.writer
                .delete_branch(ds.id, &BranchName::main())
                .await
                .expect_err("main")
        ),
        "the main branch cannot be deleted"
    );
    assert_eq!(
        refusal(
            c.writer
                .delete_branch(ds.id, &name("nope"))
                .await
                .expect_err("missing")
        ),
        "branch \"nope\" does not exist"
    );
    c.writer
        .create_tag(ds.id, "dev-tag", dev.id, 2, false)
        .await
        .expect("tag dev");
    let sub = c
        .writer
        .create_branch(ds.id, dev.id, 2, &name("sub"))
        .await
        .expect("sub");
    assert_eq!(
        refusal(
            c.writer
                .delete_branch(ds.id, &name("dev"))
                .await
                .expect_err("tagged")
        ),
        "branch \"dev\" holds versions named by tags (dev-tag); delete those tags first"
    );
    c.writer.delete_tag(ds.id, "dev-tag").await.expect("untag");
    assert_eq!(
        refusal(
            c.writer
                .delete_branch(ds.id, &name("dev"))
                .await
                .expect_err("forked")
        ),
        "branch \"dev\" has branches forked from its own versions (sub); delete them first"
    );
    c.writer
        .delete_branch(ds.id, &name("sub"))
        .await
        .expect("delete sub");
    assert!(c.reader.branch_by_id(sub.id).await.expect("get").is_none());
    c.writer
        .delete_branch(ds.id, &name("dev"))
        .await
        .expect("delete dev");
    let branches: Vec<String> = c
        .reader
        .branches(ds.id)
        .await
        .expect("branches")
        .into_iter()
        .map(|b| b.name.to_string())
        .collect();
    assert_eq!(branches, ["main", "feat"]);

    // Retention keeps heads and tagged versions.
    let out = c
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
    let mut expired = out.expired_versions.clone();
    expired.sort();
    let v = |b: &str, n: u64| ("demand/nc".to_string(), b.to_string(), n);
    assert_eq!(
        expired,
        [v("feat", 3), v("main", 1)],
        "main v2 is tagged t1, main v3 reviewed, v4 is both heads"
    );
    // d2's row group lived on dev only, which was deleted.
    assert_eq!(out.unreferenced_files, ["d2"]);
    let m4 = paths(c, main.id, 4).await;
    assert!(!m4.iter().any(|p| p.starts_with("m1")), "{m4:?}");
    let mut files = c.retention.referenced_files().await.expect("files");
    files.sort();
    assert_eq!(files, ["f3", "f4", "m1", "m2"]);
}

crate::backend_tests!(tags_branches_and_fast_forwards);
