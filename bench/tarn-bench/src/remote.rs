//! W9: W1–W4 on the shared backends (issue 10, item 6). The same inputs as W1–W4, in one
//! run, in-process, durable, on SQLite + local files and on PostgreSQL + S3 (the servers of
//! scripts/with-services), with what each operation asks of the servers: catalog round
//! trips (statements sent to PostgreSQL; SQLite runs in-process) and object-store requests
//! by kind (`Lake::io_counters`).

use crate::scale::{BackendArg, new_lake};
use crate::{Inputs, Recorder, URI, median, secs, verify_w3, verify_w4, with_rev};
use anyhow::{Result, ensure};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tarn::{DuplicatesOn, IoCounters, Lake, OrderedValue, ReadRequest, WriteRequest};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Directory written by bench/gen_data.py.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub work: PathBuf,
    #[arg(long)]
    pub results: PathBuf,
    /// W2 appends per backend.
    #[arg(long, default_value_t = 200)]
    pub appends: usize,
    /// W4 repetitions (after one untimed warm-up).
    #[arg(long, default_value_t = 15)]
    pub repeat: usize,
    /// W1 and W3 runs, each on a fresh lake.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Backends to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "local,remote"
    )]
    pub backends: Vec<BackendArg>,
}

/// What one operation asked of the servers.
fn cost(before: IoCounters, after: IoCounters) -> Value {
    let s = after.storage.since(&before.storage);
    json!({
        "catalog_round_trips": after.catalog_round_trips.zip(before.catalog_round_trips).map(|(a, b)| a - b),
        "store_requests": s.total(),
        "store_put": s.put, "store_get": s.get, "store_head": s.head,
        "store_list": s.list, "store_delete": s.delete,
    })
}

/// The median of each counter over several operations.
fn median_cost(costs: &[Value]) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(first)) = costs.first() {
        for key in first.keys() {
            let v: Vec<f64> = costs.iter().filter_map(|c| c[key].as_f64()).collect();
            out.insert(
                key.clone(),
                if v.is_empty() {
                    Value::Null
                } else {
                    json!(median(&v))
                },
            );
        }
    }
    Value::Object(out)
}

struct Run<'a> {
    inp: &'a Inputs,
    args: &'a RemoteArgs,
    backend: BackendArg,
    work: PathBuf,
}

impl Run<'_> {
    fn system(&self) -> &'static str {
        self.backend.system()
    }

    fn record(&self, rec: &Recorder, workload: &str, times: &[f64], cost: Value) -> Result<()> {
        let mut extra = Map::new();
        extra.insert("per_operation".into(), cost);
        extra.insert("rows".into(), json!(self.inp.rows));
        extra.insert(
            "durability".into(),
            json!(match self.backend {
                BackendArg::Local =>
                    "data file + dir fsynced, SQLite WAL commit with synchronous=FULL",
                BackendArg::Postgres =>
                    "data file + dir fsynced, PostgreSQL commit with synchronous_commit=on (fsync=on)",
                BackendArg::Remote =>
                    "S3 PUT acknowledged, PostgreSQL commit with synchronous_commit=on (fsync=on)",
            }),
        );
        rec.ok(self.system(), workload, times, extra)
    }

    async fn w1(&self, dir: &Path) -> Result<(Lake, f64, Value)> {
        let lake = new_lake(dir, self.backend).await?;
        let before = lake.io_counters();
        let t = Instant::now();
        lake.write(
            URI,
            self.inp.w1.clone(),
            WriteRequest::new().ordered_on("ts"),
        )
        .await?;
        let s = secs(t);
        let c = cost(before, lake.io_counters());
        ensure!(
            lake.snapshot(URI).await?.rows() as usize == self.inp.rows,
            "W1 row count"
        );
        Ok((lake, s, c))
    }

    async fn run(&self, rec: &mut Recorder) -> Result<()> {
        // W1, each run on a fresh lake; the last one is the state for W4 and W2.
        let (mut times, mut costs, mut last) = (Vec::new(), Vec::new(), None);
        for i in 0..self.args.runs.max(1) {
            let (lake, s, c) = self.w1(&self.work.join(format!("w1-{i}"))).await?;
            times.push(s);
            costs.push(c);
            last = Some(lake);
        }
        self.record(rec, "W9 W1 bulk write", &times, median_cost(&costs))?;
        let Some(lake) = last else { return Ok(()) };

        let snap = lake.snapshot(URI).await?;
        let start = OrderedValue::Timestamp(self.inp.start_ns);
        let end = OrderedValue::Timestamp(self.inp.end_ns);
        let req = ReadRequest {
            start: Some(start),
            end: Some(end),
            columns: None,
        };
        verify_w4(self.inp, &lake.read(&snap, &req).await?)?;
        let (mut times, mut costs) = (Vec::new(), Vec::new());
        for _ in 0..self.args.repeat.max(1) {
            let before = lake.io_counters();
            let t = Instant::now();
            let snap = lake.snapshot(URI).await?;
            let batches = lake.read(&snap, &req).await?;
            times.push(secs(t));
            costs.push(cost(before, lake.io_counters()));
            verify_w4(self.inp, &batches)?;
        }
        self.record(rec, "W9 W4 one-week read", &times, median_cost(&costs))?;

        let (mut times, mut costs) = (Vec::new(), Vec::new());
        for day in self.inp.w2.iter().take(self.args.appends) {
            let before = lake.io_counters();
            let t = Instant::now();
            lake.write(URI, day.clone(), WriteRequest::new()).await?;
            times.push(secs(t));
            costs.push(cost(before, lake.io_counters()));
        }
        let expected = self.inp.rows
            + self
                .inp
                .w2
                .iter()
                .take(self.args.appends)
                .map(|b| b.num_rows())
                .sum::<usize>();
        ensure!(
            lake.snapshot(URI).await?.rows() as usize == expected,
            "W2 row count"
        );
        self.record(rec, "W9 W2 append", &times, median_cost(&costs))?;

        let (mut times, mut costs) = (Vec::new(), Vec::new());
        for i in 0..self.args.runs.max(1) {
            let (lake, _, _) = self.w1(&self.work.join(format!("w3-{i}"))).await?;
            let before = lake.io_counters();
            let t = Instant::now();
            lake.write(
                URI,
                self.inp.w3.clone(),
                WriteRequest::new().duplicates_on(DuplicatesOn::parse("ts")),
            )
            .await?;
            times.push(secs(t));
            costs.push(cost(before, lake.io_counters()));
            verify_w3(self.inp, &lake).await?;
        }
        self.record(rec, "W9 W3 upsert", &times, median_cost(&costs))?;
        Ok(())
    }
}

pub async fn run(args: &RemoteArgs) -> Result<usize> {
    let inp = Inputs::load(&args.data, args.appends)?;
    let mut rec = Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    eprintln!("W9 ({}), {} rows", with_rev(String::new()), inp.rows);
    for &backend in &args.backends {
        let run = Run {
            inp: &inp,
            args,
            backend,
            work: args.work.join(format!("w9-{backend:?}").to_lowercase()),
        };
        let result = run.run(&mut rec).await;
        rec.attempt(backend.system(), "W9", result);
    }
    Ok(rec.errors)
}
