//! Datasets, versions and row groups in the PostgreSQL catalog: the commit primitive, the
//! reads of versions and row groups, and retention. A branch's history is resolved in SQL
//! (a recursive walk up its parents), so that each read is one statement whatever the depth
//! of the branch.

use super::{Param, Session, micros_to_time, time_at, u64_at};
use crate::error::{CatalogError, Result};
use crate::model::*;
use crate::ordered;
use std::collections::{BTreeMap, HashMap, HashSet};
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

const VERSION_COLUMNS: &str = "v.branch_id, v.version, v.commit_id, c.ts_micros, v.operation, v.message, \
    v.rows, v.row_groups, v.bytes, v.min_value, v.max_value, v.schema_json, v.options_json, \
    v.metadata_json, v.expired";

fn scalar_at(r: &Row, i: usize) -> Result<Option<SqlScalar>> {
    r.try_get::<_, Option<&[u8]>>(i)?
        .map(ordered::decode)
        .transpose()
}

fn required(v: Option<SqlScalar>) -> Result<SqlScalar> {
    v.ok_or_else(|| CatalogError::Corrupt("row group without min/max".into()))
}

fn version_from_row(r: &Row) -> Result<VersionRecord> {
    let metadata_json: String = r.try_get(13)?;
    Ok(VersionRecord {
        branch_id: r.try_get(0)?,
        version: u64_at(r, 1)?,
        commit_id: r.try_get(2)?,
        timestamp: time_at(r, 3)?,
        operation: r.try_get(4)?,
        message: r.try_get(5)?,
        rows: u64_at(r, 6)?,
        row_groups: u64_at(r, 7)?,
        bytes: u64_at(r, 8)?,
        min: scalar_at(r, 9)?,
        max: scalar_at(r, 10)?,
        schema_json: r.try_get(11)?,
        options_json: r.try_get(12)?,
        metadata: serde_json::from_str(&metadata_json)
            .map_err(|e| CatalogError::Corrupt(format!("version metadata: {e}")))?,
        expired: r.try_get(14)?,
    })
}

const BRANCH_COLUMNS: &str =
    "id, dataset_id, name, head_version, parent_branch_id, fork_version, created_commit";

fn branch_from_row(r: &Row) -> Result<BranchRecord> {
    Ok(BranchRecord {
        id: r.try_get(0)?,
        dataset_id: r.try_get(1)?,
        name: BranchName::new(r.try_get::<_, String>(2)?)?,
        head: u64_at(r, 3)?,
        parent_branch_id: r.try_get(4)?,
        fork_version: r.try_get::<_, Option<i64>>(5)?.map(|v| v as u64),
        created_commit: r.try_get(6)?,
    })
}

pub(super) async fn dataset(s: &mut Session, name: DatasetName) -> Result<Option<DatasetRecord>> {
    let row = s
        .query_opt(
            "SELECT id, ordered_on, created_micros FROM datasets WHERE name = $1",
            &[&name.as_str()],
        )
        .await?;
    row.map(|r| {
        Ok(DatasetRecord {
            id: r.try_get(0)?,
            name,
            ordered_on: r.try_get(1)?,
            created_at: time_at(&r, 2)?,
        })
    })
    .transpose()
}

pub(super) async fn load_branch(
    s: &mut Session,
    dataset_id: i64,
    name: &str,
) -> Result<Option<BranchRecord>> {
    s.query_opt(
        &format!("SELECT {BRANCH_COLUMNS} FROM branches WHERE dataset_id = $1 AND name = $2"),
        &[&dataset_id, &name],
    )
    .await?
    .map(|r| branch_from_row(&r))
    .transpose()
}

