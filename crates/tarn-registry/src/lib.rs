//! tarn's registry (SPEC §7, docs/design/0005-registry.md): dimensions with records,
//! mappings between dimensions, projects, dataset registrations validated against the
//! records, queries through the mappings, and the version history and dependencies of all
//! of them. Everything is stored in the lake's catalog; every change is one atomic version
//! with an author, a time (a lake commit) and a message.

mod error;
pub mod json;
mod names;
mod project;
mod query;
mod records;
mod registration;

pub use error::{ErrorKind, Id, Listing, RegistryError, Result, SHOWN};
pub use names::{ComponentRef, check_name, registration_name};
pub use project::{ApplyOutcome, Project, ProjectBody, ProjectDefinition};
pub use query::{AggFn, Aggregation, GroupBy, PreparedQuery, ProjectQuery};
pub use records::{
    MappingRow, Record, TextTable, read_mapping_rows, read_records, read_text_table,
};
pub use registration::{MissingValues, RegisterOutcome, Registration, RegistrationBody};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tarn::Lake;
use tarn::registry_store::{
    ComponentKind, ComponentRecord, ComponentVersion, DependencyTarget, Dependent,
    DimensionRecordRow, NewComponentVersion,
};

/// Dimension types every project knows; any other name that fits the name grammar is a
/// user-defined type.
pub const KNOWN_TYPES: &[&str] = &[
    "geography",
    "sector",
    "subsector",
    "metric",
    "scenario",
    "model_year",
    "weather_year",
    "time",
];

/// How far the fractions of one `from` id of an aggregation may be from 1.
pub const FRACTION_TOLERANCE: f64 = 1e-6;

/// Who makes a change: `TARN_AUTHOR`, else `USER`, else `unknown`.
pub fn author() -> String {
    ["TARN_AUTHOR", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// The definition of a dimension version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionBody {
    #[serde(rename = "type")]
    pub dimension_type: String,
    /// The columns of the records file the ids and names came from.
    pub id_column: String,
    pub name_column: String,
    /// The other columns, kept with every record.
    pub extra_columns: Vec<String>,
    pub records: u64,
}

/// A component version pinned by another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pinned {
    pub name: String,
    pub version: u64,
}

/// The definition of a mapping version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingBody {
    pub from: Pinned,
    pub to: Pinned,
    /// When true, one `from` record may split over several `to` records with fractions
    /// that need not sum to 1.
    pub disaggregation: bool,
    pub rows: u64,
}

/// A dimension version with its records.
#[derive(Debug, Clone)]
pub struct Dimension {
    pub version: ComponentVersion,
    pub body: DimensionBody,
    pub records: Vec<Record>,
}

/// A mapping version with its rows.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub version: ComponentVersion,
    pub body: MappingBody,
    pub rows: Vec<MappingRow>,
}

impl Mapping {
    /// The rows as one batch of `from_id`, `to_id` (Utf8) and `fraction` (Float64).
    pub fn rows_batch(&self) -> Result<arrow::array::RecordBatch> {
        use arrow::array::{Float64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("from_id", DataType::Utf8, false),
            Field::new("to_id", DataType::Utf8, false),
            Field::new("fraction", DataType::Float64, false),
        ]));
        arrow::array::RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(StringArray::from_iter_values(
                    self.rows.iter().map(|r| r.from_id.as_str()),
                )),
                std::sync::Arc::new(StringArray::from_iter_values(
                    self.rows.iter().map(|r| r.to_id.as_str()),
                )),
                std::sync::Arc::new(Float64Array::from_iter_values(
                    self.rows.iter().map(|r| r.fraction),
                )),
            ],
        )
        .map_err(|e| RegistryError::Invalid(e.to_string()))
    }
}

/// What an update did: the new version (none when nothing changed) and the components
/// whose latest version depends on an older version of what changed.
#[derive(Debug, Clone)]
pub struct UpdateOutcome {
    pub version: Option<ComponentVersion>,
    pub stale: Vec<Dependent>,
}

/// A new dimension, or new records for one.
#[derive(Debug, Clone)]
pub struct DimensionInput<'a> {
    pub name: &'a str,
    /// Required to create; an update keeps the type.
    pub dimension_type: Option<&'a str>,
    pub records: &'a Path,
    pub id_column: &'a str,
    pub name_column: &'a str,
    pub message: Option<&'a str>,
}

/// A new mapping, or new rows for one.
#[derive(Debug, Clone)]
pub struct MappingInput<'a> {
    pub name: &'a str,
    /// Required to create; an update keeps its dimensions (at their current versions).
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub records: &'a Path,
    pub from_column: &'a str,
    pub to_column: &'a str,
    pub fraction_column: &'a str,
    pub disaggregation: bool,
    pub message: Option<&'a str>,
}

