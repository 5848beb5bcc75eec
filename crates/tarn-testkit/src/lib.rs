//! Lakes for tests, on every backend tarn has (STYLE habit 7): the embedded default
//! (SQLite catalog, local files) and the shared one (PostgreSQL catalog, S3 storage), each in
//! a fresh place: a temporary directory, a new PostgreSQL schema, a new S3 prefix.
//!
//! The shared backend needs real servers, which `scripts/with-services` starts and
//! describes in the environment:
//! - `TARN_TEST_POSTGRES`: a PostgreSQL URL without password (the password is in
//!   `PGPASSWORD`) of a role that may `CREATE SCHEMA`;
//! - `TARN_TEST_S3_ENDPOINT`, `TARN_TEST_S3_BUCKET`, and the `AWS_*` credentials.
//!
//! Without them a shared-backend test is skipped with a message on stderr, unless
//! `TARN_TEST_REQUIRE_REMOTE=1` (set by the script and CI), where it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use tarn::{Lake, LakeConfig};

/// Where a test lake keeps its catalog and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite catalog and local files (the default of `tarn init`).
    Local,
    /// PostgreSQL catalog and S3 storage (SeaweedFS in the tests).
    Remote,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Local, Backend::Remote];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "sqlite+local",
            Backend::Remote => "postgres+s3",
        }
    }
}

/// The shared servers, as `scripts/with-services` describes them.
#[derive(Debug, Clone)]
pub struct Servers {
    /// A PostgreSQL URL without password.
    pub postgres: String,
    pub s3_endpoint: String,
    pub bucket: String,
}

/// The shared servers, or `None` when the environment names none and the test may skip.
/// Panics when `TARN_TEST_REQUIRE_REMOTE=1` and a server is missing.
pub fn servers() -> Option<Servers> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("TARN_TEST_POSTGRES"),
        var("TARN_TEST_S3_ENDPOINT"),
        var("TARN_TEST_S3_BUCKET"),
    ) {
        (Some(postgres), Some(s3_endpoint), Some(bucket)) => Some(Servers {
            postgres,
            s3_endpoint,
            bucket,
        }),
        _ if var("TARN_TEST_REQUIRE_REMOTE").as_deref() == Some("1") => panic!(
            "TARN_TEST_REQUIRE_REMOTE=1 but TARN_TEST_POSTGRES, TARN_TEST_S3_ENDPOINT or \
             TARN_TEST_S3_BUCKET is not set: run the tests through scripts/with-services"
        ),
        _ => None,
    }
}

/// A unique name for one test's schema or prefix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl Servers {
    /// Creates schema `name` (psql, from the PostgreSQL client the servers come with).
    pub fn create_schema(&self, name: &str) {
        let out = Command::new("psql")
            .arg(&self.postgres)
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE SCHEMA {name}"))
            .output()
            .expect("run psql (install the PostgreSQL client)");
        assert!(
            out.status.success(),
            "CREATE SCHEMA {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The catalog URL of schema `name` (a fresh lake per schema).
    pub fn catalog_url(&self, schema: &str) -> String {
        let sep = if self.postgres.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}options=-csearch_path%3D{schema}", self.postgres)
    }

    /// A configuration for a new lake in schema `schema` and S3 prefix `prefix`.
    pub fn config(&self, schema: &str, prefix: &str) -> LakeConfig {
        let mut config = LakeConfig {
            catalog: self.catalog_url(schema),
            storage: format!("s3://{}/{prefix}", self.bucket),
            ..LakeConfig::default()
        };
        config.s3.endpoint = Some(self.s3_endpoint.clone());
        config.s3.allow_http = Some(self.s3_endpoint.starts_with("http://"));
        config
    }
}

/// A place for one test lake: a temporary directory for its `tarn.toml` (and, locally, its
/// catalog and data), plus a fresh schema and prefix on the shared backend.
#[derive(Debug)]
pub struct LakePlace {
    pub tmp: tempfile::TempDir,
    /// The lake directory (`tmp/lake`): where `tarn.toml` goes.
    pub dir: PathBuf,
    pub backend: Backend,
    /// What `tarn init` is given: the default, or the schema's catalog and the prefix.
    pub config: LakeConfig,
}

impl LakePlace {
    /// A new place, or `None` when `backend` is the shared one and its servers are not
    /// configured (the test skips; a message says so).
    pub fn new(backend: Backend) -> Option<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("tarn-it-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("lake");
        let config = match backend {
            Backend::Local => LakeConfig::default(),
            Backend::Remote => {
                let Some(servers) = servers() else {
                    eprintln!(
                        "skipped on {}: TARN_TEST_POSTGRES / TARN_TEST_S3_* are not set \
                         (scripts/with-services sets them)",
                        backend.name()
                    );
                    return None;
                };
                let name = unique("tarn_t");
                servers.create_schema(&name);
                servers.config(&name, &name)
            }
        };
        Some(Self {
            tmp,
            dir,
            backend,
            config,
        })
    }

    /// Creates the lake (as `tarn init` does) and opens it.
    pub async fn init(&self) -> Lake {
        Lake::init_with(&self.dir, self.config.clone())
            .await
            .unwrap_or_else(|e| panic!("init a {} lake: {e}", self.backend.name()))
            .0
    }

    /// A path beside the lake directory, for inputs and outputs.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Every file of the lake's storage (data files, and the temporary files a killed
    /// local writer leaves), as paths relative to the storage root.
    pub async fn files(&self) -> BTreeSet<String> {
        let location = self
            .config
            .storage_location(&self.dir)
            .expect("storage location");
        let store = tarn_store::DataStore::open(&location, &self.config.s3_settings(), false)
            .expect("open store");
        store
            .list_files()
            .await
            .expect("list storage")
            .into_iter()
            .map(|f| f.path)
            .collect()
    }
}

/// A multi-threaded runtime like the one the CLI runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The NATS server of the tests (`TARN_TEST_NATS`, `nats://HOST:PORT`), or `None` when the
/// environment names none and the test may skip (a message on stderr). Panics when
/// `TARN_TEST_REQUIRE_REMOTE=1` and it is missing.
pub fn nats() -> Option<String> {
    match std::env::var("TARN_TEST_NATS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => Some(url),
        None if std::env::var("TARN_TEST_REQUIRE_REMOTE").as_deref() == Ok("1") => panic!(
            "TARN_TEST_REQUIRE_REMOTE=1 but TARN_TEST_NATS is not set: run the tests through \
             scripts/with-services"
        ),
        None => {
            eprintln!("skipped: TARN_TEST_NATS is not set (scripts/with-services sets it)");
            None
        }
    }
}

/// Runs the async test `f` on a fresh place of `backend` (nothing when it is skipped).
pub fn run_on<F, Fut>(backend: Backend, f: F)
where
    F: FnOnce(LakePlace) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(place) = LakePlace::new(backend) {
        runtime().block_on(f(place));
    }
}

/// Turns `async fn name(place: LakePlace)` test bodies into one test per backend:
/// `sqlite_local::name` and `postgres_s3::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $(#[test]
            fn $name() {
                $crate::run_on($crate::Backend::Local, super::$name)
            })*
        }
        mod postgres_s3 {
            $(#[test]
            fn $name() {
                $crate::run_on($crate::Backend::Remote, super::$name)
            })*
        }
    };
}
