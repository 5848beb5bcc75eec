//! Mutations over HTTP (SPEC §9): each is a queued request, stored durably before the 202
//! that gives its id; `GET /api/v1/requests/ID[?wait=S]` tells how it ended. A write's body
//! is staged as a file in the lake's storage (never in the queue), counted against the
//! upload limit as it arrives, and fsynced before the request is queued.

use crate::AppState;
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::events::HubEvent;
use crate::extract::{Path, Query};
use crate::queue::Mutation;
use crate::read::dataset_of;
use crate::worker::STAGING_DIR;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tarn::{NewRequest, RequestRecord, RequestStatus};

/// The longest `?wait=` a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest idempotency key.
const MAX_KEY: usize = 200;

/// A request as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    request_id: String,
    status: &'static str,
    kind: String,
    dataset: String,
    attempts: u32,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<&RequestRecord> for RequestView {
    fn from(r: &RequestRecord) -> Self {
        Self {
            request_id: r.id.clone(),
            status: r.status.as_str(),
            kind: r.kind.clone(),
            dataset: r.lane.clone(),
            attempts: r.attempts,
            created: time(r.created_at),
            finished: r.finished_at.map(time),
            version: r.version,
            commit_id: r.commit_id,
            error: r.error.clone(),
        }
    }
}

/// The client's idempotency key, scoped to who sent it (two tokens never share a request).
fn idempotency_key(headers: &HeaderMap, principal: &Principal) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(format!("{}\n{key}", principal.name())))
}

fn new_request_id() -> String {
    format!("r{}", uuid::Uuid::new_v4().simple())
}

/// Queues `mutation` (its upload already staged at `staged`) and answers 202.
async fn enqueue(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    id: String,
    mutation: Mutation,
    staged: Option<String>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let uri = dataset_of(mutation.uri(), principal, Access::Write)?;
    let key = idempotency_key(headers, principal)?;
    let params_json = serde_json::to_string(&mutation).map_err(|e| ApiError::internal(&e))?;
    let request = NewRequest {
        id,
        idempotency_key: key,
        lane: uri.dataset.to_string(),
        kind: mutation.kind().to_string(),
        params_json,
        staged_path: staged.clone(),
    };
    let queue = state.workers().queue().clone();
    let (record, created) = match queue.enqueue(request).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(path) = &staged {
                remove_staged(state, path).await;
            }
            return Err(e.into());
        }
    };
    if created {
        state.workers().wake();
    } else if let Some(path) = &staged {
        // A retry of a request that is queued already: its own upload is the one applied.
        remove_staged(state, path).await;
    }
    tracing::info!(request = %record.id, kind = %record.kind, dataset = %record.lane, created, "request queued");
    Ok((StatusCode::ACCEPTED, Json(RequestView::from(&record))))
}

/// Queues a mutation that carries no upload.
async fn queue_change(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    mutation: Mutation,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    enqueue(state, principal, headers, new_request_id(), mutation, None).await
}

async fn remove_staged(state: &AppState, path: &str) {
    if let Err(e) = crate::worker::remove_staged(state.lake(), path).await {
        tracing::warn!(path, error = %e, "cannot delete a staged upload");
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    uri: String,
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
    evolve: Option<bool>,
    /// The body's format when its Content-Type does not say.
    #[serde(default)]
    format: Option<String>,
}

/// `POST /api/v1/write?uri=U[&ordered_on=&duplicates_on=&row_group_size=&message=]`.
#[utoipa::path(post, path = "/api/v1/write", params(WriteQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), request_body(description = "The rows", content((Vec<u8> = "application/vnd.apache.parquet"), (Vec<u8> = "application/vnd.apache.arrow.stream"), (String = "text/csv"), (String = "application/x-ndjson"))), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn write(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<WriteQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    // Everything that can be refused is refused before the body is read.
    let writable = dataset_of(&q.uri, &principal, Access::Write)?;
    if !matches!(writable.reference, tarn::Ref::Live | tarn::Ref::Latest) {
        return Err(ApiError::bad_request(format!(
            "{}: writes go to the head of a branch; drop the \":{}\" part",
            q.uri, writable.reference
        )));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = match (q.format.as_deref(), content_type) {
        (Some(f), _) => f
            .parse::<tarn::input::InputFormat>()
            .map_err(ApiError::bad_request)?,
        (None, Some(ct)) => tarn::input::InputFormat::from_media_type(ct).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {ct:?} is not a format tarn writes: use \
                     application/vnd.apache.parquet, application/vnd.apache.arrow.stream, \
                     text/csv or application/x-ndjson"
                ),
            )
        })?,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a write's body needs a Content-Type: application/vnd.apache.parquet, \
                 application/vnd.apache.arrow.stream, text/csv or application/x-ndjson",
            ));
        }
    };
    if let Some(v) = &q.row_group_size {
        tarn::RowGroupTarget::parse(v)
            .map_err(|e| ApiError::bad_request(format!("row_group_size={v:?}: {e}")))?;
    }
    let limit = state.config().max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit, "the upload"));
    }
    let id = new_request_id();
    let staged = format!("{STAGING_DIR}/{id}.upload");
    let span = tracing::info_span!("upload", request = %id);
    let bytes = tracing::Instrument::instrument(stage(&state, &staged, body, limit), span).await?;
    tracing::debug!(request = %id, bytes, "upload staged");
    let mutation = Mutation::Write {
        uri: q.uri,
        format: format.extension().to_string(),
        ordered_on: q.ordered_on,
        duplicates_on: q.duplicates_on,
        row_group_size: q.row_group_size,
        max_off_target: q.max_off_target,
        message: q.message,
        evolve: q.evolve.unwrap_or(false),
    };
    enqueue(&state, &principal, &headers, id, mutation, Some(staged)).await
}

