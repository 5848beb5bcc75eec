//! The server's tables in the PostgreSQL catalog (docs/design/0009): the request queue, API
//! tokens and the commit feed. Each change is one statement in its own (autocommit)
//! transaction; a claim locks the lane's oldest request row (`FOR UPDATE`), so two servers on
//! one catalog never hold the same request.

use super::{NOW_MICROS, PostgresCatalog, Session, is_unique_violation, time_at, u64_at};
use crate::error::{CatalogError, Result};
use crate::service::{
    COMMIT_EVENT_FROM, CommitEvent, NewRequest, QueueDepth, REQUEST_COLUMNS, RequestOutcome,
    RequestRecord, RequestStatus, ServiceStore, TokenRecord, scopes_from_json, scopes_json,
    status_at,
};
use async_trait::async_trait;
use std::time::Duration;
use tarn_core::DatasetName;
use tokio_postgres::Row;

fn request_at(r: &Row) -> Result<RequestRecord> {
    let opt_time =
        |i: usize| -> Result<_> { Ok(r.try_get::<_, Option<i64>>(i)?.map(super::micros_to_time)) };
    Ok(RequestRecord {
        seq: r.try_get(0)?,
        id: r.try_get(1)?,
        idempotency_key: r.try_get(2)?,
        lane: r.try_get(3)?,
        kind: r.try_get(4)?,
        params_json: r.try_get(5)?,
        staged_path: r.try_get(6)?,
        status: status_at(r.try_get(7)?)?,
        attempts: r.try_get::<_, i32>(8)? as u32,
        created_at: time_at(r, 9)?,
        started_at: opt_time(10)?,
        finished_at: opt_time(11)?,
        version: r.try_get::<_, Option<i64>>(12)?.map(|v| v as u64),
        commit_id: r.try_get(13)?,
        error: r.try_get(14)?,
    })
}

