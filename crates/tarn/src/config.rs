//! Where a lake is and how it is configured (SPEC §14). `tarn init DIR` writes
//! `DIR/tarn.toml`; a lake is found by `--lake`, else `TARN_LAKE`, else the nearest
//! `tarn.toml` in the current directory or its parents. The file names the catalog and the
//! storage; nothing else in tarn knows which backends they are (docs/design/0006).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tarn_catalog::{CatalogLocation, CatalogSettings};
use tarn_store::{S3Settings, StorageLocation};

pub const CONFIG_FILE: &str = "tarn.toml";

/// The contents of `tarn.toml`. Relative paths are relative to the file's directory. Unknown
/// keys are refused, so a typo is an error rather than a silently ignored setting.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// The catalog: a SQLite file (`catalog.db`, `sqlite://PATH`) or a PostgreSQL URL
    /// (`postgres://USER@HOST:PORT/DB`; the password from `PGPASSWORD` or the URL).
    pub catalog: String,
    /// The storage root: a directory (`data`, `file://PATH`) or an S3 prefix
    /// (`s3://BUCKET/PREFIX`).
    pub storage: String,
    #[serde(default, skip_serializing_if = "S3Config::is_default")]
    pub s3: S3Config,
    #[serde(default, skip_serializing_if = "PostgresConfig::is_default")]
    pub postgres: PostgresConfig,
}

/// `[s3]`: how to reach an S3-compatible store. Every key is optional; credentials are
/// never read from here, only from the environment (`AWS_ACCESS_KEY_ID`, ...).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Establishing a connection (default 5 s), e.g. `"5s"`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// One request including retries (default 30 s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,
    /// Retries of a failed request, with back-off (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<usize>,
}

impl S3Config {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    fn settings(&self) -> S3Settings {
        let d = S3Settings::default();
        S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            allow_http: self.allow_http,
            connect_timeout: self.connect_timeout.unwrap_or(d.connect_timeout),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            retries: self.retries.unwrap_or(d.retries),
        }
    }
}

/// `[postgres]`: how a PostgreSQL catalog is used. Every key is optional.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connecting and authenticating, and waiting for a pooled connection (default 10 s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// One statement on the server (default 60 s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub statement_timeout: Option<Duration>,
    /// Connections one process keeps open (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
}

impl PostgresConfig {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            catalog: "catalog.db".into(),
            storage: "data".into(),
            s3: S3Config::default(),
            postgres: PostgresConfig::default(),
        }
    }
}

impl LakeConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parses the text of a `tarn.toml` (`path` names it in errors) and checks the catalog
    /// and storage URLs.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            Error::Config(format!(
                "{} is not a valid lake configuration: {}",
                path.display(),
                e.to_string().trim_end()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.catalog_location(dir)?;
        config.storage_location(dir)?;
        Ok(config)
    }

    /// The file's text, as `tarn init` writes it.
    pub fn to_toml(&self) -> Result<String> {
        let text = toml::to_string(self).map_err(|e| Error::Config(e.to_string()))?;
        Ok(format!("# tarn lake configuration (SPEC §14)\n{text}"))
    }

    pub fn catalog_location(&self, dir: &Path) -> Result<CatalogLocation> {
        CatalogLocation::parse(&self.catalog, dir).map_err(|e| Error::Config(e.to_string()))
    }

    pub fn storage_location(&self, dir: &Path) -> Result<StorageLocation> {
        StorageLocation::parse(&self.storage, dir).map_err(|e| Error::Config(e.to_string()))
    }

    pub fn catalog_settings(&self, durable: bool) -> CatalogSettings {
        let d = CatalogSettings::default();
        CatalogSettings {
            durable,
            connect_timeout: self.postgres.connect_timeout.unwrap_or(d.connect_timeout),
            statement_timeout: self
                .postgres
                .statement_timeout
                .unwrap_or(d.statement_timeout),
            pool_size: self.postgres.pool_size.unwrap_or(d.pool_size).max(1),
        }
    }

    pub fn s3_settings(&self) -> S3Settings {
        self.s3.settings()
    }
}

/// The lake directory to use: `explicit` (from `--lake` or `TARN_LAKE`) or the nearest
/// directory holding a `tarn.toml`, from `cwd` upwards.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(CONFIG_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::Config(
        "no lake found: pass --lake PATH, set TARN_LAKE, or run inside a lake made by `tarn init PATH`".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LakeConfig> {
        LakeConfig::parse(text, Path::new("/lake/tarn.toml"))
    }

    #[test]
    fn the_shared_deployment_of_spec_14_parses() {
        let c = parse(
            r#"
catalog = "postgres://tarn@127.0.0.1:5432/lake"
storage = "s3://bucket/prefix"
[s3]
endpoint = "http://127.0.0.1:8333"
region = "us-east-1"
allow_http = true
request_timeout = "2s"
[postgres]
connect_timeout = "1500ms"
"#,
        )
        .expect("parses");
        assert_eq!(
            c.storage_location(Path::new("/lake")).expect("storage"),
            StorageLocation::S3 {
                bucket: "bucket".into(),
                prefix: "prefix".into()
            }
        );
        let s3 = c.s3_settings();
        assert_eq!(s3.request_timeout, Duration::from_secs(2));
        assert_eq!(s3.connect_timeout, S3Settings::default().connect_timeout);
        assert_eq!(s3.allow_http, Some(true));
        let pg = c.catalog_settings(true);
        assert_eq!(pg.connect_timeout, Duration::from_millis(1500));
        // What init writes parses back to the same configuration.
        let again = parse(&c.to_toml().expect("toml")).expect("round trip");
        assert_eq!(again, c);
    }

    #[test]
    fn typos_and_unknown_schemes_are_named() {
        let cases: &[(&str, &[&str])] = &[
            (
                "catalog = \"catalog.db\"\nstorag = \"data\"\n",
                &["unknown field `storag`", "storage"],
            ),
            (
                "catalog = \"catalog.db\"\nstorage = \"data\"\n[s3]\nendpiont = \"x\"\n",
                &["unknown field `endpiont`", "endpoint"],
            ),
            (
                "catalog = \"mysql://x/y\"\nstorage = \"data\"\n",
                &["unknown scheme \"mysql\"", "postgres://"],
            ),
            (
                "catalog = \"catalog.db\"\nstorage = \"gs://b/p\"\n",
                &["unknown scheme \"gs\"", "s3://"],
            ),
            (
                "catalog = \"catalog.db\"\nstorage = \"s3://\"\n",
                &["bucket is missing"],
            ),
            (
                "catalog = \"catalog.db\"\nstorage = \"data\"\n[s3]\nrequest_timeout = \"soon\"\n",
                &["request_timeout"],
            ),
        ];
        for (text, needles) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(
                e.contains("/lake/tarn.toml") || e.contains("catalog") || e.contains("storage"),
                "{e}"
            );
            for n in *needles {
                assert!(e.contains(n), "{text:?}: {e:?} lacks {n:?}");
            }
        }
    }
}
