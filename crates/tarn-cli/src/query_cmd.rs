//! `tarn query "<SQL>"` (SPEC §6, §11): SQL over any snapshot, with results streamed to the
//! terminal or a file.

use crate::Ctx;
use crate::output::{self, OutputFormat};
use anyhow::{Context, Result, bail};
use clap::Args;
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
    tarn_query::params_from_json(items).map_err(|e| anyhow::anyhow!("--params: {e}"))
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
    let format = output::choose_format(args.format, args.output.as_deref(), ctx.json)?;
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
