//! The embedded SQLite catalog. Several processes share the file through WAL mode, with
//! `BEGIN IMMEDIATE` for write transactions (a deferred transaction that later upgrades to a
//! write fails with SQLITE_BUSY without waiting) and a busy timeout so a second writer waits
//! its turn. In one process, writes go through one writer connection and reads through a
//! small pool of read-only connections, so a commit waiting on another process's lock never
//! stalls reads (docs/design/0006-backends.md). Every call runs on a blocking thread.

mod branches;
pub mod migrations;
mod registry;
mod service;

pub use registry::dependents_query_plan;

use crate::error::{CatalogError, Result};
use crate::model::*;
use crate::{CollectionStore, DatasetReader, DatasetWriter, LakeStore, RegistryStore, Retention};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName, KeySchema};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    /// The connection of every write transaction, opened by the first write (a read-only
    /// command opens one connection, not two).
    writer: Arc<Mutex<Option<Connection>>>,
    /// Idle read-only connections; a read takes one (or opens one) and gives it back.
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    durable: bool,
}

/// Idle reader connections kept per process; more are opened while more reads run at once.
const IDLE_READERS: usize = 8;

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                CatalogError::Unavailable {
                    catalog: String::new(),
                    reason: format!(
                        "another process held its write lock for longer than the busy timeout \
                         ({} s): {e}",
                        BUSY_TIMEOUT.as_secs()
                    ),
                }
            }
            _ => CatalogError::database("", e),
        }
    }
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn to_sql(v: &SqlScalar) -> Value {
    match v {
        SqlScalar::Integer(i) => Value::Integer(*i),
        SqlScalar::Real(f) => Value::Real(*f),
        SqlScalar::Text(s) => Value::Text(s.clone()),
    }
}

fn opt_to_sql(v: &Option<SqlScalar>) -> Value {
    v.as_ref().map_or(Value::Null, to_sql)
}

fn from_sql(v: ValueRef<'_>) -> Result<Option<SqlScalar>> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(SqlScalar::Integer(i)),
        ValueRef::Real(f) => Some(SqlScalar::Real(f)),
        ValueRef::Text(t) => Some(SqlScalar::Text(
            String::from_utf8(t.to_vec()).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
        )),
        ValueRef::Blob(_) => return Err(CatalogError::Corrupt("binary min/max value".into())),
    })
}

fn required(v: Option<SqlScalar>) -> Result<SqlScalar> {
    v.ok_or_else(|| CatalogError::Corrupt("row group without min/max".into()))
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog at `path` and applies pending migrations.
    /// `durable` selects `synchronous=FULL` (a returned commit survives power loss) rather
    /// than `NORMAL` (it survives a process crash).
    pub fn open(path: impl AsRef<Path>, durable: bool) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let describe = describe(&path);
        let opened = (|| {
            let mut conn = connect(&path, durable)?;
            migrate(&mut conn, &path)?;
            // The connection that checked the schema becomes the first reader.
            conn.pragma_update(None, "query_only", true)?;
            Ok(conn)
        })();
        let conn = opened.map_err(|e: CatalogError| e.in_catalog(&describe))?;
        Ok(Self {
            writer: Arc::default(),
            readers: Arc::new(Mutex::new(vec![conn])),
            path,
            durable,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer connection on a blocking thread.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.writer.clone();
        let (path, durable) = (self.path.clone(), self.durable);
        let describe = self.describe();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| CatalogError::Task("catalog connection poisoned".into()))?;
            let conn = match &mut *guard {
                Some(conn) => conn,
                empty => {
                    let conn = connect(&path, durable)?;
                    conn.wal_hook(Some(note_wal_frames));
                    empty.insert(conn)
                }
            };
            WAL_FRAMES.set(0);
            let out = f(conn);
            if WAL_FRAMES.take() >= CHECKPOINT_FRAMES {
                truncate_wal(conn);
            }
            out
        })
        .await
        .map_err(|e| CatalogError::Task(e.to_string()))?
        .map_err(|e| e.in_catalog(&describe))
    }

    /// Runs `f` with a reader connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let (path, durable) = (self.path.clone(), self.durable);
        let describe = self.describe();
        tokio::task::spawn_blocking(move || {
            let idle = readers.lock().ok().and_then(|mut r| r.pop());
            let mut conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = connect(&path, durable)?;
                    conn.pragma_update(None, "query_only", true)?;
                    conn
                }
            };
            let out = f(&mut conn);
            if let Ok(mut idle) = readers.lock()
                && idle.len() < IDLE_READERS
            {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| CatalogError::Task(e.to_string()))?
        .map_err(|e| e.in_catalog(&describe))
    }
}

fn describe(path: &Path) -> String {
    format!("SQLite catalog {}", path.display())
}

