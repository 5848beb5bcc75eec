//! Observability (SPEC §9): a `tracing` span per HTTP request and the Prometheus metrics at
//! `GET /metrics`, in the OpenMetrics text format (which Prometheus scrapes natively).
//!
//! - `tarn_http_requests_total{method,route,status}` and
//!   `tarn_http_request_duration_seconds{method,route,status}` (until the response's head:
//!   a streamed body or an event stream goes on after it);
//! - `tarn_queue_requests{state}` (queued, running), `tarn_queue_oldest_age_seconds`
//!   (the oldest unfinished request's age), read from the queue at each scrape;
//! - `tarn_queue_apply_seconds{kind,status}` (a worker applying one request: the commit's
//!   latency) and `tarn_queue_latency_seconds{kind,status}` (accepted to finished);
//! - `tarn_events_clients` (connected event streams).
//!
//! The route label is the route's pattern (`/api/v1/data`), never the URI asked for, so a
//! label set stays small and no dataset name leaks into the metrics.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tracing::Instrument;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s in factors of 2.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<HttpLabels>,
    apply_seconds: Histograms<RequestLabels>,
    latency_seconds: Histograms<RequestLabels>,
    queue_requests: Family<StateLabels, Gauge>,
    queue_oldest: Gauge<f64, AtomicU64>,
    event_clients: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds: Histograms<HttpLabels> = Family::new_with_constructor(latency_buckets);
        let apply_seconds: Histograms<RequestLabels> =
            Family::new_with_constructor(latency_buckets);
        let latency_seconds: Histograms<RequestLabels> =
            Family::new_with_constructor(latency_buckets);
        let queue_requests = Family::<StateLabels, Gauge>::default();
        let queue_oldest = Gauge::<f64, AtomicU64>::default();
        let event_clients = Gauge::default();
        registry.register(
            "tarn_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        registry.register(
            "tarn_http_request_duration_seconds",
            "Time from a request's arrival to its response's head",
            http_seconds.clone(),
        );
        registry.register(
            "tarn_queue_apply_seconds",
            "Time a worker took to apply one queued request (its commit)",
            apply_seconds.clone(),
        );
        registry.register(
            "tarn_queue_latency_seconds",
            "Time from a request's acceptance (202) to its outcome",
            latency_seconds.clone(),
        );
        registry.register(
            "tarn_queue_requests",
            "Unfinished requests in the queue, by state",
            queue_requests.clone(),
        );
        registry.register(
            "tarn_queue_oldest_age_seconds",
            "Age of the oldest unfinished request (0 when none)",
            queue_oldest.clone(),
        );
        registry.register(
            "tarn_events_clients",
            "Connected event streams (GET /api/v1/events)",
            event_clients.clone(),
        );
        Self {
            registry,
            http_requests,
            http_seconds,
            apply_seconds,
            latency_seconds,
            queue_requests,
            queue_oldest,
            event_clients,
        }
    }
}

impl Metrics {
    fn observe_http(&self, method: &str, route: &str, status: StatusCode, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_string(),
            route: route.to_string(),
            status: status.as_u16(),
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A queued request finished: how long its application took, and how long since it
    /// was accepted.
    pub fn observe_request(&self, kind: &str, status: &str, applied: Duration, since: Duration) {
        let labels = RequestLabels {
            kind: kind.to_string(),
            status: status.to_string(),
        };
        self.apply_seconds
            .get_or_create(&labels)
            .observe(applied.as_secs_f64());
        self.latency_seconds
            .get_or_create(&labels)
            .observe(since.as_secs_f64());
    }
}

/// The middleware of every API route: the request's span, its log line and its metrics.
pub async fn observe(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = matched
        .as_ref()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let job = request
        .headers()
        .get("tarn-job")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!("http", %method, %route, job = %job);
    // A handler that panics answers 500 like any internal error, instead of closing the
    // connection without an answer (the panic itself is printed by the panic hook).
    let answered = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        next.run(request).instrument(span.clone()),
    ))
    .await;
    let response = answered.unwrap_or_else(|_| {
        let error = std::io::Error::other(format!("a handler of {method} {route} panicked"));
        crate::ApiError::internal(&error).into_response()
    });
    let elapsed = started.elapsed();
    let status = response.status();
    state
        .metrics()
        .observe_http(&method, &route, status, elapsed);
    tracing::info!(parent: &span, status = status.as_u16(),
        elapsed_ms = elapsed.as_secs_f64() * 1000.0, "answered");
    response
}

/// `GET /metrics`: the OpenMetrics text of the server's metrics; the queue's depth is read
/// at the scrape. It names no dataset, so it needs no token.
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = state.metrics();
    match state.workers().queue().depth().await {
        Ok(depth) => {
            let running = depth.running.min(depth.unfinished);
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            m.queue_requests
                .get_or_create(&StateLabels { state: "running" })
                .set(gauge(running));
            m.queue_requests
                .get_or_create(&StateLabels { state: "queued" })
                .set(gauge(depth.unfinished - running));
            let age = depth.oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_microseconds().unwrap_or(0) as f64 / 1e6
            });
            m.queue_oldest.set(age.max(0.0));
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the queue's depth for /metrics"),
    }
    m.event_clients
        .set(i64::try_from(state.hub().clients()).unwrap_or(i64::MAX));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &m.registry) {
        return crate::ApiError::internal(&e).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
