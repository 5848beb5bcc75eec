//! The PostgreSQL catalog (docs/design/0006-backends.md): the shared catalog of a lake that
//! many machines use at once. tokio-postgres connections in a deadpool pool; every write is
//! one READ COMMITTED transaction that first locks the single row of `lake_clock`, which
//! serialises the lake's writers across processes and machines as SQLite's `BEGIN
//! IMMEDIATE` does, and hands out commit ids in the order commits become visible. Reads take
//! a pooled connection and no lock.
//!
//! This module owns connecting (settings, timeouts, the schema check), the mapping of driver
//! errors to [`CatalogError`], and [`Session`], through which every statement goes (counted,
//! cached, bounded in time). The SQL lives in `datasets`, `branches` and `registry`.

mod branches;
mod datasets;
pub use datasets::DATASETS_UNDER_PREFIX;
pub mod migrations;
mod registry;
mod service;

use crate::error::{CatalogError, Result};
use crate::location::CatalogSettings;
use crate::model::*;
use crate::{CollectionStore, DatasetReader, DatasetWriter, LakeStore, RegistryStore, Retention};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tarn_core::{BranchName, DatasetName, KeySchema};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

/// A catalog in a PostgreSQL database (one schema of it), shared by every machine of the
/// lake. Cheap to clone: clones share the pool and the statement counter.
#[derive(Clone)]
pub struct PostgresCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    describe: String,
    /// Where connections go, for messages (`HOST:PORT`).
    target: String,
    connect_timeout: Duration,
    statement_timeout: Duration,
    pool_size: usize,
    /// Waits for the server: each statement (including `BEGIN`, `COMMIT` and prepares that
    /// missed the cache), except that statements sent together in one pipeline count once;
    /// for benchmarks of the round trips a call costs.
    round_trips: AtomicU64,
}

impl std::fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCatalog")
            .field("catalog", &self.inner.describe)
            .field("pool_size", &self.inner.pool_size)
            .finish()
    }
}

/// The server's clock in microseconds since the epoch, in SQL. Commit times come from the
/// server rather than from each machine, so that machines whose clocks differ still stamp
/// the lake's commits from one clock.
const NOW_MICROS: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// The lock every write transaction takes first (docs/design/0006): the one row of
/// `lake_clock`. Calls that make a lake-wide commit take the same row lock with
/// [`NEW_COMMIT`] instead.
const LOCK_CLOCK: &str = "SELECT last_commit FROM lake_clock WHERE id = 1 FOR UPDATE";

/// Takes the lake's next commit id and time under the clock row's lock, and records the
/// commit. Under READ COMMITTED an `UPDATE` that waited for the lock re-reads the row as the
/// previous holder committed it, so the id is always the previous one plus one and the time
/// never goes backwards. It must be a statement of its own: later statements get a fresh
/// snapshot that sees everything committed before the lock was granted, which a statement
/// that started before the wait would not.
const NEW_COMMIT: &str = "WITH clock AS (\
     UPDATE lake_clock SET last_commit = last_commit + 1, \
     last_ts = greatest(last_ts, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) \
     WHERE id = 1 RETURNING last_commit, last_ts) \
     INSERT INTO commits (id, ts_micros) SELECT last_commit, last_ts FROM clock \
     RETURNING id, ts_micros";

pub(crate) fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// A tokio-postgres error with the server's own message, detail and hint (the driver's
/// `Display` says only "db error").
#[derive(Debug)]
struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
                if let Some(detail) = db.detail() {
                    write!(f, "; {detail}")?;
                }
                if let Some(hint) = db.hint() {
                    write!(f, "; hint: {hint}")?;
                }
                Ok(())
            }
            None => f.write_str(&chain(&self.0)),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// Whether the server refused or dropped the session rather than the statement: the
/// catalog is unavailable (and nothing of an open transaction was kept).
fn is_connection_state(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("28") // invalid authorization
        || c.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        || *code == SqlState::INVALID_CATALOG_NAME
        || *code == SqlState::TOO_MANY_CONNECTIONS
}

/// Errors of statements. The catalog's name is filled in by [`CatalogError::in_catalog`].
impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if *code == SqlState::QUERY_CANCELED => CatalogError::Unavailable {
                catalog: String::new(),
                reason: format!(
                    "a statement ran past the statement timeout (another writer may hold the \
                     lake's clock lock, or the server is overloaded): {}",
                    PgError(e)
                ),
            },
            Some(code) if is_connection_state(code) => CatalogError::Unavailable {
                catalog: String::new(),
                reason: PgError(e).to_string(),
            },
            Some(_) => CatalogError::database("", PgError(e)),
            None if e.is_closed() || io_kind(&e).is_some() => CatalogError::Unavailable {
                catalog: String::new(),
                reason: format!("the connection to the server was lost: {}", chain(&e)),
            },
            None => CatalogError::database("", PgError(e)),
        }
    }
}