/// WAL frames after which a commit checkpoints the WAL into the database and truncates it
/// (1 MiB of 4 KiB pages, about 16 appends).
///
/// SQLite's own automatic checkpoint cannot keep the WAL short across processes: a `tarn`
/// command closes without checkpointing (see [`connect`]), the next process rebuilds the
/// WAL index from the file and so no longer knows which frames were already copied. Its
/// writer can then never restart the WAL from the beginning: the file grew by every commit
/// (26 MB after 400 appends), each process start read all of it, and each commit copied all
/// of it into the database again. A truncating checkpoint empties the file, so the next
/// process starts from a short WAL whatever the previous one did.
const CHECKPOINT_FRAMES: i32 = 256;

thread_local! {
    /// Frames in the WAL after the last commit on this thread (set by [`note_wal_frames`]).
    static WAL_FRAMES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The writer's WAL hook (it replaces SQLite's automatic checkpoint): remembers the WAL's
/// length for [`SqliteCatalog::write`], which checkpoints once the commit is done.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Copies the WAL into the database and truncates it, without waiting: if a reader (of this
/// or another process) still reads older frames, the checkpoint copies what it can and the
/// next commit past [`CHECKPOINT_FRAMES`] tries again. The commit itself is already durable
/// in the WAL, so a failed checkpoint loses nothing.
fn truncate_wal(conn: &Connection) {
    let outcome = conn.busy_timeout(Duration::ZERO).and_then(|()| {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
    });
    match outcome {
        Ok(0) => {}
        Ok(_) => tracing::debug!("WAL checkpoint deferred: readers hold older frames"),
        Err(e) => tracing::warn!("WAL checkpoint failed (the commit is durable): {e}"),
    }
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        tracing::warn!("cannot restore the catalog's busy timeout: {e}");
    }
}

/// A connection with tarn's settings.
fn connect(path: &Path, durable: bool) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 32 MiB of page cache (the default is 2 MiB): a catalog with a long history keeps
    // its indexes in memory across the lookups of one process.
    conn.pragma_update(None, "cache_size", -32_768)?;
    // The last connection of a process does not checkpoint the WAL into the database and
    // delete it when it closes: a `tarn` command would otherwise pay three fsyncs at exit
    // (WAL, database, directory) and one at the next start (the new WAL's directory). The
    // WAL keeps every commit durably (its frames are fsynced at commit); the writer's own
    // checkpoint bounds it (see CHECKPOINT_FRAMES).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = migrations::MIGRATIONS.last().map_or(0, |(v, _)| *v);
    // Fast path, read-only: an up-to-date catalog opens without a write transaction (whose
    // commit would cost an fsync on every process start).
    let applied: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap_or(None);
    if applied == Some(known) {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_micros INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > known {
        return Err(CatalogError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    for (version, sql) in migrations::MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_micros) VALUES (?1, ?2)",
            params![version, now_micros()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

const VERSION_COLUMNS: &str = "v.branch_id, v.version, v.commit_id, c.ts_micros, v.operation, v.message, \
    v.rows, v.row_groups, v.bytes, v.min_value, v.max_value, v.schema_json, v.options_json, v.metadata_json, v.expired";

fn version_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let metadata_json: String = r.get(13)?;
    let scalar = |i: usize| -> rusqlite::Result<Option<SqlScalar>> {
        from_sql(r.get_ref(i)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
        })
    };
    Ok(VersionRecord {
        branch_id: r.get(0)?,
        version: r.get::<_, i64>(1)? as u64,
        commit_id: r.get(2)?,
        timestamp: micros_to_time(r.get(3)?),
        operation: r.get(4)?,
        message: r.get(5)?,
        rows: r.get::<_, i64>(6)? as u64,
        row_groups: r.get::<_, i64>(7)? as u64,
        bytes: r.get::<_, i64>(8)? as u64,
        min: scalar(9)?,
        max: scalar(10)?,
        schema_json: r.get(11)?,
        options_json: r.get(12)?,
        metadata: serde_json::from_str(&metadata_json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, Box::new(e))
        })?,
        expired: r.get::<_, i64>(14)? != 0,
    })
}

const BRANCH_COLUMNS: &str =
    "id, dataset_id, name, head_version, parent_branch_id, fork_version, created_commit";

fn branch_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(BranchRecord, String)> {
    Ok((
        BranchRecord {
            id: r.get(0)?,
            dataset_id: r.get(1)?,
            name: BranchName::main(),
            head: r.get::<_, i64>(3)? as u64,
            parent_branch_id: r.get(4)?,
            fork_version: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
            created_commit: r.get(6)?,
        },
        r.get::<_, String>(2)?,
    ))
}

fn with_name((record, name): (BranchRecord, String)) -> Result<BranchRecord> {
    Ok(BranchRecord {
        name: BranchName::new(name)?,
        ..record
    })
}

