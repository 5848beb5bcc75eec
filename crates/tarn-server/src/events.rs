//! Notifications (SPEC §9, docs/design/0009): one hub per server tails the catalog's commits
//! and fans them out to Server-Sent Events clients, with finished requests.
//!
//! The catalog is the source of truth: commit ids become visible in increasing order (the
//! lake's write lock), so "every version after commit C" is a range read that never misses
//! a late commit, whichever process or machine made it. The hub reads that range every
//! [`POLL_INTERVAL`] (an indexed read of the newest commits) and at once when this server's
//! own workers commit. A client that reconnects with `Last-Event-ID: C` is first served the
//! commits after C from the catalog, then the live stream, skipping what it was already sent;
//! one that falls behind the hub's buffer goes back to the catalog rather than losing events.

use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::{AppState, under_prefix};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tarn::{CommitEvent, DatasetName, ServiceStore};
use tokio::sync::broadcast;

/// How often the hub reads the catalog for commits made by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Events the hub buffers for slow clients before they go back to the catalog.
const BUFFER: usize = 4096;
/// Commits read from the catalog at once.
const PAGE: u64 = 1000;

/// A finished request, as the `request` event carries it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestEvent {
    pub request_id: String,
    pub status: String,
    #[serde(skip)]
    pub lane: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum HubEvent {
    Commit(CommitEvent),
    Request(RequestEvent),
}

/// The data of a `commit` event (SPEC §9).
#[derive(Debug, Serialize)]
struct CommitData<'a> {
    dataset: &'a str,
    branch: &'a str,
    version: u64,
    commit_id: i64,
    timestamp: String,
}

#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<HubEvent>,
    /// The newest commit published.
    last: AtomicI64,
    clients: AtomicUsize,
    store: Arc<dyn ServiceStore>,
    /// One reader of the catalog at a time, so each commit is published once.
    reading: tokio::sync::Mutex<()>,
}

impl EventHub {
    /// A hub that starts after the lake's current last commit.
    pub fn new(store: Arc<dyn ServiceStore>, last_commit: i64) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BUFFER);
        Arc::new(Self {
            tx,
            last: AtomicI64::new(last_commit),
            clients: AtomicUsize::new(0),
            store,
            reading: tokio::sync::Mutex::new(()),
        })
    }

    pub fn publish_request(&self, event: RequestEvent) {
        let _ = self.tx.send(HubEvent::Request(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }

    pub fn last_commit(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }

    /// Clients connected to the event stream now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Tails the catalog until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: crate::Shutdown) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = stop.stopped() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            match self.read_new().await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "the event hub cannot read the catalog");
                    }
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50))))
                        .await;
                }
            }
        }
    }

    /// Publishes the commits made since the last one published.
    pub async fn read_new(&self) -> tarn::Result<()> {
        let _one = self.reading.lock().await;
        loop {
            let after = self.last_commit();
            let events = self.store.commits_after(after, None, PAGE).await?;
            let full = events.len() as u64 == PAGE;
            for e in events {
                self.last.store(e.commit_id, Ordering::Release);
                let _ = self.tx.send(HubEvent::Commit(e));
            }
            if !full {
                return Ok(());
            }
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    #[serde(default)]
    prefix: Option<String>,
    /// The same as the `Last-Event-ID` header, for clients that cannot set headers.
    #[serde(default)]
    last_event_id: Option<i64>,
}

fn commit_event(e: &CommitEvent) -> Event {
    let data = CommitData {
        dataset: &e.dataset,
        branch: &e.branch,
        version: e.version,
        commit_id: e.commit_id,
        timestamp: e
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    Event::default()
        .event("commit")
        .id(e.commit_id.to_string())
        .json_data(data)
        .unwrap_or_default()
}

fn request_event(e: &RequestEvent) -> Event {
    Event::default()
        .event("request")
        .json_data(e)
        .unwrap_or_default()
}

/// Counts a connected client for as long as it lives.
struct ClientGuard(Arc<EventHub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /api/v1/events?prefix=P`: `commit` events of the datasets under P (those the
/// principal may read), in commit order, id = commit id; `request` events of finished
/// requests on those datasets. `Last-Event-ID: C` resumes after commit C.
#[utoipa::path(get, path = "/api/v1/events", params(EventsQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this commit id")), responses((status = 200, description = "Server-Sent Events: `commit` (id = commit id, data {dataset, branch, version, commit_id, timestamp}) and `request` events", content_type = "text/event-stream", body = String), crate::openapi::Refusals))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let prefix = match query.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => Some(
            DatasetName::new(p).map_err(|e| ApiError::bad_request(format!("prefix {p:?}: {e}")))?,
        ),
        _ => None,
    };
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID must be a commit id (an integer)")
                })?,
        ),
        None => query.last_event_id,
    };
    let hub = state.hub().clone();
    let mut rx = hub.subscribe();
    let start = match resume {
        Some(c) => c,
        None => hub.last_commit(),
    };
    hub.clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(hub.clone());
    let prefix_text = prefix.as_ref().map(|p| p.to_string()).unwrap_or_default();
    let visible = move |dataset: &str| {
        under_prefix(dataset, &prefix_text) && principal.may(Access::Read, dataset)
    };
    let store = state.lake().service_store();
    let shutdown = state.shutdown().clone();
    let (tx, events) = tokio::sync::mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        let _guard = guard;
        let emit = async |event: Event| tx.send(event).await.is_ok();
        let mut sent = start;
        // Catch up from the catalog (a resume, or a client that fell behind the hub), then
        // follow the hub, which publishes every commit after the one it had when this
        // client subscribed: nothing falls between the two, and what both give is skipped.
        let mut catching_up = true;
        loop {
            if catching_up {
                match store.commits_after(sent, prefix.as_ref(), PAGE).await {
                    Ok(page) => {
                        catching_up = page.len() as u64 == PAGE;
                        for e in &page {
                            sent = e.commit_id;
                            if visible(&e.dataset) && !emit(commit_event(e)).await {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an event stream cannot read the catalog");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                continue;
            }
            let next = tokio::select! {
                next = rx.recv() => next,
                () = tx.closed() => return,
                () = shutdown.stopped() => return,
            };
            match next {
                Ok(HubEvent::Commit(e)) => {
                    if e.commit_id <= sent {
                        continue;
                    }
                    sent = e.commit_id;
                    if visible(&e.dataset) && !emit(commit_event(&e)).await {
                        return;
                    }
                }
                Ok(HubEvent::Request(r)) => {
                    if visible(&r.lane) && !emit(request_event(&r)).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => catching_up = true,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures::stream::unfold(events, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
