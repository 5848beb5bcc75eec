//! The durable write queue (SPEC §9, docs/design/0009): what a queued request is, and the
//! [`RequestQueue`] trait its stores implement. The catalog store is here; the dispatcher
//! and the workers that apply requests are in [`crate::worker`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tarn::{NewRequest, QueueDepth, RequestOutcome, RequestRecord, RequestStatus, ServiceStore};

/// A mutation as the queue keeps it (its `params_json`). Every field is what the client
/// sent, checked when the request was accepted; the worker applies it as `tarn` would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mutation {
    /// `POST /api/v1/write`: the rows are the staged upload.
    Write {
        uri: String,
        format: String,
        #[serde(default)]
        ordered_on: Option<String>,
        #[serde(default)]
        duplicates_on: Option<String>,
        #[serde(default)]
        row_group_size: Option<String>,
        #[serde(default)]
        max_off_target: Option<u32>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        evolve: bool,
    },
    DeleteRange {
        uri: String,
        start: String,
        end: String,
        #[serde(default)]
        message: Option<String>,
    },
    Metadata {
        uri: String,
        #[serde(default)]
        set: BTreeMap<String, String>,
        #[serde(default)]
        unset: Vec<String>,
        #[serde(default)]
        message: Option<String>,
    },
    Compact {
        uri: String,
        #[serde(default)]
        message: Option<String>,
    },
    Tag {
        uri: String,
        name: String,
        #[serde(default)]
        force: bool,
    },
    Branch {
        uri: String,
        name: String,
    },
    Merge {
        source: String,
        target: String,
    },
}

impl Mutation {
    pub fn kind(&self) -> &'static str {
        match self {
            Mutation::Write { .. } => "write",
            Mutation::DeleteRange { .. } => "delete-range",
            Mutation::Metadata { .. } => "metadata",
            Mutation::Compact { .. } => "compact",
            Mutation::Tag { .. } => "tag",
            Mutation::Branch { .. } => "branch",
            Mutation::Merge { .. } => "merge",
        }
    }

    /// The URI whose dataset the mutation changes (a merge: its target).
    pub fn uri(&self) -> &str {
        match self {
            Mutation::Write { uri, .. }
            | Mutation::DeleteRange { uri, .. }
            | Mutation::Metadata { uri, .. }
            | Mutation::Compact { uri, .. }
            | Mutation::Tag { uri, .. }
            | Mutation::Branch { uri, .. } => uri,
            Mutation::Merge { target, .. } => target,
        }
    }
}

/// Durable requests to mutate the lake, applied once each, in arrival order per lane.
///
/// # Guarantees
///
/// - `enqueue` returns only once the request is durable. The same idempotency key returns
///   the first request and `created = false`, forever (not within a window).
/// - `claim(lane)` hands out the oldest unfinished request of a lane, only when no other
///   owner holds a live lease on it: a lane's requests run one at a time, in order. A
///   request whose lease ran out is handed out again (at-least-once); its commit carries
///   its id, which makes applying it exactly-once ([`tarn::Lake::for_request`]).
/// - `finish` records the outcome once; a second call changes nothing.
#[async_trait]
pub trait RequestQueue: Send + Sync + std::fmt::Debug {
    async fn enqueue(&self, request: NewRequest) -> tarn::Result<(RequestRecord, bool)>;
    async fn request(&self, id: &str) -> tarn::Result<Option<RequestRecord>>;
    /// Requests with one of `statuses` (any when empty), newest first, at most `limit`.
    async fn requests(
        &self,
        statuses: &[RequestStatus],
        limit: u64,
    ) -> tarn::Result<Vec<RequestRecord>>;
    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> tarn::Result<Option<RequestRecord>>;
    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> tarn::Result<bool>;
    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> tarn::Result<bool>;
    /// Lanes with unfinished requests.
    async fn lanes_with_work(&self) -> tarn::Result<Vec<String>>;
    async fn depth(&self) -> tarn::Result<QueueDepth>;
    /// Finished requests whose staged upload is still to delete.
    async fn finished_with_staged(&self, limit: u64) -> tarn::Result<Vec<RequestRecord>>;
    async fn forget_staged(&self, id: &str) -> tarn::Result<()>;
}

/// The queue in the lake's own catalog (the default): SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct CatalogQueue {
    store: Arc<dyn ServiceStore>,
}

impl CatalogQueue {
    pub fn new(lake: &tarn::Lake) -> Self {
        Self {
            store: lake.service_store(),
        }
    }
}

#[async_trait]
impl RequestQueue for CatalogQueue {
    async fn enqueue(&self, request: NewRequest) -> tarn::Result<(RequestRecord, bool)> {
        Ok(self.store.enqueue(request).await?)
    }
    async fn request(&self, id: &str) -> tarn::Result<Option<RequestRecord>> {
        Ok(self.store.request(id).await?)
    }
    async fn requests(
        &self,
        statuses: &[RequestStatus],
        limit: u64,
    ) -> tarn::Result<Vec<RequestRecord>> {
        Ok(self.store.requests(statuses, limit).await?)
    }
    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> tarn::Result<Option<RequestRecord>> {
        Ok(self.store.claim(lane, owner, lease).await?)
    }
    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> tarn::Result<bool> {
        Ok(self.store.renew(id, owner, lease).await?)
    }
    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> tarn::Result<bool> {
        Ok(self.store.finish(id, outcome).await?)
    }
    async fn lanes_with_work(&self) -> tarn::Result<Vec<String>> {
        Ok(self.store.lanes_with_work().await?)
    }
    async fn depth(&self) -> tarn::Result<QueueDepth> {
        Ok(self.store.queue_depth().await?)
    }
    async fn finished_with_staged(&self, limit: u64) -> tarn::Result<Vec<RequestRecord>> {
        Ok(self.store.finished_with_staged(limit).await?)
    }
    async fn forget_staged(&self, id: &str) -> tarn::Result<()> {
        Ok(self.store.forget_staged(id).await?)
    }
}
