//! SPEC §9's contract through `app(state)`: reads, the data endpoint, SQL, mutations through
//! the queue, notifications, tokens, limits and bad input, on both backends.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use http_body_util::BodyExt;
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Duration;
use tarn::{Lake, RequestStatus};
use tarn_server::{CatalogQueue, Scope, Server, ServerConfig, app};
use tarn_testkit::LakePlace;
use tower::ServiceExt;

struct Harness {
    server: Server,
    lake: Lake,
    /// `write:` (the whole lake).
    admin: String,
    /// `read:weather`.
    reader: String,
}

async fn harness(place: &LakePlace, config: ServerConfig) -> Harness {
    let lake = place.init().await;
    let token = |name: &str, scope: &str| {
        let (secret, record) =
            tarn_server::new_token(name, &[Scope::parse(scope).unwrap()]).unwrap();
        (secret, record)
    };
    let (admin, a) = token("admin", "write:");
    let (reader, r) = token("reader", "read:weather");
    let store = lake.service_store();
    store.create_token(&a).await.unwrap();
    store.create_token(&r).await.unwrap();
    let server = Server::start(lake.clone(), config, Arc::new(CatalogQueue::new(&lake)))
        .await
        .unwrap();
    Harness {
        server,
        lake,
        admin,
        reader,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// The error message, or the whole body when it is not an error.
    fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

impl Harness {
    async fn call(&self, request: Request<Body>) -> Answer {
        let response = app(self.server.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, token: Option<&str>, path: &str) -> Answer {
        let mut b = Request::get(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.call(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, token: &str, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let request = Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        self.call(request).await
    }

    /// Queues a CSV write and waits for it; returns the finished request.
    async fn write_csv(&self, uri: &str, csv: &str, key: Option<&str>) -> serde_json::Value {
        let mut b = Request::post(format!("/api/v1/write?uri={uri}&ordered_on=ts"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, "text/csv");
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        let queued = self
            .call(b.body(Body::from(csv.to_string())).unwrap())
            .await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.error());
        let id = queued.json()["request_id"].as_str().unwrap().to_string();
        self.wait(&id).await
    }

    async fn wait(&self, id: &str) -> serde_json::Value {
        let done = self
            .get(Some(&self.admin), &format!("/api/v1/requests/{id}?wait=30"))
            .await;
        assert_eq!(done.status, StatusCode::OK);
        done.json()
    }
}

fn csv_rows(start_hour: u32, n: u32) -> String {
    let mut out = String::from("ts,temp\n");
    for h in start_hour..start_hour + n {
        out.push_str(&format!(
            "2024-01-{:02}T{:02}:00:00Z,{}.5\n",
            1 + h / 24,
            h % 24,
            h
        ));
    }
    out
}

async fn a_write_goes_through_the_queue_and_reads_back_in_every_format(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    let done = h
        .write_csv("tarn://weather/berlin", &csv_rows(0, 48), Some("first"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["version"], 1);
    let csv = h
        .get(
            Some(&h.reader),
            "/api/v1/data?uri=tarn://weather/berlin:v1&format=csv&start=2024-01-02&columns=ts,temp",
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = String::from_utf8(csv.body.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25, "{text}");
    assert_eq!(lines[0], "ts,temp");
    assert!(lines[1].starts_with("2024-01-02T00:00:00") && lines[1].ends_with(",24.5"));
    // Parquet (the default) and Arrow decode to the same 48 rows.
    let parquet = h
        .get(Some(&h.reader), "/api/v1/data?uri=tarn://weather/berlin")
        .await;
    assert_eq!(
        parquet.headers[header::CONTENT_TYPE],
        "application/vnd.apache.parquet"
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet.body.clone()),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 48);
    let arrow = h
        .get(
            Some(&h.reader),
            "/api/v1/data?uri=tarn://weather/berlin&format=arrow",
        )
        .await;
    let stream =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None).unwrap();
    assert_eq!(stream.map(|b| b.unwrap().num_rows()).sum::<usize>(), 48);
    let jsonl = h
        .get(
            Some(&h.reader),
            "/api/v1/data?uri=tarn://weather/berlin&format=jsonl&end=2024-01-01T02:00:00Z",
        )
        .await;
    let text = String::from_utf8(jsonl.body).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    // The JSON reads are those of the CLI's --json.
    let info = h
        .get(Some(&h.reader), "/api/v1/info?uri=tarn://weather/berlin")
        .await
        .json();
    assert_eq!(info["rows"], 48);
    assert_eq!(info["version"], 1);
    let log = h
        .get(Some(&h.reader), "/api/v1/log?uri=tarn://weather/berlin")
        .await
        .json();
    assert_eq!(log[0]["version"], 1);
    let list = h
        .get(Some(&h.reader), "/api/v1/datasets?prefix=weather")
        .await
        .json();
    assert_eq!(list[0]["name"], "weather/berlin");
    // The same idempotency key again: the same request, applied once.
    let again = h
        .write_csv("tarn://weather/berlin", &csv_rows(100, 2), Some("first"))
        .await;
    assert_eq!(again["request_id"], done["request_id"]);
    assert_eq!(
        h.lake
            .log("tarn://weather/berlin", None)
            .await
            .unwrap()
            .len(),
        1
    );
    h.server.stop().await;
}

async fn versioned_data_is_immutable_and_revalidates(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    h.write_csv("tarn://weather/oslo", &csv_rows(0, 5), None)
        .await;
    let pinned = h
        .get(Some(&h.reader), "/api/v1/data?uri=tarn://weather/oslo:v1")
        .await;
    assert_eq!(
        pinned.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let etag = pinned.headers[header::ETAG].to_str().unwrap().to_string();
    let head = h
        .get(Some(&h.reader), "/api/v1/data?uri=tarn://weather/oslo")
        .await;
    assert_eq!(head.headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(head.headers[header::ETAG].to_str().unwrap(), etag);
    let request = Request::get("/api/v1/data?uri=tarn://weather/oslo")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.reader))
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let not_modified = h.call(request).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    // A new head version: the head's ETag changes, the pinned one does not.
    h.write_csv("tarn://weather/oslo", &csv_rows(5, 1), None)
        .await;
    let moved = h
        .get(Some(&h.reader), "/api/v1/data?uri=tarn://weather/oslo")
        .await;
    assert_ne!(moved.headers[header::ETAG].to_str().unwrap(), etag);
    h.server.stop().await;
}

async fn tokens_and_scopes_guard_every_endpoint(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    h.write_csv("weather/rome", &csv_rows(0, 3), None).await;
    h.write_csv("energy/load", &csv_rows(0, 3), None).await;
    let none = h.get(None, "/api/v1/datasets").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.error().contains("Bearer"), "{}", none.error());
    // The real token with its last secret digit changed.
    let last = if h.admin.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &h.admin[..h.admin.len() - 1]);
    assert_ne!(forged, h.admin);
    for bad in [forged.as_str(), "tarn_0123456789abcdef_00", "garbage"] {
        let answer = h.get(Some(bad), "/api/v1/datasets").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let out_of_scope = h
        .get(Some(&h.reader), "/api/v1/info?uri=tarn://energy/load")
        .await;
    assert_eq!(out_of_scope.status, StatusCode::FORBIDDEN);
    assert!(out_of_scope.error().contains("read:energy/load"));
    let listed = h.get(Some(&h.reader), "/api/v1/datasets").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let write = h
        .post(
            &h.reader,
            "/api/v1/write?uri=tarn://weather/rome",
            "text/csv",
            csv_rows(10, 1).into_bytes(),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let sql = h
        .post(
            &h.reader,
            "/api/v1/query",
            "application/json",
            br#"{"sql": "select 1"}"#.to_vec(),
        )
        .await;
    assert_eq!(sql.status, StatusCode::FORBIDDEN);
    // A revoked token is unknown at once.
    h.lake.service_store().revoke_token("reader").await.unwrap();
    let revoked = h.get(Some(&h.reader), "/api/v1/datasets").await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    h.server.stop().await;
}

async fn anonymous_reads_only_when_allowed(place: LakePlace) {
    let config = ServerConfig {
        allow_anonymous_read: true,
        ..ServerConfig::default()
    };
    let h = harness(&place, config).await;
    h.write_csv("weather/lima", &csv_rows(0, 2), None).await;
    let read = h
        .get(None, "/api/v1/data?uri=tarn://weather/lima&format=csv")
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = h
        .call(
            Request::post("/api/v1/compact?uri=tarn://weather/lima")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    h.server.stop().await;
}

async fn oversized_bodies_are_refused_and_change_nothing(place: LakePlace) {
    let config = ServerConfig {
        max_upload_bytes: 1000,
        max_json_bytes: 100,
        ..ServerConfig::default()
    };
    let h = harness(&place, config).await;
    let before = h
        .lake
        .service_store()
        .requests(&[], 100)
        .await
        .unwrap()
        .len();
    let big = csv_rows(0, 200);
    assert!(big.len() > 1000);
    // With a Content-Length, and streamed without one.
    let declared = h
        .post(
            &h.admin,
            "/api/v1/write?uri=tarn://t/big",
            "text/csv",
            big.clone().into_bytes(),
        )
        .await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunks = futures::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let streamed = h
        .call(
            Request::post("/api/v1/write?uri=tarn://t/big")
                .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
                .header(header::CONTENT_TYPE, "text/csv")
                .body(Body::from_stream(chunks))
                .unwrap(),
        )
        .await;
    assert_eq!(
        streamed.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        streamed.error()
    );
    let json = format!(r#"{{"sql": "select '{}'"}}"#, "x".repeat(200));
    let sql = h
        .post(
            &h.admin,
            "/api/v1/query",
            "application/json",
            json.into_bytes(),
        )
        .await;
    assert_eq!(sql.status, StatusCode::PAYLOAD_TOO_LARGE);
    let after = h
        .lake
        .service_store()
        .requests(&[], 100)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after);
    assert!(h.lake.datasets(None).await.unwrap().is_empty());
    // No staged upload was left behind.
    let staged: Vec<String> = place
        .files()
        .await
        .into_iter()
        .filter(|f| f.starts_with(tarn_server::STAGING_DIR))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    h.server.stop().await;
}

async fn no_parameter_reaches_outside_the_lake(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    h.write_csv("weather/kiev", &csv_rows(0, 2), None).await;
    let counts = h
        .lake
        .service_store()
        .requests(&[], 100)
        .await
        .unwrap()
        .len();
    let gets = [
        "/api/v1/info?uri=tarn://../etc/passwd",
        "/api/v1/info?uri=tarn:///etc/passwd",
        "/api/v1/data?uri=tarn://weather/../../secret",
        "/api/v1/data?uri=tarn://weather%2F..%2F..%2Fx",
        "/api/v1/log?uri=tarn://./x",
        "/api/v1/datasets?prefix=../",
        "/api/v1/events?prefix=/etc",
        "/api/v1/diff?a=tarn://weather/kiev&b=tarn://../x",
    ];
    for path in gets {
        let answer = h.get(Some(&h.admin), path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.error()
        );
    }
    let posts = [
        "/api/v1/write?uri=tarn://../x",
        "/api/v1/delete-range?uri=tarn://../x&start=1&end=2",
        "/api/v1/tag?uri=tarn://weather/kiev&name=../../x",
        "/api/v1/branch?uri=tarn://weather/kiev&name=../x",
        "/api/v1/merge?source=tarn://../a@b&target=tarn://weather/kiev",
    ];
    for path in posts {
        let answer = h.post(&h.admin, path, "text/csv", b"ts\n".to_vec()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.error()
        );
    }
    let request = h.get(Some(&h.admin), "/api/v1/requests/..%2F..%2Fx").await;
    assert_eq!(request.status, StatusCode::NOT_FOUND);
    // A tag name with '/' is refused when the request is applied: it fails, changes nothing.
    assert_eq!(
        counts,
        h.lake
            .service_store()
            .requests(&[], 100)
            .await
            .unwrap()
            .len()
    );
    assert_eq!(h.lake.datasets(None).await.unwrap().len(), 1);
    h.server.stop().await;
}

async fn sql_streams_and_bounds_its_memory(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    h.write_csv("weather/paris", &csv_rows(0, 30), None).await;
    let body = br#"{"sql": "select count(*) as n, max(temp) as hot from \"weather/paris\" where ts >= $1", "params": ["2024-01-01T10:00:00Z"], "format": "jsonl"}"#;
    let answer = h
        .post(&h.admin, "/api/v1/query", "application/json", body.to_vec())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(answer.body).unwrap().trim(),
        r#"{"n":20,"hot":29.5}"#
    );
    let arrow = h
        .post(
            &h.admin,
            "/api/v1/query",
            "application/json",
            br#"{"sql": "select * from \"weather/paris\""}"#.to_vec(),
        )
        .await;
    assert_eq!(
        arrow.headers[header::CONTENT_TYPE],
        "application/vnd.apache.arrow.stream"
    );
    let stream =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None).unwrap();
    assert_eq!(stream.map(|b| b.unwrap().num_rows()).sum::<usize>(), 30);
    let bad = h
        .post(
            &h.admin,
            "/api/v1/query",
            "application/json",
            br#"{"sql": "selec 1"}"#.to_vec(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("syntax"), "{}", bad.error());
    h.server.stop().await;

    // A sort of 2M generated rows does not fit in 1 MiB: a 422 that says so, not an OOM.
    let config = ServerConfig {
        query_memory_bytes: 1 << 20,
        ..ServerConfig::default()
    };
    let place2 = LakePlace::new(place.backend).unwrap();
    let h = harness(&place2, config).await;
    let sort = br#"{"sql": "select value from generate_series(1, 2000000) order by value desc"}"#;
    let refused = h
        .post(&h.admin, "/api/v1/query", "application/json", sort.to_vec())
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.error()
    );
    assert!(
        refused.error().contains("--query-memory"),
        "{}",
        refused.error()
    );
    h.server.stop().await;
}

/// Reads `n` SSE events (name, id, data) from an event stream body.
async fn read_events(body: Body, n: usize) -> Vec<(String, Option<String>, serde_json::Value)> {
    let mut stream = body.into_data_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (String::from("message"), None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            if let Some(data) = data {
                out.push((name, id, data));
            }
        }
    }
    out
}

async fn events_resume_after_the_last_id_with_no_gap(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    // Commits made outside the server (as the CLI would) are events too.
    let mut commits = Vec::new();
    for i in 0..6u32 {
        let name = if i % 2 == 0 { "weather/a" } else { "other/b" };
        let batch = tarn::input::read_text(
            csv_rows(i, 1).into_bytes(),
            tarn::input::InputFormat::Csv,
            None,
        )
        .unwrap();
        let out = h
            .lake
            .write(
                &format!("tarn://{name}"),
                batch,
                tarn::WriteRequest::new().ordered_on("ts"),
            )
            .await
            .unwrap();
        commits.push((name, out.commit_id.unwrap()));
    }
    let weather: Vec<i64> = commits
        .iter()
        .filter(|(n, _)| n.starts_with("weather"))
        .map(|(_, c)| *c)
        .collect();
    // Resume after the first weather commit: the other two, in order, nothing else.
    let request = Request::get("/api/v1/events?prefix=weather")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
        .header("last-event-id", weather[0].to_string())
        .body(Body::empty())
        .unwrap();
    let response = app(h.server.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body();
    let reader = tokio::spawn(read_events(body, 3));
    // A commit through the queue arrives live after the catch-up.
    let done = h.write_csv("weather/a", &csv_rows(50, 1), None).await;
    let events = reader.await.unwrap();
    let ids: Vec<i64> = events
        .iter()
        .filter(|(name, _, _)| name == "commit")
        .map(|(_, id, _)| id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![weather[1], weather[2], done["commit_id"].as_i64().unwrap()],
        "{events:?}"
    );
    assert!(events.iter().all(|(_, _, d)| d["dataset"] == "weather/a"));
    h.server.stop().await;
}

async fn a_request_applied_before_a_crash_is_not_applied_again(place: LakePlace) {
    let lake = place.init().await;
    let queue = Arc::new(CatalogQueue::new(&lake));
    // A request is queued, then applied by a server that died before recording it.
    let id = "r-applied-before-crash".to_string();
    let staged = format!("{}/{id}.upload", tarn_server::STAGING_DIR);
    let csv = csv_rows(0, 4);
    lake.object_store()
        .put(
            &object_store::path::Path::from(staged.as_str()),
            bytes::Bytes::from(csv.clone()).into(),
        )
        .await
        .unwrap();
    let mutation = tarn_server::Mutation::Write {
        uri: "tarn://weather/x".into(),
        format: "csv".into(),
        ordered_on: Some("ts".into()),
        duplicates_on: None,
        row_group_size: None,
        max_off_target: None,
        message: None,
        evolve: false,
    };
    use tarn_server::RequestQueue;
    queue
        .enqueue(tarn::NewRequest {
            id: id.clone(),
            idempotency_key: None,
            lane: "weather/x".into(),
            kind: "write".into(),
            params_json: serde_json::to_string(&mutation).unwrap(),
            staged_path: Some(staged.clone()),
        })
        .await
        .unwrap();
    let batch =
        tarn::input::read_text(csv.into_bytes(), tarn::input::InputFormat::Csv, None).unwrap();
    let first = lake
        .for_request(&id)
        .write(
            "tarn://weather/x",
            batch.clone(),
            tarn::WriteRequest::new().ordered_on("ts"),
        )
        .await
        .unwrap();
    // The catalog refuses a second commit of the same request.
    let twice = lake
        .for_request(&id)
        .write("tarn://weather/x", batch, tarn::WriteRequest::new())
        .await
        .unwrap_err();
    assert!(twice.is_request_applied(), "{twice}");
    // The restarted server finds the commit and finishes the request with it.
    let server = Server::start(lake.clone(), ServerConfig::default(), queue.clone())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let record = loop {
        let r = queue.request(&id).await.unwrap().unwrap();
        if r.status.is_finished() || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(record.status, RequestStatus::Succeeded, "{record:?}");
    assert_eq!(record.version, first.version);
    assert_eq!(lake.log("tarn://weather/x", None).await.unwrap().len(), 1);
    server.stop().await;
}

/// The value of the one sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_the_queue_and_event_clients(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    let before = h.get(None, "/metrics").await;
    assert_eq!(before.status, StatusCode::OK, "/metrics needs no token");
    assert!(
        before.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    h.write_csv("tarn://weather/metrics", &csv_rows(0, 5), None)
        .await;
    for _ in 0..3 {
        let a = h
            .get(Some(&h.reader), "/api/v1/info?uri=tarn://weather/metrics")
            .await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let a = h
        .get(Some(&h.reader), "/api/v1/info?uri=tarn://weather/nothing")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // An open event stream is a client for as long as it lives.
    let events = app(h.server.state.clone())
        .oneshot(
            Request::get("/api/v1/events?prefix=weather")
                .header(header::AUTHORIZATION, format!("Bearer {}", h.reader))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let text = String::from_utf8(h.get(None, "/metrics").await.body).unwrap();
    let info_ok = [
        r#"route="/api/v1/info""#,
        r#"status="200""#,
        r#"method="GET""#,
    ];
    assert_eq!(
        sample(&text, "tarn_http_requests_total", &info_ok),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tarn_http_requests_total",
            &[r#"route="/api/v1/info""#, r#"status="404""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarn_http_request_duration_seconds_count", &info_ok),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tarn_queue_apply_seconds_count",
            &[r#"kind="write""#, r#"status="succeeded""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarn_queue_requests", &[r#"state="queued""#]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarn_queue_oldest_age_seconds", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarn_events_clients", &[]),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("weather/"),
        "no dataset name in the metrics: {text}"
    );
    // The stream's task ends (and stops counting) soon after its client went.
    drop(events);
    let mut clients = None;
    for _ in 0..200 {
        let text = String::from_utf8(h.get(None, "/metrics").await.body).unwrap();
        clients = sample(&text, "tarn_events_clients", &[]);
        if clients == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(clients, Some(0.0), "the client is gone");
    // Once the workers stopped, a queued request stays: the depth and the age show it.
    let state = h.server.state.clone();
    h.server.stop().await;
    h.lake
        .service_store()
        .enqueue(tarn::NewRequest {
            id: "waiting".into(),
            idempotency_key: None,
            lane: "weather/elsewhere".into(),
            kind: "compact".into(),
            params_json: "{}".into(),
            staged_path: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let response = app(state)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        sample(&text, "tarn_queue_requests", &[r#"state="queued""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tarn_queue_requests", &[r#"state="running""#]),
        Some(0.0),
        "{text}"
    );
    let age = sample(&text, "tarn_queue_oldest_age_seconds", &[]).unwrap();
    assert!(age > 0.0 && age < 60.0, "{text}");
}

async fn uploads_whose_request_was_never_stored_are_collected(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    // No worker runs: the queued request below stays queued.
    let workers = h.server.state.workers().clone();
    h.server.stop().await;
    let store = h.lake.object_store();
    let put = |name: &str| {
        let store = store.clone();
        let path = object_store::path::Path::from(format!("{}/{name}", tarn_server::STAGING_DIR));
        async move { store.put(&path, b"ts,v\n".to_vec().into()).await.unwrap() }
    };
    // A lost upload (no request) and the upload of a request still queued.
    put("r-lost.upload").await;
    put("r-kept.upload").await;
    h.lake
        .service_store()
        .enqueue(tarn::NewRequest {
            id: "r-kept".into(),
            idempotency_key: None,
            lane: "weather/none".into(),
            kind: "write".into(),
            params_json: "{}".into(),
            staged_path: Some(format!("{}/r-kept.upload", tarn_server::STAGING_DIR)),
        })
        .await
        .unwrap();
    let staged = || async {
        let mut names: Vec<String> = store
            .list(Some(&object_store::path::Path::from(
                tarn_server::STAGING_DIR,
            )))
            .map(|m| m.unwrap().location.filename().unwrap().to_string())
            .collect()
            .await;
        names.sort();
        names
    };
    assert_eq!(staged().await, ["r-kept.upload", "r-lost.upload"]);
    // Within the grace period nothing goes.
    assert_eq!(
        workers
            .collect_orphaned_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(staged().await, ["r-kept.upload", "r-lost.upload"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        workers
            .collect_orphaned_uploads(Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        staged().await,
        ["r-kept.upload"],
        "a queued request keeps its upload"
    );
}

async fn the_registry_reads_as_the_cli_prints_it_with_paged_records(place: LakePlace) {
    use tarn_registry::{DimensionInput, MappingInput, ProjectDefinition, Registry};
    let h = harness(&place, ServerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let stations: String = std::iter::once("id,name,canton\n".to_string())
        .chain((0..25).map(|i| format!("s{i:02},Station {i},{}\n", ["VD", "BE", "GE"][i % 3])))
        .collect();
    let stations = file("stations.csv", stations);
    let cantons = file(
        "cantons.csv",
        "id,name\nVD,Vaud\nBE,Bern\nGE,Geneva\n".into(),
    );
    let map: String = std::iter::once("from,to\n".to_string())
        .chain((0..25).map(|i| format!("s{i:02},{}\n", ["VD", "BE", "GE"][i % 3])))
        .collect();
    let map = file("map.csv", map);
    let registry = Registry::new(&h.lake);
    fn dim<'a>(name: &'a str, kind: &'a str, records: &'a std::path::Path) -> DimensionInput<'a> {
        DimensionInput {
            name,
            dimension_type: Some(kind),
            records,
            id_column: "id",
            name_column: "name",
            message: Some("first"),
        }
    }
    registry
        .create_dimension(&dim("station", "geography", &stations))
        .await
        .unwrap();
    registry
        .create_dimension(&dim("canton", "geography", &cantons))
        .await
        .unwrap();
    registry
        .create_mapping(&MappingInput {
            name: "station_to_canton",
            from: Some("station"),
            to: Some("canton"),
            records: &map,
            from_column: "from",
            to_column: "to",
            fraction_column: "fraction",
            disaggregation: false,
            message: None,
        })
        .await
        .unwrap();
    registry
        .create_project(
            &ProjectDefinition {
                name: "alps".into(),
                description: "Alpine stations".into(),
                dimensions: vec!["station".into(), "canton".into()],
                mappings: vec!["station_to_canton".into()],
            },
            None,
        )
        .await
        .unwrap();
    let rows = "ts,station,temp\n2024-01-01T00:00:00Z,s01,1.5\n2024-01-01T01:00:00Z,s02,2.5\n";
    for uri in ["tarn://weather/alps", "tarn://energy/alps"] {
        h.write_csv(uri, rows, None).await;
        registry
            .register_dataset("alps", uri, &[("station".into(), "station".into())], None)
            .await
            .unwrap();
    }
    // A second version of the station dimension (s00 renamed), for its history.
    let renamed = std::fs::read_to_string(&stations)
        .unwrap()
        .replace("s00,Station 0,", "s00,Station Zero,");
    let renamed = file("stations-2.csv", renamed);
    let update = registry
        .update_dimension(&DimensionInput {
            dimension_type: None,
            message: Some("second"),
            ..dim("station", "geography", &renamed)
        })
        .await
        .unwrap();
    assert!(update.version.is_some());

    let list = h
        .get(Some(&h.reader), "/api/v1/registry?kind=dimension")
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.error());
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["canton", "station"]);
    let all = h.get(Some(&h.reader), "/api/v1/registry").await.json();
    let expected: Vec<serde_json::Value> = registry
        .components(None)
        .await
        .unwrap()
        .iter()
        .map(tarn_registry::json::component)
        .collect();
    assert_eq!(all, serde_json::Value::Array(expected));
    assert_eq!(
        h.get(Some(&h.reader), "/api/v1/registry?kind=planet")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Records come in pages, filtered on any column.
    let page = h
        .get(Some(&h.reader), "/api/v1/dimension?name=station&limit=10")
        .await
        .json();
    assert_eq!(page["records"].as_array().unwrap().len(), 10);
    assert_eq!(
        page["records"][0],
        serde_json::json!({"id": "s00", "name": "Station Zero", "canton": "VD"})
    );
    assert_eq!(
        page["page"],
        serde_json::json!({"total": 25, "matching": 25, "offset": 0, "next_offset": 10})
    );
    let last = h
        .get(
            Some(&h.reader),
            "/api/v1/dimension?name=station&limit=10&offset=20",
        )
        .await
        .json();
    assert_eq!(last["records"].as_array().unwrap().len(), 5);
    assert_eq!(last["page"]["next_offset"], serde_json::Value::Null);
    let ge = h
        .get(Some(&h.reader), "/api/v1/dimension?name=station&filter=ge")
        .await
        .json();
    assert_eq!(ge["page"]["matching"], 8, "{ge}");
    assert!(
        ge["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["canton"] == "GE"),
        "{ge}"
    );
    let full = registry.dimension("station", None).await.unwrap();
    let mut whole = h
        .get(
            Some(&h.reader),
            "/api/v1/dimension?name=station&limit=10000",
        )
        .await
        .json();
    whole.as_object_mut().unwrap().remove("page");
    assert_eq!(
        whole,
        tarn_registry::json::dimension(&full, &full.records),
        "as `dimension show --json`"
    );
    let rows = h
        .get(
            Some(&h.reader),
            "/api/v1/mapping?name=station_to_canton&filter=s1&limit=3",
        )
        .await
        .json();
    assert_eq!(rows["page"]["matching"], 10, "s10..s19: {rows}");
    assert_eq!(
        rows["rows"][0],
        serde_json::json!({"from_id": "s10", "to_id": "BE", "fraction": 1.0})
    );
    assert_eq!(
        h.get(Some(&h.reader), "/api/v1/dimension?name=nothing")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let history = h
        .get(
            Some(&h.reader),
            "/api/v1/history?component=dimension:station",
        )
        .await
        .json();
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1], "newest first: {history}");
    assert_eq!(history[0]["message"], "second");
    let dependents = h
        .get(
            Some(&h.reader),
            "/api/v1/dependents?component=dimension:canton",
        )
        .await
        .json();
    let users: Vec<String> = dependents
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d["kind"].as_str().unwrap(),
                d["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        users.contains(&"mapping:station_to_canton".to_string())
            && users.contains(&"project:alps".to_string()),
        "{users:?}"
    );

    // Scopes: the reader (read:weather) sees the weather registration only.
    let seen = |token: &str| {
        let token = token.to_string();
        let h = &h;
        async move {
            let p = h
                .get(Some(&token), "/api/v1/project?name=alps")
                .await
                .json();
            let mut d: Vec<String> = p["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["dataset"].as_str().unwrap().to_string())
                .collect();
            d.sort();
            d
        }
    };
    assert_eq!(seen(&h.reader).await, ["weather/alps"]);
    assert_eq!(seen(&h.admin).await, ["energy/alps", "weather/alps"]);
    let station_users = h
        .get(
            Some(&h.reader),
            "/api/v1/dependents?component=dimension:station",
        )
        .await
        .json();
    assert!(
        !station_users.to_string().contains("energy/alps"),
        "no registration out of scope: {station_users}"
    );
    let out_of_scope = h
        .get(
            Some(&h.reader),
            "/api/v1/dependents?component=dataset:energy/alps",
        )
        .await;
    assert_eq!(
        out_of_scope.status,
        StatusCode::FORBIDDEN,
        "{}",
        out_of_scope.error()
    );
    let of_weather = h
        .get(
            Some(&h.reader),
            "/api/v1/dependents?component=dataset:weather/alps",
        )
        .await;
    assert_eq!(of_weather.status, StatusCode::OK, "{}", of_weather.error());
    assert_eq!(
        h.get(None, "/api/v1/registry").await.status,
        StatusCode::UNAUTHORIZED
    );
    h.server.stop().await;
}

/// Found by schemathesis: refusals of the query string are the contract's JSON errors, a
/// huge `wait` is clamped (it panicked), a multi-byte ref is refused (it panicked).
async fn odd_parameters_get_json_refusals(place: LakePlace) {
    let h = harness(&place, ServerConfig::default()).await;
    let missing = h.get(Some(&h.admin), "/api/v1/info").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.error().contains("uri"), "{}", missing.error());
    assert!(missing.json()["error"].is_string());
    let bad = h
        .get(Some(&h.admin), "/api/v1/log?uri=tarn://a&limit=-1")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("limit"),
        "{}",
        bad.error()
    );
    let huge = h
        .get(Some(&h.admin), "/api/v1/requests/r-none?wait=5.1e261")
        .await;
    assert_eq!(huge.status, StatusCode::NOT_FOUND, "{}", huge.error());
    let multi_byte = h
        .get(
            Some(&h.admin),
            "/api/v1/info?uri=L:%C3%AA%C2%80%0B%F3%83%81%92%C2%9Bq",
        )
        .await;
    assert_eq!(
        multi_byte.status,
        StatusCode::BAD_REQUEST,
        "{}",
        multi_byte.error()
    );
    h.server.stop().await;
}

tarn_testkit::backend_tests!(
    odd_parameters_get_json_refusals,
    the_registry_reads_as_the_cli_prints_it_with_paged_records,
    uploads_whose_request_was_never_stored_are_collected,
    metrics_count_requests_the_queue_and_event_clients,
    a_write_goes_through_the_queue_and_reads_back_in_every_format,
    versioned_data_is_immutable_and_revalidates,
    tokens_and_scopes_guard_every_endpoint,
    anonymous_reads_only_when_allowed,
    oversized_bodies_are_refused_and_change_nothing,
    no_parameter_reaches_outside_the_lake,
    sql_streams_and_bounds_its_memory,
    events_resume_after_the_last_id_with_no_gap,
    a_request_applied_before_a_crash_is_not_applied_again,
);