/// Whether `e` is a violation of the unique constraint or primary key `constraint`.
pub(crate) fn is_unique_violation(e: &CatalogError, constraint: &str) -> bool {
    let CatalogError::Database {
        source: Some(source),
        ..
    } = e
    else {
        return false;
    };
    source
        .downcast_ref::<PgError>()
        .and_then(|pg| pg.0.as_db_error())
        .is_some_and(|db| {
            *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
        })
}

/// `url` without its password (neither `user:PASSWORD@` nor a `password=` parameter), for
/// messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `HOST:PORT` of the first host the configuration names.
fn target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => match config.get_hostaddrs().first() {
            Some(addr) => addr.to_string(),
            None => "localhost".to_string(),
        },
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// `USER@HOST:PORT/DB`, as libpq defaults them (the user is the OS user when not given, the
/// database the user's name).
fn describe(config: &tokio_postgres::Config) -> String {
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    format!("PostgreSQL catalog {user}@{}/{db}", target(config))
}

/// Why connecting failed, in words a user can act on.
fn connect_reason(e: &tokio_postgres::Error, target: &str, timeout: Duration) -> String {
    if let Some(db) = e.as_db_error() {
        let advice = match db.code() {
            c if *c == SqlState::INVALID_PASSWORD => {
                "; check the password (in the catalog URL or in PGPASSWORD)"
            }
            c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                "; the server's pg_hba.conf does not let this user in from here"
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => {
                "; create it (createdb) or fix the database name in the catalog URL"
            }
            c if *c == SqlState::TOO_MANY_CONNECTIONS => {
                "; lower [postgres] pool_size or raise the server's max_connections"
            }
            _ => "",
        };
        return format!("{}{advice}", db.message());
    }
    let text = chain(e);
    if text.contains("password missing") {
        return "the server asks for a password and none was given: put it in the catalog URL \
                (postgres://USER:PASSWORD@HOST/DB) or in PGPASSWORD"
            .to_string();
    }
    match io_kind(e) {
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "connection refused by {target}: is PostgreSQL running there, listening on that port?"
        ),
        Some(std::io::ErrorKind::TimedOut) => {
            format!("timed out after {timeout:?} connecting to {target}")
        }
        _ => format!("connecting to {target}: {text}"),
    }
}

/// Appends ` -c name=value` settings to the session options: the server applies them when
/// the session starts, so they cost no statement.
fn with_settings(options: Option<&str>, settings: &[(&str, String)]) -> String {
    let mut out = options.unwrap_or("").trim().to_string();
    for (name, value) in settings {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("-c {name}={value}"));
    }
    out
}

fn millis(d: Duration) -> String {
    // 0 would turn the server's timeout off; the smallest bound is 1 ms.
    format!("{}", d.as_millis().clamp(1, i32::MAX as u128))
}

