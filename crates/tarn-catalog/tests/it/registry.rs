//! The registry's catalog storage (docs/design/0005): versions take lake commits, creates
//! and updates are exclusive, a refused change writes nothing, old versions read back
//! exactly, and `dependents` answers from its index. Ends with a model test.

use crate::backends::{Kind, TestCatalog};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Debug;
use tarn_catalog::*;

pub(crate) fn record(id: &str, name: &str) -> DimensionRecordRow {
    DimensionRecordRow {
        id: id.into(),
        name: name.into(),
        extra_json: format!(r#"{{"label":"{name} ({id})"}}"#),
    }
}

pub(crate) fn row(from: &str, to: &str, fraction: f64) -> MappingRow {
    MappingRow {
        from_id: from.into(),
        to_id: to.into(),
        fraction,
    }
}

pub(crate) fn target(kind: &str, name: &str, version: u64) -> DependencyTarget {
    DependencyTarget {
        kind: kind.into(),
        name: name.into(),
        version,
    }
}

pub(crate) fn new_version(
    kind: ComponentKind,
    name: &str,
    base: Option<u64>,
) -> NewComponentVersion {
    NewComponentVersion {
        kind,
        name: name.into(),
        base_version: base,
        author: "ada".into(),
        message: format!("{kind} {name} on {base:?}"),
        body_json: format!(r#"{{"base":"{base:?}"}}"#),
        records: vec![],
        mapping_rows: vec![],
        dependencies: vec![],
    }
}

pub(crate) fn dimension(
    name: &str,
    base: Option<u64>,
    records: Vec<DimensionRecordRow>,
) -> NewComponentVersion {
    NewComponentVersion {
        records,
        ..new_version(ComponentKind::Dimension, name, base)
    }
}

/// Rows of every registry table and of `commits`.
async fn counts(catalog: &Catalog) -> BTreeMap<String, i64> {
    let all = catalog.lake.table_counts().await.expect("counts");
    let tables = [
        "commits",
        "registry_components",
        "registry_versions",
        "dimension_records",
        "mapping_rows",
        "registry_dependencies",
    ];
    tables.iter().map(|t| (t.to_string(), all[*t])).collect()
}

#[test]
fn component_kinds_round_trip() {
    let names: Vec<&str> = ComponentKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["dimension", "mapping", "project", "registration"]);
    for kind in ComponentKind::ALL {
        assert_eq!(ComponentKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.as_str().parse::<ComponentKind>().expect("parse"), kind);
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(ComponentKind::parse("Dimension"), None);
    let err = "dataset".parse::<ComponentKind>().expect_err("not a kind");
    assert_eq!(
        err.to_string(),
        r#"unknown component kind "dataset": expected dimension, mapping, project or registration"#
    );
    // Listings order kinds as the stored text orders them.
    let mut sorted = ComponentKind::ALL;
    sorted.sort_by_key(|k| k.as_str());
    assert_eq!(sorted, ComponentKind::ALL);
}

async fn versions_take_commits_and_old_versions_read_back(t: TestCatalog) {
    let catalog = &t.catalog;
    assert!(
        catalog
            .registry
            .components(None)
            .await
            .expect("list")
            .is_empty()
    );

    let v1_records = vec![record("37001", "Alamance"), record("37003", "Alexander")];
    let v1 = catalog
        .registry
        .put_component_version(dimension("county", None, v1_records.clone()))
        .await
        .expect("create");
    assert_eq!(
        (v1.kind, v1.name.as_str(), v1.version),
        (ComponentKind::Dimension, "county", 1)
    );
    assert_eq!(
        catalog.reader.last_commit().await.expect("last"),
        v1.commit_id
    );
    catalog
        .registry
        .put_component_version(dimension(
            "state",
            None,
            vec![record("37", "North Carolina")],
        ))
        .await
        .expect("state");

    let mapping_rows = vec![row("37001", "37", 1.0), row("37003", "37", 1.0)];
    let deps = vec![
        target("dataset", "demand/nc@main", 3),
        target("dimension", "county", 1),
        target("dimension", "state", 1),
    ];
    let m1 = catalog
        .registry
        .put_component_version(NewComponentVersion {
            mapping_rows: mapping_rows.clone(),
            dependencies: deps.clone(),
            ..new_version(ComponentKind::Mapping, "county-state", None)
        })
        .await
        .expect("mapping");
    assert_eq!(
        catalog.reader.last_commit().await.expect("last"),
        m1.commit_id
    );

    // Records out of id order are stored and read back by id.
    let v2_records = vec![
        record("37005", "Alleghany"),
        record("37001", "Alamance County"),
    ];
    let v2 = catalog
        .registry
        .put_component_version(NewComponentVersion {
            author: "grace".into(),
            message: "fix names".into(),
            ..dimension("county", Some(1), v2_records.clone())
        })
        .await
        .expect("update");
    assert_eq!((v2.component_id, v2.version), (v1.component_id, 2));
    assert_eq!(
        catalog.reader.last_commit().await.expect("last"),
        v2.commit_id
    );
    assert!(v2.commit_id > m1.commit_id && v2.timestamp >= v1.timestamp);

    // v1 and the mapping read back exactly after v2.
    let id = v1.component_id;
    assert_eq!(
        catalog.registry.dimension_records(id, 1).await.expect("v1"),
        v1_records
    );
    let mut expected_v2 = v2_records.clone();
    expected_v2.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        catalog.registry.dimension_records(id, 2).await.expect("v2"),
        expected_v2
    );
    assert!(
        catalog
            .registry
            .dimension_records(id, 3)
            .await
            .expect("v3")
            .is_empty()
    );
    assert_eq!(
        catalog
            .registry
            .mapping_rows(m1.component_id, 1)
            .await
            .expect("rows"),
        mapping_rows
    );
    assert_eq!(
        catalog
            .registry
            .dependencies(m1.component_id, 1)
            .await
            .expect("deps"),
        deps
    );
    assert!(
        catalog
            .registry
            .dependencies(id, 2)
            .await
            .expect("deps")
            .is_empty()
    );
    assert!(
        catalog
            .registry
            .mapping_rows(id, 1)
            .await
            .expect("rows")
            .is_empty()
    );

    let head = catalog
        .registry
        .component(ComponentKind::Dimension, "county")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        head,
        ComponentRecord {
            id,
            kind: ComponentKind::Dimension,
            name: "county".into(),
            head_version: 2
        }
    );
    // The same name under another kind is another component.
    assert!(
        catalog
            .registry
            .component(ComponentKind::Mapping, "county")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        catalog
            .registry
            .component_version(ComponentKind::Dimension, "county", None)
            .await
            .expect("head"),
        Some(v2.clone())
    );
    assert_eq!(
        catalog
            .registry
            .component_version(ComponentKind::Dimension, "county", Some(1))
            .await
            .expect("v1"),
        Some(v1.clone())
    );
    assert_eq!(
        catalog
            .registry
            .component_version(ComponentKind::Dimension, "county", Some(3))
            .await
            .expect("v3"),
        None
    );

    let history = catalog
        .registry
        .component_history(ComponentKind::Dimension, "county")
        .await
        .expect("history");
    assert_eq!(history, [v2.clone(), v1.clone()]);
    assert_eq!(
        history
            .iter()
            .map(|h| (h.author.as_str(), h.message.as_str()))
            .collect::<Vec<_>>(),
        [("grace", "fix names"), ("ada", "dimension county on None")]
    );
    assert!(history[0].commit_id > history[1].commit_id);
    assert!(history[0].timestamp >= history[1].timestamp);
    assert!(
        catalog
            .registry
            .component_history(ComponentKind::Project, "county")
            .await
            .expect("history")
            .is_empty()
    );

    let listed = |list: Vec<ComponentRecord>| -> Vec<(ComponentKind, String, u64)> {
        list.into_iter()
            .map(|c| (c.kind, c.name, c.head_version))
            .collect()
    };
    assert_eq!(
        listed(catalog.registry.components(None).await.expect("list")),
        [
            (ComponentKind::Dimension, "county".to_string(), 2),
            (ComponentKind::Dimension, "state".to_string(), 1),
            (ComponentKind::Mapping, "county-state".to_string(), 1),
        ]
    );
    assert_eq!(
        listed(
            catalog
                .registry
                .components(Some(ComponentKind::Mapping))
                .await
                .expect("list")
        ),
        [(ComponentKind::Mapping, "county-state".to_string(), 1)]
    );
    assert!(
        catalog
            .registry
            .components(Some(ComponentKind::Registration))
            .await
            .expect("list")
            .is_empty()
    );

    // A reopened catalog reads the same.
    let again = t.open_again().await;
    assert_eq!(
        again
            .registry
            .component_history(ComponentKind::Dimension, "county")
            .await
            .expect("history"),
        history
    );
}

