//! Tags, branches and fast-forward merges in the SQLite catalog (docs/design/0003). Each
//! mutation is one `BEGIN IMMEDIATE` transaction that checks its preconditions inside it.

use super::{existing_branch, holder, load_branch, load_version, micros_to_time, new_commit};
use crate::error::{CatalogError, Result};
use crate::model::{BranchRecord, MergeOutcome, TagRecord};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tarn_core::BranchName;

const TAG_COLUMNS: &str = "t.name, t.branch_id, b.name, t.version, t.created_micros";

fn tag_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TagRecord, String)> {
    Ok((
        TagRecord {
            name: r.get(0)?,
            branch_id: r.get(1)?,
            branch: BranchName::main(),
            version: r.get::<_, i64>(3)? as u64,
            created_at: micros_to_time(r.get(4)?),
        },
        r.get(2)?,
    ))
}

fn with_branch((tag, branch): (TagRecord, String)) -> Result<TagRecord> {
    Ok(TagRecord {
        branch: BranchName::new(branch)?,
        ..tag
    })
}

pub(super) fn load_tag(
    conn: &Connection,
    dataset_id: i64,
    name: &str,
) -> Result<Option<TagRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {TAG_COLUMNS} FROM tags t JOIN branches b ON b.id = t.branch_id \
         WHERE t.dataset_id = ?1 AND t.name = ?2"
    ))?
    .query_row(params![dataset_id, name], tag_from_row)
    .optional()?
    .map(with_branch)
    .transpose()
}

pub(super) fn tags(conn: &Connection, dataset_id: i64) -> Result<Vec<TagRecord>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {TAG_COLUMNS} FROM tags t JOIN branches b ON b.id = t.branch_id \
             WHERE t.dataset_id = ?1 ORDER BY t.name"
        ))?
        .query_map([dataset_id], tag_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(with_branch).collect()
}

fn live_version(conn: &Connection, branch: &BranchRecord, version: u64) -> Result<i64> {
    if version == 0 || version > branch.head {
        return Err(CatalogError::Refused(format!(
            "version v{version} does not exist on branch {} (it has v1 to v{})",
            branch.name, branch.head
        )));
    }
    let record = load_version(conn, branch.id, version)?.ok_or_else(|| {
        CatalogError::Corrupt(format!("version v{version} of {} is missing", branch.name))
    })?;
    if record.expired {
        return Err(CatalogError::Refused(format!(
            "version v{version} of branch {} was removed by `tarn vacuum`",
            branch.name
        )));
    }
    Ok(record.branch_id)
}

pub(super) fn create_tag(
    conn: &mut Connection,
    dataset_id: i64,
    name: &str,
    branch_id: i64,
    version: u64,
    force: bool,
) -> Result<TagRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let branch = existing_branch(&tx, branch_id)?;
    let holder = live_version(&tx, &branch, version)?;
    if let Some(existing) = load_tag(&tx, dataset_id, name)? {
        if !force {
            return Err(CatalogError::Refused(format!(
                "tag \"{name}\" already exists (it names {}:v{}); tags are immutable: \
                 delete it with `tarn tag -d` or move it with `--force`",
                existing.branch, existing.version
            )));
        }
        tx.execute(
            "DELETE FROM tags WHERE dataset_id = ?1 AND name = ?2",
            params![dataset_id, name],
        )?;
    }
    tx.execute(
        "INSERT INTO tags (dataset_id, name, branch_id, version, created_micros) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            dataset_id,
            name,
            holder,
            version as i64,
            super::now_micros()
        ],
    )?;
    let tag = load_tag(&tx, dataset_id, name)?
        .ok_or_else(|| CatalogError::Corrupt("new tag vanished".into()))?;
    tx.commit()?;
    Ok(tag)
}

pub(super) fn delete_tag(conn: &mut Connection, dataset_id: i64, name: &str) -> Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM tags WHERE dataset_id = ?1 AND name = ?2",
        params![dataset_id, name],
    )?;
    tx.commit()?;
    Ok(n == 1)
}

