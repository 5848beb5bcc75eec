//! The registry in the PostgreSQL catalog (docs/design/0005): dimensions, mappings, projects
//! and registrations, versioned. A new version is one transaction that takes a lake commit
//! under the clock lock and checks its preconditions inside it; its records, mapping rows
//! and dependencies go in from arrays, one statement each whatever their number. Reads are
//! plain index lookups.

use super::{Session, is_unique_violation, micros_to_time, time_at, u64_at};
use crate::error::{CatalogError, Result};
use crate::model::{
    ComponentKind, ComponentRecord, ComponentVersion, DependencyTarget, Dependent,
    DimensionRecordRow, MappingRow, NewComponentVersion,
};
use tokio_postgres::Row;

pub(super) use crate::model::check_shape;

fn kind_at(r: &Row, i: usize) -> Result<ComponentKind> {
    let s: String = r.try_get(i)?;
    ComponentKind::parse(&s)
        .ok_or_else(|| CatalogError::Corrupt(format!("unknown component kind {s:?}")))
}

const COMPONENT_COLUMNS: &str = "id, kind, name, head_version";

fn component_from_row(r: &Row) -> Result<ComponentRecord> {
    Ok(ComponentRecord {
        id: r.try_get(0)?,
        kind: kind_at(r, 1)?,
        name: r.try_get(2)?,
        head_version: u64_at(r, 3)?,
    })
}

const VERSION_COLUMNS: &str =
    "c.id, c.kind, c.name, v.version, v.commit_id, m.ts_micros, v.author, v.message, v.body_json";

const VERSION_FROM: &str = "registry_components c \
     JOIN registry_versions v ON v.component_id = c.id \
     JOIN commits m ON m.id = v.commit_id";

fn version_from_row(r: &Row) -> Result<ComponentVersion> {
    Ok(ComponentVersion {
        component_id: r.try_get(0)?,
        kind: kind_at(r, 1)?,
        name: r.try_get(2)?,
        version: u64_at(r, 3)?,
        commit_id: r.try_get(4)?,
        timestamp: time_at(r, 5)?,
        author: r.try_get(6)?,
        message: r.try_get(7)?,
        body_json: r.try_get(8)?,
    })
}

pub(super) async fn load_component(
    s: &mut Session,
    kind: ComponentKind,
    name: &str,
) -> Result<Option<ComponentRecord>> {
    s.query_opt(
        &format!(
            "SELECT {COMPONENT_COLUMNS} FROM registry_components WHERE kind = $1 AND name = $2"
        ),
        &[&kind.as_str(), &name],
    )
    .await?
    .map(|r| component_from_row(&r))
    .transpose()
}

pub(super) async fn components(
    s: &mut Session,
    kind: Option<ComponentKind>,
) -> Result<Vec<ComponentRecord>> {
    // `kind` orders as its text does (COLLATE "C"), so the (kind, name) unique index gives
    // the order.
    s.query(
        &format!(
            "SELECT {COMPONENT_COLUMNS} FROM registry_components \
             WHERE $1::text IS NULL OR kind = $1 ORDER BY kind, name"
        ),
        &[&kind.map(ComponentKind::as_str)],
    )
    .await?
    .iter()
    .map(component_from_row)
    .collect()
}

pub(super) async fn component_version(
    s: &mut Session,
    kind: ComponentKind,
    name: &str,
    version: Option<u64>,
) -> Result<Option<ComponentVersion>> {
    s.query_opt(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} \
             WHERE c.kind = $1 AND c.name = $2 AND v.version = coalesce($3, c.head_version)"
        ),
        &[&kind.as_str(), &name, &version.map(|v| v as i64)],
    )
    .await?
    .map(|r| version_from_row(&r))
    .transpose()
}

pub(super) async fn history(
    s: &mut Session,
    kind: ComponentKind,
    name: &str,
) -> Result<Vec<ComponentVersion>> {
    s.query(
        &format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} \
             WHERE c.kind = $1 AND c.name = $2 ORDER BY v.version DESC"
        ),
        &[&kind.as_str(), &name],
    )
    .await?
    .iter()
    .map(version_from_row)
    .collect()
}

pub(super) async fn dimension_records(
    s: &mut Session,
    component_id: i64,
    version: u64,
) -> Result<Vec<DimensionRecordRow>> {
    s.query(
        "SELECT id, name, extra_json FROM dimension_records \
         WHERE component_id = $1 AND version = $2 ORDER BY id",
        &[&component_id, &(version as i64)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(DimensionRecordRow {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            extra_json: r.try_get(2)?,
        })
    })
    .collect()
}

