//! The registry end to end on the real US county and state records: dimensions, mappings,
//! projects, registration with validation, queries through mappings against sums computed
//! here from raw rows, history and dependents, and every bad input (a clear error, and the
//! registry unchanged).

mod model;
mod records;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampSecondArray};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn::registry_store::ComponentKind;
use tarn::{Durability, Lake, WriteRequest};
use tarn_registry::{
    Aggregation, DimensionInput, GroupBy, MappingInput, ProjectDefinition, ProjectQuery, Registry,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tarn-cli/data")
        .join(name)
}

/// `(statefp, countyfp, name)` of every county in the Census 2020 file. The file lists 9
/// counties twice under two names (`36,005,Bronx County` and `36,005,the Bronx Borough`);
/// the first name is kept, as a dimension's ids are unique.
fn counties() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(data("us_counties_2020.csv")).expect("counties");
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.splitn(3, ',');
            (
                f.next().expect("statefp").to_string(),
                f.next().expect("countyfp").to_string(),
                f.next().expect("name").to_string(),
            )
        })
        .filter(|(s, c, _)| seen.insert(format!("{s}{c}")))
        .collect()
}

/// The states file with one row per FIPS code: it lists some states under several names
/// (`Rhode Island` and `Rhode Island and Providence Plantations`); the first is kept. It
/// lacks the U.S. Minor Outlying Islands (FIPS 74), which the counties file has: they are
/// added, as the county -> state mapping found.
fn states_csv() -> String {
    let text = std::fs::read_to_string(data("us_states.csv")).expect("states");
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::from("name,postal,fips\n");
    for line in text.lines().skip(1) {
        let fips = line.rsplit(',').next().expect("fips");
        if seen.insert(fips.to_string()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("U.S. Minor Outlying Islands,UM,74\n");
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    lake: Lake,
    registry: Registry,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        Lake::init(&path.join("lake")).await.expect("init");
        let lake = Lake::open_with(&path.join("lake"), Durability::Relaxed)
            .await
            .expect("open");
        let registry = Registry::new(&lake);
        Self {
            _dir: dir,
            dir: path,
            lake,
            registry,
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// Every component with its head version, and every version's message: what "nothing
    /// changed" compares.
    async fn fingerprint(&self) -> String {
        let mut out = String::new();
        for c in self.registry.components(None).await.expect("components") {
            out.push_str(&format!(
                "{}:{}@{}\n",
                c.kind.as_str(),
                c.name,
                c.head_version
            ));
        }
        out
    }

    /// The county dimension (id = statefp + countyfp), the state dimension (id = FIPS),
    /// and the county -> state mapping.
    async fn geography(&self) {
        let mut csv = String::from("id,name,state\n");
        for (s, c, n) in counties() {
            csv.push_str(&format!("{s}{c},{n},{s}\n"));
        }
        let counties = self.file("counties.csv", &csv);
        self.registry
            .create_dimension(&DimensionInput {
                name: "county",
                dimension_type: Some("geography"),
                records: &counties,
                id_column: "id",
                name_column: "name",
                message: Some("Census 2020 counties"),
            })
            .await
            .expect("county dimension");
        self.registry
            .create_dimension(&DimensionInput {
                name: "state",
                dimension_type: Some("geography"),
                records: &self.file("states.csv", &states_csv()),
                id_column: "fips",
                name_column: "name",
                message: None,
            })
            .await
            .expect("state dimension");
        let mut rows = String::from("from_id,to_id\n");
        for (s, c, _) in self::counties() {
            rows.push_str(&format!("{s}{c},{s}\n"));
        }
        let rows = self.file("county_to_state.csv", &rows);
        self.registry
            .create_mapping(&mapping("county_to_state", "county", "state", &rows))
            .await
            .expect("county_to_state");
        let sectors = self.file(
            "sectors.csv",
            "id,name\nres,Residential\ncom,Commercial\nind,Industrial\n",
        );
        self.registry
            .create_dimension(&dim("sector", "sector", &sectors))
            .await
            .expect("sector dimension");
    }

    async fn project(&self, name: &str, dims: &[&str], maps: &[&str]) {
        self.registry
            .create_project(
                &ProjectDefinition {
                    name: name.into(),
                    description: String::new(),
                    dimensions: dims.iter().map(|s| s.to_string()).collect(),
                    mappings: maps.iter().map(|s| s.to_string()).collect(),
                },
                None,
            )
            .await
            .expect("project");
    }

    /// The geography dimensions and mapping, and project `us_demand` over them.
    async fn us_demand(&self) {
        self.geography().await;
        self.project(
            "us_demand",
            &["county", "state", "sector"],
            &["county_to_state"],
        )
        .await;
    }

    async fn write(&self, uri: &str, rows: &[Demand]) {
        self.lake
            .write(
                uri,
                demand_batch(rows),
                WriteRequest::new().ordered_on("ts"),
            )
            .await
            .expect("write");
    }
}

/// A dimension from a records file with `id` and `name` columns.
fn dim<'a>(name: &'a str, dimension_type: &'a str, records: &'a Path) -> DimensionInput<'a> {
    DimensionInput {
        name,
        dimension_type: Some(dimension_type),
        records,
        id_column: "id",
        name_column: "name",
        message: None,
    }
}

fn mapping<'a>(name: &'a str, from: &'a str, to: &'a str, rows: &'a Path) -> MappingInput<'a> {
    MappingInput {
        name,
        from: Some(from),
        to: Some(to),
        records: rows,
        from_column: "from_id",
        to_column: "to_id",
        fraction_column: "fraction",
        disaggregation: false,
        message: None,
    }
}

/// One row of a demand dataset.
#[derive(Debug, Clone)]
struct Demand {
    ts: i64,
    county: String,
    sector: String,
    value: Option<f64>,
}

fn demand_batch(rows: &[Demand]) -> RecordBatch {
    let ts: ArrayRef = Arc::new(
        TimestampSecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let county: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.county.as_str()),
    ));
    let sector: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.sector.as_str()),
    ));
    let value: ArrayRef = Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.value)));
    RecordBatch::try_from_iter([
        ("ts", ts),
        ("county", county),
        ("sector", sector),
        ("value", value),
    ])
    .expect("batch")
}

