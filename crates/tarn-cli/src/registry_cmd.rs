//! `tarn dimension|mapping|project|registry ...` (SPEC §7, §11): the registry of projects,
//! dimensions with records, mappings, dataset registrations, their history and dependencies.

use crate::Ctx;
use crate::collection_cmd::parse_field_value;
use crate::output::{self, OutputFormat};
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tarn::registry_store::{ComponentKind, ComponentVersion};
use tarn_registry::json;
use tarn_registry::{
    Aggregation, ComponentRef, DimensionInput, GroupBy, MappingInput, ProjectDefinition,
    ProjectQuery, Registry, UpdateOutcome,
};

/// A records file and the columns of its ids and names.
#[derive(Debug, clap::Args)]
pub struct RecordsArgs {
    /// A CSV (with a header) or Parquet file.
    #[arg(long)]
    records: PathBuf,
    #[arg(long, default_value = "id")]
    id_column: String,
    #[arg(long, default_value = "name")]
    name_column: String,
    #[arg(long)]
    message: Option<String>,
}

/// A mapping rows file and its columns.
#[derive(Debug, clap::Args)]
pub struct RowsArgs {
    /// A CSV (with a header) or Parquet file of (from_id, to_id[, fraction]) rows.
    #[arg(long)]
    records: PathBuf,
    #[arg(long, default_value = "from_id")]
    from_column: String,
    #[arg(long, default_value = "to_id")]
    to_column: String,
    /// A missing column or an empty cell is a fraction of 1.
    #[arg(long, default_value = "fraction")]
    fraction_column: String,
    #[arg(long)]
    message: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DimensionCommand {
    /// Create a dimension from a CSV or Parquet file of records (id, name, other columns).
    Create {
        name: String,
        /// geography, sector, subsector, metric, scenario, model_year, weather_year, time, or
        /// a type of your own.
        #[arg(long = "type")]
        dimension_type: String,
        #[command(flatten)]
        records: RecordsArgs,
    },
    /// Replace a dimension's records: a new version (--message says what changed).
    Update {
        name: String,
        #[command(flatten)]
        records: RecordsArgs,
    },
    /// List dimensions.
    Ls,
    /// Show a dimension version and its records.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Create a mapping between two dimensions from a CSV or Parquet file of
    /// (from_id, to_id[, fraction]) rows.
    Create {
        name: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        rows: RowsArgs,
        /// A record may split over several records with fractions that need not sum to 1.
        #[arg(long)]
        disaggregation: bool,
    },
    /// Replace a mapping's rows (validated against its dimensions' current versions).
    Update {
        name: String,
        #[command(flatten)]
        rows: RowsArgs,
    },
    /// List mappings.
    Ls,
    /// Show a mapping version and its rows.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project from its dimensions and mappings (pinned at their current versions).
    Create {
        name: String,
        #[arg(long = "dimension")]
        dimensions: Vec<String>,
        #[arg(long = "mapping")]
        mappings: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Create or update a project from a TOML definition (name, description, dimensions,
    /// mappings).
    Apply {
        file: PathBuf,
        #[arg(long)]
        message: Option<String>,
    },
    /// List projects.
    Ls,
    /// Show a project version and its registered datasets.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u64>,
    },
    /// The versions of a project, newest first.
    History { name: String },
    /// Validate a dataset snapshot against the project's dimensions and register it.
    RegisterDataset {
        project: String,
        uri: String,
        /// COLUMN=DIMENSION, for every dimension column (repeatable).
        #[arg(long = "dimension", value_name = "COLUMN=DIMENSION", required = true,
              value_parser = parse_field_value)]
        dimensions: Vec<(String, String)>,
        #[arg(long)]
        message: Option<String>,
    },
    /// Aggregate registered datasets to the project's dimensions through its mappings.
    Query {
        project: String,
        /// Registered datasets (all when none is given).
        #[arg(long = "dataset")]
        datasets: Vec<String>,
        /// COLUMN=DIMENSION maps a column; a bare COLUMN groups as it is (comma-separated,
        /// repeatable).
        #[arg(long = "group-by", value_name = "COLUMN[=DIMENSION],...")]
        group_by: Vec<String>,
        /// sum(COL), count(*), count(COL), avg(COL), min(COL), max(COL) (repeatable).
        #[arg(long = "agg", required = true)]
        aggregations: Vec<String>,
        /// A SQL condition on each dataset's rows, before mapping.
        #[arg(long = "where")]
        filter: Option<String>,
        /// Group the ordered-on column into periods: 1h, 15min, 1D, 1W, 1MS, ...
        #[arg(long)]
        time_resample: Option<String>,
        #[arg(long, value_enum)]
        format: Option<OutputFormat>,
        #[arg(long)]
        output: Option<String>,
        /// Print the SQL (to stderr) before running it.
        #[arg(long)]
        show_sql: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Every component: dimensions, mappings, projects and registrations.
    Ls,
    /// The versions of a component (KIND:NAME), newest first, with author, time and message.
    History { component: String },
    /// The components whose latest version uses a component (KIND:NAME[@VERSION]) or a
    /// dataset (dataset:NAME[@BRANCH]).
    Dependents { component: String },
}

impl RecordsArgs {
    fn input<'a>(&'a self, name: &'a str, dimension_type: Option<&'a str>) -> DimensionInput<'a> {
        DimensionInput {
            name,
            dimension_type,
            records: &self.records,
            id_column: &self.id_column,
            name_column: &self.name_column,
            message: self.message.as_deref(),
        }
    }
}

