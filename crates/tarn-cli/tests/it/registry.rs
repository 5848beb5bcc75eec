//! `tarn dimension|mapping|project|registry` (SPEC §7, §11) through the binary: the whole
//! flow on a small geography with `--json` checked field by field, a query through a
//! mapping with `--show-sql` and every output format, and bad inputs with their message,
//! exit code and an unchanged registry.

use crate::common::*;
use serde_json::{Value, json};

/// Four counties in two states, a sector dimension, the county -> state mapping, a project,
/// and a dataset `demand` of hourly rows per county and sector.
fn registry_lake() -> TestLake {
    let lake = TestLake::new();
    let counties = lake.file(
        "counties.csv",
        "geoid,county_name,state\n37001,Alamance County,37\n37003,Alexander County,37\n45001,Abbeville County,45\n45003,Aiken County,45\n",
    );
    let states = lake.file(
        "states.csv",
        "name,postal,fips\nNorth Carolina,NC,37\nSouth Carolina,SC,45\n",
    );
    let sectors = lake.file("sectors.csv", "id,name\nres,Residential\ncom,Commercial\n");
    let c2s = lake.file(
        "c2s.csv",
        "county,st\n37001,37\n37003,37\n45001,45\n45003,45\n",
    );
    let p = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    lake.run([
        "dimension",
        "create",
        "county",
        "--type",
        "geography",
        "--records",
        &p(&counties),
        "--id-column",
        "geoid",
        "--name-column",
        "county_name",
        "--message",
        "four counties",
    ])
    .ok();
    lake.run([
        "dimension",
        "create",
        "state",
        "--type",
        "geography",
        "--records",
        &p(&states),
        "--id-column",
        "fips",
    ])
    .ok();
    lake.run([
        "dimension",
        "create",
        "sector",
        "--type",
        "sector",
        "--records",
        &p(&sectors),
    ])
    .ok();
    lake.run([
        "mapping",
        "create",
        "county_to_state",
        "--from",
        "county",
        "--to",
        "state",
        "--records",
        &p(&c2s),
        "--from-column",
        "county",
        "--to-column",
        "st",
    ])
    .ok();
    let toml = lake.file(
        "project.toml",
        "name = \"carolinas\"\ndescription = \"Demand in the Carolinas\"\ndimensions = [\"county\", \"state\", \"sector\"]\nmappings = [\"county_to_state\"]\n",
    );
    lake.run(["project", "apply", &p(&toml)]).ok();
    let mut csv = String::from("ts,county,sector,value\n");
    for h in 0..4 {
        for (i, c) in ["37001", "37003", "45001", "45003"].iter().enumerate() {
            for (k, s) in ["res", "com"].iter().enumerate() {
                csv.push_str(&format!(
                    "2024-01-01T{h:02}:00:00Z,{c},{s},{}\n",
                    h * 100 + i * 10 + k
                ));
            }
        }
    }
    let data = lake.file("demand.csv", csv);
    lake.run(["write", "tarn://demand", &p(&data), "--ordered-on", "ts"])
        .ok();
    lake
}

fn registry_state(lake: &TestLake) -> Value {
    lake.run(["--json", "registry", "ls"]).ok().json()
}

