//! `tarn serve` (SPEC §9, docs/design/0009-server.md): the HTTP API of a lake, its durable
//! write queue and its notifications.
//!
//! [`Server::start`] opens the background tasks (the queue's dispatcher, the event hub) and
//! gives the [`AppState`]; [`app`] is the router, which tests drive without a socket. Reads
//! go straight to snapshots, in parallel; mutations are queued requests that the workers
//! apply one dataset at a time.

mod auth;
mod data;
mod encode;
mod error;
mod events;
mod extract;
mod metrics;
mod mutate;
mod nats;
mod openapi;
mod queue;
mod read;
mod registry;
mod worker;

pub use auth::{Access, Principal, Scope, new_token};
pub use encode::Format;
pub use error::{ApiError, ApiResult};
pub use events::{EventHub, POLL_INTERVAL};
pub use metrics::Metrics;
pub use nats::NatsQueue;
pub use openapi::ApiDoc;
pub use queue::{CatalogQueue, Mutation, RequestQueue};
pub use worker::{LEASE, STAGING_DIR, Workers};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tarn::Lake;
use tarn_query::QueryEngine;

/// What a server allows (SPEC §9 flags of `tarn serve`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests without a token may read.
    pub allow_anonymous_read: bool,
    /// The largest upload (a write's body).
    pub max_upload_bytes: u64,
    /// The largest JSON body.
    pub max_json_bytes: usize,
    /// The memory one SQL query may hold (sorts, joins, aggregations).
    pub query_memory_bytes: usize,
    /// How long one SQL query may run.
    pub query_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            allow_anonymous_read: false,
            max_upload_bytes: 1 << 30,
            max_json_bytes: 1 << 20,
            query_memory_bytes: 1 << 30,
            query_timeout: Duration::from_secs(60),
        }
    }
}

/// A stop signal shared by the server's background tasks.
#[derive(Debug, Clone)]
pub struct Shutdown(
    Arc<tokio::sync::watch::Sender<bool>>,
    tokio::sync::watch::Receiver<bool>,
);

impl Default for Shutdown {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Self(Arc::new(tx), rx)
    }
}

impl Shutdown {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.1.borrow()
    }

    pub async fn stopped(&self) {
        let mut rx = self.1.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

#[derive(Debug)]
struct Inner {
    lake: Lake,
    engine: QueryEngine,
    config: ServerConfig,
    workers: Arc<Workers>,
    hub: Arc<EventHub>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn lake(&self) -> &Lake {
        &self.0.lake
    }
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    pub fn engine(&self) -> &QueryEngine {
        &self.0.engine
    }
    pub fn workers(&self) -> &Arc<Workers> {
        &self.0.workers
    }
    pub fn hub(&self) -> &Arc<EventHub> {
        &self.0.hub
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// Fires when the server stops: long-lived responses (event streams, waits) end.
    pub fn shutdown(&self) -> &Shutdown {
        &self.0.shutdown
    }
}

/// A running server's background tasks.
#[derive(Debug)]
pub struct Server {
    pub state: AppState,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts the queue's workers and the event hub on `lake`, with `queue` (the catalog's
    /// by default: [`CatalogQueue`]).
    pub async fn start(
        lake: Lake,
        config: ServerConfig,
        queue: Arc<dyn RequestQueue>,
    ) -> tarn::Result<Self> {
        let engine = QueryEngine::new(&lake).map_err(|e| tarn::Error::Config(e.to_string()))?;
        let last = lake.state().await?.commit_id;
        let hub = EventHub::new(lake.service_store(), last);
        let metrics = Arc::new(Metrics::default());
        let workers = Workers::new(lake.clone(), queue, hub.clone(), metrics.clone());
        let shutdown = Shutdown::default();
        let tasks = vec![
            tokio::spawn(hub.clone().run(shutdown.clone())),
            tokio::spawn(workers.clone().run(shutdown.clone())),
        ];
        Ok(Self {
            state: AppState(Arc::new(Inner {
                lake,
                engine,
                config,
                workers,
                hub,
                metrics,
                shutdown: shutdown.clone(),
            })),
            shutdown,
            tasks,
        })
    }

    /// The signal that stops the background tasks (and the streams that watch it).
    pub fn shutdown_signal(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Stops taking requests from the queue, finishes the ones in hand, stops the hub.
    pub async fn stop(self) {
        self.shutdown.stop();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Whether the dataset `name` is `prefix` or lies under it on a `/` boundary.
pub(crate) fn under_prefix(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The HTTP API (SPEC §9).
pub fn app(state: AppState) -> Router {
    let json_limit = state.config().max_json_bytes;
    let upload_limit = usize::try_from(state.config().max_upload_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/datasets", get(read::datasets))
        .route("/info", get(read::info))
        .route("/log", get(read::log))
        .route("/tags", get(read::tags))
        .route("/branches", get(read::branches))
        .route("/diff", get(read::diff))
        .route("/registry", get(registry::list))
        .route("/project", get(registry::project))
        .route("/dimension", get(registry::dimension))
        .route("/mapping", get(registry::mapping))
        .route("/history", get(registry::history))
        .route("/dependents", get(registry::dependents))
        .route("/data", get(data::data))
        .route("/query", post(data::query))
        .route("/requests", get(mutate::requests))
        .route("/requests/{id}", get(mutate::request))
        .route("/events", get(events::events))
        .route("/delete-range", post(mutate::delete_range))
        .route("/metadata", post(mutate::metadata))
        .route("/compact", post(mutate::compact))
        .route("/tag", post(mutate::tag))
        .route("/branch", post(mutate::branch))
        .route("/merge", post(mutate::merge))
        .layer(DefaultBodyLimit::max(json_limit))
        // The upload streams to storage and counts its own bytes against its own limit.
        .route(
            "/write",
            post(mutate::write).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(openapi::openapi))
        .fallback(|| async { ApiError::not_found("no such endpoint; the API is under /api/v1") })
        .with_state(state)
}