async fn exists_not_found_and_conflict_write_nothing(t: TestCatalog) {
    let catalog = &t.catalog;
    catalog
        .registry
        .put_component_version(dimension("county", None, vec![record("1", "a")]))
        .await
        .expect("v1");
    catalog
        .registry
        .put_component_version(dimension("county", Some(1), vec![record("1", "b")]))
        .await
        .expect("v2");
    let before = counts(catalog).await;
    let last = catalog.reader.last_commit().await.expect("last");

    let err = catalog
        .registry
        .put_component_version(dimension("county", None, vec![record("2", "c")]))
        .await
        .expect_err("exists");
    assert!(
        matches!(&err, CatalogError::ComponentExists { kind: ComponentKind::Dimension, name, head_version: 2 } if name == "county"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"dimension "county" already exists (version 2); update it instead"#
    );
    assert!(!err.is_conflict());

    let err = catalog
        .registry
        .put_component_version(new_version(ComponentKind::Mapping, "county", Some(1)))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, CatalogError::ComponentNotFound { kind: ComponentKind::Mapping, name } if name == "county"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"mapping "county" does not exist; create it first"#
    );

    for stale in [0, 1, 3] {
        let err = catalog
            .registry
            .put_component_version(dimension("county", Some(stale), vec![record("3", "d")]))
            .await
            .expect_err("stale");
        assert!(
            matches!(&err, CatalogError::ComponentConflict { kind: ComponentKind::Dimension, expected, actual: 2, .. } if *expected == stale),
            "{err:?}"
        );
        assert!(err.is_conflict());
        assert_eq!(
            err.to_string(),
            format!(
                r#"update conflict on dimension "county": planned on version {stale}, but the head is now version 2; re-read it and update again"#
            )
        );
    }
    assert_eq!(counts(catalog).await, before);
    assert_eq!(catalog.reader.last_commit().await.expect("last"), last);
    let head = catalog
        .registry
        .component_version(ComponentKind::Dimension, "county", None)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.version, 2);
    assert_eq!(
        catalog
            .registry
            .dimension_records(head.component_id, 2)
            .await
            .expect("records"),
        [record("1", "b")]
    );
}

