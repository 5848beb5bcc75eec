//! Puts that are on disk when they return. object_store 0.13's `LocalFileSystem` writes to a
//! temporary file and renames it, but never fsyncs: after a power loss an acknowledged file
//! can come back empty. For a local root tarn therefore fsyncs the file, its directory, and
//! the parent of every directory it created for it (the first write of a dataset makes
//! several: a new directory's entry lives in its parent), before any commit may reference
//! it. Other stores (S3) are durable on put.

use crate::counting::{CountingStore, RequestCounter, StoreRequests};
use crate::error::{Result, StoreError};
use crate::location::{S3Settings, StorageLocation};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use std::path::PathBuf;
use std::sync::Arc;

/// A file found in the store.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub path: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// The lake's data files: an object store plus, for a local root, the directory to fsync.
#[derive(Debug, Clone)]
pub struct DataStore {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    durable: bool,
    /// Write new files straight to the local root: true only for [`DataStore::local`],
    /// whose object store is the plain local file system (a wrapped store keeps its puts).
    direct: bool,
    footers: Arc<FooterCache>,
    /// What the store is, for messages (`local storage /lake/data`, `S3 bucket b ...`).
    description: Arc<str>,
    requests: RequestCounter,
}

/// Parsed footers (with page indexes) of recently read files. Files are immutable, so an
/// entry never goes stale. The cache is bounded both in entries and in the memory of the
/// parsed footers (a file of many row groups and columns parses into megabytes): once
/// either bound would be passed it is cleared, so a long-running process that reads many
/// files keeps at most [`FooterCache::CAPACITY_BYTES`] of footers.
#[derive(Debug, Default)]
pub struct FooterCache {
    entries: std::sync::Mutex<CachedFooters>,
}

#[derive(Debug, Default)]
struct CachedFooters {
    by_path: std::collections::HashMap<String, (u64, ArrowReaderMetadata)>,
    bytes: usize,
}

impl FooterCache {
    pub const CAPACITY: usize = 4096;
    pub const CAPACITY_BYTES: usize = 64 << 20;

    pub fn get(&self, path: &str) -> Option<(u64, ArrowReaderMetadata)> {
        self.entries.lock().ok()?.by_path.get(path).cloned()
    }

    pub fn insert(&self, path: &str, size: u64, meta: ArrowReaderMetadata) {
        let bytes = meta.metadata().memory_size() + path.len();
        if bytes > Self::CAPACITY_BYTES {
            return;
        }
        if let Ok(mut cache) = self.entries.lock() {
            if cache.by_path.len() >= Self::CAPACITY || cache.bytes + bytes > Self::CAPACITY_BYTES {
                *cache = CachedFooters::default();
            }
            let old = cache.by_path.insert(path.to_string(), (size, meta));
            cache.bytes += bytes;
            if let Some((_, old)) = old {
                cache.bytes = cache
                    .bytes
                    .saturating_sub(old.metadata().memory_size() + path.len());
            }
        }
    }

    /// Entries and the memory of their parsed footers.
    pub fn usage(&self) -> (usize, usize) {
        self.entries
            .lock()
            .map_or((0, 0), |c| (c.by_path.len(), c.bytes))
    }
}

impl DataStore {
    pub fn new(inner: Arc<dyn ObjectStore>, local_root: Option<PathBuf>, durable: bool) -> Self {
        let description = match &local_root {
            Some(root) => format!("local storage {}", root.display()),
            None => format!("storage {inner}"),
        };
        let (counting, requests) = CountingStore::new(inner);
        Self {
            inner: Arc::new(counting),
            local_root,
            durable,
            direct: false,
            footers: Arc::default(),
            description: description.into(),
            requests,
        }
    }

