//! Failures injected at each I/O step of a write (SPEC §2, §12 "a failing object store during
//! a write", docs/design/0001-commit.md), on every backend: an object store that fails its
//! Nth call (wrapping the local file system or the S3 bucket), and a catalog writer whose
//! `commit` fails before committing, loses the answer to COMMIT (whether it landed or not),
//! or reports a conflict.
//!
//! After every injected failure: the old head is still the head, every version reads as
//! before, no new version is visible, a following write without failures succeeds, and
//! `vacuum` (grace 0) removes exactly the orphans the failed attempts left.

use crate::common::*;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarn::core::BranchName;
use tarn::{Lake, RowGroupTarget, VacuumRequest, WriteRequest};
use tarn_catalog::{
    BranchRecord, CatalogError, CommitOutcome, CommitRequest, DatasetWriter, MergeOutcome,
    TagRecord,
};
use tarn_store::DataStore;

// ---------------------------------------------------------------------------------------
// A failing object store

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
    GetRanges,
}

#[derive(Debug, Default)]
struct Plan {
    /// Fail the Nth counted call (1-based) ...
    fail_at: Option<u64>,
    /// ... of these kinds only (all counted kinds when empty) ...
    only: Vec<Kind>,
    /// ... after letting it through (a put that lands but whose acknowledgement is lost).
    after: bool,
    calls: u64,
    fired: Option<String>,
    trace: Vec<String>,
}

#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    plan: Mutex<Plan>,
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

fn injected(what: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "failpoint",
        source: Box::new(std::io::Error::other(what)),
    }
}

impl FailingStore {
    fn arm(&self, fail_at: u64, only: &[Kind], after: bool) {
        let mut p = self.plan.lock().expect("plan");
        *p = Plan {
            fail_at: Some(fail_at),
            only: only.to_vec(),
            after,
            ..Plan::default()
        };
    }

    /// Disarms; returns the failure that fired and the calls seen.
    fn disarm(&self) -> (Option<String>, Vec<String>) {
        let mut p = self.plan.lock().expect("plan");
        let out = (p.fired.take(), std::mem::take(&mut p.trace));
        *p = Plan::default();
        out
    }

    /// Counts a call; `Some(message)` when it must fail.
    fn count(&self, kind: Kind, location: &ObjectPath) -> Option<String> {
        let mut p = self.plan.lock().expect("plan");
        p.fail_at?;
        if !p.only.is_empty() && !p.only.contains(&kind) {
            return None;
        }
        p.calls += 1;
        let what = format!("call {} ({kind:?} {location})", p.calls);
        p.trace.push(what.clone());
        if p.fail_at == Some(p.calls) {
            let msg = format!("injected failure at {what}");
            p.fired = Some(msg.clone());
            return Some(msg);
        }
        None
    }