/// `ident` as a quoted SQL identifier.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl PostgresCatalog {
    /// Connects to the catalog at `url`, checks that its schema exists, and applies pending
    /// migrations.
    ///
    /// - Bounded: connecting and authenticating take at most `settings.connect_timeout`
    ///   (per attempt of the pool, and once more for the whole first connection); a catalog
    ///   that cannot be reached, refuses the user or has no such database is
    ///   [`CatalogError::Unavailable`] naming it, never a hang.
    /// - Every session gets `statement_timeout = settings.statement_timeout`, an
    ///   `idle_in_transaction_session_timeout` of the same length (a writer that vanished
    ///   mid-transaction releases the clock lock), and `synchronous_commit = on` when
    ///   `settings.durable`, else `off` (a returned commit then survives a crash of tarn, not
    ///   of the server). These follow any `options` of the URL, so tarn's settings win.
    /// - The tables live in the first schema of the session's `search_path` (the URL's
    ///   `options=-c search_path=SCHEMA`, or the server's default); it must exist.
    /// - The password is the URL's, else `PGPASSWORD`'s.
    pub async fn connect(url: &str, settings: &CatalogSettings) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            CatalogError::Refused(format!(
                "catalog {}: not a valid PostgreSQL URL ({}); write it as \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options=...]",
                redact(url),
                chain(&e)
            ))
        })?;
        let describe = describe(&config);
        let target = target(&config);
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(CatalogError::Refused(format!(
                "catalog {describe}: sslmode=require, but tarn does not speak TLS to \
                 PostgreSQL; reach the server over a private network or a tunnel and leave \
                 sslmode out of the URL"
            )));
        }
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        let options = with_settings(
            config.get_options(),
            &[
                ("statement_timeout", millis(settings.statement_timeout)),
                (
                    "idle_in_transaction_session_timeout",
                    millis(settings.statement_timeout),
                ),
                (
                    "synchronous_commit",
                    if settings.durable { "on" } else { "off" }.to_string(),
                ),
            ],
        );
        config.options(options);
        config.connect_timeout(settings.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("tarn");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A closed connection is noticed by the driver; a statement on a connection
                // that died silently fails and is a definite failure (no COMMIT was sent).
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(settings.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            // The connection used last goes out first: calls one after another reuse one
            // connection and its prepared statements, rather than rotating through the pool
            // and preparing every statement once per connection.
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| CatalogError::Task(format!("{describe}: cannot build the pool: {e}")))?;
        let catalog = Self {
            inner: Arc::new(Inner {
                pool,
                describe: describe.clone(),
                target,
                connect_timeout: settings.connect_timeout,
                statement_timeout: settings.statement_timeout,
                pool_size: settings.pool_size.max(1),
                round_trips: AtomicU64::new(0),
            }),
        };
        // Connect once now, so that a wrong host, port, password or database fails here and
        // not at the first read; the pool's create timeout bounds it, and this one too in
        // case name resolution does not honour it.
        let first = tokio::time::timeout(
            settings.connect_timeout + Duration::from_millis(500),
            catalog.session(),
        )
        .await
        .map_err(|_| CatalogError::Unavailable {
            catalog: describe.clone(),
            reason: format!(
                "timed out after {:?} connecting to {}",
                settings.connect_timeout, catalog.inner.target
            ),
        })?;
        let mut session = first?;
        let migrated = migrations::migrate(&mut session, &describe, &redact(url)).await;
        session.settle(migrated).await?;
        Ok(catalog)
    }

    /// Round trips to the server so far by this catalog and its clones (each `BEGIN`,
    /// statement, `COMMIT` or `ROLLBACK`, and each prepare that missed the statement cache;
    /// statements pipelined together count once), for benchmarks.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// A pooled connection, or [`CatalogError::Unavailable`] when none comes within the
    /// connect timeout.
    async fn session(&self) -> Result<Session> {
        let inner = &self.inner;
        match inner.pool.get().await {
            Ok(object) => Ok(Session {
                object: Some(object),
                catalog: self.inner.clone(),
                in_transaction: false,
                broken: false,
            }),
            Err(e) => Err(CatalogError::Unavailable {
                catalog: inner.describe.clone(),
                reason: match e {
                    PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => format!(
                        "all {} connections of the pool stayed busy for {:?}; raise [postgres] \
                         pool_size or connect_timeout",
                        inner.pool_size, inner.connect_timeout
                    ),
                    PoolError::Timeout(_) => format!(
                        "timed out after {:?} connecting to {}",
                        inner.connect_timeout, inner.target
                    ),
                    PoolError::Backend(e) => {
                        connect_reason(&e, &inner.target, inner.connect_timeout)
                    }
                    other => other.to_string(),
                },
            }),
        }
    }

    /// The plan PostgreSQL chooses for `sql` (`EXPLAIN`, one line per row): for tests and for
    /// checking by hand which index a lookup uses.
    pub async fn query_plan(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<String>> {
        let mut session = self.session().await?;
        let out = async {
            let rows = session
                .query_uncached(&format!("EXPLAIN {sql}"), params)
                .await?;
            rows.iter()
                .map(|r| Ok(r.try_get::<_, String>(0)?))
                .collect::<Result<Vec<_>>>()
        }
        .await;
        session.settle(out).await
    }

    /// The plan of the statement [`DatasetReader::row_groups`] runs for these arguments.
    pub async fn row_groups_query_plan(
        &self,
        branch_id: i64,
        version: u64,
        range: &RowGroupRange,
    ) -> Result<Vec<String>> {
        let (sql, params) = datasets::row_groups_statement(branch_id, version, range);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        self.query_plan(&sql, &refs).await
    }

    /// The plan of the statement [`RegistryStore::dependents`] runs, at one target version
    /// or at any.
    pub async fn dependents_query_plan(&self, any_version: bool) -> Result<Vec<String>> {
        if any_version {
            self.query_plan(registry::DEPENDENTS_ANY_VERSION, &[&"dimension", &"county"])
                .await
        } else {
            self.query_plan(
                registry::DEPENDENTS_AT_VERSION,
                &[&"dimension", &"county", &1i64],
            )
            .await
        }
    }

    /// Runs a read on a pooled connection.
    async fn read<T>(&self, f: impl AsyncFnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut session = self.session().await?;
        let out = f(&mut session).await;
        session.settle(out).await
    }
}

