//! The registry part of `tarn demo` (SPEC §7): the real US county and state records as
//! dimensions, a sector dimension, the county -> state mapping, a project, and a demand
//! dataset per county of North and South Carolina derived from the Greensboro typical-year
//! weather, registered to the project.
//!
//! The Census files need two fixes to be dimensions, as validation finds:
//! - the counties file lists 9 counties under two names each (`36005` as `Bronx County` and
//!   `the Bronx Borough`), and the states file 3 states under several names: the first name
//!   is kept, the others become an `alias` column;
//! - counties of the U.S. Minor Outlying Islands (FIPS 74) have no state record: one is
//!   added.
//!
//! The demand is a stand-in for a model's output, simple enough to check by hand: for one
//! January week of the Greensboro, NC typical year, every county gets a weight from its
//! FIPS code, `w = 0.5 + (countyfp mod 10) / 5`, and with `hdd = max(0, 18 - T)` per hour,
//! - residential: `w * (2 + 0.15 * hdd)` MWh;
//! - commercial: `w * (1.5 + 0.1 * hdd)`, times 1.3 from 08:00 to 18:00 UTC and 0.8 else;
//! - industrial: `3 * w`.

use anyhow::{Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, TimestampNanosecondType};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tarn::{Lake, WriteRequest};
use tarn_registry::{DimensionInput, MappingInput, ProjectDefinition, Registry};

const COUNTIES: &str = include_str!("../data/us_counties_2020.csv");
const STATES: &str = include_str!("../data/us_states.csv");
pub const PROJECT: &str = "us_demand";
pub const DATASET: &str = "demand/carolinas/1h";
/// 1990-01-08T00:00:00Z to 1990-01-15T00:00:00Z, in nanoseconds.
const WEEK: (i64, i64) = (631_756_800_000_000_000, 632_361_600_000_000_000);

/// First name per id; the other names of an id as `alias` (joined with `; `).
fn dedupe(
    rows: impl Iterator<Item = (String, String, Vec<String>)>,
) -> Vec<(String, String, String, Vec<String>)> {
    let mut out: Vec<(String, String, String, Vec<String>)> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for (id, name, extra) in rows {
        match at.get(&id) {
            Some(&i) => {
                let alias = &mut out[i].2;
                if !alias.is_empty() {
                    alias.push_str("; ");
                }
                alias.push_str(&name);
            }
            None => {
                at.insert(id.clone(), out.len());
                out.push((id, name, String::new(), extra));
            }
        }
    }
    out
}

/// The records files the demo registers, written under `dir` for people to look at.
fn write_inputs(dir: &Path) -> Result<Vec<(u32, String)>> {
    std::fs::create_dir_all(dir)?;
    let counties = dedupe(COUNTIES.lines().skip(1).filter_map(|l| {
        let mut f = l.splitn(3, ',');
        let (s, c, n) = (f.next()?, f.next()?, f.next()?);
        Some((format!("{s}{c}"), n.to_string(), vec![s.to_string()]))
    }));
    let mut csv = String::from("id,name,state,alias\n");
    let mut c2s = String::from("from_id,to_id\n");
    let mut carolinas = Vec::new();
    for (id, name, alias, extra) in &counties {
        csv.push_str(&format!("{id},{name},{},{alias}\n", extra[0]));
        c2s.push_str(&format!("{id},{}\n", extra[0]));
        if extra[0] == "37" || extra[0] == "45" {
            let countyfp: u32 = id[2..].parse().context("county FIPS")?;
            carolinas.push((countyfp, id.clone()));
        }
    }
    std::fs::write(dir.join("counties.csv"), csv)?;
    std::fs::write(dir.join("county_to_state.csv"), c2s)?;
    let states = dedupe(STATES.lines().skip(1).filter_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        let [name, postal, fips] = f.as_slice() else {
            return None;
        };
        Some((fips.to_string(), name.to_string(), vec![postal.to_string()]))
    }));
    let mut csv = String::from("id,name,postal,alias\n");
    for (id, name, alias, extra) in &states {
        csv.push_str(&format!("{id},{name},{},{alias}\n", extra[0]));
    }
    csv.push_str("74,U.S. Minor Outlying Islands,UM,\n");
    std::fs::write(dir.join("states.csv"), csv)?;
    std::fs::write(
        dir.join("sectors.csv"),
        "id,name\nres,Residential\ncom,Commercial\nind,Industrial\n",
    )?;
    Ok(carolinas)
}

