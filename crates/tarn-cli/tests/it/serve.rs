//! `tarn serve` as a process (SPEC §9, docs/design/0009): the durable queue survives kill -9
//! (every acknowledged request applied exactly once, in arrival order per dataset),
//! idempotency keys hold under 50 concurrent clients, the event stream resumes after a
//! reconnect in the middle of 500 commits with no gap and no duplicate, and the server's
//! refusals (413, 401, 403, traversal in every parameter) leave the lake unchanged. Every
//! test runs with the catalog queue on SQLite + local files and on PostgreSQL + S3, and with
//! the NATS JetStream queue (`--queue nats://`); each stops every server it starts.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `tarn serve`: killed (SIGKILL) when dropped unless stopped first.
pub struct Served {
    child: Option<Child>,
    pub url: String,
    log: PathBuf,
}

impl Served {
    /// Starts `tarn --lake LAKE serve --addr 127.0.0.1:0 EXTRA...` and waits (at most 60 s)
    /// for its first line, `listening on http://HOST:PORT`. Its stderr goes to a log file
    /// in the test's directory, shown when a test fails.
    pub fn start(lake: &TestLake, extra: &[&str]) -> Self {
        let n = std::fs::read_dir(lake.dir()).map_or(0, |d| d.count());
        let log = lake.path(&format!("serve-{n}.log"));
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let args = lake.args(args);
        let mut child = tarn_cmd(lake.dir())
            .args(&args)
            .env("TARN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("server log file"))
            .spawn()
            .expect("spawn tarn serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep reading so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut served = Self {
            child: Some(child),
            url: String::new(),
            log,
        };
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "tarn serve printed no first line ({other:?})\n{}",
                served.log_text()
            ),
        };
        served.url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        served
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit code once it stopped by itself (at most 30 s).
    pub fn terminate(mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = c.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        panic!(
            "tarn serve did not stop within 30 s of SIGTERM\n{}",
            self.log_text()
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                let log = self.log_text();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("--- tarn serve log (last lines) ---\n{}", tail.join("\n"));
            }
        }
    }
}

/// `tarn serve` arguments: the queue's (none for the catalog queue), then `extra`.
fn queued<'a>(queue: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    queue
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect()
}

/// A token with these scopes, made by `tarn token create`.
pub fn token(lake: &TestLake, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["--json", "token", "create", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    lake.run(args).ok().json()["token"]
        .as_str()
        .expect("token create --json gives the token")
        .to_string()
}

/// An HTTP client of one server with one token.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub url: String,
    pub token: String,
}

impl Api {
    pub fn new(served: &Served, token: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            url: served.url.clone(),
            token: token.to_string(),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// POSTs a CSV write; the answer must be 202 with a request id.
    pub async fn write_csv(&self, uri: &str, csv: String, key: Option<&str>) -> String {
        let mut req = self
            .post(&format!("/api/v1/write?uri={uri}&ordered_on=ts"))
            .header("content-type", "text/csv")
            .body(csv);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, 202, "write {uri}: {body}");
        body["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id: {body}"))
            .to_string()
    }

    /// Waits (at most `limit`) until request `id` finished; its final JSON.
    pub async fn finished(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = send(self.get(&format!("/api/v1/requests/{id}?wait=10"))).await;
            assert_eq!(status, 200, "request {id}: {body}");
            if matches!(body["status"].as_str(), Some("succeeded" | "failed")) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} did not finish within {limit:?}: {body}"
            );
        }
    }
}

/// Sends a request; its status and JSON body (`null` when the body is not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("the body arrives");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned())
        }),
    )
}

/// The rows of request `i` of a dataset: `n` rows after every earlier request's.
fn rows_of_request(i: i64, n: i64) -> Vec<Row> {
    (0..n)
        .map(|j| Row::new(BASE_MS + (i * n + j) * 1000, i * 1_000_000 + j))
        .collect()
}

/// The arguments of `tarn write URI INPUT --ordered-on ts`, `rows` in a new input file.
fn write_args(lake: &TestLake, uri: &str, rows: &[Row]) -> Vec<std::ffi::OsString> {
    let n = std::fs::read_dir(lake.dir()).map_or(0, |d| d.count());
    let input = lake.file(&format!("input-{n}.csv"), csv_text(rows));
    lake.args([
        "write",
        uri,
        &input.display().to_string(),
        "--ordered-on",
        "ts",
    ])
}

