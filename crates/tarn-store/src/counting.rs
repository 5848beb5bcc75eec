//! Counts of the requests a lake sends to its object store, by kind: what an operation
//! costs on S3 (docs/benchmarks.md), and later the server's metrics. The counters sit in
//! front of any store and add one relaxed atomic increment per request.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests sent so far, by kind (a multipart upload counts once, when it starts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreRequests {
    pub put: u64,
    pub get: u64,
    pub head: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
}

impl StoreRequests {
    pub fn total(&self) -> u64 {
        self.put + self.get + self.head + self.list + self.delete + self.copy
    }

    /// The requests sent since `earlier`.
    pub fn since(&self, earlier: &StoreRequests) -> StoreRequests {
        StoreRequests {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            copy: self.copy - earlier.copy,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

/// An object store that counts the requests it forwards to `inner`.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

/// Reads the counters of a [`CountingStore`].
#[derive(Debug, Clone)]
pub struct RequestCounter(Arc<Counters>);

impl RequestCounter {
    /// Counts a put made beside the object store (tarn's own durable local writes).
    pub(crate) fn count_put(&self) {
        bump(&self.0.put);
    }

    pub fn get(&self) -> StoreRequests {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreRequests {
            put: load(&c.put),
            get: load(&c.get),
            head: load(&c.head),
            list: load(&c.list),
            delete: load(&c.delete),
            copy: load(&c.copy),
        }
    }
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> (Self, RequestCounter) {
        let counters = Arc::new(Counters::default());
        (
            Self {
                inner,
                counters: counters.clone(),
            },
            RequestCounter(counters),
        )
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        bump(&self.counters.put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        bump(&self.counters.put);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        bump(if options.head {
            &self.counters.head
        } else {
            &self.counters.get
        });
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // The inner store may coalesce the ranges; count what it is asked for.
        bump(&self.counters.get);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        bump(&self.counters.delete);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        bump(&self.counters.list);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        bump(&self.counters.list);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        bump(&self.counters.copy);
        self.inner.copy_opts(from, to, options).await
    }
}