    /// Opens the store at `location`: a local directory (created if missing) or an S3
    /// prefix (nothing is sent until the first request; [`DataStore::check`] asks the store).
    pub fn open(location: &StorageLocation, s3: &S3Settings, durable: bool) -> Result<Self> {
        match location {
            StorageLocation::Local(root) => Self::local(root, durable),
            StorageLocation::S3 { bucket, prefix } => {
                // Timeouts as client settings (not a new `ClientOptions`, which would drop
                // what the environment set, such as AWS_ALLOW_HTTP).
                let seconds = |d: std::time::Duration| format!("{}ms", d.as_millis().max(1));
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_config(
                        AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                        seconds(s3.connect_timeout),
                    )
                    .with_config(
                        AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                        seconds(s3.request_timeout),
                    );
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(allow) = s3.allow_http {
                    builder = builder.with_allow_http(allow);
                }
                let endpoint = builder
                    .get_config_value(&AmazonS3ConfigKey::Endpoint)
                    .unwrap_or_else(|| "AWS".into());
                let description: Arc<str> = if prefix.is_empty() {
                    format!("S3 bucket {bucket} at {endpoint}")
                } else {
                    format!("S3 bucket {bucket} at {endpoint} (prefix {prefix})")
                }
                .into();
                let s3_store = builder
                    .with_retry(RetryConfig {
                        max_retries: s3.retries,
                        retry_timeout: s3.request_timeout,
                        ..RetryConfig::default()
                    })
                    .build()
                    .map_err(|source| StoreError::ObjectStore {
                        store: description.to_string(),
                        path: String::new(),
                        source: Box::new(source),
                    })?;
                let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3_store)
                } else {
                    Arc::new(PrefixStore::new(s3_store, prefix.as_str()))
                };
                Ok(Self {
                    description,
                    ..Self::new(inner, None, durable)
                })
            }
        }
    }

    /// The requests sent to the store so far (local writes count as puts).
    pub fn requests(&self) -> StoreRequests {
        self.requests.get()
    }

    /// What the store is, for messages: `local storage PATH` or `S3 bucket B at ENDPOINT`.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Asks the store for one listing of the lake's root, so that a wrong endpoint, bucket
    /// or credentials fail here, with the store named, before anything is written.
    pub async fn check(&self) -> Result<()> {
        self.inner
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(|source| StoreError::ObjectStore {
                store: self.description.to_string(),
                path: String::new(),
                source: Box::new(source),
            })
    }

    /// A store over a local directory (created if missing).
    pub fn local(root: impl Into<PathBuf>, durable: bool) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.display().to_string(),
            source,
        })?;
        let fs =
            object_store::local::LocalFileSystem::new_with_prefix(&root).map_err(|source| {
                StoreError::ObjectStore {
                    store: format!("local storage {}", root.display()),
                    path: String::new(),
                    source: Box::new(source),
                }
            })?;
        Ok(Self {
            direct: true,
            ..Self::new(Arc::new(fs), Some(root), durable)
        })
    }

    pub fn footers(&self) -> &FooterCache {
        &self.footers
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub fn local_root(&self) -> Option<&PathBuf> {
        self.local_root.as_ref()
    }

    fn wrap<'a>(&'a self, path: &'a str) -> impl FnOnce(object_store::Error) -> StoreError + 'a {
        move |source| StoreError::ObjectStore {
            store: self.description.to_string(),
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    /// Writes `bytes` at `path` and returns once they are durable (when the store is).
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        let location = ObjectPath::from(path);
        // For a durable local root the directories are made here, not by the object store,
        // so that the new ones are known and their entries synced after the put.
        let local = match (self.durable, &self.local_root) {
            (true, Some(root)) => {
                let file = root.join(path);
                let dir = file.parent().map(std::path::Path::to_path_buf);
                let created = match dir.clone() {
                    Some(dir) => tokio::task::spawn_blocking(move || {
                        create_dirs(&dir).map_err(|source| StoreError::Io {
                            path: dir.display().to_string(),
                            source,
                        })
                    })
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??,
                    None => Vec::new(),
                };
                Some((file, created))
            }
            _ => None,
        };
        self.inner
            .put(&location, PutPayload::from_bytes(bytes))
            .await
            .map_err(self.wrap(path))?;
        if let Some((file, created)) = local {
            tokio::task::spawn_blocking(move || fsync_new_file(&file, &created))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
        }
        Ok(())
    }

    /// Writes a new file at `path` by streaming `write` into it, and returns once it is
    /// durable (when the store is) with `write`'s result and the file's size. A local file
    /// is written under a temporary name (`NAME#<digits>`, which vacuum recognises if the
    /// process dies), fsynced, renamed into place, and its directory and the parent of every
    /// directory made for it fsynced; other stores get one put of the encoded bytes.
    pub async fn write_new<T, F>(&self, path: &str, write: F) -> Result<(T, u64)>
    where
        T: Send + 'static,
        F: FnOnce(&mut (dyn std::io::Write + Send)) -> Result<T> + Send + 'static,
    {
        let root = match (&self.local_root, self.direct) {
            (Some(root), true) => root.clone(),
            _ => return self.write_buffered(path, write).await,
        };
        let durable = self.durable;
        let target = root.join(path);
        self.requests.count_put();
        tokio::task::spawn_blocking(move || {
            let io = |source| StoreError::Io {
                path: target.display().to_string(),
                source,
            };
            let dir = target
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or(root);
            let created = create_dirs(&dir).map_err(io)?;
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = target.with_file_name(format!("{name}#{}", std::process::id()));
            let written: Result<(T, u64)> = (|| {
                let file = std::fs::File::create(&temp).map_err(io)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                let value = write(&mut out)?;
                let file = out.into_inner().map_err(|e| io(e.into_error()))?;
                if durable {
                    file.sync_all().map_err(io)?;
                }
                let size = file.metadata().map_err(io)?.len();
                drop(file);
                std::fs::rename(&temp, &target).map_err(io)?;
                Ok((value, size))
            })();
            if written.is_err() {
                // Nothing references the temporary file; if this removal fails too, the
                // file is an orphan that vacuum recognises.
                let _ = std::fs::remove_file(&temp);
            }
            let written = written?;
            if durable {
                sync_new_entries(&dir, &created).map_err(io)?;
            }
            Ok(written)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn write_buffered<T, F>(&self, path: &str, write: F) -> Result<(T, u64)>
    where
        T: Send + 'static,
        F: FnOnce(&mut (dyn std::io::Write + Send)) -> Result<T> + Send + 'static,
    {
        let (value, bytes) = tokio::task::spawn_blocking(move || {
            let mut buffer: Vec<u8> = Vec::new();
            let value = write(&mut buffer)?;
            Ok::<_, StoreError>((value, buffer))
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        let size = bytes.len() as u64;
        self.put(path, Bytes::from(bytes)).await?;
        Ok((value, size))
    }

    pub async fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(&ObjectPath::from(path), range)
            .await
            .map_err(self.wrap(path))
    }

    pub async fn head(&self, path: &str) -> Result<ObjectMeta> {
        self.inner
            .head(&ObjectPath::from(path))
            .await
            .map_err(self.wrap(path))
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.inner.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.wrap(path)(source)),
        }
    }

    /// Every file of the store, with size and modification time. For a local root this walks
    /// the directory itself: object_store's listing hides the `NAME#n` temporary files that a
    /// writer killed during a put leaves behind, and vacuum must see those.
    pub async fn list_files(&self) -> Result<Vec<StoredFile>> {
        let Some(root) = self.local_root.clone() else {
            return Ok(self
                .list("")
                .await?
                .into_iter()
                .map(|m| StoredFile {
                    path: m.location.to_string(),
                    size: m.size,
                    last_modified: m.last_modified,
                })
                .collect());
        };
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let io = |source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                };
                for entry in std::fs::read_dir(&dir).map_err(io)? {
                    let entry = entry.map_err(io)?;
                    let meta = entry.metadata().map_err(io)?;
                    if meta.is_dir() {
                        stack.push(entry.path());
                    } else if meta.is_file() {
                        let relative = entry
                            .path()
                            .strip_prefix(&root)
                            .map(|p| p.to_path_buf())
                            .unwrap_or_default();
                        let modified = meta.modified().map_err(io)?;
                        out.push(StoredFile {
                            path: relative.to_string_lossy().into_owned(),
                            size: meta.len(),
                            last_modified: modified.into(),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Deletes a file found by [`Self::list_files`], including temporary files that
    /// object_store cannot address.
    pub async fn delete_file(&self, path: &str) -> Result<()> {
        match &self.local_root {
            Some(root) => {
                let full = root.join(path);
                match std::fs::remove_file(&full) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(StoreError::Io {
                        path: full.display().to_string(),
                        source,
                    }),
                }
            }
            None => self.delete(path).await,
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let prefix_path = ObjectPath::from(prefix);
        self.inner
            .list(Some(&prefix_path))
            .try_collect()
            .await
            .map_err(self.wrap(prefix))
    }
}

/// Fsyncs a new file, then the entries that make it reachable: see [`sync_new_entries`].
fn fsync_new_file(file: &std::path::Path, created: &[PathBuf]) -> Result<()> {
    let io = |source| StoreError::Io {
        path: file.display().to_string(),
        source,
    };
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    if let Some(dir) = file.parent() {
        sync_new_entries(dir, created).map_err(io)?;
    }
    Ok(())
}

/// Creates `dir` and its missing ancestors, one level at a time, and returns the ones it
/// made, outermost first. A directory another writer makes at the same moment counts as
/// made here too: its entry in its parent may not be synced yet when this write commits.
fn create_dirs(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        next = d.parent();
    }
    missing.reverse();
    for d in &missing {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// Makes a file's new entries durable: the directory that holds it, then, innermost first,
/// the parent of every directory `created` (outermost first) for it.
fn sync_new_entries(dir: &std::path::Path, created: &[PathBuf]) -> std::io::Result<()> {
    sync_dir(dir)?;
    for new in created.iter().rev() {
        if let Some(parent) = new.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Fsyncs a directory, so that the entries it holds survive a power loss.
fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(test)]
    tests::record_sync(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;

    /// Every directory [`sync_dir`] fsynced, in order, across the tests of this binary.
    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn record_sync(dir: &Path) {
        if let Ok(mut synced) = SYNCED.lock() {
            synced.push(dir.to_path_buf());
        }
    }

    /// The directories under `root` fsynced so far (tests run in parallel, each in its own
    /// temporary directory).
    fn synced_under(root: &Path) -> Vec<PathBuf> {
        SYNCED
            .lock()
            .expect("synced")
            .iter()
            .filter(|d| d.starts_with(root))
            .cloned()
            .collect()
    }

    /// The parsed footer of a file of `columns` Int64 columns in `row_groups` row groups.
    fn footer(columns: usize, row_groups: usize) -> ArrowReaderMetadata {
        use arrow::array::{ArrayRef, Int64Array, RecordBatch};
        let cols: Vec<(String, ArrayRef)> = (0..columns)
            .map(|i| {
                let a: ArrayRef = std::sync::Arc::new(Int64Array::from(vec![i as i64; 2]));
                (format!("c{i}"), a)
            })
            .collect();
        let batch = RecordBatch::try_from_iter(cols).expect("batch");
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
            .expect("writer");
        for _ in 0..row_groups {
            w.write(&batch).expect("write");
        }
        w.close().expect("close");
        ArrowReaderMetadata::load(&bytes::Bytes::from(buf), Default::default()).expect("footer")
    }

    /// However many files a long-running process reads, the parsed footers it keeps stay
    /// within the byte budget, and a footer just read is served from the cache.
    #[test]
    fn the_footer_cache_is_bounded_in_bytes() {
        let meta = footer(200, 20);
        let each = meta.metadata().memory_size();
        let files = 3 * FooterCache::CAPACITY_BYTES / each + 1;
        assert!(
            files < FooterCache::CAPACITY,
            "the byte bound must be the one reached"
        );
        let cache = FooterCache::default();
        let mut largest = 0;
        for i in 0..files {
            let path = format!("d/file-{i}.parquet");
            cache.insert(&path, 1, meta.clone());
            assert!(cache.get(&path).is_some(), "file {i} just inserted");
            largest = largest.max(cache.usage().1);
        }
        assert!(
            largest <= FooterCache::CAPACITY_BYTES,
            "{largest} bytes kept"
        );
        assert!(
            largest > FooterCache::CAPACITY_BYTES / 2,
            "{largest} bytes kept"
        );
        assert!(cache.usage().0 < files);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A durable write into directories that do not exist yet fsyncs the new file's
    /// directory and the parent of every directory it created (up to the store's root,
    /// which held the first new one); a second file in the same place syncs only its own
    /// directory. Both ways a local store writes (streamed into the root, and a put through
    /// the object store) do the same.
    #[test]
    fn a_new_file_in_new_directories_syncs_every_directory_entry_it_made() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        runtime().block_on(async {
            let direct = DataStore::local(&root, true).expect("local");
            let wrapped = DataStore::new(direct.object_store().clone(), Some(root.clone()), true);
            for (store, top) in [(&direct, "streamed"), (&wrapped, "put")] {
                let dir = format!("{top}/ds/x");
                let before = synced_under(&root).len();
                let write = |name: &str| {
                    let path = format!("{dir}/{name}");
                    async move {
                        store
                            .write_new(&path, |out| {
                                out.write_all(b"bytes").map_err(|e| StoreError::Io {
                                    path: String::new(),
                                    source: e,
                                })
                            })
                            .await
                            .expect("write")
                    }
                };
                write("f1").await;
                let synced: Vec<PathBuf> = synced_under(&root).split_off(before);
                let leaf = root.join(&dir);
                let want = vec![
                    leaf.clone(),
                    root.join(top).join("ds"),
                    root.join(top),
                    root.clone(),
                ];
                assert_eq!(synced, want, "{top}: first file");
                assert_eq!(std::fs::read(leaf.join("f1")).expect("f1"), b"bytes");

                let before = synced_under(&root).len();
                write("f2").await;
                assert_eq!(
                    synced_under(&root).split_off(before),
                    vec![leaf.clone()],
                    "{top}: second file"
                );
            }
        });
    }

    /// Only the directories that were missing are created and reported, outermost first.
    #[test]
    fn create_dirs_reports_what_it_created() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).expect("a");
        let leaf = a.join("b").join("c");
        assert_eq!(
            create_dirs(&leaf).expect("create"),
            vec![a.join("b"), leaf.clone()]
        );
        assert!(leaf.is_dir());
        assert_eq!(create_dirs(&leaf).expect("again"), Vec::<PathBuf>::new());
    }
}