/// `tarn write` of `rows` by the CLI, beside any server.
fn write_by_cli(lake: &TestLake, uri: &str, rows: &[Row]) {
    let args = write_args(lake, uri, rows);
    lake.raw(args).ok();
}

/// Files staged for queued uploads that are still in the lake's storage.
fn staged_files(lake: &TestLake) -> Vec<String> {
    lake.data_files()
        .into_iter()
        .filter(|f| f.starts_with(".staging/"))
        .collect()
}

/// Versions of a dataset (0 when it does not exist yet).
fn version_count(lake: &TestLake, uri: &str) -> usize {
    let run = lake.run(["--json", "log", uri]);
    if run.code != Some(0) {
        return 0;
    }
    run.json().as_array().map_or(0, Vec::len)
}

const PER_DATASET: i64 = 50;
const ROWS_PER_REQUEST: i64 = 4_000;

/// 100 writes to two datasets are acknowledged, the server is killed at once (most of
/// them still queued), restarted, killed again while it applies them, and restarted: every
/// acknowledged request is applied exactly once, in the order it was sent on its dataset,
/// and the staged uploads are gone at the end.
fn queued_requests_survive_kill9_and_apply_exactly_once(lake: TestLake, queue: &[String]) {
    let datasets = ["tarn://served/a", "tarn://served/b"];
    let write_token = token(&lake, "writer", &["write:"]);
    let served = Served::start(&lake, &queued(queue, &[]));
    let api = Api::new(&served, &write_token);
    let rt = tarn_testkit::runtime();
    // Two clients at once, one per dataset, each sending its 50 writes in order.
    let ids: Vec<Vec<String>> = rt.block_on(async {
        let sends = datasets.iter().map(|uri| {
            let api = api.clone();
            async move {
                let mut ids = Vec::new();
                for i in 0..PER_DATASET {
                    let csv = csv_text(&rows_of_request(i, ROWS_PER_REQUEST));
                    ids.push(api.write_csv(uri, csv, None).await);
                }
                ids
            }
        });
        futures::future::join_all(sends).await
    });
    served.kill();
    let applied_before: usize = datasets.iter().map(|d| version_count(&lake, d)).sum();
    assert!(
        applied_before < 2 * PER_DATASET as usize,
        "the kill must find queued requests (all {applied_before} were applied already)"
    );

    // Restart, let it apply a few, kill it again while it works.
    let served = Served::start(&lake, &queued(queue, &[]));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now: usize = datasets.iter().map(|d| version_count(&lake, d)).sum();
        if now > applied_before || now == 2 * PER_DATASET as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted server applies nothing\n{}",
            served.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    served.kill();
    let applied_mid: usize = datasets.iter().map(|d| version_count(&lake, d)).sum();

    // The last restart finishes the queue (a request the kill interrupted waits out its lease).
    let served = Served::start(&lake, &queued(queue, &[]));
    let api = Api::new(&served, &write_token);
    let outcomes: Vec<Vec<Value>> = rt.block_on(async {
        let mut all = Vec::new();
        for lane in &ids {
            let mut outcomes = Vec::new();
            for id in lane {
                outcomes.push(api.finished(id, Duration::from_secs(300)).await);
            }
            all.push(outcomes);
        }
        all
    });
    for (d, uri) in datasets.iter().enumerate() {
        // Versions 1..=50 in the order the client sent them: arrival order on the dataset.
        let versions: Vec<Option<u64>> =
            outcomes[d].iter().map(|o| o["version"].as_u64()).collect();
        let expected: Vec<Option<u64>> = (1..=PER_DATASET as u64).map(Some).collect();
        assert_eq!(
            versions, expected,
            "{uri}: each request one version, in arrival order (killed with {applied_before} \
             then {applied_mid} applied): {:?}",
            outcomes[d]
        );
        assert!(
            outcomes[d].iter().all(|o| o["status"] == "succeeded"),
            "{:?}",
            outcomes[d]
        );
        assert_eq!(version_count(&lake, uri), PER_DATASET as usize, "{uri}");
        // Every request's rows exactly once: a request applied twice would double its rows.
        let rows: Vec<Row> = (0..PER_DATASET)
            .flat_map(|i| rows_of_request(i, ROWS_PER_REQUEST))
            .collect();
        assert!(
            lake.read_csv(uri, &[]) == csv_text(&rows),
            "{uri}: the rows of every request exactly once"
        );
    }
    // Finished requests' uploads are deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !staged_files(&lake).is_empty() {
        assert!(
            Instant::now() < deadline,
            "staged uploads left: {:?}",
            staged_files(&lake)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        served.terminate(),
        Some(0),
        "SIGTERM stops the server cleanly"
    );
}

