//! Where a lake's data files live, and how to reach an S3 store (docs/design/0006).

use crate::error::{Result, StoreError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A storage root: a local directory or a prefix of an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StorageLocation {
    /// Parses a storage URL: `s3://bucket[/prefix]`, `file://PATH`, or a plain path
    /// (relative to `base` when relative).
    pub fn parse(value: &str, base: &Path) -> Result<Self> {
        let value = value.trim();
        if value.is_empty() {
            return Err(StoreError::InvalidInput(
                "the storage is empty: give a directory (data) or an s3://bucket/prefix URL".into(),
            ));
        }
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::InvalidInput(format!(
                    "storage {value:?}: the bucket is missing (s3://BUCKET/PREFIX)"
                )));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err(StoreError::InvalidInput(format!(
                    "storage {value:?}: a prefix may not contain . or .. segments"
                )));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = value.strip_prefix("file://") {
            return Ok(Self::Local(base.join(path)));
        }
        if let Some((scheme, _)) = value.split_once("://") {
            return Err(StoreError::InvalidInput(format!(
                "storage {value:?}: unknown scheme {scheme:?}; storage is a directory (data, \
                 file://PATH) or an S3 prefix (s3://BUCKET/PREFIX)"
            )));
        }
        Ok(Self::Local(base.join(value)))
    }
}

/// How to reach an S3-compatible store. Credentials are never here: they come from the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, and the
/// rest of the usual chain), as do defaults for the fields left `None` (`AWS_ENDPOINT`,
/// `AWS_REGION`, `AWS_ALLOW_HTTP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    /// Establishing a connection.
    pub connect_timeout: Duration,
    /// One HTTP request, including its body.
    pub request_timeout: Duration,
    /// Retries of a failed request (with back-off), within `request_timeout` in all.
    pub retries: usize,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retries: 3,
        }
    }
}
