//! The queue's workers (docs/design/0009): a dispatcher starts one worker per lane (a
//! dataset) that has unfinished requests; a worker claims its lane's oldest request, applies
//! it through a lake handle whose commit carries the request's id, records the outcome,
//! tells the event hub, and deletes the staged upload. Lanes run in parallel; a lane's
//! requests run one at a time, in arrival order.
//!
//! Exactly once: a request handed out again (its server died, its lease ran out) is first
//! looked up in the catalog; if a commit carries its id it succeeded with that version and
//! is not applied again. A commit that races another server's is refused by the catalog
//! (`RequestApplied`) and resolved the same way. Tags, branches and merges make no version:
//! a retried one that finds its own effect (the tag or branch there, the merge up to date)
//! succeeds.

use crate::events::{EventHub, RequestEvent};
use crate::queue::{Mutation, RequestQueue};
use crate::{Metrics, Shutdown};
use object_store::ObjectStoreExt;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarn::{DuplicatesOn, ErrorKind, Lake, RequestOutcome, RequestRecord, RequestStatus};
use tokio::sync::Notify;

/// How long a claimed request stays leased without a renewal: after a crash, another
/// server (or this one restarted) takes it over once this has passed.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often the dispatcher looks for work that no local enqueue announced (another server's
/// requests, leases that ran out).
const SWEEP: Duration = Duration::from_millis(500);
/// Attempts of a request whose failure may pass (the catalog or the storage unavailable).
const ATTEMPTS: u32 = 5;

/// The directory staged uploads live in, under the storage root: no dataset can be there
/// (a name segment may not start with '.'), and vacuum leaves it alone (no `.parquet`).
pub const STAGING_DIR: &str = ".staging";
/// How old an upload with no stored request must be before the sweep deletes it: far
/// longer than an upload takes to be stored once received.
pub const STAGING_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Workers {
    lake: Lake,
    queue: Arc<dyn RequestQueue>,
    hub: Arc<EventHub>,
    metrics: Arc<Metrics>,
    /// This server's name in leases.
    owner: String,
    active: Mutex<HashSet<String>>,
    wake: Notify,
    idle: Notify,
}