async fn refused_versions_write_nothing(t: TestCatalog) {
    let catalog = &t.catalog;
    catalog
        .registry
        .put_component_version(dimension("county", None, vec![record("1", "a")]))
        .await
        .expect("v1");
    let before = counts(catalog).await;
    let with_deps = |base, deps| NewComponentVersion {
        dependencies: deps,
        ..new_version(ComponentKind::Project, "study", base)
    };
    let cases: Vec<(NewComponentVersion, &str)> = vec![
        (
            with_deps(None, vec![target("dimension", "county", 2)]),
            r#"project "study" depends on dimension "county" version 2, which does not exist"#,
        ),
        (
            with_deps(
                None,
                vec![
                    target("dimension", "county", 1),
                    target("mapping", "county", 1),
                ],
            ),
            r#"project "study" depends on mapping "county" version 1, which does not exist"#,
        ),
        (
            with_deps(None, vec![target("dimension", "county", 0)]),
            r#"project "study" depends on dimension "county" version 0, which does not exist"#,
        ),
        (
            with_deps(None, vec![target("table", "x", 1)]),
            r#"project "study": dependency kind "table" of "x" is neither a component kind (dimension, mapping, project, registration) nor "dataset""#,
        ),
        (
            with_deps(
                None,
                vec![
                    target("dimension", "county", 1),
                    target("dimension", "county", 1),
                ],
            ),
            r#"project "study": depends on dimension "county" twice (versions 1 and 1); name each target once"#,
        ),
        (
            NewComponentVersion {
                records: vec![record("1", "a")],
                ..new_version(ComponentKind::Project, "study", None)
            },
            r#"project "study": only a dimension has records, and a project was given 1"#,
        ),
        (
            NewComponentVersion {
                mapping_rows: vec![row("1", "2", 1.0)],
                ..new_version(ComponentKind::Dimension, "state", None)
            },
            r#"dimension "state": only a mapping has mapping rows, and a dimension was given 1"#,
        ),
        (
            dimension(
                "state",
                None,
                vec![
                    record("b", "x"),
                    record("a", "x"),
                    record("b", "y"),
                    record("a", "z"),
                ],
            ),
            r#"dimension "state": record ids must be unique, and 2 repeat: "a", "b""#,
        ),
        (
            NewComponentVersion {
                mapping_rows: vec![row("1", "2", 0.5), row("1", "3", 0.5), row("1", "2", 0.5)],
                ..new_version(ComponentKind::Mapping, "m", None)
            },
            r#"mapping "m": each (from, to) pair must appear once, and 1 repeat: "1" -> "2""#,
        ),
    ];
    for (request, message) in cases {
        let err = catalog
            .registry
            .put_component_version(request)
            .await
            .expect_err(message);
        assert!(matches!(err, CatalogError::Refused(_)), "{err:?}");
        assert_eq!(err.to_string(), message);
        assert_eq!(counts(catalog).await, before, "{message}");
    }
    // A dependency on an update of the component itself is checked the same way; a dataset
    // target is not checked.
    let v2 = catalog
        .registry
        .put_component_version(NewComponentVersion {
            dependencies: vec![
                target("dimension", "county", 1),
                target("dataset", "nowhere/x@main", 99),
            ],
            ..dimension("county", Some(1), vec![])
        })
        .await
        .expect("self at v1 and any dataset");
    assert_eq!(v2.version, 2);
    assert!(
        catalog
            .registry
            .put_component_version(NewComponentVersion {
                dependencies: vec![target("dimension", "county", 3)],
                ..dimension("county", Some(2), vec![])
            })
            .await
            .is_err_and(|e| matches!(e, CatalogError::Refused(_)))
    );
}

