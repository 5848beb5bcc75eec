//! Registering a dataset to a project: every value of each dimension column must be a
//! record of its dimension. The registration pins what it validated: the dataset's
//! snapshot, the project version and every dimension version.

use crate::error::{Id, Listing, RegistryError, Result};
use crate::{Pinned, Registry, author, body, registration_name, to_json};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tarn::registry_store::{
    ComponentKind, ComponentVersion, DependencyTarget, NewComponentVersion,
};

/// A registration version, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationBody {
    pub project: Pinned,
    pub dataset: String,
    pub branch: String,
    pub dataset_version: u64,
    /// The snapshot validated, as a URI that names exactly it.
    pub uri: String,
    /// Each dimension column and the dimension version its values were checked against.
    pub columns: BTreeMap<String, Pinned>,
    pub rows: u64,
}

/// A registration version.
#[derive(Debug, Clone)]
pub struct Registration {
    pub version: ComponentVersion,
    pub body: RegistrationBody,
}

/// What `register_dataset` did.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    pub registration: Registration,
    /// False when the same snapshot was already registered against the same versions.
    pub changed: bool,
}

/// The values of one column that are no record of its dimension, with their row counts
/// (`None` is null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingValues {
    pub column: String,
    pub dimension: Pinned,
    pub values: Vec<(Option<String>, u64)>,
}

