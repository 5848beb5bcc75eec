//! `tarn intersect` (SPEC §11): iterates datasets in step over one ordered range and prints,
//! per step, its range and each dataset's chunk (rows, first and last `ordered_on`). With
//! `--json` each step is one JSON line, printed as soon as it is computed.

use crate::Ctx;
use anyhow::Result;
use clap::{Args, CommandFactory};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use std::io::Write;
use tarn::{IntersectRequest, IntersectStep, OrderedKind, OrderedValue, ReadRequest, Step};

#[derive(Debug, Args)]
pub struct IntersectArgs {
    /// The datasets, each a URI with its own branch and ref.
    #[arg(required = true)]
    uris: Vec<String>,
    /// Inclusive start, in the type of the first dataset's ordered_on.
    #[arg(long)]
    start: Option<String>,
    /// Exclusive end, in the type of the first dataset's ordered_on.
    #[arg(long)]
    end: Option<String>,
    /// Rows from before --start to prepend to the first step: one count for every dataset,
    /// or one per URI (N,N,...).
    #[arg(long, value_delimiter = ',')]
    n_prev: Vec<usize>,
    /// Rows per step (N) or one period per step (1h, 15min, 1D, 1W, 1MS); by default steps
    /// follow the datasets' row-group boundaries.
    #[arg(long, value_parser = parse_step)]
    step: Option<Step>,
    /// Columns to decode (all when absent).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Pin URIs without a ref to the lake as it was at a commit id, date or RFC 3339 time
    /// (they are always pinned to one lake state: the current one by default).
    #[arg(long)]
    as_of: Option<String>,
}

fn parse_step(s: &str) -> Result<Step, String> {
    Step::parse(s).map_err(|e| e.to_string())
}

/// Exits 2 with clap's `error: ...` usage message: the arguments contradict each other.
fn usage_error(message: String) -> ! {
    let mut cli = crate::Cli::command();
    cli.build();
    let kind = clap::error::ErrorKind::ValueValidation;
    match cli.find_subcommand_mut("intersect") {
        Some(command) => command.error(kind, message).exit(),
        None => cli.error(kind, message).exit(),
    }
}

pub async fn run(ctx: &Ctx, args: IntersectArgs) -> Result<()> {
    for (i, uri) in args.uris.iter().enumerate() {
        if args.uris[..i].contains(uri) {
            usage_error(format!("{uri} is given twice; list each dataset once"));
        }
    }
    if args.n_prev.len() > 1 && args.n_prev.len() != args.uris.len() {
        usage_error(format!(
            "--n-prev has {} values for {} URIs: give one value for all, or one per URI",
            args.n_prev.len(),
            args.uris.len()
        ));
    }
    let lake = ctx.lake().await?;
    // One lake state for every URI: consistent even while writers commit.
    let state = crate::state_as_of(&lake, args.as_of.as_deref()).await?;
    let (_, snapshots) = lake.snapshots(&args.uris, state).await?;
    let bounds = ReadRequest::parse(
        &snapshots[0],
        args.start.as_deref(),
        args.end.as_deref(),
        None,
    )?;
    let kind = snapshots[0].kind();
    let request = IntersectRequest {
        start: bounds.start,
        end: bounds.end,
        n_prev: args.n_prev,
        step: args.step.unwrap_or_default(),
        columns: args.columns,
    };
    let mut steps = lake.intersect(snapshots, request).await?;
    let stdout = std::io::stdout();
    if ctx.json {
        let mut out = stdout.lock();
        while let Some(step) = steps.next().await {
            let line = serde_json::to_string(&step_json(&step?, &args.uris, kind))?;
            if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                // The reader went away (`| head`): stop quietly, as other tools do.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e.into());
            }
        }
        return Ok(());
    }
    // A table aligns its columns, so it needs every step first; it holds one short row of
    // text per step, never the data.
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(
        ["step", "start", "end"]
            .into_iter()
            .map(String::from)
            .chain(args.uris.iter().map(|u| format!("{u} rows"))),
    );
    let show = |v: &Option<OrderedValue>| v.as_ref().map_or("-".into(), |v| v.display(kind));
    let mut count = 0u64;
    while let Some(step) = steps.next().await {
        let step = step?;
        count += 1;
        table.add_row(
            [step.index.to_string(), show(&step.start), show(&step.end)]
                .into_iter()
                .chain(step.chunks.iter().map(|c| c.num_rows().to_string())),
        );
    }
    if count == 0 {
        if !ctx.quiet {
            eprintln!("no step: none of the datasets has rows in the range");
        }
        return Ok(());
    }
    outln!("{table}");
    Ok(())
}

/// `{step, start, end, chunks: {<uri>: {rows, first, last}}}`.
fn step_json(step: &IntersectStep, uris: &[String], kind: OrderedKind) -> Value {
    let bound = |v: &Option<OrderedValue>| v.as_ref().map_or(Value::Null, |v| v.to_json(kind));
    let mut chunks = Map::new();
    for ((uri, chunk), first_last) in uris.iter().zip(&step.chunks).zip(&step.first_last) {
        let (first, last) = first_last
            .as_ref()
            .map_or((Value::Null, Value::Null), |(f, l)| {
                (f.to_json(kind), l.to_json(kind))
            });
        chunks.insert(
            uri.clone(),
            json!({"rows": chunk.num_rows(), "first": first, "last": last}),
        );
    }
    json!({
        "step": step.index,
        "start": bound(&step.start),
        "end": bound(&step.end),
        "chunks": chunks,
    })
}