async fn dependents_by_version_any_version_and_dataset(t: TestCatalog) {
    let catalog = &t.catalog;
    let put = |v: NewComponentVersion| async move {
        catalog
            .registry
            .put_component_version(v)
            .await
            .expect("put")
    };
    let deps = |kind, name: &str, base, deps: Vec<DependencyTarget>| NewComponentVersion {
        dependencies: deps,
        ..new_version(kind, name, base)
    };
    use ComponentKind::*;
    put(dimension("county", None, vec![])).await;
    put(dimension("county", Some(1), vec![])).await;
    put(dimension("state", None, vec![])).await;
    put(deps(
        Mapping,
        "county-state",
        None,
        vec![
            target("dimension", "county", 1),
            target("dimension", "state", 1),
        ],
    ))
    .await;
    put(deps(
        Mapping,
        "county-state",
        Some(1),
        vec![
            target("dimension", "county", 2),
            target("dimension", "state", 1),
        ],
    ))
    .await;
    put(deps(
        Project,
        "study",
        None,
        vec![
            target("dimension", "county", 1),
            target("mapping", "county-state", 1),
        ],
    ))
    .await;
    put(deps(
        Registration,
        "study/demand",
        None,
        vec![
            target("project", "study", 1),
            target("dataset", "demand/nc@main", 3),
        ],
    ))
    .await;
    put(deps(
        Registration,
        "study/demand",
        Some(1),
        vec![
            target("project", "study", 1),
            target("dataset", "demand/nc@main", 4),
        ],
    ))
    .await;

    let found = |kind: &'static str, name: &'static str, version: Option<u64>| async move {
        catalog
            .registry
            .dependents(kind, name, version)
            .await
            .expect("dependents")
            .into_iter()
            .map(|d| {
                assert_eq!(
                    (d.target.kind.as_str(), d.target.name.as_str()),
                    (kind, name)
                );
                if let Some(v) = version {
                    assert_eq!(d.target.version, v);
                }
                (d.kind, d.name, d.version, d.head_version, d.target.version)
            })
            .collect::<Vec<_>>()
    };
    let s = |n: &str| n.to_string();
    assert_eq!(
        found("dimension", "county", Some(1)).await,
        [
            (Mapping, s("county-state"), 1, 2, 1),
            (Project, s("study"), 1, 1, 1)
        ]
    );
    assert_eq!(
        found("dimension", "county", Some(2)).await,
        [(Mapping, s("county-state"), 2, 2, 2)]
    );
    assert_eq!(
        found("dimension", "county", None).await,
        [
            (Mapping, s("county-state"), 1, 2, 1),
            (Mapping, s("county-state"), 2, 2, 2),
            (Project, s("study"), 1, 1, 1)
        ]
    );
    assert!(found("dimension", "county", Some(3)).await.is_empty());
    assert!(found("mapping", "county", None).await.is_empty());
    assert_eq!(
        found("dimension", "state", None).await,
        [
            (Mapping, s("county-state"), 1, 2, 1),
            (Mapping, s("county-state"), 2, 2, 1)
        ]
    );
    assert_eq!(
        found("dataset", "demand/nc@main", None).await,
        [
            (Registration, s("study/demand"), 1, 2, 3),
            (Registration, s("study/demand"), 2, 2, 4)
        ]
    );
    assert_eq!(
        found("dataset", "demand/nc@main", Some(4)).await,
        [(Registration, s("study/demand"), 2, 2, 4)]
    );
    assert_eq!(
        found("project", "study", Some(1)).await,
        [
            (Registration, s("study/demand"), 1, 2, 1),
            (Registration, s("study/demand"), 2, 2, 1)
        ]
    );
}

