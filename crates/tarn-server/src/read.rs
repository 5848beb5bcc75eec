//! The JSON read API (SPEC §9): datasets, info, log, tags, branches, diff. Each answer is
//! the JSON of the matching `tarn ... --json` command.

use crate::AppState;
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tarn::TarnUri;

/// The most entries one page of `/api/v1/datasets` holds.
pub const MAX_PAGE: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UriQuery {
    pub uri: String,
}

/// The dataset a URI names, checked for `access` by `principal`.
pub(crate) fn dataset_of(uri: &str, principal: &Principal, access: Access) -> ApiResult<TarnUri> {
    let parsed = TarnUri::parse_lenient(uri).map_err(|e| ApiError::bad_request(e.to_string()))?;
    principal.require(access, parsed.dataset.as_str())?;
    Ok(parsed)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DatasetsQuery {
    #[serde(default)]
    prefix: Option<String>,
    /// Entries after this dataset name (the last name of the previous page).
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// One dataset of `/api/v1/datasets`, as `tarn ls --json` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatasetEntry {
    name: String,
    version: u64,
    rows: u64,
    row_groups: u64,
    bytes: u64,
    ordered_on: String,
    timestamp: String,
}

/// `GET /api/v1/datasets?prefix=P[&after=NAME][&limit=N]`: the datasets under P that the
/// principal may read, by name, at most `limit` (default and most: 10,000) after `after`.
#[utoipa::path(get, path = "/api/v1/datasets", params(DatasetsQuery), responses((status = 200, description = "The datasets under the prefix that the token may read, by name", body = Vec<DatasetEntry>), crate::openapi::Refusals))]
pub async fn datasets(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DatasetsQuery>,
) -> ApiResult<Json<Vec<DatasetEntry>>> {
    let prefix = match q.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => {
            tarn::DatasetName::new(p).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(p)
        }
        _ => None,
    };
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let all = state.lake().datasets(prefix).await?;
    let page = all
        .iter()
        .filter(|d| q.after.as_deref().is_none_or(|a| d.name.as_str() > a))
        .filter(|d| principal.may(Access::Read, d.name.as_str()))
        .take(limit)
        .map(|d| DatasetEntry {
            name: d.name.to_string(),
            version: d.version,
            rows: d.rows,
            row_groups: d.row_groups,
            bytes: d.bytes,
            ordered_on: d.ordered_on.clone(),
            timestamp: d
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })
        .collect();
    Ok(Json(page))
}

/// `GET /api/v1/info?uri=U`: as `tarn info --json`.
#[utoipa::path(get, path = "/api/v1/info", params(UriQuery), responses((status = 200, description = "As `tarn info --json`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn info(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UriQuery>,
) -> ApiResult<Json<tarn::DatasetInfo>> {
    dataset_of(&q.uri, &principal, Access::Read)?;
    let lake = state.lake();
    let snapshot = lake.snapshot(&q.uri).await?;
    Ok(Json(snapshot.info(lake).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    uri: String,
    #[serde(default)]
    limit: Option<u64>,
}

/// `GET /api/v1/log?uri=U[&limit=N]`: as `tarn log --json`.
#[utoipa::path(get, path = "/api/v1/log", params(LogQuery), responses((status = 200, description = "As `tarn log --json`, newest first", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn log(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Vec<tarn::VersionInfo>>> {
    dataset_of(&q.uri, &principal, Access::Read)?;
    Ok(Json(state.lake().log(&q.uri, q.limit).await?))
}

/// `GET /api/v1/tags?uri=U`: the dataset's tags, by name.
#[utoipa::path(get, path = "/api/v1/tags", params(UriQuery), responses((status = 200, description = "As `tarn tags --json`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn tags(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UriQuery>,
) -> ApiResult<Json<Vec<tarn::TagInfo>>> {
    let uri = dataset_of(&q.uri, &principal, Access::Read)?;
    Ok(Json(state.lake().tags(uri.dataset.as_str()).await?))
}

/// `GET /api/v1/branches?uri=U`: the dataset's branches, `main` first.
#[utoipa::path(get, path = "/api/v1/branches", params(UriQuery), responses((status = 200, description = "As `tarn branches --json`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn branches(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UriQuery>,
) -> ApiResult<Json<Vec<tarn::BranchInfo>>> {
    let uri = dataset_of(&q.uri, &principal, Access::Read)?;
    Ok(Json(state.lake().branches(uri.dataset.as_str()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    a: String,
    b: String,
}

/// `GET /api/v1/diff?a=U&b=V`: as `tarn diff --json`.
#[utoipa::path(get, path = "/api/v1/diff", params(DiffQuery), responses((status = 200, description = "As `tarn diff --json`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn diff(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<tarn::DiffReport>> {
    dataset_of(&q.a, &principal, Access::Read)?;
    dataset_of(&q.b, &principal, Access::Read)?;
    let lake = state.lake();
    let (a, b) = (lake.snapshot(&q.a).await?, lake.snapshot(&q.b).await?);
    Ok(Json(lake.diff(&a, &b).await?))
}