/// The registry of one lake.
#[derive(Debug, Clone)]
pub struct Registry {
    lake: Lake,
}

pub(crate) fn body<T: for<'de> Deserialize<'de>>(v: &ComponentVersion) -> Result<T> {
    serde_json::from_str(&v.body_json).map_err(|e| {
        RegistryError::Invalid(format!(
            "the catalog holds an unreadable definition of {} {:?} v{}: {e}",
            v.kind.as_str(),
            v.name,
            v.version
        ))
    })
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| RegistryError::Invalid(e.to_string()))
}

fn not_found(kind: ComponentKind, name: &str, version: Option<u64>) -> RegistryError {
    match version {
        Some(v) => {
            RegistryError::NotFound(format!("{} {name:?} has no version {v}", kind.as_str()))
        }
        None => RegistryError::NotFound(format!(
            "{} {name:?} does not exist (tarn {} ls lists them)",
            kind.as_str(),
            kind.as_str()
        )),
    }
}

impl Registry {
    pub fn new(lake: &Lake) -> Self {
        Self { lake: lake.clone() }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    fn registry_store(&self) -> tarn::registry_store::RegistryStore {
        self.lake.registry_store()
    }

    /// A component version (the head when `version` is `None`), or a "does not exist" error.
    pub async fn version_of(
        &self,
        kind: ComponentKind,
        name: &str,
        version: Option<u64>,
    ) -> Result<ComponentVersion> {
        self.registry_store()
            .component_version(kind, name, version)
            .await?
            .ok_or_else(|| not_found(kind, name, version))
    }

    /// Every component of `kind` (all kinds when `None`).
    pub async fn components(&self, kind: Option<ComponentKind>) -> Result<Vec<ComponentRecord>> {
        Ok(self.registry_store().components(kind).await?)
    }

    /// Resolves a command-line reference: a bare name must belong to exactly one kind.
    pub async fn resolve(&self, r: &ComponentRef) -> Result<ComponentVersion> {
        let kind = match r.kind {
            Some(k) => k,
            None => {
                let mut kinds = Vec::new();
                for k in ComponentKind::ALL {
                    if self.registry_store().component(k, &r.name).await?.is_some() {
                        kinds.push(k);
                    }
                }
                match kinds.as_slice() {
                    [k] => *k,
                    [] => {
                        return Err(RegistryError::NotFound(format!(
                            "no dimension, mapping, project or registration is named {:?} (tarn registry ls lists them)",
                            r.name
                        )));
                    }
                    several => {
                        return Err(RegistryError::Invalid(format!(
                            "{:?} names a {}; write KIND:NAME, e.g. {}:{}",
                            r.name,
                            several
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(" and a "),
                            several[0].as_str(),
                            r.name
                        )));
                    }
                }
            }
        };
        self.version_of(kind, &r.name, r.version).await
    }

    // --- dimensions -------------------------------------------------------------------

    /// Creates a dimension (version 1) from a records file.
    pub async fn create_dimension(&self, input: &DimensionInput<'_>) -> Result<ComponentVersion> {
        check_name("dimension", input.name)?;
        let Some(dimension_type) = input.dimension_type else {
            return Err(RegistryError::Invalid(format!(
                "dimension {:?} needs a type (--type), one of {} or a type of your own",
                input.name,
                KNOWN_TYPES.join(", ")
            )));
        };
        check_name("dimension type", dimension_type)?;
        if let Some(existing) = self
            .registry_store()
            .component(ComponentKind::Dimension, input.name)
            .await?
        {
            return Err(RegistryError::Invalid(format!(
                "dimension {:?} already exists (version {}); change its records with tarn dimension update",
                input.name, existing.head_version
            )));
        }
        let records = read_records(input.records, input.id_column, input.name_column)?;
        let new = self.dimension_version(input, dimension_type, &records, None)?;
        Ok(self.registry_store().put_component_version(new).await?)
    }

    /// Replaces a dimension's records: a new version, unless they are the same.
    pub async fn update_dimension(&self, input: &DimensionInput<'_>) -> Result<UpdateOutcome> {
        let current = self.dimension(input.name, None).await?;
        if let Some(t) = input.dimension_type
            && t != current.body.dimension_type
        {
            return Err(RegistryError::Invalid(format!(
                "dimension {:?} is of type {:?}; a dimension keeps its type (create another dimension for type {t:?})",
                input.name, current.body.dimension_type
            )));
        }
        if input.message.is_none_or(|m| m.trim().is_empty()) {
            return Err(RegistryError::Invalid(format!(
                "updating dimension {:?} needs a message (--message) saying what changed",
                input.name
            )));
        }
        let records = read_records(input.records, input.id_column, input.name_column)?;
        let new = self.dimension_version(
            input,
            &current.body.dimension_type,
            &records,
            Some(current.version.version),
        )?;
        if records == current.records && new.body_json == current.version.body_json {
            return Ok(UpdateOutcome {
                version: None,
                stale: Vec::new(),
            });
        }
        let version = self.registry_store().put_component_version(new).await?;
        let stale = self
            .stale_dependents(ComponentKind::Dimension, input.name, version.version)
            .await?;
        Ok(UpdateOutcome {
            version: Some(version),
            stale,
        })
    }

    fn dimension_version(
        &self,
        input: &DimensionInput<'_>,
        dimension_type: &str,
        records: &[Record],
        base_version: Option<u64>,
    ) -> Result<NewComponentVersion> {
        let extra_columns: BTreeSet<&String> =
            records.iter().flat_map(|r| r.extra.keys()).collect();
        let body = DimensionBody {
            dimension_type: dimension_type.to_string(),
            id_column: input.id_column.to_string(),
            name_column: input.name_column.to_string(),
            extra_columns: extra_columns.into_iter().cloned().collect(),
            records: records.len() as u64,
        };
        Ok(NewComponentVersion {
            kind: ComponentKind::Dimension,
            name: input.name.to_string(),
            base_version,
            author: author(),
            message: input
                .message
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} records", records.len())),
            body_json: to_json(&body)?,
            records: records
                .iter()
                .map(|r| {
                    Ok(DimensionRecordRow {
                        id: r.id.clone(),
                        name: r.name.clone(),
                        extra_json: to_json(&r.extra)?,
                    })
                })
                .collect::<Result<_>>()?,
            mapping_rows: Vec::new(),
            dependencies: Vec::new(),
        })
    }