/// Writers with their own connections (as separate processes have) race on one base;
/// exactly one wins each round.
async fn concurrent_writers_on_one_base_one_wins(t: TestCatalog) {
    const WRITERS: usize = 6;
    const ROUNDS: u64 = 4;
    {
        let mut catalogs: Vec<Catalog> = Vec::new();
        for _ in 0..WRITERS {
            catalogs.push(t.open_again().await);
        }
        let race = |base: Option<u64>| {
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
            let tasks: Vec<_> = catalogs
                .iter()
                .enumerate()
                .map(|(i, catalog)| {
                    let (catalog, barrier) = (catalog.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        catalog
                            .registry
                            .put_component_version(dimension(
                                "county",
                                base,
                                vec![record(&format!("{i}"), &format!("writer {i}"))],
                            ))
                            .await
                    })
                })
                .collect();
            async move {
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.expect("task"));
                }
                out
            }
        };
        let mut winners = Vec::new();
        for round in 0..=ROUNDS {
            let base = (round > 0).then_some(round);
            let results = race(base).await;
            let won: Vec<&ComponentVersion> =
                results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(won.len(), 1, "round {round}: {results:?}");
            assert_eq!(won[0].version, round + 1);
            for r in &results {
                match r {
                    Ok(_) => {}
                    Err(CatalogError::ComponentExists {
                        head_version: 1, ..
                    }) if base.is_none() => {}
                    Err(CatalogError::ComponentConflict {
                        expected, actual, ..
                    }) if Some(*expected) == base && *actual == round + 1 => {}
                    Err(e) => panic!("round {round}: unexpected {e:?}"),
                }
            }
            winners.push(won[0].clone());
        }
        let history = catalogs[0]
            .registry
            .component_history(ComponentKind::Dimension, "county")
            .await
            .expect("history");
        let versions: Vec<u64> = history.iter().map(|h| h.version).collect();
        assert_eq!(versions, (1..=ROUNDS + 1).rev().collect::<Vec<_>>());
        winners.reverse();
        assert_eq!(history, winners);
        // Each version holds its winner's record only.
        for w in &winners {
            let records = catalogs[1]
                .registry
                .dimension_records(w.component_id, w.version)
                .await
                .expect("records");
            assert_eq!(records.len(), 1, "{w:?}");
        }
        assert_eq!(
            counts(&catalogs[2]).await["registry_versions"],
            (ROUNDS + 1) as i64
        );
        assert_eq!(
            counts(&catalogs[2]).await["dimension_records"],
            (ROUNDS + 1) as i64
        );
    }
}

