//! Tags, branches and fast-forward merges (SPEC §1, §5; docs/design/0003).
//!
//! A tag is an immutable name for one version. A branch is a line of versions made from any
//! version of another branch without copying data; writes to it never change its parent. A
//! fast-forward merge moves a branch's head to the head of a branch forked from it, when
//! the target has not moved since the fork.

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::snapshot::Snapshot;
use tarn_catalog::{BranchRecord, DatasetRecord, MergeOutcome, TagRecord};
use tarn_core::uri::{is_tag_like, validate_tag};
use tarn_core::{BranchName, Ref, TarnUri};

/// One tag, as `tarn tags` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TagInfo {
    pub name: String,
    pub dataset: String,
    /// The branch that holds the version.
    pub branch: String,
    pub version: u64,
    /// `tarn://dataset@branch:vN`, the version the tag names.
    pub uri: String,
    pub created: String,
}

/// One branch, as `tarn branches` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BranchInfo {
    pub name: String,
    pub dataset: String,
    pub head: u64,
    /// The branch it was forked from and at which version (`None` for `main`).
    pub parent: Option<String>,
    pub fork_version: Option<u64>,
    /// The lake-wide commit that created it.
    pub created_commit: Option<i64>,
}

/// What `tarn merge` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MergeInfo {
    pub dataset: String,
    pub source: String,
    pub target: String,
    /// `up-to-date` or `fast-forward`.
    pub outcome: &'static str,
    pub from_version: u64,
    pub to_version: u64,
    pub commit_id: Option<i64>,
}

/// Refuses a name that cannot be a tag: one that is not a valid name, or that reads as a
/// version, index, date or time in a `tarn://` URI.
pub fn check_tag_name(name: &str) -> Result<()> {
    validate_tag(name).map_err(|reason| Error::InvalidInput(format!("bad tag name: {reason}")))?;
    if !is_tag_like(name) {
        return Err(Error::InvalidInput(format!(
            "bad tag name {name:?}: it reads as a version, index, date or time in a tarn:// \
             URI (`latest`, `v3`, `-1`, `2024-01-31`); pick a name such as release-{name}"
        )));
    }
    Ok(())
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn version_uri(dataset: &DatasetRecord, branch: &BranchName, version: u64) -> String {
    let mut uri = TarnUri::new(dataset.name.clone()).with_ref(Ref::Version(version));
    if branch.as_str() != BranchName::MAIN {
        uri.branch = Some(branch.clone());
    }
    uri.to_string()
}

/// Refuses a URI with a version part where only a dataset or branch makes sense.
fn no_ref(uri: &TarnUri, why: &str) -> Result<()> {
    if uri.reference == Ref::Live {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "{uri}: {why}, not to one version; drop the \":{}\" part",
        uri.reference
    )))
}