pub(super) async fn mapping_rows(
    s: &mut Session,
    component_id: i64,
    version: u64,
) -> Result<Vec<MappingRow>> {
    s.query(
        "SELECT from_id, to_id, fraction FROM mapping_rows \
         WHERE component_id = $1 AND version = $2 ORDER BY from_id, to_id",
        &[&component_id, &(version as i64)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(MappingRow {
            from_id: r.try_get(0)?,
            to_id: r.try_get(1)?,
            fraction: r.try_get(2)?,
        })
    })
    .collect()
}

pub(super) async fn dependencies(
    s: &mut Session,
    component_id: i64,
    version: u64,
) -> Result<Vec<DependencyTarget>> {
    s.query(
        "SELECT target_kind, target_name, target_version FROM registry_dependencies \
         WHERE component_id = $1 AND version = $2 ORDER BY target_kind, target_name",
        &[&component_id, &(version as i64)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(DependencyTarget {
            kind: r.try_get(0)?,
            name: r.try_get(1)?,
            version: u64_at(r, 2)?,
        })
    })
    .collect()
}

/// The dependents of a target, at one version of it or at any: a seek on the
/// `registry_dependents` index by `(target_kind, target_name[, target_version])`, which also
/// holds the dependency's key, then one lookup of each dependent's component.
pub(super) const DEPENDENTS_ANY_VERSION: &str = "SELECT c.kind, c.name, d.version, c.head_version, \
     d.target_kind, d.target_name, d.target_version \
     FROM registry_dependencies d \
     JOIN registry_components c ON c.id = d.component_id \
     WHERE d.target_kind = $1 AND d.target_name = $2 \
     ORDER BY c.kind, c.name, d.version";

pub(super) const DEPENDENTS_AT_VERSION: &str = "SELECT c.kind, c.name, d.version, c.head_version, \
     d.target_kind, d.target_name, d.target_version \
     FROM registry_dependencies d \
     JOIN registry_components c ON c.id = d.component_id \
     WHERE d.target_kind = $1 AND d.target_name = $2 AND d.target_version = $3 \
     ORDER BY c.kind, c.name, d.version";

pub(super) async fn dependents(
    s: &mut Session,
    target_kind: &str,
    target_name: &str,
    target_version: Option<u64>,
) -> Result<Vec<Dependent>> {
    let rows = match target_version {
        None => {
            s.query(DEPENDENTS_ANY_VERSION, &[&target_kind, &target_name])
                .await?
        }
        Some(v) => {
            s.query(
                DEPENDENTS_AT_VERSION,
                &[&target_kind, &target_name, &(v as i64)],
            )
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(Dependent {
                kind: kind_at(r, 0)?,
                name: r.try_get(1)?,
                version: u64_at(r, 2)?,
                head_version: u64_at(r, 3)?,
                target: DependencyTarget {
                    kind: r.try_get(4)?,
                    name: r.try_get(5)?,
                    version: u64_at(r, 6)?,
                },
            })
        })
        .collect()
}

fn refused(msg: String) -> CatalogError {
    CatalogError::Refused(msg)
}