// ---------------------------------------------------------------------------------------
// Model test: random creates, updates and stale updates over a few components, with
// dependencies between them; after every step the catalog matches a plain in-memory model.

/// The components the model plays with: two dimensions, a mapping and a project.
const COMPONENTS: [(ComponentKind, &str); 4] = [
    (ComponentKind::Dimension, "county"),
    (ComponentKind::Dimension, "state"),
    (ComponentKind::Mapping, "county-state"),
    (ComponentKind::Project, "study"),
];

const DATASET: &str = "demand/nc@main";

#[derive(Debug, Clone)]
enum Base {
    /// `None`: create.
    Create,
    /// What a well-behaved writer sends: the model's head, or `None` (create) when the
    /// component does not exist.
    Head,
    /// `head - n` (a stale writer), or `head + 1` when `n` is 0.
    Off(u64),
}

#[derive(Debug, Clone)]
struct Op {
    component: usize,
    base: Base,
    author: String,
    records: BTreeMap<String, String>,
    rows: BTreeMap<(String, String), f64>,
    /// Dependencies on components: index → 0 for the version after the target's head (which
    /// does not exist), else `n` for its head's `n - 1`th predecessor (at least version 1).
    deps: BTreeMap<usize, u64>,
    dataset_version: Option<u64>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (
        0..COMPONENTS.len(),
        prop_oneof![
            1 => Just(Base::Create),
            5 => Just(Base::Head),
            2 => (0u64..3).prop_map(Base::Off),
        ],
        "[a-z]{1,4}",
        prop::collection::btree_map("[a-c][0-9]", "[A-Z][a-z]{0,3}", 0..5),
        prop::collection::btree_map(("[a-c]", "[x-z]"), 0.01f64..1.0, 0..4),
        prop::collection::btree_map(0..COMPONENTS.len(), 0u64..4, 0..3),
        prop::option::of(1u64..4),
    )
        .prop_map(
            |(component, base, author, records, rows, deps, dataset_version)| Op {
                component,
                base,
                author,
                records,
                rows,
                deps,
                dataset_version,
            },
        )
}

/// One version as the model keeps it.
#[derive(Debug, Clone, PartialEq)]
struct ModelVersion {
    author: String,
    message: String,
    body_json: String,
    records: Vec<DimensionRecordRow>,
    rows: Vec<MappingRow>,
    deps: Vec<DependencyTarget>,
}

fn eq<T: PartialEq + Debug>(what: &str, actual: T, expected: T) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: catalog has {actual:?}, model expects {expected:?}"
        ))
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Version(u64),
    Exists(u64),
    NotFound,
    Conflict(u64, u64),
    Refused,
}