const T0: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

/// Two days of hourly demand for every county of the given states, 3 sectors.
fn demand(states: &[&str]) -> Vec<Demand> {
    let mut rows = Vec::new();
    let all = counties();
    for h in 0..48 {
        for (i, (s, c, _)) in all
            .iter()
            .filter(|(s, _, _)| states.contains(&s.as_str()))
            .enumerate()
        {
            for (k, sector) in ["res", "com", "ind"].iter().enumerate() {
                rows.push(Demand {
                    ts: T0 + h * 3600,
                    county: format!("{s}{c}"),
                    sector: sector.to_string(),
                    value: Some(((h as usize * 7 + i * 13 + k * 5) % 97) as f64 + 0.25),
                });
            }
        }
    }
    rows.sort_by_key(|r| r.ts);
    rows
}

/// Runs a project query; `(group columns as text, values)` in result order, a null value as
/// NaN.
async fn run(registry: &Registry, q: &ProjectQuery) -> Vec<(Vec<String>, Vec<f64>)> {
    let prepared = registry.prepare_query(q).await.expect("prepare");
    let batches = prepared
        .dataframe()
        .await
        .expect("plan")
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{}\n{e}", prepared.sql));
    let groups = q.group_by.len() + usize::from(q.time_resample.is_some());
    let mut out = Vec::new();
    for b in &batches {
        let text: Vec<ArrayRef> = (0..groups)
            .map(|i| {
                arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).expect("text")
            })
            .collect();
        let values: Vec<ArrayRef> = (groups..b.num_columns())
            .map(|i| {
                arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Float64)
                    .expect("f64")
            })
            .collect();
        for r in 0..b.num_rows() {
            use arrow::array::AsArray;
            out.push((
                text.iter()
                    .map(|c| c.as_string::<i32>().value(r).to_string())
                    .collect(),
                values
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            f64::NAN
                        } else {
                            c.as_primitive::<arrow::datatypes::Float64Type>().value(r)
                        }
                    })
                    .collect(),
            ));
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn counties_aggregate_to_states_as_computed_from_raw_rows() {
    runtime().block_on(async {
        let f = Fixture::new().await;
        f.us_demand().await;
        let nc = demand(&["37"]);
        let sc = demand(&["45", "13"]);
        f.write("tarn://demand/nc", &nc).await;
        f.write("tarn://demand/south", &sc).await;
        let dims = vec![
            ("county".to_string(), "county".to_string()),
            ("sector".to_string(), "sector".to_string()),
        ];
        for uri in ["tarn://demand/nc", "tarn://demand/south"] {
            let out = f
                .registry
                .register_dataset("us_demand", uri, &dims, None)
                .await
                .expect("register");
            assert!(out.changed);
            assert_eq!(out.registration.version.version, 1);
            assert!(
                out.registration.body.uri.ends_with(":v1"),
                "{}",
                out.registration.body.uri
            );
        }
        // Registering the same snapshot again is no new version.
        let again = f
            .registry
            .register_dataset("us_demand", "tarn://demand/nc", &dims, None)
            .await
            .expect("register again");
        assert!(!again.changed);

        let q = ProjectQuery {
            project: "us_demand".into(),
            datasets: Vec::new(),
            group_by: GroupBy::parse_list("county=state,sector").expect("group by"),
            aggregations: vec![
                Aggregation::parse("sum(value)").expect("agg"),
                Aggregation::parse("count(*)").expect("agg"),
                Aggregation::parse("max(value)").expect("agg"),
            ],
            filter: None,
            time_resample: None,
        };
        let got = run(&f.registry, &q).await;
        let mut want: BTreeMap<(String, String), (f64, f64, f64)> = BTreeMap::new();
        for r in nc.iter().chain(&sc) {
            let e = want
                .entry((r.county[..2].to_string(), r.sector.clone()))
                .or_insert((0.0, 0.0, f64::MIN));
            let v = r.value.expect("demand() has no nulls");
            e.0 += v;
            e.1 += 1.0;
            e.2 = e.2.max(v);
        }
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((keys, values), ((state, sector), (sum, count, max))) in got.iter().zip(&want) {
            assert_eq!(keys, &vec![state.clone(), sector.clone()]);
            assert!(close(values[0], *sum), "{keys:?}: {} vs {sum}", values[0]);
            assert_eq!(values[1], *count);
            assert_eq!(values[2], *max);
        }
        // 3,236 counties x 3 sectors is more than a quarter of either dataset's rows: the
        // rows are joined one by one.
        let sql = f.registry.prepare_query(&q).await.expect("prepare").sql;
        assert!(!sql.contains("GROUP BY __k0"), "{sql}");

        // By state alone, 3,236 groups are at most a quarter of the rows of each dataset:
        // they are grouped by county first, with the same sums, counts and maxima.
        let by_state = ProjectQuery {
            group_by: GroupBy::parse_list("county=state").expect("group by"),
            ..q.clone()
        };
        let sql = f
            .registry
            .prepare_query(&by_state)
            .await
            .expect("prepare")
            .sql;
        assert_eq!(sql.matches("GROUP BY __k0").count(), 2, "{sql}");
        let got = run(&f.registry, &by_state).await;
        let mut states: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
        for ((state, _), (sum, count, max)) in &want {
            let e = states.entry(state.clone()).or_insert((0.0, 0.0, f64::MIN));
            e.0 += sum;
            e.1 += count;
            e.2 = e.2.max(*max);
        }
        assert_eq!(got.len(), states.len(), "{got:?}");
        for ((keys, values), (state, (sum, count, max))) in got.iter().zip(&states) {
            assert_eq!(keys, &vec![state.clone()]);
            assert!(close(values[0], *sum), "{keys:?}: {} vs {sum}", values[0]);
            assert_eq!(values[1], *count);
            assert_eq!(values[2], *max);
        }

        // Hourly, one dataset, with a filter: the same from raw rows.
        let q = ProjectQuery {
            datasets: vec!["demand/nc".into()],
            group_by: GroupBy::parse_list("county=state").expect("group by"),
            aggregations: vec![Aggregation::parse("avg(value)").expect("agg")],
            filter: Some("sector <> 'ind'".into()),
            time_resample: Some("1D".into()),
            ..q
        };
        let got = run(&f.registry, &q).await;
        assert_eq!(got.len(), 2, "two days: {got:?}");
        for (day, (keys, values)) in got.iter().enumerate() {
            assert_eq!(keys[0], "37");
            let rows: Vec<f64> = nc
                .iter()
                .filter(|r| r.sector != "ind" && (r.ts - T0) / 86_400 == day as i64)
                .filter_map(|r| r.value)
                .collect();
            let avg = rows.iter().sum::<f64>() / rows.len() as f64;
            assert!(close(values[0], avg), "day {day}: {} vs {avg}", values[0]);
        }
    });
}