    fn fails_after(&self) -> bool {
        self.plan.lock().expect("plan").after
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.count(Kind::Put, location) {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(msg) if self.fails_after() => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected(msg))
            }
            Some(msg) => Err(injected(msg)),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if let Some(msg) = self.count(Kind::Put, location) {
            return Err(injected(msg));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if let Some(msg) = self.count(Kind::Get, location) {
            return Err(injected(msg));
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if let Some(msg) = self.count(Kind::GetRanges, location) {
            return Err(injected(msg));
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

// ---------------------------------------------------------------------------------------
// A catalog whose commit fails once

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitFault {
    /// Fails without touching the catalog (e.g. a statement failed before COMMIT was sent,
    /// so the server rolled the transaction back).
    Before,
    /// Commits, then reports that the answer to COMMIT was lost: the writer must find out by
    /// reading the catalog (it landed).
    AfterUnknown,
    /// Does not commit, and reports the answer to COMMIT lost: reading the catalog shows
    /// that it did not land.
    LostUnknown,
    /// Reports a conflict without committing (another writer won, as far as it knows).
    Conflict,
}

/// The lake's real catalog writer with one fault armed at a time: the rest of the catalog
/// (reads, retention, ...) is the real one, as `Catalog::with_writer` swaps only the writer.
#[derive(Debug)]
struct FlakyCatalog {
    inner: Arc<dyn DatasetWriter>,
    /// What the catalog is, for the injected errors' messages.
    describe: String,
    fault: Mutex<Option<CommitFault>>,
    /// A row group every commit also removes, until cleared: a plan that does not match
    /// the head it names.
    also_remove: Mutex<Option<i64>>,
    commits: Mutex<u32>,
}

impl FlakyCatalog {
    fn arm(&self, fault: CommitFault) {
        *self.fault.lock().expect("fault") = Some(fault);
    }

    fn also_remove(&self, row_group: Option<i64>) {
        *self.also_remove.lock().expect("also_remove") = row_group;
    }

    fn commits(&self) -> u32 {
        *self.commits.lock().expect("commits")
    }

    fn unknown(&self, reason: &str) -> CatalogError {
        CatalogError::UnknownOutcome {
            catalog: self.describe.clone(),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl DatasetWriter for FlakyCatalog {
    async fn commit(&self, mut request: CommitRequest) -> tarn_catalog::Result<CommitOutcome> {
        *self.commits.lock().expect("commits") += 1;
        if let Some(id) = *self.also_remove.lock().expect("also_remove") {
            request.removed_row_groups.push(id);
        }
        let fault = self.fault.lock().expect("fault").take();
        match fault {
            None => self.inner.commit(request).await,
            Some(CommitFault::Before) => Err(CatalogError::Database {
                catalog: self.describe.clone(),
                message: "injected: connection lost before COMMIT".into(),
                source: None,
            }),
            Some(CommitFault::AfterUnknown) => {
                self.inner.commit(request).await?;
                Err(self.unknown("injected: connection lost after COMMIT"))
            }
            Some(CommitFault::LostUnknown) => {
                Err(self.unknown("injected: COMMIT sent, the connection lost before it ran"))
            }
            Some(CommitFault::Conflict) => Err(CatalogError::Conflict {
                dataset: request.dataset.to_string(),
                branch: request.branch.to_string(),
                expected: request.base_version,
                actual: request.base_version + 1,
            }),
        }
    }
    async fn create_tag(
        &self,
        dataset_id: i64,
        name: &str,
        branch_id: i64,
        version: u64,
        force: bool,
    ) -> tarn_catalog::Result<TagRecord> {
        self.inner
            .create_tag(dataset_id, name, branch_id, version, force)
            .await
    }
    async fn delete_tag(&self, dataset_id: i64, name: &str) -> tarn_catalog::Result<bool> {
        self.inner.delete_tag(dataset_id, name).await
    }
    async fn create_branch(
        &self,
        dataset_id: i64,
        from: i64,
        version: u64,
        name: &BranchName,
    ) -> tarn_catalog::Result<BranchRecord> {
        self.inner
            .create_branch(dataset_id, from, version, name)
            .await
    }
    async fn delete_branch(&self, dataset_id: i64, name: &BranchName) -> tarn_catalog::Result<()> {
        self.inner.delete_branch(dataset_id, name).await
    }
    async fn fast_forward(
        &self,
        dataset_id: i64,
        source: &BranchName,
        target: &BranchName,
    ) -> tarn_catalog::Result<MergeOutcome> {
        self.inner.fast_forward(dataset_id, source, target).await
    }
}

// ---------------------------------------------------------------------------------------
// Harness

struct Rig {
    place: LakePlace,
    lake: Lake,
    store: Arc<FailingStore>,
    catalog: Arc<FlakyCatalog>,
}

/// A durable lake (fsyncs on locally, `synchronous_commit` on in PostgreSQL) in `place`,
/// whose object store and catalog writer can fail on demand. The failing store wraps the
/// backend's own (the local file system, or the S3 bucket under the place's prefix).
async fn rig(place: LakePlace) -> Rig {
    drop(place.init().await);
    let config = &place.config;
    let location = config.storage_location(&place.dir).expect("storage");
    let real = DataStore::open(&location, &config.s3_settings(), true).expect("open store");
    let store = Arc::new(FailingStore {
        inner: real.object_store().clone(),
        plan: Mutex::new(Plan::default()),
    });
    let catalog = tarn_catalog::open(
        &config.catalog_location(&place.dir).expect("catalog"),
        &config.catalog_settings(true),
    )
    .await
    .expect("open catalog");
    let flaky = Arc::new(FlakyCatalog {
        inner: catalog.writer.clone(),
        describe: catalog.describe(),
        fault: Mutex::new(None),
        also_remove: Mutex::new(None),
        commits: Mutex::new(0),
    });
    let lake = Lake::from_parts(
        catalog.with_writer(flaky.clone()),
        DataStore::new(
            store.clone() as Arc<dyn ObjectStore>,
            real.local_root().cloned(),
            true,
        ),
    );
    Rig {
        place,
        lake,
        store,
        catalog: flaky,
    }
}

const URI: &str = "tarn://fp/x";

fn req() -> WriteRequest {
    WriteRequest::new()
        .ordered_on("k")
        .row_group_target(RowGroupTarget::Rows(4))
}

fn rows(ks: Range<i64>, id: i64) -> Vec<Row> {
    ks.map(|k| (k, id, k * 10 + id)).collect()
}

/// v1: k 0..10 in row groups [0-3] [4-7] [8-9]; v2: k 10 appended as [10], another file
/// (two short trailing row groups stand in the tiered tail). The write under test touches
/// row groups of both files, so it reads both; compaction has row groups to merge.
async fn setup(lake: &Lake) -> Vec<Vec<Row>> {
    let v1 = rows(0..10, 0);
    lake.write(URI, kiv_batch(&v1), req()).await.expect("v1");
    let v2_in = rows(10..11, 0);
    lake.write(URI, kiv_batch(&v2_in), req()).await.expect("v2");
    let v2 = model_write(&v1, &v2_in, Dup::None);
    let rgs = row_group_ids(lake, URI).await;
    let files: BTreeSet<&String> = rgs.iter().map(|r| &r.1).collect();
    assert_eq!(files.len(), 2, "setup must span two files: {rgs:?}");
    vec![v1, v2]
}

fn write_under_test() -> Vec<Row> {
    vec![(9, 1, 1), (7, 1, 2), (10, 1, 3), (8, 1, 4)]
}

/// Every version still reads as `history` says, and nothing newer is visible.
async fn assert_history(lake: &Lake, history: &[Vec<Row>], context: &str) {
    let log = log_of(lake, URI).await;
    let versions: Vec<u64> = log.iter().map(|l| l.0).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).rev().collect();
    assert_eq!(versions, expected, "{context}: log");
    let head = lake.snapshot(URI).await.expect("head");
    assert_eq!(head.version(), history.len() as u64, "{context}: head");
    for (i, rows) in history.iter().enumerate() {
        assert_eq!(
            &read_kiv(lake, &format!("{URI}:v{}", i + 1)).await,
            rows,
            "{context}: v{}",
            i + 1
        );
    }
}

/// Files every version (not expired) references.
async fn referenced(lake: &Lake, versions: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in 1..=versions {
        out.extend(files_of(lake, &format!("{URI}:v{v}")).await);
    }
    out
}

/// The orphans left by failed attempts: files on disk that no version references.
async fn orphans(rig: &Rig, versions: u64) -> BTreeSet<String> {
    let on_disk = rig.place.files().await;
    let refs = referenced(&rig.lake, versions).await;
    assert!(
        refs.is_subset(&on_disk),
        "a referenced file is missing: {refs:?} vs {on_disk:?}"
    );
    on_disk.difference(&refs).cloned().collect()
}

/// Vacuum with the default grace keeps young orphans; with grace 0 it removes exactly them.
async fn vacuum_and_check(
    rig: &Rig,
    history: &[Vec<Row>],
    expected_orphans: &BTreeSet<String>,
    context: &str,
) {
    let n = history.len() as u64;
    let before = rig.place.files().await;
    let report = rig
        .lake
        .vacuum(&VacuumRequest::default())
        .await
        .expect("vacuum");
    assert!(
        report.orphan_files.is_empty(),
        "{context}: default grace took young orphans: {report:?}"
    );
    assert_eq!(
        rig.place.files().await,
        before,
        "{context}: default-grace vacuum deleted files"
    );
    let report = rig
        .lake
        .vacuum(&VacuumRequest {
            grace: Duration::ZERO,
            ..VacuumRequest::default()
        })
        .await
        .expect("vacuum grace 0");
    let removed: BTreeSet<String> = report.orphan_files.iter().cloned().collect();
    assert_eq!(
        &removed, expected_orphans,
        "{context}: vacuum removed {report:?}"
    );
    assert!(
        report.unreferenced_files.is_empty(),
        "{context}: {report:?}"
    );
    let after = rig.place.files().await;
    assert_eq!(
        after,
        referenced(&rig.lake, n).await,
        "{context}: files left after vacuum"
    );
    assert_history(&rig.lake, history, &format!("{context}, after vacuum")).await;
}

/// Fails the Nth I/O call of the write, for N = 1, 2, ... until the write gets through,
/// each time on a fresh lake of `backend`.
async fn sweep(backend: Backend, only: &[Kind], after: bool) -> u64 {
    let mut n = 1;
    loop {
        let rig = rig(case_place(backend)).await;
        let history = setup(&rig.lake).await;
        let context = format!(
            "{}: failing call {n} of {only:?} (after: {after})",
            backend.name()
        );
        rig.store.arm(n, only, after);
        let result = rig
            .lake
            .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
            .await;
        let (fired, trace) = rig.store.disarm();
        let expected_v3 = model_write(&history[1], &write_under_test(), Dup::None);
        match (result, fired) {
            (Ok(out), None) => {
                // The sweep went past the last I/O call: the write is whole.
                assert_eq!(out.version, Some(3), "{context}");
                let mut history = history;
                history.push(expected_v3);
                assert_history(&rig.lake, &history, &context).await;
                assert!(n > 1, "the write made no I/O call of kinds {only:?}");
                return n - 1;
            }
            (Ok(out), Some(f)) => {
                panic!("{context}: {f} but the write reported success: {out:?}; calls: {trace:?}")
            }
            (Err(e), None) => {
                panic!("{context}: the write failed without an injected failure: {e}")
            }
            (Err(e), Some(f)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("injected failure"),
                    "{context}: error does not carry the cause: {msg} ({f})"
                );
                assert_eq!(
                    e.kind(),
                    tarn::ErrorKind::Internal,
                    "{context}: a storage failure is not the user's fault: {msg}"
                );
                assert_history(&rig.lake, &history, &context).await;
                let expected_orphans = orphans(&rig, 2).await;
                if !after {
                    assert!(
                        expected_orphans.is_empty(),
                        "{context}: a failed put left {expected_orphans:?}"
                    );
                }
                // A following write without failures succeeds and reads right.
                let out = rig
                    .lake
                    .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
                    .await
                    .unwrap_or_else(|e| panic!("{context}: retry failed: {e}"));
                assert_eq!(out.version, Some(3), "{context}: retry");
                let mut history = history;
                history.push(expected_v3);
                assert_history(&rig.lake, &history, &format!("{context}, retried")).await;
                vacuum_and_check(&rig, &history, &expected_orphans, &context).await;
            }
        }
        n += 1;
        assert!(n < 200, "the write never got through");
    }
}

async fn every_failing_io_call_of_a_write_leaves_the_lake_unchanged(place: LakePlace) {
    let calls = sweep(place.backend, &[], false).await;
    eprintln!("{}: the write made {calls} I/O calls", place.backend.name());
    // The write reads row groups of two files and writes one: several calls at least.
    assert!(calls >= 3, "only {calls} I/O calls seen");
}

async fn a_put_that_lands_but_fails_leaves_an_orphan_that_vacuum_removes(place: LakePlace) {
    let puts = sweep(place.backend, &[Kind::Put], true).await;
    assert_eq!(puts, 1, "a write puts one file");
}

async fn a_failing_first_write_creates_no_dataset(place: LakePlace) {
    let rig = rig(place).await;
    rig.store.arm(1, &[Kind::Put], true);
    let err = rig
        .lake
        .write(URI, kiv_batch(&rows(0..5, 0)), req())
        .await
        .expect_err("the put fails");
    let (fired, _) = rig.store.disarm();
    assert!(fired.is_some(), "{err}");
    assert!(rig.lake.datasets(None).await.expect("datasets").is_empty());
    let missing = rig
        .lake
        .snapshot(URI)
        .await
        .expect_err("no dataset")
        .to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    let orphaned = rig.place.files().await;
    assert_eq!(orphaned.len(), 1, "the put landed: {orphaned:?}");
    let out = rig
        .lake
        .write(URI, kiv_batch(&rows(0..5, 0)), req())
        .await
        .expect("retry");
    assert_eq!(out.version, Some(1));
    assert_eq!(read_kiv(&rig.lake, URI).await, rows(0..5, 0));
    vacuum_and_check(&rig, &[rows(0..5, 0)], &orphaned, "first write").await;
}

async fn a_commit_that_fails_before_committing_leaves_an_orphan(place: LakePlace) {
    let rig = rig(place).await;
    let history = setup(&rig.lake).await;
    rig.catalog.arm(CommitFault::Before);
    let err = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect_err("commit fails");
    assert!(err.to_string().contains("before COMMIT"), "{err}");
    assert_history(&rig.lake, &history, "failed commit").await;
    // An error that is not a conflict: the writer keeps its file (design 0001); vacuum
    // takes it after the grace period, as nothing references it.
    let orphaned = orphans(&rig, 2).await;
    assert_eq!(orphaned.len(), 1, "{orphaned:?}");
    let out = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect("retry");
    assert_eq!(out.version, Some(3));
    let mut history = history;
    history.push(model_write(&history[1], &write_under_test(), Dup::None));
    assert_history(&rig.lake, &history, "retried").await;
    vacuum_and_check(&rig, &history, &orphaned, "failed commit").await;
}

/// The commit landed but its answer was lost (`UnknownOutcome`): the writer re-reads the
/// branch head, finds its own file in the version after its base, and reports that version
/// as written (docs/design/0006 "Outcomes"); the file is referenced, so it is no orphan.
async fn a_commit_whose_outcome_is_unknown_but_landed_reports_the_version(place: LakePlace) {
    let rig = rig(place).await;
    let history = setup(&rig.lake).await;
    let commits_before = rig.catalog.commits();
    rig.catalog.arm(CommitFault::AfterUnknown);
    let out = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect("the commit landed, so the write succeeds");
    assert_eq!(out.version, Some(3), "{out:?}");
    assert_eq!(out.attempts, 1, "{out:?}");
    assert_eq!(
        rig.catalog.commits() - commits_before,
        1,
        "no second commit"
    );
    let head = rig.lake.snapshot(URI).await.expect("head");
    assert_eq!(out.commit_id, Some(head.commit_id()), "{out:?}");
    assert_eq!(out.rows, head.rows(), "{out:?}");
    let mut history = history;
    history.push(model_write(&history[1], &write_under_test(), Dup::None));
    assert_history(&rig.lake, &history, "commit of unknown outcome").await;
    assert!(orphans(&rig, 3).await.is_empty());
    vacuum_and_check(
        &rig,
        &history,
        &BTreeSet::new(),
        "commit of unknown outcome",
    )
    .await;
}

/// The answer to COMMIT was lost and the commit did not land: the writer finds the head
/// unchanged, reports the unknown outcome (it must not guess), and keeps its file, which
/// vacuum removes as an orphan after the grace period.
async fn a_commit_whose_outcome_is_unknown_and_lost_keeps_its_file(place: LakePlace) {
    let rig = rig(place).await;
    let history = setup(&rig.lake).await;
    rig.catalog.arm(CommitFault::LostUnknown);
    let err = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect_err("the commit did not land");
    let msg = err.to_string();
    assert!(
        msg.contains("the outcome of the commit is unknown") && msg.contains("injected"),
        "{msg}"
    );
    assert_history(&rig.lake, &history, "lost commit").await;
    let orphaned = orphans(&rig, 2).await;
    assert_eq!(orphaned.len(), 1, "the writer kept its file: {orphaned:?}");
    let out = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect("retry");
    assert_eq!(out.version, Some(3));
    let mut history = history;
    history.push(model_write(&history[1], &write_under_test(), Dup::None));
    assert_history(&rig.lake, &history, "retried").await;
    vacuum_and_check(&rig, &history, &orphaned, "lost commit").await;
}

async fn a_commit_conflict_deletes_the_file_and_replans(place: LakePlace) {
    let rig = rig(place).await;
    let history = setup(&rig.lake).await;
    let commits_before = rig.catalog.commits();
    rig.catalog.arm(CommitFault::Conflict);
    let out = rig
        .lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect("re-plans and commits");
    assert_eq!(out.attempts, 2, "{out:?}");
    assert_eq!(out.version, Some(3));
    assert_eq!(rig.catalog.commits() - commits_before, 2);
    let mut history = history;
    history.push(model_write(&history[1], &write_under_test(), Dup::None));
    assert_history(&rig.lake, &history, "conflict").await;
    // A conflict is a definite "no": the losing attempt's file is deleted at once.
    let left = orphans(&rig, 3).await;
    assert!(left.is_empty(), "the conflicting attempt left {left:?}");
    vacuum_and_check(&rig, &history, &BTreeSet::new(), "conflict").await;
}

/// A commit that removes a row group no longer live at the head it names, which has not
/// moved, is no race: the writer fails on its first attempt with the catalog's error (not a
/// conflict), deletes its file, and the lake is unchanged. A real race still re-plans: a
/// writer whose planned row group a concurrent commit removed commits on its next attempt
/// (`two_writers_at_once_both_commit_every_write`, `a_commit_conflict_deletes_the_file_and_replans`).
async fn a_commit_that_removes_a_dead_row_group_fails_on_its_first_attempt(place: LakePlace) {
    let rig = rig(place).await;
    let mut history = setup(&rig.lake).await;
    // v3 rewrites the row groups around k 7..10: those of v2 are no longer live.
    let v2_ids: BTreeSet<i64> = row_group_ids(&rig.lake, URI)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    rig.lake
        .write(URI, kiv_batch(&write_under_test()), WriteRequest::new())
        .await
        .expect("v3");
    history.push(model_write(&history[1], &write_under_test(), Dup::None));
    let v3_ids: BTreeSet<i64> = row_group_ids(&rig.lake, URI)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    let dead = *v2_ids
        .difference(&v3_ids)
        .next()
        .expect("v3 replaced a row group of v2");

    rig.catalog.also_remove(Some(dead));
    let commits_before = rig.catalog.commits();
    let err = rig
        .lake
        .write(URI, kiv_batch(&rows(20..22, 3)), WriteRequest::new())
        .await
        .expect_err("the commit is refused");
    rig.catalog.also_remove(None);
    assert_eq!(
        rig.catalog.commits() - commits_before,
        1,
        "one attempt, no retry: {err}"
    );
    assert_ne!(err.kind(), tarn::ErrorKind::Conflict, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "row group(s) {dead} it removes are not live at version 3"
        )) && msg.contains("nothing was written"),
        "{msg}"
    );
    assert_history(&rig.lake, &history, "refused commit").await;
    // The refusal is a definite "no": the attempt's file is deleted at once.
    let left = orphans(&rig, 3).await;
    assert!(left.is_empty(), "the refused attempt left {left:?}");

    let out = rig
        .lake
        .write(URI, kiv_batch(&rows(20..22, 3)), WriteRequest::new())
        .await
        .expect("the same write without the bad removal");
    assert_eq!((out.version, out.attempts), (Some(4), 1), "{out:?}");
    history.push(model_write(&history[2], &rows(20..22, 3), Dup::None));
    assert_history(&rig.lake, &history, "after the refusal").await;
}

async fn failures_during_other_mutations_leave_the_lake_unchanged(place: LakePlace) {
    let backend = place.backend;
    // delete-range, compact and overwrite read and write files too.
    type Mutate =
        for<'a> fn(&'a Lake) -> futures::future::BoxFuture<'a, tarn::Result<tarn::WriteOutcome>>;
    let ops: Vec<(&str, Mutate)> = vec![
        ("delete-range", |l| {
            Box::pin(l.delete_range(URI, "6", "11", None))
        }),
        ("compact", |l| Box::pin(l.compact(URI, None))),
        ("overwrite", |l| {
            Box::pin(l.overwrite(URI, kiv_batch(&rows(3..9, 2)), WriteRequest::new()))
        }),
    ];
    for (name, op) in ops {
        let mut n = 1;
        loop {
            let rig = rig(case_place(backend)).await;
            let history = setup(&rig.lake).await;
            rig.store.arm(n, &[], false);
            let result = op(&rig.lake).await;
            let (fired, trace) = rig.store.disarm();
            let context = format!("{}: {name}, failing call {n}", backend.name());
            match (result, fired) {
                (Ok(_), None) => break,
                (Ok(_), Some(f)) => panic!("{context}: {f} but success; {trace:?}"),
                (Err(e), None) => panic!("{context}: failed by itself: {e}"),
                (Err(e), Some(_)) => {
                    assert!(e.to_string().contains("injected failure"), "{context}: {e}");
                    assert_history(&rig.lake, &history, &context).await;
                    assert!(orphans(&rig, 2).await.is_empty(), "{context}");
                    op(&rig.lake)
                        .await
                        .unwrap_or_else(|e| panic!("{context}: retry: {e}"));
                    assert_eq!(rig.lake.snapshot(URI).await.expect("head").version(), 3);
                }
            }
            n += 1;
            assert!(n < 200);
        }
        assert!(n > 1, "{name} made no I/O call");
    }
}

/// SPEC §12 "two writers at once": two lakes on the same place (two catalog connections,
/// as two processes would have) append concurrently. Every write commits exactly once, the
/// versions are gap-free, no row is lost, and the losing attempts leave no file behind.
async fn two_writers_at_once_both_commit_every_write(place: LakePlace) {
    let a = relaxed_lake(&place).await;
    let b = Lake::open_with(&place.dir, tarn::Durability::Relaxed)
        .await
        .expect("second lake");
    let uri = "tarn://fp/concurrent";
    a.write(uri, kiv_batch(&[(0, 0, 0)]), req())
        .await
        .expect("v1");
    let writer = |lake: Lake, id: i64| async move {
        let mut attempts = 0;
        for i in 1..=8 {
            // Both writers touch the same tail row group, so their plans collide.
            let out = lake
                .write(uri, kiv_batch(&[(i, id, i)]), WriteRequest::new())
                .await
                .unwrap_or_else(|e| panic!("writer {id}, write {i}: {e}"));
            assert!(out.version.is_some());
            attempts += out.attempts;
        }
        attempts
    };
    let (ta, tb) = tokio::join!(
        tokio::spawn(writer(a.clone(), 1)),
        tokio::spawn(writer(b.clone(), 2))
    );
    let (ta, tb) = (ta.expect("writer 1"), tb.expect("writer 2"));
    let log = log_of(&a, uri).await;
    let versions: Vec<u64> = log.iter().map(|l| l.0).collect();
    assert_eq!(
        versions,
        (1..=17).rev().collect::<Vec<u64>>(),
        "attempts {ta} + {tb}"
    );
    let rows = read_kiv(&b, uri).await;
    assert_eq!(rows.len(), 17);
    for i in 1..=8 {
        assert!(
            rows.contains(&(i, 1, i)) && rows.contains(&(i, 2, i)),
            "lost a row: {rows:?}"
        );
    }
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{rows:?}");
    // Each version has exactly one more row than the one before.
    for (i, l) in log.iter().rev().enumerate() {
        assert_eq!(l.4, i as u64 + 1, "{log:?}");
    }
    let mut refs = BTreeSet::new();
    for v in 1..=17 {
        refs.extend(files_of(&a, &format!("{uri}:v{v}")).await);
    }
    assert_eq!(
        place.files().await,
        refs,
        "a lost attempt left its file behind"
    );
}

tarn_testkit::backend_tests!(
    every_failing_io_call_of_a_write_leaves_the_lake_unchanged,
    a_put_that_lands_but_fails_leaves_an_orphan_that_vacuum_removes,
    a_failing_first_write_creates_no_dataset,
    a_commit_that_fails_before_committing_leaves_an_orphan,
    a_commit_whose_outcome_is_unknown_but_landed_reports_the_version,
    a_commit_whose_outcome_is_unknown_and_lost_keeps_its_file,
    a_commit_conflict_deletes_the_file_and_replans,
    a_commit_that_removes_a_dead_row_group_fails_on_its_first_attempt,
    failures_during_other_mutations_leave_the_lake_unchanged,
    two_writers_at_once_both_commit_every_write,
);
