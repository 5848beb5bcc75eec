//! `tarn collection create|ls|show|key` and `tarn ls PREFIX --where FIELD=VALUE` (SPEC §1,
//! §11): collections' key schemas live in the catalog; these commands create them, show
//! their datasets with their keys, and turn a key into a dataset name for scripts.

use crate::Ctx;
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use tarn::DatasetSummary;
use tarn::{CollectionDataset, CollectionListing, CollectionRecord, KeyField, KeySchema};

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection: datasets named NAME/<f1>-<f2>.../<sub-level fields>...
    Create {
        /// The collection's name: a dataset path prefix such as `weather`.
        name: String,
        /// The top level's fields, in order: NAME:TYPE,... with TYPE int or str.
        #[arg(long, value_name = "FIELD:TYPE,...", value_parser = parse_fields)]
        fields: FieldList,
        /// The fields of one more directory level; repeat for deeper levels.
        #[arg(long = "sublevel", value_name = "FIELD:TYPE,...", value_parser = parse_fields)]
        sublevels: Vec<FieldList>,
        /// The character between the fields of a level: one of - _ . = (default -).
        #[arg(long, value_parser = parse_separator)]
        separator: Option<char>,
    },
    /// List collections.
    Ls,
    /// Show a collection's key schema and its datasets with their keys.
    Show { name: String },
    /// Print the dataset name of a key (FIELD=VALUE for every field of the collection).
    Key {
        name: String,
        #[arg(value_name = "FIELD=VALUE", required = true, value_parser = parse_field_value)]
        values: Vec<(String, String)>,
    },
}

/// The fields of one level, as given on the command line.
#[derive(Debug, Clone)]
pub struct FieldList(Vec<KeyField>);

fn parse_fields(s: &str) -> Result<FieldList, String> {
    KeyField::parse_list(s)
        .map(FieldList)
        .map_err(|e| e.to_string())
}

fn parse_separator(s: &str) -> Result<char, String> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if tarn::core::key::SEPARATORS.contains(&c) => Ok(c),
        _ => Err(format!(
            "invalid separator {s:?}: use one character of - _ . = (it may then not appear inside values)"
        )),
    }
}

/// `FIELD=VALUE` (the value may contain `=`).
pub fn parse_field_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected FIELD=VALUE, got {s:?}")),
    }
}

