//! The catalogs the suite runs on: a fresh SQLite file, or a fresh schema of the PostgreSQL
//! server named by `TARN_TEST_POSTGRES` (dropped again when the test ends). Without that
//! variable the PostgreSQL variants skip with a message, unless `TARN_TEST_REQUIRE_REMOTE=1`,
//! where they fail.
//!
//! [`backend_tests!`] turns each `async fn NAME(t: TestCatalog)` of a module into one test
//! per backend: `MODULE::sqlite::NAME` and `MODULE::postgres::NAME`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tarn_catalog::{Catalog, CatalogLocation, CatalogSettings, PostgresCatalog, SqliteCatalog};

/// One test per backend for each function named, in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::backends::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::backends::postgres().await {
                        super::$name(t).await;
                    }
                }
            )*
        }
    };
}

/// A test on PostgreSQL only, in module `postgres`, for each function named.
#[macro_export]
macro_rules! backend_tests_postgres {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::backends::postgres().await {
                        super::$name(t).await;
                    }
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Settings for tests: short timeouts (a test that cannot reach its server fails fast),
/// relaxed durability (nothing here survives a power cut anyway).
pub fn settings() -> CatalogSettings {
    CatalogSettings {
        durable: false,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(30),
        pool_size: 4,
    }
}

/// A catalog for one test, and how to open it again (as another process would).
pub struct TestCatalog {
    pub catalog: Catalog,
    place: Place,
}

enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        /// Dropped (and so the schema) when the test ends.
        _schema: Schema,
        url: String,
        backend: PostgresCatalog,
    },
}

impl TestCatalog {
    /// Another handle to the same catalog, with its own connections (its own pool).
    pub async fn open_again(&self) -> Catalog {
        let location = match &self.place {
            Place::Sqlite { path, .. } => CatalogLocation::Sqlite(path.clone()),
            Place::Postgres { url, .. } => CatalogLocation::Postgres(url.clone()),
        };
        tarn_catalog::open(&location, &settings())
            .await
            .expect("reopen the catalog")
    }

    pub fn postgres(&self) -> Option<&PostgresCatalog> {
        match &self.place {
            Place::Postgres { backend, .. } => Some(backend),
            Place::Sqlite { .. } => None,
        }
    }

    /// The PostgreSQL URL of this catalog (with its schema), if it is one.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.place {
            Place::Postgres { url, .. } => Some(url),
            Place::Sqlite { .. } => None,
        }
    }

    /// A plain connection to this catalog's schema, for what the catalog's API does not do
    /// (ANALYZE, holding a lock, reading `schema_migrations`).
    pub async fn postgres_client(&self) -> Option<tokio_postgres::Client> {
        match &self.place {
            Place::Postgres { url, .. } => Some(raw_client(url).await),
            Place::Sqlite { .. } => None,
        }
    }

    pub async fn counts(&self) -> BTreeMap<String, i64> {
        self.catalog
            .lake
            .table_counts()
            .await
            .expect("table counts")
    }
}

pub async fn open(kind: Kind) -> Option<TestCatalog> {
    match kind {
        Kind::Sqlite => Some(sqlite().await),
        Kind::Postgres => postgres().await,
    }
}

pub async fn sqlite() -> TestCatalog {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    let backend = SqliteCatalog::open(&path, false).expect("open the SQLite catalog");
    TestCatalog {
        catalog: Catalog::new(std::sync::Arc::new(backend)),
        place: Place::Sqlite { _dir: dir, path },
    }
}

/// The server's URL from `TARN_TEST_POSTGRES`, or `None` (with a message) when it is not set
/// and remote tests are not required.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TARN_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            if std::env::var("TARN_TEST_REQUIRE_REMOTE").as_deref() == Ok("1") {
                panic!(
                    "TARN_TEST_POSTGRES is not set, and TARN_TEST_REQUIRE_REMOTE=1 requires the \
                     PostgreSQL tests to run: set it to the URL of a role that may CREATE SCHEMA, \
                     e.g. postgres://postgres@127.0.0.1:55432/postgres"
                );
            }
            eprintln!("skipped: TARN_TEST_POSTGRES is not set");
            None
        }
    }
}

/// `url` with `options=-c search_path=SCHEMA` (percent-encoded) added.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A fresh schema name.
pub fn fresh_schema_name() -> String {
    format!("tarn_t_{}", uuid::Uuid::new_v4().simple())
}

/// The connection settings of `url`, with the password from `PGPASSWORD` when the URL has
/// none (as the catalog itself does).
pub fn client_config(url: &str) -> tokio_postgres::Config {
    let mut config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("parse the test server URL: {e}"));
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    config
}

pub async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = client_config(url)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to the test server: {e:?}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema created for one test and dropped (best effort) when it ends.
pub struct Schema {
    pub name: String,
    admin_url: String,
}

impl Schema {
    pub async fn create(admin_url: &str) -> Self {
        let name = fresh_schema_name();
        raw_client(admin_url)
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create the test schema");
        Self {
            name,
            admin_url: admin_url.to_string(),
        }
    }

    pub fn url(&self) -> String {
        with_search_path(&self.admin_url, &self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Its own thread and runtime: a drop may run inside the test's runtime, which must
        // not be blocked on itself.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, connection) = client_config(&url)
                    .connect(tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}

pub async fn postgres() -> Option<TestCatalog> {
    let admin = postgres_admin_url()?;
    let schema = Schema::create(&admin).await;
    let url = schema.url();
    let backend = PostgresCatalog::connect(&url, &settings())
        .await
        .unwrap_or_else(|e| panic!("connect to the PostgreSQL catalog: {e}"));
    Some(TestCatalog {
        catalog: Catalog::new(std::sync::Arc::new(backend.clone())),
        place: Place::Postgres {
            _schema: schema,
            url,
            backend,
        },
    })
}
