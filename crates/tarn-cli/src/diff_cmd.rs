//! `tarn diff <URI_A> <URI_B>`: the rows B added and removed relative to A, in total and per
//! changed range (SPEC §11). `--json` prints the library's report as one document.

use crate::Ctx;
use anyhow::Result;
use tarn::DiffReport;

pub async fn run(ctx: &Ctx, uri_a: &str, uri_b: &str, as_of: Option<&str>) -> Result<()> {
    let lake = ctx.lake().await?;
    // Both sides are resolved against one lake state, so `diff x@dev x` compares what the
    // two heads were at the same instant even while writers commit.
    let state = crate::state_as_of(&lake, as_of).await?;
    let (_, snapshots) = lake.snapshots(&[uri_a, uri_b], state).await?;
    let [a, b]: [tarn::Snapshot; 2] = snapshots
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected two snapshots"))?;
    let bar = ctx.progress("comparing");
    let report = lake.diff(&a, &b).await?;
    bar.finish_and_clear();
    if ctx.json {
        return ctx.print_json(&report);
    }
    {
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), "{}", render(&report)) {
            crate::stdout_failed(&e)
        }
    }
    if !ctx.quiet {
        outln!(
            "{} unchanged row groups skipped; {} rows in {} row groups compared",
            report.unchanged_row_groups,
            report.compared_rows,
            report.row_groups_read
        );
    }
    Ok(())
}

/// `+N -M rows`, column changes, and a table of the ranges that differ.
fn render(report: &DiffReport) -> String {
    let mut out = format!(
        "{} -> {}: +{} -{} rows\n",
        report.a, report.b, report.added, report.removed
    );
    if !report.columns_added.is_empty() {
        out.push_str(&format!(
            "columns added: {}\n",
            report.columns_added.join(", ")
        ));
    }
    if !report.columns_removed.is_empty() {
        out.push_str(&format!(
            "columns removed: {}\n",
            report.columns_removed.join(", ")
        ));
    }
    if report.ranges.is_empty() {
        return out;
    }
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["start", "end", "added", "removed"]);
    for r in &report.ranges {
        table.add_row([
            text(&r.start),
            text(&r.end),
            format!("+{}", r.added),
            format!("-{}", r.removed),
        ]);
    }
    out.push_str(&format!("{table}\n"));
    out
}
