//! A property test against a simple model: random dimensions, a random mapping (valid or
//! not), a random dataset (valid or not). The mapping and the registration must fail exactly
//! when the model says, naming the offending ids; a query through the mapping (with or
//! without a filter and a time resampling) must return the model's weighted sums, counts and
//! averages, and its minima and maxima, null values included.

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
    /// Dataset rows, 20 minutes apart: (source index or `None` for an unknown id, sector,
    /// value in quarters or null).
    data: Vec<(Option<usize>, bool, Option<i32>)>,
    /// `--where value >= this`, in quarters.
    filter: Option<i32>,
    /// `--time-resample 1h`.
    hourly: bool,
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
                    proptest::option::weighted(0.85, -50i32..200),
                ),
                0..30,
            ),
            proptest::option::weighted(0.4, -50i32..200),
            any::<bool>(),
        )
            .prop_map(
                move |(rows, unmapped, unknown_target, data, filter, hourly)| Case {
                    sources,
                    targets,
                    rows,
                    unmapped,
                    unknown_target,
                    data,
                    filter,
                    hourly,
                },
            )
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
            ts: T0 + i as i64 * 1200,
            county: s.map_or("unknown".to_string(), |s| format!("s{s}")),
            sector: if *b { "b" } else { "a" }.into(),
            value: v.map(|v| f64::from(v) / 4.0),
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

    // The model: every row that passes the filter goes to each target of its source,
    // weighted by the fraction. Per (target, sector[, hour]): the weighted sum of the
    // non-null values, the weighted count of rows and of non-null values, min and max.
    #[derive(Debug, Default)]
    struct Group {
        sum: Option<f64>,
        rows: f64,
        values: f64,
        min: Option<f64>,
        max: Option<f64>,
    }
    let threshold = case.filter.map(|t| f64::from(t) / 4.0);
    let mut want: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for d in &data {
        if let Some(t) = threshold
            && !d.value.is_some_and(|v| v >= t)
        {
            continue;
        }
        let s: usize = d.county[1..].parse().expect("source index");
        for (t, eighths) in &case.rows[s] {
            let w = f64::from(*eighths) / 8.0;
            let mut key = vec![format!("d{t}"), d.sector.clone()];
            if case.hourly {
                let hour = (d.ts - T0) / 3600 * 3600 + T0;
                key.push(
                    chrono::DateTime::from_timestamp(hour, 0)
                        .expect("time")
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string(),
                );
            }
            let g = want.entry(key).or_default();
            g.rows += w;
            if let Some(v) = d.value {
                g.sum = Some(g.sum.unwrap_or(0.0) + v * w);
                g.values += w;
                g.min = Some(g.min.map_or(v, |m| m.min(v)));
                g.max = Some(g.max.map_or(v, |m| m.max(v)));
            }
        }
    }
    let got = run(
        &f.registry,
        &ProjectQuery {
            project: "p".into(),
            group_by: GroupBy::parse_list("county=dst,sector").expect("group by"),
            aggregations: [
                "sum(value)",
                "count(*)",
                "count(value)",
                "avg(value)",
                "min(value)",
                "max(value)",
            ]
            .iter()
            .map(|a| Aggregation::parse(a).expect("aggregation"))
            .collect(),
            filter: threshold.map(|t| format!("value >= {t}")),
            time_resample: case.hourly.then(|| "1h".to_string()),
            ..Default::default()
        },
    )
    .await;
    let same = |got: f64, want: Option<f64>| match want {
        Some(w) => close(got, w),
        None => got.is_nan(),
    };
    prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
    for ((keys, values), (key, g)) in got.iter().zip(&want) {
        prop_assert_eq!(keys, key);
        let expected = [
            g.sum,
            Some(g.rows),
            Some(g.values),
            g.sum.map(|s| s / g.values),
            g.min,
            g.max,
        ];
        for (i, (v, w)) in values.iter().zip(expected).enumerate() {
            prop_assert!(same(*v, w), "{:?}, aggregate {}: {} vs {:?}", keys, i, v, w);
        }
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