/// One week of hourly demand per county and sector from the Greensboro weather.
fn demand(weather: &RecordBatch, counties: &[(u32, String)]) -> Result<RecordBatch> {
    let ts = weather
        .column(weather.schema().index_of("ts")?)
        .as_primitive_opt::<TimestampNanosecondType>()
        .context("weather ts is not timestamp[ns]")?
        .clone();
    let temp = arrow::compute::cast(
        weather.column(weather.schema().index_of("temp_air_c")?),
        &arrow::datatypes::DataType::Float64,
    )?;
    let temp = temp.as_primitive::<Float64Type>();
    let (mut t, mut county, mut sector, mut value) = (vec![], vec![], vec![], vec![]);
    for i in 0..ts.len() {
        let now = ts.value(i);
        if now < WEEK.0 || now >= WEEK.1 || temp.is_null(i) {
            continue;
        }
        let hdd = (18.0 - temp.value(i)).max(0.0);
        let hour = (now / 3_600_000_000_000).rem_euclid(24);
        let office = if (8..18).contains(&hour) { 1.3 } else { 0.8 };
        for (countyfp, id) in counties {
            let w = 0.5 + f64::from(countyfp % 10) / 5.0;
            for (s, v) in [
                ("res", w * (2.0 + 0.15 * hdd)),
                ("com", w * (1.5 + 0.1 * hdd) * office),
                ("ind", 3.0 * w),
            ] {
                t.push(now);
                county.push(id.clone());
                sector.push(s);
                value.push((v * 1000.0).round() / 1000.0);
            }
        }
    }
    let ts: ArrayRef =
        Arc::new(arrow::array::TimestampNanosecondArray::from(t).with_timezone("UTC"));
    Ok(RecordBatch::try_from_iter([
        ("ts", ts),
        ("county", Arc::new(StringArray::from(county)) as ArrayRef),
        ("sector", Arc::new(StringArray::from(sector)) as ArrayRef),
        (
            "demand_mwh",
            Arc::new(Float64Array::from(value)) as ArrayRef,
        ),
    ])?)
}

/// Builds the registry; returns a summary for `--json`.
pub async fn build(lake: &Lake, dir: &Path, greensboro: &RecordBatch) -> Result<Value> {
    let inputs = dir.join("demo-inputs");
    let carolinas = write_inputs(&inputs)?;
    let registry = Registry::new(lake);
    let dimension =
        |name: &'static str, t: &'static str, file: &'static str, message: &'static str| {
            let inputs = inputs.clone();
            let registry = registry.clone();
            async move {
                registry
                    .create_dimension(&DimensionInput {
                        name,
                        dimension_type: Some(t),
                        records: &inputs.join(file),
                        id_column: "id",
                        name_column: "name",
                        message: Some(message),
                    })
                    .await
            }
        };
    let county = dimension(
        "county",
        "geography",
        "counties.csv",
        "US Census 2020 counties and equivalents (id: state FIPS + county FIPS)",
    )
    .await?;
    let state = dimension(
        "state",
        "geography",
        "states.csv",
        "US Census states, DC and territories (id: FIPS)",
    )
    .await?;
    let sector = dimension("sector", "sector", "sectors.csv", "three end-use sectors").await?;
    let mapping = registry
        .create_mapping(&MappingInput {
            name: "county_to_state",
            from: Some("county"),
            to: Some("state"),
            records: &inputs.join("county_to_state.csv"),
            from_column: "from_id",
            to_column: "to_id",
            fraction_column: "fraction",
            disaggregation: false,
            message: Some("each county lies in one state"),
        })
        .await?;
    let project =
        registry
            .create_project(
                &ProjectDefinition {
                    name: PROJECT.into(),
                    description:
                        "Hourly electricity demand of the Carolinas by state and sector (a demo)"
                            .into(),
                    dimensions: vec!["county".into(), "state".into(), "sector".into()],
                    mappings: vec!["county_to_state".into()],
                },
                Some("demo project"),
            )
            .await?;
    let batch = demand(greensboro, &carolinas)?;
    let rows = batch.num_rows();
    lake.write(
        DATASET,
        batch,
        WriteRequest::new()
            .ordered_on("ts")
            .meta(
                "source",
                "derived from NREL TMY3 723170 (Greensboro, NC); see tarn demo's docs",
            )
            .message("demand model run, week of 1990-01-08"),
    )
    .await?;
    let registration = registry
        .register_dataset(
            PROJECT,
            DATASET,
            &[
                ("county".into(), "county".into()),
                ("sector".into(), "sector".into()),
            ],
            Some("demo registration"),
        )
        .await?;
    Ok(json!({
        "dimensions": [county.name, state.name, sector.name],
        "mappings": [mapping.name],
        "project": project.name,
        "registered": registration.registration.body.uri,
        "rows": rows,
    }))
}
