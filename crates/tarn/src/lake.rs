//! The lake: opening it, and resolving `tarn://` URIs to snapshots.

use crate::config::{CONFIG_FILE, LakeConfig};
use crate::error::{Error, Result};
use crate::snapshot::Snapshot;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_catalog::{Catalog, CatalogLocation};
use tarn_core::{DatasetName, Ref, TarnUri};
use tarn_store::{DataStore, StorageLocation};

/// Whether a mutation returns only once it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Files and commit are fsynced before a write returns (the default).
    #[default]
    Durable,
    /// No fsync: faster; a power loss may lose the last commits (never corrupt older ones).
    Relaxed,
}

impl Durability {
    /// `relaxed` in `TARN_DURABILITY` selects [`Durability::Relaxed`].
    pub fn from_env() -> Self {
        match std::env::var("TARN_DURABILITY").as_deref() {
            Ok("relaxed") => Self::Relaxed,
            _ => Self::Durable,
        }
    }
}

/// One state of the whole lake: everything committed up to a lake-wide commit id. Reads
/// pinned to it see the same rows forever (docs/design/0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct LakeState {
    pub commit_id: i64,
}

/// The last microsecond of a UTC day: a date ref means "at or before the end of that day".
fn end_of_day_micros(d: chrono::NaiveDate) -> Option<i64> {
    d.succ_opt()
        .and_then(|n| n.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros() - 1)
}

fn looks_like_time(text: &str) -> bool {
    text.len() >= 10 && text.as_bytes()[4] == b'-' && text[..4].bytes().all(|b| b.is_ascii_digit())
}

/// The text a catalog records as its lake's storage, the same from every lake directory
/// that names that storage: an S3 location as `s3://BUCKET/PREFIX`; a local directory as its
/// absolute path, or as a path relative to the SQLite catalog's directory when it lies under
/// it, so that a lake directory holding both (the default layout) can be moved or copied.
fn storage_identity(storage: &StorageLocation, catalog: &CatalogLocation) -> String {
    match storage {
        StorageLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
        StorageLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        StorageLocation::Local(root) => {
            let root = resolve(root);
            let base = match catalog {
                CatalogLocation::Sqlite(file) => file.parent().map(resolve),
                CatalogLocation::Postgres(_) => None,
            };
            match base.as_deref().and_then(|b| root.strip_prefix(b).ok()) {
                Some(relative) if relative.as_os_str().is_empty() => ".".into(),
                Some(relative) => relative.display().to_string(),
                None => root.display().to_string(),
            }
        }
    }
}

/// `path` made absolute, with its longest existing ancestor's symbolic links resolved and
/// `.` and `..` taken out of the rest.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    let mut resolved = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    for name in missing.into_iter().rev() {
        match name.to_str() {
            Some(".") => {}
            Some("..") => {
                resolved.pop();
            }
            _ => resolved.push(name),
        }
    }
    resolved
}

/// The outermost directory of `path` (or `path` itself) that does not exist yet.
fn first_missing(path: &Path) -> Option<PathBuf> {
    if path.exists() {
        return None;
    }
    let mut top = path;
    while let Some(parent) = top.parent() {
        if parent.as_os_str().is_empty() || parent.exists() {
            break;
        }
        top = parent;
    }
    Some(top.to_path_buf())
}

/// Removes the empty directories from `path` up to `top`, which a failed init created.
fn remove_empty_dirs(path: &Path, top: &Path) {
    let mut dir = Some(path);
    while let Some(d) = dir {
        if std::fs::remove_dir(d).is_err() || d == top {
            break;
        }
        dir = d.parent();
    }
}

/// What [`Lake::init_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initialized {
    /// A new lake: its catalog recorded its storage now.
    Created,
    /// The catalog held the lake already (another machine made it): only `tarn.toml` was
    /// written.
    Joined,
    /// The directory held this lake's `tarn.toml` already; nothing was written.
    Existing,
}

/// See [`Lake::io_counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoCounters {
    pub catalog_round_trips: Option<u64>,
    pub storage: tarn_store::StoreRequests,
}

/// A storage root plus a catalog.
#[derive(Debug, Clone)]
pub struct Lake {
    pub(crate) catalog: Catalog,
    pub(crate) store: DataStore,
    root: Option<PathBuf>,
    /// The queued request this handle's commits apply ([`Lake::for_request`]).
    pub(crate) request_id: Option<Arc<str>>,
}