#[test]
fn a_disaggregation_splits_values_by_fraction_exactly() {
    runtime().block_on(async {
        let f = Fixture::new().await;
        f.geography().await;
        let regions = f.file("regions.csv", "id,name\nnorth,North\nsouth,South\n");
        f.registry
            .create_dimension(&dim("region", "geography", &regions))
            .await
            .expect("region");
        // north splits 1/4 : 3/4 over two counties; south goes whole to a third.
        let rows = f.file(
            "split.csv",
            "from_id,to_id,fraction\nnorth,37001,0.25\nnorth,37003,0.75\nsouth,45001,1\n",
        );
        // Without --disaggregation the rows are an aggregation, whose fractions must sum
        // to 1 per region: they do here, so a fraction off makes the point.
        let off = f.file(
            "off.csv",
            "from_id,to_id,fraction\nnorth,37001,0.25\nnorth,37003,0.5\nsouth,45001,1\n",
        );
        let before = f.fingerprint().await;
        let e = f
            .registry
            .create_mapping(&mapping("region_to_county", "region", "county", &off))
            .await
            .expect_err("fractions off")
            .to_string();
        assert!(
            e.contains("do not sum to 1") && e.contains("\"north\" (sum 0.75)"),
            "{e}"
        );
        assert_eq!(f.fingerprint().await, before);
        f.registry
            .create_mapping(&MappingInput {
                disaggregation: true,
                ..mapping("region_to_county", "region", "county", &rows)
            })
            .await
            .expect("disaggregation");
        f.project(
            "split",
            &["region", "county", "sector"],
            &["region_to_county"],
        )
        .await;
        let rows = vec![
            Demand {
                ts: T0,
                county: "north".into(),
                sector: "res".into(),
                value: Some(10.0),
            },
            Demand {
                ts: T0,
                county: "south".into(),
                sector: "res".into(),
                value: Some(3.0),
            },
            Demand {
                ts: T0 + 60,
                county: "north".into(),
                sector: "com".into(),
                value: Some(1.0),
            },
        ];
        f.write("tarn://regional", &rows).await;
        f.registry
            .register_dataset(
                "split",
                "tarn://regional",
                &[("county".into(), "region".into())],
                None,
            )
            .await
            .expect("register");
        let got = run(
            &f.registry,
            &ProjectQuery {
                project: "split".into(),
                group_by: GroupBy::parse_list("county=county,sector").expect("group"),
                aggregations: vec![Aggregation::parse("sum(value)").expect("agg")],
                ..Default::default()
            },
        )
        .await;
        let got: Vec<(Vec<String>, f64)> = got.into_iter().map(|(k, v)| (k, v[0])).collect();
        let s = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert_eq!(
            got,
            vec![
                (s("37001", "com"), 0.25),
                (s("37001", "res"), 2.5),
                (s("37003", "com"), 0.75),
                (s("37003", "res"), 7.5),
                (s("45001", "res"), 3.0),
            ]
        );
    });
}

