//! `tarn query` without SQL: statements from stdin. On a terminal, an interactive shell with
//! line editing, multi-line input and a history file; otherwise a script, run statement by
//! statement until the first error.
//!
//! A statement ends with `;` outside quotes and comments (the last one of a script may omit
//! it). A line that starts with `\` is a shell command (`\d`, `\q`, ...). Each statement
//! reads the lake state current when it runs, unless `--as-of` pins them all; all
//! statements share one query engine, so Parquet footers read once stay cached.

use crate::Ctx;
use crate::output::{self, OutputFormat};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, IsTerminal};
use std::time::Instant;
use tarn::{Lake, LakeState};
use tarn_query::QueryEngine;

const HELP: &str = "\
Statements end with ';' and may span lines. Datasets are tables: \"a/b/c\" (quoted) or
a.b.c; any version is \"a/b/c@dev:v3\" or tarn('tarn://a/b/c:2024-01-05').

  \\d              list the datasets and collections
  \\d NAME         the columns of a table
  \\format FORMAT  table, csv, json or jsonl
  \\timing         turn the time of each statement on or off
  \\?              this help
  \\q              quit (or Ctrl-D)

Ctrl-C cancels the statement being typed, or the one running.";

/// Splits SQL text into statements at `;` outside quotes and comments.
#[derive(Debug, Default)]
pub struct Splitter {
    pending: String,
}

impl Splitter {
    /// Adds `line` (without its newline); returns the statements it completes.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        if !self.pending.is_empty() {
            self.pending.push('\n');
        }
        self.pending.push_str(line);
        let (complete, rest) = split(&self.pending);
        self.pending = rest;
        complete
    }

    /// True when nothing but blanks awaits a `;`.
    pub fn is_empty(&self) -> bool {
        self.pending.trim().is_empty()
    }

    /// What is left at the end of the input, as a last statement.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty() && !only_comments(rest)).then(|| rest.to_string())
    }
}

/// The complete statements of `text` (trimmed, empty ones dropped) and the unfinished rest.
pub fn split(text: &str) -> (Vec<String>, String) {
    #[derive(PartialEq)]
    enum State {
        Code,
        Single,
        Double,
        Line,
        Block,
    }
    let mut state = State::Code;
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Code => match c {
                b'\'' => state = State::Single,
                b'"' => state = State::Double,
                b'-' if next == Some(b'-') => {
                    state = State::Line;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::Block;
                    i += 1;
                }
                b';' => {
                    let statement = text[start..i].trim();
                    if !statement.is_empty() && !only_comments(statement) {
                        out.push(statement.to_string());
                    }
                    start = i + 1;
                }
                _ => {}
            },
            // A doubled quote inside a string is the quote itself: leaving and re-entering
            // the string at once does the same.
            State::Single if c == b'\'' => state = State::Code,
            State::Double if c == b'"' => state = State::Code,
            State::Line if c == b'\n' => state = State::Code,
            State::Block if c == b'*' && next == Some(b'/') => {
                state = State::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    (out, text[start..].to_string())
}

/// True when `text` holds nothing but comments and blanks.
fn only_comments(text: &str) -> bool {
    let mut t = text;
    loop {
        t = t.trim_start();
        if t.is_empty() {
            return true;
        }
        if let Some(r) = t.strip_prefix("--") {
            t = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = t.strip_prefix("/*") {
            match r.split_once("*/") {
                Some((_, r)) => t = r,
                None => return true,
            }
        } else {
            return false;
        }
    }
}

/// What one input line asks of the shell.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    List,
    Describe(String),
    Format(String),
    Timing,
    Unknown(String),
}

/// A shell command, when `line` is one (and no statement is pending).
pub fn command(line: &str) -> Option<Command> {
    let line = line.trim();
    let word = line.trim_end_matches(';').to_ascii_lowercase();
    if matches!(word.as_str(), "exit" | "quit") {
        return Some(Command::Quit);
    }
    if word == "help" {
        return Some(Command::Help);
    }
    let rest = line.strip_prefix('\\')?;
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim().trim_end_matches(';').trim()),
        None => (rest.trim_end_matches(';'), ""),
    };
    Some(match (name, arg) {
        ("q" | "quit", _) => Command::Quit,
        ("?" | "h" | "help", _) => Command::Help,
        ("d", "") => Command::List,
        ("d", table) => Command::Describe(table.to_string()),
        ("format", f) => Command::Format(f.to_string()),
        ("timing", _) => Command::Timing,
        _ => Command::Unknown(line.to_string()),
    })
}

struct Shell {
    lake: Lake,
    engine: QueryEngine,
    as_of: Option<LakeState>,
    format: OutputFormat,
    timing: bool,
}