/// Streams `body` into the staged file at `path` (storage-relative), at most `limit` bytes,
/// and makes it durable. On any failure nothing is left behind.
async fn stage(state: &AppState, path: &str, body: Body, limit: u64) -> ApiResult<u64> {
    let out = stage_inner(state, path, body, limit).await;
    if out.is_err() {
        remove_staged(state, path).await;
    }
    out
}

async fn stage_inner(state: &AppState, path: &str, body: Body, limit: u64) -> ApiResult<u64> {
    let lake = state.lake();
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    let mut take = |n: usize| {
        written += n as u64;
        if written > limit {
            return Err(ApiError::too_large(limit, "the upload"));
        }
        Ok(())
    };
    let broken = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("the upload was interrupted: {e}"))
    };
    match lake.local_storage_root() {
        Some(root) => {
            use tokio::io::AsyncWriteExt;
            let file_path = root.join(path);
            let dir = file_path
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            let io = |e: std::io::Error| ApiError::internal(&e);
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            let mut file = tokio::fs::File::create(&file_path).await.map_err(io)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| broken(&e))?;
                take(chunk.len())?;
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            // The new name must survive a power loss too.
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(|e| ApiError::internal(&e))?
                .map_err(io)?;
        }
        None => {
            let store = lake.object_store();
            let upload = store
                .put_multipart(&object_store::path::Path::from(path))
                .await
                .map_err(|e| ApiError::internal(&e))?;
            let mut writer = object_store::WriteMultipart::new(upload);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| broken(&e))?;
                take(chunk.len())?;
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
                writer.put(chunk);
            }
            writer.finish().await.map_err(|e| ApiError::internal(&e))?;
        }
    }
    Ok(written)
}

type JsonBody = Result<bytes::Bytes, axum::extract::rejection::BytesRejection>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteRangeQuery {
    uri: String,
    start: String,
    end: String,
    #[serde(default)]
    message: Option<String>,
}

/// `POST /api/v1/delete-range?uri=U&start=S&end=E[&message=]`.
#[utoipa::path(post, path = "/api/v1/delete-range", params(DeleteRangeQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn delete_range(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<DeleteRangeQuery>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let mutation = Mutation::DeleteRange {
        uri: q.uri,
        start: q.start,
        end: q.end,
        message: q.message,
    };
    queue_change(&state, &principal, &headers, mutation).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MetadataBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    unset: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UriOnly {
    uri: String,
}

/// `POST /api/v1/metadata?uri=U` with `{"set": {K: V}, "unset": [K], "message"}`.
#[utoipa::path(post, path = "/api/v1/metadata", params(UriOnly, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), request_body = MetadataBody, responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn metadata(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<UriOnly>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let body: MetadataBody = crate::data::json_body(body)?;
    let mutation = Mutation::Metadata {
        uri: q.uri,
        set: body.set,
        unset: body.unset,
        message: body.message,
    };
    queue_change(&state, &principal, &headers, mutation).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompactQuery {
    uri: String,
    #[serde(default)]
    message: Option<String>,
}

