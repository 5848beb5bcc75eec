//! API tokens (SPEC §9): `tarn_<id>_<secret>`, stored as the SHA-256 of the whole token and
//! found by its public id, then compared in constant time; scopes `read:PREFIX` and
//! `write:PREFIX` on `/` boundaries (`write` implies `read`; an empty prefix is the lake).

use crate::error::{ApiError, ApiResult};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tarn::{Lake, TokenRecord};

/// What a token may do under a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// One `read:PREFIX` or `write:PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub access: Access,
    pub prefix: String,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (access, prefix) = text.split_once(':').ok_or_else(|| {
            format!("scope {text:?} is not read:PREFIX or write:PREFIX (read: is the whole lake)")
        })?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                return Err(format!(
                    "scope {text:?}: unknown access {other:?}; use read:PREFIX or write:PREFIX"
                ));
            }
        };
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            tarn::DatasetName::new(prefix)
                .map_err(|e| format!("scope {text:?}: the prefix is not a dataset name: {e}"))?;
        }
        Ok(Self {
            access,
            prefix: prefix.to_string(),
        })
    }

    /// Whether this scope covers `access` to the dataset (or prefix) `name`.
    pub fn covers(&self, access: Access, name: &str) -> bool {
        self.access >= access && under(name, &self.prefix)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.access.as_str(), self.prefix)
    }
}

/// Whether `name` is `prefix` or lies under it on a `/` boundary.
fn under(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No token, on a server started with `--allow-anonymous-read`.
    Anonymous,
    Token {
        name: String,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Token { name, .. } => name,
        }
    }

    pub fn may(&self, access: Access, name: &str) -> bool {
        match self {
            Principal::Anonymous => access == Access::Read,
            Principal::Token { scopes, .. } => scopes.iter().any(|s| s.covers(access, name)),
        }
    }

    /// 403 unless this principal may `access` the dataset `name`.
    pub fn require(&self, access: Access, name: &str) -> ApiResult<()> {
        if self.may(access, name) {
            return Ok(());
        }
        let what = if name.is_empty() {
            "the whole lake"
        } else {
            name
        };
        Err(ApiError::forbidden(format!(
            "{} may not {} {what}: it needs the scope {}:{name} or a wider one",
            match self {
                Principal::Anonymous => "an anonymous request".to_string(),
                Principal::Token { name, .. } => format!("token {name:?}"),
            },
            access.as_str(),
            access.as_str()
        )))
    }
}

/// A new token: the secret to show once, and the record to store.
pub fn new_token(name: &str, scopes: &[Scope]) -> Result<(String, TokenRecord), String> {
    if name.is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control()) {
        return Err(format!(
            "token name {name:?} must be 1 to 100 characters, none of them control characters"
        ));
    }
    if scopes.is_empty() {
        return Err("a token needs at least one --scope read:PREFIX or write:PREFIX".into());
    }
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| format!("no randomness for a token: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness for a token: {e}"))?;
    let id = hex::encode(id);
    let token = format!("tarn_{id}_{}", hex::encode(secret));
    let record = TokenRecord {
        id,
        name: name.to_string(),
        secret_sha256: Sha256::digest(token.as_bytes()).to_vec(),
        scopes: scopes.iter().map(Scope::to_string).collect(),
        created_at: chrono::Utc::now(),
    };
    Ok((token, record))
}

/// The principal a presented token names, or 401.
pub async fn verify(lake: &Lake, token: &str) -> ApiResult<Principal> {
    let unknown = || ApiError::unauthorized("unknown or revoked token");
    let id = token
        .strip_prefix("tarn_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(unknown)?;
    let record = lake
        .service_store()
        .token(id)
        .await
        .map_err(|e| ApiError::from(tarn::Error::from(e)))?;
    let record = record.ok_or_else(unknown)?;
    let presented = Sha256::digest(token.as_bytes());
    if !bool::from(presented.as_slice().ct_eq(&record.secret_sha256)) {
        return Err(unknown());
    }
    let scopes = record
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .collect();
    Ok(Principal::Token {
        name: record.name,
        scopes,
    })
}

impl FromRequestParts<crate::AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION);
        let Some(header) = header else {
            if state.config().allow_anonymous_read {
                return Ok(Principal::Anonymous);
            }
            return Err(ApiError::unauthorized(
                "this server needs a token: send Authorization: Bearer <token> (tarn token create)",
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <token>")
            })?;
        verify(state.lake(), token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_their_prefix_on_slash_boundaries() {
        let read = Scope::parse("read:weather").expect("scope");
        assert!(read.covers(Access::Read, "weather"));
        assert!(read.covers(Access::Read, "weather/berlin"));
        assert!(!read.covers(Access::Read, "weatherman/x"));
        assert!(!read.covers(Access::Write, "weather/berlin"));
        let write = Scope::parse("write:").expect("scope");
        assert!(write.covers(Access::Read, "any/thing"));
        assert!(write.covers(Access::Write, "any/thing"));
        for bad in ["weather", "admin:x", "read:../x", "read:/abs"] {
            assert!(Scope::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_new_token_is_stored_as_its_hash_only() {
        let (token, record) =
            new_token("ci", &[Scope::parse("read:").expect("scope")]).expect("token");
        assert!(token.starts_with(&format!("tarn_{}_", record.id)));
        assert_eq!(token.len(), 5 + 16 + 1 + 64);
        assert_eq!(
            record.secret_sha256,
            Sha256::digest(token.as_bytes()).to_vec()
        );
        assert!(!record.id.is_empty() && !token.ends_with(&record.id));
    }
}