pub(super) async fn load_branch_by_id(s: &mut Session, id: i64) -> Result<Option<BranchRecord>> {
    s.query_opt(
        &format!("SELECT {BRANCH_COLUMNS} FROM branches WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| branch_from_row(&r))
    .transpose()
}

pub(super) async fn existing_branch(s: &mut Session, id: i64) -> Result<BranchRecord> {
    load_branch_by_id(s, id)
        .await?
        .ok_or_else(|| CatalogError::Corrupt(format!("branch id {id} does not exist")))
}

pub(super) async fn branches(s: &mut Session, dataset_id: i64) -> Result<Vec<BranchRecord>> {
    s.query(
        &format!(
            "SELECT {BRANCH_COLUMNS} FROM branches WHERE dataset_id = $1 \
             ORDER BY name <> 'main', name"
        ),
        &[&dataset_id],
    )
    .await?
    .iter()
    .map(branch_from_row)
    .collect()
}

/// The walk from branch `$branch` up to the branch that holds version `$version`: the
/// branch itself for its own versions, else its parent (recursively) for versions up to the
/// fork. The holder is the deepest row.
fn holder_chain(branch: &str, version: &str) -> String {
    format!(
        "chain(id, parent, fork, depth) AS ( \
         SELECT id, parent_branch_id, fork_version, 0 FROM branches WHERE id = {branch} \
         UNION ALL \
         SELECT p.id, p.parent_branch_id, p.fork_version, ch.depth + 1 \
         FROM chain ch JOIN branches p ON p.id = ch.parent WHERE {version} <= ch.fork)"
    )
}

/// The walk from branch `$1` up its parents, each with the versions of its own that count:
/// those in `(fork, cap]`, `cap` being the fork version of the branch below it.
const HISTORY_CHAIN: &str = "chain(id, parent, fork, cap, depth) AS ( \
     SELECT id, parent_branch_id, fork_version, 9223372036854775807::bigint, 0 \
     FROM branches WHERE id = $1 \
     UNION ALL \
     SELECT p.id, p.parent_branch_id, p.fork_version, least(ch.cap, ch.fork), ch.depth + 1 \
     FROM chain ch JOIN branches p ON p.id = ch.parent WHERE ch.fork IS NOT NULL)";

/// An empty answer about a branch is only an answer if the branch exists (as SQLite's
/// catalog says, a missing branch id is damage, not "no versions").
async fn ensure_branch(s: &mut Session, id: i64) -> Result<()> {
    existing_branch(s, id).await.map(|_| ())
}

pub(super) async fn load_version(
    s: &mut Session,
    branch_id: i64,
    version: u64,
) -> Result<Option<VersionRecord>> {
    let sql = format!(
        "WITH RECURSIVE {} \
         SELECT {VERSION_COLUMNS} FROM (SELECT id FROM chain ORDER BY depth DESC LIMIT 1) h \
         JOIN versions v ON v.branch_id = h.id AND v.version = $2 \
         JOIN commits c ON c.id = v.commit_id",
        holder_chain("$1", "$2")
    );
    match s.query_opt(&sql, &[&branch_id, &(version as i64)]).await? {
        Some(r) => Ok(Some(version_from_row(&r)?)),
        None => {
            ensure_branch(s, branch_id).await?;
            Ok(None)
        }
    }
}

pub(super) async fn version_at_commit(
    s: &mut Session,
    branch_id: i64,
    commit_id: i64,
) -> Result<Option<u64>> {
    // Own versions first (all of them: after a fast-forward a branch keeps its rows up to
    // the fork, with their original commits), then the parent's up to the fork,
    // recursively. Within a branch commit ids never decrease with the version, so the
    // newest entry of the (branch, commit, version) index at or before the commit answers.
    let sql = format!(
        "WITH RECURSIVE {HISTORY_CHAIN} \
         SELECT x.version FROM chain ch CROSS JOIN LATERAL ( \
         SELECT v.version FROM versions v \
         WHERE v.branch_id = ch.id AND v.commit_id <= $2 AND v.version <= ch.cap \
         ORDER BY v.commit_id DESC, v.version DESC LIMIT 1) x \
         ORDER BY ch.depth LIMIT 1"
    );
    match s.query_opt(&sql, &[&branch_id, &commit_id]).await? {
        Some(r) => Ok(Some(u64_at(&r, 0)?)),
        None => {
            ensure_branch(s, branch_id).await?;
            Ok(None)
        }
    }
}

pub(super) async fn versions(
    s: &mut Session,
    branch_id: i64,
    limit: Option<u64>,
) -> Result<Vec<VersionRecord>> {
    // A branch's rows up to its fork are shadowed by the parent's (a fast-forward moves the
    // fork to the merged head); the segments of the walk are disjoint and descending.
    // Expired versions are left out before the limit counts.
    let sql = format!(
        "WITH RECURSIVE {HISTORY_CHAIN} \
         SELECT {VERSION_COLUMNS} FROM chain ch \
         JOIN versions v ON v.branch_id = ch.id AND v.version <= ch.cap \
         AND v.version > coalesce(ch.fork, 0) AND NOT v.expired \
         JOIN commits c ON c.id = v.commit_id \
         ORDER BY v.version DESC LIMIT $2"
    );
    let limit = limit.map_or(i64::MAX, |l| l.min(i64::MAX as u64) as i64);
    let rows = s.query(&sql, &[&branch_id, &limit]).await?;
    if rows.is_empty() {
        ensure_branch(s, branch_id).await?;
    }
    rows.iter().map(version_from_row).collect()
}

/// The statement of [`row_groups`] and its parameters. At the head the live row groups are
/// those not removed: a range scan of `branch_row_groups_live`. At an older version the
/// lifetimes that cover it: a scan of `branch_row_groups_added`. Both arms are in one
/// statement, each behind a one-time test of the head, so the lookup is one round trip and
/// only one arm runs. A bound that is absent is left out, so that a present one is a plain
/// comparison the index can use.
pub(super) fn row_groups_statement(
    branch_id: i64,
    version: u64,
    range: &RowGroupRange,
) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = vec![Box::new(branch_id), Box::new(version as i64)];
    let mut bounds = String::new();
    if let Some(start) = &range.start {
        params.push(Box::new(ordered::encode(start)));
        bounds.push_str(&format!(" AND b.max_value >= ${}", params.len()));
    }
    if let Some(end) = &range.end_excl {
        params.push(Box::new(ordered::encode(end)));
        bounds.push_str(&format!(" AND b.min_value < ${}", params.len()));
    }
    let select = "SELECT rg.id, rg.file_id, f.path, rg.rg_index, rg.rows, rg.bytes, \
         b.min_value, b.max_value, f.bytes, f.row_group_count \
         FROM branch_row_groups b JOIN row_groups rg ON rg.id = b.row_group_id \
         JOIN files f ON f.id = rg.file_id";
    let head = "(SELECT head_version FROM branches WHERE id = $1)";
    let sql = format!(
        "{select} WHERE b.branch_id = $1 AND b.removed_in IS NULL{bounds} AND $2 = {head} \
         UNION ALL \
         {select} WHERE b.branch_id = $1 AND b.added_in <= $2 \
         AND (b.removed_in IS NULL OR b.removed_in > $2){bounds} \
         AND $2 IS DISTINCT FROM {head} \
         ORDER BY 7, 8, 2, 4"
    );
    (sql, params)
}

pub(super) async fn row_groups(
    s: &mut Session,
    branch_id: i64,
    version: u64,
    range: &RowGroupRange,
) -> Result<Vec<RowGroupRecord>> {
    let (sql, params) = row_groups_statement(branch_id, version, range);
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    s.query(&sql, &refs)
        .await?
        .iter()
        .map(|r| {
            Ok(RowGroupRecord {
                id: r.try_get(0)?,
                file_id: r.try_get(1)?,
                path: r.try_get(2)?,
                rg_index: r.try_get::<_, i64>(3)? as u32,
                rows: u64_at(r, 4)?,
                bytes: u64_at(r, 5)?,
                min: required(scalar_at(r, 6)?)?,
                max: required(scalar_at(r, 7)?)?,
                file_bytes: u64_at(r, 8)?,
                file_row_groups: r.try_get::<_, Option<i64>>(9)?.map(|n| n as u32),
            })
        })
        .collect()
}

const DATASETS_SELECT: &str = datasets_select!();

/// The datasets named `$1` or under it (`$2` = `$1/`, `$3` = `$1` + `0`), with their
/// `main` heads: two seeks of the name index.
pub const DATASETS_UNDER_PREFIX: &str = concat!(
    datasets_select!(),
    " WHERE d.name = $1 OR (d.name >= $2 AND d.name < $3) ORDER BY d.name"
);

pub(super) async fn datasets(s: &mut Session, prefix: Option<&str>) -> Result<Vec<DatasetSummary>> {
    // A prefix is a range of the name index: the name itself, then the names in
    // ['p/', 'p0'), '0' being the byte after '/' (names compare bytewise, COLLATE "C").
    let rows = match crate::model::prefix_range(prefix) {
        (Some(exact), lo, hi) => s.query(DATASETS_UNDER_PREFIX, &[&exact, &lo, &hi]).await?,
        (None, _, _) => {
            s.query(&format!("{DATASETS_SELECT} ORDER BY d.name"), &[])
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(DatasetSummary {
                name: DatasetName::new(r.try_get::<_, String>(0)?)?,
                ordered_on: r.try_get(1)?,
                version: u64_at(r, 2)?,
                rows: u64_at(r, 3)?,
                row_groups: u64_at(r, 4)?,
                bytes: u64_at(r, 5)?,
                timestamp: time_at(r, 6)?,
            })
        })
        .collect()
}

/// What a commit was about to make visible when it sent `COMMIT`: enough to tell, if the
/// answer is lost, whether it landed.
pub(super) struct Pending {
    pub commit_id: i64,
    pub outcome: CommitOutcome,
}

/// The dataset, the branch, its head, and the totals of the base version (held by the
/// branch or, for the first write after a fork, by an ancestor), in one statement.
fn lookup_statement() -> String {
    format!(
        "WITH RECURSIVE d AS (SELECT id FROM datasets WHERE name = $1), \
         b AS (SELECT br.id, br.head_version FROM branches br JOIN d ON br.dataset_id = d.id \
               WHERE br.name = $2), \
         {} \
         SELECT d.id, b.id, b.head_version, base.rows, base.row_groups, base.bytes \
         FROM d LEFT JOIN b ON true \
         LEFT JOIN LATERAL (SELECT v.rows, v.row_groups, v.bytes FROM versions v \
             WHERE v.version = $3 \
             AND v.branch_id = (SELECT id FROM chain ORDER BY depth DESC LIMIT 1)) base ON true",
        holder_chain("(SELECT id FROM b)", "$3")
    )
}

const CREATE_DATASET: &str = "WITH d AS (INSERT INTO datasets (name, ordered_on, created_micros) \
     VALUES ($1, $2, $3) RETURNING id) \
     INSERT INTO branches (dataset_id, name, head_version, created_commit) \
     SELECT id, 'main', 0, $4::bigint FROM d RETURNING dataset_id, id";

/// Ends the lifetimes of the removed row groups on the branch, and sums what they held. The
/// ids it ended tell which were still live.
const REMOVE_ROW_GROUPS: &str = "WITH gone AS (UPDATE branch_row_groups SET removed_in = $1 \
     WHERE branch_id = $2 AND row_group_id = ANY($3) AND removed_in IS NULL AND added_in <= $4 \
     RETURNING row_group_id) \
     SELECT count(*), coalesce(sum(rg.rows), 0)::bigint, coalesce(sum(rg.bytes), 0)::bigint, \
     coalesce(array_agg(gone.row_group_id), '{}')::bigint[] \
     FROM gone JOIN row_groups rg ON rg.id = gone.row_group_id";

/// The new file, its row groups (from arrays, whatever their number) and their lifetimes on
/// the branch, in one statement: `$1` the dataset, `$2` the commit, `$3`–`$10` the file
/// ([`FileArrays::params`]), `$11` the branch, `$12` the new version.
const ADD_FILE: &str = "WITH f AS (INSERT INTO files (dataset_id, path, bytes, created_commit, row_group_count) \
     VALUES ($1, $3, $4, $2, $5) RETURNING id), \
     rg AS (INSERT INTO row_groups (file_id, rg_index, rows, bytes, min_value, max_value) \
       SELECT f.id, u.rg_index, u.rows, u.bytes, u.min_value, u.max_value FROM f, \
       unnest($6::bigint[], $7::bigint[], $8::bigint[], $9::bytea[], $10::bytea[]) \
         AS u(rg_index, rows, bytes, min_value, max_value) \
       RETURNING id, min_value, max_value) \
     INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, min_value, max_value) \
     SELECT $11::bigint, id, $12::bigint, min_value, max_value FROM rg";

/// A new dataset whose first version adds one file, in one statement: the dataset, `main`
/// at version 1, the file, its row groups and their lifetimes, and the version, with the
/// bounds of its row groups by the rule of [`NEW_VERSION`]. `$1`–`$4` the name,
/// `ordered_on`, time and commit; `$5`–`$12` the file ([`FileArrays::params`]); then the
/// version's operation, message, rows, bytes, schema, options and metadata.
const CREATE_WITH_FILE: &str = "WITH d AS (INSERT INTO datasets (name, ordered_on, created_micros) \
     VALUES ($1, $2, $3) RETURNING id), \
     b AS (INSERT INTO branches (dataset_id, name, head_version, created_commit) \
       SELECT id, 'main', 1, $4::bigint FROM d RETURNING dataset_id, id), \
     f AS (INSERT INTO files (dataset_id, path, bytes, created_commit, row_group_count) \
       SELECT id, $5::text, $6::bigint, $4::bigint, $7::bigint FROM d RETURNING id), \
     rg AS (INSERT INTO row_groups (file_id, rg_index, rows, bytes, min_value, max_value) \
       SELECT f.id, u.rg_index, u.rows, u.bytes, u.min_value, u.max_value FROM f, \
       unnest($8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[], $12::bytea[]) \
         AS u(rg_index, rows, bytes, min_value, max_value) \
       RETURNING id, min_value, max_value), \
     brg AS (INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, min_value, max_value) \
       SELECT b.id, rg.id, 1, rg.min_value, rg.max_value FROM b, rg), \
     v AS (INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, \
       row_groups, bytes, min_value, max_value, schema_json, options_json, metadata_json) \
       SELECT id, 1, $4::bigint, $13::text, $14::text, $15::bigint, $7::bigint, $16::bigint, \
       (SELECT min_value FROM rg ORDER BY max_value, min_value LIMIT 1), \
       (SELECT max_value FROM rg ORDER BY max_value DESC LIMIT 1), \
       $17::text, $18::text, $19::text FROM b) \
     SELECT dataset_id, id FROM b";

/// The row groups of a new file as the arrays the statements take.
struct FileArrays {
    index: Vec<i64>,
    rows: Vec<i64>,
    bytes: Vec<i64>,
    mins: Vec<Vec<u8>>,
    maxs: Vec<Vec<u8>>,
}

impl FileArrays {
    fn new(file: &NewFile) -> Self {
        let rgs = &file.row_groups;
        Self {
            index: rgs.iter().map(|rg| i64::from(rg.rg_index)).collect(),
            rows: rgs.iter().map(|rg| rg.rows as i64).collect(),
            bytes: rgs.iter().map(|rg| rg.bytes as i64).collect(),
            mins: rgs.iter().map(|rg| ordered::encode(&rg.min)).collect(),
            maxs: rgs.iter().map(|rg| ordered::encode(&rg.max)).collect(),
        }
    }

    /// The file's parameters, in the order both [`ADD_FILE`] and [`CREATE_WITH_FILE`] take
    /// them: path, bytes, row-group count, then the arrays of index, rows, bytes, min, max.
    fn params<'a>(
        &'a self,
        file: &'a NewFile,
        bytes: &'a i64,
        count: &'a i64,
    ) -> [SqlParam<'a>; 8] {
        [
            &file.path,
            bytes,
            count,
            &self.index,
            &self.rows,
            &self.bytes,
            &self.mins,
            &self.maxs,
        ]
    }

    fn total_rows(&self) -> i64 {
        self.rows.iter().sum()
    }

    fn total_bytes(&self) -> i64 {
        self.bytes.iter().sum()
    }
}

