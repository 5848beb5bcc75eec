//! The conformance suite of the request queue (docs/design/0009): every implementation of
//! `RequestQueue` runs it: the catalog queue on SQLite and on PostgreSQL, and the NATS
//! JetStream queue (each test in a fresh namespace of the server of scripts/with-services).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tarn::{NewRequest, RequestOutcome, RequestStatus};
use tarn_server::{CatalogQueue, NatsQueue, RequestQueue};
use tarn_testkit::{Backend, LakePlace};

/// A queue of one kind, fresh for the test; `_place` keeps a catalog's lake alive.
struct Fresh {
    queue: Arc<dyn RequestQueue>,
    _place: Option<LakePlace>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Catalog(Backend),
    Nats,
}

async fn fresh(kind: Kind) -> Option<Fresh> {
    match kind {
        Kind::Catalog(backend) => {
            let place = LakePlace::new(backend)?;
            let lake = place.init().await;
            Some(Fresh {
                queue: Arc::new(CatalogQueue::new(&lake)),
                _place: Some(place),
            })
        }
        Kind::Nats => {
            let url = tarn_testkit::nats()?;
            let namespace = tarn_testkit::unique("q").replace(['-', '.'], "_");
            let queue = NatsQueue::connect(&format!("{url}/{namespace}"), "test lake")
                .await
                .unwrap();
            Some(Fresh {
                queue: Arc::new(queue),
                _place: None,
            })
        }
    }
}