pub(super) fn create_branch(
    conn: &mut Connection,
    dataset_id: i64,
    from: i64,
    version: u64,
    name: &BranchName,
) -> Result<BranchRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if load_branch(&tx, dataset_id, name.as_str())?.is_some() {
        return Err(CatalogError::Refused(format!(
            "branch \"{name}\" already exists; pick another name or delete it with `tarn branch -d`"
        )));
    }
    let parent = existing_branch(&tx, from)?;
    let holder = live_version(&tx, &parent, version)?;
    let (commit_id, _) = new_commit(&tx)?;
    tx.execute(
        "INSERT INTO branches (dataset_id, name, head_version, parent_branch_id, fork_version, created_commit) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            dataset_id,
            name.as_str(),
            version as i64,
            parent.id,
            version as i64,
            commit_id
        ],
    )?;
    let id = tx.last_insert_rowid();
    // The child's own copy of the row groups live at the fork (no data is copied): its
    // writes then add and remove lifetimes on its own rows only.
    tx.execute(
        "INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, min_value, max_value) \
         SELECT ?1, row_group_id, ?2, min_value, max_value FROM branch_row_groups \
         WHERE branch_id = ?3 AND added_in <= ?2 AND (removed_in IS NULL OR removed_in > ?2)",
        params![id, version as i64, holder],
    )?;
    let branch = existing_branch(&tx, id)?;
    tx.commit()?;
    Ok(branch)
}