fn named(row: Option<(BranchRecord, String)>) -> Result<Option<BranchRecord>> {
    row.map(with_name).transpose()
}

fn load_branch(conn: &Connection, dataset_id: i64, name: &str) -> Result<Option<BranchRecord>> {
    named(
        conn.prepare_cached(&format!(
            "SELECT {BRANCH_COLUMNS} FROM branches WHERE dataset_id = ?1 AND name = ?2"
        ))?
        .query_row(params![dataset_id, name], branch_from_row)
        .optional()?,
    )
}

fn load_branch_by_id(conn: &Connection, id: i64) -> Result<Option<BranchRecord>> {
    named(
        conn.prepare_cached(&format!(
            "SELECT {BRANCH_COLUMNS} FROM branches WHERE id = ?1"
        ))?
        .query_row([id], branch_from_row)
        .optional()?,
    )
}

fn existing_branch(conn: &Connection, id: i64) -> Result<BranchRecord> {
    load_branch_by_id(conn, id)?
        .ok_or_else(|| CatalogError::Corrupt(format!("branch id {id} does not exist")))
}

/// The branch that holds `version` of branch `branch_id`: the branch itself for its own
/// versions, else the parent (recursively) for versions up to the fork.
fn holder(conn: &Connection, branch_id: i64, version: u64) -> Result<i64> {
    let mut branch = existing_branch(conn, branch_id)?;
    loop {
        match (branch.parent_branch_id, branch.fork_version) {
            (Some(parent), Some(fork)) if version <= fork => {
                branch = existing_branch(conn, parent)?;
            }
            _ => return Ok(branch.id),
        }
    }
}

fn load_version(conn: &Connection, branch_id: i64, version: u64) -> Result<Option<VersionRecord>> {
    let holder = holder(conn, branch_id, version)?;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions v JOIN commits c ON c.id = v.commit_id \
             WHERE v.branch_id = ?1 AND v.version = ?2"
        ))?
        .query_row(params![holder, version as i64], version_from_row)
        .optional()?)
}

