//! Every `tarn://` ref form with its edges (SPEC §5, docs/design/0003): the first and last
//! version by `vN` and by index, out-of-range refs (the message quotes the URI and says the
//! range), `latest` against live, dates and RFC 3339 times before, between and exactly at
//! commits, tags (validation, immutability, `--force`, deletion, through a branch), refs on a
//! branch, `Lake::state_at`, `snapshot_at` before a branch or a dataset existed, and
//! `Lake::snapshots` pinned to one lake state while a writer commits.

use crate::common::*;
use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tarn::{ErrorKind, Lake, LakeState, RowGroupTarget, WriteRequest};

const X: &str = "tarn://r/x";

/// The rows of version `v` of a history made by [`history`]: `v` rows, all tagged with `v`.
fn rows_v(v: u64) -> Vec<Row> {
    (0..v as i64).map(|k| (k, v as i64, 0)).collect()
}

/// Versions 1..=n of `uri` (each an overwrite with [`rows_v`]), a few ms apart so that
/// times between two commits exist.
async fn history(lake: &Lake, uri: &str, n: u64) {
    for v in 1..=n {
        lake.overwrite(
            uri,
            kiv_batch(&rows_v(v)),
            WriteRequest::new().ordered_on("k"),
        )
        .await
        .unwrap_or_else(|e| panic!("{uri} v{v}: {e}"));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
}

/// The version a URI resolves to and its rows.
async fn resolve(lake: &Lake, uri: &str) -> (u64, Vec<Row>) {
    let snap = lake
        .snapshot(uri)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    (snap.version(), read_kiv(lake, uri).await)
}

/// The error resolving `uri` gives; panics if it resolves.
async fn fails(lake: &Lake, uri: &str, kind: ErrorKind, needles: &[&str]) -> String {
    let err = match lake.snapshot(uri).await {
        Ok(s) => panic!("{uri} resolved to {}", s.uri()),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(err.kind(), kind, "{uri}: {msg}");
    for n in needles {
        assert!(
            msg.contains(n),
            "{uri}: the error does not say {n:?}: {msg}"
        );
    }
    msg
}

fn check_err<T: std::fmt::Debug>(
    what: &str,
    r: tarn::Result<T>,
    kind: ErrorKind,
    needles: &[&str],
) -> String {
    let err = match r {
        Ok(v) => panic!("{what}: accepted: {v:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(err.kind(), kind, "{what}: {msg}");
    for n in needles {
        assert!(
            msg.contains(n),
            "{what}: the error does not say {n:?}: {msg}"
        );
    }
    msg
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn midpoint(a: DateTime<Utc>, b: DateTime<Utc>) -> DateTime<Utc> {
    assert!(b - a >= chrono::Duration::milliseconds(2), "{a} {b}");
    a + (b - a) / 2
}

/// Commit times of `uri`'s versions, by version.
async fn times(lake: &Lake, uri: &str) -> Vec<(u64, i64, DateTime<Utc>)> {
    let mut out: Vec<(u64, i64, DateTime<Utc>)> = lake
        .log(uri, None)
        .await
        .unwrap_or_else(|e| panic!("log {uri}: {e}"))
        .iter()
        .map(|l| (l.version, l.commit_id, time(&l.timestamp)))
        .collect();
    out.reverse();
    out
}

async fn versions_and_indexes_reach_both_ends_and_say_the_range_past_them(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    history(&lake, X, 4).await;
    for (r, want) in [
        ("", 4),
        (":latest", 4),
        (":v1", 1),
        (":v4", 4),
        (":0", 1),
        (":3", 4),
        (":-1", 4),
        (":-4", 1),
        (":-2", 3),
        (":+1", 2),
    ] {
        let (v, rows) = resolve(&lake, &format!("{X}{r}")).await;
        assert_eq!(v, want, "{X}{r}");
        assert_eq!(rows, rows_v(want), "{X}{r}");
    }
    let range = "r/x@main has versions v1 to v4";
    fails(
        &lake,
        "tarn://r/x:v5",
        ErrorKind::NotFound,
        &["tarn://r/x:v5", "version v5 does not exist", range],
    )
    .await;
    fails(
        &lake,
        "tarn://r/x:v18446744073709551615",
        ErrorKind::NotFound,
        &["v18446744073709551615", range],
    )
    .await;
    for i in ["4", "-5", "9223372036854775807", "-9223372036854775808"] {
        fails(
            &lake,
            &format!("{X}:{i}"),
            ErrorKind::NotFound,
            &[
                &format!("tarn://r/x:{i}"),
                &format!("index {i} is out of range"),
                range,
                "indexes 0 to 3 or -1 to -4",
            ],
        )
        .await;
    }
    fails(
        &lake,
        "tarn://r/x:v0",
        ErrorKind::InvalidInput,
        &["tarn://r/x:v0", "versions start at v1"],
    )
    .await;
    fails(
        &lake,
        "tarn://r/x:99999999999999999999",
        ErrorKind::InvalidInput,
        &["index 99999999999999999999 is out of range"],
    )
    .await;

    // `latest` and live both name the head when resolved; a resolved snapshot never
    // moves, and against a lake state both name the version at that state.
    let state = lake.state().await.expect("state");
    let pinned = lake.snapshot(&format!("{X}:latest")).await.expect("latest");
    let live = lake.snapshot(X).await.expect("live");
    assert_eq!((pinned.version(), live.version()), (4, 4));
    assert_eq!(pinned.uri().to_string(), "tarn://r/x:v4");
    lake.write(X, kiv_batch(&[(100, 5, 5)]), WriteRequest::new())
        .await
        .expect("v5");
    for r in ["", ":latest"] {
        assert_eq!(resolve(&lake, &format!("{X}{r}")).await.0, 5, "{X}{r}");
        let at = lake
            .snapshot_at(&format!("{X}{r}"), Some(state))
            .await
            .expect("at state");
        assert_eq!(at.version(), 4, "{X}{r} at {state:?}");
    }
    for snap in [&pinned, &live] {
        let rows = kiv_rows(
            &lake
                .read(snap, &tarn::ReadRequest::default())
                .await
                .expect("read"),
        );
        assert_eq!(rows, rows_v(4));
    }
    // An explicit ref names one version and is used as is, whatever the state.
    for (r, want) in [(":v5", 5), (":v2", 2), (":-1", 5), (":0", 1)] {
        let at = lake
            .snapshot_at(&format!("{X}{r}"), Some(state))
            .await
            .expect("explicit ref at a state");
        assert_eq!(at.version(), want, "{X}{r} at {state:?}");
    }
}

async fn times_and_dates_name_the_last_version_at_or_before_them(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    history(&lake, X, 3).await;
    let t = times(&lake, X).await;
    assert_eq!(t.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    let (t1, t2, t3) = (t[0].2, t[1].2, t[2].2);
    let first = t1.to_rfc3339_opts(SecondsFormat::Secs, true);
    let us = chrono::Duration::microseconds(1);

    let mut cases: Vec<(String, u64)> = vec![
        (micros(t1), 1),
        (micros(t2), 2),
        (micros(t3), 3),
        (micros(t2 - us), 1),
        (micros(t3 - us), 2),
        (micros(midpoint(t1, t2)), 1),
        (micros(midpoint(t2, t3)), 2),
        (micros(t3 + chrono::Duration::days(365)), 3),
        // The end of the day of the commits is after all of them.
        (t3.date_naive().format("%Y-%m-%d").to_string(), 3),
    ];
    // The midpoint of v1 and v2 written with a +02:00 offset is the same instant.
    let east = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
    cases.push((
        midpoint(t1, t2)
            .with_timezone(&east)
            .to_rfc3339_opts(SecondsFormat::Micros, false),
        1,
    ));
    for (r, want) in cases {
        let uri = format!("{X}:{r}");
        let (v, rows) = resolve(&lake, &uri).await;
        assert_eq!(v, want, "{uri}");
        assert_eq!(rows, rows_v(want), "{uri}");
    }
    // Before the first commit: the error names the first commit's time.
    let before = micros(t1 - us);
    fails(
        &lake,
        &format!("{X}:{before}"),
        ErrorKind::NotFound,
        &[
            &format!("tarn://r/x:{before}"),
            "no version was committed at or before",
            &format!("the first version was committed at {first}"),
        ],
    )
    .await;
    let day_before = (t1.date_naive() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    fails(
        &lake,
        &format!("{X}:{day_before}"),
        ErrorKind::NotFound,
        &[
            &format!("no version was committed at or before {day_before}"),
            &format!("the first version was committed at {first}"),
        ],
    )
    .await;

    // On a branch forked at v2: times before the fork reach the inherited versions; a
    // time after the fork but before the branch's own first version is the fork point.
    lake.create_branch(&format!("{X}:v2"), "dev")
        .await
        .expect("dev");
    tokio::time::sleep(Duration::from_millis(4)).await;
    lake.write(
        "tarn://r/x@dev",
        kiv_batch(&[(50, 9, 9)]),
        WriteRequest::new(),
    )
    .await
    .expect("dev v3");
    let dev = times(&lake, "tarn://r/x@dev").await;
    assert_eq!(dev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!((dev[0].1, dev[1].1), (t[0].1, t[1].1), "inherited commits");
    let t_dev3 = dev[2].2;
    let mut dev_v3 = rows_v(2);
    dev_v3.push((50, 9, 9));
    for (r, want, rows) in [
        (micros(midpoint(t1, t2)), 1, rows_v(1)),
        (micros(t3), 2, rows_v(2)),
        (micros(t_dev3 - us), 2, rows_v(2)),
        (micros(t_dev3), 3, dev_v3.clone()),
        (
            t_dev3.date_naive().format("%Y-%m-%d").to_string(),
            3,
            dev_v3,
        ),
    ] {
        let uri = format!("tarn://r/x@dev:{r}");
        let got = resolve(&lake, &uri).await;
        assert_eq!(got, (want, rows), "{uri}");
    }
    fails(
        &lake,
        &format!("tarn://r/x@dev:{before}"),
        ErrorKind::NotFound,
        &[
            "tarn://r/x@dev:",
            &format!("the first version was committed at {first}"),
        ],
    )
    .await;
}

async fn tags_are_checked_at_creation_immutable_and_deletable(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    history(&lake, X, 3).await;
    // Names that read as another ref form would be shadowed by it: refused.
    for name in [
        "v3",
        "v0",
        "v99",
        "latest",
        "-1",
        "0",
        "42",
        "2024-01-01",
        "2024-02-30",
    ] {
        check_err(
            &format!("tag {name}"),
            lake.tag(X, name, false).await,
            ErrorKind::InvalidInput,
            &["bad tag name", &format!("{name:?}"), "reads as a version"],
        );
        check_err(
            &format!("tag {name} --force"),
            lake.tag(X, name, true).await,
            ErrorKind::InvalidInput,
            &["bad tag name"],
        );
    }
    for (name, needle) in [
        ("a b", "' '"),
        (".x", "may not start with '.'"),
        ("", "may not be empty"),
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("2024-01-01T00:00:00Z", "':'"),
        ("gold@dev", "'@'"),
        ("+1", "'+'"),
        ("caf\u{e9}", "'\u{e9}'"),
    ] {
        check_err(
            &format!("tag {name:?}"),
            lake.tag(X, name, false).await,
            ErrorKind::InvalidInput,
            &["bad tag name", needle],
        );
    }
    assert!(lake.tags(X).await.expect("tags").is_empty());

    // A tag names one version; without a ref, the head.
    let gold = lake
        .tag(&format!("{X}:v1"), "gold", false)
        .await
        .expect("gold");
    assert_eq!(
        (
            gold.name.as_str(),
            gold.branch.as_str(),
            gold.version,
            gold.uri.as_str()
        ),
        ("gold", "main", 1, "tarn://r/x:v1")
    );
    let head = lake.tag(X, "release-1.0", false).await.expect("head tag");
    assert_eq!(head.version, 3);
    assert_eq!(resolve(&lake, &format!("{X}:gold")).await, (1, rows_v(1)));
    assert_eq!(
        lake.snapshot(&format!("{X}:gold"))
            .await
            .expect("gold")
            .uri()
            .to_string(),
        "tarn://r/x:v1"
    );
    // A tag stays on its version when the branch moves on.
    lake.write(X, kiv_batch(&[(100, 4, 4)]), WriteRequest::new())
        .await
        .expect("v4");
    assert_eq!(resolve(&lake, &format!("{X}:release-1.0")).await.0, 3);

    // Immutable unless --force.
    check_err(
        "re-tag",
        lake.tag(&format!("{X}:v2"), "gold", false).await,
        ErrorKind::InvalidInput,
        &[
            "tag \"gold\" already exists",
            "main:v1",
            "--force",
            "tarn tag -d",
        ],
    );
    assert_eq!(resolve(&lake, &format!("{X}:gold")).await.0, 1);
    let moved = lake
        .tag(&format!("{X}:v2"), "gold", true)
        .await
        .expect("--force");
    assert_eq!(moved.version, 2);
    assert_eq!(resolve(&lake, &format!("{X}:gold")).await, (2, rows_v(2)));
    // --force on a new name simply creates it; a missing version creates nothing.
    lake.tag(&format!("{X}:v1"), "t.1", true)
        .await
        .expect("new tag with --force");
    check_err(
        "tag a missing version",
        lake.tag(&format!("{X}:v9"), "nine", false).await,
        ErrorKind::NotFound,
        &["tarn://r/x:v9", "v1 to v4"],
    );
    check_err(
        "tag a missing dataset",
        lake.tag("tarn://r/nope", "nine", false).await,
        ErrorKind::NotFound,
        &["\"r/nope\" does not exist"],
    );
    let listed: Vec<(String, String, u64, String)> = lake
        .tags(X)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| (t.name, t.branch, t.version, t.uri))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("gold".into(), "main".into(), 2, "tarn://r/x:v2".into()),
            (
                "release-1.0".into(),
                "main".into(),
                3,
                "tarn://r/x:v3".into()
            ),
            ("t.1".into(), "main".into(), 1, "tarn://r/x:v1".into()),
        ]
    );

    // Deleting a tag: the ref stops resolving, and a second delete says it is gone.
    lake.delete_tag(X, "gold").await.expect("delete gold");
    fails(
        &lake,
        &format!("{X}:gold"),
        ErrorKind::NotFound,
        &["tarn://r/x:gold", "tag \"gold\" does not exist"],
    )
    .await;
    check_err(
        "delete a deleted tag",
        lake.delete_tag(X, "gold").await,
        ErrorKind::NotFound,
        &["tarn://r/x", "tag \"gold\" does not exist"],
    );
    check_err(
        "delete a tag of a missing dataset",
        lake.delete_tag("tarn://r/nope", "gold").await,
        ErrorKind::NotFound,
        &["\"r/nope\" does not exist"],
    );
    assert_eq!(lake.tags(X).await.expect("tags").len(), 2);
    // The name is free again.
    lake.tag(&format!("{X}:v4"), "gold", false)
        .await
        .expect("re-create gold");
    assert_eq!(resolve(&lake, &format!("{X}:gold")).await.0, 4);
}

async fn tags_through_a_branch_name_the_branch_that_holds_the_version(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let dev = "tarn://r/x@dev";
    history(&lake, X, 3).await;
    lake.create_branch(&format!("{X}:v2"), "dev")
        .await
        .expect("dev");
    for k in [60, 61] {
        lake.write(dev, kiv_batch(&[(k, 7, 7)]), WriteRequest::new())
            .await
            .expect("dev write");
    }
    let dev3 = model_write(&rows_v(2), &[(60, 7, 7)], Dup::None);
    let dev4 = model_write(&dev3, &[(61, 7, 7)], Dup::None);

    // Inherited versions (the fork point included) are stored against main.
    for (r, name, v) in [(":v1", "inherited", 1), (":v2", "fork-point", 2)] {
        let info = lake
            .tag(&format!("{dev}{r}"), name, false)
            .await
            .expect("tag through dev");
        assert_eq!(
            (info.branch.as_str(), info.version, info.uri.as_str()),
            ("main", v, format!("tarn://r/x:v{v}").as_str()),
            "{name}"
        );
    }
    let own = lake
        .tag(&format!("{dev}:v3"), "dev-own", false)
        .await
        .expect("tag dev v3");
    assert_eq!(
        (own.branch.as_str(), own.version, own.uri.as_str()),
        ("dev", 3, "tarn://r/x@dev:v3")
    );
    lake.tag(&format!("{X}:v3"), "main-three", false)
        .await
        .expect("tag main v3");

    // Without a branch, a tag reads its own branch's version.
    let snap = lake
        .snapshot(&format!("{X}:dev-own"))
        .await
        .expect("dev-own");
    assert_eq!(snap.branch_name().as_str(), "dev");
    assert_eq!(read_kiv(&lake, &format!("{X}:dev-own")).await, dev3);
    assert_eq!(read_kiv(&lake, &format!("{X}:main-three")).await, rows_v(3));
    // Through a branch, a tag on that branch's history reads as usual...
    assert_eq!(
        resolve(&lake, &format!("{dev}:inherited")).await,
        (1, rows_v(1))
    );
    assert_eq!(
        resolve(&lake, &format!("{dev}:fork-point")).await,
        (2, rows_v(2))
    );
    assert_eq!(
        resolve(&lake, &format!("{dev}:dev-own")).await,
        (3, dev3.clone())
    );
    assert_eq!(resolve(&lake, &format!("{X}@main:inherited")).await.0, 1);
    // ...and a tag on another line of versions is refused: dev's v3 is not main's v3.
    fails(
        &lake,
        &format!("{dev}:main-three"),
        ErrorKind::NotFound,
        &[
            "tarn://r/x@dev:main-three",
            "tag \"main-three\" names r/x@main:v3",
            "not in the history of branch \"dev\"",
            "tarn://r/x:main-three",
        ],
    )
    .await;
    fails(
        &lake,
        "tarn://r/x@main:dev-own",
        ErrorKind::NotFound,
        &["names r/x@dev:v3", "branch \"main\""],
    )
    .await;

    // A branch forked from dev's own v4.
    lake.create_branch(dev, "exp").await.expect("exp");
    assert_eq!(resolve(&lake, "tarn://r/x@exp:dev-own").await, (3, dev3));
    assert_eq!(read_kiv(&lake, "tarn://r/x@exp").await, dev4);

    // dev can go only once no tag names its own versions and no branch forks from them.
    check_err(
        "delete dev with a tag",
        lake.delete_branch(dev).await,
        ErrorKind::InvalidInput,
        &["\"dev\"", "dev-own", "delete those tags first"],
    );
    lake.delete_tag(X, "dev-own").await.expect("untag");
    check_err(
        "delete dev with a child",
        lake.delete_branch(dev).await,
        ErrorKind::InvalidInput,
        &["\"dev\"", "exp", "delete them first"],
    );
    lake.delete_branch("tarn://r/x@exp")
        .await
        .expect("delete exp");
    lake.delete_branch(dev).await.expect("delete dev");
    // The tags created through dev on main's versions survive it.
    assert_eq!(
        resolve(&lake, &format!("{X}:inherited")).await,
        (1, rows_v(1))
    );
    assert_eq!(
        resolve(&lake, &format!("{X}:fork-point")).await,
        (2, rows_v(2))
    );
    fails(
        &lake,
        &format!("{dev}:inherited"),
        ErrorKind::NotFound,
        &["branch \"dev\" does not exist"],
    )
    .await;
    let names: Vec<String> = lake
        .tags(X)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| format!("{}={}:v{}", t.name, t.branch, t.version))
        .collect();
    assert_eq!(
        names,
        vec![
            "fork-point=main:v2",
            "inherited=main:v1",
            "main-three=main:v3"
        ]
    );
}

async fn refs_on_a_branch_count_its_inherited_and_own_versions(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let dev = "tarn://r/x@dev";
    history(&lake, X, 3).await;
    let idle = lake
        .create_branch(&format!("{X}:v2"), "idle")
        .await
        .expect("idle");
    assert_eq!(
        (idle.head, idle.parent.as_deref(), idle.fork_version),
        (2, Some("main"), Some(2))
    );
    lake.create_branch(&format!("{X}:-2"), "dev")
        .await
        .expect("dev at v2");
    lake.write(dev, kiv_batch(&[(70, 8, 8)]), WriteRequest::new())
        .await
        .expect("dev v3");
    lake.write(dev, kiv_batch(&[(71, 8, 8)]), WriteRequest::new())
        .await
        .expect("dev v4");
    let dev3 = model_write(&rows_v(2), &[(70, 8, 8)], Dup::None);
    let dev4 = model_write(&dev3, &[(71, 8, 8)], Dup::None);
    for (r, want, rows) in [
        (":v1", 1, rows_v(1)),
        (":v2", 2, rows_v(2)),
        (":0", 1, rows_v(1)),
        (":1", 2, rows_v(2)),
        (":v3", 3, dev3.clone()),
        (":-1", 4, dev4.clone()),
        (":-4", 1, rows_v(1)),
        (":3", 4, dev4.clone()),
        (":latest", 4, dev4.clone()),
        ("", 4, dev4.clone()),
    ] {
        assert_eq!(
            resolve(&lake, &format!("{dev}{r}")).await,
            (want, rows),
            "{dev}{r}"
        );
    }
    // Inherited versions are main's rows: the same row groups.
    assert_eq!(
        row_group_ids(&lake, &format!("{dev}:v1")).await,
        row_group_ids(&lake, &format!("{X}:v1")).await
    );
    // main's v3 is not dev's v3.
    assert_eq!(read_kiv(&lake, &format!("{X}:v3")).await, rows_v(3));
    let range = "r/x@dev has versions v1 to v4";
    fails(
        &lake,
        &format!("{dev}:v5"),
        ErrorKind::NotFound,
        &["tarn://r/x@dev:v5", "version v5 does not exist", range],
    )
    .await;
    fails(
        &lake,
        &format!("{dev}:-5"),
        ErrorKind::NotFound,
        &["tarn://r/x@dev:-5", range, "indexes 0 to 3 or -1 to -4"],
    )
    .await;
    // A branch with no version of its own: its head is main's v2.
    for r in ["", ":latest", ":-1", ":1", ":v2"] {
        assert_eq!(
            resolve(&lake, &format!("tarn://r/x@idle{r}")).await,
            (2, rows_v(2)),
            "idle{r}"
        );
    }
    fails(
        &lake,
        "tarn://r/x@idle:v3",
        ErrorKind::NotFound,
        &["r/x@idle has versions v1 to v2"],
    )
    .await;
    let log: Vec<(u64, i64)> = log_of(&lake, dev)
        .await
        .iter()
        .map(|l| (l.0, l.1))
        .collect();
    let main_log: Vec<(u64, i64)> = log_of(&lake, X).await.iter().map(|l| (l.0, l.1)).collect();
    assert_eq!(
        log.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert_eq!(&log[2..], &main_log[1..], "dev's v1, v2 are main's commits");
    assert!(log[1].1 > main_log[0].1, "dev's own versions come later");
    assert_eq!(
        log_of(&lake, "tarn://r/x@idle")
            .await
            .iter()
            .map(|l| l.0)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
}

async fn state_at_takes_commit_ids_dates_and_times(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    check_err(
        "state of an empty lake",
        lake.state_at("2999-01-01").await,
        ErrorKind::NotFound,
        &["no commit was made at or before it", "the lake is empty"],
    );
    history(&lake, X, 3).await;
    let t = times(&lake, X).await;
    let (c1, c3) = (t[0].1, t[2].1);
    assert_eq!(lake.state().await.expect("state").commit_id, c3);
    let state = |id: i64| LakeState { commit_id: id };
    let last = c3.to_string();
    for bad in ["0", &(c3 + 1).to_string(), "1000000"] {
        check_err(
            &format!("--as-of {bad}"),
            lake.state_at(bad).await,
            ErrorKind::NotFound,
            &[
                &format!("--as-of {bad}: commit {bad} does not exist"),
                &format!("this lake's commits are 1 to {last}"),
            ],
        );
    }
    check_err(
        "huge id",
        lake.state_at("99999999999999999999999").await,
        ErrorKind::InvalidInput,
        &["commit id out of range"],
    );
    for id in [c1, c3, t[1].1] {
        assert_eq!(lake.state_at(&id.to_string()).await.expect("id"), state(id));
    }
    assert_eq!(
        lake.state_at(&format!(" {c1} ")).await.expect("trimmed"),
        state(c1)
    );
    let us = chrono::Duration::microseconds(1);
    for (text, want) in [
        (micros(t[0].2), c1),
        (micros(t[1].2 - us), c1),
        (micros(midpoint(t[0].2, t[1].2)), c1),
        (micros(t[1].2), t[1].1),
        (micros(midpoint(t[1].2, t[2].2)), t[1].1),
        (t[2].2.date_naive().format("%Y-%m-%d").to_string(), c3),
        ("2999-12-31".to_string(), c3),
    ] {
        assert_eq!(
            lake.state_at(&text).await.expect(&text),
            state(want),
            "{text}"
        );
    }
    for before in [
        micros(t[0].2 - us),
        (t[0].2.date_naive() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string(),
    ] {
        let msg = check_err(
            &before,
            lake.state_at(&before).await,
            ErrorKind::NotFound,
            &[
                &format!("--as-of {before}"),
                "no commit was made at or before it",
            ],
        );
        assert!(!msg.contains("empty"), "{msg}");
    }
    for garbage in ["yesterday", "", "-1", "v3", "latest", "12:00"] {
        check_err(
            &format!("--as-of {garbage:?}"),
            lake.state_at(garbage).await,
            ErrorKind::InvalidInput,
            &["expected a commit id (e.g. 42), a date", "RFC 3339 time"],
        );
    }
    for (bad, needle) in [
        ("2024-02-30", "not a valid one"),
        ("2024-01-01T25:00:00Z", "not RFC 3339"),
        ("2024-01-01 12:00", "not RFC 3339"),
    ] {
        check_err(
            bad,
            lake.state_at(bad).await,
            ErrorKind::InvalidInput,
            &[&format!("--as-of {bad}"), needle],
        );
    }

    // snapshot_at: the branch and dataset must exist at the state.
    for (id, v) in [(c1, 1), (t[1].1, 2), (c3, 3)] {
        let snap = lake.snapshot_at(X, Some(state(id))).await.expect("x at id");
        assert_eq!(snap.version(), v, "commit {id}");
    }
    let dev = lake
        .create_branch(&format!("{X}:v1"), "dev")
        .await
        .expect("dev");
    let created = dev.created_commit.expect("a branch is created by a commit");
    assert_eq!(created, c3 + 1);
    lake.write(
        "tarn://r/y",
        kiv_batch(&[(1, 1, 1)]),
        WriteRequest::new().ordered_on("k"),
    )
    .await
    .expect("y v1");
    for uri in ["tarn://r/x@dev", "tarn://r/x@dev:latest"] {
        check_err(
            uri,
            lake.snapshot_at(uri, Some(state(c3))).await,
            ErrorKind::NotFound,
            &[uri, "branch \"dev\" did not exist yet at commit", &last],
        );
    }
    // At its creation commit, dev is its fork point.
    let at = lake
        .snapshot_at("tarn://r/x@dev", Some(state(created)))
        .await
        .expect("dev at creation");
    assert_eq!(at.version(), 1);
    // An explicit ref on dev is used as is.
    assert_eq!(
        lake.snapshot_at("tarn://r/x@dev:v1", Some(state(c1)))
            .await
            .expect("explicit")
            .version(),
        1
    );
    for uri in ["tarn://r/y", "tarn://r/y:latest"] {
        check_err(
            uri,
            lake.snapshot_at(uri, Some(state(c3))).await,
            ErrorKind::NotFound,
            &[uri, "dataset \"r/y\" did not exist yet at commit", &last],
        );
    }
    // Dataset-wide: snapshots of both at the state before y existed fails on y.
    check_err(
        "snapshots before y",
        lake.snapshots(&[X, "tarn://r/y"], Some(state(c3))).await,
        ErrorKind::NotFound,
        &["r/y", "did not exist yet"],
    );
}

async fn snapshots_pin_every_uri_to_one_state_while_a_writer_commits(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    let (a, b) = ("tarn://r/a", "tarn://r/b");
    let req = || {
        WriteRequest::new()
            .ordered_on("k")
            .row_group_target(RowGroupTarget::Rows(1000))
    };
    lake.write(a, kiv_batch(&[(0, 0, 0)]), req())
        .await
        .expect("a");
    lake.write(b, kiv_batch(&[(0, 0, 0)]), req())
        .await
        .expect("b");
    // B's version n holds rows 0..n: its row count tells the version it was read at.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let writer = {
        let (lake, stop, committed) = (lake.clone(), stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut n = 1i64;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                lake.write(b, kiv_batch(&[(n, n, n)]), WriteRequest::new())
                    .await
                    .expect("b write");
                committed.store(n, Ordering::Relaxed);
                n += 1;
            }
            n
        })
    };
    // Several URIs before B, so the writer has time to commit between the state and B.
    let uris = [a, a, a, a, a, a, b, "tarn://r/b:latest"];
    let mut checked = Vec::new();
    // At least 25 rounds, and on until the writer made a few versions (a busy machine
    // can starve it), within a bound.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    for round in 0.. {
        if round >= 25
            && (committed.load(Ordering::Relaxed) > 6 || tokio::time::Instant::now() > deadline)
        {
            break;
        }
        let (state, snaps) = lake.snapshots(&uris, None).await.expect("snapshots");
        let rows = read_kiv(&lake, &snaps[6].uri().to_string()).await;
        checked.push((state, snaps[6].version(), snaps[7].version(), rows.len()));
        assert_eq!(snaps[0].version(), 1);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(written > 5, "the writer committed only {written} versions");
    let log = lake.log(b, None).await.expect("log b");
    let seen: std::collections::BTreeSet<u64> = checked.iter().map(|c| c.1).collect();
    assert!(
        seen.len() > 1,
        "every read saw B at {seen:?}: the writer was not running"
    );
    for (state, v, latest, rows) in checked {
        // The version B had at the state: its last one with a commit id <= the state's.
        let want = log
            .iter()
            .filter(|l| l.commit_id <= state.commit_id)
            .map(|l| l.version)
            .max()
            .expect("b existed");
        assert_eq!((v, latest), (want, want), "B at {state:?}");
        assert_eq!(rows as u64, want, "B's rows at {state:?}");
    }
    // An explicit state pins both the same way, long after.
    let early = LakeState {
        commit_id: log.iter().rev().nth(2).expect("v3").commit_id,
    };
    let (state, snaps) = lake.snapshots(&[a, b], Some(early)).await.expect("as of");
    assert_eq!(state, early);
    assert_eq!(snaps[1].version(), 3);
    assert_eq!(read_kiv(&lake, &snaps[1].uri().to_string()).await.len(), 3);
}

tarn_testkit::backend_tests!(
    versions_and_indexes_reach_both_ends_and_say_the_range_past_them,
    times_and_dates_name_the_last_version_at_or_before_them,
    tags_are_checked_at_creation_immutable_and_deletable,
    tags_through_a_branch_name_the_branch_that_holds_the_version,
    refs_on_a_branch_count_its_inherited_and_own_versions,
    state_at_takes_commit_ids_dates_and_times,
    snapshots_pin_every_uri_to_one_state_while_a_writer_commits,
);
