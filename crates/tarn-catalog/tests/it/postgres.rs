//! PostgreSQL-only tests: connecting (every failure is a clear `Unavailable` within the
//! timeout), the schema check, migrations under concurrent openers, the plans of the indexed
//! lookups, the round trips of a commit, the clock lock, and commits whose answer is lost
//! (through a loopback proxy that cuts the connection at `COMMIT`).

use crate::backends::{self, Schema, TestCatalog, raw_client, settings};
use crate::registry::{dimension, new_version, record, target};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarn_catalog::*;
use tarn_core::value::SqlScalar;
use tarn_core::{BranchName, DatasetName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `postgres://USERINFO@HOST:PORT/DB?QUERY` in its parts (the test URLs are of that shape).
struct UrlParts {
    scheme: String,
    user: String,
    password: Option<String>,
    host_port: String,
    db: String,
    query: String,
}

impl UrlParts {
    fn parse(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (userinfo.to_string(), None),
        };
        Self {
            scheme: scheme.into(),
            user,
            password,
            host_port: host_port.into(),
            db: db.into(),
            query: query.into(),
        }
    }

    fn url(&self) -> String {
        let password = self
            .password
            .as_ref()
            .map_or(String::new(), |p| format!(":{p}"));
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!(
            "{}://{}{password}@{}/{}{query}",
            self.scheme, self.user, self.host_port, self.db
        )
    }
}

fn quick() -> CatalogSettings {
    CatalogSettings {
        connect_timeout: Duration::from_secs(2),
        ..settings()
    }
}