/// 50 clients, each on its own connection, send writes under 10 idempotency keys (5
/// clients per key, all at once): one request per key, applied once; a late retry of a key
/// gives the first request again.
fn fifty_concurrent_clients_reusing_idempotency_keys_apply_each_key_once(
    lake: TestLake,
    queue: &[String],
) {
    const KEYS: i64 = 10;
    const CLIENTS: i64 = 50;
    let uri = "tarn://served/idem";
    let write_token = token(&lake, "writer", &["write:served"]);
    let served = Served::start(&lake, &queued(queue, &[]));
    let rt = tarn_testkit::runtime();
    let answers: Vec<(i64, String)> = rt.block_on(async {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS as usize));
        let tasks = (0..CLIENTS).map(|c| {
            let api = Api::new(&served, &write_token);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let key = c % KEYS;
                let csv = csv_text(&rows_of_request(key, 100));
                barrier.wait().await;
                let id = api.write_csv(uri, csv, Some(&format!("load-{key}"))).await;
                (key, id)
            })
        });
        futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("client task"))
            .collect()
    });
    let mut by_key: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (key, id) in &answers {
        by_key.entry(*key).or_default().insert(id.clone());
    }
    assert_eq!(by_key.len(), KEYS as usize);
    for (key, ids) in &by_key {
        assert_eq!(
            ids.len(),
            1,
            "key {key}: one request for its 5 clients: {ids:?}"
        );
    }
    let api = Api::new(&served, &write_token);
    let versions: BTreeSet<u64> = rt.block_on(async {
        let mut versions = BTreeSet::new();
        for ids in by_key.values() {
            for id in ids {
                let done = api.finished(id, Duration::from_secs(120)).await;
                assert_eq!(done["status"], "succeeded", "{done}");
                versions.insert(done["version"].as_u64().expect("a version"));
            }
        }
        versions
    });
    assert_eq!(versions, (1..=KEYS as u64).collect(), "one version per key");
    assert_eq!(version_count(&lake, uri), KEYS as usize);
    let info = lake.run(["--json", "info", uri]).ok().json();
    assert_eq!(info["rows"], json!(KEYS * 100), "{info}");

    // A retry long after: the same request, nothing applied again.
    let first = &by_key[&3];
    let again = rt.block_on(api.write_csv(uri, csv_text(&rows_of_request(3, 100)), Some("load-3")));
    assert!(first.contains(&again), "{again} is not {first:?}");
    assert_eq!(version_count(&lake, uri), KEYS as usize);
    drop(served);
}

/// One server-sent event: `event`, `id`, `data`.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

