//! The request queue on NATS JetStream (`tarn serve --queue nats://HOST:PORT[/NAMESPACE]`,
//! SPEC §9, docs/design/0009): for deployments that already run NATS, with the guarantees
//! of the catalog queue, checked by the same conformance suite.
//!
//! Layout, for a namespace `NS` (default `tarn`; one per lake):
//! - stream `NS_QUEUE`, subjects `NS.queue.<lane in hex>`: one message per accepted request
//!   (its id), in arrival order; a lane's first message is its oldest unfinished request.
//!   A request's message is deleted once the request finished.
//! - key-value bucket `NS_requests`: request id → the request's record (JSON), changed only
//!   by compare-and-set on its revision, so two servers never both take one request.
//! - bucket `NS_keys`: SHA-256 of an idempotency key → request id, written with `create`,
//!   so a key maps to one request forever (not within a duplicate window).
//! - bucket `NS_staged`: requests whose staged upload is still to delete.
//! - key `_lake` in `NS_requests`: the lake the namespace belongs to; a server of another
//!   lake is refused.
//!
//! Exactly-once application does not rest on NATS: the commit that applies a request
//! carries its id in the catalog (docs/design/0009), so delivering a request twice (a lease
//! that ran out, a message left behind by a crash) applies it once.

use crate::queue::RequestQueue;
use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tarn::{NewRequest, QueueDepth, RequestOutcome, RequestRecord, RequestStatus};

/// How long a NATS request may take before the queue reports the server unavailable.
const NATS_TIMEOUT: Duration = Duration::from_secs(10);
/// Compare-and-set attempts before a concurrent change wins.
const CAS_ATTEMPTS: usize = 8;

/// The queue on a NATS JetStream server.
#[derive(Debug, Clone)]
pub struct NatsQueue {
    url: String,
    js: jetstream::Context,
    subjects: String,
    stream: stream::Stream,
    records: kv::Store,
    keys: kv::Store,
    staged: kv::Store,
}

/// What `NS_requests` holds for one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    seq: i64,
    id: String,
    idempotency_key: Option<String>,
    lane: String,
    kind: String,
    params_json: String,
    staged_path: Option<String>,
    status: String,
    attempts: u32,
    owner: Option<String>,
    leased_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    version: Option<u64>,
    commit_id: Option<i64>,
    error: Option<String>,
}

impl Stored {
    fn status(&self) -> RequestStatus {
        RequestStatus::parse(&self.status).unwrap_or(RequestStatus::Failed)
    }

    fn finished(&self) -> bool {
        matches!(
            self.status(),
            RequestStatus::Succeeded | RequestStatus::Failed
        )
    }

    fn record(&self) -> RequestRecord {
        RequestRecord {
            seq: self.seq,
            id: self.id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            lane: self.lane.clone(),
            kind: self.kind.clone(),
            params_json: self.params_json.clone(),
            staged_path: self.staged_path.clone(),
            status: self.status(),
            attempts: self.attempts,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            version: self.version,
            commit_id: self.commit_id,
            error: self.error.clone(),
        }
    }

    fn bytes(&self) -> tarn::Result<bytes::Bytes> {
        serde_json::to_vec(self)
            .map(Into::into)
            .map_err(|e| tarn::Error::Internal(format!("cannot encode a request: {e}")))
    }
}

