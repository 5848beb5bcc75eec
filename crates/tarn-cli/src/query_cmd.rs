//! `tarn query "<SQL>"` (SPEC §6, §11): SQL over any snapshot, with results streamed to the
//! terminal or a file.

use crate::Ctx;
use crate::output::{self, OutputFormat};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::IsTerminal;
use tarn_query::QuerySession;
use tarn_query::datafusion::common::ScalarValue;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL statement. Datasets are tables: "a/b/c" (quoted), a.b.c, or any snapshot as
    /// "a/b/c@dev:v3" or tarn('tarn://a/b/c:2024-01-05'). Without it, statements come from
    /// stdin: an interactive shell on a terminal, else a script (statements end with ';').
    pub sql: Option<String>,
    /// Output format (default: a table on the terminal, else from --output's extension).
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Write the result to this file instead of stdout (streamed, never held in memory).
    #[arg(long)]
    pub output: Option<String>,
    /// Bind parameters $1, $2, ... as a JSON array, e.g. '["2024-01-01", 3, 0.5]'.
    #[arg(long)]
    pub params: Option<String>,
    /// Query the lake as it was at a commit id, date or RFC 3339 time.
    #[arg(long)]
    pub as_of: Option<String>,
}

/// `$1, $2, ...` from a JSON array.
fn parse_params(text: &str) -> Result<Vec<ScalarValue>> {
    let value: serde_json::Value = serde_json::from_str(text).with_context(|| {
        format!("--params {text:?} is not JSON; write e.g. '[\"2024-01-01\", 3]'")
    })?;
    let serde_json::Value::Array(items) = value else {
        bail!(
            "--params must be a JSON array of values for $1, $2, ..., e.g. '[\"2024-01-01\", 3]'"
        );
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(match v {
                serde_json::Value::Null => ScalarValue::Null,
                serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(b)),
                serde_json::Value::String(s) => ScalarValue::Utf8(Some(s)),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => ScalarValue::Int64(Some(i)),
                    (None, Some(f)) => ScalarValue::Float64(Some(f)),
                    _ => bail!("--params: ${} = {n} is out of range", i + 1),
                },
                other => bail!(
                    "--params: ${} = {other} is not a number, string, bool or null",
                    i + 1
                ),
            })
        })
        .collect()
}

/// The output format: `--format`, else from `--output`'s extension, else JSON with
/// `--json`, else a table.
pub fn output_format(
    format: Option<OutputFormat>,
    output: Option<&str>,
    json: bool,
) -> Result<OutputFormat> {
    let format = chosen_format(format, output, json)?;
    if output.is_none()
        && matches!(format, OutputFormat::Parquet | OutputFormat::Arrow)
        && std::io::stdout().is_terminal()
    {
        bail!(
            "refusing to write binary {format:?} to a terminal; pass --output FILE or redirect stdout"
        );
    }
    Ok(format)
}

fn chosen_format(
    format: Option<OutputFormat>,
    output: Option<&str>,
    json: bool,
) -> Result<OutputFormat> {
    if let Some(f) = format {
        return Ok(f);
    }
    if let Some(path) = output {
        let ext = std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        return Ok(match ext.as_str() {
            "parquet" => OutputFormat::Parquet,
            "csv" => OutputFormat::Csv,
            "json" => OutputFormat::Json,
            "jsonl" | "ndjson" => OutputFormat::Jsonl,
            "arrow" | "ipc" | "feather" => OutputFormat::Arrow,
            _ => bail!(
                "cannot tell the format of {path:?} from its extension; pass --format (csv, json, jsonl, parquet or arrow)"
            ),
        });
    }
    Ok(if json {
        OutputFormat::Json
    } else {
        OutputFormat::Table
    })
}

pub async fn run(ctx: &Ctx, args: QueryArgs) -> Result<()> {
    let Some(sql) = args.sql.as_deref() else {
        if args.output.is_some() || args.params.is_some() {
            bail!(
                "--output and --params take one statement: pass the SQL as an argument (tarn query \"<SQL>\" --output FILE)"
            );
        }
        return crate::shell::run(ctx, args.format, args.as_of.as_deref()).await;
    };
    let format = output_format(args.format, args.output.as_deref(), ctx.json)?;
    let params = args
        .params
        .as_deref()
        .map(parse_params)
        .transpose()?
        .unwrap_or_default();
    let lake = ctx.lake().await?;
    let state = crate::state_as_of(&lake, args.as_of.as_deref()).await?;
    let session = QuerySession::new(&lake, state).await?;
    let df = session.sql(sql, params).await?;
    output::write_dataframe(df, format, args.output.as_deref()).await?;
    Ok(())
}
