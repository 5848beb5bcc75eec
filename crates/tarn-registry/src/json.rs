//! The JSON forms of registry components: what `tarn project|dimension|mapping|registry ...
//! --json` prints and what `tarn serve` answers, from one place so that the two never
//! differ.

use crate::{Dimension, Mapping, Project, Registration};
use serde_json::{Map, Value, json};
use tarn::registry_store::{ComponentRecord, ComponentVersion, Dependent};

/// `{kind, name, version}` of a component's head (`registry ls --json`).
pub fn component(c: &ComponentRecord) -> Value {
    json!({"kind": c.kind.as_str(), "name": c.name, "version": c.head_version})
}

/// One version of a component, with its definition.
pub fn version(v: &ComponentVersion) -> Value {
    json!({
        "kind": v.kind.as_str(),
        "name": v.name,
        "version": v.version,
        "commit_id": v.commit_id,
        "timestamp": v.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "author": v.author,
        "message": v.message,
        "definition": serde_json::from_str::<Value>(&v.body_json).unwrap_or(Value::Null),
    })
}

/// A component version that uses another (`registry dependents --json`).
pub fn dependent(d: &Dependent) -> Value {
    json!({
        "kind": d.kind.as_str(),
        "name": d.name,
        "version": d.version,
        "uses": {"kind": d.target.kind, "name": d.target.name, "version": d.target.version},
    })
}

/// One record of a dimension: `id`, `name` and its other columns.
pub fn record(r: &crate::Record) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(r.id));
    o.insert("name".into(), json!(r.name));
    for (k, v) in &r.extra {
        o.insert(k.clone(), json!(v));
    }
    Value::Object(o)
}

/// A dimension version with the given records (all of them for `dimension show`).
pub fn dimension<'a>(d: &Dimension, records: impl IntoIterator<Item = &'a crate::Record>) -> Value {
    let mut v = version(&d.version);
    v["records"] = records.into_iter().map(record).collect();
    v
}

/// One row of a mapping.
pub fn mapping_row(r: &crate::MappingRow) -> Value {
    json!({"from_id": r.from_id, "to_id": r.to_id, "fraction": r.fraction})
}

/// A mapping version with the given rows (all of them for `mapping show`).
pub fn mapping<'a>(m: &Mapping, rows: impl IntoIterator<Item = &'a crate::MappingRow>) -> Value {
    let mut v = version(&m.version);
    v["rows"] = rows.into_iter().map(mapping_row).collect();
    v
}

/// A registration of a dataset to a project.
pub fn registration(r: &Registration) -> Value {
    json!({
        "dataset": r.body.dataset,
        "uri": r.body.uri,
        "registration_version": r.version.version,
        "project_version": r.body.project.version,
        "columns": r.body.columns.iter()
            .map(|(c, d)| (c.clone(), json!({"dimension": d.name, "version": d.version})))
            .collect::<Map<_, _>>(),
    })
}

/// A project version with the given registrations (`project show`).
pub fn project<'a>(
    p: &Project,
    registrations: impl IntoIterator<Item = &'a Registration>,
) -> Value {
    let mut v = version(&p.version);
    v["datasets"] = registrations.into_iter().map(registration).collect();
    v
}
