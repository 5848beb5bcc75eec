//! `tarn`: the command-line interface (SPEC §11). Exit 0 on success, 2 on a usage error,
//! 1 on any other error with `error: ...` on stderr; `--json` makes every command print
//! machine-readable JSON on stdout. A closed stdout pipe ends the process quietly with 0.

/// `println!` that ends the process quietly (exit 0) when stdout is a closed pipe
/// (`tarn ls | head`), as ripgrep does, instead of panicking; any other write error exits 1.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(&e)
        }
    }};
}

/// Ends the process after a failed write to stdout.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// True when `e` comes from writing to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

mod collection_cmd;
mod demo;
mod demo_registry;
mod diff_cmd;
mod intersect_cmd;
mod output;
mod query_cmd;
mod registry_cmd;
mod serve_cmd;
mod shell;
mod vc_cmd;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use output::OutputFormat;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tarn::input::InputFormat;
use tarn::{
    DuplicatesOn, Lake, ReadRequest, RowGroupTarget, VacuumRequest, WriteOutcome, WriteRequest,
};

#[derive(Debug, Parser)]
#[command(
    name = "tarn",
    version,
    about = "A versioned data lake for ordered (time-series) tables"
)]
struct Cli {
    /// The lake directory (else TARN_LAKE, else the nearest tarn.toml).
    #[arg(long, global = true, env = "TARN_LAKE")]
    lake: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More log output (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress or informational output.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// `durable` (default): a write returns once on disk; `relaxed`: skip fsyncs.
    #[arg(
        long,
        global = true,
        env = "TARN_DURABILITY",
        default_value = "durable"
    )]
    durability: Durability,
    /// The log's format on stderr: `text` (default) or `json` (one object per line, with
    /// the fields of its spans, for log collectors).
    #[arg(long, global = true, env = "TARN_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Durability {
    Durable,
    Relaxed,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a lake (tarn.toml, catalog.db, data/) in PATH (default: the current
    /// directory), or join the lake a shared catalog already holds.
    Init(InitArgs),
    /// Merge rows into a dataset (creating it on the first write); one version per call.
    Write(WriteArgs),
    /// Read rows of any version, in order, optionally in a range and with some columns.
    Read {
        uri: String,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// Output format (default: from --output's extension, else JSON with --json, else
        /// a table).
        #[arg(long, value_enum)]
        format: Option<OutputFormat>,
        /// Write the rows to this file instead of stdout (streamed, never held in memory).
        #[arg(long)]
        output: Option<String>,
        /// Read the lake as it was at a commit id, date or RFC 3339 time (an explicit ref
        /// in the URI wins).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// List datasets (under PREFIX).
    Ls {
        prefix: Option<String>,
        /// Only the datasets of collection PREFIX whose key has FIELD=VALUE (repeatable).
        #[arg(long = "where", value_name = "FIELD=VALUE", requires = "prefix",
              value_parser = collection_cmd::parse_field_value)]
        filter: Vec<(String, String)>,
    },
    /// Show a dataset's schema, version, size, range and metadata.
    Info {
        uri: String,
        /// Show the dataset as the lake was at a commit id, date or RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// List the versions of a branch, newest first.
    Log {
        uri: String,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Name a version (`tarn tag tarn://x:v3 gold`); `-d` deletes a tag.
    Tag(vc_cmd::TagArgs),
    /// List the tags of a dataset.
    Tags { dataset: String },
    /// Create a branch at any version without copying data; `-d` deletes one.
    Branch(vc_cmd::BranchArgs),
    /// List the branches of a dataset.
    Branches { dataset: String },
    /// Fast-forward branch TARGET to the head of the branch SOURCE names (forked from it).
    Merge { source: String, target: String },
    /// Run SQL over any snapshot: every dataset is a table ("a/b/c" or a.b.c), any version
    /// is "a/b/c@dev:v3" or tarn('tarn://a/b/c:2024-01-05').
    Query(query_cmd::QueryArgs),
    /// Remove the rows with START <= ordered_on < END (one version).
    DeleteRange {
        uri: String,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Rows added and removed from URI_A to URI_B, in total and per ordered range.
    Diff {
        uri_a: String,
        uri_b: String,
        /// Resolve URIs without a ref as the lake was at a commit id, date or RFC 3339 time
        /// (both are pinned to one lake state either way).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Rewrite row groups to the target without changing rows (one version).
    Compact {
        uri: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Delete orphan files and files no retained version references.
    Vacuum {
        /// Keep the last N versions of each branch (heads and tags are always kept).
        #[arg(long)]
        keep_last: Option<u64>,
        /// Keep versions younger than this (e.g. 30d, 12h, 90min).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Orphans younger than this are kept, as a writer may still commit them.
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        grace: Duration,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Iterate datasets in step over one ordered range: per step, each dataset's chunk.
    Intersect(intersect_cmd::IntersectArgs),
    /// Collections: sets of datasets named by typed keys (create, ls, show, key).
    Collection {
        #[command(subcommand)]
        command: collection_cmd::CollectionCommand,
    },
    /// Registry dimensions: typed lists of records (create, update, ls, show).
    Dimension {
        #[command(subcommand)]
        command: registry_cmd::DimensionCommand,
    },
    /// Registry mappings between dimensions (create, update, ls, show).
    Mapping {
        #[command(subcommand)]
        command: registry_cmd::MappingCommand,
    },
    /// Registry projects: dimensions, mappings, registered datasets, queries through mappings.
    Project {
        #[command(subcommand)]
        command: registry_cmd::ProjectCommand,
    },
    /// The registry's components, their history and what depends on them.
    Registry {
        #[command(subcommand)]
        command: registry_cmd::RegistryCommand,
    },
    /// Serve the lake over HTTP: the JSON API, data endpoints, SQL, a durable write queue
    /// and notifications (SPEC §9).
    Serve(serve_cmd::ServeArgs),
    /// API tokens for `tarn serve`.
    Token {
        #[command(subcommand)]
        command: serve_cmd::TokenCommand,
    },
    /// Build a demo lake from real weather data and print what to try next.
    Demo {
        /// Where to create it.
        #[arg(default_value = "tarn-demo")]
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
struct InitArgs {
    path: Option<PathBuf>,
    /// The catalog: a SQLite path (default catalog.db, relative to PATH) or a PostgreSQL
    /// URL (postgres://USER@HOST:PORT/DB; the password from PGPASSWORD).
    #[arg(long)]
    catalog: Option<String>,
    /// The storage: a directory (default data, relative to PATH) or s3://BUCKET/PREFIX
    /// (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long)]
    storage: Option<String>,
    /// The S3 endpoint of an S3-compatible store (written to tarn.toml's [s3]).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// The S3 region (written to [s3]).
    #[arg(long)]
    s3_region: Option<String>,
    /// Allow plain-HTTP S3 endpoints (written to [s3]).
    #[arg(long)]
    s3_allow_http: bool,
}

impl InitArgs {
    /// No backend was named: `tarn init DIR` on an existing lake just opens it.
    fn is_default_config(&self) -> bool {
        self.catalog.is_none()
            && self.storage.is_none()
            && self.s3_endpoint.is_none()
            && self.s3_region.is_none()
            && !self.s3_allow_http
    }
}

#[derive(Debug, Args)]
struct WriteArgs {
    uri: String,
    /// Input files ('-' for stdin); the format comes from the extension unless --format.
    /// Without inputs, --meta/--unset-meta change only the metadata (a new version).
    #[arg(required_unless_present_any = ["meta", "unset_meta"])]
    inputs: Vec<String>,
    #[arg(long)]
    ordered_on: Option<String>,
    /// Columns that identify duplicates (ordered_on is always included), or '*'.
    #[arg(long)]
    duplicates_on: Option<String>,
    /// Rows per row group (N) or one period per row group (1D, 1h, 15min, 1W, 1MS).
    #[arg(long, value_parser = parse_target)]
    row_group_size: Option<RowGroupTarget>,
    /// Use oups's rule for the trailing row groups: merge them when more than N are under a
    /// row-count target (default: a size-tiered tail, docs/design/0007).
    #[arg(long)]
    max_off_target: Option<u32>,
    /// Set metadata K=V.
    #[arg(long = "meta", value_parser = parse_kv)]
    meta: Vec<(String, String)>,
    /// Remove metadata key K.
    #[arg(long = "unset-meta")]
    unset_meta: Vec<String>,
    #[arg(long)]
    message: Option<String>,
    /// Allow new nullable columns.
    #[arg(long)]
    evolve: bool,
    /// parquet, csv, arrow or jsonl (by default, from each input's extension).
    #[arg(long)]
    format: Option<InputFormat>,
}

fn parse_target(s: &str) -> Result<RowGroupTarget, String> {
    RowGroupTarget::parse(s).map_err(|e| e.to_string())
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `30d`, `12h`, `90min`, `45s`, `2w`, `1h 30min` (humantime's grammar).
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}): expected e.g. 30d, 12h, 90min"))
}

struct Ctx {
    json: bool,
    quiet: bool,
    lake_arg: Option<PathBuf>,
    durability: tarn::Durability,
}

impl Ctx {
    async fn lake(&self) -> Result<Lake> {
        let cwd = std::env::current_dir().context("no current directory")?;
        let dir = tarn::locate(self.lake_arg.as_deref(), &cwd)?;
        Ok(Lake::open_with(&dir, self.durability).await?)
    }

    fn progress(&self, message: &str) -> ProgressBar {
        if self.quiet || self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    fn print_json(&self, value: &impl serde::Serialize) -> Result<()> {
        outln!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors exit 2.
            e.exit();
        }
    };
    // A server logs what it serves (info); a command only what went wrong (warn).
    let serving = matches!(cli.command, Command::Serve(_));
    let filter = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) if serving => "info",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TARN_LOG").unwrap_or_else(|_| filter.into());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let ctx = Ctx {
        json: cli.json,
        quiet: cli.quiet,
        lake_arg: cli.lake.clone(),
        durability: match cli.durability {
            Durability::Durable => tarn::Durability::Durable,
            Durability::Relaxed => tarn::Durability::Relaxed,
        },
    };
    if let Err(e) = runtime.block_on(run(&ctx, cli.command)) {
        if broken_pipe(&e) {
            // The reader went away (`tarn read ... | head`): nothing is wrong.
            std::process::exit(0);
        }
        eprintln!("error: {}", format_error(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line each, without repeating a cause the message quotes.
fn format_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

async fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Init(args) => init(ctx, args).await,
        Command::Write(args) => write(ctx, args).await,
        Command::Read {
            uri,
            start,
            end,
            columns,
            format,
            output,
            as_of,
        } => {
            let lake = ctx.lake().await?;
            let snapshot = snapshot_as_of(&lake, &uri, as_of.as_deref()).await?;
            let request = ReadRequest::parse(&snapshot, start.as_deref(), end.as_deref(), columns)?;
            let schema = lake.read_schema(&snapshot, &request)?;
            let format = output::choose_format(format, output.as_deref(), ctx.json)?;
            let stream = lake.read_stream(&snapshot, &request).await?;
            output::write_stream(stream, &schema, format, output.as_deref()).await?;
            Ok(())
        }
        Command::Ls { prefix, filter } if !filter.is_empty() => {
            collection_cmd::ls_where(ctx, prefix, filter).await
        }
        Command::Ls { prefix, .. } => {
            let lake = ctx.lake().await?;
            let datasets = lake.datasets(prefix.as_deref()).await?;
            if ctx.json {
                let list: Vec<_> = datasets
                    .iter()
                    .map(|d| {
                        json!({"name": d.name.as_str(), "version": d.version, "rows": d.rows,
                               "row_groups": d.row_groups, "bytes": d.bytes, "ordered_on": d.ordered_on,
                               "timestamp": d.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)})
                    })
                    .collect();
                return ctx.print_json(&list);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header([
                "dataset",
                "version",
                "rows",
                "row groups",
                "bytes",
                "updated",
            ]);
            for d in &datasets {
                table.add_row([
                    d.name.to_string(),
                    format!("v{}", d.version),
                    d.rows.to_string(),
                    d.row_groups.to_string(),
                    d.bytes.to_string(),
                    d.timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ]);
            }
            outln!("{table}");
            Ok(())
        }
        Command::Info { uri, as_of } => {
            let lake = ctx.lake().await?;
            let info = snapshot_as_of(&lake, &uri, as_of.as_deref())
                .await?
                .info(&lake)
                .await?;
            if ctx.json {
                return ctx.print_json(&info);
            }
            outln!(
                "{} @{} v{} (commit {}, {})",
                info.name,
                info.branch,
                info.version,
                info.commit_id,
                info.timestamp
            );
            outln!("ordered on:   {}", info.ordered_on);
            outln!("duplicates:   {}", info.duplicates_on);
            outln!(
                "row groups:   {} in {} files (target {})",
                info.row_groups,
                info.files,
                info.row_group_target
            );
            // Trailing coalescing only applies to a row-count target (SPEC §3.5).
            if matches!(
                RowGroupTarget::parse(&info.row_group_target),
                Ok(RowGroupTarget::Rows(_))
            ) {
                match info.max_off_target {
                    None => outln!(
                        "tail:         size-tiered (fan-in {})",
                        tarn::coalesce::FAN_IN
                    ),
                    Some(n) => {
                        outln!("tail:         merged past {n} off target (--max-off-target)")
                    }
                }
            }
            outln!("rows:         {}  ({} bytes)", info.rows, info.bytes);
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map_or("-".to_string(), |v| {
                    v.as_str().map_or(v.to_string(), str::to_string)
                })
            };
            outln!("range:        {} .. {}", show(&info.min), show(&info.max));
            outln!("schema:");
            for (name, ty) in &info.schema {
                outln!("  {name}: {ty}");
            }
            if !info.metadata.is_empty() {
                outln!("metadata:");
                for (k, v) in &info.metadata {
                    outln!("  {k} = {v}");
                }
            }
            Ok(())
        }
        Command::Log { uri, limit } => {
            let lake = ctx.lake().await?;
            let log = lake.log(&uri, limit).await?;
            if ctx.json {
                return ctx.print_json(&log);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header([
                "version",
                "commit",
                "time (UTC)",
                "operation",
                "rows",
                "message",
            ]);
            for v in &log {
                table.add_row([
                    format!("v{}", v.version),
                    v.commit_id.to_string(),
                    v.timestamp.clone(),
                    v.operation.clone(),
                    v.rows.to_string(),
                    v.message.clone().unwrap_or_default(),
                ]);
            }
            outln!("{table}");
            Ok(())
        }
        Command::Query(args) => query_cmd::run(ctx, args).await,
        Command::Tag(args) => vc_cmd::tag(ctx, args).await,
        Command::Tags { dataset } => vc_cmd::tags(ctx, &dataset).await,
        Command::Branch(args) => vc_cmd::branch(ctx, args).await,
        Command::Branches { dataset } => vc_cmd::branches(ctx, &dataset).await,
        Command::Merge { source, target } => vc_cmd::merge(ctx, &source, &target).await,
        Command::DeleteRange {
            uri,
            start,
            end,
            message,
        } => {
            let lake = ctx.lake().await?;
            let outcome = lake.delete_range(&uri, &start, &end, message).await?;
            report_outcome(ctx, &outcome)
        }
        Command::Diff {
            uri_a,
            uri_b,
            as_of,
        } => diff_cmd::run(ctx, &uri_a, &uri_b, as_of.as_deref()).await,
        Command::Compact { uri, message } => {
            let lake = ctx.lake().await?;
            let bar = ctx.progress("compacting");
            let outcome = lake.compact(&uri, message).await?;
            bar.finish_and_clear();
            report_outcome(ctx, &outcome)
        }
        Command::Vacuum {
            keep_last,
            older_than,
            grace,
            dry_run,
        } => {
            let lake = ctx.lake().await?;
            let bar = ctx.progress("vacuuming");
            let report = lake
                .vacuum(&VacuumRequest {
                    keep_last,
                    older_than,
                    grace,
                    dry_run,
                })
                .await?;
            bar.finish_and_clear();
            if ctx.json {
                return ctx.print_json(&report);
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            for v in &report.expired_versions {
                outln!("expired version {v}");
            }
            for f in report.unreferenced_files.iter().chain(&report.orphan_files) {
                outln!("{verb} {f}");
            }
            if !ctx.quiet {
                eprintln!(
                    "{verb} {} unreferenced and {} orphan files ({} bytes); {} versions expired",
                    report.unreferenced_files.len(),
                    report.orphan_files.len(),
                    report.bytes_freed,
                    report.expired_versions.len()
                );
            }
            Ok(())
        }
        Command::Intersect(args) => intersect_cmd::run(ctx, args).await,
        Command::Collection { command } => collection_cmd::run(ctx, command).await,
        Command::Dimension { command } => registry_cmd::dimension(ctx, command).await,
        Command::Mapping { command } => registry_cmd::mapping(ctx, command).await,
        Command::Project { command } => registry_cmd::project(ctx, command).await,
        Command::Registry { command } => registry_cmd::registry(ctx, command).await,
        Command::Serve(args) => serve_cmd::serve(ctx, args).await,
        Command::Token { command } => serve_cmd::token(ctx, command).await,
        Command::Demo { path } => demo::run(ctx, &path).await,
    }
}

/// The snapshot a URI names, as the lake was at `--as-of` when given.
/// The lake state `--as-of` names, if given.
async fn state_as_of(lake: &Lake, as_of: Option<&str>) -> Result<Option<tarn::LakeState>> {
    Ok(match as_of {
        Some(text) => Some(lake.state_at(text).await?),
        None => None,
    })
}

async fn snapshot_as_of(lake: &Lake, uri: &str, as_of: Option<&str>) -> Result<tarn::Snapshot> {
    let state = state_as_of(lake, as_of).await?;
    Ok(lake.snapshot_at(uri, state).await?)
}

async fn init(ctx: &Ctx, args: InitArgs) -> Result<()> {
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let default_config = args.is_default_config();
    let mut config = tarn::LakeConfig::default();
    if let Some(c) = args.catalog {
        config.catalog = c;
    }
    if let Some(s) = args.storage {
        config.storage = s;
    }
    config.s3.endpoint = args.s3_endpoint;
    config.s3.region = args.s3_region;
    config.s3.allow_http = args.s3_allow_http.then_some(true);
    let exists = dir.join(tarn::CONFIG_FILE).is_file();
    let (lake, done) = if exists && default_config {
        (Lake::open(&dir).await?, tarn::Initialized::Existing)
    } else {
        Lake::init_with(&dir, config).await?
    };
    let verb = match done {
        tarn::Initialized::Created => "created",
        tarn::Initialized::Joined => "joined",
        tarn::Initialized::Existing => "existing",
    };
    if ctx.json {
        return ctx.print_json(&json!({
            "lake": dir.display().to_string(),
            "created": done == tarn::Initialized::Created,
            "status": verb,
            "backends": lake.describe(),
        }));
    }
    if !ctx.quiet {
        match done {
            tarn::Initialized::Created => outln!(
                "created tarn lake in {} ({})",
                dir.display(),
                lake.describe()
            ),
            tarn::Initialized::Joined => outln!(
                "joined the tarn lake of {} in {}: its catalog already held it",
                lake.describe(),
                dir.display()
            ),
            tarn::Initialized::Existing => outln!("{} is already a tarn lake", dir.display()),
        }
    }
    Ok(())
}

async fn write(ctx: &Ctx, args: WriteArgs) -> Result<()> {
    let lake = ctx.lake().await?;
    let mut request = WriteRequest {
        ordered_on: args.ordered_on,
        duplicates_on: args.duplicates_on.as_deref().map(DuplicatesOn::parse),
        row_group_target: args.row_group_size,
        max_off_target: args.max_off_target,
        message: args.message,
        evolve: args.evolve,
        ..WriteRequest::default()
    };
    request.set_metadata.extend(args.meta);
    request.unset_metadata = args.unset_meta;
    if args.inputs.is_empty() {
        let outcome = lake.set_metadata(&args.uri, request).await?;
        return report_outcome(ctx, &outcome);
    }
    let bar = ctx.progress("writing");
    let outcome = lake
        .write_inputs(&args.uri, &args.inputs, args.format, request)
        .await;
    bar.finish_and_clear();
    report_outcome(ctx, &outcome?)
}

fn report_outcome(ctx: &Ctx, outcome: &WriteOutcome) -> Result<()> {
    if ctx.json {
        return ctx.print_json(outcome);
    }
    if !ctx.quiet {
        outln!("{}", outcome_line(outcome));
    }
    Ok(())
}

/// One line on what a write did.
fn outcome_line(outcome: &WriteOutcome) -> String {
    let uri = if outcome.branch == tarn::BranchName::MAIN {
        format!("tarn://{}", outcome.dataset)
    } else {
        format!("tarn://{}@{}", outcome.dataset, outcome.branch)
    };
    match outcome.version {
        Some(v) => format!(
            "{} {uri}: v{v} ({} rows in, {} rows now; {} row groups written, {} replaced, {} existing rows rewritten)",
            outcome.operation,
            outcome.rows_in,
            outcome.rows,
            outcome.row_groups_written,
            outcome.row_groups_removed,
            outcome.rows_rewritten
        ),
        None => format!(
            "{} {uri}: nothing changed, no version created",
            outcome.operation
        ),
    }
}