async fn unavailable(url: &str, settings: &CatalogSettings) -> (String, Duration) {
    let started = Instant::now();
    let err = PostgresCatalog::connect(url, settings)
        .await
        .expect_err("must not connect");
    let took = started.elapsed();
    assert!(
        matches!(err, CatalogError::Unavailable { .. }),
        "{err:?} should be Unavailable"
    );
    assert!(
        took <= settings.connect_timeout + Duration::from_secs(1),
        "took {took:?}, over the {:?} timeout: {err}",
        settings.connect_timeout
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");
    (err.to_string(), took)
}

#[tokio::test]
async fn a_refused_port_is_unavailable_and_says_so() {
    // Port 1 on loopback: nobody listens there.
    let (message, _) = unavailable("postgres://tarn:s3cret@127.0.0.1:1/lake", &quick()).await;
    assert!(
        message.starts_with("cannot reach the PostgreSQL catalog tarn@127.0.0.1:1/lake: "),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the TCP connection, then says nothing: the startup must not hang.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let settings = CatalogSettings {
        connect_timeout: Duration::from_secs(1),
        ..settings()
    };
    let (message, took) = unavailable(
        &format!("postgres://tarn:s3cret@127.0.0.1:{port}/lake"),
        &settings,
    )
    .await;
    assert!(message.contains("timed out after 1s"), "{message}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    held.abort();
}

#[tokio::test]
async fn a_bad_url_is_refused_without_its_password() {
    let err = PostgresCatalog::connect("postgres://tarn:s3cret@127.0.0.1:99999/lake", &quick())
        .await
        .expect_err("bad port");
    assert!(matches!(err, CatalogError::Refused(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("not a valid PostgreSQL URL"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn an_unknown_database_is_unavailable() {
    let Some(admin) = backends::postgres_admin_url() else {
        return;
    };
    let mut parts = UrlParts::parse(&admin);
    parts.db = format!("tarn_no_such_db_{}", uuid::Uuid::new_v4().simple());
    let (message, _) = unavailable(&parts.url(), &quick()).await;
    assert!(
        message.contains(&format!("database \"{}\" does not exist", parts.db)),
        "{message}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_unavailable() {
    let Some(admin) = backends::postgres_admin_url() else {
        return;
    };
    let mut parts = UrlParts::parse(&admin);
    parts.password = Some("s3cret-but-wrong".into());
    let url = parts.url();
    match PostgresCatalog::connect(&url, &quick()).await {
        Ok(_) => eprintln!(
            "skipped: the server at {} lets {} in without checking the password (trust \
             authentication), so a wrong one cannot be refused",
            parts.host_port, parts.user
        ),
        Err(_) => {
            let (message, _) = unavailable(&url, &quick()).await;
            assert!(
                message.contains(&format!(
                    "password authentication failed for user \"{}\"",
                    parts.user
                )),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn a_missing_schema_says_to_create_it() {
    let Some(admin) = backends::postgres_admin_url() else {
        return;
    };
    let name = backends::fresh_schema_name();
    let (message, _) = unavailable(&backends::with_search_path(&admin, &name), &quick()).await;
    assert!(
        message.contains(&format!("schema \"{name}\"")) && message.contains("CREATE SCHEMA"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_when_catalogs_open_a_new_schema_together() {
    let Some(admin) = backends::postgres_admin_url() else {
        return;
    };
    let schema = Schema::create(&admin).await;
    let url = schema.url();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresCatalog::connect(&url, &settings()).await })
        })
        .collect();
    let mut catalogs = Vec::new();
    for opener in openers {
        catalogs.push(opener.await.expect("task").expect("connect"));
    }
    let client = raw_client(&url).await;
    let applied: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("schema_migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = tarn_catalog::postgres::migrations::known();
    assert_eq!(applied, (1..=known).collect::<Vec<_>>());
    let clock: i64 = client
        .query_one("SELECT count(*) FROM lake_clock", &[])
        .await
        .expect("clock")
        .get(0);
    assert_eq!(clock, 1);
    // The tables are in the test's schema, not in public.
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&schema.name],
        )
        .await
        .expect("tables")
        .get(0);
    // The catalog's tables, and lake_clock and schema_migrations.
    assert_eq!(tables as usize, tarn_catalog::TABLES.len() + 2);
    let parts = UrlParts::parse(&admin);
    assert_eq!(
        catalogs[0].describe(),
        format!(
            "PostgreSQL catalog {}@{}/{}",
            parts.user, parts.host_port, parts.db
        )
    );

    // A catalog from a newer tarn is refused, naming it.
    client
        .batch_execute("INSERT INTO schema_migrations VALUES (99, 0)")
        .await
        .expect("newer");
    let err = PostgresCatalog::connect(&url, &settings())
        .await
        .expect_err("too new");
    assert!(
        matches!(err, CatalogError::TooNew { found: 99, known: k, .. } if k == known),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade tarn"), "{err}");
}

fn request(base: u64, rgs: &[(i64, i64)], removed: Vec<i64>, path: &str) -> CommitRequest {
    CommitRequest {
        dataset: DatasetName::new("demand/nc").expect("name"),
        branch: BranchName::main(),
        base_version: base,
        ordered_on: "k".into(),
        operation: "write".into(),
        message: None,
        schema_json: "{}".into(),
        options_json: "{}".into(),
        metadata: BTreeMap::new(),
        new_file: (!rgs.is_empty()).then(|| NewFile {
            path: path.into(),
            bytes: 100 * rgs.len() as u64,
            row_groups: rgs
                .iter()
                .enumerate()
                .map(|(i, (min, max))| NewRowGroup {
                    rg_index: i as u32,
                    rows: 10,
                    bytes: 100,
                    min: SqlScalar::Integer(*min),
                    max: SqlScalar::Integer(*max),
                })
                .collect(),
        }),
        removed_row_groups: removed,
        request_id: None,
    }
}

fn ranges(n: i64, from: i64) -> Vec<(i64, i64)> {
    (0..n)
        .map(|i| ((from + i) * 10, (from + i) * 10 + 9))
        .collect()
}

async fn main_branch(catalog: &Catalog) -> BranchRecord {
    let ds = catalog
        .reader
        .dataset(&DatasetName::new("demand/nc").expect("name"))
        .await
        .expect("dataset")
        .expect("exists");
    catalog
        .reader
        .branch(ds.id, &BranchName::main())
        .await
        .expect("branch")
        .expect("main")
}

/// An append is four round trips whatever its number of row groups (`BEGIN`, the clock and
/// the lookup in one pipeline; the file with its row groups; the version; `COMMIT`), a
/// replace one more, the first write of a new dataset three (the pipeline, one statement for
/// the dataset, its file and its version, `COMMIT`).
async fn commit_round_trips(t: TestCatalog) {
    let url = t.postgres_url().expect("postgres");
    let one = CatalogSettings {
        pool_size: 1,
        ..settings()
    };
    let pg = PostgresCatalog::connect(url, &one).await.expect("connect");
    let catalog = Catalog::new(Arc::new(pg.clone()));
    catalog
        .writer
        .commit(request(0, &ranges(3, 0), vec![], "f1"))
        .await
        .expect("v1");
    // Warm the statement cache of the one connection.
    catalog
        .writer
        .commit(request(1, &ranges(3, 3), vec![], "f2"))
        .await
        .expect("v2");
    let mut appends = Vec::new();
    for (base, n) in [(2, 1), (3, 500)] {
        let before = pg.round_trips();
        let v = catalog
            .writer
            .commit(request(
                base,
                &ranges(n, 100 * base as i64),
                vec![],
                &format!("a{base}"),
            ))
            .await
            .expect("append");
        appends.push(pg.round_trips() - before);
        assert_eq!(v.version, base + 1);
    }
    let main = main_branch(&catalog).await;
    let live = catalog
        .reader
        .row_groups(main.id, 4, RowGroupRange::default())
        .await
        .expect("row groups");
    assert_eq!(live.len(), 507);
    // The first replace on the connection also prepares its removal statement.
    let mut replaces = Vec::new();
    for (base, at) in [(4, 0), (5, 2)] {
        let removed: Vec<i64> = live[at..at + 2].iter().map(|r| r.id).collect();
        let before = pg.round_trips();
        catalog
            .writer
            .commit(request(
                base,
                &ranges(1, 7 + base as i64),
                removed,
                &format!("r{base}"),
            ))
            .await
            .expect("replace");
        replaces.push(pg.round_trips() - before);
    }
    let head = catalog
        .reader
        .version(main.id, 6)
        .await
        .expect("version")
        .expect("v6");
    assert_eq!((head.rows, head.row_groups), (5050, 505));
    eprintln!(
        "round trips: append of 1 row group {}, of 500 {}; replace {} (first), {}",
        appends[0], appends[1], replaces[0], replaces[1]
    );
    assert_eq!(appends, [4, 4]);
    assert_eq!(replaces, [6, 5]);
    // A conflict costs the pipeline that finds it, plus the rollback.
    let before = pg.round_trips();
    let err = catalog
        .writer
        .commit(request(1, &ranges(1, 9), vec![], "lost"))
        .await
        .expect_err("stale");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(pg.round_trips() - before, 2);
    // New datasets (the statement that creates them was prepared by the first write).
    let mut creations = Vec::new();
    for name in ["demand/sc", "demand/va"] {
        let mut r = request(0, &ranges(2, 0), vec![], name);
        r.dataset = DatasetName::new(name).expect("name");
        let before = pg.round_trips();
        let v = catalog.writer.commit(r).await.expect("create");
        creations.push(pg.round_trips() - before);
        assert_eq!((v.version, v.rows), (1, 20));
    }
    assert_eq!(creations, [3, 3]);
}

/// Writers of the lake queue on the clock row across processes; one that waits past the
/// statement timeout gets `Unavailable`, and nothing is written. Reads never wait.
async fn writers_wait_for_the_clock_and_readers_do_not(t: TestCatalog) {
    let url = t.postgres_url().expect("postgres");
    t.catalog
        .writer
        .commit(request(0, &ranges(2, 0), vec![], "f1"))
        .await
        .expect("v1");
    let holder = t.postgres_client().await.expect("client");
    holder
        .batch_execute("BEGIN; SELECT * FROM lake_clock WHERE id = 1 FOR UPDATE")
        .await
        .expect("hold the clock");
    let impatient = PostgresCatalog::connect(
        url,
        &CatalogSettings {
            statement_timeout: Duration::from_millis(800),
            ..settings()
        },
    )
    .await
    .expect("connect");
    // A read that waited for the lock would fail with the statement timeout.
    assert_eq!(impatient.last_commit().await.expect("read"), 1);
    let started = Instant::now();
    let err = impatient
        .commit(request(1, &ranges(1, 5), vec![], "f2"))
        .await
        .expect_err("waits past its timeout");
    assert!(matches!(err, CatalogError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A patient writer waits for the lock and commits once it is released.
    let patient = t.open_again().await;
    let waiting = tokio::spawn(async move {
        patient
            .writer
            .commit(request(1, &ranges(1, 5), vec![], "f3"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    holder.batch_execute("ROLLBACK").await.expect("release");
    let v2 = waiting.await.expect("task").expect("v2");
    assert_eq!((v2.version, v2.commit_id), (2, 2));
    let files = t.catalog.retention.referenced_files().await.expect("files");
    assert!(!files.contains(&"f2".to_string()), "{files:?}");
}

fn explain(plan: &[String]) -> String {
    plan.join("\n")
}

/// The head's range lookup seeks `branch_row_groups_live`; the dependents seek
/// `registry_dependents` (the tables hold thousands of rows, and are analyzed).
async fn lookups_use_the_indexes(t: TestCatalog) {
    let pg = t.postgres().expect("postgres");
    t.catalog
        .writer
        .commit(request(0, &ranges(20_000, 0), vec![], "big"))
        .await
        .expect("v1");
    let main = main_branch(&t.catalog).await;
    let some = t
        .catalog
        .reader
        .row_groups(
            main.id,
            1,
            RowGroupRange {
                start: Some(SqlScalar::Integer(199_000)),
                end_excl: Some(SqlScalar::Integer(199_100)),
            },
        )
        .await
        .expect("range");
    assert_eq!(some.len(), 10);
    t.catalog
        .writer
        .commit(request(1, &ranges(1, 30_000), vec![some[0].id], "v2"))
        .await
        .expect("v2");
    let mut deps: Vec<DependencyTarget> = (0..3000)
        .map(|i| target("dataset", &format!("d/{i}@main"), 1))
        .collect();
    t.catalog
        .registry
        .put_component_version(dimension("county", None, vec![record("1", "a")]))
        .await
        .expect("county");
    deps.push(target("dimension", "county", 1));
    t.catalog
        .registry
        .put_component_version(NewComponentVersion {
            dependencies: deps,
            ..new_version(ComponentKind::Project, "study", None)
        })
        .await
        .expect("study");
    let client = t.postgres_client().await.expect("client");
    // Only this test's schema: a database-wide ANALYZE fails when a concurrent test drops
    // its own schema meanwhile ("relation with OID ... does not exist").
    let tables = client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname = current_schema()",
            &[],
        )
        .await
        .expect("tables");
    assert!(
        tables.len() > 5,
        "the test's schema holds the catalog's tables"
    );
    for table in tables {
        let table: String = table.get(0);
        client
            .batch_execute(&format!("ANALYZE {table}"))
            .await
            .expect("analyze");
    }

    // Recent data: the live index is sought from the start of the range.
    let range = RowGroupRange {
        start: Some(SqlScalar::Integer(199_000)),
        end_excl: Some(SqlScalar::Integer(199_100)),
    };
    let head = explain(
        &pg.row_groups_query_plan(main.id, 2, &range)
            .await
            .expect("plan"),
    );
    assert!(
        head.lines()
            .any(|l| l.contains("Index") && l.contains("branch_row_groups_live")),
        "{head}"
    );
    // Only the arm of the version asked for runs: the other is behind a one-time filter.
    assert!(head.contains("One-Time Filter"), "{head}");
    for any_version in [false, true] {
        let plan = explain(&pg.dependents_query_plan(any_version).await.expect("plan"));
        assert!(
            plan.lines()
                .any(|l| l.contains("Index") && l.contains("registry_dependents")),
            "{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on registry_dependencies"),
            "{plan}"
        );
    }
    let found = t
        .catalog
        .registry
        .dependents("dimension", "county", Some(1))
        .await
        .expect("dependents");
    assert_eq!(found.len(), 1);
}

/// Where a [`CutProxy`] cuts the next connection that sends the statement.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    Nothing,
    /// Drop `COMMIT` unsent: the server rolls back; the client never hears.
    BeforeCommit,
    /// Send `COMMIT`, wait for the server's answer, and drop it: the commit landed.
    AfterCommit,
    /// Send `BEGIN` and drop its answer: the transaction never started.
    AfterBegin,
}

/// A loopback TCP proxy to the test server that can lose one answer.
struct CutProxy {
    port: u16,
    cut: Arc<Mutex<Cut>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl CutProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(Mutex::new(Cut::Nothing));
        let shared = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(Self::pump(client, server, shared.clone()));
            }
        });
        Self { port, cut, task }
    }

    fn arm(&self, cut: Cut) {
        *self.cut.lock().expect("cut") = cut;
    }

    async fn pump(client: TcpStream, server: TcpStream, cut: Arc<Mutex<Cut>>) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let swallow = AtomicBool::new(false);
        let up = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let armed = *cut.lock().expect("cut");
                let hit = match armed {
                    Cut::BeforeCommit | Cut::AfterCommit => contains(chunk, b"COMMIT\0"),
                    Cut::AfterBegin => contains(chunk, b"BEGIN\0"),
                    Cut::Nothing => false,
                };
                if hit {
                    *cut.lock().expect("cut") = Cut::Nothing;
                    if armed == Cut::BeforeCommit {
                        return;
                    }
                    swallow.store(true, Ordering::SeqCst);
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        };
        let down = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if swallow.load(Ordering::SeqCst) {
                    return;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        // Whichever side ends first closes both connections.
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    }
}

async fn upstream(url: &str) -> SocketAddr {
    let parts = UrlParts::parse(url);
    tokio::net::lookup_host(&parts.host_port)
        .await
        .expect("resolve the test server")
        .next()
        .expect("an address")
}

/// A commit whose `COMMIT` answer is lost: when it landed the catalog finds its file and
/// reports the version; when it did not, the result is `UnknownOutcome`, never a guess. A
/// connection lost before `COMMIT` is a definite failure.
async fn lost_commit_answers_are_resolved_or_unknown(t: TestCatalog) {
    let url = t.postgres_url().expect("postgres");
    let proxy = CutProxy::start(upstream(url).await).await;
    let mut parts = UrlParts::parse(url);
    parts.host_port = format!("127.0.0.1:{}", proxy.port);
    let pg = PostgresCatalog::connect(&parts.url(), &settings())
        .await
        .expect("connect through the proxy");
    pg.commit(request(0, &ranges(2, 0), vec![], "f1"))
        .await
        .expect("v1");

    proxy.arm(Cut::AfterCommit);
    let v2 = pg
        .commit(request(1, &ranges(1, 2), vec![], "f2"))
        .await
        .expect("landed, and found so");
    assert_eq!(v2.version, 2);
    assert_eq!(
        *proxy.cut.lock().expect("cut"),
        Cut::Nothing,
        "the cut happened"
    );

    proxy.arm(Cut::BeforeCommit);
    let err = pg
        .commit(request(2, &ranges(1, 3), vec![], "f3"))
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, CatalogError::UnknownOutcome { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("outcome of the commit is unknown"),
        "{err}"
    );

    proxy.arm(Cut::AfterBegin);
    let err = pg
        .commit(request(2, &ranges(1, 3), vec![], "f3"))
        .await
        .expect_err("lost before COMMIT");
    assert!(matches!(err, CatalogError::Unavailable { .. }), "{err:?}");

    // The catalog goes on with fresh connections; f3 never landed.
    let main = main_branch(&t.catalog).await;
    assert_eq!(main.head, 2);
    let v3 = pg
        .commit(request(2, &ranges(1, 3), vec![], "f3"))
        .await
        .expect("v3");
    assert_eq!(v3.version, 3);
    let counts = t.counts().await;
    assert_eq!((counts["versions"], counts["files"]), (3, 3));
}

crate::backend_tests_postgres!(
    commit_round_trips,
    writers_wait_for_the_clock_and_readers_do_not,
    lookups_use_the_indexes,
    lost_commit_answers_are_resolved_or_unknown,
);
