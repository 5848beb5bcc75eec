//! `tarn collection create|ls|show|key` and `tarn ls PREFIX --where` (SPEC §1, §11): the
//! JSON of each, and every bad input with its exit code (2 for what clap rejects, 1 for the
//! rest), its `error: ` message, and an unchanged lake (datasets, logs, data files and
//! collections).

use crate::common::*;
use serde_json::{Value, json};

/// A lake with three `weather` datasets (one not a key), an unrelated one, and an input
/// file `rows.csv`.
fn lake_with_tree() -> (TestLake, String) {
    let lake = TestLake::new();
    let rows: Vec<Row> = (0..3).map(|k| Row::new(BASE_MS + k * 60_000, k)).collect();
    let input = lake.file("rows.csv", csv_text(&rows)).display().to_string();
    for uri in [
        "weather/temp-berlin/1D",
        "weather/temp-paris/1D",
        "weather/temp/1D",
        "m/x",
    ] {
        lake.run(["write", uri, &input, "--ordered-on", "ts"]).ok();
    }
    (lake, input)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn create_ls_show_key_and_where() {
    let (lake, input) = lake_with_tree();
    let created = lake
        .run([
            "--json",
            "collection",
            "create",
            "weather",
            "--fields",
            "quantity:str,city:str",
            "--sublevel",
            "frequency:str",
        ])
        .ok();
    let c = created.json();
    assert_eq!(c["name"], "weather");
    assert_eq!(c["pattern"], "weather/<quantity>-<city>/<frequency>");
    assert_eq!(c["separator"], "-");
    assert_eq!(
        c["levels"],
        json!([
            [{"name": "quantity", "kind": "str"}, {"name": "city", "kind": "str"}],
            [{"name": "frequency", "kind": "str"}]
        ])
    );
    assert_eq!(
        names(&c["datasets"]),
        ["weather/temp-berlin/1D", "weather/temp-paris/1D"]
    );
    assert_eq!(
        c["unmatched"],
        json!([{"name": "weather/temp/1D",
                "reason": "segment \"temp\" has 1 field separated by '-', expected 2 (<quantity>-<city>)"}])
    );
    // Adopting a tree with names that are not keys is allowed, and said on stderr.
    assert!(
        created.stderr.contains(
            "warning: 1 dataset under weather/ is not named weather/<quantity>-<city>/<frequency>"
        ),
        "{}",
        created.describe()
    );

    let runs = lake
        .run([
            "collection",
            "create",
            "ml/runs",
            "--fields",
            "model:str,seed:int",
            "--sublevel",
            "step:int",
            "--sublevel",
            "kind:str",
            "--separator",
            "_",
        ])
        .ok()
        .stdout();
    assert_eq!(
        runs,
        "created collection ml/runs: datasets are named ml/runs/<model>_<seed>/<step>/<kind>\n"
    );

    let list = lake.run(["--json", "collection", "ls"]).ok().json();
    assert_eq!(names(&list), ["ml/runs", "weather"]);
    assert_eq!(list[0]["separator"], "_");
    assert_eq!(list[1]["pattern"], "weather/<quantity>-<city>/<frequency>");
    let text = lake.run(["collection", "ls"]).ok().stdout();
    assert!(
        text.contains("ml/runs/<model>_<seed>/<step>/<kind>"),
        "{text}"
    );

    // `key` prints the name, for scripts; a negative int is fine with the '_' separator.
    let name = lake
        .run([
            "collection",
            "key",
            "ml/runs",
            "step=10",
            "model=gpt",
            "kind=eval",
            "seed=-3",
        ])
        .ok()
        .stdout();
    assert_eq!(name, "ml/runs/gpt_-3/10/eval\n");
    lake.run(["write", name.trim(), &input, "--ordered-on", "ts"])
        .ok();
    let key = lake
        .run([
            "--json",
            "collection",
            "key",
            "ml/runs",
            "step=10",
            "model=gpt",
            "kind=eval",
            "seed=-3",
        ])
        .ok()
        .json();
    assert_eq!(
        key,
        json!({"collection": "ml/runs", "name": "ml/runs/gpt_-3/10/eval",
               "uri": "tarn://ml/runs/gpt_-3/10/eval",
               "key": {"model": "gpt", "seed": -3, "step": 10, "kind": "eval"},
               "exists": true})
    );
    let key = lake
        .run([
            "--json",
            "collection",
            "key",
            "weather",
            "quantity=rain",
            "city=oslo",
            "frequency=1h",
        ])
        .ok()
        .json();
    assert_eq!(key["name"], "weather/rain-oslo/1h");
    assert_eq!(key["exists"], false);

    let show = lake
        .run(["--json", "collection", "show", "weather"])
        .ok()
        .json();
    assert_eq!(
        show["datasets"][0]["key"],
        json!({"quantity": "temp", "city": "berlin", "frequency": "1D"})
    );
    assert_eq!(show["datasets"][0]["rows"], 3);
    assert_eq!(show["unmatched"][0]["name"], "weather/temp/1D");
    let show = lake
        .run(["--json", "collection", "show", "ml/runs"])
        .ok()
        .json();
    assert_eq!(
        show["datasets"][0]["key"],
        json!({"model": "gpt", "seed": -3, "step": 10, "kind": "eval"})
    );
    assert_eq!(show["unmatched"], json!([]));
    let text = lake.run(["collection", "show", "weather/"]).ok().stdout();
    for needle in [
        "dataset names: weather/<quantity>-<city>/<frequency>",
        "top level:     quantity:str, city:str",
        "sub-level 1:   frequency:str",
        "weather/temp-paris/1D",
        "not keys of this collection:\n  weather/temp/1D: segment \"temp\" has 1 field",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }

    // `ls --where`: the fields of `ls --json` plus the key; every filter must match.
    let all = lake.run(["--json", "ls", "weather"]).ok().json();
    let berlin = lake
        .run(["--json", "ls", "weather", "--where", "city=berlin"])
        .ok();
    let berlin_json = berlin.json();
    assert_eq!(names(&berlin_json), ["weather/temp-berlin/1D"]);
    let plain = all
        .as_array()
        .expect("array")
        .iter()
        .find(|d| d["name"] == "weather/temp-berlin/1D")
        .expect("listed")
        .clone();
    let mut expected = plain;
    expected["key"] = json!({"quantity": "temp", "city": "berlin", "frequency": "1D"});
    assert_eq!(berlin_json[0], expected);
    assert!(
        berlin.stderr.contains("weather/temp/1D: segment \"temp\""),
        "names that are not keys are reported: {}",
        berlin.describe()
    );
    let two = lake
        .run([
            "--json",
            "ls",
            "weather",
            "--where",
            "quantity=temp",
            "--where",
            "frequency=1D",
        ])
        .ok()
        .json();
    assert_eq!(
        names(&two),
        ["weather/temp-berlin/1D", "weather/temp-paris/1D"]
    );
    let none = lake
        .run([
            "--json",
            "ls",
            "weather",
            "--where",
            "city=berlin",
            "--where",
            "city=paris",
        ])
        .ok()
        .json();
    assert_eq!(none, json!([]));
    let ints = lake
        .run([
            "--json", "ls", "ml/runs", "--where", "seed=-3", "--where", "step=10",
        ])
        .ok()
        .json();
    assert_eq!(names(&ints), ["ml/runs/gpt_-3/10/eval"]);
    let text = lake
        .run(["ls", "weather", "--where", "city=paris"])
        .ok()
        .stdout();
    assert!(
        text.contains("weather/temp-paris/1D") && !text.contains("berlin"),
        "{text}"
    );
}

/// The visible state of the lake, collections included.
fn state(lake: &TestLake) -> String {
    let mut s = lake.fingerprint(&[
        "weather/temp-berlin/1D",
        "weather/temp-paris/1D",
        "weather/temp/1D",
        "m/x",
    ]);
    s.push_str(&lake.run(["--json", "collection", "ls"]).ok().stdout());
    for p in tree(lake.dir()) {
        if !p.contains("catalog.db") {
            s.push_str(&p);
            s.push('\n');
        }
    }
    s
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let (lake, input) = lake_with_tree();
    lake.run([
        "collection",
        "create",
        "weather",
        "--fields",
        "quantity:str,city:str",
        "--sublevel",
        "frequency:str",
    ])
    .ok();
    lake.run([
        "collection",
        "create",
        "runs",
        "--fields",
        "model:str,seed:int",
        "--separator",
        "_",
    ])
    .ok();
    lake.run(["collection", "create", "deltas", "--fields", "delta:int"])
        .ok();
    let weather =
        "invalid key for collection \"weather\" (weather/<quantity>-<city>/<frequency>): ";
    let cases: Vec<(&str, Vec<&str>, i32, Vec<String>)> = vec![
        (
            "separator inside a str field",
            vec!["collection", "key", "weather", "quantity=temp-max", "city=b", "frequency=1D"],
            1,
            vec![format!("{weather}value \"temp-max\" of field \"quantity\" contains the separator '-'")],
        ),
        (
            "'/' inside a str field",
            vec!["collection", "key", "weather", "quantity=a/b", "city=b", "frequency=1D"],
            1,
            vec![format!("{weather}value \"a/b\" of field \"quantity\" contains '/'")],
        ),
        (
            "empty str field",
            vec!["collection", "key", "weather", "quantity=", "city=b", "frequency=1D"],
            1,
            vec!["value \"\" of field \"quantity\" is empty".into()],
        ),
        (
            "non-integer int field",
            vec!["collection", "key", "runs", "model=a", "seed=x"],
            1,
            vec!["value \"x\" of int field \"seed\" is not an integer".into()],
        ),
        (
            "int not written canonically",
            vec!["collection", "key", "runs", "model=a", "seed=007"],
            1,
            vec!["is not written as tarn writes the integer 7".into()],
        ),
        (
            "negative int with the '-' separator",
            vec!["collection", "key", "deltas", "delta=-5"],
            1,
            vec!["value -5 of int field \"delta\" contains the separator '-'".into(),
                 "negative numbers need a separator other than '-'".into()],
        ),
        (
            "missing field",
            vec!["collection", "key", "weather", "quantity=t", "city=b"],
            1,
            vec![format!("{weather}missing field \"frequency\" (a key has quantity, city, frequency)")],
        ),
        (
            "unknown field",
            vec!["collection", "key", "weather", "quantity=t", "city=b", "frequency=1D", "town=x"],
            1,
            vec![format!("{weather}unknown field \"town\" (the fields are quantity, city, frequency)")],
        ),
        (
            "field given twice",
            vec!["collection", "key", "weather", "quantity=t", "city=b", "frequency=1D", "city=c"],
            1,
            vec!["field \"city\" is given more than once".into()],
        ),
        (
            "key argument without '='",
            vec!["collection", "key", "weather", "quantity"],
            2,
            vec!["expected FIELD=VALUE, got \"quantity\"".into()],
        ),
        (
            "key without values",
            vec!["collection", "key", "weather"],
            2,
            vec!["FIELD=VALUE".into()],
        ),
        (
            "key of an unknown collection",
            vec!["collection", "key", "nope", "a=b"],
            1,
            vec!["collection \"nope\" does not exist".into()],
        ),
        (
            "show an unknown collection",
            vec!["collection", "show", "nope"],
            1,
            vec!["collection \"nope\" does not exist (`tarn collection ls` lists them)".into()],
        ),
        (
            "first write of a name that is not a key",
            vec!["write", "weather/rain/1D", &input, "--ordered-on", "ts"],
            1,
            vec!["tarn://weather/rain/1D: refusing to create the dataset: dataset name \"weather/rain/1D\" does not match collection \"weather\" (weather/<quantity>-<city>/<frequency>): segment \"rain\" has 1 field separated by '-', expected 2 (<quantity>-<city>)".into()],
        ),
        (
            "first write with too few levels",
            vec!["write", "runs/a_1/extra", &input, "--ordered-on", "ts"],
            1,
            vec!["it has 2 levels below \"runs\" where the collection has 1 (<model>_<seed>)".into()],
        ),
        (
            "first write with a non-integer int",
            vec!["write", "runs/a_b", &input, "--ordered-on", "ts"],
            1,
            vec!["value \"b\" of int field \"seed\" is not an integer".into()],
        ),
        (
            "duplicate collection",
            vec!["collection", "create", "weather", "--fields", "a:str"],
            1,
            vec!["collection \"weather\" already exists".into()],
        ),
        (
            "collection inside another",
            vec!["collection", "create", "weather/x", "--fields", "a:str"],
            1,
            vec!["collection \"weather/x\" overlaps collection \"weather\"".into()],
        ),
        (
            "field spec without a type",
            vec!["collection", "create", "c", "--fields", "quantity"],
            2,
            vec!["invalid key field spec \"quantity\": no type: write quantity:str or quantity:int".into()],
        ),
        (
            "field spec with an unknown type",
            vec!["collection", "create", "c", "--fields", "a:str,b:float"],
            2,
            vec!["invalid key field spec \"b:float\": unknown type \"float\": use int or str".into()],
        ),
        (
            "field spec with an empty field",
            vec!["collection", "create", "c", "--fields", "a:str,,b:int"],
            2,
            vec!["empty field".into()],
        ),
        (
            "field spec with a bad name",
            vec!["collection", "create", "c", "--fields", "a-b:str"],
            2,
            vec!["field name \"a-b\" is not valid".into()],
        ),
        (
            "bad sub-level spec",
            vec!["collection", "create", "c", "--fields", "a:str", "--sublevel", "b"],
            2,
            vec!["--sublevel".into(), "no type".into()],
        ),
        (
            "duplicate field across levels",
            vec!["collection", "create", "c", "--fields", "a:str", "--sublevel", "a:int"],
            1,
            vec!["invalid key schema for collection \"c\": field name \"a\" is used twice".into()],
        ),
        (
            "missing --fields",
            vec!["collection", "create", "c"],
            2,
            vec!["--fields".into()],
        ),
        (
            "separator outside - _ . =",
            vec!["collection", "create", "c", "--fields", "a:str", "--separator", "/"],
            2,
            vec!["invalid separator \"/\": use one character of - _ . =".into()],
        ),
        (
            "separator of two characters",
            vec!["collection", "create", "c", "--fields", "a:str", "--separator", "__"],
            2,
            vec!["invalid separator".into()],
        ),
        (
            "collection name that is no dataset path",
            vec!["collection", "create", "a b", "--fields", "a:str"],
            1,
            vec!["invalid key schema for collection \"a b\": the collection name is not a valid dataset path: character ' ' is not allowed".into()],
        ),
        (
            "collection name with '..'",
            vec!["collection", "create", "../up", "--fields", "a:str"],
            1,
            vec!["starts with '.'".into()],
        ),
        (
            "ls --where on a prefix that is no collection",
            vec!["ls", "m", "--where", "a=b"],
            1,
            vec!["--where filters the datasets of a collection by key, and \"m\" is not a collection".into()],
        ),
        (
            "ls --where without a prefix",
            vec!["ls", "--where", "a=b"],
            2,
            vec!["<PREFIX>".into()],
        ),
        (
            "ls --where without '='",
            vec!["ls", "weather", "--where", "city"],
            2,
            vec!["expected FIELD=VALUE".into()],
        ),
        (
            "ls --where on an unknown field",
            vec!["ls", "weather", "--where", "town=x"],
            1,
            vec!["invalid filter town=x for collection \"weather\" (weather/<quantity>-<city>/<frequency>): unknown field \"town\"".into()],
        ),
        (
            "ls --where with a non-integer int",
            vec!["ls", "runs", "--where", "seed=x"],
            1,
            vec!["invalid filter seed=x for collection \"runs\"".into(),
                 "value \"x\" of int field \"seed\" is not an integer".into()],
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, code, needles) in &cases {
        for json in [false, true] {
            let before = state(&lake);
            let mut all: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            all.extend(args.iter().copied());
            let run = lake.run(&all);
            let mut problems = Vec::new();
            if run.code != Some(*code) {
                problems.push(format!("exit code {:?}, expected {code}", run.code));
            }
            if !run.stderr.starts_with("error: ") {
                problems.push("stderr does not start with `error: `".into());
            }
            for n in needles {
                if !run.stderr.contains(n.as_str()) {
                    problems.push(format!("stderr does not contain {n:?}"));
                }
            }
            if !run.stdout.is_empty() {
                problems.push("something was printed on stdout".into());
            }
            if state(&lake) != before {
                problems.push("the lake changed".into());
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "[{what}] {}\n{}",
                    problems.join("; "),
                    run.describe()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n\n")
    );
}