/// One pooled connection in use. Every statement goes through it: it counts round trips,
/// prepares through the connection's statement cache, and bounds each statement in time.
///
/// A transaction is `begin` … `commit`; [`Session::settle`] rolls back one left open by an
/// error. A session dropped in the middle of a transaction (its future cancelled), or whose
/// connection failed or timed out, is taken out of the pool and closed rather than reused:
/// the server then rolls back whatever was open.
pub(crate) struct Session {
    object: Option<Object>,
    catalog: Arc<Inner>,
    in_transaction: bool,
    broken: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if (self.in_transaction || self.broken)
            && let Some(object) = self.object.take()
        {
            drop(Object::take(object));
        }
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

impl Session {
    fn client(&self) -> Result<&deadpool_postgres::ClientWrapper> {
        self.object
            .as_deref()
            .ok_or_else(|| CatalogError::Task("catalog session used after release".into()))
    }

    fn count(&self) {
        self.catalog.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// How long the client waits for one statement: the server's statement timeout cancels
    /// it first, with a clear error; this bound covers a server or network that stopped
    /// answering altogether.
    fn deadline(&self) -> Duration {
        self.catalog.statement_timeout + self.catalog.connect_timeout
    }

    async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        let client = self.client()?;
        let cache = client.statement_cache.clone();
        let before = cache.size();
        let prepared = {
            let fut = client.prepare_cached(sql);
            tokio::time::timeout(self.deadline(), fut).await
        };
        // A hit costs nothing; a miss (or a failure) was a round trip.
        if cache.size() != before || !matches!(prepared, Ok(Ok(_))) {
            self.count();
        }
        self.finish(prepared, "a prepare")
    }

    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.prepare(sql).await?;
        self.count();
        let client = self.client()?;
        let fut = client.query(&statement, params);
        // The future borrows the client; its result does not.
        let deadline = self.deadline();
        let out = tokio::time::timeout(deadline, fut).await;
        self.finish(out, "a query")
    }