impl NatsQueue {
    /// Connects to `url` (`nats://HOST:PORT[/NAMESPACE]`) and makes the stream and buckets
    /// of the namespace if they are missing; `lake` names the lake the namespace is for.
    pub async fn connect(url: &str, lake: &str) -> tarn::Result<Self> {
        let (server, namespace) = parse_url(url)?;
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tarn::Error::Unavailable(format!("NATS at {url}: {what}: {e}"))
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(NATS_TIMEOUT)
            .request_timeout(Some(NATS_TIMEOUT))
            .connect(server.as_str())
            .await
            .map_err(|e| unavailable("cannot connect", &e))?;
        let js = jetstream::new(client);
        let subjects = format!("{namespace}.queue");
        let stream = js
            .get_or_create_stream(stream::Config {
                name: format!("{namespace}_QUEUE"),
                subjects: vec![format!("{subjects}.>")],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                allow_direct: true,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("cannot open the queue's stream", &e))?;
        let bucket = |name: String| {
            let js = js.clone();
            async move {
                match js.get_key_value(&name).await {
                    Ok(store) => Ok(store),
                    Err(_) => js
                        .create_key_value(kv::Config {
                            bucket: name.clone(),
                            history: 1,
                            storage: stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| unavailable(&format!("cannot create the bucket {name}"), &e)),
                }
            }
        };
        let records = bucket(format!("{namespace}_requests")).await?;
        let keys = bucket(format!("{namespace}_keys")).await?;
        let staged = bucket(format!("{namespace}_staged")).await?;
        let queue = Self {
            url: url.to_string(),
            js,
            subjects,
            stream,
            records,
            keys,
            staged,
        };
        queue.claim_namespace(&namespace, lake).await?;
        Ok(queue)
    }

    /// Records the lake in the namespace, or refuses a namespace of another lake.
    async fn claim_namespace(&self, namespace: &str, lake: &str) -> tarn::Result<()> {
        match self.records.create("_lake", lake.to_string().into()).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) => {
                let owner = self.records.get("_lake").await.map_err(|e| self.down(&e))?;
                let owner = owner.map(|b| String::from_utf8_lossy(&b).into_owned());
                if owner.as_deref() == Some(lake) {
                    Ok(())
                } else {
                    Err(tarn::Error::Config(format!(
                        "the NATS namespace {namespace:?} at {} is the queue of another lake ({}); \
                         give this lake its own namespace: nats://HOST:PORT/NAME",
                        self.url,
                        owner.unwrap_or_default()
                    )))
                }
            }
            Err(e) => Err(self.down(&e)),
        }
    }

    fn down(&self, e: &dyn std::fmt::Display) -> tarn::Error {
        tarn::Error::Unavailable(format!("the NATS queue at {}: {e}", self.url))
    }

    fn subject(&self, lane: &str) -> String {
        format!("{}.{}", self.subjects, hex::encode(lane.as_bytes()))
    }

    fn lane_of(&self, subject: &str) -> Option<String> {
        let hexed = subject.strip_prefix(&self.subjects)?.strip_prefix('.')?;
        String::from_utf8(hex::decode(hexed).ok()?).ok()
    }

    async fn load(&self, id: &str) -> tarn::Result<Option<(Stored, u64)>> {
        if !valid_key(id) {
            return Ok(None);
        }
        let Some(entry) = self.records.entry(id).await.map_err(|e| self.down(&e))? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let stored: Stored = serde_json::from_slice(&entry.value).map_err(|e| {
            tarn::Error::Internal(format!("request {id} in NATS is unreadable: {e}"))
        })?;
        Ok(Some((stored, entry.revision)))
    }