pub(super) fn delete_branch(
    conn: &mut Connection,
    dataset_id: i64,
    name: &BranchName,
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if name.as_str() == BranchName::MAIN {
        return Err(CatalogError::Refused(
            "the main branch cannot be deleted".into(),
        ));
    }
    let branch = load_branch(&tx, dataset_id, name.as_str())?
        .ok_or_else(|| CatalogError::Refused(format!("branch \"{name}\" does not exist")))?;
    let tagged: Vec<String> = tx
        .prepare("SELECT name FROM tags WHERE branch_id = ?1 ORDER BY name")?
        .query_map([branch.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !tagged.is_empty() {
        return Err(CatalogError::Refused(format!(
            "branch \"{name}\" holds versions named by tags ({}); delete those tags first",
            tagged.join(", ")
        )));
    }
    let own_from = branch.fork_version.unwrap_or(0);
    let children: Vec<String> = tx
        .prepare(
            "SELECT name FROM branches WHERE parent_branch_id = ?1 AND fork_version > ?2 ORDER BY name",
        )?
        .query_map(params![branch.id, own_from as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !children.is_empty() {
        return Err(CatalogError::Refused(format!(
            "branch \"{name}\" has branches forked from its own versions ({}); delete them first",
            children.join(", ")
        )));
    }
    // Branches forked at a version this branch only inherited hang from its parent now.
    tx.execute(
        "UPDATE branches SET parent_branch_id = ?1 WHERE parent_branch_id = ?2",
        params![branch.parent_branch_id, branch.id],
    )?;
    tx.execute(
        "DELETE FROM branch_row_groups WHERE branch_id = ?1",
        [branch.id],
    )?;
    tx.execute("DELETE FROM versions WHERE branch_id = ?1", [branch.id])?;
    tx.execute("DELETE FROM branches WHERE id = ?1", [branch.id])?;
    tx.commit()?;
    Ok(())
}

pub(super) fn fast_forward(
    conn: &mut Connection,
    dataset_id: i64,
    source: &BranchName,
    target: &BranchName,
) -> Result<MergeOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let missing = |b: &BranchName| CatalogError::Refused(format!("branch \"{b}\" does not exist"));
    let src = load_branch(&tx, dataset_id, source.as_str())?.ok_or_else(|| missing(source))?;
    let dst = load_branch(&tx, dataset_id, target.as_str())?.ok_or_else(|| missing(target))?;
    if src.id == dst.id {
        return Err(CatalogError::Refused(format!(
            "cannot merge branch \"{source}\" into itself"
        )));
    }
    let fork = match (src.parent_branch_id, src.fork_version) {
        (Some(parent), Some(fork)) if parent == dst.id => fork,
        _ => {
            return Err(CatalogError::Refused(format!(
                "branch \"{source}\" was not forked from \"{target}\": only a fast-forward into the \
                 branch it was forked from is supported"
            )));
        }
    };
    if src.head == fork {
        return Ok(MergeOutcome::UpToDate { version: dst.head });
    }
    if dst.head != fork {
        return Err(CatalogError::Refused(format!(
            "{target} has moved since {source} was forked from it at v{fork} ({target} is now at \
             v{}): only a fast-forward merge is supported; re-create {source} from {target}'s \
             head and apply the change again",
            dst.head
        )));
    }
    let (commit_id, now) = new_commit(&tx)?;
    // The versions keep their numbers, operation and message; on the target they become
    // visible now, with this commit, so reads pinned to an earlier lake state are unchanged.
    tx.execute(
        "INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, row_groups, bytes, \
         min_value, max_value, schema_json, options_json, metadata_json, expired) \
         SELECT ?1, version, ?2, operation, message, rows, row_groups, bytes, min_value, max_value, \
         schema_json, options_json, metadata_json, expired FROM versions WHERE branch_id = ?3 AND version > ?4",
        params![dst.id, commit_id, src.id, fork as i64],
    )?;
    // Row groups the source added after the fork, with their lifetimes.
    tx.execute(
        "INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, removed_in, min_value, max_value) \
         SELECT ?1, row_group_id, added_in, removed_in, min_value, max_value FROM branch_row_groups \
         WHERE branch_id = ?2 AND added_in > ?3",
        params![dst.id, src.id, fork as i64],
    )?;
    // Row groups live at the fork end where they ended on the source. The source's row for
    // one is its fork copy (added_in = fork) after a first fork, but any earlier version
    // after a previous fast-forward moved the fork, so it is looked up by row group alone.
    // When the source has no row for it any more, vacuum dropped it because no retained
    // version of the source after the fork holds it: it ends right after the fork.
    tx.execute(
        "UPDATE branch_row_groups SET removed_in = CASE WHEN EXISTS \
         (SELECT 1 FROM branch_row_groups s \
          WHERE s.branch_id = ?2 AND s.row_group_id = branch_row_groups.row_group_id) \
         THEN (SELECT s.removed_in FROM branch_row_groups s \
          WHERE s.branch_id = ?2 AND s.row_group_id = branch_row_groups.row_group_id) \
         ELSE ?3 + 1 END \
         WHERE branch_id = ?1 AND removed_in IS NULL",
        params![dst.id, src.id, fork as i64],
    )?;
    let moved = tx.execute(
        "UPDATE branches SET head_version = ?1 WHERE id = ?2 AND head_version = ?3",
        params![src.head as i64, dst.id, fork as i64],
    )?;
    // Both branches now share the history up to the source's head: the source forks there,
    // so the next fast-forward works again. Its own version rows stay (reads pinned to a lake
    // state before the merge still find them), and its tags move to the target's copies,
    // which retention keeps.
    tx.execute(
        "UPDATE branches SET fork_version = ?1 WHERE id = ?2",
        params![src.head as i64, src.id],
    )?;
    tx.execute(
        "UPDATE tags SET branch_id = ?1 WHERE branch_id = ?2 AND version <= ?3",
        params![dst.id, src.id, src.head as i64],
    )?;
    if moved != 1 {
        return Err(CatalogError::Corrupt(format!(
            "the head of {target} moved inside a write transaction"
        )));
    }
    tx.commit()?;
    Ok(MergeOutcome::FastForward {
        from: fork,
        to: src.head,
        commit_id,
        timestamp: micros_to_time(now),
    })
}

/// The `(branch, version)` pairs retention must keep whatever the policy: every branch head,
/// resolved to the branch that holds it, and every tagged version.
pub(super) fn pinned_versions(conn: &Connection) -> Result<std::collections::HashSet<(i64, i64)>> {
    let mut pinned = std::collections::HashSet::new();
    let heads: Vec<(i64, i64)> = conn
        .prepare("SELECT id, head_version FROM branches")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (branch, head) in heads {
        pinned.insert((holder(conn, branch, head as u64)?, head));
    }
    let tagged: Vec<(i64, i64)> = conn
        .prepare("SELECT branch_id, version FROM tags")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    pinned.extend(tagged);
    Ok(pinned)
}