/// Writes a component version (see [`crate::RegistryStore::put_component_version`]); the
/// request's own checks were made before the call.
pub(super) async fn put_version(
    s: &mut Session,
    v: NewComponentVersion,
) -> Result<ComponentVersion> {
    let (commit_id, now) = s.begin_commit().await?;
    let existing = load_component(s, v.kind, &v.name).await?;
    let version = match (&existing, v.base_version) {
        (None, None) => 1,
        (Some(c), None) => {
            return Err(CatalogError::ComponentExists {
                kind: v.kind,
                name: v.name,
                head_version: c.head_version,
            });
        }
        (None, Some(_)) => {
            return Err(CatalogError::ComponentNotFound {
                kind: v.kind,
                name: v.name,
            });
        }
        (Some(c), Some(base)) if c.head_version != base => {
            return Err(CatalogError::ComponentConflict {
                kind: v.kind,
                name: v.name,
                expected: base,
                actual: c.head_version,
            });
        }
        (Some(c), Some(_)) => c.head_version + 1,
    };
    // Dependencies on registry components must name versions that exist: the first one
    // that does not, in the request's order, is the refusal (one statement for all).
    let targets: Vec<&DependencyTarget> = v
        .dependencies
        .iter()
        .filter(|d| d.kind != DependencyTarget::DATASET)
        .collect();
    if !targets.is_empty() {
        let kinds: Vec<&str> = targets.iter().map(|d| d.kind.as_str()).collect();
        let names: Vec<&str> = targets.iter().map(|d| d.name.as_str()).collect();
        let versions: Vec<i64> = targets.iter().map(|d| d.version as i64).collect();
        let missing = s
            .query_opt(
                "SELECT t.n FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                 WITH ORDINALITY AS t(kind, name, version, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM registry_components c \
                   JOIN registry_versions rv ON rv.component_id = c.id \
                   WHERE c.kind = t.kind AND c.name = t.name AND rv.version = t.version) \
                 ORDER BY t.n LIMIT 1",
                &[&kinds, &names, &versions],
            )
            .await?;
        if let Some(r) = missing {
            let n: i64 = r.try_get(0)?;
            let d = targets
                .get((n - 1) as usize)
                .ok_or_else(|| CatalogError::Corrupt(format!("dependency {n} out of range")))?;
            return Err(refused(format!(
                "{} {:?} depends on {} {:?} version {}, which does not exist",
                v.kind, v.name, d.kind, d.name, d.version
            )));
        }
    }
    let component_id = match &existing {
        None => {
            let inserted = s
                .query_one(
                    "INSERT INTO registry_components (kind, name, head_version) \
                     VALUES ($1, $2, 1) RETURNING id",
                    &[&v.kind.as_str(), &v.name],
                )
                .await;
            match inserted {
                // The clock lock makes a concurrent creator impossible; were it not, it won.
                Err(e) if is_unique_violation(&e, "registry_components_kind_name_key") => {
                    return Err(CatalogError::ComponentExists {
                        kind: v.kind,
                        name: v.name,
                        head_version: 1,
                    });
                }
                other => other?.try_get(0)?,
            }
        }
        Some(c) => {
            // The head was read in this transaction; the guard keeps the update exclusive
            // even if that read ever moves out of it.
            let moved = s
                .execute(
                    "UPDATE registry_components SET head_version = $1 \
                     WHERE id = $2 AND head_version = $3",
                    &[&(version as i64), &c.id, &(c.head_version as i64)],
                )
                .await?;
            if moved != 1 {
                let actual = load_component(s, v.kind, &c.name)
                    .await?
                    .map_or(0, |c| c.head_version);
                return Err(CatalogError::ComponentConflict {
                    kind: v.kind,
                    name: v.name,
                    expected: c.head_version,
                    actual,
                });
            }
            c.id
        }
    };
    let version_i = version as i64;
    s.execute(
        "INSERT INTO registry_versions (component_id, version, commit_id, author, message, body_json) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&component_id, &version_i, &commit_id, &v.author, &v.message, &v.body_json],
    )
    .await?;
    if !v.records.is_empty() {
        let ids: Vec<&str> = v.records.iter().map(|r| r.id.as_str()).collect();
        let names: Vec<&str> = v.records.iter().map(|r| r.name.as_str()).collect();
        let extras: Vec<&str> = v.records.iter().map(|r| r.extra_json.as_str()).collect();
        s.execute(
            "INSERT INTO dimension_records (component_id, version, id, name, extra_json) \
             SELECT $1::bigint, $2::bigint, * FROM unnest($3::text[], $4::text[], $5::text[])",
            &[&component_id, &version_i, &ids, &names, &extras],
        )
        .await?;
    }
    if !v.mapping_rows.is_empty() {
        let from: Vec<&str> = v.mapping_rows.iter().map(|r| r.from_id.as_str()).collect();
        let to: Vec<&str> = v.mapping_rows.iter().map(|r| r.to_id.as_str()).collect();
        let fractions: Vec<f64> = v.mapping_rows.iter().map(|r| r.fraction).collect();
        s.execute(
            "INSERT INTO mapping_rows (component_id, version, from_id, to_id, fraction) \
             SELECT $1::bigint, $2::bigint, * FROM unnest($3::text[], $4::text[], $5::float8[])",
            &[&component_id, &version_i, &from, &to, &fractions],
        )
        .await?;
    }
    if !v.dependencies.is_empty() {
        let kinds: Vec<&str> = v.dependencies.iter().map(|d| d.kind.as_str()).collect();
        let names: Vec<&str> = v.dependencies.iter().map(|d| d.name.as_str()).collect();
        let versions: Vec<i64> = v.dependencies.iter().map(|d| d.version as i64).collect();
        s.execute(
            "INSERT INTO registry_dependencies \
             (component_id, version, target_kind, target_name, target_version) \
             SELECT $1::bigint, $2::bigint, * FROM unnest($3::text[], $4::text[], $5::bigint[])",
            &[&component_id, &version_i, &kinds, &names, &versions],
        )
        .await?;
    }
    s.commit().await?;
    Ok(ComponentVersion {
        component_id,
        kind: v.kind,
        name: v.name,
        version,
        commit_id,
        timestamp: micros_to_time(now),
        author: v.author,
        message: v.message,
        body_json: v.body_json,
    })
}
