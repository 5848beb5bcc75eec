//! The registry in the SQLite catalog (docs/design/0005): dimensions, mappings, projects and
//! registrations, versioned. A new version is one `BEGIN IMMEDIATE` transaction that takes a
//! lake commit and checks its preconditions inside it; reads are plain index lookups.

use super::{SqliteCatalog, micros_to_time, new_commit};
use crate::error::{CatalogError, Result};
use crate::model::{
    ComponentKind, ComponentRecord, ComponentVersion, DependencyTarget, Dependent,
    DimensionRecordRow, MappingRow, NewComponentVersion,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

fn kind_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<ComponentKind> {
    let s: String = r.get(i)?;
    ComponentKind::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown component kind {s:?}").into(),
        )
    })
}

fn u64_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)? as u64)
}

const COMPONENT_COLUMNS: &str = "id, kind, name, head_version";

fn component_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentRecord> {
    Ok(ComponentRecord {
        id: r.get(0)?,
        kind: kind_at(r, 1)?,
        name: r.get(2)?,
        head_version: u64_at(r, 3)?,
    })
}

const VERSION_COLUMNS: &str =
    "c.id, c.kind, c.name, v.version, v.commit_id, m.ts_micros, v.author, v.message, v.body_json";

const VERSION_FROM: &str = "registry_components c \
     JOIN registry_versions v ON v.component_id = c.id \
     JOIN commits m ON m.id = v.commit_id";

fn version_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ComponentVersion> {
    Ok(ComponentVersion {
        component_id: r.get(0)?,
        kind: kind_at(r, 1)?,
        name: r.get(2)?,
        version: u64_at(r, 3)?,
        commit_id: r.get(4)?,
        timestamp: micros_to_time(r.get(5)?),
        author: r.get(6)?,
        message: r.get(7)?,
        body_json: r.get(8)?,
    })
}

pub(super) fn load_component(
    conn: &Connection,
    kind: ComponentKind,
    name: &str,
) -> Result<Option<ComponentRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM registry_components WHERE kind = ?1 AND name = ?2"
        ))?
        .query_row(params![kind.as_str(), name], component_from_row)
        .optional()?)
}

pub(super) fn components(
    conn: &Connection,
    kind: Option<ComponentKind>,
) -> Result<Vec<ComponentRecord>> {
    // `kind` orders as its text does, so the (kind, name) unique index gives the order.
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM registry_components \
             WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, name"
        ))?
        .query_map([kind.map(ComponentKind::as_str)], component_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub(super) fn component_version(
    conn: &Connection,
    kind: ComponentKind,
    name: &str,
    version: Option<u64>,
) -> Result<Option<ComponentVersion>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} \
             WHERE c.kind = ?1 AND c.name = ?2 AND v.version = coalesce(?3, c.head_version)"
        ))?
        .query_row(
            params![kind.as_str(), name, version.map(|v| v as i64)],
            version_from_row,
        )
        .optional()?)
}

