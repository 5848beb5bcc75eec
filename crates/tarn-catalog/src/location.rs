//! Where a catalog is, and how to talk to it.

use crate::error::{CatalogError, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A catalog: a SQLite file or a PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL, as libpq takes it; a password in it is
    /// never printed.
    Postgres(String),
}

impl std::fmt::Debug for CatalogLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&crate::postgres::redact(url))
                .finish(),
        }
    }
}

impl CatalogLocation {
    /// Parses a catalog URL: `postgres://…`/`postgresql://…`, `sqlite://PATH`, or a plain
    /// path to a SQLite file (relative to `base` when relative).
    pub fn parse(value: &str, base: &Path) -> Result<Self> {
        let value = value.trim();
        if value.is_empty() {
            return Err(CatalogError::Refused(
                "the catalog is empty: give a SQLite path (catalog.db) or a postgres:// URL".into(),
            ));
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(Self::Postgres(value.to_string()));
        }
        if let Some(path) = value.strip_prefix("sqlite://") {
            return Ok(Self::Sqlite(base.join(path)));
        }
        if let Some((scheme, _)) = value.split_once("://") {
            return Err(CatalogError::Refused(format!(
                "catalog {value:?}: unknown scheme {scheme:?}; a catalog is a SQLite path \
                 (catalog.db, sqlite://PATH) or a PostgreSQL URL (postgres://USER@HOST:PORT/DB)"
            )));
        }
        Ok(Self::Sqlite(base.join(value)))
    }

    /// True for a PostgreSQL URL that holds a password (which tarn never writes to a file).
    pub fn holds_password(&self) -> bool {
        matches!(self, Self::Postgres(url) if crate::postgres::redact(url) != *url)
    }

    /// The location as it is shown to users (no password).
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(url) => crate::postgres::redact(url),
        }
    }
}

/// How a catalog is opened.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// A returned commit survives power loss (SQLite `synchronous=FULL`, PostgreSQL
    /// `synchronous_commit=on`); else it survives a process crash.
    pub durable: bool,
    /// PostgreSQL: connecting and authenticating, and waiting for a pooled connection.
    pub connect_timeout: Duration,
    /// PostgreSQL: one statement on the server.
    pub statement_timeout: Duration,
    /// PostgreSQL: connections kept open by one process.
    pub pool_size: usize,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            durable: true,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            pool_size: 8,
        }
    }
}