fn request(id: &str, lane: &str, key: Option<&str>) -> NewRequest {
    NewRequest {
        id: id.into(),
        idempotency_key: key.map(str::to_string),
        lane: lane.into(),
        kind: "compact".into(),
        params_json: format!(r#"{{"kind":"compact","uri":"{lane}","n":"{id}"}}"#),
        staged_path: None,
    }
}

fn succeeded(version: u64) -> RequestOutcome {
    RequestOutcome {
        status: RequestStatus::Succeeded,
        version: Some(version),
        commit_id: Some(version as i64),
        error: None,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn idempotency_keys_map_to_one_request_forever(q: Arc<dyn RequestQueue>) {
    let (first, created) = q.enqueue(request("r1", "a/x", Some("k1"))).await.unwrap();
    assert!(created);
    assert_eq!(first.id, "r1");
    assert_eq!(first.status, RequestStatus::Queued);
    let (again, created) = q.enqueue(request("r2", "a/x", Some("k1"))).await.unwrap();
    assert!(!created, "the same key is the same request");
    assert_eq!(again.id, "r1");
    assert!(
        q.request("r2").await.unwrap().is_none(),
        "no second request"
    );
    let (other, created) = q.enqueue(request("r3", "a/x", Some("k2"))).await.unwrap();
    assert!(created);
    assert_eq!(other.id, "r3");
    // After it finished, the key still names it.
    let claimed = q.claim("a/x", "w1", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, "r1");
    assert!(q.finish("r1", &succeeded(1)).await.unwrap());
    let (late, created) = q.enqueue(request("r4", "a/x", Some("k1"))).await.unwrap();
    assert!(!created);
    assert_eq!(late.id, "r1");
    assert_eq!(late.status, RequestStatus::Succeeded);
    assert_eq!(late.version, Some(1));
}

async fn concurrent_enqueues_of_one_key_make_one_request(q: Arc<dyn RequestQueue>) {
    let tasks = (0..20).map(|i| {
        let q = q.clone();
        tokio::spawn(async move {
            q.enqueue(request(&format!("c{i}"), "a/x", Some("shared")))
                .await
                .unwrap()
        })
    });
    let answers: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: BTreeSet<String> = answers.iter().map(|(r, _)| r.id.clone()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(answers.iter().filter(|(_, created)| *created).count(), 1);
    let winner = ids.into_iter().next().unwrap();
    // Exactly one request to hand out on the lane.
    let claimed = q.claim("a/x", "w", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, winner);
    q.finish(&winner, &succeeded(1)).await.unwrap();
    assert!(q.claim("a/x", "w", LEASE).await.unwrap().is_none());
    assert!(q.lanes_with_work().await.unwrap().is_empty());
}

async fn a_lane_hands_out_its_requests_one_at_a_time_in_arrival_order(q: Arc<dyn RequestQueue>) {
    for i in 0..5 {
        q.enqueue(request(&format!("a{i}"), "lane/a", None))
            .await
            .unwrap();
        q.enqueue(request(&format!("b{i}"), "lane/b", None))
            .await
            .unwrap();
    }
    assert_eq!(
        q.lanes_with_work().await.unwrap(),
        vec!["lane/a".to_string(), "lane/b".to_string()]
    );
    let mut seqs = Vec::new();
    for i in 0..5 {
        let a = q.claim("lane/a", "w1", LEASE).await.unwrap().unwrap();
        assert_eq!(a.id, format!("a{i}"));
        assert_eq!(a.status, RequestStatus::Running);
        assert_eq!(a.attempts, 1);
        seqs.push(a.seq);
        // While it runs, nobody takes the lane's next request.
        assert!(q.claim("lane/a", "w2", LEASE).await.unwrap().is_none());
        // Other lanes go on.
        if i == 0 {
            let b = q.claim("lane/b", "w2", LEASE).await.unwrap().unwrap();
            assert_eq!(b.id, "b0");
            q.finish("b0", &succeeded(1)).await.unwrap();
        }
        assert!(q.finish(&a.id, &succeeded(i + 1)).await.unwrap());
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "arrival order: {seqs:?}"
    );
    assert!(q.claim("lane/a", "w1", LEASE).await.unwrap().is_none());
    assert_eq!(
        q.lanes_with_work().await.unwrap(),
        vec!["lane/b".to_string()]
    );
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.unfinished, depth.running), (4, 0));
    assert!(depth.oldest.is_some());
}

async fn a_lapsed_lease_hands_the_request_out_again(q: Arc<dyn RequestQueue>) {
    q.enqueue(request("l1", "lease/x", None)).await.unwrap();
    q.enqueue(request("l2", "lease/x", None)).await.unwrap();
    let short = Duration::from_millis(400);
    let first = q.claim("lease/x", "dead", short).await.unwrap().unwrap();
    assert_eq!(first.id, "l1");
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.unfinished, depth.running), (2, 1));
    // Renewing keeps it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(q.renew("l1", "dead", short).await.unwrap());
        assert!(q.claim("lease/x", "other", LEASE).await.unwrap().is_none());
    }
    // A renewal from someone else is refused.
    assert!(!q.renew("l1", "other", short).await.unwrap());
    // Once the owner stops renewing, the lease lapses and the same request comes back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = q.claim("lease/x", "other", LEASE).await.unwrap().unwrap();
    assert_eq!(again.id, "l1");
    assert_eq!(again.attempts, 2);
    assert!(
        !q.renew("l1", "dead", short).await.unwrap(),
        "the old owner lost it"
    );
    assert!(q.finish("l1", &succeeded(7)).await.unwrap());
    assert!(
        !q.finish("l1", &succeeded(8)).await.unwrap(),
        "finished once"
    );
    let done = q.request("l1").await.unwrap().unwrap();
    assert_eq!(done.status, RequestStatus::Succeeded);
    assert_eq!(done.version, Some(7));
    assert!(done.finished_at.is_some());
    assert_eq!(
        q.claim("lease/x", "other", LEASE)
            .await
            .unwrap()
            .unwrap()
            .id,
        "l2"
    );
}