    /// A dimension version (the head when `version` is `None`) with its records.
    pub async fn dimension(&self, name: &str, version: Option<u64>) -> Result<Dimension> {
        let v = self
            .version_of(ComponentKind::Dimension, name, version)
            .await?;
        let body: DimensionBody = body(&v)?;
        let records = self
            .registry_store()
            .dimension_records(v.component_id, v.version)
            .await?
            .into_iter()
            .map(|r| {
                Ok(Record {
                    id: r.id,
                    name: r.name,
                    extra: serde_json::from_str(&r.extra_json).map_err(|e| {
                        RegistryError::Invalid(format!(
                            "the catalog holds unreadable record columns in dimension {name:?}: {e}"
                        ))
                    })?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Dimension {
            version: v,
            body,
            records,
        })
    }

    // --- mappings ---------------------------------------------------------------------

    /// Creates a mapping (version 1), validated against the current versions of its two
    /// dimensions.
    pub async fn create_mapping(&self, input: &MappingInput<'_>) -> Result<ComponentVersion> {
        check_name("mapping", input.name)?;
        let (Some(from), Some(to)) = (input.from, input.to) else {
            return Err(RegistryError::Invalid(format!(
                "mapping {:?} needs the dimensions it maps: --from DIMENSION --to DIMENSION",
                input.name
            )));
        };
        if let Some(existing) = self
            .registry_store()
            .component(ComponentKind::Mapping, input.name)
            .await?
        {
            return Err(RegistryError::Invalid(format!(
                "mapping {:?} already exists (version {}); change its rows with tarn mapping update",
                input.name, existing.head_version
            )));
        }
        let new = self
            .mapping_version(input, from, to, input.disaggregation, None)
            .await?;
        Ok(self.registry_store().put_component_version(new).await?)
    }

    /// Replaces a mapping's rows, validated against the current versions of its dimensions.
    pub async fn update_mapping(&self, input: &MappingInput<'_>) -> Result<UpdateOutcome> {
        let current = self.mapping(input.name, None).await?;
        for (given, kept, side) in [
            (input.from, &current.body.from.name, "from"),
            (input.to, &current.body.to.name, "to"),
        ] {
            if let Some(g) = given
                && g != kept
            {
                return Err(RegistryError::Invalid(format!(
                    "mapping {:?} maps {side} dimension {kept:?}; a mapping keeps its dimensions (create another mapping for {g:?})",
                    input.name
                )));
            }
        }
        if input.message.is_none_or(|m| m.trim().is_empty()) {
            return Err(RegistryError::Invalid(format!(
                "updating mapping {:?} needs a message (--message) saying what changed",
                input.name
            )));
        }
        let new = self
            .mapping_version(
                input,
                &current.body.from.name,
                &current.body.to.name,
                input.disaggregation || current.body.disaggregation,
                Some(current.version.version),
            )
            .await?;
        if new.mapping_rows.len() == current.rows.len()
            && new.mapping_rows.iter().zip(&current.rows).all(|(a, b)| {
                a.from_id == b.from_id && a.to_id == b.to_id && a.fraction == b.fraction
            })
            && new.body_json == current.version.body_json
        {
            return Ok(UpdateOutcome {
                version: None,
                stale: Vec::new(),
            });
        }
        let version = self.registry_store().put_component_version(new).await?;
        let stale = self
            .stale_dependents(ComponentKind::Mapping, input.name, version.version)
            .await?;
        Ok(UpdateOutcome {
            version: Some(version),
            stale,
        })
    }

    async fn mapping_version(
        &self,
        input: &MappingInput<'_>,
        from: &str,
        to: &str,
        disaggregation: bool,
        base_version: Option<u64>,
    ) -> Result<NewComponentVersion> {
        if from == to {
            return Err(RegistryError::Invalid(format!(
                "mapping {:?} maps dimension {from:?} to itself, a cycle; a mapping joins two different dimensions",
                input.name
            )));
        }
        let from_dim = self.dimension(from, None).await?;
        let to_dim = self.dimension(to, None).await?;
        let mut rows = read_mapping_rows(
            input.records,
            input.from_column,
            input.to_column,
            input.fraction_column,
        )?;
        validate_mapping(input.name, &from_dim, &to_dim, &mut rows, disaggregation)?;
        let body = MappingBody {
            from: Pinned {
                name: from.to_string(),
                version: from_dim.version.version,
            },
            to: Pinned {
                name: to.to_string(),
                version: to_dim.version.version,
            },
            disaggregation,
            rows: rows.len() as u64,
        };
        Ok(NewComponentVersion {
            kind: ComponentKind::Mapping,
            name: input.name.to_string(),
            base_version,
            author: author(),
            message: input.message.map(str::to_string).unwrap_or_else(|| {
                format!(
                    "{} rows, {from} v{} -> {to} v{}",
                    rows.len(),
                    body.from.version,
                    body.to.version
                )
            }),
            body_json: to_json(&body)?,
            records: Vec::new(),
            mapping_rows: rows
                .iter()
                .map(|r| tarn::registry_store::MappingRow {
                    from_id: r.from_id.clone(),
                    to_id: r.to_id.clone(),
                    fraction: r.fraction,
                })
                .collect(),
            dependencies: vec![
                DependencyTarget {
                    kind: ComponentKind::Dimension.as_str().into(),
                    name: from.into(),
                    version: body.from.version,
                },
                DependencyTarget {
                    kind: ComponentKind::Dimension.as_str().into(),
                    name: to.into(),
                    version: body.to.version,
                },
            ],
        })
    }

    /// A mapping version (the head when `version` is `None`) with its rows.
    pub async fn mapping(&self, name: &str, version: Option<u64>) -> Result<Mapping> {
        let v = self
            .version_of(ComponentKind::Mapping, name, version)
            .await?;
        let body: MappingBody = body(&v)?;
        let rows = self
            .registry_store()
            .mapping_rows(v.component_id, v.version)
            .await?
            .into_iter()
            .map(|r| MappingRow {
                from_id: r.from_id,
                to_id: r.to_id,
                fraction: r.fraction,
            })
            .collect();
        Ok(Mapping {
            version: v,
            body,
            rows,
        })
    }

    // --- history and dependencies -----------------------------------------------------

    /// Every version of a component, newest first.
    pub async fn history(&self, kind: ComponentKind, name: &str) -> Result<Vec<ComponentVersion>> {
        let history = self.registry_store().component_history(kind, name).await?;
        if history.is_empty() {
            return Err(not_found(kind, name, None));
        }
        Ok(history)
    }

    /// The components whose latest version depends on `kind:name` (at `version`, else at
    /// any version).
    pub async fn dependents(
        &self,
        kind: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<Vec<Dependent>> {
        Ok(self
            .registry_store()
            .dependents(kind, name, version)
            .await?
            .into_iter()
            .filter(|d| d.version == d.head_version)
            .collect())
    }

    /// The dependents of a component named as `tarn registry dependents` takes it:
    /// `KIND:NAME[:vN]` (a project, dimension or mapping) or `dataset:NAME[@BRANCH][:vN]`
    /// (a dataset's registrations; the branch defaults to `main`).
    pub async fn dependents_of(&self, component: &str) -> Result<Vec<Dependent>> {
        let (kind, name, version) = match component.strip_prefix("dataset:") {
            Some(rest) => {
                let (name, version) = match rest.rsplit_once(':') {
                    Some((n, v)) => (
                        n.to_string(),
                        Some(v.trim_start_matches('v').parse::<u64>().map_err(|_| {
                            RegistryError::Invalid(format!(
                                "{component:?}: a dataset version is vN"
                            ))
                        })?),
                    ),
                    None => (rest.to_string(), None),
                };
                let name = if name.contains('@') {
                    name
                } else {
                    format!("{name}@main")
                };
                ("dataset".to_string(), name, version)
            }
            None => {
                let r = ComponentRef::parse(component)?;
                let v = self
                    .resolve(&ComponentRef {
                        version: None,
                        ..r.clone()
                    })
                    .await?;
                (v.kind.as_str().to_string(), v.name, r.version)
            }
        };
        self.dependents(&kind, &name, version).await
    }

    /// The components whose latest version depends on a version of `kind:name` older than
    /// `current`: what must be updated or re-validated.
    pub async fn stale_dependents(
        &self,
        kind: ComponentKind,
        name: &str,
        current: u64,
    ) -> Result<Vec<Dependent>> {
        Ok(self
            .dependents(kind.as_str(), name, None)
            .await?
            .into_iter()
            .filter(|d| d.target.version < current)
            .collect())
    }
}

/// Checks a mapping's rows against its dimensions' records; sorts the rows.
fn validate_mapping(
    name: &str,
    from: &Dimension,
    to: &Dimension,
    rows: &mut [MappingRow],
    disaggregation: bool,
) -> Result<()> {
    let from_ids: BTreeSet<&str> = from.records.iter().map(|r| r.id.as_str()).collect();
    let to_ids: BTreeSet<&str> = to.records.iter().map(|r| r.id.as_str()).collect();
    let fail = |what: String| Err(RegistryError::Invalid(format!("mapping {name:?}: {what}")));
    let unknown = |ids: &BTreeSet<&str>, side: fn(&MappingRow) -> &str| -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rows.iter() {
            if !ids.contains(side(r)) {
                *counts.entry(side(r)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|(id, n)| format!("{} ({n} row{})", Id(id), if n == 1 { "" } else { "s" }))
            .collect()
    };
    let bad_from = unknown(&from_ids, |r| &r.from_id);
    if !bad_from.is_empty() {
        return fail(format!(
            "{} from id(s) are no record of dimension {:?} v{}: {}",
            bad_from.len(),
            from.version.name,
            from.version.version,
            Listing(&bad_from)
        ));
    }
    let bad_to = unknown(&to_ids, |r| &r.to_id);
    if !bad_to.is_empty() {
        return fail(format!(
            "{} to id(s) are no record of dimension {:?} v{}: {}",
            bad_to.len(),
            to.version.name,
            to.version.version,
            Listing(&bad_to)
        ));
    }
    rows.sort_by(|a, b| (&a.from_id, &a.to_id).cmp(&(&b.from_id, &b.to_id)));
    let duplicates: Vec<String> = rows
        .windows(2)
        .filter(|w| w[0].from_id == w[1].from_id && w[0].to_id == w[1].to_id)
        .map(|w| format!("{} -> {}", Id(&w[0].from_id), Id(&w[0].to_id)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !duplicates.is_empty() {
        return fail(format!(
            "{} pair(s) appear more than once: {}",
            duplicates.len(),
            Listing(&duplicates)
        ));
    }
    let mapped: BTreeSet<&str> = rows.iter().map(|r| r.from_id.as_str()).collect();
    let unmapped: Vec<Id> = from_ids
        .iter()
        .filter(|id| !mapped.contains(*id))
        .map(|id| Id(id))
        .collect();
    if !unmapped.is_empty() {
        return fail(format!(
            "{} record(s) of dimension {:?} v{} are not mapped: {}",
            unmapped.len(),
            from.version.name,
            from.version.version,
            Listing(&unmapped)
        ));
    }
    if !disaggregation {
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for r in rows.iter() {
            *sums.entry(r.from_id.as_str()).or_default() += r.fraction;
        }
        let off: Vec<String> = sums
            .iter()
            .filter(|(_, s)| (**s - 1.0).abs() > FRACTION_TOLERANCE)
            .map(|(id, s)| format!("{} (sum {s})", Id(id)))
            .collect();
        if !off.is_empty() {
            return fail(format!(
                "the fractions of {} from id(s) do not sum to 1 (an aggregation maps each record whole; declare a mapping that splits records with --disaggregation): {}",
                off.len(),
                Listing(&off)
            ));
        }
    }
    Ok(())
}