    pub(crate) async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params).await?;
        if rows.len() > 1 {
            return Err(CatalogError::Corrupt(format!(
                "expected at most one row, got {}: {sql}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    pub(crate) async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| CatalogError::Corrupt(format!("expected one row, got none: {sql}")))
    }

    pub(crate) async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let statement = self.prepare(sql).await?;
        self.count();
        let client = self.client()?;
        let fut = client.execute(&statement, params);
        let deadline = self.deadline();
        let out = tokio::time::timeout(deadline, fut).await;
        self.finish(out, "a statement")
    }

    /// A statement prepared for this call only (EXPLAIN, DDL), not kept in the cache.
    async fn query_uncached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        // An unnamed prepare, then the execution.
        self.count();
        self.count();
        let client = self.client()?;
        let fut = client.query(sql, params);
        let deadline = self.deadline();
        let out = tokio::time::timeout(deadline, fut).await;
        self.finish(out, "a query")
    }

    /// Runs `sql` (one or more statements, no parameters) with the simple protocol.
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<()> {
        self.count();
        let client = self.client()?;
        let fut = client.batch_execute(sql);
        let deadline = self.deadline();
        let out = tokio::time::timeout(deadline, fut).await;
        self.finish(out, "a statement")
    }

    fn finish<T>(
        &mut self,
        out: std::result::Result<
            std::result::Result<T, tokio_postgres::Error>,
            tokio::time::error::Elapsed,
        >,
        what: &str,
    ) -> Result<T> {
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.as_db_error().is_none() {
                    self.broken = true;
                }
                Err(e.into())
            }
            Err(_) => {
                self.broken = true;
                Err(CatalogError::Unavailable {
                    catalog: String::new(),
                    reason: format!(
                        "the server did not answer {what} within {:?}",
                        self.deadline()
                    ),
                })
            }
        }
    }

    /// Starts a write transaction (READ COMMITTED, the server's default).
    pub(crate) async fn begin(&mut self) -> Result<()> {
        self.in_transaction = true;
        self.batch("BEGIN").await
    }

    /// Starts a write transaction that takes the clock lock without making a commit.
    pub(crate) async fn begin_locked(&mut self) -> Result<()> {
        self.begin().await?;
        self.query_one(LOCK_CLOCK, &[]).await?;
        Ok(())
    }

    /// Starts a write transaction that makes a lake-wide commit: the clock lock, the next
    /// commit id and its time.
    pub(crate) async fn begin_commit(&mut self) -> Result<(i64, i64)> {
        self.begin().await?;
        let row = self.query_opt(NEW_COMMIT, &[]).await?.ok_or_else(|| {
            CatalogError::Corrupt("the lake_clock row is missing; the catalog is damaged".into())
        })?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Starts a write transaction that makes a lake-wide commit and runs `sql` in it, in one
    /// round trip: `BEGIN`, [`NEW_COMMIT`] and `sql` go out together (a pipeline) and the
    /// server runs them in order, so `sql` starts, and takes its snapshot, only once the
    /// clock lock is held: it sees every commit made before. Returns the commit id, its time
    /// and the rows of `sql`.
    pub(crate) async fn begin_commit_with(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(i64, i64, Vec<Row>)> {
        let clock = self.prepare(NEW_COMMIT).await?;
        let statement = self.prepare(sql).await?;
        self.in_transaction = true;
        self.count();
        let client = self.client()?;
        let fut = async {
            let (begin, clock, rows) = tokio::join!(
                client.batch_execute("BEGIN"),
                client.query_opt(&clock, &[]),
                client.query(&statement, params),
            );
            // The first failure is the cause: the statements after it fail only because the
            // transaction aborted.
            begin?;
            let clock = clock?;
            Ok((clock, rows?))
        };
        let deadline = self.deadline();
        let out = tokio::time::timeout(deadline, fut).await;
        let (clock, rows) = self.finish(out, "the start of a commit")?;
        let clock = clock.ok_or_else(|| {
            CatalogError::Corrupt("the lake_clock row is missing; the catalog is damaged".into())
        })?;
        Ok((clock.try_get(0)?, clock.try_get(1)?, rows))
    }

    /// Commits the open transaction. An error the server sends back is a definite failure
    /// (it rolled back); no answer (a lost connection, a timeout) is
    /// [`CatalogError::UnknownOutcome`]: the transaction may have committed.
    pub(crate) async fn commit(&mut self) -> Result<()> {
        self.count();
        let deadline = self.catalog.statement_timeout;
        let client = self.client()?;
        let fut = client.batch_execute("COMMIT");
        let out = tokio::time::timeout(deadline, fut).await;
        self.in_transaction = false;
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.code().is_some_and(|c| !is_connection_state(c)) => Err(e.into()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(CatalogError::UnknownOutcome {
                    catalog: String::new(),
                    reason: format!(
                        "the connection failed after COMMIT was sent: {}",
                        PgError(e)
                    ),
                })
            }
            Err(_) => {
                self.broken = true;
                Err(CatalogError::UnknownOutcome {
                    catalog: String::new(),
                    reason: format!("no answer to COMMIT within {deadline:?}"),
                })
            }
        }
    }

    /// Rolls back the open transaction (a dry run, or a refusal found inside it).
    pub(crate) async fn rollback(&mut self) -> Result<()> {
        self.in_transaction = false;
        let out = self.batch("ROLLBACK").await;
        if out.is_err() {
            self.broken = true;
        }
        out
    }

    /// Ends a call: rolls back a transaction an error left open, names the catalog in the
    /// error, and returns the connection to the pool unless it broke.
    pub(crate) async fn settle<T>(mut self, out: Result<T>) -> Result<T> {
        if self.in_transaction && !self.broken {
            // Best effort: if the rollback fails the connection is dropped, which rolls
            // back on the server too.
            let _ = self.rollback().await;
        }
        let describe = self.catalog.describe.clone();
        out.map_err(|e| e.in_catalog(&describe))
    }
}

pub(crate) fn u64_at(row: &Row, i: usize) -> Result<u64> {
    Ok(row.try_get::<_, i64>(i)? as u64)
}

pub(crate) fn time_at(row: &Row, i: usize) -> Result<DateTime<Utc>> {
    Ok(micros_to_time(row.try_get(i)?))
}

#[async_trait]
impl DatasetReader for PostgresCatalog {
    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetRecord>> {
        let name = name.clone();
        self.read(async move |s| datasets::dataset(s, name).await)
            .await
    }

    async fn branch(&self, dataset_id: i64, name: &BranchName) -> Result<Option<BranchRecord>> {
        self.read(async move |s| datasets::load_branch(s, dataset_id, name.as_str()).await)
            .await
    }

    async fn branch_by_id(&self, branch_id: i64) -> Result<Option<BranchRecord>> {
        self.read(async move |s| datasets::load_branch_by_id(s, branch_id).await)
            .await
    }

    async fn branches(&self, dataset_id: i64) -> Result<Vec<BranchRecord>> {
        self.read(async move |s| datasets::branches(s, dataset_id).await)
            .await
    }

    async fn version(&self, branch_id: i64, version: u64) -> Result<Option<VersionRecord>> {
        self.read(async move |s| datasets::load_version(s, branch_id, version).await)
            .await
    }