async fn run_model(kind: Kind, ops: Vec<Op>) -> Result<(), String> {
    let t = crate::backends::open(kind)
        .await
        .ok_or("the backend went away between cases")?;
    let catalog = &t.catalog;
    let mut model: BTreeMap<usize, Vec<ModelVersion>> = BTreeMap::new();
    let mut ids: BTreeMap<usize, i64> = BTreeMap::new();
    let mut last_commit = 0;
    for (step, op) in ops.into_iter().enumerate() {
        let (kind, name) = COMPONENTS[op.component];
        let head = model.get(&op.component).map_or(0, |v| v.len() as u64);
        let base = match op.base {
            Base::Create => None,
            Base::Head => (head > 0).then_some(head),
            Base::Off(0) => Some(head + 1),
            Base::Off(n) => Some(head.saturating_sub(n)),
        };
        let target_head = |i: &usize| model.get(i).map_or(0, |vs| vs.len() as u64);
        let dep_versions: Vec<(usize, u64)> = op
            .deps
            .iter()
            // Depending on an older version of a component that does not exist yet would be
            // refused as the version after its head is; keep those cases rarer.
            .filter(|(i, n)| **n == 0 || target_head(i) > 0)
            .map(|(i, n)| match n {
                0 => (*i, target_head(i) + 1),
                n => (*i, target_head(i).saturating_sub(n - 1).max(1)),
            })
            .collect();
        let mut deps: Vec<DependencyTarget> = dep_versions
            .iter()
            .map(|(i, v)| target(COMPONENTS[*i].0.as_str(), COMPONENTS[*i].1, *v))
            .collect();
        if let Some(v) = op.dataset_version {
            deps.push(target("dataset", DATASET, v));
        }
        deps.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        let version = ModelVersion {
            author: op.author.clone(),
            message: format!("step {step}"),
            body_json: format!(r#"{{"step":{step}}}"#),
            records: match kind {
                ComponentKind::Dimension => {
                    op.records.iter().map(|(id, n)| record(id, n)).collect()
                }
                _ => vec![],
            },
            rows: match kind {
                ComponentKind::Mapping => op.rows.iter().map(|((f, t), x)| row(f, t, *x)).collect(),
                _ => vec![],
            },
            deps: deps.clone(),
        };
        // The create/update checks come first, then the dependencies.
        let expected = match base {
            None if head > 0 => Outcome::Exists(head),
            Some(_) if head == 0 => Outcome::NotFound,
            Some(b) if b != head => Outcome::Conflict(b, head),
            _ => {
                let missing = dep_versions.iter().any(|(i, v)| *v > target_head(i));
                if missing {
                    Outcome::Refused
                } else {
                    Outcome::Version(head + 1)
                }
            }
        };
        let before = counts(catalog).await;
        let result = catalog
            .registry
            .put_component_version(NewComponentVersion {
                kind,
                name: name.into(),
                base_version: base,
                author: version.author.clone(),
                message: version.message.clone(),
                body_json: version.body_json.clone(),
                records: version.records.clone(),
                mapping_rows: version.rows.clone(),
                dependencies: deps,
            })
            .await;
        let actual = match &result {
            Ok(v) => Outcome::Version(v.version),
            Err(CatalogError::ComponentExists { head_version, .. }) => {
                Outcome::Exists(*head_version)
            }
            Err(CatalogError::ComponentNotFound { .. }) => Outcome::NotFound,
            Err(CatalogError::ComponentConflict {
                expected, actual, ..
            }) => Outcome::Conflict(*expected, *actual),
            Err(CatalogError::Refused(_)) => Outcome::Refused,
            Err(e) => return Err(format!("step {step}: {e:?}")),
        };
        eq(&format!("step {step} {op:?} outcome"), &actual, &expected)?;
        match result {
            Ok(v) => {
                if v.commit_id <= last_commit {
                    return Err(format!(
                        "step {step}: commit {} after {last_commit}",
                        v.commit_id
                    ));
                }
                last_commit = v.commit_id;
                eq(
                    "last commit",
                    catalog
                        .reader
                        .last_commit()
                        .await
                        .map_err(|e| e.to_string())?,
                    v.commit_id,
                )?;
                if let Some(id) = ids.insert(op.component, v.component_id) {
                    eq("component id", v.component_id, id)?;
                }
                model.entry(op.component).or_default().push(version);
            }
            Err(_) => eq(
                &format!("step {step}: rows after a failed put"),
                counts(catalog).await,
                before,
            )?,
        }
        check(catalog, &model, &ids)
            .await
            .map_err(|e| format!("after step {step}: {e}"))?;
    }
    Ok(())
}

async fn check(
    catalog: &Catalog,
    model: &BTreeMap<usize, Vec<ModelVersion>>,
    ids: &BTreeMap<usize, i64>,
) -> Result<(), String> {
    let e = |e: CatalogError| e.to_string();
    let mut listed = Vec::new();
    for (i, (kind, name)) in COMPONENTS.iter().enumerate() {
        let versions = model.get(&i).map_or(&[][..], |v| v.as_slice());
        let record = catalog.registry.component(*kind, name).await.map_err(e)?;
        let expected = ids.get(&i).map(|id| ComponentRecord {
            id: *id,
            kind: *kind,
            name: name.to_string(),
            head_version: versions.len() as u64,
        });
        eq(&format!("{kind} {name}"), &record, &expected)?;
        listed.extend(expected);
        let history = catalog
            .registry
            .component_history(*kind, name)
            .await
            .map_err(e)?;
        eq(
            &format!("{kind} {name} history"),
            history.iter().map(|h| h.version).collect::<Vec<_>>(),
            (1..=versions.len() as u64).rev().collect(),
        )?;
        for pair in history.windows(2) {
            if pair[0].commit_id <= pair[1].commit_id || pair[0].timestamp < pair[1].timestamp {
                return Err(format!("{kind} {name}: history out of order: {pair:?}"));
            }
        }
        let head = catalog
            .registry
            .component_version(*kind, name, None)
            .await
            .map_err(e)?;
        eq(
            &format!("{kind} {name} head"),
            head.as_ref(),
            history.first(),
        )?;
        for h in &history {
            let m = &versions[h.version as usize - 1];
            let what = format!("{kind} {name} v{}", h.version);
            eq(
                &what,
                (&h.author, &h.message, &h.body_json),
                (&m.author, &m.message, &m.body_json),
            )?;
            eq(
                &what,
                (h.kind, h.name.as_str(), h.component_id),
                (*kind, *name, ids[&i]),
            )?;
            let id = h.component_id;
            eq(
                &what,
                catalog
                    .registry
                    .dimension_records(id, h.version)
                    .await
                    .map_err(e)?,
                m.records.clone(),
            )?;
            eq(
                &what,
                catalog
                    .registry
                    .mapping_rows(id, h.version)
                    .await
                    .map_err(e)?,
                m.rows.clone(),
            )?;
            eq(
                &what,
                catalog
                    .registry
                    .dependencies(id, h.version)
                    .await
                    .map_err(e)?,
                m.deps.clone(),
            )?;
        }
    }
    eq(
        "components",
        catalog.registry.components(None).await.map_err(e)?,
        {
            listed.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            listed
        },
    )?;
    // Dependents of every target, at each version and at any, against a scan of the model.
    let mut targets: Vec<(String, String)> = COMPONENTS
        .iter()
        .map(|(k, n)| (k.as_str().to_string(), n.to_string()))
        .collect();
    targets.push(("dataset".into(), DATASET.into()));
    for (tk, tn) in &targets {
        for version in [None, Some(1), Some(2), Some(3)] {
            let mut expected = Vec::new();
            for (i, versions) in model {
                for (n, v) in versions.iter().enumerate() {
                    for d in &v.deps {
                        if (&d.kind, &d.name) == (tk, tn) && version.is_none_or(|x| x == d.version)
                        {
                            expected.push(Dependent {
                                kind: COMPONENTS[*i].0,
                                name: COMPONENTS[*i].1.to_string(),
                                version: n as u64 + 1,
                                head_version: versions.len() as u64,
                                target: d.clone(),
                            });
                        }
                    }
                }
            }
            expected
                .sort_by(|a, b| (a.kind, &a.name, a.version).cmp(&(b.kind, &b.name, b.version)));
            eq(
                &format!("dependents of {tk} {tn} at {version:?}"),
                catalog
                    .registry
                    .dependents(tk, tn, version)
                    .await
                    .map_err(e)?,
                expected,
            )?;
        }
    }
    Ok(())
}

/// A proptest runner: `TARN_MODEL_CASES` cases when set (longer runs by hand), else
/// `default_cases`; no persistence file.
fn model_runner(default_cases: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var("TARN_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

fn random_registry_changes_match_the_model(kind: Kind, default_cases: u32) {
    if kind == Kind::Postgres && crate::backends::postgres_admin_url().is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result =
        model_runner(default_cases).run(&prop::collection::vec(op_strategy(), 1..24), |ops| {
            rt.block_on(run_model(kind, ops))
                .map_err(TestCaseError::fail)
        });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_registry_changes_match_the_model_on_sqlite() {
    random_registry_changes_match_the_model(Kind::Sqlite, 64);
}

/// Fewer cases: each one is a fresh schema on the server.
#[test]
fn random_registry_changes_match_the_model_on_postgres() {
    random_registry_changes_match_the_model(Kind::Postgres, 32);
}

crate::backend_tests!(
    versions_take_commits_and_old_versions_read_back,
    exists_not_found_and_conflict_write_nothing,
    refused_versions_write_nothing,
    dependents_by_version_any_version_and_dataset,
    concurrent_writers_on_one_base_one_wins,
);
