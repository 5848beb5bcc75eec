//! Tags, branches and fast-forward merges in the PostgreSQL catalog (docs/design/0003).
//! Each mutation is one transaction under the lake's clock lock that checks its
//! preconditions inside it, with the same refusals as SQLite's catalog.

use super::datasets::{existing_branch, load_branch, load_version};
use super::{NOW_MICROS, Session, is_unique_violation, micros_to_time, time_at, u64_at};
use crate::error::{CatalogError, Result};
use crate::model::{BranchRecord, MergeOutcome, TagRecord};
use tarn_core::BranchName;
use tokio_postgres::Row;

const TAG_COLUMNS: &str = "t.name, t.branch_id, b.name, t.version, t.created_micros";

fn tag_from_row(r: &Row) -> Result<TagRecord> {
    Ok(TagRecord {
        name: r.try_get(0)?,
        branch_id: r.try_get(1)?,
        branch: BranchName::new(r.try_get::<_, String>(2)?)?,
        version: u64_at(r, 3)?,
        created_at: time_at(r, 4)?,
    })
}

pub(super) async fn load_tag(
    s: &mut Session,
    dataset_id: i64,
    name: &str,
) -> Result<Option<TagRecord>> {
    s.query_opt(
        &format!(
            "SELECT {TAG_COLUMNS} FROM tags t JOIN branches b ON b.id = t.branch_id \
             WHERE t.dataset_id = $1 AND t.name = $2"
        ),
        &[&dataset_id, &name],
    )
    .await?
    .map(|r| tag_from_row(&r))
    .transpose()
}

pub(super) async fn tags(s: &mut Session, dataset_id: i64) -> Result<Vec<TagRecord>> {
    s.query(
        &format!(
            "SELECT {TAG_COLUMNS} FROM tags t JOIN branches b ON b.id = t.branch_id \
             WHERE t.dataset_id = $1 ORDER BY t.name"
        ),
        &[&dataset_id],
    )
    .await?
    .iter()
    .map(tag_from_row)
    .collect()
}