/// `POST /api/v1/compact?uri=U[&message=]`.
#[utoipa::path(post, path = "/api/v1/compact", params(CompactQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn compact(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<CompactQuery>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let mutation = Mutation::Compact {
        uri: q.uri,
        message: q.message,
    };
    queue_change(&state, &principal, &headers, mutation).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    uri: String,
    name: String,
    #[serde(default)]
    force: Option<bool>,
}

/// `POST /api/v1/tag?uri=U&name=N[&force=true]`.
#[utoipa::path(post, path = "/api/v1/tag", params(NameQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn tag(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<NameQuery>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    tarn::check_tag_name(&q.name)?;
    let mutation = Mutation::Tag {
        uri: q.uri,
        name: q.name,
        force: q.force.unwrap_or(false),
    };
    queue_change(&state, &principal, &headers, mutation).await
}

/// `POST /api/v1/branch?uri=U&name=NEW`.
#[utoipa::path(post, path = "/api/v1/branch", params(NameQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn branch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<NameQuery>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    tarn::BranchName::new(&q.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mutation = Mutation::Branch {
        uri: q.uri,
        name: q.name,
    };
    queue_change(&state, &principal, &headers, mutation).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MergeQuery {
    source: String,
    target: String,
}

/// `POST /api/v1/merge?source=U@B&target=U@main`: a fast-forward of `target` to `source`.
#[utoipa::path(post, path = "/api/v1/merge", params(MergeQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key again gives the same request")), responses((status = 202, description = "Queued (or the request an Idempotency-Key names)", body = RequestView), crate::openapi::Refusals))]
pub async fn merge(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<MergeQuery>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let source = dataset_of(&q.source, &principal, Access::Read)?;
    let target = dataset_of(&q.target, &principal, Access::Write)?;
    if source.dataset != target.dataset {
        return Err(ApiError::bad_request(format!(
            "a merge is between branches of one dataset: {} and {} are two datasets",
            source.dataset, target.dataset
        )));
    }
    let mutation = Mutation::Merge {
        source: q.source,
        target: q.target,
    };
    queue_change(&state, &principal, &headers, mutation).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to wait for the request to finish (at most 60).
    #[serde(default)]
    wait: Option<f64>,
}

/// `GET /api/v1/requests/ID[?wait=S]`: the request's status, once it finished or `S`
/// seconds passed.
#[utoipa::path(get, path = "/api/v1/requests/{id}", params(("id" = String, Path, description = "The request id"), WaitQuery), responses((status = 200, description = "The request", body = RequestView), crate::openapi::Refusals))]
pub async fn request(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<RequestView>> {
    let wait = match q.wait {
        None => Duration::ZERO,
        // Clamped before the conversion, which panics past Duration's range.
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::from_secs_f64(s.min(MAX_WAIT.as_secs_f64()))
        }
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "wait={s} is not a number of seconds"
            )));
        }
    };
    let queue = state.workers().queue().clone();
    let deadline = tokio::time::Instant::now() + wait;
    let mut events = state.hub().subscribe();
    let not_found = || ApiError::not_found(format!("no request {id:?}"));
    loop {
        let record = queue.request(&id).await?.ok_or_else(not_found)?;
        principal.require(Access::Read, &record.lane)?;
        if record.status.is_finished() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(RequestView::from(&record)));
        }
        // Wake when this request finishes here, or poll now and then: another server may
        // apply it.
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_millis(500));
        loop {
            match tokio::time::timeout_at(until, events.recv()).await {
                Ok(Ok(HubEvent::Request(r))) if r.request_id == id => break,
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// queued, running, succeeded or failed (comma-separated; all when absent).
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

/// `GET /api/v1/requests[?status=queued,running][&limit=N]`: newest first, those on datasets
/// the principal may read.
#[utoipa::path(get, path = "/api/v1/requests", params(RequestsQuery), responses((status = 200, description = "Requests, newest first", body = Vec<RequestView>), crate::openapi::Refusals))]
pub async fn requests(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<RequestsQuery>,
) -> ApiResult<Json<Vec<RequestView>>> {
    let statuses = match q.status.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                RequestStatus::parse(s.trim()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown status {s:?}; use queued, running, succeeded or failed"
                    ))
                })
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let records = state.workers().queue().requests(&statuses, limit).await?;
    Ok(Json(
        records
            .iter()
            .filter(|r| principal.may(Access::Read, &r.lane))
            .map(RequestView::from)
            .collect(),
    ))
}
