//! The lake: opening it, and resolving `tarn://` URIs to snapshots.

use crate::config::{CONFIG_FILE, LakeConfig};
use crate::error::{Error, Result};
use crate::snapshot::Snapshot;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_catalog::{Catalog, SqliteCatalog};
use tarn_core::{Ref, TarnUri};
use tarn_store::DataStore;

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

/// A storage root plus a catalog.
#[derive(Debug, Clone)]
pub struct Lake {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) store: DataStore,
    root: Option<PathBuf>,
}

impl Lake {
    /// Creates a lake in `dir` (`tarn.toml`, `catalog.db`, `data/`). Idempotent on an
    /// existing lake.
    pub async fn init(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let io = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.exists() {
            let text = toml::to_string(&LakeConfig::default())
                .map_err(|e| Error::Config(e.to_string()))?;
            std::fs::write(&config_path, format!("# tarn lake configuration\n{text}"))
                .map_err(io)?;
        }
        Self::open_with(dir, Durability::from_env()).await
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
        let catalog_path = config.catalog_path(&dir)?;
        let storage_path = config.storage_path(&dir)?;
        let catalog =
            tokio::task::spawn_blocking(move || SqliteCatalog::open(catalog_path, durable))
                .await
                .map_err(|e| Error::Config(e.to_string()))??;
        let store = DataStore::local(storage_path, durable)?;
        Ok(Self {
            catalog: Arc::new(catalog),
            store,
            root: Some(dir),
        })
    }

    /// A lake over any catalog and store (tests inject failing ones here).
    pub fn from_parts(catalog: Arc<dyn Catalog>, store: DataStore) -> Self {
        Self {
            catalog,
            store,
            root: None,
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &DataStore {
        &self.store
    }

    /// Resolves a URI (full `tarn://` or bare `dataset[@branch][:ref]`) to a snapshot.
    pub async fn snapshot(&self, uri: &str) -> Result<Snapshot> {
        let parsed = TarnUri::parse_lenient(uri)?;
        self.resolve(&parsed).await
    }

    /// Resolves a parsed URI to an immutable snapshot. Errors quote the URI and say which
    /// part does not resolve.
    pub async fn resolve(&self, uri: &TarnUri) -> Result<Snapshot> {
        let dataset = self.catalog.dataset(&uri.dataset).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "{uri}: dataset {:?} does not exist",
                uri.dataset.as_str()
            ))
        })?;
        let branch_name = uri.branch_name();
        let branch = self
            .catalog
            .branch(dataset.id, &branch_name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{uri}: branch {:?} does not exist",
                    branch_name.as_str()
                ))
            })?;
        let head = branch.head;
        let range = || {
            format!(
                "{}@{} has versions v1 to v{head}",
                dataset.name, branch.name
            )
        };
        let (branch_id, version) = match &uri.reference {
            Ref::Live | Ref::Latest => (branch.id, head),
            Ref::Version(n) => {
                if *n > head {
                    return Err(Error::NotFound(format!(
                        "{uri}: version v{n} does not exist; {}",
                        range()
                    )));
                }
                (branch.id, *n)
            }
            Ref::Index(i) => {
                let v = if *i >= 0 {
                    i.checked_add(1)
                } else {
                    (head as i64).checked_add(1 + i)
                };
                match v {
                    Some(v) if v >= 1 && v as u64 <= head => (branch.id, v as u64),
                    _ => {
                        return Err(Error::NotFound(format!(
                            "{uri}: index {i} is out of range; {} (indexes 0 to {} or -1 to -{head})",
                            range(),
                            head - 1
                        )));
                    }
                }
            }
            Ref::Date(d) => {
                let end_of_day = d
                    .succ_opt()
                    .and_then(|n| n.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().timestamp_micros() - 1)
                    .ok_or_else(|| Error::InvalidInput(format!("{uri}: date out of range")))?;
                (
                    branch.id,
                    self.version_at(uri, branch.id, end_of_day).await?,
                )
            }
            Ref::Timestamp(t) => (
                branch.id,
                self.version_at(uri, branch.id, t.timestamp_micros())
                    .await?,
            ),
            Ref::Tag(name) => {
                let tag = self.catalog.tag(dataset.id, name).await?.ok_or_else(|| {
                    Error::NotFound(format!("{uri}: tag {name:?} does not exist"))
                })?;
                (tag.branch_id, tag.version)
            }
        };
        let record = self
            .catalog
            .version(branch_id, version)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{uri}: version v{version} does not exist; {}",
                    range()
                ))
            })?;
        if record.expired {
            return Err(Error::NotFound(format!(
                "{uri}: version v{version} was removed by `tarn vacuum`; {}",
                range()
            )));
        }
        Snapshot::new(dataset, branch, record)
    }

    async fn version_at(&self, uri: &TarnUri, branch_id: i64, micros: i64) -> Result<u64> {
        match self.catalog.version_at_time(branch_id, micros).await? {
            Some(v) => Ok(v),
            None => {
                let first = self.catalog.version(branch_id, 1).await?;
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
        if self.catalog.dataset(&uri.dataset).await?.is_none() {
            return Ok(None);
        }
        self.resolve(&uri.clone().with_ref(Ref::Live))
            .await
            .map(Some)
    }
}
