//! Rows over HTTP (SPEC §9): `GET /api/v1/data` streams the rows of a snapshot and range,
//! as `tarn read` gives them, and `POST /api/v1/query` streams the result of one SQL
//! statement. Both answer in Parquet, Arrow IPC, CSV or JSON lines, in bounded memory.
//!
//! A version's rows never change, so a response names them with an `ETag` (the dataset,
//! branch, version, commit, range, columns and format) and, when the URI pins a version, is
//! cacheable forever; a branch head's response is revalidated with `If-None-Match`.

use crate::AppState;
use crate::auth::{Access, Principal};
use crate::encode::{self, Format};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::read::dataset_of;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tarn::{ReadRequest, Ref};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    uri: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    /// Comma-separated column names.
    #[serde(default)]
    columns: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// Whether a URI's ref names rows that can never change: a version number, or a time that
/// is already past (commit times never go backwards, so no later commit can land before it).
fn pins_rows(reference: &Ref) -> bool {
    let now = chrono::Utc::now();
    match reference {
        Ref::Version(_) => true,
        Ref::Timestamp(t) => *t < now,
        Ref::Date(d) => d
            .succ_opt()
            .and_then(|n| n.and_hms_opt(0, 0, 0))
            .is_some_and(|end| end.and_utc() < now),
        _ => false,
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `GET /api/v1/data?uri=U[&start=&end=&columns=a,b][&format=parquet|arrow|csv|jsonl]`.
#[utoipa::path(get, path = "/api/v1/data", params(DataQuery), responses((status = 200, description = "The rows of `tarn read`, streamed; `Tarn-Version` names the version, `ETag` and `Cache-Control` say whether it can change", content(("application/vnd.apache.parquet"), ("application/vnd.apache.arrow.stream"), ("text/csv"), ("application/x-ndjson"))), (status = 304, description = "Not modified (If-None-Match)"), crate::openapi::Refusals))]
pub async fn data(
    State(state): State<AppState>,
    principal: Principal,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<DataQuery>,
) -> ApiResult<Response> {
    let uri = dataset_of(&q.uri, &principal, Access::Read)?;
    let format = Format::parse(q.format.as_deref().unwrap_or("parquet"))?;
    let lake = state.lake();
    let snapshot = lake.snapshot(&q.uri).await?;
    let columns = q.columns.as_deref().map(|c| {
        c.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    });
    let request = ReadRequest::parse(&snapshot, q.start.as_deref(), q.end.as_deref(), columns)?;
    let schema = lake.read_schema(&snapshot, &request)?;
    let identity = format!(
        "{}\n{}\n{}\n{}\n{:?}\n{:?}\n{:?}\n{}",
        snapshot.name(),
        snapshot.branch_name(),
        snapshot.version(),
        snapshot.commit_id(),
        request.start,
        request.end,
        request.columns,
        format.as_str()
    );
    let digest = hex::encode(&Sha256::digest(identity.as_bytes())[..12]);
    let etag = format!("\"v{}-{digest}\"", snapshot.version());
    let cache = if pins_rows(&uri.reference) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::ETAG, header_value(&etag));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response_headers.insert(
        "tarn-version",
        header_value(&format!(
            "tarn://{}@{}:v{}",
            snapshot.name(),
            snapshot.branch_name(),
            snapshot.version()
        )),
    );
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }
    if method == Method::HEAD {
        return Ok((StatusCode::OK, response_headers).into_response());
    }
    let span =
        tracing::info_span!("read", dataset = %snapshot.name(), version = snapshot.version());
    let batches =
        tracing::Instrument::instrument(lake.read_stream(&snapshot, &request), span.clone())
            .await?;
    let body = {
        let _enter = span.enter();
        encode::body(format, schema, batches)?
    };
    Ok((StatusCode::OK, response_headers, body).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct QueryBody {
    sql: String,
    #[serde(default)]
    params: Vec<serde_json::Value>,
    #[serde(default)]
    format: Option<String>,
}

/// `POST /api/v1/query` with `{"sql", "params", "format"}`: the result streamed (Arrow IPC
/// by default). SQL may read any dataset, so it needs read access to the whole lake.
///
/// The query holds at most the server's per-query memory (`--query-memory`; more fails
/// with 422) and runs at most `--query-timeout`: expiry before the first batch is a 504,
/// after it ends the body early. A client that disconnects drops the response body, which
/// drops the query's stream and cancels its tasks.
#[utoipa::path(post, path = "/api/v1/query", request_body = QueryBody, responses((status = 200, description = "The result, streamed (Arrow IPC by default)", content(("application/vnd.apache.arrow.stream"), ("application/vnd.apache.parquet"), ("text/csv"), ("application/x-ndjson"))), crate::openapi::Refusals))]
pub async fn query(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    principal.require(Access::Read, "")?;
    let q: QueryBody = json_body(body)?;
    let format = Format::parse(q.format.as_deref().unwrap_or("arrow"))?;
    let params = tarn_query::params_from_json(q.params)
        .map_err(|e| ApiError::bad_request(format!("params: {e}")))?;
    let config = state.config().clone();
    let deadline = tokio::time::Instant::now() + config.query_timeout;
    let timeout = || {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the query ran longer than the server allows ({:?}, --query-timeout)",
                config.query_timeout
            ),
        )
    };
    let span = tracing::info_span!("query", sql = %q.sql);
    let planned = tracing::Instrument::instrument(
        async {
            let session = state
                .engine()
                .session_with_memory_limit(None, config.query_memory_bytes)
                .await?;
            let df = session.sql(&q.sql, params).await?;
            let schema = df.schema().inner().clone();
            let stream = df
                .execute_stream()
                .await
                .map_err(tarn_query::QueryError::from)?;
            Ok::<_, ApiError>((schema, stream))
        },
        span.clone(),
    );
    let (schema, mut stream) = tokio::time::timeout_at(deadline, planned)
        .await
        .map_err(|_| timeout())??;
    // The first batch decides between an error status and a streamed 200.
    let first = tokio::time::timeout_at(deadline, stream.next())
        .await
        .map_err(|_| timeout())?;
    let first = match first {
        Some(Err(e)) => return Err(tarn_query::QueryError::from(e).into()),
        other => other,
    };
    let rest = futures::stream::iter(first).chain(stream);
    let limited = futures::stream::unfold(
        (rest.boxed(), false),
        move |(mut stream, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => Some((item.map_err(|e| e.to_string()), (stream, false))),
                Ok(None) => None,
                Err(_) => Some((
                    Err("the query ran longer than the server allows (--query-timeout)".into()),
                    (stream, true),
                )),
            }
        },
    );
    let body = {
        let _enter = span.enter();
        encode::body::<String>(format, schema, limited.boxed())?
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        Body::new(body),
    )
        .into_response())
}

/// A JSON body (whatever its Content-Type says), with the JSON limit's 413 and a 400 that
/// says what does not parse.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<T> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the JSON body is over the server's limit (--max-json-bytes)",
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))
}