pub(super) fn history(
    conn: &Connection,
    kind: ComponentKind,
    name: &str,
) -> Result<Vec<ComponentVersion>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} \
             WHERE c.kind = ?1 AND c.name = ?2 ORDER BY v.version DESC"
        ))?
        .query_map(params![kind.as_str(), name], version_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub(super) fn dimension_records(
    conn: &Connection,
    component_id: i64,
    version: u64,
) -> Result<Vec<DimensionRecordRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, name, extra_json FROM dimension_records \
             WHERE component_id = ?1 AND version = ?2 ORDER BY id",
        )?
        .query_map(params![component_id, version as i64], |r| {
            Ok(DimensionRecordRow {
                id: r.get(0)?,
                name: r.get(1)?,
                extra_json: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(super) fn mapping_rows(
    conn: &Connection,
    component_id: i64,
    version: u64,
) -> Result<Vec<MappingRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT from_id, to_id, fraction FROM mapping_rows \
             WHERE component_id = ?1 AND version = ?2 ORDER BY from_id, to_id",
        )?
        .query_map(params![component_id, version as i64], |r| {
            Ok(MappingRow {
                from_id: r.get(0)?,
                to_id: r.get(1)?,
                fraction: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(super) fn dependencies(
    conn: &Connection,
    component_id: i64,
    version: u64,
) -> Result<Vec<DependencyTarget>> {
    Ok(conn
        .prepare_cached(
            "SELECT target_kind, target_name, target_version FROM registry_dependencies \
             WHERE component_id = ?1 AND version = ?2 ORDER BY target_kind, target_name",
        )?
        .query_map(params![component_id, version as i64], |r| {
            Ok(DependencyTarget {
                kind: r.get(0)?,
                name: r.get(1)?,
                version: u64_at(r, 2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The dependents of a target, at one version of it or at any: a seek on the
/// `registry_dependents` index by `(target_kind, target_name[, target_version])`, which also
/// holds the dependency's primary key, then one lookup of each dependent's component.
const DEPENDENTS_ANY_VERSION: &str = "SELECT c.kind, c.name, d.version, c.head_version, \
     d.target_kind, d.target_name, d.target_version \
     FROM registry_dependencies d \
     JOIN registry_components c ON c.id = d.component_id \
     WHERE d.target_kind = ?1 AND d.target_name = ?2 \
     ORDER BY c.kind, c.name, d.version";

const DEPENDENTS_AT_VERSION: &str = "SELECT c.kind, c.name, d.version, c.head_version, \
     d.target_kind, d.target_name, d.target_version \
     FROM registry_dependencies d \
     JOIN registry_components c ON c.id = d.component_id \
     WHERE d.target_kind = ?1 AND d.target_name = ?2 AND d.target_version = ?3 \
     ORDER BY c.kind, c.name, d.version";

pub(super) fn dependents(
    conn: &Connection,
    target_kind: &str,
    target_name: &str,
    target_version: Option<u64>,
) -> Result<Vec<Dependent>> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok(Dependent {
            kind: kind_at(r, 0)?,
            name: r.get(1)?,
            version: u64_at(r, 2)?,
            head_version: u64_at(r, 3)?,
            target: DependencyTarget {
                kind: r.get(4)?,
                name: r.get(5)?,
                version: u64_at(r, 6)?,
            },
        })
    };
    let rows = match target_version {
        None => conn
            .prepare_cached(DEPENDENTS_ANY_VERSION)?
            .query_map(params![target_kind, target_name], map)?
            .collect::<rusqlite::Result<_>>()?,
        Some(v) => conn
            .prepare_cached(DEPENDENTS_AT_VERSION)?
            .query_map(params![target_kind, target_name, v as i64], map)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// The plan SQLite chose for [`crate::RegistryStore::dependents`], at one target version or
/// at any: for tests and for checking by hand that it seeks the `registry_dependents` index.
pub fn dependents_query_plan(catalog: &SqliteCatalog, any_version: bool) -> Result<Vec<String>> {
    if any_version {
        catalog.query_plan(DEPENDENTS_ANY_VERSION, &[&"dimension", &"county"])
    } else {
        catalog.query_plan(DEPENDENTS_AT_VERSION, &[&"dimension", &"county", &1])
    }
}

fn refused(msg: String) -> CatalogError {
    CatalogError::Refused(msg)
}

pub(super) fn put_version(
    conn: &mut Connection,
    v: NewComponentVersion,
) -> Result<ComponentVersion> {
    crate::model::check_shape(&v)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing = load_component(&tx, v.kind, &v.name)?;
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
    {
        let mut exists = tx.prepare_cached(
            "SELECT 1 FROM registry_components c JOIN registry_versions v ON v.component_id = c.id \
             WHERE c.kind = ?1 AND c.name = ?2 AND v.version = ?3",
        )?;
        for d in v
            .dependencies
            .iter()
            .filter(|d| d.kind != DependencyTarget::DATASET)
        {
            if !exists.exists(params![d.kind, d.name, d.version as i64])? {
                return Err(refused(format!(
                    "{} {:?} depends on {} {:?} version {}, which does not exist",
                    v.kind, v.name, d.kind, d.name, d.version
                )));
            }
        }
    }
    let (commit_id, now) = new_commit(&tx)?;
    let component_id = match &existing {
        None => {
            tx.execute(
                "INSERT INTO registry_components (kind, name, head_version) VALUES (?1, ?2, 1)",
                params![v.kind.as_str(), v.name],
            )?;
            tx.last_insert_rowid()
        }
        Some(c) => {
            // The head was read in this transaction; the guard keeps the update exclusive
            // even if that read ever moves out of it.
            let moved = tx.execute(
                "UPDATE registry_components SET head_version = ?1 WHERE id = ?2 AND head_version = ?3",
                params![version as i64, c.id, c.head_version as i64],
            )?;
            if moved != 1 {
                return Err(CatalogError::ComponentConflict {
                    kind: v.kind,
                    name: v.name,
                    expected: c.head_version,
                    actual: load_component(&tx, v.kind, &c.name)?.map_or(0, |c| c.head_version),
                });
            }
            c.id
        }
    };
    tx.execute(
        "INSERT INTO registry_versions (component_id, version, commit_id, author, message, body_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![component_id, version as i64, commit_id, v.author, v.message, v.body_json],
    )?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO dimension_records (component_id, version, id, name, extra_json) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &v.records {
            insert.execute(params![
                component_id,
                version as i64,
                r.id,
                r.name,
                r.extra_json
            ])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO mapping_rows (component_id, version, from_id, to_id, fraction) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &v.mapping_rows {
            insert.execute(params![
                component_id,
                version as i64,
                r.from_id,
                r.to_id,
                r.fraction
            ])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO registry_dependencies \
             (component_id, version, target_kind, target_name, target_version) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for d in &v.dependencies {
            insert.execute(params![
                component_id,
                version as i64,
                d.kind,
                d.name,
                d.version as i64
            ])?;
        }
    }
    tx.commit()?;
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