    /// Writes `stored` if the record is still at `revision`; `false` when another change
    /// came first.
    async fn swap(&self, stored: &Stored, revision: u64) -> tarn::Result<bool> {
        match self
            .records
            .update(&stored.id, stored.bytes()?, revision)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), kv::UpdateErrorKind::WrongLastRevision) => Ok(false),
            Err(e) => Err(self.down(&e)),
        }
    }

    /// Puts a queued request's id on its lane (again: the stream drops a copy within its
    /// duplicate window, and a later copy is skipped by `claim` once the request finished).
    async fn publish(&self, stored: &Stored) -> tarn::Result<u64> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", stored.id.as_str());
        let ack = self
            .js
            .publish_with_headers(
                self.subject(&stored.lane),
                headers,
                stored.id.clone().into(),
            )
            .await
            .map_err(|e| self.down(&e))?
            .await
            .map_err(|e| self.down(&e))?;
        Ok(ack.sequence)
    }

    /// The request an idempotency key names, published again if it is still queued (its
    /// first server may have died between storing and publishing it).
    async fn existing(&self, key_hash: &str) -> tarn::Result<Option<RequestRecord>> {
        let Some(id) = self.keys.get(key_hash).await.map_err(|e| self.down(&e))? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        match self.load(&id).await? {
            Some((stored, revision)) => {
                if stored.status() == RequestStatus::Queued {
                    let seq = self.publish(&stored).await?;
                    if stored.seq == 0 {
                        let mut s = stored.clone();
                        s.seq = seq as i64;
                        self.swap(&s, revision).await?;
                        return Ok(Some(s.record()));
                    }
                }
                Ok(Some(stored.record()))
            }
            None => Err(tarn::Error::Internal(format!(
                "idempotency key maps to request {id}, which NATS does not hold"
            ))),
        }
    }

    async fn delete_message(&self, seq: u64) {
        if seq == 0 {
            return;
        }
        if let Err(e) = self.stream.delete_message(seq).await {
            // Already gone (another server deleted it), or the server is down: a message
            // left behind is skipped and deleted by the next `claim`.
            tracing::debug!(seq, error = %e, "cannot delete a finished request's message");
        }
    }

    /// The lanes that have messages, with how many, by lane.
    async fn lane_counts(&self) -> tarn::Result<Vec<(String, usize)>> {
        let subjects: Vec<(String, usize)> = self
            .stream
            .info_with_subjects(format!("{}.>", self.subjects))
            .await
            .map_err(|e| self.down(&e))?
            .try_collect()
            .await
            .map_err(|e| self.down(&e))?;
        let mut lanes: Vec<(String, usize)> = subjects
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(s, n)| Some((self.lane_of(&s)?, n)))
            .collect();
        lanes.sort();
        Ok(lanes)
    }

    /// Every request record (the `_lake` marker aside).
    async fn all(&self) -> tarn::Result<Vec<Stored>> {
        let keys: Vec<String> = match self.records.keys().await {
            Ok(k) => k.try_collect().await.map_err(|e| self.down(&e))?,
            Err(e) => return Err(self.down(&e)),
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys.iter().filter(|k| k.as_str() != "_lake") {
            if let Some((s, _)) = self.load(k).await? {
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// `nats://HOST:PORT[/NAMESPACE]` → the server's address and the namespace.
fn parse_url(url: &str) -> tarn::Result<(String, String)> {
    let bad = |why: &str| {
        tarn::Error::InvalidInput(format!(
            "{url}: {why}; the queue is nats://HOST:PORT or nats://HOST:PORT/NAMESPACE"
        ))
    };
    let rest = url
        .strip_prefix("nats://")
        .ok_or_else(|| bad("not a nats:// URL"))?;
    let (server, namespace) = match rest.split_once('/') {
        Some((s, n)) => (s, n.trim_end_matches('/')),
        None => (rest, ""),
    };
    if server.is_empty() {
        return Err(bad("no server"));
    }
    let namespace = if namespace.is_empty() {
        "tarn"
    } else {
        namespace
    };
    if !namespace
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(bad("a namespace is letters, digits, '_' and '-'"));
    }
    Ok((format!("nats://{server}"), namespace.to_string()))
}

/// Whether `key` may be a key of a bucket (request ids are; anything a client sends is
/// checked before it is looked up).
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.' | '/'))
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[async_trait]
impl RequestQueue for NatsQueue {
    async fn enqueue(&self, request: NewRequest) -> tarn::Result<(RequestRecord, bool)> {
        if !valid_key(&request.id) {
            return Err(tarn::Error::InvalidInput(format!(
                "request id {:?} is not a valid key",
                request.id
            )));
        }
        let hashed = request.idempotency_key.as_deref().map(key_hash);
        if let Some(h) = &hashed
            && let Some(first) = self.existing(h).await?
        {
            return Ok((first, false));
        }
        let mut stored = Stored {
            seq: 0,
            id: request.id.clone(),
            idempotency_key: request.idempotency_key.clone(),
            lane: request.lane,
            kind: request.kind,
            params_json: request.params_json,
            staged_path: request.staged_path,
            status: RequestStatus::Queued.to_string(),
            attempts: 0,
            owner: None,
            leased_until: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            version: None,
            commit_id: None,
            error: None,
        };
        let revision = match self.records.create(&stored.id, stored.bytes()?).await {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) => {
                return Err(tarn::Error::Internal(format!(
                    "request {} exists already",
                    stored.id
                )));
            }
            Err(e) => return Err(self.down(&e)),
        };
        if let Some(h) = &hashed {
            match self.keys.create(h, stored.id.clone().into()).await {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) => {
                    // Another client sent the same key at the same time and came first.
                    let _ = self.records.purge(&stored.id).await;
                    return match self.existing(h).await? {
                        Some(first) => Ok((first, false)),
                        None => Err(self.down(&"an idempotency key without its request")),
                    };
                }
                Err(e) => {
                    let _ = self.records.purge(&stored.id).await;
                    return Err(self.down(&e));
                }
            }
        }
        let seq = self.publish(&stored).await?;
        stored.seq = seq as i64;
        // The sequence is the request's place in arrival order; if this write loses a race
        // (a server already took the request), the record it lost to knows the sequence too.
        if !self.swap(&stored, revision).await?
            && let Some((current, _)) = self.load(&stored.id).await?
        {
            return Ok((current.record(), true));
        }
        Ok((stored.record(), true))
    }

    async fn request(&self, id: &str) -> tarn::Result<Option<RequestRecord>> {
        Ok(self.load(id).await?.map(|(s, _)| s.record()))
    }

    async fn requests(
        &self,
        statuses: &[RequestStatus],
        limit: u64,
    ) -> tarn::Result<Vec<RequestRecord>> {
        let mut all: Vec<Stored> = self
            .all()
            .await?
            .into_iter()
            .filter(|s| statuses.is_empty() || statuses.contains(&s.status()))
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.seq)));
        Ok(all
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(Stored::record)
            .collect())
    }

    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> tarn::Result<Option<RequestRecord>> {
        let subject = self.subject(lane);
        loop {
            let message = match self
                .stream
                .direct_get_first_for_subject(subject.as_str())
                .await
            {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.down(&e)),
            };
            let id = String::from_utf8_lossy(&message.payload).into_owned();
            let Some((mut stored, revision)) = self.load(&id).await? else {
                // A request that lost its idempotency race: nothing to apply.
                self.delete_message(message.sequence).await;
                continue;
            };
            if stored.finished() {
                self.delete_message(message.sequence).await;
                continue;
            }
            let now = Utc::now();
            if stored.status() == RequestStatus::Running
                && stored.leased_until.is_some_and(|t| t > now)
            {
                return Ok(None);
            }
            stored.status = RequestStatus::Running.to_string();
            stored.owner = Some(owner.to_string());
            stored.leased_until = Some(now + lease);
            stored.attempts += 1;
            stored.started_at = Some(now);
            stored.seq = message.sequence as i64;
            return if self.swap(&stored, revision).await? {
                Ok(Some(stored.record()))
            } else {
                Ok(None)
            };
        }
    }

    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> tarn::Result<bool> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut stored, revision)) = self.load(id).await? else {
                return Ok(false);
            };
            if stored.status() != RequestStatus::Running || stored.owner.as_deref() != Some(owner) {
                return Ok(false);
            }
            stored.leased_until = Some(Utc::now() + lease);
            if self.swap(&stored, revision).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> tarn::Result<bool> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut stored, revision)) = self.load(id).await? else {
                return Ok(false);
            };
            if stored.finished() {
                return Ok(false);
            }
            if stored.staged_path.is_some() {
                self.staged
                    .put(id, bytes::Bytes::new())
                    .await
                    .map_err(|e| self.down(&e))?;
            }
            stored.status = outcome.status.to_string();
            stored.version = outcome.version;
            stored.commit_id = outcome.commit_id;
            stored.error = outcome.error.clone();
            stored.finished_at = Some(Utc::now());
            stored.owner = None;
            stored.leased_until = None;
            if self.swap(&stored, revision).await? {
                self.delete_message(u64::try_from(stored.seq).unwrap_or(0))
                    .await;
                return Ok(true);
            }
        }
        Err(self.down(&format!("request {id} keeps changing under its finish")))
    }

    async fn lanes_with_work(&self) -> tarn::Result<Vec<String>> {
        Ok(self
            .lane_counts()
            .await?
            .into_iter()
            .map(|(l, _)| l)
            .collect())
    }

    async fn depth(&self) -> tarn::Result<QueueDepth> {
        // A lane's messages are its unfinished requests in arrival order, so its first one
        // is the only one that can be running and the oldest: one read per lane, not per
        // request. A first message whose request finished is about to be deleted and is
        // not counted.
        let mut depth = QueueDepth {
            unfinished: 0,
            running: 0,
            oldest: None,
        };
        for (lane, count) in self.lane_counts().await? {
            depth.unfinished += count as u64;
            let first = match self
                .stream
                .direct_get_first_for_subject(self.subject(&lane))
                .await
            {
                Ok(m) => m,
                Err(e) if matches!(e.kind(), stream::DirectGetErrorKind::NotFound) => {
                    depth.unfinished -= count as u64;
                    continue;
                }
                Err(e) => return Err(self.down(&e)),
            };
            let id = String::from_utf8_lossy(&first.payload).into_owned();
            match self.load(&id).await? {
                Some((s, _)) if !s.finished() => {
                    if s.status() == RequestStatus::Running {
                        depth.running += 1;
                    }
                    depth.oldest = Some(depth.oldest.map_or(s.created_at, |o| o.min(s.created_at)));
                }
                _ => depth.unfinished -= 1,
            }
        }
        Ok(depth)
    }

    async fn finished_with_staged(&self, limit: u64) -> tarn::Result<Vec<RequestRecord>> {
        let ids: Vec<String> = match self.staged.keys().await {
            Ok(k) => k.try_collect().await.map_err(|e| self.down(&e))?,
            Err(e) => return Err(self.down(&e)),
        };
        let mut out = Vec::new();
        for id in ids {
            if out.len() as u64 >= limit {
                break;
            }
            match self.load(&id).await? {
                Some((s, _)) if s.finished() && s.staged_path.is_some() => out.push(s.record()),
                Some(_) => {}
                None => {
                    let _ = self.staged.purge(&id).await;
                }
            }
        }
        Ok(out)
    }

    async fn forget_staged(&self, id: &str) -> tarn::Result<()> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut stored, revision)) = self.load(id).await? else {
                break;
            };
            stored.staged_path = None;
            if self.swap(&stored, revision).await? {
                break;
            }
        }
        self.staged.purge(id).await.map_err(|e| self.down(&e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_and_a_namespace() {
        assert_eq!(
            parse_url("nats://127.0.0.1:4222").unwrap(),
            ("nats://127.0.0.1:4222".into(), "tarn".into())
        );
        assert_eq!(
            parse_url("nats://h:1/lake_2").unwrap(),
            ("nats://h:1".into(), "lake_2".into())
        );
        for bad in ["http://h:1", "nats://", "nats://h:1/a.b", "nats://h:1/a b"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("nats://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_safe_strings_are_keys() {
        assert!(valid_key("r-0123abcd"));
        for bad in ["", ".x", "x.", "a b", "a*b", "a>b", "é"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
