//! The server's tables in the SQLite catalog (docs/design/0009): the request queue, API
//! tokens and the commit feed. Queue changes go through the one writer connection, in
//! `BEGIN IMMEDIATE` transactions, so they are serial with the lake's commits.

use super::{SqliteCatalog, micros_to_time, now_micros};
use crate::error::{CatalogError, Result};
use crate::service::{
    COMMIT_EVENT_FROM, CommitEvent, NewRequest, QueueDepth, REQUEST_COLUMNS, RequestOutcome,
    RequestRecord, RequestStatus, ServiceStore, TokenRecord, scopes_from_json, scopes_json,
    status_at,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::time::Duration;
use tarn_core::DatasetName;

fn request_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RequestRecord, String)> {
    let opt_time =
        |i: usize| -> rusqlite::Result<_> { Ok(r.get::<_, Option<i64>>(i)?.map(micros_to_time)) };
    Ok((
        RequestRecord {
            seq: r.get(0)?,
            id: r.get(1)?,
            idempotency_key: r.get(2)?,
            lane: r.get(3)?,
            kind: r.get(4)?,
            params_json: r.get(5)?,
            staged_path: r.get(6)?,
            status: RequestStatus::Queued,
            attempts: r.get::<_, i64>(8)? as u32,
            created_at: micros_to_time(r.get(9)?),
            started_at: opt_time(10)?,
            finished_at: opt_time(11)?,
            version: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
            commit_id: r.get(13)?,
            error: r.get(14)?,
        },
        r.get(7)?,
    ))
}

fn with_status((mut record, status): (RequestRecord, String)) -> Result<RequestRecord> {
    record.status = status_at(&status)?;
    Ok(record)
}

fn load_request(conn: &Connection, column: &str, value: &str) -> Result<Option<RequestRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE {column} = ?1"
    ))?
    .query_row([value], request_from_row)
    .optional()?
    .map(with_status)
    .transpose()
}

fn collect_requests(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<RequestRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, request_from_row)?;
    rows.map(|r| with_status(r?)).collect()
}

