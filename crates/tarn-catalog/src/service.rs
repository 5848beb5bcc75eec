//! What `tarn serve` keeps in the catalog (docs/design/0009-server.md): the durable request
//! queue, the API tokens, and the commit feed that notifications are read from. Keeping
//! them in the catalog gives a shared catalog shared tokens, one queue for several servers,
//! and notifications of commits made by any process on any machine.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tarn_core::DatasetName;

use crate::Result;

/// Where a queued request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mutation to queue: what to do (`kind` and `params_json`, the server's to interpret),
/// on which lane (the dataset: requests of one lane are applied one at a time, in order).
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub lane: String,
    pub kind: String,
    pub params_json: String,
    /// The uploaded body, staged in the lake's storage.
    pub staged_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Arrival order, lake-wide.
    pub seq: i64,
    pub id: String,
    pub idempotency_key: Option<String>,
    pub lane: String,
    pub kind: String,
    pub params_json: String,
    pub staged_path: Option<String>,
    pub status: RequestStatus,
    /// How many times a worker took it.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub version: Option<u64>,
    pub commit_id: Option<i64>,
    pub error: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutcome {
    pub status: RequestStatus,
    pub version: Option<u64>,
    pub commit_id: Option<i64>,
    pub error: Option<String>,
}

/// A version that became visible: what notifications carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEvent {
    pub commit_id: i64,
    pub timestamp: DateTime<Utc>,
    pub dataset: String,
    pub branch: String,
    pub version: u64,
}

/// An API token as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's public part (the secret's first characters), to find it by.
    pub id: String,
    pub name: String,
    pub secret_sha256: Vec<u8>,
    /// `read:PREFIX` and `write:PREFIX`, as given.
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// How many requests wait, and since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Requests queued or running.
    pub unfinished: u64,
    /// Of those, the ones a worker holds (leased).
    pub running: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// The server's tables in the catalog.
///
/// # Guarantees
///
/// - [`ServiceStore::enqueue`] is one transaction: when it returns, the request is durable
///   (as durable as a commit). Of several calls with the same idempotency key, exactly one
///   creates the request; every other returns that request with `created = false`,
///   however late it comes.
/// - [`ServiceStore::claim`] hands out the oldest unfinished request of a lane, and only
///   when no other owner holds a live lease on it, so a lane's requests are applied one at a
///   time and in arrival order, by whichever server claims them. A request whose lease ran
///   out (its server died) is handed out again: at-least-once delivery. Exactly-once
///   application comes from the commit that applies a request carrying its id
///   ([`crate::CommitRequest::request_id`], unique in the lake), which
///   [`ServiceStore::commit_of_request`] finds.
/// - [`ServiceStore::finish`] records an outcome once; later calls change nothing.
/// - [`ServiceStore::commits_after`] lists versions by commit id. Commit ids become visible
///   in increasing order (the lake's write lock), so a reader that has seen every commit up
///   to C and asks for those after C never misses one that lands later.
#[async_trait]
pub trait ServiceStore: Send + Sync + std::fmt::Debug {
    /// The versions committed after commit `after`, in commit order, at most `limit`, of the
    /// datasets named `prefix` or under it (all when `None`).
    async fn commits_after(
        &self,
        after: i64,
        prefix: Option<&DatasetName>,
        limit: u64,
    ) -> Result<Vec<CommitEvent>>;
    /// The version whose commit applied request `request_id`, if one did.
    async fn commit_of_request(&self, request_id: &str) -> Result<Option<CommitEvent>>;

    /// Stores a request, or finds the one its idempotency key already names.
    async fn enqueue(&self, request: NewRequest) -> Result<(RequestRecord, bool)>;
    async fn request(&self, id: &str) -> Result<Option<RequestRecord>>;
    /// Requests, newest first, at most `limit`, of the given statuses (all when empty).
    async fn requests(&self, statuses: &[RequestStatus], limit: u64) -> Result<Vec<RequestRecord>>;
    /// Takes the oldest unfinished request of `lane` for `owner`, leased for `lease`: the
    /// request is `running`, its attempts counted. `None` when the lane has no unfinished
    /// request, or when its oldest is leased to another owner.
    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<RequestRecord>>;
    /// Extends `owner`'s lease; `false` when it no longer holds the request.
    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> Result<bool>;
    /// Records how a request ended; `false` when it had ended already (nothing changes).
    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> Result<bool>;
    /// The lanes that have unfinished requests whose lease is free or ran out.
    async fn lanes_with_work(&self) -> Result<Vec<String>>;
    async fn queue_depth(&self) -> Result<QueueDepth>;
    /// Finished requests that still name a staged upload (the server deletes the file, then
    /// [`ServiceStore::forget_staged`]).
    async fn finished_with_staged(&self, limit: u64) -> Result<Vec<RequestRecord>>;
    async fn forget_staged(&self, id: &str) -> Result<()>;

    /// Stores a token. Refused when its name or id is taken.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Every token, by name.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Removes a token; `false` when there was none of that name.
    async fn revoke_token(&self, name: &str) -> Result<bool>;
}

/// The SQL both catalogs select a request with (their placeholders differ).
pub(crate) const REQUEST_COLUMNS: &str = "seq, id, idempotency_key, lane, kind, params_json, \
     staged_path, status, attempts, created_micros, started_micros, finished_micros, version, \
     commit_id, error";

/// The columns of a commit event: commit, time, dataset, branch, version.
pub(crate) const COMMIT_EVENT_FROM: &str = "SELECT c.id, c.ts_micros, d.name, b.name, v.version \
     FROM versions v JOIN commits c ON c.id = v.commit_id \
     JOIN branches b ON b.id = v.branch_id JOIN datasets d ON d.id = b.dataset_id";

pub(crate) fn status_at(s: &str) -> Result<RequestStatus> {
    RequestStatus::parse(s)
        .ok_or_else(|| crate::CatalogError::Corrupt(format!("unknown request status {s:?}")))
}

pub(crate) fn scopes_json(scopes: &[String]) -> Result<String> {
    serde_json::to_string(scopes).map_err(|e| crate::CatalogError::Corrupt(e.to_string()))
}

pub(crate) fn scopes_from_json(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| crate::CatalogError::Corrupt(e.to_string()))
}