#[test]
fn bad_inputs_are_clear_errors_and_change_nothing() {
    runtime().block_on(async {
        let f = Fixture::new().await;
        f.us_demand().await;
        let mut rows = demand(&["37"]);
        rows[5].county = "99999".into();
        rows[9].county = "99999".into();
        rows[11].county = "37999".into();
        f.write("tarn://demand/bad", &rows).await;
        // State -> county by equal shares: a disaggregation, fine alone, a cycle with
        // county -> state.
        let all = counties();
        let mut per_state: BTreeMap<&str, usize> = BTreeMap::new();
        for (s, _, _) in &all {
            *per_state.entry(s.as_str()).or_default() += 1;
        }
        let mut back = String::from("from_id,to_id,fraction\n");
        for (s, c, _) in &all {
            back.push_str(&format!("{s},{s}{c},{}\n", 1.0 / per_state[s.as_str()] as f64));
        }
        let back = f.file("back.csv", &back);
        f.registry
            .create_mapping(&MappingInput {
                disaggregation: true,
                ..mapping("state_to_county", "state", "county", &back)
            })
            .await
            .expect("state_to_county");
        let before = f.fingerprint().await;
        let dims = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };

        // A dataset with unknown county ids names them, with their row counts.
        let e = f
            .registry
            .register_dataset("us_demand", "tarn://demand/bad", &dims(&[("county", "county")]), None)
            .await
            .expect_err("unknown county")
            .to_string();
        assert!(
            e.contains("column \"county\": 2 value(s) are no record of dimension \"county\" v1: \"37999\" (1 row), \"99999\" (2 rows)"),
            "{e}"
        );
        for (project, uri, d, needle) in [
            ("nope", "tarn://demand/bad", vec![("county", "county")], "project \"nope\" does not exist"),
            ("us_demand", "tarn://demand/none", vec![("county", "county")], "demand/none"),
            ("us_demand", "tarn://demand/bad", vec![("cnty", "county")], "has no column \"cnty\""),
            ("us_demand", "tarn://demand/bad", vec![("county", "region")], "has no dimension \"region\""),
        ] {
            let e = f
                .registry
                .register_dataset(project, uri, &dims(&d), None)
                .await
                .expect_err(needle)
                .to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }

        // Mappings: a county left out, an unknown id, a cycle, an unknown dimension.
        let mut text = String::from("from_id,to_id\n");
        for (s, c, _) in counties().iter().filter(|(_, c, _)| c != "005") {
            text.push_str(&format!("{s}{c},{s}\n"));
        }
        let missing = f.file("missing.csv", &text);
        let e = f
            .registry
            .create_mapping(&mapping("c2s", "county", "state", &missing))
            .await
            .expect_err("missing county")
            .to_string();
        assert!(e.contains("are not mapped") && e.contains("\"01005\""), "{e}");
        let unknown = f.file("unknown.csv", &format!("{text}99001,99\n"));
        let e = f
            .registry
            .create_mapping(&mapping("c2s", "county", "state", &unknown))
            .await
            .expect_err("unknown id")
            .to_string();
        assert!(e.contains("no record of dimension \"county\"") && e.contains("\"99001\" (1 row)"), "{e}");
        let e = f
            .registry
            .create_mapping(&mapping("loop", "state", "state", &missing))
            .await
            .expect_err("self")
            .to_string();
        assert!(e.contains("to itself, a cycle"), "{e}");
        let e = f
            .registry
            .create_mapping(&mapping("x", "county", "zip", &missing))
            .await
            .expect_err("unknown dimension")
            .to_string();
        assert!(e.contains("dimension \"zip\" does not exist"), "{e}");

        // Dimensions: duplicate ids, a missing id column, a bad name.
        let dup = f.file("dup.csv", "id,name\na,A\nb,B\na,A again\n");
        let e = f
            .registry
            .create_dimension(&dim("dup", "sector", &dup))
            .await
            .expect_err("duplicates")
            .to_string();
        assert!(e.contains("1 id(s) appear more than once: \"a\" (2 times)"), "{e}");
        let e = f
            .registry
            .create_dimension(&DimensionInput {
                name: "dup",
                dimension_type: Some("sector"),
                records: &dup,
                id_column: "code",
                name_column: "name",
                message: None,
            })
            .await
            .expect_err("no column")
            .to_string();
        assert!(e.contains("has no column \"code\""), "{e}");
        let e = f
            .registry
            .create_dimension(&dim("Bad Name", "sector", &dup))
            .await
            .expect_err("name")
            .to_string();
        assert!(e.contains("is not valid"), "{e}");

        // Projects: an unknown dimension, a mapping whose dimension is not listed, a cycle.
        let def = |dims: &[&str], maps: &[&str]| ProjectDefinition {
            name: "p2".into(),
            description: String::new(),
            dimensions: dims.iter().map(|s| s.to_string()).collect(),
            mappings: maps.iter().map(|s| s.to_string()).collect(),
        };
        for (d, needle) in [
            (def(&["county", "zip"], &[]), "unknown dimension(s) zip"),
            (def(&["county"], &["county_to_state"]), "which the project does not list"),
            (def(&["county", "state"], &["nope"]), "unknown mapping \"nope\""),
            (def(&[], &[]), "at least one dimension"),
        ] {
            let e = f.registry.create_project(&d, None).await.expect_err(needle).to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = f
            .registry
            .create_project(&def(&["county", "state"], &["county_to_state", "state_to_county"]), None)
            .await
            .expect_err("cycle")
            .to_string();
        assert!(e.contains("form a cycle (county -> state -> county)"), "{e}");
        assert_eq!(f.fingerprint().await, before, "nothing changed");
    });
}

