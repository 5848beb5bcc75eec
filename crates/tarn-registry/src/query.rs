//! Queries through mappings: registered datasets aggregated to a project's dimensions.
//!
//! The query is built as ordinary DataFusion SQL, so that `--show-sql` prints exactly what
//! runs. Each dataset becomes one `SELECT` in two levels. The inner level reads the
//! dataset's rows (after `--where`) as `p`, with the raw values of the group-by columns and
//! the time period. The outer level joins `p` with the rows of the mappings on each
//! column's path (registered in the session as memory tables, at the versions the project
//! pins) and weights it by the product of their fractions. The `UNION ALL` of those selects
//! is then grouped by the output dimensions.
//!
//! Where the catalog says that grouping pays (see `groups_first`), the inner level also
//! groups the rows by those raw values and keeps, per group, a sum, a count of non-null
//! values, a minimum or a maximum, so that the joins act on one row per distinct key (9,708
//! for 3,236 counties × 3 sectors) rather than on every row. Otherwise each row is its own
//! group (a count of 1 or 0).
//!
//! A sum adds `sum × weight`, so a disaggregation splits a value exactly and an aggregation
//! adds values up; `count` adds `count × weight`; `avg` is the weighted sum over the
//! weighted count of non-null values; `min` and `max` ignore the weights.

use crate::error::{Listing, RegistryError, Result};
use crate::project::Project;
use crate::registration::{Registration, ident, literal};
use crate::{Pinned, Registry};
use arrow::datatypes::DataType;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn::core::Frequency;
use tarn::core::freq::FreqUnit;
use tarn_query::QuerySession;
use tarn_query::datafusion::dataframe::DataFrame;
use tarn_query::datafusion::datasource::MemTable;

/// One `--group-by` item: a column as it is, or a column mapped to a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Column(String),
    Mapped { column: String, dimension: String },
}

impl GroupBy {
    /// Parses `county=state,sector`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| match item.split_once('=') {
                Some((c, d)) if !c.trim().is_empty() && !d.trim().is_empty() => Ok(Self::Mapped {
                    column: c.trim().to_string(),
                    dimension: d.trim().to_string(),
                }),
                Some(_) => Err(RegistryError::Invalid(format!(
                    "--group-by item {item:?} must be COLUMN=DIMENSION or COLUMN"
                ))),
                None => Ok(Self::Column(item.to_string())),
            })
            .collect()
    }

    fn column(&self) -> &str {
        match self {
            Self::Column(c) | Self::Mapped { column: c, .. } => c,
        }
    }

    /// The name of the output column.
    fn output(&self) -> &str {
        match self {
            Self::Column(c) => c,
            Self::Mapped { dimension, .. } => dimension,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    Sum,
    Count,
    Avg,
    Min,
    Max,
}

/// One `--agg` item: `sum(value)`, `count(*)`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregation {
    pub function: AggFn,
    /// `None` for `count(*)`.
    pub column: Option<String>,
}

impl Aggregation {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            RegistryError::Invalid(format!(
                "--agg {text:?} must be FUNCTION(COLUMN) with sum, count, avg, min or max, e.g. sum(value) or count(*)"
            ))
        };
        let text = text.trim();
        let (f, rest) = text.split_once('(').ok_or_else(bad)?;
        let column = rest.strip_suffix(')').ok_or_else(bad)?.trim();
        let function = match f.trim().to_ascii_lowercase().as_str() {
            "sum" => AggFn::Sum,
            "count" => AggFn::Count,
            "avg" | "mean" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            _ => return Err(bad()),
        };
        let column = match column {
            "*" if function == AggFn::Count => None,
            "" | "*" => return Err(bad()),
            c => Some(c.trim_matches('"').to_string()),
        };
        Ok(Self { function, column })
    }

    fn output(&self) -> String {
        let f = match self.function {
            AggFn::Sum => "sum",
            AggFn::Count => "count",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        };
        match &self.column {
            Some(c) => format!("{f}_{c}"),
            None => f.to_string(),
        }
    }
}