impl Lake {
    /// Creates a lake in `dir` (`tarn.toml`, `catalog.db`, `data/`), or opens the one there.
    pub async fn init(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join(CONFIG_FILE).is_file() {
            return Self::open(dir).await;
        }
        Ok(Self::init_with(dir, LakeConfig::default()).await?.0)
    }

    /// Creates the lake `config` describes, with its `tarn.toml` in `dir`; or joins it, when
    /// its catalog holds a lake already, after checking that the storage is the one the
    /// catalog records (SPEC §14). The storage and the catalog are reached before anything
    /// is written, so a wrong URL, bucket or credentials leave nothing behind.
    /// An existing `tarn.toml` in `dir` is kept: the lake it describes is opened (and a
    /// `config` that differs from it is refused).
    pub async fn init_with(
        dir: impl AsRef<Path>,
        config: LakeConfig,
    ) -> Result<(Self, Initialized)> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        if config_path.is_file() {
            let existing = LakeConfig::load(dir)?;
            if existing != config {
                return Err(Error::Config(format!(
                    "{} already holds a lake configuration with catalog {:?} and storage {:?}; \
                     pick another directory, or edit that file",
                    config_path.display(),
                    existing.catalog,
                    existing.storage
                )));
            }
            return Ok((Self::open(dir).await?, Initialized::Existing));
        }
        let catalog_location = config.catalog_location(dir)?;
        if catalog_location.holds_password() {
            return Err(Error::InvalidInput(format!(
                "catalog {}: the URL holds a password, and tarn never writes credentials to \
                 tarn.toml; give the URL without it and put the password in PGPASSWORD",
                catalog_location.display()
            )));
        }
        let storage_location = config.storage_location(dir)?;
        let durability = Durability::from_env();
        let durable = durability == Durability::Durable;
        // A local storage directory this init creates is removed again if the init fails.
        let created = match &storage_location {
            StorageLocation::Local(root) => first_missing(root),
            StorageLocation::S3 { .. } => None,
        };
        let opened = async {
            // The store first: a wrong bucket or credentials must not leave a catalog behind.
            let store = DataStore::open(&storage_location, &config.s3_settings(), durable)?;
            store.check().await?;
            let catalog =
                tarn_catalog::open(&catalog_location, &config.catalog_settings(durable)).await?;
            let joined = catalog.lake.lake().await?.is_some();
            let identity = storage_identity(&storage_location, &catalog_location);
            catalog.lake.claim_lake(&identity).await?;
            Ok::<_, Error>((store, catalog, joined))
        }
        .await;
        let (store, catalog, joined) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                if let (Some(top), StorageLocation::Local(root)) = (&created, &storage_location) {
                    remove_empty_dirs(root, top);
                }
                return Err(e);
            }
        };
        let io = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(&config_path, config.to_toml()?).map_err(io)?;
        let lake = Self {
            catalog,
            store,
            root: Some(dir.to_path_buf()),
            request_id: None,
        };
        Ok((
            lake,
            if joined {
                Initialized::Joined
            } else {
                Initialized::Created
            },
        ))
    }

    /// Opens the lake in `dir`.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, Durability::from_env()).await
    }

    pub async fn open_with(dir: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.join(CONFIG_FILE).is_file() {
            return Err(Error::Config(format!(
                "{} is not a tarn lake (no {CONFIG_FILE}); create one with `tarn init {}`",
                dir.display(),
                dir.display()
            )));
        }
        let config = LakeConfig::load(&dir)?;
        let durable = durability == Durability::Durable;
        let catalog_location = config.catalog_location(&dir)?;
        let storage_location = config.storage_location(&dir)?;
        let catalog =
            tarn_catalog::open(&catalog_location, &config.catalog_settings(durable)).await?;
        // The catalog says which storage is the lake's: a tarn.toml edited to point one
        // lake's catalog at other storage is refused rather than read as an empty lake.
        let identity = storage_identity(&storage_location, &catalog_location);
        match catalog.lake.lake().await? {
            Some(lake) if lake.storage != identity => {
                return Err(Error::Config(format!(
                    "{}: the catalog {} belongs to the lake whose storage is {:?}, but this \
                     file says storage = {:?} ({identity}); correct the file",
                    dir.join(CONFIG_FILE).display(),
                    catalog.describe(),
                    lake.storage,
                    config.storage
                )));
            }
            Some(_) => {}
            // A lake made before the catalog recorded its storage.
            None => {
                catalog.lake.claim_lake(&identity).await?;
            }
        }
        let store = DataStore::open(&storage_location, &config.s3_settings(), durable)?;
        Ok(Self {
            catalog,
            store,
            root: Some(dir),
            request_id: None,
        })
    }

    /// A lake over any catalog and store: for tests that inject failures, and tools.
    #[doc(hidden)]
    pub fn from_parts(catalog: Catalog, store: DataStore) -> Self {
        Self {
            catalog,
            store,
            root: None,
            request_id: None,
        }
    }

    /// The same lake, whose dataset commits (write, delete-range, compact, metadata) apply
    /// the queued request `id` (docs/design/0009): the commit records the id, and the lake
    /// refuses a second commit of the same id with an error whose
    /// [`Error::is_request_applied`] is true. [`Lake::commit_of_request`] finds that commit.
    pub fn for_request(&self, id: &str) -> Self {
        Self {
            request_id: Some(id.into()),
            ..self.clone()
        }
    }

    /// The version whose commit applied request `id`, if one did.
    pub async fn commit_of_request(&self, id: &str) -> Result<Option<crate::CommitEvent>> {
        Ok(self.catalog.service.commit_of_request(id).await?)
    }

    /// The catalog's tables for `tarn serve`: request queue, tokens, commit feed.
    pub fn service_store(&self) -> Arc<dyn crate::ServiceStore> {
        self.catalog.service.clone()
    }

    /// The directory of the lake's `tarn.toml` (`None` for a lake made from parts).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// What the lake is made of, for messages: its catalog and its storage.
    pub fn describe(&self) -> String {
        format!("{} with {}", self.catalog.describe(), self.store.describe())
    }

    /// The directory of the lake's storage when it is local (`None` on S3).
    pub fn local_storage_root(&self) -> Option<&Path> {
        self.store.local_root().map(PathBuf::as_path)
    }

    /// The lake's data files as an object store whose paths are those of
    /// [`RowGroup::path`](crate::RowGroup): what a query engine reads them through.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.object_store().clone()
    }

    /// What this process has asked of the lake's servers so far: catalog round trips (for a
    /// catalog server) and object-store requests by kind. For metrics and benchmarks.
    pub fn io_counters(&self) -> IoCounters {
        IoCounters {
            catalog_round_trips: self.catalog.lake.round_trips(),
            storage: self.store.requests(),
        }
    }

    /// How many row groups the data file at `path` holds (from its footer).
    pub async fn file_row_groups(&self, path: &str) -> Result<u32> {
        Ok(tarn_store::parquet_io::row_group_count(&self.store, path).await?)
    }

    /// Whether a dataset of that name exists (one index lookup).
    pub async fn dataset_exists(&self, name: &DatasetName) -> Result<bool> {
        Ok(self.catalog.reader.dataset(name).await?.is_some())
    }

    /// Resolves a URI (full `tarn://` or bare `dataset[@branch][:ref]`) to a snapshot.
    pub async fn snapshot(&self, uri: &str) -> Result<Snapshot> {
        let parsed = TarnUri::parse_lenient(uri)?;
        self.resolve(&parsed).await
    }

    /// Resolves a URI as the lake was at `state`: an empty or `latest` ref means the
    /// branch's last version at that commit; an explicit ref names one immutable version and
    /// is used as is.
    pub async fn snapshot_at(&self, uri: &str, state: Option<LakeState>) -> Result<Snapshot> {
        let parsed = TarnUri::parse_lenient(uri)?;
        self.resolve_at(&parsed, state).await
    }

    /// Resolves several URIs against one lake state (`as_of`, else the lake's current
    /// state), so the snapshots are consistent with each other even while writers commit.
    pub async fn snapshots<S: AsRef<str>>(
        &self,
        uris: &[S],
        as_of: Option<LakeState>,
    ) -> Result<(LakeState, Vec<Snapshot>)> {
        let state = match as_of {
            Some(s) => s,
            None => self.state().await?,
        };
        let mut out = Vec::with_capacity(uris.len());
        for uri in uris {
            out.push(self.snapshot_at(uri.as_ref(), Some(state)).await?);
        }
        Ok((state, out))
    }

    /// The lake's current state: its last commit.
    pub async fn state(&self) -> Result<LakeState> {
        Ok(LakeState {
            commit_id: self.catalog.reader.last_commit().await?,
        })
    }

    /// Parses `--as-of`: a commit id, a `YYYY-MM-DD` date (the end of that day, UTC) or an
    /// RFC 3339 time (the last commit at or before it).
    pub async fn state_at(&self, as_of: &str) -> Result<LakeState> {
        let text = as_of.trim();
        let last = self.catalog.reader.last_commit().await?;
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let id: i64 = text.parse().map_err(|_| {
                Error::InvalidInput(format!("--as-of {text}: commit id out of range"))
            })?;
            if last == 0 {
                return Err(Error::NotFound(format!(
                    "--as-of {text}: commit {id} does not exist; this lake has no commit yet"
                )));
            }
            if id == 0 || id > last {
                return Err(Error::NotFound(format!(
                    "--as-of {text}: commit {id} does not exist; this lake's commits are 1 to {last}"
                )));
            }
            return Ok(LakeState { commit_id: id });
        }
        let micros = match Ref::parse(text) {
            Ok(Ref::Date(d)) => end_of_day_micros(d)
                .ok_or_else(|| Error::InvalidInput(format!("--as-of {text}: date out of range")))?,
            Ok(Ref::Timestamp(t)) => t.timestamp_micros(),
            Err(reason) if looks_like_time(text) => {
                return Err(Error::InvalidInput(format!("--as-of {text}: {reason}")));
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "--as-of {text:?}: expected a commit id (e.g. 42), a date (2024-05-01) or an \
                     RFC 3339 time (2024-05-01T12:00:00Z)"
                )));
            }
        };
        match self.catalog.reader.commit_at_time(micros).await? {
            Some(commit_id) => Ok(LakeState { commit_id }),
            None => Err(Error::NotFound(format!(
                "--as-of {text}: no commit was made at or before it{}",
                if last == 0 {
                    "; the lake is empty".to_string()
                } else {
                    String::new()
                }
            ))),
        }
    }

    /// Resolves a parsed URI to an immutable snapshot. Errors quote the URI and say which
    /// part does not resolve.
    pub async fn resolve(&self, uri: &TarnUri) -> Result<Snapshot> {
        self.resolve_at(uri, None).await
    }

    /// [`Lake::resolve`] as the lake was at `state` (see [`Lake::snapshot_at`]).
    pub async fn resolve_at(&self, uri: &TarnUri, state: Option<LakeState>) -> Result<Snapshot> {
        let dataset = self.dataset_record(uri).await?;
        let branch_name = uri.branch_name();
        let mut branch = self
            .catalog
            .reader
            .branch(dataset.id, &branch_name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{uri}: branch {:?} does not exist",
                    branch_name.as_str()
                ))
            })?;
        let head = branch.head;
        let range = |branch: &tarn_catalog::BranchRecord| {
            format!(
                "{}@{} has versions v1 to v{}",
                dataset.name, branch.name, branch.head
            )
        };
        let version = match &uri.reference {
            Ref::Live | Ref::Latest => match state {
                None => head,
                Some(state) => {
                    // `main` is created with its dataset: before that, the dataset is what
                    // did not exist (reported below).
                    if branch.parent_branch_id.is_some()
                        && branch.created_commit.is_some_and(|c| c > state.commit_id)
                    {
                        return Err(Error::NotFound(format!(
                            "{uri}: branch {:?} did not exist yet at commit {}",
                            branch.name.as_str(),
                            state.commit_id
                        )));
                    }
                    self.catalog
                        .reader
                        .version_at_commit(branch.id, state.commit_id)
                        .await?
                        .ok_or_else(|| {
                            Error::NotFound(format!(
                                "{uri}: dataset {:?} did not exist yet at commit {}",
                                dataset.name.as_str(),
                                state.commit_id
                            ))
                        })?
                }
            },
            Ref::Version(n) => {
                if *n > head {
                    return Err(Error::NotFound(format!(
                        "{uri}: version v{n} does not exist; {}",
                        range(&branch)
                    )));
                }
                *n
            }
            Ref::Index(i) => {
                let v = if *i >= 0 {
                    i.checked_add(1)
                } else {
                    (head as i64).checked_add(1 + i)
                };
                match v {
                    Some(v) if v >= 1 && v as u64 <= head => v as u64,
                    _ => {
                        return Err(Error::NotFound(format!(
                            "{uri}: index {i} is out of range; {} (indexes 0 to {} or -1 to -{head})",
                            range(&branch),
                            head - 1
                        )));
                    }
                }
            }
            Ref::Date(d) => {
                let end_of_day = end_of_day_micros(*d)
                    .ok_or_else(|| Error::InvalidInput(format!("{uri}: date out of range")))?;
                self.version_at(uri, branch.id, end_of_day).await?
            }
            Ref::Timestamp(t) => {
                self.version_at(uri, branch.id, t.timestamp_micros())
                    .await?
            }
            Ref::Tag(name) => {
                let tag = self
                    .catalog
                    .reader
                    .tag(dataset.id, name)
                    .await?
                    .ok_or_else(|| {
                        Error::NotFound(format!("{uri}: tag {name:?} does not exist"))
                    })?;
                if uri.branch.is_none() {
                    branch = self
                        .catalog
                        .reader
                        .branch_by_id(tag.branch_id)
                        .await?
                        .ok_or_else(|| Error::Config(format!("{uri}: tag's branch vanished")))?;
                } else {
                    // Through a branch, the tag must name a version of that branch's history:
                    // the same number on another line of versions holds other rows.
                    let held = if tag.version <= head {
                        self.catalog
                            .reader
                            .version(branch.id, tag.version)
                            .await?
                            .map(|v| v.branch_id)
                    } else {
                        None
                    };
                    if held != Some(tag.branch_id) {
                        let mut plain = uri.clone();
                        plain.branch = None;
                        return Err(Error::NotFound(format!(
                            "{uri}: tag {name:?} names {}@{}:v{}, which is not in the history of \
                             branch {:?}; read it as {plain}",
                            dataset.name,
                            tag.branch,
                            tag.version,
                            branch.name.as_str()
                        )));
                    }
                }
                tag.version
            }
        };
        let record = self
            .catalog
            .reader
            .version(branch.id, version)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{uri}: version v{version} does not exist; {}",
                    range(&branch)
                ))
            })?;
        if record.expired {
            return Err(Error::NotFound(format!(
                "{uri}: version v{version} was removed by `tarn vacuum`; {}",
                range(&branch)
            )));
        }
        Snapshot::new(dataset, branch, record)
    }

    async fn version_at(&self, uri: &TarnUri, branch_id: i64, micros: i64) -> Result<u64> {
        let found = match self.catalog.reader.commit_at_time(micros).await? {
            Some(commit) => {
                self.catalog
                    .reader
                    .version_at_commit(branch_id, commit)
                    .await?
            }
            None => None,
        };
        match found {
            Some(v) => Ok(v),
            None => {
                let first = self.catalog.reader.version(branch_id, 1).await?;
                Err(Error::NotFound(format!(
                    "{uri}: no version was committed at or before {}{}",
                    uri.reference,
                    first.map_or(String::new(), |f| format!(
                        "; the first version was committed at {}",
                        f.timestamp
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ))
                )))
            }
        }
    }

    /// The head snapshot of a branch, or `None` if the dataset does not exist yet.
    pub(crate) async fn head(&self, uri: &TarnUri) -> Result<Option<Snapshot>> {
        // Datasets are never deleted: once seen, resolving its head can only fail for a
        // missing branch, which is an error worth reporting.
        if self.catalog.reader.dataset(&uri.dataset).await?.is_none() {
            if uri.branch_name().as_str() != tarn_core::BranchName::MAIN {
                return Err(Error::NotFound(format!(
                    "{uri}: dataset {:?} does not exist, so neither does its branch {:?}; \
                     a new dataset starts on main (write to tarn://{} first)",
                    uri.dataset.as_str(),
                    uri.branch_name().as_str(),
                    uri.dataset
                )));
            }
            return Ok(None);
        }
        self.resolve(&uri.clone().with_ref(Ref::Live))
            .await
            .map(Some)
    }
}