impl Lake {
    pub(crate) async fn dataset_record(&self, uri: &TarnUri) -> Result<DatasetRecord> {
        self.catalog
            .reader
            .dataset(&uri.dataset)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{uri}: dataset {:?} does not exist",
                    uri.dataset.as_str()
                ))
            })
    }

    async fn branch_record(&self, uri: &TarnUri) -> Result<(DatasetRecord, BranchRecord)> {
        let dataset = self.dataset_record(uri).await?;
        let name = uri.branch_name();
        let branch = self
            .catalog
            .reader
            .branch(dataset.id, &name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("{uri}: branch {:?} does not exist", name.as_str()))
            })?;
        Ok((dataset, branch))
    }

    fn tag_info(dataset: &DatasetRecord, tag: &TagRecord) -> TagInfo {
        TagInfo {
            name: tag.name.clone(),
            dataset: dataset.name.to_string(),
            branch: tag.branch.to_string(),
            version: tag.version,
            uri: version_uri(dataset, &tag.branch, tag.version),
            created: time(tag.created_at),
        }
    }

    /// Names the version `uri` resolves to (the head when it has no ref). A taken name is
    /// refused unless `force`; a name that reads as a version, index, date or timestamp is
    /// refused always, so `tarn://x:NAME` can only ever mean the tag.
    pub async fn tag(&self, uri: &str, name: &str, force: bool) -> Result<TagInfo> {
        check_tag_name(name)?;
        let snapshot = self.snapshot(uri).await?;
        let tag = self
            .catalog
            .writer
            .create_tag(
                snapshot.dataset.id,
                name,
                snapshot.branch.id,
                snapshot.version.version,
                force,
            )
            .await?;
        Ok(Self::tag_info(&snapshot.dataset, &tag))
    }

    /// Removes tag `name` of the dataset `dataset` names (a URI or a bare name, without a
    /// ref).
    pub async fn delete_tag(&self, dataset: &str, name: &str) -> Result<()> {
        let uri = TarnUri::parse_lenient(dataset)?;
        no_ref(&uri, "a tag belongs to the dataset")?;
        let record = self.dataset_record(&uri).await?;
        if self.catalog.writer.delete_tag(record.id, name).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "{}: tag {name:?} does not exist",
                uri.with_ref(Ref::Live)
            )))
        }
    }

    /// The tags of a dataset, by name.
    pub async fn tags(&self, dataset: &str) -> Result<Vec<TagInfo>> {
        let uri = TarnUri::parse_lenient(dataset)?;
        let record = self.dataset_record(&uri).await?;
        let tags = self.catalog.reader.tags(record.id).await?;
        Ok(tags.iter().map(|t| Self::tag_info(&record, t)).collect())
    }

    fn branch_info(
        dataset: &DatasetRecord,
        branch: &BranchRecord,
        all: &[BranchRecord],
    ) -> BranchInfo {
        BranchInfo {
            name: branch.name.to_string(),
            dataset: dataset.name.to_string(),
            head: branch.head,
            parent: branch
                .parent_branch_id
                .and_then(|p| all.iter().find(|b| b.id == p))
                .map(|p| p.name.to_string()),
            fork_version: branch.fork_version,
            created_commit: branch.created_commit,
        }
    }

    /// Creates branch `new` at the version `uri` resolves to (the head of its branch when it
    /// has no ref), without copying data.
    pub async fn create_branch(&self, uri: &str, new: &str) -> Result<BranchInfo> {
        let name = BranchName::new(new)
            .map_err(|e| Error::InvalidInput(format!("bad branch name: {e}")))?;
        let snapshot: Snapshot = self.snapshot(uri).await?;
        let branch = self
            .catalog
            .writer
            .create_branch(
                snapshot.dataset.id,
                snapshot.branch.id,
                snapshot.version.version,
                &name,
            )
            .await?;
        let all = self.catalog.reader.branches(snapshot.dataset.id).await?;
        Ok(Self::branch_info(&snapshot.dataset, &branch, &all))
    }

    /// Deletes the branch `uri` names (not `main`). Its versions go; files only it used are
    /// left for `tarn vacuum`.
    pub async fn delete_branch(&self, uri: &str) -> Result<()> {
        let parsed = TarnUri::parse_lenient(uri)?;
        no_ref(&parsed, "deleting removes the whole branch")?;
        let (dataset, branch) = self.branch_record(&parsed).await?;
        Ok(self
            .catalog
            .writer
            .delete_branch(dataset.id, &branch.name)
            .await?)
    }

    /// The branches of a dataset, `main` first.
    pub async fn branches(&self, dataset: &str) -> Result<Vec<BranchInfo>> {
        let uri = TarnUri::parse_lenient(dataset)?;
        let record = self.dataset_record(&uri).await?;
        let all = self.catalog.reader.branches(record.id).await?;
        Ok(all
            .iter()
            .map(|b| Self::branch_info(&record, b, &all))
            .collect())
    }

    /// Fast-forwards branch `target` of the source's dataset to the head of the branch
    /// `source` names. Refused when `target` moved since `source` was forked from it.
    pub async fn merge(&self, source: &str, target: &str) -> Result<MergeInfo> {
        let parsed = TarnUri::parse_lenient(source)?;
        if !matches!(parsed.reference, Ref::Live | Ref::Latest) {
            return Err(Error::InvalidInput(format!(
                "{parsed}: merge takes a branch, not a version; drop the \":{}\" part",
                parsed.reference
            )));
        }
        let target_name = BranchName::new(target)
            .map_err(|e| Error::InvalidInput(format!("bad target branch: {e}")))?;
        let (dataset, source_branch) = self.branch_record(&parsed).await?;
        let mut target_uri = parsed.clone().with_ref(Ref::Live);
        target_uri.branch = Some(target_name.clone());
        let (_, target_branch) = self.branch_record(&target_uri).await?;
        let outcome = self
            .catalog
            .writer
            .fast_forward(dataset.id, &source_branch.name, &target_branch.name)
            .await?;
        let (name, from, to, commit_id) = match outcome {
            MergeOutcome::UpToDate { version } => ("up-to-date", version, version, None),
            MergeOutcome::FastForward {
                from,
                to,
                commit_id,
                ..
            } => ("fast-forward", from, to, Some(commit_id)),
        };
        Ok(MergeInfo {
            dataset: dataset.name.to_string(),
            source: source_branch.name.to_string(),
            target: target_name.to_string(),
            outcome: name,
            from_version: from,
            to_version: to,
            commit_id,
        })
    }
}