impl Workers {
    pub fn new(
        lake: Lake,
        queue: Arc<dyn RequestQueue>,
        hub: Arc<EventHub>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            lake,
            queue,
            hub,
            metrics,
            owner: format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            active: Mutex::default(),
            wake: Notify::new(),
            idle: Notify::new(),
        })
    }

    pub fn queue(&self) -> &Arc<dyn RequestQueue> {
        &self.queue
    }

    /// A request was enqueued here: start its lane now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn active_lanes(&self) -> usize {
        self.active.lock().map_or(0, |a| a.len())
    }

    /// Runs the dispatcher until `stop`, then waits for the requests in hand to finish.
    pub async fn run(self: Arc<Self>, stop: Shutdown) {
        let mut last_gc = tokio::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if stop.is_stopped() {
                break;
            }
            match self.queue.lanes_with_work().await {
                Ok(lanes) => {
                    for lane in lanes {
                        let fresh = self
                            .active
                            .lock()
                            .map(|mut a| a.insert(lane.clone()))
                            .unwrap_or(false);
                        if fresh {
                            let me = self.clone();
                            let stop = stop.clone();
                            tokio::spawn(async move { me.lane(lane, stop).await });
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the queue cannot list its lanes"),
            }
            if last_gc.elapsed() >= Duration::from_secs(60) {
                last_gc = tokio::time::Instant::now();
                self.collect_staged().await;
            }
            tokio::select! {
                () = stop.stopped() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(SWEEP) => {}
            }
        }
        // Finish the requests in hand; no lane takes a new one once stopped.
        while self.active_lanes() > 0 {
            let idle = self.idle.notified();
            if self.active_lanes() == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), idle).await;
        }
    }

    /// Applies the lane's requests in order until it has none (or none it may take).
    async fn lane(self: Arc<Self>, lane: String, stop: Shutdown) {
        loop {
            if stop.is_stopped() {
                break;
            }
            let claimed = self.queue.claim(&lane, &self.owner, LEASE).await;
            let request = match claimed {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(lane, error = %e, "the queue cannot hand out a request");
                    break;
                }
            };
            self.process(request).await;
        }
        if let Ok(mut active) = self.active.lock() {
            active.remove(&lane);
        }
        self.idle.notify_waiters();
    }

    async fn process(&self, request: RequestRecord) {
        let span = tracing::info_span!("request", id = %request.id, kind = %request.kind, lane = %request.lane, attempt = request.attempts);
        // The lease is renewed while the request is applied.
        let renewing = {
            let (queue, id, owner) = (self.queue.clone(), request.id.clone(), self.owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    if !matches!(queue.renew(&id, &owner, LEASE).await, Ok(true)) {
                        return;
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let outcome =
            tracing::Instrument::instrument(self.apply_with_retries(&request), span.clone()).await;
        renewing.abort();
        let finished = loop {
            match self.queue.finish(&request.id, &outcome).await {
                Ok(_) => break true,
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    tracing::warn!(parent: &span, error = %e, "cannot record a request's outcome yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(parent: &span, error = %e, "cannot record a request's outcome");
                    break false;
                }
            }
        };
        let applied = started.elapsed();
        let since = (chrono::Utc::now() - request.created_at)
            .to_std()
            .unwrap_or_default();
        self.metrics
            .observe_request(&request.kind, &outcome.status.to_string(), applied, since);
        tracing::info!(parent: &span, status = %outcome.status, version = ?outcome.version,
            error = ?outcome.error, elapsed_ms = applied.as_millis() as u64, "request finished");
        // The commit's event goes out before the request's.
        if let Err(e) = self.hub.read_new().await {
            tracing::warn!(parent: &span, error = %e, "cannot read the new commit for its event");
        }
        self.hub.publish_request(RequestEvent {
            request_id: request.id.clone(),
            status: outcome.status.to_string(),
            lane: request.lane.clone(),
            version: outcome.version,
            error: outcome.error.clone(),
        });
        if finished && let Some(path) = &request.staged_path {
            self.delete_staged(&request.id, path).await;
        }
    }

    async fn apply_with_retries(&self, request: &RequestRecord) -> RequestOutcome {
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 1;
        let error = loop {
            match self.apply(request).await {
                Ok(outcome) => return outcome,
                Err(e) if e.kind() == ErrorKind::Unavailable && attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "retrying a request");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => break e,
            }
        };
        RequestOutcome {
            status: RequestStatus::Failed,
            version: None,
            commit_id: None,
            error: Some(match error.kind() {
                ErrorKind::Internal => {
                    tracing::error!(error = %error, "a request failed");
                    "internal error applying the request (logged)".to_string()
                }
                _ => error.to_string(),
            }),
        }
    }

    async fn apply(&self, request: &RequestRecord) -> tarn::Result<RequestOutcome> {
        let succeeded = |version: Option<u64>, commit_id: Option<i64>| RequestOutcome {
            status: RequestStatus::Succeeded,
            version,
            commit_id,
            error: None,
        };
        if let Some(done) = self.lake.commit_of_request(&request.id).await? {
            return Ok(succeeded(Some(done.version), Some(done.commit_id)));
        }
        let mutation: Mutation = serde_json::from_str(&request.params_json)
            .map_err(|e| tarn::Error::InvalidInput(format!("unreadable request: {e}")))?;
        let lake = self.lake.for_request(&request.id);
        let retried = request.attempts > 1;
        let applied = match &mutation {
            Mutation::Write {
                uri,
                format,
                ordered_on,
                duplicates_on,
                row_group_size,
                max_off_target,
                message,
                evolve,
            } => {
                let staged = request.staged_path.as_deref().ok_or_else(|| {
                    tarn::Error::InvalidInput("a write request without its upload".into())
                })?;
                let format: tarn::input::InputFormat =
                    format.parse().map_err(tarn::Error::InvalidInput)?;
                let input = self.local_copy(staged).await?;
                let request = tarn::WriteRequest {
                    ordered_on: ordered_on.clone(),
                    duplicates_on: duplicates_on.as_deref().map(DuplicatesOn::parse),
                    row_group_target: row_group_size
                        .as_deref()
                        .map(tarn::RowGroupTarget::parse)
                        .transpose()?,
                    max_off_target: *max_off_target,
                    message: message.clone(),
                    evolve: *evolve,
                    ..Default::default()
                };
                let path = input.path().display().to_string();
                lake.write_inputs(uri, &[path], Some(format), request)
                    .await
                    .map(|o| (o.version, o.commit_id))
            }
            Mutation::DeleteRange {
                uri,
                start,
                end,
                message,
            } => lake
                .delete_range(uri, start, end, message.clone())
                .await
                .map(|o| (o.version, o.commit_id)),
            Mutation::Metadata {
                uri,
                set,
                unset,
                message,
            } => {
                let mut request = tarn::WriteRequest::new();
                request.set_metadata = set.clone();
                request.unset_metadata = unset.clone();
                request.message = message.clone();
                lake.set_metadata(uri, request)
                    .await
                    .map(|o| (o.version, o.commit_id))
            }
            Mutation::Compact { uri, message } => lake
                .compact(uri, message.clone())
                .await
                .map(|o| (o.version, o.commit_id)),
            Mutation::Tag { uri, name, force } => match lake.tag(uri, name, *force).await {
                Ok(t) => Ok((Some(t.version), None)),
                Err(e) if retried => match self.existing_tag(uri, name).await {
                    Some(version) => Ok((Some(version), None)),
                    None => Err(e),
                },
                Err(e) => Err(e),
            },
            Mutation::Branch { uri, name } => {
                let dataset_uri = tarn::TarnUri::parse_lenient(uri)?;
                match lake.create_branch(uri, name).await {
                    Ok(b) => Ok((Some(b.head), b.created_commit)),
                    Err(e) if retried => {
                        let branches = lake.branches(dataset_uri.dataset.as_str()).await?;
                        match branches.into_iter().find(|b| b.name == *name) {
                            Some(b) => Ok((Some(b.head), b.created_commit)),
                            None => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Mutation::Merge { source, target } => lake
                .merge(source, target)
                .await
                .map(|m| (Some(m.to_version), m.commit_id)),
        };
        match applied {
            Ok((version, commit_id)) => Ok(succeeded(version, commit_id)),
            Err(e) if e.is_request_applied() => {
                match self.lake.commit_of_request(&request.id).await? {
                    Some(done) => Ok(succeeded(Some(done.version), Some(done.commit_id))),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The version a tag names, if the tag exists on the dataset of `uri`.
    async fn existing_tag(&self, uri: &str, name: &str) -> Option<u64> {
        let parsed = tarn::TarnUri::parse_lenient(uri).ok()?;
        let tags = self.lake.tags(parsed.dataset.as_str()).await.ok()?;
        tags.into_iter().find(|t| t.name == name).map(|t| t.version)
    }

    /// A local file with a staged upload's bytes: the file itself on local storage, a
    /// downloaded temporary copy on S3 (removed when dropped).
    async fn local_copy(&self, staged: &str) -> tarn::Result<StagedCopy> {
        if let Some(root) = self.lake.local_storage_root() {
            return Ok(StagedCopy::Local(root.join(staged)));
        }
        let store = self.lake.object_store();
        let location = object_store::path::Path::from(staged);
        let io = |e: std::io::Error| tarn::Error::Io {
            path: staged.to_string(),
            source: e,
        };
        let got = store
            .get(&location)
            .await
            .map_err(|e| io(std::io::Error::other(e)))?;
        let temp = std::env::temp_dir().join(format!(
            "tarn-upload-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let copy = StagedCopy::Temporary(temp.clone());
        let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
        let mut stream = got.into_stream();
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| io(std::io::Error::other(e)))?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(copy)
    }

    async fn delete_staged(&self, id: &str, path: &str) {
        match remove_staged(&self.lake, path).await {
            Ok(()) => {
                if let Err(e) = self.queue.forget_staged(id).await {
                    tracing::warn!(request = id, error = %e, "cannot record a staged upload's removal");
                }
            }
            Err(e) => {
                tracing::warn!(request = id, path, error = %e, "cannot delete a staged upload")
            }
        }
    }

    /// Deletes the staged uploads of finished requests that a crash left behind, and those
    /// of requests that were never stored (the server died between the upload and the
    /// enqueue) once older than [`STAGING_GRACE`].
    async fn collect_staged(&self) {
        match self.queue.finished_with_staged(1000).await {
            Ok(requests) => {
                for r in requests {
                    if let Some(path) = &r.staged_path {
                        self.delete_staged(&r.id, path).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list finished uploads"),
        }
        if let Err(e) = self.collect_orphaned_uploads(STAGING_GRACE).await {
            tracing::warn!(error = %e, "cannot list the staged uploads");
        }
    }

    /// Deletes uploads older than `grace` whose request the queue does not hold; how many.
    pub async fn collect_orphaned_uploads(&self, grace: Duration) -> tarn::Result<usize> {
        use futures::TryStreamExt;
        let store = self.lake.object_store();
        let prefix = object_store::path::Path::from(STAGING_DIR);
        let listed: Vec<object_store::ObjectMeta> =
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| tarn::Error::Unavailable(format!("listing {STAGING_DIR}/: {e}")))?;
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut deleted = 0;
        for meta in listed.into_iter().filter(|m| m.last_modified < cutoff) {
            let path = meta.location.to_string();
            let Some(id) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".upload"))
            else {
                continue;
            };
            if self.queue.request(id).await?.is_none() {
                match remove_staged(&self.lake, &path).await {
                    Ok(()) => {
                        tracing::info!(path, "deleted an upload whose request was never stored");
                        deleted += 1;
                    }
                    Err(e) => tracing::warn!(path, error = %e, "cannot delete a staged upload"),
                }
            }
        }
        Ok(deleted)
    }
}

/// Deletes a staged upload (`path` under the storage root); one already gone is no error.
pub(crate) async fn remove_staged(lake: &Lake, path: &str) -> Result<(), String> {
    match lake.local_storage_root() {
        Some(root) => match tokio::fs::remove_file(root.join(path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        None => match lake
            .object_store()
            .delete(&object_store::path::Path::from(path))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// See [`Workers::local_copy`].
enum StagedCopy {
    Local(PathBuf),
    Temporary(PathBuf),
}

impl StagedCopy {
    fn path(&self) -> &std::path::Path {
        match self {
            StagedCopy::Local(p) | StagedCopy::Temporary(p) => p,
        }
    }
}

impl Drop for StagedCopy {
    fn drop(&mut self) {
        if let StagedCopy::Temporary(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}