impl RowsArgs {
    fn input<'a>(
        &'a self,
        name: &'a str,
        ends: Option<(&'a str, &'a str)>,
        disaggregation: bool,
    ) -> MappingInput<'a> {
        MappingInput {
            name,
            from: ends.map(|e| e.0),
            to: ends.map(|e| e.1),
            records: &self.records,
            from_column: &self.from_column,
            to_column: &self.to_column,
            fraction_column: &self.fraction_column,
            disaggregation,
            message: self.message.as_deref(),
        }
    }
}

fn print_created(ctx: &Ctx, v: &ComponentVersion, verb: &str) -> Result<()> {
    if ctx.json {
        ctx.print_json(&json::version(v))
    } else {
        if !ctx.quiet {
            outln!("{verb} {} {:?} v{}", v.kind.as_str(), v.name, v.version);
        }
        Ok(())
    }
}

fn print_update(ctx: &Ctx, kind: ComponentKind, name: &str, outcome: &UpdateOutcome) -> Result<()> {
    if ctx.json {
        return ctx.print_json(&json!({
            "version": outcome.version.as_ref().map(json::version),
            "stale": outcome.stale.iter().map(json::dependent).collect::<Vec<_>>(),
        }));
    }
    match &outcome.version {
        None => outln!("{} {name:?} is unchanged", kind.as_str()),
        Some(v) => outln!("updated {} {name:?} to v{}", kind.as_str(), v.version),
    }
    if !outcome.stale.is_empty() {
        outln!("these use an older version and need an update or a new registration:");
        for d in &outcome.stale {
            outln!(
                "  {}:{} v{} uses {} v{}",
                d.kind.as_str(),
                d.name,
                d.version,
                name,
                d.target.version
            );
        }
    }
    Ok(())
}

fn print_history(ctx: &Ctx, history: &[ComponentVersion]) -> Result<()> {
    if ctx.json {
        return ctx.print_json(&history.iter().map(json::version).collect::<Vec<_>>());
    }
    let mut t = output::table(&["version", "time", "author", "message"]);
    for v in history {
        t.add_row([
            format!("v{}", v.version),
            v.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            v.author.clone(),
            v.message.clone(),
        ]);
    }
    outln!("{t}");
    Ok(())
}

