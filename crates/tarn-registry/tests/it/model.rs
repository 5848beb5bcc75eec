//! A property test against a simple model: random dimensions, a random mapping (valid or
//! not), a random dataset (valid or not). The mapping and the registration must fail exactly
//! when the model says, naming the offending ids; a query through the mapping must return
//! the model's weighted sums and counts.

use super::{Demand, Fixture, T0, close, mapping, run};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tarn_registry::{Aggregation, GroupBy, MappingInput, ProjectQuery};

#[derive(Debug, Clone)]
struct Case {
    sources: usize,
    targets: usize,
    /// Per source record, its (target, fraction in eighths) rows.
    rows: Vec<Vec<(usize, u8)>>,
    /// A source record left unmapped, if any.
    unmapped: Option<usize>,
    /// A row to a target id that is no record.
    unknown_target: bool,
    /// Dataset rows: (source index or `None` for an unknown id, sector, value).
    data: Vec<(Option<usize>, bool, i32)>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..6, 1usize..5).prop_flat_map(|(sources, targets)| {
        (
            proptest::collection::vec(
                proptest::collection::btree_map(0..targets, 1u8..16, 1..=targets)
                    .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
                sources,
            ),
            proptest::option::weighted(0.15, 0..sources),
            proptest::bool::weighted(0.1),
            proptest::collection::vec(
                (
                    proptest::option::weighted(0.92, 0..sources),
                    any::<bool>(),
                    -50i32..200,
                ),
                0..30,
            ),
        )
            .prop_map(move |(rows, unmapped, unknown_target, data)| Case {
                sources,
                targets,
                rows,
                unmapped,
                unknown_target,
                data,
            })
    })
}

fn records(prefix: &str, n: usize) -> String {
    let mut csv = String::from("id,name\n");
    for i in 0..n {
        csv.push_str(&format!("{prefix}{i},{prefix} number {i}\n"));
    }
    csv
}

async fn check(case: Case) -> Result<(), TestCaseError> {
    let f = Fixture::new().await;
    let src = f.file("src.csv", &records("s", case.sources));
    let dst = f.file("dst.csv", &records("d", case.targets));
    let sectors = f.file("sectors.csv", "id,name\na,A\nb,B\n");
    for (name, path) in [("src", &src), ("dst", &dst), ("sector", &sectors)] {
        f.registry
            .create_dimension(&super::dim(name, "geography", path))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let mut csv = String::from("from_id,to_id,fraction\n");
    for (s, rows) in case.rows.iter().enumerate() {
        if case.unmapped == Some(s) {
            continue;
        }
        for (t, eighths) in rows {
            csv.push_str(&format!("s{s},d{t},{}\n", f64::from(*eighths) / 8.0));
        }
    }
    if case.unknown_target {
        csv.push_str("s0,nowhere,1\n");
    }
    let rows = f.file("rows.csv", &csv);
    let created = f
        .registry
        .create_mapping(&MappingInput {
            disaggregation: true,
            ..mapping("split", "src", "dst", &rows)
        })
        .await;
    if case.unknown_target {
        let e = created.expect_err("an unknown target").to_string();
        prop_assert!(e.contains("\"nowhere\" (1 row)"), "{}", e);
        return Ok(());
    }
    if let Some(s) = case.unmapped {
        let e = created.expect_err("an unmapped source").to_string();
        prop_assert!(e.contains(&format!("are not mapped: \"s{s}\"")), "{}", e);
        return Ok(());
    }
    created.map_err(|e| TestCaseError::fail(e.to_string()))?;
    f.project("p", &["src", "dst", "sector"], &["split"]).await;
    let data: Vec<Demand> = case
        .data
        .iter()
        .enumerate()
        .map(|(i, (s, b, v))| Demand {
            ts: T0 + i as i64 * 60,
            county: s.map_or("unknown".to_string(), |s| format!("s{s}")),
            sector: if *b { "b" } else { "a" }.into(),
            value: f64::from(*v) / 4.0,
        })
        .collect();
    if data.is_empty() {
        return Ok(());
    }
    f.write("tarn://x", &data).await;
    let registered = f
        .registry
        .register_dataset(
            "p",
            "tarn://x",
            &[
                ("county".into(), "src".into()),
                ("sector".into(), "sector".into()),
            ],
            None,
        )
        .await;
    let unknown = case.data.iter().filter(|d| d.0.is_none()).count();
    if unknown > 0 {
        let e = registered.expect_err("unknown ids").to_string();
        let rows = if unknown == 1 { "row" } else { "rows" };
        prop_assert!(
            e.contains(&format!("\"unknown\" ({unknown} {rows})")),
            "{}",
            e
        );
        return Ok(());
    }
    registered.map_err(|e| TestCaseError::fail(e.to_string()))?;

    // The model: every row goes to each target of its source, weighted by the fraction.
    let mut want: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for d in &data {
        let s: usize = d.county[1..].parse().expect("source index");
        for (t, eighths) in &case.rows[s] {
            let w = f64::from(*eighths) / 8.0;
            let e = want.entry((format!("d{t}"), d.sector.clone())).or_default();
            e.0 += d.value * w;
            e.1 += w;
        }
    }
    let got = run(
        &f.registry,
        &ProjectQuery {
            project: "p".into(),
            group_by: GroupBy::parse_list("county=dst,sector").expect("group by"),
            aggregations: vec![
                Aggregation::parse("sum(value)").expect("sum"),
                Aggregation::parse("count(*)").expect("count"),
            ],
            ..Default::default()
        },
    )
    .await;
    prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
    for ((keys, values), ((t, sector), (sum, count))) in got.iter().zip(&want) {
        prop_assert_eq!(keys, &vec![t.clone(), sector.clone()]);
        prop_assert!(
            close(values[0], *sum),
            "{:?}: {} vs {}",
            keys,
            values[0],
            sum
        );
        prop_assert!(
            close(values[1], *count),
            "{:?}: {} vs {}",
            keys,
            values[1],
            count
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("TARN_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn mappings_registrations_and_queries_match_the_model(case in case()) {
        super::runtime().block_on(check(case))?;
    }
}