pub async fn run(ctx: &Ctx, command: CollectionCommand) -> Result<()> {
    match command {
        CollectionCommand::Create {
            name,
            fields,
            sublevels,
            separator,
        } => {
            let mut levels = vec![fields.0];
            levels.extend(sublevels.into_iter().map(|l| l.0));
            let schema = KeySchema::new(
                name,
                separator.unwrap_or(tarn::core::key::DEFAULT_SEPARATOR),
                levels,
            )?;
            let lake = ctx.lake().await?;
            let listing = lake.create_collection(schema).await?;
            warn_unmatched(ctx, &listing);
            if ctx.json {
                return ctx.print_json(&listing_json(&listing));
            }
            if !ctx.quiet {
                let c = &listing.collection;
                outln!(
                    "created collection {}: datasets are named {}",
                    c.name(),
                    c.schema.pattern()
                );
                match listing.datasets.len() {
                    0 => {}
                    1 => outln!("1 existing dataset under {}/ is a key of it", c.name()),
                    n => outln!("{n} existing datasets under {}/ are keys of it", c.name()),
                }
            }
            Ok(())
        }
        CollectionCommand::Ls => {
            let lake = ctx.lake().await?;
            let collections = lake.collections().await?;
            if ctx.json {
                let list: Vec<Value> = collections.iter().map(collection_json).collect();
                return ctx.print_json(&list);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(["collection", "dataset names", "created"]);
            for c in &collections {
                table.add_row([
                    c.name().to_string(),
                    c.schema.pattern(),
                    c.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ]);
            }
            outln!("{table}");
            Ok(())
        }
        CollectionCommand::Show { name } => {
            let lake = ctx.lake().await?;
            let listing = lake.collection_datasets(trim(&name), &[]).await?;
            if ctx.json {
                return ctx.print_json(&listing_json(&listing));
            }
            let c = &listing.collection;
            outln!("collection {}", c.name());
            outln!("dataset names: {}", c.schema.pattern());
            outln!("separator:     {:?}", c.schema.separator());
            for (i, level) in c.schema.levels().iter().enumerate() {
                let fields: Vec<String> = level.iter().map(ToString::to_string).collect();
                let label = if i == 0 {
                    "top level".to_string()
                } else {
                    format!("sub-level {i}")
                };
                outln!("{:<15}{}", format!("{label}:"), fields.join(", "));
            }
            outln!(
                "created:       {}",
                c.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            outln!("{}", datasets_table(&c.schema, &listing.datasets));
            if !listing.unmatched.is_empty() {
                outln!("not keys of this collection:");
                for u in &listing.unmatched {
                    outln!("  {}: {}", u.name, u.reason);
                }
            }
            Ok(())
        }
        CollectionCommand::Key { name, values } => {
            let lake = ctx.lake().await?;
            let collection = lake.collection(trim(&name)).await?;
            let schema = &collection.schema;
            let key = values
                .iter()
                .map(|(field, text)| Ok((field.clone(), schema.parse_value(field, text)?)))
                .collect::<Result<Vec<_>>>()?;
            let dataset = schema.to_name(&key)?;
            if ctx.json {
                let exists = lake.dataset_exists(&dataset).await?;
                let ordered: Vec<_> = schema
                    .fields()
                    .filter_map(|f| key.iter().find(|(n, _)| *n == f.name).cloned())
                    .collect();
                return ctx.print_json(&json!({
                    "collection": collection.name().as_str(),
                    "name": dataset.as_str(),
                    "uri": format!("tarn://{dataset}"),
                    "key": key_json(&ordered),
                    "exists": exists,
                }));
            }
            outln!("{dataset}");
            Ok(())
        }
    }
}

/// `tarn ls PREFIX --where FIELD=VALUE...`: the datasets of collection PREFIX whose key has
/// every given value.
pub async fn ls_where(
    ctx: &Ctx,
    prefix: Option<String>,
    filter: Vec<(String, String)>,
) -> Result<()> {
    let Some(prefix) = prefix else {
        bail!("--where needs the collection to filter: tarn ls COLLECTION --where FIELD=VALUE");
    };
    let name = trim(&prefix);
    let lake = ctx.lake().await?;
    if let Err(e) = lake.collection(name).await {
        if e.kind() == tarn::ErrorKind::NotFound {
            bail!(
                "--where filters the datasets of a collection by key, and {name:?} is not a collection \
                 (`tarn collection ls` lists them, `tarn collection create` makes one)"
            );
        }
        return Err(e.into());
    }
    let filter: Vec<(&str, &str)> = filter
        .iter()
        .map(|(f, v)| (f.as_str(), v.as_str()))
        .collect();
    let listing = lake.collection_datasets(name, &filter).await?;
    warn_unmatched(ctx, &listing);
    if ctx.json {
        let list: Vec<Value> = listing.datasets.iter().map(keyed_dataset_json).collect();
        return ctx.print_json(&list);
    }
    outln!(
        "{}",
        datasets_table(&listing.collection.schema, &listing.datasets)
    );
    Ok(())
}

fn trim(name: &str) -> &str {
    let t = name.trim_end_matches('/');
    if t.is_empty() { name } else { t }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn warn_unmatched(ctx: &Ctx, listing: &CollectionListing) {
    if listing.unmatched.is_empty() || ctx.quiet {
        return;
    }
    let c = &listing.collection;
    eprintln!(
        "warning: {} dataset{} under {}/ {} not named {}:",
        listing.unmatched.len(),
        plural(listing.unmatched.len()),
        c.name(),
        if listing.unmatched.len() == 1 {
            "is"
        } else {
            "are"
        },
        c.schema.pattern()
    );
    for u in &listing.unmatched {
        eprintln!("  {}: {}", u.name, u.reason);
    }
}

fn collection_json(c: &CollectionRecord) -> Value {
    let levels: Vec<Value> = c
        .schema
        .levels()
        .iter()
        .map(|level| {
            level
                .iter()
                .map(|f| json!({"name": f.name, "kind": f.kind.as_str()}))
                .collect()
        })
        .collect();
    json!({
        "name": c.name().as_str(),
        "pattern": c.schema.pattern(),
        "separator": c.schema.separator().to_string(),
        "levels": levels,
        "created_at": c.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

fn key_json(key: &[(String, tarn::KeyValue)]) -> Value {
    let mut map = Map::new();
    for (field, value) in key {
        map.insert(field.clone(), json!(value));
    }
    Value::Object(map)
}

/// The fields of `tarn ls --json`, plus the key.
fn keyed_dataset_json(d: &CollectionDataset) -> Value {
    let s: &DatasetSummary = &d.summary;
    json!({
        "name": s.name.as_str(), "version": s.version, "rows": s.rows,
        "row_groups": s.row_groups, "bytes": s.bytes, "ordered_on": s.ordered_on,
        "timestamp": s.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "key": key_json(&d.key),
    })
}

fn listing_json(listing: &CollectionListing) -> Value {
    let mut out = collection_json(&listing.collection);
    let datasets: Vec<Value> = listing.datasets.iter().map(keyed_dataset_json).collect();
    let unmatched: Vec<Value> = listing
        .unmatched
        .iter()
        .map(|u| json!({"name": u.name.as_str(), "reason": u.reason}))
        .collect();
    if let Value::Object(map) = &mut out {
        map.insert("datasets".into(), Value::Array(datasets));
        map.insert("unmatched".into(), Value::Array(unmatched));
    }
    out
}

fn datasets_table(schema: &KeySchema, datasets: &[CollectionDataset]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["dataset".to_string()];
    header.extend(schema.fields().map(|f| f.name.clone()));
    header.extend(["version", "rows", "updated"].map(String::from));
    table.set_header(header);
    for d in datasets {
        let mut row = vec![d.summary.name.to_string()];
        row.extend(d.key.iter().map(|(_, v)| v.to_string()));
        row.extend([
            format!("v{}", d.summary.version),
            d.summary.rows.to_string(),
            d.summary
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ]);
        table.add_row(row);
    }
    table
}