/// Quotes a SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Registry {
    pub async fn registration(
        &self,
        project: &str,
        dataset: &str,
        version: Option<u64>,
    ) -> Result<Registration> {
        let name = registration_name(project, dataset);
        let v = self
            .version_of(ComponentKind::Registration, &name, version)
            .await?;
        let body = body(&v)?;
        Ok(Registration { version: v, body })
    }

    /// The datasets registered to `project` (their latest registrations).
    pub async fn registrations(&self, project: &str) -> Result<Vec<Registration>> {
        let prefix = format!("{project}/");
        let mut out = Vec::new();
        for c in self.components(Some(ComponentKind::Registration)).await? {
            if let Some(dataset) = c.name.strip_prefix(&prefix) {
                out.push(self.registration(project, dataset, None).await?);
            }
        }
        Ok(out)
    }

    /// Validates the snapshot `uri` names against the dimensions of `project` and records
    /// the registration: a new version, unless this exact snapshot is already registered
    /// against the same versions.
    pub async fn register_dataset(
        &self,
        project: &str,
        uri: &str,
        columns: &[(String, String)],
        message: Option<&str>,
    ) -> Result<RegisterOutcome> {
        let project = match self.project(project, None).await {
            Ok(p) => p,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound(format!(
                    "project {project:?} does not exist (tarn project ls lists them); create it before registering datasets to it"
                )));
            }
            Err(e) => return Err(e),
        };
        let project_name = project.version.name.clone();
        if columns.is_empty() {
            return Err(RegistryError::Invalid(
                "a registration names the dimension of at least one column: --dimension COLUMN=DIMENSION"
                    .into(),
            ));
        }
        let snapshot = self.lake().snapshot(uri).await?;
        let schema = snapshot.schema().clone();
        let mut pinned_columns = BTreeMap::new();
        for (column, dimension) in columns {
            if pinned_columns.contains_key(column) {
                return Err(RegistryError::Invalid(format!(
                    "column {column:?} is given twice"
                )));
            }
            let field = schema.field_with_name(column).map_err(|_| {
                RegistryError::Invalid(format!(
                    "dataset {} has no column {column:?}; its columns are {}",
                    snapshot.name(),
                    Listing(
                        &schema
                            .fields()
                            .iter()
                            .map(|f| Id(f.name()))
                            .collect::<Vec<_>>()
                    )
                ))
            })?;
            if !arrow::compute::can_cast_types(field.data_type(), &DataType::Utf8) {
                return Err(RegistryError::Invalid(format!(
                    "column {column:?} is of type {}, which cannot hold record ids",
                    field.data_type()
                )));
            }
            let Some(pinned) = project.body.dimension(dimension) else {
                return Err(RegistryError::NotFound(format!(
                    "project {project_name:?} has no dimension {dimension:?}; its dimensions are {}",
                    Listing(
                        &project
                            .body
                            .dimensions
                            .iter()
                            .map(|d| Id(&d.name))
                            .collect::<Vec<_>>()
                    )
                )));
            };
            pinned_columns.insert(column.clone(), pinned.clone());
        }
        let snapshot_uri = snapshot.uri().to_string();
        let body = RegistrationBody {
            project: Pinned {
                name: project_name.clone(),
                version: project.version.version,
            },
            dataset: snapshot.name().to_string(),
            branch: snapshot.branch_name().to_string(),
            dataset_version: snapshot.version(),
            uri: snapshot_uri.clone(),
            columns: pinned_columns.clone(),
            rows: snapshot.rows(),
        };
        let name = registration_name(&project_name, snapshot.name().as_str());
        let existing = self
            .lake()
            .registry_store()
            .component(ComponentKind::Registration, &name)
            .await?;
        if existing.is_some() {
            let current = self
                .registration(&project_name, snapshot.name().as_str(), None)
                .await?;
            if current.body == body {
                return Ok(RegisterOutcome {
                    registration: current,
                    changed: false,
                });
            }
        }
        let missing = self.missing_values(&snapshot_uri, &pinned_columns).await?;
        if !missing.is_empty() {
            let text: Vec<String> = missing
                .iter()
                .map(|m| {
                    let values: Vec<String> = m
                        .values
                        .iter()
                        .map(|(v, n)| {
                            format!(
                                "{} ({n} row{})",
                                v.as_deref()
                                    .map_or("null".to_string(), |v| Id(v).to_string()),
                                if *n == 1 { "" } else { "s" }
                            )
                        })
                        .collect();
                    format!(
                        "column {:?}: {} value(s) are no record of dimension {:?} v{}: {}",
                        m.column,
                        m.values.len(),
                        m.dimension.name,
                        m.dimension.version,
                        Listing(&values)
                    )
                })
                .collect();
            return Err(RegistryError::Invalid(format!(
                "{snapshot_uri} cannot be registered to project {project_name:?}: {}",
                text.join("; ")
            )));
        }
        let mut dependencies = vec![
            DependencyTarget {
                kind: ComponentKind::Project.as_str().into(),
                name: project_name.clone(),
                version: project.version.version,
            },
            DependencyTarget {
                kind: "dataset".into(),
                name: format!("{}@{}", body.dataset, body.branch),
                version: body.dataset_version,
            },
        ];
        let dims: BTreeSet<&Pinned> = pinned_columns.values().collect();
        dependencies.extend(dims.into_iter().map(|d| DependencyTarget {
            kind: ComponentKind::Dimension.as_str().into(),
            name: d.name.clone(),
            version: d.version,
        }));
        let version = self
            .lake()
            .registry_store()
            .put_component_version(NewComponentVersion {
                kind: ComponentKind::Registration,
                name,
                base_version: existing.map(|c| c.head_version),
                author: author(),
                message: message
                    .filter(|m| !m.trim().is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("validated {snapshot_uri} ({} rows)", body.rows)),
                body_json: to_json(&body)?,
                records: Vec::new(),
                mapping_rows: Vec::new(),
                dependencies,
            })
            .await?;
        Ok(RegisterOutcome {
            registration: Registration { version, body },
            changed: true,
        })
    }

    /// For each column, the values of the snapshot that are no record of its dimension.
    /// One grouped scan per column, decoding only that column.
    pub async fn missing_values(
        &self,
        uri: &str,
        columns: &BTreeMap<String, Pinned>,
    ) -> Result<Vec<MissingValues>> {
        let session = tarn_query::QuerySession::new(self.lake(), None).await?;
        let mut out = Vec::new();
        for (column, dimension) in columns {
            let records = self
                .dimension(&dimension.name, Some(dimension.version))
                .await?;
            let ids: BTreeSet<&str> = records.records.iter().map(|r| r.id.as_str()).collect();
            let sql = format!(
                "SELECT CAST({c} AS VARCHAR) AS v, count(*) AS n FROM tarn({u}) GROUP BY {c}",
                c = ident(column),
                u = literal(uri)
            );
            let batches = session
                .sql(&sql, Vec::new())
                .await?
                .collect()
                .await
                .map_err(tarn_query::QueryError::from_datafusion)?;
            let mut values = Vec::new();
            for b in &batches {
                let v = arrow::compute::cast(b.column(0), &DataType::Utf8)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                let v = v.as_string::<i32>();
                let n = b.column(1).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    let value = (!v.is_null(i)).then(|| v.value(i));
                    if value.is_none_or(|v| !ids.contains(v)) {
                        values.push((value.map(str::to_string), n.value(i) as u64));
                    }
                }
            }
            if !values.is_empty() {
                values.sort();
                out.push(MissingValues {
                    column: column.clone(),
                    dimension: dimension.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }
}