/// A query of a project's registered datasets.
#[derive(Debug, Clone, Default)]
pub struct ProjectQuery {
    pub project: String,
    /// Datasets (names or URIs) registered to the project; all of them when empty.
    pub datasets: Vec<String>,
    pub group_by: Vec<GroupBy>,
    pub aggregations: Vec<Aggregation>,
    /// A SQL condition on each dataset's rows, applied before mapping.
    pub filter: Option<String>,
    /// Groups the `ordered_on` column into periods of this frequency (`1h`, `1D`, `1MS`).
    pub time_resample: Option<String>,
}

/// A query ready to run: its SQL and the session it runs in (mapping tables registered).
pub struct PreparedQuery {
    pub sql: String,
    pub session: QuerySession,
}

impl PreparedQuery {
    pub async fn dataframe(&self) -> Result<DataFrame> {
        Ok(self.session.sql(&self.sql, Vec::new()).await?)
    }
}

fn mapping_table(m: &Pinned) -> String {
    format!("__tarn_mapping_{}_v{}", m.name, m.version)
}

/// The unique path of mappings from dimension `from` to `to` in the project.
fn path(
    project: &Project,
    edges: &[(String, String, Pinned)],
    from: &str,
    to: &str,
) -> Result<Vec<Pinned>> {
    fn walk(
        edges: &[(String, String, Pinned)],
        at: &str,
        to: &str,
        path: &mut Vec<Pinned>,
        found: &mut Vec<Vec<Pinned>>,
    ) {
        if at == to {
            found.push(path.clone());
            return;
        }
        for (f, t, m) in edges {
            if f == at {
                path.push(m.clone());
                walk(edges, t, to, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    walk(edges, from, to, &mut Vec::new(), &mut found);
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(RegistryError::Invalid(format!(
            "project {:?} has no mapping from dimension {from:?} to {to:?}; its mappings are {}",
            project.version.name,
            Listing(
                &edges
                    .iter()
                    .map(|(f, t, m)| format!("{} ({f} -> {t})", m.name))
                    .collect::<Vec<_>>()
            )
        ))),
        _ => Err(RegistryError::Invalid(format!(
            "project {:?} maps dimension {from:?} to {to:?} in {} ways ({}); a project should have one",
            project.version.name,
            found.len(),
            found
                .iter()
                .map(|p| p
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" then "))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The SQL expression that puts `column` (of type timestamp) into periods of `freq`.
fn resample(freq: &str, column: &str) -> Result<String> {
    let f = Frequency::parse(freq).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    let n = i64::from(f.count);
    let fixed = |count: i64, unit: &str, origin: &str| {
        format!("date_bin(INTERVAL '{count} {unit}', {column}, TIMESTAMP '{origin}')")
    };
    Ok(match f.unit {
        FreqUnit::Millisecond => fixed(n, "milliseconds", EPOCH),
        FreqUnit::Second => fixed(n, "seconds", EPOCH),
        FreqUnit::Minute => fixed(n, "minutes", EPOCH),
        FreqUnit::Hour => fixed(n, "hours", EPOCH),
        FreqUnit::Day => fixed(n, "days", EPOCH),
        // Weeks start on Monday, as everywhere in tarn.
        FreqUnit::Week => fixed(7 * n, "days", "1970-01-05T00:00:00Z"),
        FreqUnit::MonthStart if n == 1 => format!("date_trunc('month', {column})"),
        FreqUnit::YearStart if n == 1 => format!("date_trunc('year', {column})"),
        FreqUnit::MonthStart | FreqUnit::YearStart => {
            return Err(RegistryError::Invalid(format!(
                "--time-resample {freq}: months and years resample one at a time (1MS, 1YS)"
            )));
        }
    })
}

impl Registry {
    /// Builds the SQL of `q` and a session (at the current lake state) with the mapping
    /// tables it joins.
    pub async fn prepare_query(&self, q: &ProjectQuery) -> Result<PreparedQuery> {
        if q.aggregations.is_empty() {
            return Err(RegistryError::Invalid(
                "a project query needs at least one --agg, e.g. --agg 'sum(value)'".into(),
            ));
        }
        let project = self.project(&q.project, None).await?;
        let registrations: Vec<Registration> = if q.datasets.is_empty() {
            let all = self.registrations(&q.project).await?;
            if all.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "no dataset is registered to project {:?} (tarn project register-dataset)",
                    q.project
                )));
            }
            all
        } else {
            let mut out = Vec::new();
            for text in &q.datasets {
                out.push(self.registered(&q.project, text).await?);
            }
            out
        };
        let mut edges: Vec<(String, String, Pinned)> = Vec::new();
        for m in &project.body.mappings {
            // The definition only: rows are read below, for the mappings the query joins.
            let v = self
                .version_of(
                    tarn::registry_store::ComponentKind::Mapping,
                    &m.name,
                    Some(m.version),
                )
                .await?;
            let body: crate::MappingBody = crate::body(&v)?;
            edges.push((body.from.name, body.to.name, m.clone()));
        }
        let session = QuerySession::new(self.lake(), None).await?;
        // Every value of a registered column is a record id, and every record of a
        // mapping's `from` dimension is mapped, so the dynamic filter a join pushes into the
        // dataset's scan (a range and a hash lookup, evaluated on every row) keeps every row.
        // It only costs: a fifth of a county -> state query (docs/benchmarks.md, W7).
        session
            .context()
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        let mut tables: BTreeMap<String, Pinned> = BTreeMap::new();
        let mut selects = Vec::new();
        // The output's time column: the first dataset's ordered_on (resolved once, below).
        let mut time_column: Option<String> = None;
        for reg in &registrations {
            let snapshot = self.lake().snapshot(&reg.body.uri).await?;
            let grouped = self.groups_first(q, reg, &snapshot).await?;
            let schema = snapshot.schema().clone();
            let has = |c: &str| schema.field_with_name(c).is_ok();
            let missing_column = |c: &str| {
                RegistryError::Invalid(format!("dataset {} has no column {c:?}", reg.body.dataset))
            };
            // Two levels: `inner` groups the dataset's rows by the raw values of the
            // group-by columns (and the time period) and aggregates them; the mapping
            // joins then act on those groups, not on every row.
            let mut inner_items = Vec::new();
            let mut inner_keys = Vec::new();
            let mut joins = Vec::new();
            let mut weights = Vec::new();
            let mut items = Vec::new();
            for (k, g) in q.group_by.iter().enumerate() {
                let column = g.column();
                if !has(column) {
                    return Err(missing_column(column));
                }
                let raw = format!("__k{k}");
                inner_items.push(format!("d.{} AS {raw}", ident(column)));
                inner_keys.push(raw.clone());
                let expr = match g {
                    GroupBy::Column(_) => format!("p.{raw}"),
                    GroupBy::Mapped { dimension, .. } => {
                        let Some(registered) = reg.body.columns.get(column) else {
                            return Err(RegistryError::Invalid(format!(
                                "column {column:?} of {} is registered to no dimension, so it cannot map to {dimension:?}; group by it as it is (--group-by {column})",
                                reg.body.dataset
                            )));
                        };
                        if project.body.dimension(dimension).is_none() {
                            return Err(RegistryError::NotFound(format!(
                                "project {:?} has no dimension {dimension:?}",
                                q.project
                            )));
                        }
                        let steps = if &registered.name == dimension {
                            Vec::new()
                        } else {
                            path(&project, &edges, &registered.name, dimension)?
                        };
                        // Ids are text: a text column joins as it is, anything else as text.
                        let text = matches!(
                            schema
                                .field_with_name(column)
                                .map(|f| f.data_type().clone()),
                            Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                        );
                        let mut key = if text || steps.is_empty() {
                            format!("p.{raw}")
                        } else {
                            format!("CAST(p.{raw} AS VARCHAR)")
                        };
                        for m in steps {
                            let alias = format!("m{}", joins.len());
                            let table = mapping_table(&m);
                            joins.push(format!(
                                "JOIN {} AS {alias} ON {key} = {alias}.from_id",
                                ident(&table)
                            ));
                            weights.push(format!("{alias}.fraction"));
                            key = format!("{alias}.to_id");
                            tables.insert(table, m);
                        }
                        key
                    }
                };
                items.push(format!("{expr} AS {}", ident(g.output())));
            }
            let ordered_on = snapshot.ordered_on().to_string();
            if q.time_resample.is_some() && time_column.is_none() {
                time_column = Some(ordered_on.clone());
            }
            if let Some(freq) = &q.time_resample {
                if !matches!(
                    schema
                        .field_with_name(&ordered_on)
                        .map(|f| f.data_type().clone()),
                    Ok(DataType::Timestamp(..) | DataType::Date32 | DataType::Date64)
                ) {
                    return Err(RegistryError::Invalid(format!(
                        "--time-resample needs a time column; {} is ordered on {ordered_on:?}, which is not one",
                        reg.body.dataset
                    )));
                }
                inner_items.push(format!(
                    "{} AS __t",
                    resample(freq, &format!("d.{}", ident(&ordered_on)))?,
                ));
                inner_keys.push("__t".to_string());
                items.push(format!("p.__t AS {}", ident(&ordered_on)));
            }
            let weighted = |part: &str| {
                if weights.is_empty() {
                    format!("CAST(p.{part} AS DOUBLE)")
                } else {
                    format!("p.{part} * {}", weights.join(" * "))
                }
            };
            for (i, a) in q.aggregations.iter().enumerate() {
                let value = match &a.column {
                    Some(c) if !has(c) => return Err(missing_column(c)),
                    Some(c) => format!("d.{}", ident(c)),
                    None => "*".to_string(),
                };
                // Per group when grouping first, else per row.
                let (sum, count) = if grouped {
                    (
                        format!("sum(CAST({value} AS DOUBLE))"),
                        format!("CAST(count({value}) AS DOUBLE)"),
                    )
                } else if a.column.is_none() {
                    (String::new(), "1.0".to_string())
                } else {
                    (
                        format!("CAST({value} AS DOUBLE)"),
                        format!("CASE WHEN {value} IS NULL THEN 0.0 ELSE 1.0 END"),
                    )
                };
                let extreme = |f: &str| {
                    if grouped {
                        format!("{f}({value})")
                    } else {
                        value.clone()
                    }
                };
                match a.function {
                    AggFn::Sum => {
                        inner_items.push(format!("{sum} AS __s{i}"));
                        items.push(format!("{} AS __s{i}", weighted(&format!("__s{i}"))));
                    }
                    AggFn::Count => {
                        inner_items.push(format!("{count} AS __w{i}"));
                        items.push(format!("{} AS __w{i}", weighted(&format!("__w{i}"))));
                    }
                    AggFn::Avg => {
                        inner_items.push(format!("{sum} AS __s{i}"));
                        inner_items.push(format!("{count} AS __w{i}"));
                        items.push(format!("{} AS __s{i}", weighted(&format!("__s{i}"))));
                        items.push(format!("{} AS __w{i}", weighted(&format!("__w{i}"))));
                    }
                    AggFn::Min => {
                        inner_items.push(format!("{} AS __v{i}", extreme("min")));
                        items.push(format!("p.__v{i} AS __v{i}"));
                    }
                    AggFn::Max => {
                        inner_items.push(format!("{} AS __v{i}", extreme("max")));
                        items.push(format!("p.__v{i} AS __v{i}"));
                    }
                }
            }
            let mut inner = format!(
                "SELECT {}\n  FROM tarn({}) AS d",
                inner_items.join(", "),
                literal(&reg.body.uri)
            );
            if let Some(f) = &q.filter {
                inner.push_str(&format!("\n  WHERE ({f})"));
            }
            if grouped && !inner_keys.is_empty() {
                inner.push_str(&format!("\n  GROUP BY {}", inner_keys.join(", ")));
            }
            let mut select = format!("SELECT {}\nFROM (\n  {inner}\n) AS p", items.join(", "));
            for j in &joins {
                select.push('\n');
                select.push_str(j);
            }
            selects.push(select);
        }
        let mut outer: Vec<String> = q.group_by.iter().map(|g| ident(g.output())).collect();
        if let Some(t) = &time_column {
            outer.push(ident(t));
        }
        let keys = outer.clone();
        for (i, a) in q.aggregations.iter().enumerate() {
            let name = ident(&a.output());
            outer.push(match a.function {
                AggFn::Sum => format!("sum(__s{i}) AS {name}"),
                AggFn::Count => format!("sum(__w{i}) AS {name}"),
                AggFn::Avg => format!("sum(__s{i}) / sum(__w{i}) AS {name}"),
                AggFn::Min => format!("min(__v{i}) AS {name}"),
                AggFn::Max => format!("max(__v{i}) AS {name}"),
            });
        }
        let mut sql = format!(
            "SELECT {}\nFROM (\n{}\n) AS rows",
            outer.join(", "),
            selects.join("\nUNION ALL\n")
        );
        if !keys.is_empty() {
            sql.push_str(&format!("\nGROUP BY {}", keys.join(", ")));
            sql.push_str(&format!("\nORDER BY {}", keys.join(", ")));
        }
        for (table, m) in &tables {
            let batch = self.mapping(&m.name, Some(m.version)).await?.rows_batch()?;
            let mem = MemTable::try_new(batch.schema(), vec![vec![batch]])
                .map_err(tarn_query::QueryError::from_datafusion)?;
            session
                .context()
                .register_table(table.as_str(), Arc::new(mem))
                .map_err(tarn_query::QueryError::from_datafusion)?;
        }
        Ok(PreparedQuery { sql, session })
    }

    /// Whether to group `reg`'s rows by the raw group-by values (and time period) before
    /// the mapping joins: when the catalog says there are at most a quarter as many groups
    /// as rows. The groups are estimated as the product of the record counts of the
    /// dimensions the group-by columns are registered to (validation guarantees their
    /// values are records), times the periods of `--time-resample` the snapshot spans. A
    /// group-by column registered to no dimension leaves the estimate unknown, and the rows
    /// are then joined one by one: grouping that does not reduce costs more than it saves
    /// (2.5× on 10 M rows with one group per row, docs/benchmarks.md W7).
    async fn groups_first(
        &self,
        q: &ProjectQuery,
        reg: &Registration,
        snapshot: &tarn::Snapshot,
    ) -> Result<bool> {
        let mut groups = 1.0f64;
        for g in &q.group_by {
            let Some(dimension) = reg.body.columns.get(g.column()) else {
                return Ok(false);
            };
            let v = self
                .version_of(
                    tarn::registry_store::ComponentKind::Dimension,
                    &dimension.name,
                    Some(dimension.version),
                )
                .await?;
            let body: crate::DimensionBody = crate::body(&v)?;
            groups *= body.records as f64;
        }
        if let Some(freq) = &q.time_resample {
            let f = Frequency::parse(freq).map_err(|e| RegistryError::Invalid(e.to_string()))?;
            let period =
                |x: Option<tarn::OrderedValue>| x.and_then(|x| f.period_of(&x, snapshot.kind()));
            let (Some(first), Some(last)) = (period(snapshot.min()), period(snapshot.max())) else {
                return Ok(false);
            };
            groups *= (last.saturating_sub(first) as f64) + 1.0;
        }
        Ok(groups * 4.0 <= snapshot.rows() as f64)
    }

    /// The registration of `text` (a dataset name or URI) to `project`. A URI with a ref
    /// must name the snapshot the registration validated.
    async fn registered(&self, project: &str, text: &str) -> Result<Registration> {
        let uri = tarn::TarnUri::parse_lenient(text).map_err(tarn::Error::from)?;
        let dataset = uri.dataset.to_string();
        let reg = match self.registration(project, &dataset, None).await {
            Ok(r) => r,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound(format!(
                    "dataset {dataset:?} is not registered to project {project:?} (tarn project register-dataset)"
                )));
            }
            Err(e) => return Err(e),
        };
        if uri.branch.is_some() || !matches!(uri.reference, tarn::Ref::Live | tarn::Ref::Latest) {
            let asked = self.lake().snapshot(text).await?;
            if asked.branch_name().as_str() != reg.body.branch
                || asked.version() != reg.body.dataset_version
            {
                return Err(RegistryError::Invalid(format!(
                    "{text} is {}, but project {project:?} validated {}; register that version first (tarn project register-dataset)",
                    asked.uri(),
                    reg.body.uri
                )));
            }
        }
        Ok(reg)
    }
}