#[test]
fn history_and_dependents_follow_updates() {
    runtime().block_on(async {
        let f = Fixture::new().await;
        f.us_demand().await;
        f.write("tarn://demand/nc", &demand(&["37"])).await;
        let dims = vec![("county".to_string(), "county".to_string())];
        f.registry
            .register_dataset("us_demand", "tarn://demand/nc", &dims, Some("first"))
            .await
            .expect("register");

        let names = |ds: &[tarn::registry_store::Dependent]| -> Vec<String> {
            ds.iter()
                .map(|d| format!("{}:{}@{}", d.kind.as_str(), d.name, d.version))
                .collect()
        };
        let deps = f
            .registry
            .dependents("dimension", "county", None)
            .await
            .expect("deps");
        assert_eq!(
            names(&deps),
            vec![
                "mapping:county_to_state@1",
                "project:us_demand@1",
                "registration:us_demand/demand/nc@1"
            ]
        );
        let deps = f
            .registry
            .dependents("dataset", "demand/nc@main", Some(1))
            .await
            .expect("deps");
        assert_eq!(names(&deps), vec!["registration:us_demand/demand/nc@1"]);

        // A county's name is fixed: county v2. Everything that used v1 is stale.
        let mut csv = String::from("id,name,state\n");
        for (s, c, n) in counties() {
            let n = if s == "37" && c == "001" {
                "Alamance Co."
            } else {
                n.as_str()
            };
            csv.push_str(&format!("{s}{c},{n},{s}\n"));
        }
        let fixed = f.file("fixed.csv", &csv);
        let input = DimensionInput {
            name: "county",
            dimension_type: None,
            records: &fixed,
            id_column: "id",
            name_column: "name",
            message: None,
        };
        let e = f
            .registry
            .update_dimension(&input)
            .await
            .expect_err("no message")
            .to_string();
        assert!(e.contains("needs a message"), "{e}");
        let out = f
            .registry
            .update_dimension(&DimensionInput {
                message: Some("fix Alamance"),
                ..input.clone()
            })
            .await
            .expect("update");
        assert_eq!(out.version.as_ref().map(|v| v.version), Some(2));
        assert_eq!(
            names(&out.stale),
            vec![
                "mapping:county_to_state@1",
                "project:us_demand@1",
                "registration:us_demand/demand/nc@1"
            ]
        );
        // The same records again: no version.
        let same = f
            .registry
            .update_dimension(&DimensionInput {
                message: Some("again"),
                ..input.clone()
            })
            .await
            .expect("same");
        assert!(same.version.is_none());

        // The project cannot move to county v2 before its mapping does.
        let def = ProjectDefinition {
            name: "us_demand".into(),
            description: String::new(),
            dimensions: vec!["county".into(), "state".into(), "sector".into()],
            mappings: vec!["county_to_state".into()],
        };
        let e = f
            .registry
            .apply_project(&def, Some("county v2"))
            .await
            .expect_err("mapping first")
            .to_string();
        assert!(e.contains("update the mapping first"), "{e}");
        let mut rows = String::from("from_id,to_id\n");
        for (s, c, _) in counties() {
            rows.push_str(&format!("{s}{c},{s}\n"));
        }
        let rows = f.file("rows.csv", &rows);
        let out = f
            .registry
            .update_mapping(&MappingInput {
                message: Some("county v2"),
                ..mapping("county_to_state", "county", "state", &rows)
            })
            .await
            .expect("mapping update");
        assert_eq!(out.version.as_ref().map(|v| v.version), Some(2));
        assert_eq!(names(&out.stale), vec!["project:us_demand@1"]);
        let applied = f
            .registry
            .apply_project(&def, Some("county v2"))
            .await
            .expect("apply");
        assert_eq!(applied.version.as_ref().map(|v| v.version), Some(2));
        f.registry
            .register_dataset("us_demand", "tarn://demand/nc", &dims, Some("again"))
            .await
            .expect("re-register");

        // Only heads count: nothing uses county v1 any more; v2 has three users.
        let deps = f
            .registry
            .dependents("dimension", "county", Some(1))
            .await
            .expect("deps");
        assert!(deps.is_empty(), "{:?}", names(&deps));
        let deps = f
            .registry
            .dependents("dimension", "county", Some(2))
            .await
            .expect("deps");
        assert_eq!(
            names(&deps),
            vec![
                "mapping:county_to_state@2",
                "project:us_demand@2",
                "registration:us_demand/demand/nc@2"
            ]
        );
        let history = f
            .registry
            .history(ComponentKind::Dimension, "county")
            .await
            .expect("history");
        let messages: Vec<(u64, &str)> = history
            .iter()
            .map(|v| (v.version, v.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![(2, "fix Alamance"), (1, "Census 2020 counties")]
        );
        assert!(history[0].timestamp >= history[1].timestamp);
        assert!(history.iter().all(|v| !v.author.is_empty()));
        // The old version still reads as it was.
        let v1 = f.registry.dimension("county", Some(1)).await.expect("v1");
        let alamance = v1.records.iter().find(|r| r.id == "37001").expect("37001");
        assert_eq!(alamance.name, "Alamance County");
        assert_eq!(alamance.extra.get("state").map(String::as_str), Some("37"));
        let registration = f
            .registry
            .history(ComponentKind::Registration, "us_demand/demand/nc")
            .await
            .expect("history");
        assert_eq!(registration.len(), 2);
        assert_eq!(registration[0].message, "again");
    });
}