impl Shell {
    async fn statement(&self, sql: &str) -> Result<()> {
        let t = Instant::now();
        let session = self.engine.session(self.as_of).await?;
        let df = session.sql(sql, Vec::new()).await?;
        let rows = output::write_dataframe(df, self.format, None).await?;
        if self.timing {
            eprintln!(
                "({rows} row{} in {:.3} s)",
                if rows == 1 { "" } else { "s" },
                t.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Runs a shell command; false when it asks to quit.
    async fn command(&mut self, command: Command) -> Result<bool> {
        match command {
            Command::Quit => return Ok(false),
            Command::Help => outln!("{HELP}"),
            Command::Timing => {
                self.timing = !self.timing;
                eprintln!("timing {}", if self.timing { "on" } else { "off" });
            }
            Command::Format(f) => {
                self.format = match f.to_ascii_lowercase().as_str() {
                    "table" => OutputFormat::Table,
                    "csv" => OutputFormat::Csv,
                    "json" => OutputFormat::Json,
                    "jsonl" => OutputFormat::Jsonl,
                    other => bail!(
                        "\\format {other:?}: the shell prints table, csv, json or jsonl (write Parquet or Arrow with tarn query \"<SQL>\" --output FILE)"
                    ),
                };
            }
            Command::List => self.list().await?,
            Command::Describe(name) => {
                // Through a statement, so that names resolve exactly as in queries.
                let session = self.engine.session(self.as_of).await?;
                let df = session
                    .sql(&format!("SELECT * FROM {name} LIMIT 0"), Vec::new())
                    .await?;
                let rows = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|field| {
                        vec![
                            field.name().clone(),
                            field.data_type().to_string(),
                            field.is_nullable().to_string(),
                        ]
                    })
                    .collect();
                self.print(&["column", "type", "nullable"], rows).await?;
            }
            Command::Unknown(line) => bail!("unknown shell command {line:?}; \\? lists them"),
        }
        Ok(true)
    }

    /// Rows of text in the shell's `\format`.
    async fn print(&self, header: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
        if self.format == OutputFormat::Table {
            let mut table = output::table(header);
            for row in rows {
                table.add_row(row);
            }
            outln!("{table}");
            return Ok(());
        }
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(
            header
                .iter()
                .map(|h| arrow::datatypes::Field::new(*h, arrow::datatypes::DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let columns = (0..header.len())
            .map(|i| {
                std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
                    rows.iter().map(|r| r[i].as_str()),
                )) as arrow::array::ArrayRef
            })
            .collect();
        let batch = arrow::array::RecordBatch::try_new(schema.clone(), columns)?;
        let batches = futures::stream::iter([Ok::<_, arrow::error::ArrowError>(batch)]);
        output::write_stream(Box::pin(batches), &schema, self.format, None).await?;
        Ok(())
    }

    async fn list(&self) -> Result<()> {
        let mut rows = Vec::new();
        for d in self.lake.datasets(None).await? {
            let name = d.name.to_string();
            let (count, version) = match self.lake.snapshot_at(&name, self.as_of).await {
                Ok(s) => (s.rows().to_string(), format!("v{}", s.version())),
                // Created after a pinned state.
                Err(e) if e.kind() == tarn::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            rows.push(vec![
                format!("\"{name}\""),
                "dataset".into(),
                count,
                version,
            ]);
        }
        for c in self.lake.collections().await? {
            rows.push(vec![
                format!("\"{}\"", c.name()),
                "collection".into(),
                String::new(),
                String::new(),
            ]);
        }
        self.print(&["table", "kind", "rows", "version"], rows)
            .await
    }
}

/// The history file: `$TARN_HISTORY`, else `~/.tarn_history`; none when neither is known.
fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("TARN_HISTORY") {
        return (!p.is_empty()).then(|| p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".tarn_history"))
}

pub async fn run(ctx: &Ctx, format: Option<OutputFormat>, as_of: Option<&str>) -> Result<()> {
    let lake = ctx.lake().await?;
    let as_of = crate::state_as_of(&lake, as_of).await?;
    let engine = QueryEngine::new(&lake)?;
    let terminal = std::io::stdin().is_terminal();
    let format = match format {
        Some(OutputFormat::Parquet | OutputFormat::Arrow) => bail!(
            "statements from stdin print table, csv, json or jsonl; write Parquet or Arrow with tarn query \"<SQL>\" --output FILE"
        ),
        Some(f) => f,
        None if ctx.json => OutputFormat::Json,
        None => OutputFormat::Table,
    };
    let mut shell = Shell {
        lake,
        engine,
        as_of,
        format,
        timing: terminal,
    };
    if terminal {
        interactive(&mut shell).await
    } else {
        script(&mut shell).await
    }
}

/// Statements from a pipe or file: run in order, stopping at the first error.
async fn script(shell: &mut Shell) -> Result<()> {
    let stdin = std::io::stdin();
    let mut splitter = Splitter::default();
    let mut n = 0;
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read statements from stdin")?;
        if splitter.is_empty()
            && let Some(c) = command(&line)
        {
            if !shell
                .command(c)
                .await
                .with_context(|| format!("line {}", i + 1))?
            {
                return Ok(());
            }
            continue;
        }
        for statement in splitter.push_line(&line) {
            n += 1;
            shell
                .statement(&statement)
                .await
                .with_context(|| format!("statement {n} (ending on line {})", i + 1))?;
        }
    }
    if let Some(statement) = splitter.finish() {
        n += 1;
        shell
            .statement(&statement)
            .await
            .with_context(|| format!("statement {n} (at the end of the input)"))?;
    }
    Ok(())
}

/// rustyline's view of the input: a buffer is complete when it ends a statement or is a
/// shell command.
#[derive(rustyline::Helper, rustyline::Completer, rustyline::Hinter, rustyline::Highlighter)]
struct Editing;

impl rustyline::validate::Validator for Editing {
    fn validate(
        &self,
        ctx: &mut rustyline::validate::ValidationContext,
    ) -> rustyline::Result<rustyline::validate::ValidationResult> {
        use rustyline::validate::ValidationResult;
        let input = ctx.input();
        if input.trim().is_empty() || command(input).is_some() {
            return Ok(ValidationResult::Valid(None));
        }
        let (_, rest) = split(input);
        Ok(if rest.trim().is_empty() || only_comments(rest.trim()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

async fn interactive(shell: &mut Shell) -> Result<()> {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .context("history size")?
        .build();
    let mut editor: rustyline::Editor<Editing, rustyline::history::FileHistory> =
        rustyline::Editor::with_config(config).context("cannot start the line editor")?;
    editor.set_helper(Some(Editing));
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        eprintln!("warning: cannot read the history {}: {e}", path.display());
    }
    eprintln!(
        "tarn SQL shell on {}{}. Statements end with ';'. \\? for help, \\q to quit.",
        shell
            .lake
            .root()
            .map_or_else(|| "a lake".to_string(), |p| p.display().to_string()),
        match shell.as_of {
            Some(s) => format!(", pinned at commit {}", s.commit_id),
            None => String::new(),
        }
    );
    loop {
        // The editor blocks; it runs off the async workers.
        let (returned, line) = tokio::task::spawn_blocking(move || {
            let line = editor.readline("tarn> ");
            (editor, line)
        })
        .await
        .context("line editor")?;
        editor = returned;
        let input = match line {
            Ok(input) => input,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read input"),
        };
        if input.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(input.as_str());
        if let Some(c) = command(&input) {
            match shell.command(c).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    eprintln!("error: {}", crate::format_error(&e));
                    continue;
                }
            }
        }
        let mut splitter = Splitter::default();
        let mut statements = splitter.push_line(&input);
        statements.extend(splitter.finish());
        for statement in statements {
            let outcome = tokio::select! {
                r = shell.statement(&statement) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("cancelled")),
            };
            if let Err(e) = outcome {
                eprintln!("error: {}", crate::format_error(&e));
                break;
            }
        }
    }
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!("warning: cannot save the history {}: {e}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let (done, rest) = split("SELECT 1; SELECT ';' AS \"a;b\"; -- c;\nSELECT /* ; */ 2");
        assert_eq!(done, vec!["SELECT 1", "SELECT ';' AS \"a;b\""]);
        assert_eq!(rest.trim(), "-- c;\nSELECT /* ; */ 2");
        let (done, rest) = split("SELECT 'it''s;'; ;; SELECT 3");
        assert_eq!(done, vec!["SELECT 'it''s;'"]);
        assert_eq!(rest, " SELECT 3");
        let (done, _) = split("-- only a comment;\n;");
        assert!(done.is_empty(), "{done:?}");
    }

    #[test]
    fn a_splitter_carries_statements_across_lines() {
        let mut s = Splitter::default();
        assert!(s.push_line("SELECT").is_empty());
        assert!(!s.is_empty());
        assert_eq!(s.push_line("  1;  SELECT 2"), vec!["SELECT\n  1"]);
        assert_eq!(s.push_line("; SELECT '"), vec!["SELECT 2"]);
        assert_eq!(s.push_line("x;';"), vec!["SELECT '\nx;'"]);
        assert!(s.is_empty());
        assert_eq!(s.finish(), None);
        s.push_line("SELECT 4 -- no semicolon");
        assert_eq!(s.finish().as_deref(), Some("SELECT 4 -- no semicolon"));
        s.push_line("/* just a comment */");
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn commands() {
        assert_eq!(command("\\q"), Some(Command::Quit));
        assert_eq!(command("  quit; "), Some(Command::Quit));
        assert_eq!(command("exit"), Some(Command::Quit));
        assert_eq!(command("\\d"), Some(Command::List));
        assert_eq!(
            command("\\d \"a/b\";"),
            Some(Command::Describe("\"a/b\"".into()))
        );
        assert_eq!(command("\\format csv"), Some(Command::Format("csv".into())));
        assert_eq!(command("\\timing"), Some(Command::Timing));
        assert_eq!(command("\\?"), Some(Command::Help));
        assert_eq!(command("\\x"), Some(Command::Unknown("\\x".into())));
        assert_eq!(command("SELECT 1"), None);
        assert_eq!(command("quitting"), None);
    }
}