async fn racing_workers_never_hold_one_lane_at_once(q: Arc<dyn RequestQueue>) {
    const N: usize = 30;
    for i in 0..N {
        q.enqueue(request(&format!("r{i:02}"), "race/x", None))
            .await
            .unwrap();
    }
    let holding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..4).map(|w| {
        let (q, holding) = (q.clone(), holding.clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                match q.claim("race/x", &format!("w{w}"), LEASE).await.unwrap() {
                    Some(r) => {
                        let before = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(before, 0, "two workers hold the lane");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        assert!(q.finish(&r.id, &succeeded(1)).await.unwrap());
                        mine.push(r.id);
                    }
                    None if q.lanes_with_work().await.unwrap().is_empty() => break,
                    None => tokio::task::yield_now().await,
                }
            }
            mine
        })
    });
    let mut all: Vec<String> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    all.sort();
    let expected: Vec<String> = (0..N).map(|i| format!("r{i:02}")).collect();
    assert_eq!(all, expected, "each request handed out and finished once");
}

async fn listings_and_staged_uploads(q: Arc<dyn RequestQueue>) {
    for i in 0..4 {
        let mut r = request(&format!("s{i}"), "list/x", None);
        r.staged_path = Some(format!(".staging/s{i}.upload"));
        q.enqueue(r).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..2 {
        let r = q.claim("list/x", "w", LEASE).await.unwrap().unwrap();
        assert_eq!(r.id, format!("s{i}"));
        let outcome = if i == 0 {
            succeeded(1)
        } else {
            RequestOutcome {
                status: RequestStatus::Failed,
                version: None,
                commit_id: None,
                error: Some("bad rows".into()),
            }
        };
        q.finish(&r.id, &outcome).await.unwrap();
    }
    let ids = |rs: Vec<tarn::RequestRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(q.requests(&[], 10).await.unwrap()),
        ["s3", "s2", "s1", "s0"]
    );
    assert_eq!(ids(q.requests(&[], 2).await.unwrap()), ["s3", "s2"]);
    assert_eq!(
        ids(q.requests(&[RequestStatus::Failed], 10).await.unwrap()),
        ["s1"]
    );
    assert_eq!(
        ids(q
            .requests(&[RequestStatus::Queued, RequestStatus::Succeeded], 10)
            .await
            .unwrap()),
        ["s3", "s2", "s0"]
    );
    let failed = q.request("s1").await.unwrap().unwrap();
    assert_eq!(failed.error.as_deref(), Some("bad rows"));
    // Only finished requests' uploads are to delete, until forgotten.
    let mut staged = ids(q.finished_with_staged(10).await.unwrap());
    staged.sort();
    assert_eq!(staged, ["s0", "s1"]);
    q.forget_staged("s0").await.unwrap();
    assert_eq!(ids(q.finished_with_staged(10).await.unwrap()), ["s1"]);
    assert_eq!(q.request("s0").await.unwrap().unwrap().staged_path, None);
    assert!(q.request("nothing-like-it").await.unwrap().is_none());
    assert!(q.request("../../etc").await.unwrap().is_none());
}

macro_rules! queue_tests {
    ($($name:ident),* $(,)?) => {
        mod catalog_sqlite {
            $(#[test]
            fn $name() { super::run(super::Kind::Catalog(tarn_testkit::Backend::Local), super::$name) })*
        }
        mod catalog_postgres {
            $(#[test]
            fn $name() { super::run(super::Kind::Catalog(tarn_testkit::Backend::Remote), super::$name) })*
        }
        mod nats {
            $(#[test]
            fn $name() { super::run(super::Kind::Nats, super::$name) })*
        }
    };
}

fn run<F, Fut>(kind: Kind, f: F)
where
    F: FnOnce(Arc<dyn RequestQueue>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tarn_testkit::runtime().block_on(async {
        if let Some(fresh) = fresh(kind).await {
            f(fresh.queue.clone()).await;
        }
    });
}

queue_tests!(
    idempotency_keys_map_to_one_request_forever,
    concurrent_enqueues_of_one_key_make_one_request,
    a_lane_hands_out_its_requests_one_at_a_time_in_arrival_order,
    a_lapsed_lease_hands_the_request_out_again,
    racing_workers_never_hold_one_lane_at_once,
    listings_and_staged_uploads,
);