async fn list(ctx: &Ctx, registry: &Registry, kind: Option<ComponentKind>) -> Result<()> {
    let components = registry.components(kind).await?;
    if ctx.json {
        return ctx.print_json(&components.iter().map(json::component).collect::<Vec<_>>());
    }
    let mut t = output::table(&["kind", "name", "version"]);
    for c in components {
        t.add_row([
            c.kind.as_str().to_string(),
            c.name,
            format!("v{}", c.head_version),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub async fn dimension(ctx: &Ctx, command: DimensionCommand) -> Result<()> {
    let registry = Registry::new(&ctx.lake().await?);
    match command {
        DimensionCommand::Create {
            name,
            dimension_type,
            records,
        } => {
            let v = registry
                .create_dimension(&records.input(&name, Some(&dimension_type)))
                .await?;
            print_created(ctx, &v, "created")
        }
        DimensionCommand::Update { name, records } => {
            let outcome = registry
                .update_dimension(&records.input(&name, None))
                .await?;
            print_update(ctx, ComponentKind::Dimension, &name, &outcome)
        }
        DimensionCommand::Ls => list(ctx, &registry, Some(ComponentKind::Dimension)).await,
        DimensionCommand::Show { name, version } => {
            let d = registry.dimension(&name, version).await?;
            if ctx.json {
                return ctx.print_json(&json::dimension(&d, &d.records));
            }
            outln!(
                "dimension {:?} v{} (type {}), {} records, by {} at {}: {}",
                name,
                d.version.version,
                d.body.dimension_type,
                d.records.len(),
                d.version.author,
                d.version
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                d.version.message
            );
            let mut header = vec!["id", "name"];
            header.extend(d.body.extra_columns.iter().map(String::as_str));
            let mut t = output::table(&header);
            for r in &d.records {
                let mut row = vec![r.id.clone(), r.name.clone()];
                row.extend(
                    d.body
                        .extra_columns
                        .iter()
                        .map(|c| r.extra.get(c).cloned().unwrap_or_default()),
                );
                t.add_row(row);
            }
            outln!("{t}");
            Ok(())
        }
    }
}

pub async fn mapping(ctx: &Ctx, command: MappingCommand) -> Result<()> {
    let registry = Registry::new(&ctx.lake().await?);
    match command {
        MappingCommand::Create {
            name,
            from,
            to,
            rows,
            disaggregation,
        } => {
            let v = registry
                .create_mapping(&rows.input(&name, Some((&from, &to)), disaggregation))
                .await?;
            print_created(ctx, &v, "created")
        }
        MappingCommand::Update { name, rows } => {
            let outcome = registry
                .update_mapping(&rows.input(&name, None, false))
                .await?;
            print_update(ctx, ComponentKind::Mapping, &name, &outcome)
        }
        MappingCommand::Ls => list(ctx, &registry, Some(ComponentKind::Mapping)).await,
        MappingCommand::Show { name, version } => {
            let m = registry.mapping(&name, version).await?;
            if ctx.json {
                return ctx.print_json(&json::mapping(&m, &m.rows));
            }
            outln!(
                "mapping {:?} v{}: {} v{} -> {} v{}{}, {} rows, by {} at {}: {}",
                name,
                m.version.version,
                m.body.from.name,
                m.body.from.version,
                m.body.to.name,
                m.body.to.version,
                if m.body.disaggregation {
                    " (disaggregation)"
                } else {
                    ""
                },
                m.rows.len(),
                m.version.author,
                m.version
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.version.message
            );
            let mut t = output::table(&["from_id", "to_id", "fraction"]);
            for r in &m.rows {
                t.add_row([r.from_id.clone(), r.to_id.clone(), r.fraction.to_string()]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}

pub async fn project(ctx: &Ctx, command: ProjectCommand) -> Result<()> {
    let lake = ctx.lake().await?;
    let registry = Registry::new(&lake);
    match command {
        ProjectCommand::Create {
            name,
            dimensions,
            mappings,
            description,
            message,
        } => {
            let def = ProjectDefinition {
                name,
                description,
                dimensions,
                mappings,
            };
            let v = registry.create_project(&def, message.as_deref()).await?;
            print_created(ctx, &v, "created")
        }
        ProjectCommand::Apply { file, message } => {
            let def = ProjectDefinition::from_toml_file(&file)?;
            let outcome = registry.apply_project(&def, message.as_deref()).await?;
            match &outcome.version {
                Some(v) => print_created(
                    ctx,
                    v,
                    if outcome.created {
                        "created"
                    } else {
                        "updated"
                    },
                ),
                None if ctx.json => ctx.print_json(&json!({"version": null})),
                None => {
                    outln!("project {:?} is unchanged", def.name);
                    Ok(())
                }
            }
        }
        ProjectCommand::Ls => list(ctx, &registry, Some(ComponentKind::Project)).await,
        ProjectCommand::History { name } => {
            let history = registry.history(ComponentKind::Project, &name).await?;
            print_history(ctx, &history)
        }
        ProjectCommand::Show { name, version } => {
            let p = registry.project(&name, version).await?;
            let registrations = registry.registrations(&name).await?;
            if ctx.json {
                return ctx.print_json(&json::project(&p, &registrations));
            }
            outln!(
                "project {:?} v{}, by {} at {}: {}",
                name,
                p.version.version,
                p.version.author,
                p.version
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                p.version.message
            );
            if !p.body.description.is_empty() {
                outln!("{}", p.body.description);
            }
            let pins = |v: &[tarn_registry::Pinned]| {
                v.iter()
                    .map(|p| format!("{} v{}", p.name, p.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            outln!("dimensions: {}", pins(&p.body.dimensions));
            outln!("mappings: {}", pins(&p.body.mappings));
            let mut t = output::table(&["dataset", "validated snapshot", "columns", "registered"]);
            for r in &registrations {
                t.add_row([
                    r.body.dataset.clone(),
                    r.body.uri.clone(),
                    r.body
                        .columns
                        .iter()
                        .map(|(c, d)| format!("{c}={} v{}", d.name, d.version))
                        .collect::<Vec<_>>()
                        .join(", "),
                    format!(
                        "v{} (project v{})",
                        r.version.version, r.body.project.version
                    ),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
        ProjectCommand::RegisterDataset {
            project,
            uri,
            dimensions,
            message,
        } => {
            let outcome = registry
                .register_dataset(&project, &uri, &dimensions, message.as_deref())
                .await?;
            let r = &outcome.registration;
            if ctx.json {
                let mut v = json::version(&r.version);
                v["changed"] = json!(outcome.changed);
                return ctx.print_json(&v);
            }
            if outcome.changed {
                outln!(
                    "registered {} to project {project:?}: {} rows valid (registration v{})",
                    r.body.uri,
                    r.body.rows,
                    r.version.version
                );
            } else {
                outln!(
                    "{} is already registered to project {project:?} (registration v{})",
                    r.body.uri,
                    r.version.version
                );
            }
            Ok(())
        }
        ProjectCommand::Query {
            project,
            datasets,
            group_by,
            aggregations,
            filter,
            time_resample,
            format,
            output,
            show_sql,
        } => {
            let mut groups = Vec::new();
            for g in &group_by {
                groups.extend(GroupBy::parse_list(g)?);
            }
            let query = ProjectQuery {
                project,
                datasets,
                group_by: groups,
                aggregations: aggregations
                    .iter()
                    .map(|a| Aggregation::parse(a))
                    .collect::<tarn_registry::Result<_>>()?,
                filter,
                time_resample,
            };
            let prepared = registry.prepare_query(&query).await?;
            if show_sql {
                eprintln!("{}", prepared.sql);
            }
            let format = crate::output::choose_format(format, output.as_deref(), ctx.json)?;
            let df = prepared.dataframe().await?;
            output::write_dataframe(df, format, output.as_deref()).await?;
            Ok(())
        }
    }
}

pub async fn registry(ctx: &Ctx, command: RegistryCommand) -> Result<()> {
    let registry = Registry::new(&ctx.lake().await?);
    match command {
        RegistryCommand::Ls => list(ctx, &registry, None).await,
        RegistryCommand::History { component } => {
            let r = ComponentRef::parse(&component)?;
            let head = registry
                .resolve(&ComponentRef { version: None, ..r })
                .await?;
            let history = registry.history(head.kind, &head.name).await?;
            print_history(ctx, &history)
        }
        RegistryCommand::Dependents { component } => {
            let dependents = registry.dependents_of(&component).await?;
            if ctx.json {
                return ctx.print_json(&dependents.iter().map(json::dependent).collect::<Vec<_>>());
            }
            if dependents.is_empty() {
                outln!("nothing uses {component}");
                return Ok(());
            }
            let mut t = output::table(&["kind", "name", "version", "uses"]);
            for d in &dependents {
                t.add_row([
                    d.kind.as_str().to_string(),
                    d.name.clone(),
                    format!("v{}", d.version),
                    format!("{}:{} v{}", d.target.kind, d.target.name, d.target.version),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}
