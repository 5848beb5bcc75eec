//! `tarn-bench memory` (M1, M2): peak resident memory of `tarn write` and of `tarn read` to
//! every output format, on a dataset of N rows and of 4·N rows (bench/README.md). Each
//! `tarn` process runs under GNU time (`/usr/bin/time -f %M`, the peak from `wait4`).
//!
//! The input has the W1 schema (a timestamp, four random floats, an integer) and is written
//! in row groups of 100,000 rows; the dataset gets the default target (100,000 rows), so an
//! 8,000,000-row dataset is one file of 80 row groups, as in the issue that set the caps.

use anyhow::{Context, Result, bail, ensure};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Scratch directory (inputs, the lake, outputs; removed at the end unless --keep).
    #[arg(long)]
    pub work: PathBuf,
    /// jsonl file to append results to.
    #[arg(long)]
    pub results: PathBuf,
    /// The `tarn` binary.
    #[arg(long)]
    pub tarn: PathBuf,
    /// Dataset sizes, in rows.
    #[arg(long, value_delimiter = ',', default_value = "8000000,32000000")]
    pub rows: Vec<usize>,
    #[arg(long)]
    pub keep: bool,
}

const SYSTEM: &str = "tarn (CLI)";
const FORMATS: [&str; 6] = ["csv", "json", "jsonl", "parquet", "arrow", "table"];

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
        Field::new("c", DataType::Float64, true),
        Field::new("d", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]))
}

fn batch(offset: usize, rows: usize, seed: &mut u64) -> Result<RecordBatch> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let mut floats = || -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5),
        ))
    };
    let (a, b, c, d) = (floats(), floats(), floats(), floats());
    let ts = TimestampNanosecondArray::from_iter_values(
        (offset..offset + rows).map(|i| 1_262_304_000_000_000_000 + i as i64 * 60_000_000_000),
    )
    .with_timezone("UTC");
    let n = Int64Array::from_iter_values((0..rows).map(|_| (next() % 1_000_000) as i64));
    Ok(RecordBatch::try_new(
        schema(),
        vec![Arc::new(ts), a, b, c, d, Arc::new(n)],
    )?)
}

fn write_input(path: &Path, rows: usize) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(100_000))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), Some(props))?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut at = 0;
    while at < rows {
        let n = (rows - at).min(100_000);
        w.write(&batch(at, n, &mut seed)?)?;
        at += n;
    }
    w.close()?;
    Ok(())
}

/// Runs `tarn ARGS` under GNU time: seconds and peak RSS in MiB.
fn measure(
    tarn: &Path,
    lake: &Path,
    args: &[&str],
    stdout_to: Option<&Path>,
) -> Result<(f64, f64)> {
    let report = lake.with_extension("time");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M").arg("-o").arg(&report).arg(tarn);
    cmd.arg("--lake").arg(lake).args(args).stdin(Stdio::null());
    match stdout_to {
        Some(p) => cmd.stdout(std::fs::File::create(p)?),
        None => cmd.stdout(Stdio::null()),
    };
    let t = Instant::now();
    let status = cmd
        .status()
        .context("run tarn under /usr/bin/time (Debian package `time`)")?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(status.success(), "tarn {args:?} failed: {status}");
    let text = std::fs::read_to_string(&report)?;
    let kb: f64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .with_context(|| format!("no peak RSS in {text:?}"))?;
    Ok((secs, kb / 1024.0))
}

pub fn run(args: &MemoryArgs) -> Result<()> {
    if !Path::new("/usr/bin/time").is_file() {
        bail!("tarn-bench memory needs GNU time at /usr/bin/time (apt-get install time)");
    }
    let rec = crate::Recorder {
        path: args.results.clone(),
        errors: 0,
    };
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let mut table = vec![
        "| operation | rows | seconds | peak RSS (MB) | bytes in/out (MB) |".to_string(),
        "|---|---:|---:|---:|---:|".to_string(),
    ];
    for &rows in &args.rows {
        let dir = args.work.join(format!("r{rows}"));
        std::fs::create_dir_all(&dir)?;
        let input = dir.join("input.parquet");
        write_input(&input, rows)?;
        let input_mb = std::fs::metadata(&input)?.len() as f64 / 1e6;
        let lake = dir.join("lake");
        let status = Command::new(&args.tarn)
            .arg("init")
            .arg(&lake)
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "tarn init failed");
        let input_s = input.to_str().context("utf-8 path")?;
        let mut record = |op: &str, secs: f64, mb: f64, io_mb: f64| -> Result<()> {
            let mut extra = Map::new();
            extra.insert("rows".into(), json!(rows));
            extra.insert("peak_rss_mb".into(), json!((mb * 10.0).round() / 10.0));
            extra.insert("io_mb".into(), json!((io_mb * 10.0).round() / 10.0));
            rec.ok(SYSTEM, &format!("{op} ({rows} rows)"), &[secs], extra)?;
            table.push(format!(
                "| {op} | {rows} | {secs:.2} | {mb:.0} | {io_mb:.0} |"
            ));
            Ok(())
        };
        let (s, mb) = measure(
            &args.tarn,
            &lake,
            &["write", "tarn://big/s", input_s, "--ordered-on", "ts"],
            None,
        )?;
        record("M1 write (Parquet input)", s, mb, input_mb)?;
        std::fs::remove_file(&input)?;
        for format in FORMATS {
            let out = dir.join(format!("out.{format}"));
            let out_s = out.to_str().context("utf-8 path")?;
            let mut a = vec!["read", "tarn://big/s", "--format", format];
            let (s, mb) = if format == "table" {
                measure(&args.tarn, &lake, &a, Some(&out))?
            } else {
                a.extend(["--output", out_s]);
                measure(&args.tarn, &lake, &a, None)?
            };
            let out_mb = std::fs::metadata(&out)?.len() as f64 / 1e6;
            record(&format!("M2 read --format {format}"), s, mb, out_mb)?;
            std::fs::remove_file(&out)?;
        }
        let out = dir.join("query.parquet");
        let (s, mb) = measure(
            &args.tarn,
            &lake,
            &[
                "query",
                "SELECT * FROM \"big/s\"",
                "--format",
                "parquet",
                "--output",
                out.to_str().context("utf-8 path")?,
            ],
            None,
        )?;
        let out_mb = std::fs::metadata(&out)?.len() as f64 / 1e6;
        record("M2 query SELECT * (Parquet)", s, mb, out_mb)?;
        if !args.keep {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!("{}", table.join("\n"));
    Ok(())
}
