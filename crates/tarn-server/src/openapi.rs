//! The OpenAPI file of `tarn serve` (SPEC §9), served at `GET /api/openapi.json`,
//! generated from the handlers' own parameter and answer types (utoipa), so that it cannot
//! drift from what the server does. SPEC §9 is the contract; this file is the rest.

use crate::{data, events, metrics, mutate, read, registry};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every error answer: what was wrong, or for a 5xx `internal error (logged as ID)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    error: String,
}

/// The refusals any endpoint may give (SPEC §9's error contract).
#[allow(dead_code)] // Only its schema is used.
#[derive(IntoResponses)]
pub enum Refusals {
    #[response(status = 400, description = "Bad input: the message says what")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "No token, or an unknown one")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "The token's scopes do not cover this")]
    Forbidden(ErrorBody),
    #[response(
        status = 404,
        description = "No such dataset, version, request or component"
    )]
    NotFound(ErrorBody),
    #[response(status = 409, description = "A conflict with the lake's state")]
    Conflict(ErrorBody),
    #[response(status = 413, description = "The body is over the server's limit")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "A body in no format tarn reads")]
    UnsupportedMediaType(ErrorBody),
    #[response(
        status = 422,
        description = "A query that needs more memory than allowed"
    )]
    Unprocessable(ErrorBody),
    #[response(
        status = 500,
        description = "Internal error, logged under the id it names"
    )]
    Internal(ErrorBody),
    #[response(
        status = 503,
        description = "The catalog, the storage or the queue is down"
    )]
    Unavailable(ErrorBody),
    #[response(status = 504, description = "A query over its time limit")]
    Timeout(ErrorBody),
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token of `tarn token create NAME --scope read:P|write:P`",
                        ))
                        .build(),
                ),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tarn serve",
        description = "The HTTP API of a tarn lake: reads of immutable snapshots, data and \
                       SQL, mutations through a durable queue, notifications, the registry.",
    ),
    paths(
        read::datasets, read::info, read::log, read::tags, read::branches, read::diff,
        data::data, data::query,
        mutate::write, mutate::delete_range, mutate::metadata, mutate::compact, mutate::tag,
        mutate::branch, mutate::merge, mutate::request, mutate::requests,
        events::events,
        registry::list, registry::project, registry::dimension, registry::mapping,
        registry::history, registry::dependents,
        metrics::metrics,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken),
    security(("token" = [])),
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