fn commit_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<CommitEvent> {
    Ok(CommitEvent {
        commit_id: r.get(0)?,
        timestamp: micros_to_time(r.get(1)?),
        dataset: r.get(2)?,
        branch: r.get(3)?,
        version: r.get::<_, i64>(4)? as u64,
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, String)> {
    Ok((
        TokenRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            secret_sha256: r.get(2)?,
            scopes: Vec::new(),
            created_at: micros_to_time(r.get(4)?),
        },
        r.get(3)?,
    ))
}

fn with_scopes((mut token, scopes): (TokenRecord, String)) -> Result<TokenRecord> {
    token.scopes = scopes_from_json(&scopes)?;
    Ok(token)
}

const TOKEN_COLUMNS: &str = "id, name, secret_sha256, scopes_json, created_micros";

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl ServiceStore for SqliteCatalog {
    async fn commits_after(
        &self,
        after: i64,
        prefix: Option<&DatasetName>,
        limit: u64,
    ) -> Result<Vec<CommitEvent>> {
        let prefix = prefix.map(|p| p.to_string());
        self.read(move |conn| {
            let limit = limit.min(i64::MAX as u64) as i64;
            let mut out = Vec::new();
            match crate::model::prefix_range(prefix.as_deref()) {
                (Some(exact), lo, hi) => {
                    let mut stmt = conn.prepare_cached(&format!(
                        "{COMMIT_EVENT_FROM} WHERE v.commit_id > ?1 \
                         AND (d.name = ?2 OR (d.name >= ?3 AND d.name < ?4)) \
                         ORDER BY v.commit_id LIMIT ?5"
                    ))?;
                    for e in stmt.query_map(params![after, exact, lo, hi, limit], commit_event)? {
                        out.push(e?);
                    }
                }
                (None, _, _) => {
                    let mut stmt = conn.prepare_cached(&format!(
                        "{COMMIT_EVENT_FROM} WHERE v.commit_id > ?1 ORDER BY v.commit_id LIMIT ?2"
                    ))?;
                    for e in stmt.query_map(params![after, limit], commit_event)? {
                        out.push(e?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn commit_of_request(&self, request_id: &str) -> Result<Option<CommitEvent>> {
        let id = request_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("{COMMIT_EVENT_FROM} WHERE c.request_id = ?1"))?
                .query_row([id], commit_event)
                .optional()?)
        })
        .await
    }

    async fn enqueue(&self, request: NewRequest) -> Result<(RequestRecord, bool)> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(key) = &request.idempotency_key
                && let Some(first) = load_request(&tx, "idempotency_key", key)?
            {
                return Ok((first, false));
            }
            tx.execute(
                "INSERT INTO requests (id, idempotency_key, lane, kind, params_json, \
                 staged_path, status, created_micros) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
                params![
                    request.id,
                    request.idempotency_key,
                    request.lane,
                    request.kind,
                    request.params_json,
                    request.staged_path,
                    now_micros()
                ],
            )?;
            let record = load_request(&tx, "id", &request.id)?
                .ok_or_else(|| CatalogError::Corrupt("a new request vanished".into()))?;
            tx.commit()?;
            Ok((record, true))
        })
        .await
    }

    async fn request(&self, id: &str) -> Result<Option<RequestRecord>> {
        let id = id.to_string();
        self.read(move |conn| load_request(conn, "id", &id)).await
    }

    async fn requests(&self, statuses: &[RequestStatus], limit: u64) -> Result<Vec<RequestRecord>> {
        let statuses: Vec<&'static str> = if statuses.is_empty() {
            vec!["queued", "running", "succeeded", "failed"]
        } else {
            statuses.iter().map(|s| s.as_str()).collect()
        };
        self.read(move |conn| {
            let placeholders = vec!["?"; statuses.len()].join(", ");
            let sql = format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE status IN ({placeholders}) \
                 ORDER BY seq DESC LIMIT {}",
                limit.min(i64::MAX as u64)
            );
            collect_requests(conn, &sql, rusqlite::params_from_iter(statuses))
        })
        .await
    }

    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<RequestRecord>> {
        let (lane, owner) = (lane.to_string(), owner.to_string());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_micros();
            let oldest: Option<(i64, String, Option<String>, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT seq, status, owner, leased_until_micros FROM requests \
                     WHERE lane = ?1 AND status IN ('queued', 'running') ORDER BY seq LIMIT 1",
                )?
                .query_row([&lane], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((seq, status, holder, until)) = oldest else {
                return Ok(None);
            };
            let leased_to_other = status == "running"
                && holder.as_deref() != Some(owner.as_str())
                && until.is_some_and(|u| u > now);
            if leased_to_other {
                return Ok(None);
            }
            tx.execute(
                "UPDATE requests SET status = 'running', owner = ?1, leased_until_micros = ?2, \
                 attempts = attempts + 1, started_micros = coalesce(started_micros, ?3) \
                 WHERE seq = ?4",
                params![owner, now.saturating_add(micros(lease)), now, seq],
            )?;
            let record = collect_requests(
                &tx,
                &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE seq = ?1"),
                [seq],
            )?
            .pop();
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |conn| {
            let until = now_micros().saturating_add(micros(lease));
            Ok(conn.execute(
                "UPDATE requests SET leased_until_micros = ?1 \
                 WHERE id = ?2 AND owner = ?3 AND status = 'running'",
                params![until, id, owner],
            )? == 1)
        })
        .await
    }

    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> Result<bool> {
        let (id, outcome) = (id.to_string(), outcome.clone());
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE requests SET status = ?1, finished_micros = ?2, version = ?3, \
                 commit_id = ?4, error = ?5, owner = NULL, leased_until_micros = NULL \
                 WHERE id = ?6 AND status IN ('queued', 'running')",
                params![
                    outcome.status.as_str(),
                    now_micros(),
                    outcome.version.map(|v| v as i64),
                    outcome.commit_id,
                    outcome.error,
                    id
                ],
            )? == 1)
        })
        .await
    }

    async fn lanes_with_work(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT lane FROM requests WHERE status IN ('queued', 'running') \
                 ORDER BY lane",
            )?;
            let lanes = stmt.query_map([], |r| r.get(0))?;
            Ok(lanes.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        self.read(|conn| {
            let (n, running, oldest): (i64, i64, Option<i64>) = conn.query_row(
                "SELECT count(*), count(*) FILTER (WHERE status = 'running'), \
                 min(created_micros) FROM requests WHERE status IN ('queued', 'running')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            Ok(QueueDepth {
                unfinished: n as u64,
                running: running as u64,
                oldest: oldest.map(micros_to_time),
            })
        })
        .await
    }

    async fn finished_with_staged(&self, limit: u64) -> Result<Vec<RequestRecord>> {
        self.read(move |conn| {
            collect_requests(
                conn,
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests WHERE staged_path IS NOT NULL \
                     AND status IN ('succeeded', 'failed') ORDER BY seq LIMIT ?1"
                ),
                [limit.min(i64::MAX as u64) as i64],
            )
        })
        .await
    }

    async fn forget_staged(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute("UPDATE requests SET staged_path = NULL WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let token = token.clone();
        let scopes = scopes_json(&token.scopes)?;
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE name = ?1 OR id = ?2)",
                params![token.name, token.id],
                |r| r.get(0),
            )?;
            if taken {
                return Err(CatalogError::Refused(format!(
                    "a token named {:?} exists; revoke it first or pick another name",
                    token.name
                )));
            }
            tx.execute(
                "INSERT INTO api_tokens (id, name, secret_sha256, scopes_json, created_micros) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.id,
                    token.name,
                    token.secret_sha256,
                    scopes,
                    token.created_at.timestamp_micros()
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"
            ))?
            .query_row([id], token_from_row)
            .optional()?
            .map(with_scopes)
            .transpose()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
            ))?;
            let rows = stmt.query_map([], token_from_row)?;
            rows.map(|r| with_scopes(r?)).collect()
        })
        .await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM api_tokens WHERE name = ?1", [name])? == 1)
        })
        .await
    }
}
