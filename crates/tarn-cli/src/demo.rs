//! `tarn demo`: a lake built from real measurements shipped inside the binary (one month of
//! 1-minute BSRN radiation data from Payerne and three typical-year hourly weather files),
//! with the incremental writes a daily pipeline makes: an initial load, an append, a
//! correction that replaces duplicates, a metadata change and a range deletion; then a
//! registry of US counties and states with a demand dataset registered to a project
//! (demo_registry.rs).

use crate::{Ctx, outcome_line};
use tarn::WriteOutcome;
use tarn::input::{InputFormat, read_text};

/// Per-step lines for people; with --json only the final document is printed.
/// Progress on stdout. A closed stdout does not stop the demo half-built.
fn progress(ctx: &Ctx, line: &str) {
    use std::io::Write as _;
    if !ctx.json && !ctx.quiet {
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}

fn report(ctx: &Ctx, outcome: &WriteOutcome) -> Result<()> {
    progress(ctx, &outcome_line(outcome));
    Ok(())
}
use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use serde_json::json;
use std::path::Path;
use tarn::{DuplicatesOn, Lake, RowGroupTarget, WriteRequest};

const PAYERNE: &[u8] = include_bytes!("../data/bsrn_payerne_ch_2016-06_1min.csv");
const HOURLY: &[(&str, &[u8], &str)] = &[
    (
        "weather/greensboro_nc/1h",
        include_bytes!("../data/tmy3_greensboro_nc.csv"),
        "NREL TMY3 723170",
    ),
    (
        "weather/amsterdam_nl/1h",
        include_bytes!("../data/iwec_amsterdam_nl.csv"),
        "ASHRAE IWEC 062400",
    ),
    (
        "weather/piedmont_it/1h",
        include_bytes!("../data/pvgis_tmy_piedmont_it.csv"),
        "EU PVGIS TMY 45.0N 8.0E",
    ),
];
const DAY: usize = 1440;

fn csv(bytes: &[u8]) -> Result<RecordBatch> {
    Ok(read_text(bytes.to_vec(), InputFormat::Csv, None)?)
}

pub async fn run(ctx: &Ctx, path: &Path) -> Result<()> {
    if path.exists()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; remove it or pass another path (`tarn demo DIR`)",
            path.display()
        );
    }
    let started = std::time::Instant::now();
    let lake = Lake::init(path).await?;
    let mut steps = Vec::new();
    let say = |ctx: &Ctx, what: &str| progress(ctx, &format!("• {what}"));

    let payerne = csv(PAYERNE).context("embedded Payerne data")?;
    let uri = "tarn://weather/payerne/1min";
    say(
        ctx,
        "load the first 20 days of 1-minute BSRN data from Payerne (one row group per day)",
    );
    let first = lake
        .write(
            uri,
            payerne.slice(0, 20 * DAY),
            WriteRequest::new()
                .ordered_on("ts")
                .duplicates_on(DuplicatesOn::parse("ts"))
                .row_group_target(RowGroupTarget::parse("1D")?)
                .meta("source", "BSRN station PAY (Payerne, CH), via pvlib")
                .meta("units", "W/m2, degC, %")
                .message("initial load: 2016-06-01 to 2016-06-20"),
        )
        .await?;
    report(ctx, &first)?;
    steps.push(first);

    say(
        ctx,
        "append the last 10 days (a pure append rewrites nothing)",
    );
    let append = lake
        .write(
            uri,
            payerne.slice(20 * DAY, 10 * DAY),
            WriteRequest::new().message("daily load: 2016-06-21 to 2016-06-30"),
        )
        .await?;
    report(ctx, &append)?;
    steps.push(append);

    say(
        ctx,
        "correct one hour of 2016-06-10 (rows with the same ts replace the old ones; only that day's row group is rewritten)",
    );
    let hour = payerne.slice(9 * DAY + 12 * 60, 60);
    let corrected = add_to_column(&hour, "temp_air_c", 0.5)?;
    let fix = lake
        .write(
            uri,
            corrected,
            WriteRequest::new()
                .message("sensor recalibration: +0.5 degC on 2016-06-10 12:00-13:00"),
        )
        .await?;
    report(ctx, &fix)?;
    steps.push(fix);

    say(
        ctx,
        "record the quality check in the metadata (a version with the same rows)",
    );
    let meta = lake
        .set_metadata(
            uri,
            WriteRequest::new()
                .meta("qc", "passed")
                .message("quality check"),
        )
        .await?;
    report(ctx, &meta)?;
    steps.push(meta);

    say(
        ctx,
        "tag the checked version as qc-passed (an immutable name)",
    );
    let tag = lake.tag(uri, "qc-passed", false).await?;

    say(ctx, "delete a faulty half hour on 2016-06-15");
    let del = lake
        .delete_range(
            uri,
            "2016-06-15T06:00:00Z",
            "2016-06-15T06:30:00Z",
            Some("remove maintenance window".into()),
        )
        .await?;
    report(ctx, &del)?;
    steps.push(del);

    say(
        ctx,
        "branch `review` from the head (no data copied) and drop a suspect day there only",
    );
    let branch = lake.create_branch(uri, "review").await?;
    let review_uri = format!("{uri}@review");
    let review = lake
        .delete_range(
            &review_uri,
            "2016-06-20",
            "2016-06-21",
            Some("proposed: drop 2016-06-20 (pyranometer icing?)".into()),
        )
        .await?;
    report(ctx, &review)?;
    steps.push(review);

    let mut greensboro = None;
    for (name, bytes, source) in HOURLY {
        say(
            ctx,
            &format!("load a typical meteorological year into {name} (one row group per month)"),
        );
        let batch = csv(bytes).with_context(|| format!("embedded data for {name}"))?;
        if name.contains("greensboro") {
            greensboro = Some(batch.clone());
        }
        let outcome = lake
            .write(
                name,
                batch,
                WriteRequest::new()
                    .ordered_on("ts")
                    .duplicates_on(DuplicatesOn::parse("ts"))
                    .row_group_target(RowGroupTarget::parse("1MS")?)
                    .meta("source", *source)
                    .message("typical meteorological year (year set to 1990)"),
            )
            .await?;
        report(ctx, &outcome)?;
        steps.push(outcome);
    }

    say(
        ctx,
        "register US counties and states as dimensions, map counties to states, and register a demand dataset of the Carolinas to project us_demand",
    );
    let greensboro = greensboro.context("embedded Greensboro data")?;
    let registry = crate::demo_registry::build(&lake, path, &greensboro).await?;

    let lake_arg = path.display().to_string();
    if ctx.json {
        return ctx.print_json(&json!({
            "lake": lake_arg,
            "seconds": started.elapsed().as_secs_f64(),
            "writes": steps,
            "tags": [tag],
            "branches": [branch],
            "registry": registry,
        }));
    }
    if !ctx.quiet {
        outln!(
            "\nbuilt {} in {:.1}s. Try:",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        for cmd in [
            "ls".to_string(),
            "log weather/payerne/1min".to_string(),
            "info weather/payerne/1min".to_string(),
            "read tarn://weather/payerne/1min --start 2016-06-10T12:00:00Z --end 2016-06-10T12:05:00Z --columns ts,temp_air_c".to_string(),
            "read tarn://weather/payerne/1min:v2 --start 2016-06-10T12:00:00Z --end 2016-06-10T12:05:00Z --columns ts,temp_air_c".to_string(),
            "read tarn://weather/amsterdam_nl/1h:latest --start 1990-07-01 --end 1990-07-02 --format csv".to_string(),
            "tags weather/payerne/1min".to_string(),
            "branches weather/payerne/1min".to_string(),
            "log weather/payerne/1min@review".to_string(),
            "diff tarn://weather/payerne/1min tarn://weather/payerne/1min@review".to_string(),
            "diff tarn://weather/payerne/1min:qc-passed tarn://weather/payerne/1min".to_string(),
            "intersect weather/amsterdam_nl/1h weather/piedmont_it/1h --start 1990-07-01 --end 1990-07-02 --step 6h".to_string(),
            "registry ls".to_string(),
            format!("project show {}", crate::demo_registry::PROJECT),
            format!(
                "project query {} --group-by county=state,sector --agg 'sum(demand_mwh)' --time-resample 1D",
                crate::demo_registry::PROJECT
            ),
            "registry dependents dimension:county".to_string(),
            "vacuum --dry-run".to_string(),
        ] {
            outln!("  tarn --lake {lake_arg} {cmd}");
        }
    }
    Ok(())
}

fn add_to_column(batch: &RecordBatch, column: &str, delta: f64) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, Float64Array};
    let index = batch.schema().index_of(column)?;
    let values = batch
        .column(index)
        .as_any()
        .downcast_ref::<Float64Array>()
        .context("temperature column is not float64")?;
    let shifted: Float64Array = values.iter().map(|v| v.map(|x| x + delta)).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = std::sync::Arc::new(shifted);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