#[test]
fn the_registry_flow_with_json() {
    let lake = registry_lake();
    assert_eq!(
        registry_state(&lake),
        json!([
            {"kind": "dimension", "name": "county", "version": 1},
            {"kind": "dimension", "name": "sector", "version": 1},
            {"kind": "dimension", "name": "state", "version": 1},
            {"kind": "mapping", "name": "county_to_state", "version": 1},
            {"kind": "project", "name": "carolinas", "version": 1},
        ])
    );
    let show = lake
        .run(["--json", "dimension", "show", "county"])
        .ok()
        .json();
    assert_eq!(show["version"], 1);
    assert_eq!(show["message"], "four counties");
    assert_eq!(show["definition"]["type"], "geography");
    assert_eq!(show["definition"]["extra_columns"], json!(["state"]));
    assert_eq!(
        show["records"][0],
        json!({"id": "37001", "name": "Alamance County", "state": "37"})
    );
    let m = lake
        .run(["--json", "mapping", "show", "county_to_state"])
        .ok()
        .json();
    assert_eq!(
        m["definition"]["from"],
        json!({"name": "county", "version": 1})
    );
    assert_eq!(m["rows"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        m["rows"][3],
        json!({"from_id": "45003", "to_id": "45", "fraction": 1.0})
    );

    let reg = lake
        .run([
            "--json",
            "project",
            "register-dataset",
            "carolinas",
            "tarn://demand",
            "--dimension",
            "county=county",
            "--dimension",
            "sector=sector",
        ])
        .ok()
        .json();
    assert_eq!(reg["kind"], "registration");
    assert_eq!(reg["name"], "carolinas/demand");
    assert_eq!(reg["changed"], true);
    assert_eq!(reg["definition"]["uri"], "tarn://demand:v1");
    assert_eq!(
        reg["definition"]["columns"],
        json!({"county": {"name": "county", "version": 1}, "sector": {"name": "sector", "version": 1}})
    );
    let show = lake
        .run(["--json", "project", "show", "carolinas"])
        .ok()
        .json();
    assert_eq!(show["definition"]["description"], "Demand in the Carolinas");
    assert_eq!(show["datasets"][0]["uri"], "tarn://demand:v1");

    // State by sector: value = 100h + 10i + k summed over hours and the state's counties.
    let run = lake
        .run([
            "project",
            "query",
            "carolinas",
            "--dataset",
            "tarn://demand",
            "--group-by",
            "county=state,sector",
            "--agg",
            "sum(value)",
            "--agg",
            "count(*)",
            "--format",
            "csv",
            "--show-sql",
        ])
        .ok();
    let expected = |state: usize, k: usize| -> f64 {
        (0..4)
            .map(|h| {
                (0..2)
                    .map(|j| (h * 100 + (state * 2 + j) * 10 + k) as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    assert_eq!(
        run.stdout(),
        format!(
            "state,sector,sum_value,count\n37,com,{:.1},8.0\n37,res,{:.1},8.0\n45,com,{:.1},8.0\n45,res,{:.1},8.0\n",
            expected(0, 1),
            expected(0, 0),
            expected(1, 1),
            expected(1, 0)
        )
    );
    assert!(
        run.stderr
            .contains("JOIN \"__tarn_mapping_county_to_state_v1\""),
        "{}",
        run.stderr
    );
    // Hourly, one state, to Parquet: the file reads back as a dataset input. The CSV made
    // `county` an integer column; its values still match the records' text ids.
    let out = lake.path("hourly.parquet");
    lake.run([
        "project",
        "query",
        "carolinas",
        "--group-by",
        "county=state",
        "--agg",
        "sum(value)",
        "--where",
        "county < 40000",
        "--time-resample",
        "1h",
        "--output",
        out.to_str().expect("utf-8"),
    ])
    .ok();
    lake.run([
        "write",
        "tarn://hourly",
        out.to_str().expect("utf-8"),
        "--ordered-on",
        "ts",
    ])
    .ok();
    assert_eq!(
        lake.read_csv("tarn://hourly", &["--columns", "state,sum_value"]),
        "state,sum_value\n37,22.0\n37,422.0\n37,822.0\n37,1222.0\n"
    );

    // A new county name: county v2; the mapping, the project and the registration are
    // stale, and the update says so.
    let fixed = lake.file(
        "fixed.csv",
        "geoid,county_name,state\n37001,Alamance Co.,37\n37003,Alexander County,37\n45001,Abbeville County,45\n45003,Aiken County,45\n",
    );
    let out = lake
        .run([
            "--json",
            "dimension",
            "update",
            "county",
            "--records",
            fixed.to_str().expect("utf-8"),
            "--id-column",
            "geoid",
            "--name-column",
            "county_name",
            "--message",
            "Alamance",
        ])
        .ok()
        .json();
    assert_eq!(out["version"]["version"], 2);
    let stale: Vec<String> = out["stale"]
        .as_array()
        .expect("stale")
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d["kind"].as_str().unwrap_or(""),
                d["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        stale,
        vec![
            "mapping:county_to_state",
            "project:carolinas",
            "registration:carolinas/demand"
        ]
    );
    let history = lake
        .run(["--json", "registry", "history", "dimension:county"])
        .ok()
        .json();
    let versions: Vec<(u64, String)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap_or(0),
                v["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            (2, "Alamance".to_string()),
            (1, "four counties".to_string())
        ]
    );
    let deps = lake
        .run(["--json", "registry", "dependents", "dataset:demand"])
        .ok()
        .json();
    assert_eq!(deps[0]["name"], "carolinas/demand");
    assert_eq!(
        deps[0]["uses"],
        json!({"kind": "dataset", "name": "demand@main", "version": 1})
    );
    let text = lake.run(["registry", "dependents", "state"]).ok().stdout();
    assert!(
        text.contains("county_to_state") && text.contains("carolinas"),
        "{text}"
    );
}

#[test]
fn bad_registry_inputs_are_clear_errors_and_change_nothing() {
    let lake = registry_lake();
    let before = registry_state(&lake);
    let bad = lake.file("bad.csv", "ts,county,sector,value\n2024-01-01T00:00:00Z,99999,res,1\n2024-01-01T01:00:00Z,99999,res,1\n2024-01-01T02:00:00Z,37001,oil,1\n");
    lake.run([
        "write",
        "tarn://bad",
        bad.to_str().expect("utf-8"),
        "--ordered-on",
        "ts",
    ])
    .ok();
    let dup = lake.file("dup.csv", "id,name\na,A\na,B\n");
    let off = lake.file(
        "off.csv",
        "from_id,to_id,fraction\n37001,37,0.5\n37003,37,1\n45001,45,1\n45003,45,1\n",
    );
    let (dup, off) = (
        dup.to_str().expect("utf-8").to_string(),
        off.to_str().expect("utf-8").to_string(),
    );
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "project",
                "register-dataset",
                "carolinas",
                "tarn://bad",
                "--dimension",
                "county=county",
                "--dimension",
                "sector=sector",
            ],
            vec![
                "column \"county\": 1 value(s)",
                "\"99999\" (2 rows)",
                "column \"sector\": 1 value(s)",
                "\"oil\" (1 row)",
            ],
        ),
        (
            vec![
                "project",
                "register-dataset",
                "nowhere",
                "tarn://demand",
                "--dimension",
                "county=county",
            ],
            vec!["project \"nowhere\" does not exist"],
        ),
        (
            vec![
                "dimension",
                "create",
                "dup",
                "--type",
                "sector",
                "--records",
                dup.as_str(),
            ],
            vec!["appear more than once", "\"a\" (2 times)"],
        ),
        (
            vec![
                "dimension",
                "create",
                "county",
                "--type",
                "geography",
                "--records",
                dup.as_str(),
            ],
            vec!["dimension \"county\" already exists"],
        ),
        (
            vec![
                "dimension",
                "create",
                "x",
                "--type",
                "geography",
                "--records",
                "nope.csv",
            ],
            vec!["cannot read", "nope.csv"],
        ),
        (
            vec![
                "dimension",
                "update",
                "nope",
                "--records",
                dup.as_str(),
                "--message",
                "m",
            ],
            vec!["dimension \"nope\" does not exist"],
        ),
        (
            vec![
                "mapping",
                "create",
                "m",
                "--from",
                "county",
                "--to",
                "state",
                "--records",
                off.as_str(),
            ],
            vec!["do not sum to 1", "\"37001\" (sum 0.5)"],
        ),
        (
            vec![
                "mapping",
                "create",
                "m",
                "--from",
                "county",
                "--to",
                "county",
                "--records",
                off.as_str(),
            ],
            vec!["to itself, a cycle"],
        ),
        (
            vec![
                "mapping",
                "create",
                "m",
                "--from",
                "county",
                "--to",
                "zip",
                "--records",
                off.as_str(),
            ],
            vec!["dimension \"zip\" does not exist"],
        ),
        (
            vec![
                "project",
                "create",
                "p",
                "--dimension",
                "county",
                "--dimension",
                "zip",
            ],
            vec!["unknown dimension(s) zip"],
        ),
        (
            vec![
                "project",
                "query",
                "carolinas",
                "--group-by",
                "county=state",
                "--agg",
                "median(value)",
            ],
            vec!["--agg \"median(value)\""],
        ),
        (
            vec![
                "project",
                "query",
                "carolinas",
                "--group-by",
                "county=state",
                "--agg",
                "sum(value)",
            ],
            vec!["no dataset is registered to project \"carolinas\""],
        ),
        (
            vec!["registry", "history", "thing:x"],
            vec!["has no kind \"thing\""],
        ),
        (
            vec!["registry", "history", "nothing"],
            vec!["no dimension, mapping, project or registration is named \"nothing\""],
        ),
    ];
    for (args, needles) in cases {
        lake.run(&args).fails(1, &needles);
    }
    // A usage error is clap's: exit code 2.
    lake.run([
        "project",
        "register-dataset",
        "carolinas",
        "tarn://demand",
        "--dimension",
        "county",
    ])
    .fails(2, &["expected FIELD=VALUE"]);
    assert_eq!(registry_state(&lake), before);
}