/// A borrowed statement parameter.
type SqlParam<'a> = &'a (dyn ToSql + Sync);

/// Moves the head (only if it is still the base) and records the version, with the bounds
/// of the live row groups: the first by (max, min) holds the minimum and the last the
/// maximum, as in SQLite's catalog; both are index lookups.
const NEW_VERSION: &str = "WITH moved AS (UPDATE branches SET head_version = $2 \
     WHERE id = $1 AND head_version = $3 RETURNING id) \
     INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, row_groups, \
     bytes, min_value, max_value, schema_json, options_json, metadata_json) \
     SELECT id, $2::bigint, $4::bigint, $5::text, $6::text, $7::bigint, $8::bigint, $9::bigint, \
     (SELECT min_value FROM branch_row_groups WHERE branch_id = $1 AND removed_in IS NULL \
      ORDER BY max_value, min_value LIMIT 1), \
     (SELECT max_value FROM branch_row_groups WHERE branch_id = $1 AND removed_in IS NULL \
      ORDER BY max_value DESC LIMIT 1), \
     $10::text, $11::text, $12::text FROM moved";

/// The commit primitive (see [`crate::DatasetWriter::commit`]). `pending` is set just
/// before `COMMIT` is sent.
pub(super) async fn commit(
    s: &mut Session,
    req: &CommitRequest,
    pending: &mut Option<Pending>,
) -> Result<CommitOutcome> {
    let conflict = |actual: u64| CatalogError::Conflict {
        dataset: req.dataset.to_string(),
        branch: req.branch.to_string(),
        expected: req.base_version,
        actual,
    };
    let base = req.base_version as i64;
    let (commit_id, now, mut found) = s
        .begin_commit_with(
            &lookup_statement(),
            &[&req.dataset.as_str(), &req.branch.as_str(), &base],
        )
        .await?;
    if found.len() > 1 {
        return Err(CatalogError::Corrupt(format!(
            "{} rows for one dataset and branch",
            found.len()
        )));
    }
    if let Some(request) = &req.request_id {
        // Under the clock lock, so the check and the update cannot race.
        let named = s
            .execute(
                "UPDATE commits SET request_id = $1 WHERE id = $2 \
                 AND NOT EXISTS (SELECT 1 FROM commits WHERE request_id = $1)",
                &[request, &commit_id],
            )
            .await?;
        if named == 0 {
            return Err(CatalogError::RequestApplied(request.clone()));
        }
    }
    let metadata_json =
        serde_json::to_string(&req.metadata).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    if found.is_empty()
        && req.base_version == 0
        && req.branch.as_str() == BranchName::MAIN
        && let Some(file) = &req.new_file
    {
        // The usual first write: everything in one statement.
        let a = FileArrays::new(file);
        let (name, file_bytes, count) = (
            req.dataset.as_str(),
            file.bytes as i64,
            a.index.len() as i64,
        );
        let (rows, bytes) = (a.total_rows(), a.total_bytes());
        let mut params: Vec<SqlParam> = vec![&name, &req.ordered_on, &now, &commit_id];
        params.extend(a.params(file, &file_bytes, &count));
        params.extend::<[SqlParam; 7]>([
            &req.operation,
            &req.message,
            &rows,
            &bytes,
            &req.schema_json,
            &req.options_json,
            &metadata_json,
        ]);
        let created = s.query_one(CREATE_WITH_FILE, &params).await;
        match created {
            // The clock lock makes this impossible; were it not, the other creator won.
            Err(e) if super::is_unique_violation(&e, "datasets_name_key") => {
                return Err(conflict(1));
            }
            other => other?,
        };
        return finish_commit(s, pending, 1, commit_id, now, rows).await;
    }
    let (dataset_id, branch_id, head, base_totals) = match found.pop() {
        Some(r) => match r.try_get::<_, Option<i64>>(1)? {
            Some(branch_id) => {
                let totals = match r.try_get::<_, Option<i64>>(3)? {
                    Some(rows) => Some((rows, r.try_get::<_, i64>(4)?, r.try_get::<_, i64>(5)?)),
                    None => None,
                };
                (r.try_get::<_, i64>(0)?, branch_id, u64_at(&r, 2)?, totals)
            }
            None => {
                return Err(CatalogError::BranchNotFound {
                    dataset: req.dataset.to_string(),
                    branch: req.branch.to_string(),
                });
            }
        },
        None if req.base_version == 0 && req.branch.as_str() == BranchName::MAIN => {
            let created = s
                .query_one(
                    CREATE_DATASET,
                    &[&req.dataset.as_str(), &req.ordered_on, &now, &commit_id],
                )
                .await;
            let r = match created {
                // The clock lock makes this impossible; were it not, the other creator won.
                Err(e) if super::is_unique_violation(&e, "datasets_name_key") => {
                    return Err(conflict(1));
                }
                other => other?,
            };
            (r.try_get(0)?, r.try_get(1)?, 0, None)
        }
        None => return Err(CatalogError::DatasetNotFound(req.dataset.to_string())),
    };
    if head != req.base_version {
        return Err(conflict(head));
    }
    let new_version = req.base_version + 1;
    // Totals of the new version: the base's, minus what is removed, plus what is added.
    let (mut rows, mut row_groups, mut bytes) = match (req.base_version, base_totals) {
        (0, _) => (0, 0, 0),
        (_, Some(totals)) => totals,
        (v, None) => {
            return Err(CatalogError::Corrupt(format!(
                "version v{v} of {}@{} is missing",
                req.dataset, req.branch
            )));
        }
    };
    if !req.removed_row_groups.is_empty() {
        let r = s
            .query_one(
                REMOVE_ROW_GROUPS,
                &[
                    &(new_version as i64),
                    &branch_id,
                    &req.removed_row_groups,
                    &base,
                ],
            )
            .await?;
        let (n, r_rows, r_bytes): (i64, i64, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        // A row group named twice, or not live, is not ended once per name. The head is
        // `base_version` (checked above, under the clock lock), so a row group that a
        // concurrent commit removed made this a `Conflict` already: that race re-plans. One
        // that is not live at the unmoved head is no race (see `RowGroupsNotLive`).
        if n as usize != req.removed_row_groups.len() {
            let mut ended: Vec<i64> = r.try_get(3)?;
            let not_live = req
                .removed_row_groups
                .iter()
                .filter(|id| match ended.iter().position(|e| e == *id) {
                    Some(i) => {
                        ended.swap_remove(i);
                        false
                    }
                    None => true,
                })
                .copied()
                .collect();
            return Err(CatalogError::RowGroupsNotLive {
                dataset: req.dataset.to_string(),
                branch: req.branch.to_string(),
                version: req.base_version,
                row_groups: not_live,
            });
        }
        rows -= r_rows;
        bytes -= r_bytes;
        row_groups -= n;
    }
    if let Some(file) = &req.new_file {
        let a = FileArrays::new(file);
        let (file_bytes, count) = (file.bytes as i64, a.index.len() as i64);
        let version = new_version as i64;
        let mut params: Vec<SqlParam> = vec![&dataset_id, &commit_id];
        params.extend(a.params(file, &file_bytes, &count));
        params.extend::<[SqlParam; 2]>([&branch_id, &version]);
        s.execute(ADD_FILE, &params).await?;
        rows += a.total_rows();
        bytes += a.total_bytes();
        row_groups += count;
    }
    let inserted = s
        .execute(
            NEW_VERSION,
            &[
                &branch_id,
                &(new_version as i64),
                &base,
                &commit_id,
                &req.operation,
                &req.message,
                &rows,
                &row_groups,
                &bytes,
                &req.schema_json,
                &req.options_json,
                &metadata_json,
            ],
        )
        .await?;
    if inserted != 1 {
        return Err(conflict(head));
    }
    finish_commit(s, pending, new_version, commit_id, now, rows).await
}

/// Sends `COMMIT` for a commit that made `version`, with `pending` set first.
async fn finish_commit(
    s: &mut Session,
    pending: &mut Option<Pending>,
    version: u64,
    commit_id: i64,
    now: i64,
    rows: i64,
) -> Result<CommitOutcome> {
    let outcome = CommitOutcome {
        version,
        commit_id,
        timestamp: micros_to_time(now),
        rows: rows as u64,
    };
    *pending = Some(Pending {
        commit_id,
        outcome: outcome.clone(),
    });
    s.commit().await?;
    Ok(outcome)
}

/// Whether the commit whose answer was lost landed: its file is recorded with its commit id
/// (no other transaction can record that path, and the id is this commit's only if it
/// committed).
pub(super) async fn landed(s: &mut Session, path: &str, pending: &Pending) -> Result<bool> {
    Ok(s.query_opt(
        "SELECT 1 FROM files WHERE path = $1 AND created_commit = $2",
        &[&path, &pending.commit_id],
    )
    .await?
    .is_some())
}

/// The branch that holds `version` of `branch`, from the branches' parents and forks.
fn holder_of(
    branches: &HashMap<i64, (Option<i64>, Option<i64>)>,
    branch: i64,
    version: i64,
) -> i64 {
    let mut id = branch;
    while let Some((Some(parent), Some(fork))) = branches.get(&id) {
        if version > *fork {
            break;
        }
        id = *parent;
    }
    id
}

pub(super) async fn expire(
    s: &mut Session,
    policy: &RetentionPolicy,
    dry_run: bool,
) -> Result<ExpireOutcome> {
    s.begin_locked().await?;
    let mut outcome = ExpireOutcome::default();
    if policy.keep_last.is_some() || policy.keep_newer_than_micros.is_some() {
        let rows = s
            .query(
                "SELECT b.id, d.name, b.name, b.head_version, b.parent_branch_id, b.fork_version \
                 FROM branches b JOIN datasets d ON d.id = b.dataset_id ORDER BY b.id",
                &[],
            )
            .await?;
        let mut branches = Vec::new();
        let mut tree = HashMap::new();
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let (dataset, branch, head): (String, String, i64) =
                (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            tree.insert(
                id,
                (
                    r.try_get::<_, Option<i64>>(4)?,
                    r.try_get::<_, Option<i64>>(5)?,
                ),
            );
            branches.push((id, dataset, branch, head));
        }
        // Retention never expires a branch head (wherever it is held) or a tagged version.
        let mut pinned: HashSet<(i64, i64)> = branches
            .iter()
            .map(|(id, _, _, head)| (holder_of(&tree, *id, *head), *head))
            .collect();
        for r in s.query("SELECT branch_id, version FROM tags", &[]).await? {
            pinned.insert((r.try_get(0)?, r.try_get(1)?));
        }
        let mut versions: BTreeMap<i64, Vec<(i64, i64, bool)>> = BTreeMap::new();
        for r in s
            .query(
                "SELECT v.branch_id, v.version, c.ts_micros, v.expired FROM versions v \
                 JOIN commits c ON c.id = v.commit_id ORDER BY v.branch_id, v.version",
                &[],
            )
            .await?
        {
            versions.entry(r.try_get(0)?).or_default().push((
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ));
        }
        let mut lifetimes: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
        for r in s
            .query(
                "SELECT branch_id, row_group_id, added_in, removed_in FROM branch_row_groups \
                 WHERE removed_in IS NOT NULL",
                &[],
            )
            .await?
        {
            lifetimes.entry(r.try_get(0)?).or_default().push((
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ));
        }
        let (mut expire_branch, mut expire_version) = (Vec::new(), Vec::new());
        let (mut drop_branch, mut drop_rg) = (Vec::new(), Vec::new());
        for (branch_id, dataset, branch, head) in &branches {
            let keeps = |version: i64, ts: i64| {
                pinned.contains(&(*branch_id, version))
                    || policy.keep_last.is_some_and(|n| version > head - n as i64)
                    || policy
                        .keep_newer_than_micros
                        .is_some_and(|cutoff| ts > cutoff)
            };
            let own = versions.get(branch_id).map_or(&[][..], |v| v.as_slice());
            let retained: Vec<i64> = own
                .iter()
                .filter(|(v, ts, expired)| !expired && keeps(*v, *ts))
                .map(|(v, _, _)| *v)
                .collect();
            for (v, ts, expired) in own {
                if !expired && !keeps(*v, *ts) {
                    outcome
                        .expired_versions
                        .push((dataset.clone(), branch.clone(), *v as u64));
                    expire_branch.push(*branch_id);
                    expire_version.push(*v);
                }
            }
            // A lifetime [added_in, removed_in) is needed while a retained version lies in it.
            for (rg, added, removed) in lifetimes.get(branch_id).map_or(&[][..], |l| l.as_slice()) {
                let first_at_or_after = retained.partition_point(|v| v < added);
                let needed = retained.get(first_at_or_after).is_some_and(|v| v < removed);
                if !needed {
                    drop_branch.push(*branch_id);
                    drop_rg.push(*rg);
                }
            }
        }
        if !expire_branch.is_empty() {
            s.execute(
                "UPDATE versions v SET expired = true \
                 FROM unnest($1::bigint[], $2::bigint[]) AS x(branch_id, version) \
                 WHERE v.branch_id = x.branch_id AND v.version = x.version",
                &[&expire_branch, &expire_version],
            )
            .await?;
        }
        if !drop_branch.is_empty() {
            s.execute(
                "DELETE FROM branch_row_groups b \
                 USING unnest($1::bigint[], $2::bigint[]) AS x(branch_id, row_group_id) \
                 WHERE b.branch_id = x.branch_id AND b.row_group_id = x.row_group_id",
                &[&drop_branch, &drop_rg],
            )
            .await?;
        }
    }
    s.execute(
        "DELETE FROM row_groups rg WHERE NOT EXISTS \
         (SELECT 1 FROM branch_row_groups b WHERE b.row_group_id = rg.id)",
        &[],
    )
    .await?;
    let mut unreferenced: Vec<String> = s
        .query(
            "DELETE FROM files f WHERE NOT EXISTS \
             (SELECT 1 FROM row_groups rg WHERE rg.file_id = f.id) RETURNING path",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    unreferenced.sort();
    outcome.unreferenced_files = unreferenced;
    if dry_run {
        s.rollback().await?;
    } else {
        s.commit().await?;
    }
    Ok(outcome)
}