/// Reads events from an open event stream until `enough` says so or `limit` passes.
async fn read_events(
    resp: reqwest::Response,
    limit: Duration,
    mut enough: impl FnMut(&Sse) -> bool,
) -> Vec<Sse> {
    use futures::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(Some(Err(e))) => panic!("event stream broke: {e}"),
            Ok(None) => panic!("the event stream ended early after {} events", out.len()),
            Err(_) => panic!("no more events within {limit:?} after {} events", out.len()),
        };
        buf.push_str(std::str::from_utf8(&chunk).expect("events are UTF-8"));
        // Events end with a blank line (the server writes `\n` line ends).
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut e = Sse {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    e.event = v.trim_start().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    e.id = Some(v.trim_start().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    e.data.push_str(v.trim_start());
                }
            }
            if e.data.is_empty() && e.id.is_none() {
                continue; // a keep-alive comment
            }
            let stop = enough(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

/// 500 commits under a prefix, most through the queue and some by the CLI in other
/// processes, while a subscriber reads the event stream, drops it after 200 commits and
/// reconnects with `Last-Event-ID`: it sees every commit once, in commit order, with the
/// commit id as event id, and nothing from outside the prefix.
fn event_stream_resumes_after_a_reconnect_with_no_gap_and_no_duplicate(
    lake: TestLake,
    queue: &[String],
) {
    const QUEUED: usize = 480;
    const BY_CLI: usize = 20;
    let queued_uri = "tarn://feed/queued";
    let cli_uri = "tarn://feed/cli";
    let outside = "tarn://elsewhere/x";
    let write_token = token(&lake, "writer", &["write:"]);
    let read_token = token(&lake, "reader", &["read:feed"]);
    for uri in [queued_uri, cli_uri, outside] {
        write_by_cli(&lake, uri, &rows_of_request(0, 10));
    }
    // The last commit before the test: the subscriber starts after it.
    let before = lake.log(outside)[0]["commit_id"]
        .as_i64()
        .expect("commit id");
    let served = Served::start(&lake, &queued(queue, &[]));
    let writer = Api::new(&served, &write_token);
    let reader = Api::new(&served, &read_token);
    let rt = tarn_testkit::runtime();
    rt.block_on(async {
        let resp = reader
            .get("/api/v1/events?prefix=feed")
            .header("last-event-id", before.to_string())
            .send()
            .await
            .expect("subscribe");
        assert_eq!(resp.status(), 200);
        // The writers: queued metadata changes, and `tarn write` processes beside them.
        let queued = tokio::spawn({
            let writer = writer.clone();
            async move {
                let mut last = String::new();
                for i in 0..QUEUED {
                    let (status, body) = send(
                        writer
                            .post(&format!("/api/v1/metadata?uri={queued_uri}"))
                            .json(&json!({"set": {"step": i.to_string()}})),
                    )
                    .await;
                    assert_eq!(status, 202, "{body}");
                    last = body["request_id"].as_str().expect("id").to_string();
                }
                last
            }
        });
        let lake_dir = lake.dir().to_path_buf();
        let cli_args: Vec<Vec<std::ffi::OsString>> = (1..=BY_CLI as i64)
            .map(|i| write_args(&lake, cli_uri, &rows_of_request(i, 10)))
            .chain(std::iter::once(write_args(
                &lake,
                outside,
                &rows_of_request(0, 10),
            )))
            .collect();
        let cli = tokio::task::spawn_blocking(move || {
            for args in cli_args {
                let out = tarn_cmd(&lake_dir)
                    .args(&args)
                    .output()
                    .expect("tarn write");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });

        let mut commits: Vec<Sse> = Vec::new();
        let got = read_events(resp, Duration::from_secs(120), |e| {
            e.event == "commit" && {
                commits.push(e.clone());
                commits.len() == 200
            }
        })
        .await;
        assert!(got.iter().any(|e| e.event == "commit"));
        // Disconnected: commits go on meanwhile.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let resume = commits.last().and_then(|e| e.id.clone()).expect("an id");
        let resp = reader
            .get("/api/v1/events?prefix=feed")
            .header("last-event-id", &resume)
            .send()
            .await
            .expect("resubscribe");
        assert_eq!(resp.status(), 200);
        read_events(resp, Duration::from_secs(300), |e| {
            e.event == "commit" && {
                commits.push(e.clone());
                commits.len() == QUEUED + BY_CLI
            }
        })
        .await;
        let last = queued.await.expect("queued writer");
        cli.await.expect("cli writer");
        writer.finished(&last, Duration::from_secs(120)).await;

        let ids: Vec<i64> = commits
            .iter()
            .map(|e| {
                let id: i64 =
                    e.id.as_deref()
                        .and_then(|i| i.parse().ok())
                        .expect("numeric id");
                let data: Value = serde_json::from_str(&e.data).expect("JSON data");
                assert_eq!(data["commit_id"].as_i64(), Some(id), "{data}");
                assert!(
                    data["dataset"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("feed/")),
                    "{data}"
                );
                id
            })
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "commit order, no duplicate: {ids:?}"
        );
        // Exactly the lake's commits under the prefix after the first ones.
        let mut expected: Vec<i64> = [queued_uri, cli_uri]
            .iter()
            .flat_map(|uri| lake.log(uri))
            .filter_map(|e| e["commit_id"].as_i64())
            .filter(|c| *c > before)
            .collect();
        expected.sort_unstable();
        assert_eq!(ids, expected, "every commit once");
    });
    drop(served);
}

/// A server with small body limits: oversized uploads and JSON bodies get 413, missing or
/// bad tokens 401, tokens out of scope 403, and traversal forms in every parameter a 4xx;
/// none of them changes the lake or creates anything outside it.
fn refusals_leave_the_lake_unchanged(lake: TestLake, queue: &[String]) {
    let uri = "tarn://guard/series";
    write_by_cli(&lake, uri, &rows_of_request(0, 10));
    let write_token = token(&lake, "writer", &["write:guard"]);
    let read_token = token(&lake, "reader", &["read:guard"]);
    let admin_token = token(&lake, "admin", &["write:"]);
    let other_token = token(&lake, "other", &["write:other"]);
    let outside = lake.path("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let before = lake.fingerprint(&[uri]);
    let tree_before = tree(&outside);
    let served = Served::start(
        &lake,
        &queued(
            queue,
            &["--max-upload-bytes", "20000", "--max-json-bytes", "1000"],
        ),
    );
    let w = Api::new(&served, &write_token);
    let r = Api::new(&served, &read_token);
    let o = Api::new(&served, &other_token);
    let admin = Api::new(&served, &admin_token);
    let anonymous = Api::new(&served, "");
    let forged = Api::new(
        &served,
        &format!("{}x", &write_token[..write_token.len() - 1]),
    );
    let rt = tarn_testkit::runtime();
    rt.block_on(async {
        let big = csv_text(&rows_of_request(1, 2_000));
        assert!(big.len() > 20_000);
        let (s, body) = send(
            w.post(&format!("/api/v1/write?uri={uri}&ordered_on=ts"))
                .header("content-type", "text/csv")
                .body(big),
        )
        .await;
        assert_eq!(s, 413, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("20000")),
            "{body}"
        );
        let (s, body) = send(
            admin
                .post("/api/v1/query")
                .header("content-type", "application/json")
                .body(format!(r#"{{"sql": "select 1 -- {}"}}"#, "x".repeat(2000))),
        )
        .await;
        assert_eq!(s, 413, "{body}");

        for (who, want) in [(&anonymous, 401), (&forged, 401), (&o, 403)] {
            let (s, body) = send(who.get(&format!("/api/v1/info?uri={uri}"))).await;
            assert_eq!(s, want, "{body}");
            assert!(body["error"].is_string(), "{body}");
            let (s, body) = send(
                who.post(&format!("/api/v1/write?uri={uri}"))
                    .header("content-type", "text/csv")
                    .body(csv_text(&rows_of_request(1, 5))),
            )
            .await;
            assert_eq!(s, want, "{body}");
        }
        let (s, body) = send(
            r.post(&format!("/api/v1/write?uri={uri}"))
                .header("content-type", "text/csv")
                .body(csv_text(&rows_of_request(1, 5))),
        )
        .await;
        assert_eq!(s, 403, "a read token writes nothing: {body}");

        // Traversal forms in every parameter that names something in the lake.
        let escapes = [
            "tarn://../../etc/passwd",
            "tarn://guard/../../../etc",
            "tarn://guard/%2e%2e/%2e%2e/x",
            "tarn:///etc/passwd",
            "/etc/passwd",
            "..%2F..%2Fetc",
            "tarn://guard\\..\\..\\x",
            "tarn://guard/series/..",
            "tarn://guard/./series",
            "tarn://guard/series%00x",
        ];
        let outside_s = outside.display().to_string();
        let mut cases: Vec<(String, reqwest::RequestBuilder)> = Vec::new();
        for bad in escapes.iter().copied().chain([outside_s.as_str()]) {
            // Already percent-encoded forms go as they are; a backslash is encoded.
            let e = bad.replace('\\', "%5C");
            for path in [
                format!("/api/v1/info?uri={e}"),
                format!("/api/v1/log?uri={e}"),
                format!("/api/v1/tags?uri={e}"),
                format!("/api/v1/branches?uri={e}"),
                format!("/api/v1/data?uri={e}"),
                format!("/api/v1/diff?a={e}&b={uri}:v1"),
                format!("/api/v1/diff?a={uri}:v1&b={e}"),
                format!("/api/v1/datasets?prefix={e}"),
                format!("/api/v1/events?prefix={e}"),
                format!("/api/v1/requests/{e}"),
            ] {
                cases.push((format!("GET {path}"), admin.get(&path)));
            }
            for path in [
                format!("/api/v1/write?uri={e}"),
                format!("/api/v1/delete-range?uri={e}&start=2024-01-01&end=2025-01-01"),
                format!("/api/v1/compact?uri={e}"),
                format!("/api/v1/tag?uri={e}&name=t1"),
                format!("/api/v1/tag?uri={uri}&name={e}"),
                format!("/api/v1/branch?uri={e}&name=b1"),
                format!("/api/v1/branch?uri={uri}&name={e}"),
                format!("/api/v1/merge?source={e}&target={uri}"),
                format!("/api/v1/merge?source={uri}@main&target={e}"),
            ] {
                cases.push((
                    format!("POST {path}"),
                    admin
                        .post(&path)
                        .header("content-type", "text/csv")
                        .body(csv_text(&rows_of_request(1, 5))),
                ));
            }
            cases.push((
                format!("POST metadata {e}"),
                admin
                    .post(&format!("/api/v1/metadata?uri={e}"))
                    .json(&json!({"set": {"k": "v"}})),
            ));
            cases.push((
                format!("POST query {bad}"),
                admin
                    .post("/api/v1/query")
                    .json(&json!({"sql": format!("select * from '{bad}'")})),
            ));
            cases.push((
                format!("POST query tarn() {bad}"),
                admin
                    .post("/api/v1/query")
                    .json(&json!({"sql": format!("select * from tarn('{bad}')")})),
            ));
        }
        for (what, req) in cases {
            let (s, body) = send(req).await;
            assert!(
                (400..500).contains(&s) && s != 401 && s != 403,
                "{what}: refused as bad input or not found, got {s}: {body}"
            );
            assert!(body["error"].is_string(), "{what}: {body}");
        }
    });
    assert_eq!(
        served.terminate(),
        Some(0),
        "SIGTERM stops the server cleanly"
    );
    assert_eq!(lake.fingerprint(&[uri]), before, "the lake is unchanged");
    assert_eq!(
        tree(&outside),
        tree_before,
        "nothing appeared outside the lake"
    );
    assert!(staged_files(&lake).is_empty(), "{:?}", staged_files(&lake));
}

/// Each test on the catalog queue of both backends, and on the NATS JetStream queue (of
/// scripts/with-services, in a namespace of its own) with a SQLite + local lake.
macro_rules! serve_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $(#[test]
            fn $name() {
                super::$name($crate::common::TestLake::new(), &[])
            })*
        }
        mod postgres_s3 {
            $(#[test]
            fn $name() {
                if let Some(lake) = $crate::common::TestLake::on($crate::common::Backend::Remote) {
                    super::$name(lake, &[])
                }
            })*
        }
        mod nats_queue {
            $(#[test]
            fn $name() {
                if let Some(url) = tarn_testkit::nats() {
                    let namespace = tarn_testkit::unique("serve").replace(['-', '.'], "_");
                    let queue = ["--queue".to_string(), format!("{url}/{namespace}")];
                    super::$name($crate::common::TestLake::new(), &queue)
                }
            })*
        }
    };
}

serve_tests!(
    queued_requests_survive_kill9_and_apply_exactly_once,
    fifty_concurrent_clients_reusing_idempotency_keys_apply_each_key_once,
    event_stream_resumes_after_a_reconnect_with_no_gap_and_no_duplicate,
    refusals_leave_the_lake_unchanged,
);
