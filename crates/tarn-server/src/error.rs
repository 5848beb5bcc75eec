//! The one error type of the HTTP API (SPEC §9): `{"error": "<message>"}` with the status of
//! the contract. Client errors say what was wrong; an internal error is logged with an id
//! and answered with a generic message naming that id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn too_large(limit: u64, what: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} is over the server's limit of {limit} bytes"),
        )
    }

    /// An internal failure: the whole chain is logged under a fresh id, the client gets
    /// only the id.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..12];
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error_id = id, error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (logged as {id})"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<tarn::Error> for ApiError {
    fn from(e: tarn::Error) -> Self {
        use tarn::ErrorKind;
        let status = match e.kind() {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => return Self::internal(&e),
        };
        Self::new(status, e.to_string())
    }
}

impl From<tarn_query::QueryError> for ApiError {
    fn from(e: tarn_query::QueryError) -> Self {
        use tarn_query::QueryError;
        use tarn_query::datafusion::error::DataFusionError;
        match e {
            QueryError::Tarn(e) => e.into(),
            QueryError::DataFusion(DataFusionError::ResourcesExhausted(m)) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the query needs more memory than the server gives one query \
                     (--query-memory): {m}"
                ),
            ),
            QueryError::DataFusion(DataFusionError::Execution(m))
                if m.contains("ResourcesExhausted") =>
            {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, m)
            }
            QueryError::Internal(_) => Self::internal(&e),
            QueryError::DataFusion(
                DataFusionError::Internal(_)
                | DataFusionError::IoError(_)
                | DataFusionError::ObjectStore(_),
            ) => Self::internal(&e),
            other => Self::bad_request(other.to_string()),
        }
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl From<tarn_registry::RegistryError> for ApiError {
    fn from(e: tarn_registry::RegistryError) -> Self {
        use tarn_registry::RegistryError;
        match e {
            RegistryError::Invalid(m) => Self::bad_request(m),
            RegistryError::NotFound(m) => Self::not_found(m),
            RegistryError::Tarn(e) => e.into(),
            RegistryError::Query(e) => e.into(),
            other @ RegistryError::Io(_) => Self::internal(&other),
        }
    }
}
