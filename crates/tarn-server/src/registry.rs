//! The registry over HTTP (SPEC §7, §9): projects, dimensions with paged records, mappings
//! with paged rows, each component's history and dependents, as the `--json` output of the
//! matching `tarn` command (`tarn_registry::json`).
//!
//! Components are lake-wide, not datasets, so any principal that may read (a token of any
//! scope, or an anonymous request when the server allows it) may read them; the datasets a
//! project lists and the dataset dependents are only those the principal may read.

use crate::AppState;
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use tarn::registry_store::ComponentKind;
use tarn_registry::{Registry, json as forms};

/// The most records or rows one page holds.
pub const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 1_000;

fn registry(state: &AppState) -> Registry {
    Registry::new(state.lake())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default)]
    kind: Option<String>,
}

/// `GET /api/v1/registry[?kind=project|dimension|mapping]`: as `tarn registry ls --json`.
#[utoipa::path(get, path = "/api/v1/registry", params(ListQuery), responses((status = 200, description = "As `tarn registry ls --json`", body = Vec<serde_json::Value>), crate::openapi::Refusals))]
pub async fn list(
    State(state): State<AppState>,
    _principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(ComponentKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown component kind {k:?}; use project, dimension or mapping"
            ))
        })?),
    };
    let components = registry(&state).components(kind).await?;
    Ok(Json(components.iter().map(forms::component).collect()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComponentQuery {
    name: String,
    #[serde(default)]
    version: Option<u64>,
    /// Records (rows) to skip, after the filter.
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
    /// Only records whose id, name or another column contains this (case-insensitive).
    #[serde(default)]
    filter: Option<String>,
}

impl ComponentQuery {
    fn page(&self) -> (usize, usize) {
        (
            self.offset.unwrap_or(0),
            self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
        )
    }

    fn needle(&self) -> Option<String> {
        self.filter
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(str::to_lowercase)
    }
}

/// The page of `items` with `offset`/`limit`, and the paging fields that describe it.
fn paged<'a, T>(
    items: impl Iterator<Item = &'a T>,
    total: usize,
    (offset, limit): (usize, usize),
) -> (Vec<&'a T>, Value) {
    let matching: Vec<&T> = items.collect();
    let page: Vec<&T> = matching.iter().skip(offset).take(limit).copied().collect();
    let next = (offset + page.len() < matching.len()).then_some(offset + page.len());
    (
        page,
        json!({"total": total, "matching": matching.len(), "offset": offset, "next_offset": next}),
    )
}

/// `GET /api/v1/project?name=P[&version=N]`: as `tarn project show --json`.
#[utoipa::path(get, path = "/api/v1/project", params(ComponentQuery), responses((status = 200, description = "As `tarn project show --json`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn project(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ComponentQuery>,
) -> ApiResult<Json<Value>> {
    let registry = registry(&state);
    let p = registry.project(&q.name, q.version).await?;
    let registrations = registry.registrations(&q.name).await?;
    let visible = registrations
        .iter()
        .filter(|r| principal.may(Access::Read, &r.body.dataset));
    Ok(Json(forms::project(&p, visible)))
}

/// `GET /api/v1/dimension?name=D[&version=N][&filter=TEXT][&offset=&limit=]`: as `tarn
/// dimension show --json` with one page of its records (default 1,000, at most 10,000) and
/// `page: {total, matching, offset, next_offset}`.
#[utoipa::path(get, path = "/api/v1/dimension", params(ComponentQuery), responses((status = 200, description = "As `tarn dimension show --json`, one page of records and `page`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn dimension(
    State(state): State<AppState>,
    _principal: Principal,
    Query(q): Query<ComponentQuery>,
) -> ApiResult<Json<Value>> {
    let d = registry(&state).dimension(&q.name, q.version).await?;
    let needle = q.needle();
    let matches = |r: &&tarn_registry::Record| {
        needle.as_deref().is_none_or(|n| {
            r.id.to_lowercase().contains(n)
                || r.name.to_lowercase().contains(n)
                || r.extra.values().any(|v| v.to_lowercase().contains(n))
        })
    };
    let (page, paging) = paged(d.records.iter().filter(matches), d.records.len(), q.page());
    let mut v = forms::dimension(&d, page);
    v["page"] = paging;
    Ok(Json(v))
}

/// `GET /api/v1/mapping?name=M[&version=N][&filter=ID][&offset=&limit=]`: as `tarn mapping
/// show --json` with one page of its rows and `page`.
#[utoipa::path(get, path = "/api/v1/mapping", params(ComponentQuery), responses((status = 200, description = "As `tarn mapping show --json`, one page of rows and `page`", body = serde_json::Value), crate::openapi::Refusals))]
pub async fn mapping(
    State(state): State<AppState>,
    _principal: Principal,
    Query(q): Query<ComponentQuery>,
) -> ApiResult<Json<Value>> {
    let m = registry(&state).mapping(&q.name, q.version).await?;
    let needle = q.needle();
    let matches = |r: &&tarn_registry::MappingRow| {
        needle.as_deref().is_none_or(|n| {
            r.from_id.to_lowercase().contains(n) || r.to_id.to_lowercase().contains(n)
        })
    };
    let (page, paging) = paged(m.rows.iter().filter(matches), m.rows.len(), q.page());
    let mut v = forms::mapping(&m, page);
    v["page"] = paging;
    Ok(Json(v))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamedComponent {
    /// `KIND:NAME` (dependents: also `KIND:NAME:vN` and `dataset:NAME[@BRANCH][:vN]`).
    component: String,
}

/// `GET /api/v1/history?component=KIND:NAME`: as `tarn registry history --json`.
#[utoipa::path(get, path = "/api/v1/history", params(NamedComponent), responses((status = 200, description = "As `tarn registry history --json`, newest first", body = Vec<serde_json::Value>), crate::openapi::Refusals))]
pub async fn history(
    State(state): State<AppState>,
    _principal: Principal,
    Query(q): Query<NamedComponent>,
) -> ApiResult<Json<Vec<Value>>> {
    let registry = registry(&state);
    let r = tarn_registry::ComponentRef::parse(&q.component)?;
    let head = registry
        .resolve(&tarn_registry::ComponentRef { version: None, ..r })
        .await?;
    let history = registry.history(head.kind, &head.name).await?;
    Ok(Json(history.iter().map(forms::version).collect()))
}

/// `GET /api/v1/dependents?component=...`: as `tarn registry dependents --json`; a dataset
/// is asked about, and registrations (which name their dataset) listed, only within the
/// principal's scopes.
#[utoipa::path(get, path = "/api/v1/dependents", params(NamedComponent), responses((status = 200, description = "As `tarn registry dependents --json`", body = Vec<serde_json::Value>), crate::openapi::Refusals))]
pub async fn dependents(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<NamedComponent>,
) -> ApiResult<Json<Vec<Value>>> {
    if let Some(rest) = q.component.strip_prefix("dataset:") {
        let name = rest.split([':', '@']).next().unwrap_or_default();
        tarn::DatasetName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        principal.require(Access::Read, name)?;
    }
    let dependents = registry(&state).dependents_of(&q.component).await?;
    Ok(Json(
        dependents
            .iter()
            .filter(|d| match d.kind {
                // A registration is named PROJECT/DATASET (project names have no '/').
                ComponentKind::Registration => d
                    .name
                    .split_once('/')
                    .is_some_and(|(_, dataset)| principal.may(Access::Read, dataset)),
                _ => true,
            })
            .map(forms::dependent)
            .collect(),
    ))
}