/// A new lake-wide commit id, at a time never before the previous commit's.
fn new_commit(tx: &rusqlite::Transaction<'_>) -> Result<(i64, i64)> {
    let last: Option<i64> = tx
        .query_row(
            "SELECT ts_micros FROM commits ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let now = now_micros().max(last.unwrap_or(i64::MIN));
    tx.execute("INSERT INTO commits (ts_micros) VALUES (?1)", [now])?;
    Ok((tx.last_insert_rowid(), now))
}

/// Records that commit `commit_id` applies `request` (SQL shared with PostgreSQL: the
/// transaction holds the lake's write lock, so the check and the update cannot race).
fn name_request(tx: &rusqlite::Transaction<'_>, commit_id: i64, request: &str) -> Result<()> {
    let named = tx.execute(
        "UPDATE commits SET request_id = ?1 WHERE id = ?2 \
         AND NOT EXISTS (SELECT 1 FROM commits WHERE request_id = ?1)",
        params![request, commit_id],
    )?;
    if named == 0 {
        return Err(CatalogError::RequestApplied(request.to_string()));
    }
    Ok(())
}

fn commit_in(conn: &mut Connection, req: CommitRequest) -> Result<CommitOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let conflict = |actual: u64| CatalogError::Conflict {
        dataset: req.dataset.to_string(),
        branch: req.branch.to_string(),
        expected: req.base_version,
        actual,
    };
    let dataset_id: Option<i64> = tx
        .query_row(
            "SELECT id FROM datasets WHERE name = ?1",
            [req.dataset.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let (commit_id, now) = new_commit(&tx)?;
    if let Some(request) = &req.request_id {
        name_request(&tx, commit_id, request)?;
    }
    let (dataset_id, branch) = match dataset_id {
        Some(id) => match load_branch(&tx, id, req.branch.as_str())? {
            Some(b) => (id, b),
            None => {
                return Err(CatalogError::BranchNotFound {
                    dataset: req.dataset.to_string(),
                    branch: req.branch.to_string(),
                });
            }
        },
        None if req.base_version == 0 && req.branch.as_str() == BranchName::MAIN => {
            tx.execute(
                "INSERT INTO datasets (name, ordered_on, created_micros) VALUES (?1, ?2, ?3)",
                params![req.dataset.as_str(), req.ordered_on, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO branches (dataset_id, name, head_version, created_commit) VALUES (?1, ?2, 0, ?3)",
                params![id, BranchName::MAIN, commit_id],
            )?;
            let branch = load_branch(&tx, id, BranchName::MAIN)?
                .ok_or_else(|| CatalogError::Corrupt("new branch vanished".into()))?;
            (id, branch)
        }
        None => return Err(CatalogError::DatasetNotFound(req.dataset.to_string())),
    };
    if branch.head != req.base_version {
        return Err(conflict(branch.head));
    }
    let new_version = req.base_version + 1;

    // Totals of the new version: the base's, minus what is removed, plus what is added.
    let (mut rows, mut row_groups, mut bytes): (i64, i64, i64) =
        if req.base_version == 0 {
            (0, 0, 0)
        } else {
            // The base may be held by the parent (the first write after a fork).
            tx.query_row(
            "SELECT rows, row_groups, bytes FROM versions WHERE branch_id = ?1 AND version = ?2",
            params![holder(&tx, branch.id, req.base_version)?, req.base_version as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        };
    // The head is `base_version` (checked above, in this serial transaction), so a row group
    // that a concurrent commit removed made this a `Conflict` already: that race re-plans.
    // A row group that is not live at the unmoved head is no race (see `RowGroupsNotLive`).
    let mut not_live = Vec::new();
    for rg in &req.removed_row_groups {
        let changed = tx.execute(
            "UPDATE branch_row_groups SET removed_in = ?1 \
             WHERE branch_id = ?2 AND row_group_id = ?3 AND removed_in IS NULL AND added_in <= ?4",
            params![new_version as i64, branch.id, rg, req.base_version as i64],
        )?;
        if changed != 1 {
            not_live.push(*rg);
            continue;
        }
        let (r, b): (i64, i64) = tx.query_row(
            "SELECT rows, bytes FROM row_groups WHERE id = ?1",
            [rg],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        rows -= r;
        bytes -= b;
        row_groups -= 1;
    }
    if !not_live.is_empty() {
        return Err(CatalogError::RowGroupsNotLive {
            dataset: req.dataset.to_string(),
            branch: req.branch.to_string(),
            version: req.base_version,
            row_groups: not_live,
        });
    }
    if let Some(file) = &req.new_file {
        tx.execute(
            "INSERT INTO files (dataset_id, path, bytes, created_commit, row_group_count) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                dataset_id,
                file.path,
                file.bytes as i64,
                commit_id,
                file.row_groups.len() as i64
            ],
        )?;
        let file_id = tx.last_insert_rowid();
        let mut insert_rg = tx.prepare_cached(
            "INSERT INTO row_groups (file_id, rg_index, rows, bytes, min_value, max_value) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut insert_life = tx.prepare_cached(
            "INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, min_value, max_value) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for rg in &file.row_groups {
            insert_rg.execute(params![
                file_id,
                rg.rg_index,
                rg.rows as i64,
                rg.bytes as i64,
                to_sql(&rg.min),
                to_sql(&rg.max)
            ])?;
            let rg_id = tx.last_insert_rowid();
            insert_life.execute(params![
                branch.id,
                rg_id,
                new_version as i64,
                to_sql(&rg.min),
                to_sql(&rg.max)
            ])?;
            rows += rg.rows as i64;
            bytes += rg.bytes as i64;
            row_groups += 1;
        }
    }
    // The first live row group (smallest max, then smallest min) holds the minimum, the last
    // the maximum; both are index lookups.
    let bound = |sql: &str| -> Result<Value> {
        Ok(tx
            .query_row(sql, [branch.id], |r| r.get::<_, Value>(0))
            .optional()?
            .unwrap_or(Value::Null))
    };
    let min = bound(
        "SELECT min_value FROM branch_row_groups WHERE branch_id = ?1 AND removed_in IS NULL \
         ORDER BY max_value, min_value LIMIT 1",
    )?;
    let max = bound(
        "SELECT max_value FROM branch_row_groups WHERE branch_id = ?1 AND removed_in IS NULL \
         ORDER BY max_value DESC LIMIT 1",
    )?;
    let metadata_json =
        serde_json::to_string(&req.metadata).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, row_groups, bytes, \
         min_value, max_value, schema_json, options_json, metadata_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            branch.id,
            new_version as i64,
            commit_id,
            req.operation,
            req.message,
            rows,
            row_groups,
            bytes,
            min,
            max,
            req.schema_json,
            req.options_json,
            metadata_json
        ],
    )?;
    let moved = tx.execute(
        "UPDATE branches SET head_version = ?1 WHERE id = ?2 AND head_version = ?3",
        params![new_version as i64, branch.id, req.base_version as i64],
    )?;
    if moved != 1 {
        return Err(conflict(branch.head));
    }
    tx.commit()?;
    Ok(CommitOutcome {
        version: new_version,
        commit_id,
        timestamp: micros_to_time(now),
        rows: rows as u64,
    })
}

fn expire_in(
    conn: &mut Connection,
    policy: RetentionPolicy,
    dry_run: bool,
) -> Result<ExpireOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = ExpireOutcome::default();
    if policy.keep_last.is_some() || policy.keep_newer_than_micros.is_some() {
        let branches: Vec<(i64, String, String, i64)> = tx
            .prepare(
                "SELECT b.id, d.name, b.name, b.head_version FROM branches b JOIN datasets d ON d.id = b.dataset_id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let pinned = branches::pinned_versions(&tx)?;
        for (branch_id, dataset, branch, head) in branches {
            let versions: Vec<(i64, i64, bool)> = tx
                .prepare(
                    "SELECT v.version, c.ts_micros, v.expired FROM versions v JOIN commits c ON c.id = v.commit_id \
                     WHERE v.branch_id = ?1 ORDER BY v.version",
                )?
                .query_map([branch_id], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))?
                .collect::<rusqlite::Result<_>>()?;
            let keeps = |version: i64, ts: i64| {
                pinned.contains(&(branch_id, version))
                    || policy.keep_last.is_some_and(|n| version > head - n as i64)
                    || policy
                        .keep_newer_than_micros
                        .is_some_and(|cutoff| ts > cutoff)
            };
            let retained: Vec<i64> = versions
                .iter()
                .filter(|(v, ts, expired)| !expired && keeps(*v, *ts))
                .map(|(v, _, _)| *v)
                .collect();
            for (v, ts, expired) in &versions {
                if !expired && !keeps(*v, *ts) {
                    outcome
                        .expired_versions
                        .push((dataset.clone(), branch.clone(), *v as u64));
                    tx.execute(
                        "UPDATE versions SET expired = 1 WHERE branch_id = ?1 AND version = ?2",
                        params![branch_id, v],
                    )?;
                }
            }
            // A lifetime [added_in, removed_in) is needed while some retained version lies in it.
            let lifetimes: Vec<(i64, i64, i64)> = tx
                .prepare(
                    "SELECT row_group_id, added_in, removed_in FROM branch_row_groups \
                     WHERE branch_id = ?1 AND removed_in IS NOT NULL",
                )?
                .query_map([branch_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (rg, added, removed) in lifetimes {
                let first_at_or_after = retained.partition_point(|v| *v < added);
                let needed = retained
                    .get(first_at_or_after)
                    .is_some_and(|v| *v < removed);
                if !needed {
                    tx.execute(
                        "DELETE FROM branch_row_groups WHERE branch_id = ?1 AND row_group_id = ?2",
                        params![branch_id, rg],
                    )?;
                }
            }
        }
    }
    tx.execute(
        "DELETE FROM row_groups WHERE id NOT IN (SELECT row_group_id FROM branch_row_groups)",
        [],
    )?;
    let unreferenced: Vec<(i64, String)> = tx
        .prepare("SELECT id, path FROM files WHERE id NOT IN (SELECT file_id FROM row_groups) ORDER BY path")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, _) in &unreferenced {
        tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    }
    outcome.unreferenced_files = unreferenced.into_iter().map(|(_, p)| p).collect();
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(outcome)
}

fn collection_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CollectionRecord> {
    let schema_json: String = r.get(1)?;
    let schema: KeySchema = serde_json::from_str(&schema_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(CollectionRecord {
        id: r.get(0)?,
        schema,
        created_at: micros_to_time(r.get(2)?),
    })
}

fn create_collection_in(conn: &mut Connection, schema: KeySchema) -> Result<CollectionRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let name = schema.collection().as_str().to_string();
    let existing: Option<String> = tx
        .query_row(
            "SELECT name FROM collections WHERE name = ?1 \
             OR substr(?1, 1, length(name) + 1) = name || '/' \
             OR substr(name, 1, length(?1) + 1) = ?1 || '/' \
             ORDER BY name = ?1 DESC, name LIMIT 1",
            [&name],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(existing) if existing == name => return Err(CatalogError::CollectionExists(name)),
        Some(existing) => return Err(CatalogError::CollectionOverlap { name, existing }),
        None => {}
    }
    let schema_json =
        serde_json::to_string(&schema).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    let now = now_micros();
    tx.execute(
        "INSERT INTO collections (name, schema_json, created_micros) VALUES (?1, ?2, ?3)",
        params![name, schema_json, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(CollectionRecord {
        id,
        schema,
        created_at: micros_to_time(now),
    })
}

const DATASETS_SELECT: &str = datasets_select!();

/// The datasets named `?1` or under it (`?2` = `?1/`, `?3` = `?1` + `0`), with their
/// `main` heads: two seeks of the name index.
pub const DATASETS_UNDER_PREFIX: &str = concat!(
    datasets_select!(),
    " WHERE d.name = ?1 OR (d.name >= ?2 AND d.name < ?3) ORDER BY d.name"
);

#[async_trait]
impl DatasetReader for SqliteCatalog {
    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetRecord>> {
        let name = name.clone();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, ordered_on, created_micros FROM datasets WHERE name = ?1",
                    [name.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            Ok(row.map(|(id, ordered_on, created)| DatasetRecord {
                id,
                name,
                ordered_on,
                created_at: micros_to_time(created),
            }))
        })
        .await
    }

    async fn branch(&self, dataset_id: i64, name: &BranchName) -> Result<Option<BranchRecord>> {
        let name = name.clone();
        self.read(move |conn| load_branch(conn, dataset_id, name.as_str()))
            .await
    }

    async fn branch_by_id(&self, branch_id: i64) -> Result<Option<BranchRecord>> {
        self.read(move |conn| load_branch_by_id(conn, branch_id))
            .await
    }

    async fn branches(&self, dataset_id: i64) -> Result<Vec<BranchRecord>> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {BRANCH_COLUMNS} FROM branches WHERE dataset_id = ?1 \
                     ORDER BY name <> 'main', name"
                ))?
                .query_map([dataset_id], branch_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(with_name).collect()
        })
        .await
    }

    async fn version(&self, branch_id: i64, version: u64) -> Result<Option<VersionRecord>> {
        self.read(move |conn| load_version(conn, branch_id, version))
            .await
    }

    async fn version_at_commit(&self, branch_id: i64, commit_id: i64) -> Result<Option<u64>> {
        self.read(move |conn| {
            // Own versions first; then the parent's history up to the fork, recursively.
            let mut branch = existing_branch(conn, branch_id)?;
            let mut cap = i64::MAX;
            loop {
                // Within a branch, commit ids never decrease with the version (a fast-forward
                // gives several versions one commit), so the newest entry of the
                // (branch, commit, version) index at or before the commit is the answer.
                let v: Option<i64> = conn
                    .prepare_cached(
                        "SELECT version FROM versions \
                         WHERE branch_id = ?1 AND commit_id <= ?2 AND version <= ?3 \
                         ORDER BY commit_id DESC, version DESC LIMIT 1",
                    )?
                    .query_row(params![branch.id, commit_id, cap], |r| r.get(0))
                    .optional()?;
                if let Some(v) = v {
                    return Ok(Some(v as u64));
                }
                match (branch.parent_branch_id, branch.fork_version) {
                    (Some(parent), Some(fork)) => {
                        cap = cap.min(fork as i64);
                        branch = existing_branch(conn, parent)?;
                    }
                    _ => return Ok(None),
                }
            }
        })
        .await
    }

    async fn commit_at_time(&self, micros: i64) -> Result<Option<i64>> {
        self.read(move |conn| {
            Ok(conn
                // Times never decrease with the id: one backwards step on the time index.
                .prepare_cached(
                    "SELECT id FROM commits WHERE ts_micros <= ?1 \
                     ORDER BY ts_micros DESC, id DESC LIMIT 1",
                )?
                .query_row([micros], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn last_commit(&self) -> Result<i64> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM commits")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    async fn versions(&self, branch_id: i64, limit: Option<u64>) -> Result<Vec<VersionRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions v JOIN commits c ON c.id = v.commit_id \
                 WHERE v.branch_id = ?1 AND v.version <= ?2 AND v.version > ?3 AND v.expired = 0 \
                 ORDER BY v.version DESC LIMIT ?4"
            ))?;
            let mut left = limit.map_or(i64::MAX, |l| l.min(i64::MAX as u64) as i64);
            let mut branch = existing_branch(conn, branch_id)?;
            let mut cap = i64::MAX;
            let mut out = Vec::new();
            loop {
                let rows = stmt
                    // A branch's rows up to its fork are shadowed by the parent's (a
                    // fast-forward moves the fork to the merged head).
                    .query_map(
                        params![
                            branch.id,
                            cap,
                            branch.fork_version.unwrap_or(0) as i64,
                            left
                        ],
                        version_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                left -= rows.len() as i64;
                out.extend(rows);
                match (branch.parent_branch_id, branch.fork_version) {
                    (Some(parent), Some(fork)) if left > 0 => {
                        cap = cap.min(fork as i64);
                        branch = existing_branch(conn, parent)?;
                    }
                    _ => return Ok(out),
                }
            }
        })
        .await
    }

    async fn row_groups(
        &self,
        branch_id: i64,
        version: u64,
        range: RowGroupRange,
    ) -> Result<Vec<RowGroupRecord>> {
        self.read(move |conn| {
            // The head's row groups are the live ones: an index range scan on
            // (branch, removed_in IS NULL, max_value). Older versions filter lifetimes.
            let head: Option<i64> = conn
                .query_row("SELECT head_version FROM branches WHERE id = ?1", [branch_id], |r| r.get(0))
                .optional()?;
            let lifetime = if head == Some(version as i64) {
                "b.removed_in IS NULL AND ?2 = ?2"
            } else {
                "b.added_in <= ?2 AND (b.removed_in IS NULL OR b.removed_in > ?2)"
            };
            // A bound that is absent still names its parameter (as `?n IS NULL`), so that the
            // statement always takes four; a present one is a plain comparison the index can use.
            let lower = if range.start.is_some() { "b.max_value >= ?3" } else { "?3 IS NULL" };
            let upper = if range.end_excl.is_some() { "b.min_value < ?4" } else { "?4 IS NULL" };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT rg.id, rg.file_id, f.path, rg.rg_index, rg.rows, rg.bytes, b.min_value, b.max_value, \
                 f.bytes, f.row_group_count \
                 FROM branch_row_groups b JOIN row_groups rg ON rg.id = b.row_group_id JOIN files f ON f.id = rg.file_id \
                 WHERE b.branch_id = ?1 AND {lifetime} \
                 AND {lower} AND {upper} \
                 ORDER BY b.min_value, b.max_value, rg.file_id, rg.rg_index"
            ))?;
            let mut rows = stmt.query(params![
                branch_id,
                version as i64,
                opt_to_sql(&range.start),
                opt_to_sql(&range.end_excl)
            ])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(RowGroupRecord {
                    id: r.get(0)?,
                    file_id: r.get(1)?,
                    path: r.get(2)?,
                    rg_index: r.get::<_, i64>(3)? as u32,
                    rows: r.get::<_, i64>(4)? as u64,
                    bytes: r.get::<_, i64>(5)? as u64,
                    min: required(from_sql(r.get_ref(6)?)?)?,
                    max: required(from_sql(r.get_ref(7)?)?)?,
                    file_bytes: r.get::<_, i64>(8)? as u64,
                    file_row_groups: r.get::<_, Option<i64>>(9)?.map(|n| n as u32),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn datasets(&self, prefix: Option<String>) -> Result<Vec<DatasetSummary>> {
        self.read(move |conn| {
            // A prefix is a range of the name index: the name itself, then the names in
            // ['p/', 'p0'), '0' being the byte after '/'.
            let (sql, args) = match crate::model::prefix_range(prefix.as_deref()) {
                (Some(exact), lo, hi) => (DATASETS_UNDER_PREFIX.to_string(), vec![exact, lo, hi]),
                (None, _, _) => (format!("{DATASETS_SELECT} ORDER BY d.name"), Vec::new()),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut out = Vec::new();
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            while let Some(r) = rows.next()? {
                out.push(DatasetSummary {
                    name: DatasetName::new(r.get::<_, String>(0)?)?,
                    ordered_on: r.get(1)?,
                    version: r.get::<_, i64>(2)? as u64,
                    rows: r.get::<_, i64>(3)? as u64,
                    row_groups: r.get::<_, i64>(4)? as u64,
                    bytes: r.get::<_, i64>(5)? as u64,
                    timestamp: micros_to_time(r.get(6)?),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn tag(&self, dataset_id: i64, name: &str) -> Result<Option<TagRecord>> {
        let name = name.to_string();
        self.read(move |conn| branches::load_tag(conn, dataset_id, &name))
            .await
    }

    async fn tags(&self, dataset_id: i64) -> Result<Vec<TagRecord>> {
        self.read(move |conn| branches::tags(conn, dataset_id))
            .await
    }
}

#[async_trait]
impl DatasetWriter for SqliteCatalog {
    async fn commit(&self, request: CommitRequest) -> Result<CommitOutcome> {
        self.write(move |conn| commit_in(conn, request)).await
    }

    async fn create_tag(
        &self,
        dataset_id: i64,
        name: &str,
        branch_id: i64,
        version: u64,
        force: bool,
    ) -> Result<TagRecord> {
        let name = name.to_string();
        self.write(move |conn| {
            branches::create_tag(conn, dataset_id, &name, branch_id, version, force)
        })
        .await
    }

    async fn delete_tag(&self, dataset_id: i64, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |conn| branches::delete_tag(conn, dataset_id, &name))
            .await
    }

    async fn create_branch(
        &self,
        dataset_id: i64,
        from: i64,
        version: u64,
        name: &BranchName,
    ) -> Result<BranchRecord> {
        let name = name.clone();
        self.write(move |conn| branches::create_branch(conn, dataset_id, from, version, &name))
            .await
    }

    async fn delete_branch(&self, dataset_id: i64, name: &BranchName) -> Result<()> {
        let name = name.clone();
        self.write(move |conn| branches::delete_branch(conn, dataset_id, &name))
            .await
    }

    async fn fast_forward(
        &self,
        dataset_id: i64,
        source: &BranchName,
        target: &BranchName,
    ) -> Result<MergeOutcome> {
        let (source, target) = (source.clone(), target.clone());
        self.write(move |conn| branches::fast_forward(conn, dataset_id, &source, &target))
            .await
    }
}

#[async_trait]
impl Retention for SqliteCatalog {
    async fn referenced_files(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT path FROM files")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn expire(&self, policy: RetentionPolicy, dry_run: bool) -> Result<ExpireOutcome> {
        self.write(move |conn| expire_in(conn, policy, dry_run))
            .await
    }
}

#[async_trait]
impl CollectionStore for SqliteCatalog {
    async fn create_collection(&self, schema: &KeySchema) -> Result<CollectionRecord> {
        let schema = schema.clone();
        self.write(move |conn| create_collection_in(conn, schema))
            .await
    }

    async fn collection(&self, name: &DatasetName) -> Result<Option<CollectionRecord>> {
        let name = name.clone();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, schema_json, created_micros FROM collections WHERE name = ?1",
                    [name.as_str()],
                    collection_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn collections(&self) -> Result<Vec<CollectionRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT id, schema_json, created_micros FROM collections ORDER BY name")?
                .query_map([], collection_from_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[async_trait]
impl RegistryStore for SqliteCatalog {
    async fn put_component_version(&self, v: NewComponentVersion) -> Result<ComponentVersion> {
        self.write(move |conn| registry::put_version(conn, v)).await
    }

    async fn component(&self, kind: ComponentKind, name: &str) -> Result<Option<ComponentRecord>> {
        let name = name.to_string();
        self.read(move |conn| registry::load_component(conn, kind, &name))
            .await
    }

    async fn components(&self, kind: Option<ComponentKind>) -> Result<Vec<ComponentRecord>> {
        self.read(move |conn| registry::components(conn, kind))
            .await
    }

    async fn component_version(
        &self,
        kind: ComponentKind,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<ComponentVersion>> {
        let name = name.to_string();
        self.read(move |conn| registry::component_version(conn, kind, &name, version))
            .await
    }

    async fn component_history(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<Vec<ComponentVersion>> {
        let name = name.to_string();
        self.read(move |conn| registry::history(conn, kind, &name))
            .await
    }

    async fn dimension_records(
        &self,
        component_id: i64,
        version: u64,
    ) -> Result<Vec<DimensionRecordRow>> {
        self.read(move |conn| registry::dimension_records(conn, component_id, version))
            .await
    }

    async fn mapping_rows(&self, component_id: i64, version: u64) -> Result<Vec<MappingRow>> {
        self.read(move |conn| registry::mapping_rows(conn, component_id, version))
            .await
    }

    async fn dependencies(&self, component_id: i64, version: u64) -> Result<Vec<DependencyTarget>> {
        self.read(move |conn| registry::dependencies(conn, component_id, version))
            .await
    }

    async fn dependents(
        &self,
        target_kind: &str,
        target_name: &str,
        target_version: Option<u64>,
    ) -> Result<Vec<Dependent>> {
        let (kind, name) = (target_kind.to_string(), target_name.to_string());
        self.read(move |conn| registry::dependents(conn, &kind, &name, target_version))
            .await
    }
}

#[async_trait]
impl LakeStore for SqliteCatalog {
    fn describe(&self) -> String {
        describe(&self.path)
    }

    async fn lake(&self) -> Result<Option<LakeRecord>> {
        self.read(|conn| load_lake(conn)).await
    }

    async fn claim_lake(&self, storage: &str) -> Result<LakeRecord> {
        let storage = storage.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(lake) = load_lake(&tx)? {
                return crate::model::check_claim(lake, &storage);
            }
            let now = now_micros();
            tx.execute(
                "INSERT INTO lake (id, storage, created_micros) VALUES (1, ?1, ?2)",
                params![storage, now],
            )?;
            tx.commit()?;
            Ok(LakeRecord {
                storage,
                created_at: micros_to_time(now),
            })
        })
        .await
    }

    async fn table_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.read(|conn| {
            let mut out = BTreeMap::new();
            for table in crate::model::TABLES {
                let n: i64 =
                    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                out.insert(table.to_string(), n);
            }
            Ok(out)
        })
        .await
    }
}

fn load_lake(conn: &Connection) -> Result<Option<LakeRecord>> {
    Ok(conn
        .query_row(
            "SELECT storage, created_micros FROM lake WHERE id = 1",
            [],
            |r| {
                Ok(LakeRecord {
                    storage: r.get(0)?,
                    created_at: micros_to_time(r.get(1)?),
                })
            },
        )
        .optional()?)
}

impl SqliteCatalog {
    /// The plan SQLite chooses for `sql` (`EXPLAIN QUERY PLAN`, one line per step): for
    /// tests and for checking by hand which index a lookup uses.
    pub fn query_plan(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<String>> {
        let conn = connect(&self.path, self.durable)?;
        Ok(conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(args, |r| r.get::<_, String>(3))?
            .collect::<rusqlite::Result<_>>()?)
    }
}