/// The branch that holds `version` of `branch`, if that version exists and was not expired.
async fn live_version(s: &mut Session, branch: &BranchRecord, version: u64) -> Result<i64> {
    if version == 0 || version > branch.head {
        return Err(CatalogError::Refused(format!(
            "version v{version} does not exist on branch {} (it has v1 to v{})",
            branch.name, branch.head
        )));
    }
    let record = load_version(s, branch.id, version).await?.ok_or_else(|| {
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

fn tag_taken(name: &str, existing: &TagRecord) -> CatalogError {
    CatalogError::Refused(format!(
        "tag \"{name}\" already exists (it names {}:v{}); tags are immutable: \
         delete it with `tarn tag -d` or move it with `--force`",
        existing.branch, existing.version
    ))
}

pub(super) async fn create_tag(
    s: &mut Session,
    dataset_id: i64,
    name: &str,
    branch_id: i64,
    version: u64,
    force: bool,
) -> Result<TagRecord> {
    s.begin_locked().await?;
    let branch = existing_branch(s, branch_id).await?;
    let holder = live_version(s, &branch, version).await?;
    if let Some(existing) = load_tag(s, dataset_id, name).await? {
        if !force {
            return Err(tag_taken(name, &existing));
        }
        s.execute(
            "DELETE FROM tags WHERE dataset_id = $1 AND name = $2",
            &[&dataset_id, &name],
        )
        .await?;
    }
    let inserted = s
        .execute(
            &format!(
                "INSERT INTO tags (dataset_id, name, branch_id, version, created_micros) \
                 VALUES ($1, $2, $3, $4, {NOW_MICROS})"
            ),
            &[&dataset_id, &name, &holder, &(version as i64)],
        )
        .await;
    if let Err(e) = inserted {
        // The clock lock makes a concurrent tagger impossible; were it not, it won.
        return Err(if is_unique_violation(&e, "tags_pkey") {
            CatalogError::Refused(format!(
                "tag \"{name}\" already exists; tags are immutable: delete it with `tarn tag -d` \
                 or move it with `--force`"
            ))
        } else {
            e
        });
    }
    let tag = load_tag(s, dataset_id, name)
        .await?
        .ok_or_else(|| CatalogError::Corrupt("new tag vanished".into()))?;
    s.commit().await?;
    Ok(tag)
}

pub(super) async fn delete_tag(s: &mut Session, dataset_id: i64, name: &str) -> Result<bool> {
    s.begin_locked().await?;
    let n = s
        .execute(
            "DELETE FROM tags WHERE dataset_id = $1 AND name = $2",
            &[&dataset_id, &name],
        )
        .await?;
    s.commit().await?;
    Ok(n == 1)
}

fn branch_taken(name: &BranchName) -> CatalogError {
    CatalogError::Refused(format!(
        "branch \"{name}\" already exists; pick another name or delete it with `tarn branch -d`"
    ))
}

pub(super) async fn create_branch(
    s: &mut Session,
    dataset_id: i64,
    from: i64,
    version: u64,
    name: &BranchName,
) -> Result<BranchRecord> {
    let (commit_id, _) = s.begin_commit().await?;
    if load_branch(s, dataset_id, name.as_str()).await?.is_some() {
        return Err(branch_taken(name));
    }
    let parent = existing_branch(s, from).await?;
    let holder = live_version(s, &parent, version).await?;
    let inserted = s
        .query_one(
            "INSERT INTO branches (dataset_id, name, head_version, parent_branch_id, fork_version, created_commit) \
             VALUES ($1, $2, $3, $4, $3, $5) RETURNING id",
            &[&dataset_id, &name.as_str(), &(version as i64), &parent.id, &commit_id],
        )
        .await;
    let id: i64 = match inserted {
        Err(e) if is_unique_violation(&e, "branches_dataset_id_name_key") => {
            return Err(branch_taken(name));
        }
        other => other?.try_get(0)?,
    };
    // The child's own copy of the row groups live at the fork (no data is copied): its
    // writes then add and remove lifetimes on its own rows only.
    s.execute(
        "INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, min_value, max_value) \
         SELECT $1::bigint, row_group_id, $2::bigint, min_value, max_value FROM branch_row_groups \
         WHERE branch_id = $3 AND added_in <= $2 AND (removed_in IS NULL OR removed_in > $2)",
        &[&id, &(version as i64), &holder],
    )
    .await?;
    let branch = existing_branch(s, id).await?;
    s.commit().await?;
    Ok(branch)
}

pub(super) async fn delete_branch(
    s: &mut Session,
    dataset_id: i64,
    name: &BranchName,
) -> Result<()> {
    s.begin_locked().await?;
    if name.as_str() == BranchName::MAIN {
        return Err(CatalogError::Refused(
            "the main branch cannot be deleted".into(),
        ));
    }
    let branch = load_branch(s, dataset_id, name.as_str())
        .await?
        .ok_or_else(|| CatalogError::Refused(format!("branch \"{name}\" does not exist")))?;
    let tagged: Vec<String> = s
        .query(
            "SELECT name FROM tags WHERE branch_id = $1 ORDER BY name",
            &[&branch.id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if !tagged.is_empty() {
        return Err(CatalogError::Refused(format!(
            "branch \"{name}\" holds versions named by tags ({}); delete those tags first",
            tagged.join(", ")
        )));
    }
    let own_from = branch.fork_version.unwrap_or(0) as i64;
    let children: Vec<String> = s
        .query(
            "SELECT name FROM branches WHERE parent_branch_id = $1 AND fork_version > $2 \
             ORDER BY name",
            &[&branch.id, &own_from],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if !children.is_empty() {
        return Err(CatalogError::Refused(format!(
            "branch \"{name}\" has branches forked from its own versions ({}); delete them first",
            children.join(", ")
        )));
    }
    // Branches forked at a version this branch only inherited hang from its parent now.
    s.execute(
        "UPDATE branches SET parent_branch_id = $1 WHERE parent_branch_id = $2",
        &[&branch.parent_branch_id, &branch.id],
    )
    .await?;
    s.execute(
        "DELETE FROM branch_row_groups WHERE branch_id = $1",
        &[&branch.id],
    )
    .await?;
    s.execute("DELETE FROM versions WHERE branch_id = $1", &[&branch.id])
        .await?;
    s.execute("DELETE FROM branches WHERE id = $1", &[&branch.id])
        .await?;
    s.commit().await
}

pub(super) async fn fast_forward(
    s: &mut Session,
    dataset_id: i64,
    source: &BranchName,
    target: &BranchName,
) -> Result<MergeOutcome> {
    s.begin_locked().await?;
    let missing = |b: &BranchName| CatalogError::Refused(format!("branch \"{b}\" does not exist"));
    let src = load_branch(s, dataset_id, source.as_str())
        .await?
        .ok_or_else(|| missing(source))?;
    let dst = load_branch(s, dataset_id, target.as_str())
        .await?
        .ok_or_else(|| missing(target))?;
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
    // The clock row is locked already; the merge takes the next commit under it.
    let row = s.query_one(super::NEW_COMMIT, &[]).await?;
    let (commit_id, now): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let fork = fork as i64;
    // The versions keep their numbers, operation and message; on the target they become
    // visible now, with this commit, so reads pinned to an earlier lake state are unchanged.
    s.execute(
        "INSERT INTO versions (branch_id, version, commit_id, operation, message, rows, row_groups, bytes, \
         min_value, max_value, schema_json, options_json, metadata_json, expired) \
         SELECT $1::bigint, version, $2::bigint, operation, message, rows, row_groups, bytes, min_value, \
         max_value, schema_json, options_json, metadata_json, expired FROM versions \
         WHERE branch_id = $3 AND version > $4",
        &[&dst.id, &commit_id, &src.id, &fork],
    )
    .await?;
    // Row groups the source added after the fork, with their lifetimes.
    s.execute(
        "INSERT INTO branch_row_groups (branch_id, row_group_id, added_in, removed_in, min_value, max_value) \
         SELECT $1::bigint, row_group_id, added_in, removed_in, min_value, max_value \
         FROM branch_row_groups WHERE branch_id = $2 AND added_in > $3",
        &[&dst.id, &src.id, &fork],
    )
    .await?;
    // Row groups live at the fork end where they ended on the source. The source's row for
    // one is its fork copy (added_in = fork) after a first fork, but any earlier version
    // after a previous fast-forward moved the fork, so it is looked up by row group alone.
    // When the source has no row for it any more, vacuum dropped it because no retained
    // version of the source after the fork holds it: it ends right after the fork.
    s.execute(
        "UPDATE branch_row_groups t SET removed_in = CASE WHEN EXISTS \
         (SELECT 1 FROM branch_row_groups s WHERE s.branch_id = $2 AND s.row_group_id = t.row_group_id) \
         THEN (SELECT s.removed_in FROM branch_row_groups s \
               WHERE s.branch_id = $2 AND s.row_group_id = t.row_group_id) \
         ELSE $3::bigint + 1 END \
         WHERE t.branch_id = $1 AND t.removed_in IS NULL",
        &[&dst.id, &src.id, &fork],
    )
    .await?;
    let moved = s
        .execute(
            "UPDATE branches SET head_version = $1 WHERE id = $2 AND head_version = $3",
            &[&(src.head as i64), &dst.id, &fork],
        )
        .await?;
    // Both branches now share the history up to the source's head: the source forks there,
    // so the next fast-forward works again. Its own version rows stay (reads pinned to a
    // lake state before the merge still find them), and its tags move to the target's
    // copies, which retention keeps.
    s.execute(
        "UPDATE branches SET fork_version = $1 WHERE id = $2",
        &[&(src.head as i64), &src.id],
    )
    .await?;
    s.execute(
        "UPDATE tags SET branch_id = $1 WHERE branch_id = $2 AND version <= $3",
        &[&dst.id, &src.id, &(src.head as i64)],
    )
    .await?;
    if moved != 1 {
        return Err(CatalogError::Corrupt(format!(
            "the head of {target} moved inside a write transaction"
        )));
    }
    s.commit().await?;
    Ok(MergeOutcome::FastForward {
        from: fork as u64,
        to: src.head,
        commit_id,
        timestamp: micros_to_time(now),
    })
}