fn commit_event_at(r: &Row) -> Result<CommitEvent> {
    Ok(CommitEvent {
        commit_id: r.try_get(0)?,
        timestamp: time_at(r, 1)?,
        dataset: r.try_get(2)?,
        branch: r.try_get(3)?,
        version: u64_at(r, 4)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, secret_sha256, scopes_json, created_micros";

fn token_at(r: &Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_sha256: r.try_get(2)?,
        scopes: scopes_from_json(r.try_get(3)?)?,
        created_at: time_at(r, 4)?,
    })
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn limit_of(limit: u64) -> i64 {
    limit.min(i64::MAX as u64) as i64
}

async fn request_by(s: &mut Session, column: &str, value: &str) -> Result<Option<RequestRecord>> {
    s.query_opt(
        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE {column} = $1"),
        &[&value],
    )
    .await?
    .as_ref()
    .map(request_at)
    .transpose()
}

#[async_trait]
impl ServiceStore for PostgresCatalog {
    async fn commits_after(
        &self,
        after: i64,
        prefix: Option<&DatasetName>,
        limit: u64,
    ) -> Result<Vec<CommitEvent>> {
        let prefix = prefix.map(|p| p.to_string());
        let limit = limit_of(limit);
        self.read(async move |s| {
            let rows = match crate::model::prefix_range(prefix.as_deref()) {
                (Some(exact), lo, hi) => {
                    s.query(
                        &format!(
                            "{COMMIT_EVENT_FROM} WHERE v.commit_id > $1 \
                             AND (d.name = $2 OR (d.name >= $3 AND d.name < $4)) \
                             ORDER BY v.commit_id LIMIT $5"
                        ),
                        &[&after, &exact, &lo, &hi, &limit],
                    )
                    .await?
                }
                (None, _, _) => {
                    s.query(
                        &format!(
                            "{COMMIT_EVENT_FROM} WHERE v.commit_id > $1 \
                             ORDER BY v.commit_id LIMIT $2"
                        ),
                        &[&after, &limit],
                    )
                    .await?
                }
            };
            rows.iter().map(commit_event_at).collect()
        })
        .await
    }

    async fn commit_of_request(&self, request_id: &str) -> Result<Option<CommitEvent>> {
        self.read(async move |s| {
            s.query_opt(
                &format!("{COMMIT_EVENT_FROM} WHERE c.request_id = $1"),
                &[&request_id],
            )
            .await?
            .as_ref()
            .map(commit_event_at)
            .transpose()
        })
        .await
    }

    async fn enqueue(&self, request: NewRequest) -> Result<(RequestRecord, bool)> {
        self.read(async move |s| {
            let inserted = s
                .query_opt(
                    &format!(
                        "INSERT INTO requests (id, idempotency_key, lane, kind, params_json, \
                         staged_path, status, created_micros) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'queued', {NOW_MICROS}) \
                         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {REQUEST_COLUMNS}"
                    ),
                    &[
                        &request.id,
                        &request.idempotency_key,
                        &request.lane,
                        &request.kind,
                        &request.params_json,
                        &request.staged_path,
                    ],
                )
                .await?;
            if let Some(row) = inserted {
                return Ok((request_at(&row)?, true));
            }
            // Only a taken idempotency key skips the insert.
            let key = request.idempotency_key.as_deref().unwrap_or_default();
            let first = request_by(s, "idempotency_key", key)
                .await?
                .ok_or_else(|| {
                    CatalogError::Corrupt("a request's idempotency key vanished".into())
                })?;
            Ok((first, false))
        })
        .await
    }

    async fn request(&self, id: &str) -> Result<Option<RequestRecord>> {
        self.read(async move |s| request_by(s, "id", id).await)
            .await
    }

    async fn requests(&self, statuses: &[RequestStatus], limit: u64) -> Result<Vec<RequestRecord>> {
        let statuses: Vec<String> = if statuses.is_empty() {
            ["queued", "running", "succeeded", "failed"]
                .map(String::from)
                .to_vec()
        } else {
            statuses.iter().map(|s| s.as_str().to_string()).collect()
        };
        let limit = limit_of(limit);
        self.read(async move |s| {
            let rows = s
                .query(
                    &format!(
                        "SELECT {REQUEST_COLUMNS} FROM requests WHERE status = ANY($1) \
                         ORDER BY seq DESC LIMIT $2"
                    ),
                    &[&statuses, &limit],
                )
                .await?;
            rows.iter().map(request_at).collect()
        })
        .await
    }

    async fn claim(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<RequestRecord>> {
        let lease = micros(lease);
        self.read(async move |s| {
            // The row lock makes a second claimer wait, then see the first one's lease.
            let row = s
                .query_opt(
                    &format!(
                        "WITH oldest AS (SELECT seq, status, owner, leased_until_micros \
                         FROM requests WHERE lane = $1 AND status IN ('queued', 'running') \
                         ORDER BY seq LIMIT 1 FOR UPDATE), now AS (SELECT {NOW_MICROS} AS t) \
                         UPDATE requests r SET status = 'running', owner = $2, \
                         leased_until_micros = now.t + $3, attempts = r.attempts + 1, \
                         started_micros = coalesce(r.started_micros, now.t) \
                         FROM oldest o, now WHERE r.seq = o.seq AND (o.status = 'queued' \
                         OR o.owner = $2 OR o.leased_until_micros <= now.t) \
                         RETURNING {}",
                        REQUEST_COLUMNS
                            .split(", ")
                            .map(|c| format!("r.{c}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    &[&lane, &owner, &lease],
                )
                .await?;
            row.as_ref().map(request_at).transpose()
        })
        .await
    }

    async fn renew(&self, id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let lease = micros(lease);
        self.read(async move |s| {
            Ok(s.execute(
                &format!(
                    "UPDATE requests SET leased_until_micros = {NOW_MICROS} + $1 \
                     WHERE id = $2 AND owner = $3 AND status = 'running'"
                ),
                &[&lease, &id, &owner],
            )
            .await?
                == 1)
        })
        .await
    }

    async fn finish(&self, id: &str, outcome: &RequestOutcome) -> Result<bool> {
        let version = outcome.version.map(|v| v as i64);
        self.read(async move |s| {
            Ok(s.execute(
                &format!(
                    "UPDATE requests SET status = $1, finished_micros = {NOW_MICROS}, \
                     version = $2, commit_id = $3, error = $4, owner = NULL, \
                     leased_until_micros = NULL \
                     WHERE id = $5 AND status IN ('queued', 'running')"
                ),
                &[
                    &outcome.status.as_str(),
                    &version,
                    &outcome.commit_id,
                    &outcome.error,
                    &id,
                ],
            )
            .await?
                == 1)
        })
        .await
    }

    async fn lanes_with_work(&self) -> Result<Vec<String>> {
        self.read(async |s| {
            let rows = s
                .query(
                    "SELECT DISTINCT lane FROM requests WHERE status IN ('queued', 'running') \
                     ORDER BY lane",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(r.try_get::<_, String>(0)?))
                .collect()
        })
        .await
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        self.read(async |s| {
            let row = s
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'running'), \
                     min(created_micros) FROM requests WHERE status IN ('queued', 'running')",
                    &[],
                )
                .await?;
            Ok(QueueDepth {
                unfinished: row.try_get::<_, i64>(0)? as u64,
                running: row.try_get::<_, i64>(1)? as u64,
                oldest: row.try_get::<_, Option<i64>>(2)?.map(super::micros_to_time),
            })
        })
        .await
    }

    async fn finished_with_staged(&self, limit: u64) -> Result<Vec<RequestRecord>> {
        let limit = limit_of(limit);
        self.read(async move |s| {
            let rows = s
                .query(
                    &format!(
                        "SELECT {REQUEST_COLUMNS} FROM requests WHERE staged_path IS NOT NULL \
                         AND status IN ('succeeded', 'failed') ORDER BY seq LIMIT $1"
                    ),
                    &[&limit],
                )
                .await?;
            rows.iter().map(request_at).collect()
        })
        .await
    }

    async fn forget_staged(&self, id: &str) -> Result<()> {
        self.read(async move |s| {
            s.execute(
                "UPDATE requests SET staged_path = NULL WHERE id = $1",
                &[&id],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let scopes = scopes_json(&token.scopes)?;
        let created = token.created_at.timestamp_micros();
        self.read(async move |s| {
            let out = s
                .execute(
                    "INSERT INTO api_tokens (id, name, secret_sha256, scopes_json, created_micros) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &token.id,
                        &token.name,
                        &token.secret_sha256,
                        &scopes,
                        &created,
                    ],
                )
                .await;
            match out {
                Err(e)
                    if is_unique_violation(&e, "api_tokens_name_key")
                        || is_unique_violation(&e, "api_tokens_pkey") =>
                {
                    Err(CatalogError::Refused(format!(
                        "a token named {:?} exists; revoke it first or pick another name",
                        token.name
                    )))
                }
                other => other.map(|_| ()),
            }
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.read(async move |s| {
            s.query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(token_at)
            .transpose()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(async |s| {
            let rows = s
                .query(
                    &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"),
                    &[],
                )
                .await?;
            rows.iter().map(token_at).collect()
        })
        .await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool> {
        self.read(async move |s| {
            Ok(
                s.execute("DELETE FROM api_tokens WHERE name = $1", &[&name])
                    .await?
                    == 1,
            )
        })
        .await
    }
}