    async fn version_at_commit(&self, branch_id: i64, commit_id: i64) -> Result<Option<u64>> {
        self.read(async move |s| datasets::version_at_commit(s, branch_id, commit_id).await)
            .await
    }

    async fn commit_at_time(&self, micros: i64) -> Result<Option<i64>> {
        self.read(async move |s| {
            // Times never decrease with the id: one backwards step on the time index.
            let row = s
                .query_opt(
                    "SELECT id FROM commits WHERE ts_micros <= $1 \
                     ORDER BY ts_micros DESC, id DESC LIMIT 1",
                    &[&micros],
                )
                .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    async fn last_commit(&self) -> Result<i64> {
        self.read(async |s| {
            let row = s
                .query_one("SELECT coalesce(max(id), 0)::bigint FROM commits", &[])
                .await?;
            Ok(row.try_get(0)?)
        })
        .await
    }

    async fn versions(&self, branch_id: i64, limit: Option<u64>) -> Result<Vec<VersionRecord>> {
        self.read(async move |s| datasets::versions(s, branch_id, limit).await)
            .await
    }

    async fn row_groups(
        &self,
        branch_id: i64,
        version: u64,
        range: RowGroupRange,
    ) -> Result<Vec<RowGroupRecord>> {
        self.read(async move |s| datasets::row_groups(s, branch_id, version, &range).await)
            .await
    }

    async fn datasets(&self, prefix: Option<String>) -> Result<Vec<DatasetSummary>> {
        self.read(async move |s| datasets::datasets(s, prefix.as_deref()).await)
            .await
    }

    async fn tag(&self, dataset_id: i64, name: &str) -> Result<Option<TagRecord>> {
        self.read(async move |s| branches::load_tag(s, dataset_id, name).await)
            .await
    }

    async fn tags(&self, dataset_id: i64) -> Result<Vec<TagRecord>> {
        self.read(async move |s| branches::tags(s, dataset_id).await)
            .await
    }
}

#[async_trait]
impl DatasetWriter for PostgresCatalog {
    /// The commit primitive in one transaction of six statements for an append (`BEGIN`,
    /// the clock, the lookup, the file with its row groups and lifetimes, the version with
    /// the head move, `COMMIT`), one more when it removes row groups. When the answer to
    /// `COMMIT` is lost, it asks once on a new connection whether its file was recorded with
    /// its commit id: if so the commit landed and its outcome is returned; otherwise the
    /// result is [`CatalogError::UnknownOutcome`].
    async fn commit(&self, request: CommitRequest) -> Result<CommitOutcome> {
        let mut session = self.session().await?;
        let mut pending = None;
        let out = datasets::commit(&mut session, &request, &mut pending).await;
        let out = session.settle(out).await;
        match out {
            Err(CatalogError::UnknownOutcome { catalog, reason }) => {
                match (&request.new_file, pending) {
                    (Some(file), Some(pending)) => {
                        let landed = self
                            .read(async |s| datasets::landed(s, &file.path, &pending).await)
                            .await;
                        match landed {
                            Ok(true) => Ok(pending.outcome),
                            _ => Err(CatalogError::UnknownOutcome { catalog, reason }),
                        }
                    }
                    _ => Err(CatalogError::UnknownOutcome { catalog, reason }),
                }
            }
            other => other,
        }
    }

    async fn create_tag(
        &self,
        dataset_id: i64,
        name: &str,
        branch_id: i64,
        version: u64,
        force: bool,
    ) -> Result<TagRecord> {
        let mut session = self.session().await?;
        let out =
            branches::create_tag(&mut session, dataset_id, name, branch_id, version, force).await;
        session.settle(out).await
    }

    async fn delete_tag(&self, dataset_id: i64, name: &str) -> Result<bool> {
        let mut session = self.session().await?;
        let out = branches::delete_tag(&mut session, dataset_id, name).await;
        session.settle(out).await
    }

    async fn create_branch(
        &self,
        dataset_id: i64,
        from: i64,
        version: u64,
        name: &BranchName,
    ) -> Result<BranchRecord> {
        let mut session = self.session().await?;
        let out = branches::create_branch(&mut session, dataset_id, from, version, name).await;
        session.settle(out).await
    }

    async fn delete_branch(&self, dataset_id: i64, name: &BranchName) -> Result<()> {
        let mut session = self.session().await?;
        let out = branches::delete_branch(&mut session, dataset_id, name).await;
        session.settle(out).await
    }

    async fn fast_forward(
        &self,
        dataset_id: i64,
        source: &BranchName,
        target: &BranchName,
    ) -> Result<MergeOutcome> {
        let mut session = self.session().await?;
        let out = branches::fast_forward(&mut session, dataset_id, source, target).await;
        session.settle(out).await
    }
}

#[async_trait]
impl Retention for PostgresCatalog {
    async fn referenced_files(&self) -> Result<Vec<String>> {
        self.read(async |s| {
            s.query("SELECT path FROM files", &[])
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
        })
        .await
    }

    /// As [`Retention::expire`] says, in one transaction under the clock lock; a dry run
    /// makes the same changes and rolls them back.
    async fn expire(&self, policy: RetentionPolicy, dry_run: bool) -> Result<ExpireOutcome> {
        let mut session = self.session().await?;
        let out = datasets::expire(&mut session, &policy, dry_run).await;
        session.settle(out).await
    }
}

fn collection_from_row(r: &Row) -> Result<CollectionRecord> {
    let schema_json: String = r.try_get(1)?;
    let schema: KeySchema =
        serde_json::from_str(&schema_json).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    Ok(CollectionRecord {
        id: r.try_get(0)?,
        schema,
        created_at: time_at(r, 2)?,
    })
}

async fn create_collection_in(s: &mut Session, schema: &KeySchema) -> Result<CollectionRecord> {
    s.begin_locked().await?;
    let name = schema.collection().as_str().to_string();
    let existing = s
        .query_opt(
            "SELECT name FROM collections WHERE name = $1 \
             OR starts_with($1, name || '/') OR starts_with(name, $1 || '/') \
             ORDER BY name = $1 DESC, name LIMIT 1",
            &[&name],
        )
        .await?;
    if let Some(row) = existing {
        let existing: String = row.try_get(0)?;
        return Err(if existing == name {
            CatalogError::CollectionExists(name)
        } else {
            CatalogError::CollectionOverlap { name, existing }
        });
    }
    let schema_json =
        serde_json::to_string(schema).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    let inserted = s
        .query_one(
            &format!(
                "INSERT INTO collections (name, schema_json, created_micros) \
                 VALUES ($1, $2, {NOW_MICROS}) RETURNING id, created_micros"
            ),
            &[&name, &schema_json],
        )
        .await;
    let row = match inserted {
        Err(e) if is_unique_violation(&e, "collections_name_key") => {
            return Err(CatalogError::CollectionExists(name));
        }
        other => other?,
    };
    s.commit().await?;
    Ok(CollectionRecord {
        id: row.try_get(0)?,
        schema: schema.clone(),
        created_at: time_at(&row, 1)?,
    })
}

#[async_trait]
impl CollectionStore for PostgresCatalog {
    async fn create_collection(&self, schema: &KeySchema) -> Result<CollectionRecord> {
        let mut session = self.session().await?;
        let out = create_collection_in(&mut session, schema).await;
        session.settle(out).await
    }

    async fn collection(&self, name: &DatasetName) -> Result<Option<CollectionRecord>> {
        self.read(async move |s| {
            s.query_opt(
                "SELECT id, schema_json, created_micros FROM collections WHERE name = $1",
                &[&name.as_str()],
            )
            .await?
            .map(|r| collection_from_row(&r))
            .transpose()
        })
        .await
    }

    async fn collections(&self) -> Result<Vec<CollectionRecord>> {
        self.read(async |s| {
            s.query(
                "SELECT id, schema_json, created_micros FROM collections ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(collection_from_row)
            .collect()
        })
        .await
    }
}

#[async_trait]
impl RegistryStore for PostgresCatalog {
    async fn put_component_version(&self, v: NewComponentVersion) -> Result<ComponentVersion> {
        registry::check_shape(&v)?;
        let mut session = self.session().await?;
        let out = registry::put_version(&mut session, v).await;
        session.settle(out).await
    }

    async fn component(&self, kind: ComponentKind, name: &str) -> Result<Option<ComponentRecord>> {
        self.read(async move |s| registry::load_component(s, kind, name).await)
            .await
    }

    async fn components(&self, kind: Option<ComponentKind>) -> Result<Vec<ComponentRecord>> {
        self.read(async move |s| registry::components(s, kind).await)
            .await
    }

    async fn component_version(
        &self,
        kind: ComponentKind,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<ComponentVersion>> {
        self.read(async move |s| registry::component_version(s, kind, name, version).await)
            .await
    }

    async fn component_history(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<Vec<ComponentVersion>> {
        self.read(async move |s| registry::history(s, kind, name).await)
            .await
    }

    async fn dimension_records(
        &self,
        component_id: i64,
        version: u64,
    ) -> Result<Vec<DimensionRecordRow>> {
        self.read(async move |s| registry::dimension_records(s, component_id, version).await)
            .await
    }

    async fn mapping_rows(&self, component_id: i64, version: u64) -> Result<Vec<MappingRow>> {
        self.read(async move |s| registry::mapping_rows(s, component_id, version).await)
            .await
    }

    async fn dependencies(&self, component_id: i64, version: u64) -> Result<Vec<DependencyTarget>> {
        self.read(async move |s| registry::dependencies(s, component_id, version).await)
            .await
    }

    async fn dependents(
        &self,
        target_kind: &str,
        target_name: &str,
        target_version: Option<u64>,
    ) -> Result<Vec<Dependent>> {
        self.read(async move |s| {
            registry::dependents(s, target_kind, target_name, target_version).await
        })
        .await
    }
}

async fn load_lake(s: &mut Session) -> Result<Option<LakeRecord>> {
    s.query_opt("SELECT storage, created_micros FROM lake WHERE id = 1", &[])
        .await?
        .map(|r| {
            Ok(LakeRecord {
                storage: r.try_get(0)?,
                created_at: time_at(&r, 1)?,
            })
        })
        .transpose()
}

async fn claim_lake_in(s: &mut Session, storage: &str) -> Result<LakeRecord> {
    s.begin_locked().await?;
    if let Some(lake) = load_lake(s).await? {
        return crate::model::check_claim(lake, storage);
    }
    let row = s
        .query_one(
            &format!(
                "INSERT INTO lake (id, storage, created_micros) VALUES (1, $1, {NOW_MICROS}) \
                 RETURNING created_micros"
            ),
            &[&storage],
        )
        .await?;
    s.commit().await?;
    Ok(LakeRecord {
        storage: storage.to_string(),
        created_at: time_at(&row, 0)?,
    })
}

#[async_trait]
impl LakeStore for PostgresCatalog {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn round_trips(&self) -> Option<u64> {
        Some(PostgresCatalog::round_trips(self))
    }

    async fn lake(&self) -> Result<Option<LakeRecord>> {
        self.read(async |s| load_lake(s).await).await
    }

    /// As [`LakeStore::claim_lake`] says; the clock lock makes the first claim exclusive
    /// across machines.
    async fn claim_lake(&self, storage: &str) -> Result<LakeRecord> {
        let mut session = self.session().await?;
        let out = claim_lake_in(&mut session, storage).await;
        session.settle(out).await
    }

    /// Every count in one statement.
    async fn table_counts(&self) -> Result<BTreeMap<String, i64>> {
        let sql = format!(
            "SELECT {}",
            crate::model::TABLES
                .iter()
                .map(|t| format!("(SELECT count(*) FROM {t})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.read(async move |s| {
            let row = s.query_one(&sql, &[]).await?;
            crate::model::TABLES
                .iter()
                .enumerate()
                .map(|(i, t)| Ok((t.to_string(), row.try_get::<_, i64>(i)?)))
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_passwords_only() {
        for (url, expected) in [
            (
                "postgres://tarn:s3cret@db:5432/lake",
                "postgres://tarn@db:5432/lake",
            ),
            ("postgres://tarn@db/lake", "postgres://tarn@db/lake"),
            ("postgresql://db/lake", "postgresql://db/lake"),
            ("postgres://a:p%40ss@h/d", "postgres://a@h/d"),
            (
                "postgres://u@h/d?password=x&options=-c%20search_path%3Ds",
                "postgres://u@h/d?options=-c%20search_path%3Ds",
            ),
            ("postgres://u@h/d?password=x", "postgres://u@h/d"),
            (
                "postgres://u:pw@h?sslmode=disable",
                "postgres://u@h?sslmode=disable",
            ),
        ] {
            assert_eq!(redact(url), expected, "{url}");
        }
    }

    #[test]
    fn describe_names_user_host_port_and_database() {
        let config = tokio_postgres::Config::from_str("postgres://tarn:pw@127.0.0.1:5433/lake")
            .expect("url");
        assert_eq!(
            describe(&config),
            "PostgreSQL catalog tarn@127.0.0.1:5433/lake"
        );
        let config = tokio_postgres::Config::from_str("postgres://tarn@db").expect("url");
        assert_eq!(describe(&config), "PostgreSQL catalog tarn@db:5432/tarn");
    }

    #[test]
    fn settings_follow_the_url_options() {
        assert_eq!(
            with_settings(
                Some("-c search_path=s"),
                &[("statement_timeout", "5000".into())]
            ),
            "-c search_path=s -c statement_timeout=5000"
        );
        assert_eq!(
            with_settings(None, &[("synchronous_commit", "off".into())]),
            "-c synchronous_commit=off"
        );
    }
}
