//! Collections (SPEC §1): `#[derive(tarn::Key)]` round trips and every bad key with its
//! exact message, discovery of a collection's datasets (adopting an existing tree, names that
//! do not parse reported), filters by key values, and the first-write name check.

use crate::common::*;
use proptest::prelude::*;
use tarn::{ErrorKind, Key, KeyField, KeyKind, KeySchema, KeyValue, Lake, WriteRequest};

#[derive(tarn::Key, Debug, Clone, PartialEq)]
#[tarn(collection = "weather")]
struct WeatherKey {
    quantity: String,
    city: String,
    #[tarn(level = 1)]
    frequency: String,
}

/// Fields of every int type, a raw identifier, levels declared out of order.
#[derive(tarn::Key, Debug, Clone, PartialEq)]
#[tarn(collection = "ml/runs", separator = "_")]
struct RunKey {
    #[tarn(level = 1)]
    seed: i64,
    model: String,
    small: u8,
    #[tarn(level = 1)]
    r#type: String,
    big: u64,
    neg: i32,
    tiny: i8,
    mid: i16,
    word: u16,
    wide: u32,
    size: usize,
    ptr: isize,
}

#[derive(tarn::Key, Debug, Clone, PartialEq)]
#[tarn(collection = "deltas")]
struct DeltaKey {
    delta: i32,
}

#[derive(tarn::Key, Debug, Clone, PartialEq)]
#[tarn(collection = "dotted", separator = '.')]
struct DottedKey {
    a: String,
    b: u32,
}

fn weather(q: &str, c: &str, f: &str) -> WeatherKey {
    WeatherKey {
        quantity: q.into(),
        city: c.into(),
        frequency: f.into(),
    }
}

fn run_key() -> RunKey {
    RunKey {
        seed: -7,
        model: "gpt".into(),
        small: 255,
        r#type: "eval".into(),
        big: 1 << 40,
        neg: -3,
        tiny: -128,
        mid: 300,
        word: 65535,
        wide: 7,
        size: 0,
        ptr: -1,
    }
}

const WEATHER: &str =
    r#"invalid key for collection "weather" (weather/<quantity>-<city>/<frequency>): "#;

#[test]
fn derived_schema_and_paths() {
    assert_eq!(
        WeatherKey::key_schema(),
        &KeySchema::parse_spec("weather", "quantity:str,city:str", &["frequency:str"], None)
            .expect("schema")
    );
    let k = weather("temp", "berlin", "1D");
    assert_eq!(
        k.to_path().expect("path").as_str(),
        "weather/temp-berlin/1D"
    );
    assert_eq!(WeatherKey::from_path("weather/temp-berlin/1D"), Ok(k));

    let schema = RunKey::key_schema();
    assert_eq!(
        schema.pattern(),
        "ml/runs/<model>_<small>_<big>_<neg>_<tiny>_<mid>_<word>_<wide>_<size>_<ptr>/<seed>_<type>"
    );
    assert_eq!(schema.separator(), '_');
    assert_eq!(schema.field("type"), Some(&KeyField::str("type")));
    assert_eq!(schema.field("small"), Some(&KeyField::int("small")));
    let k = run_key();
    let path = k.to_path().expect("path");
    assert_eq!(
        path.as_str(),
        "ml/runs/gpt_255_1099511627776_-3_-128_300_65535_7_0_-1/-7_eval"
    );
    assert_eq!(RunKey::from_name(&path), Ok(k));

    let k = DottedKey {
        a: "x-y".into(),
        b: 3,
    };
    assert_eq!(k.to_path().expect("path").as_str(), "dotted/x-y.3");
    assert_eq!(DottedKey::from_path("dotted/x-y.3"), Ok(k));
    assert_eq!(
        DottedKey::key_schema().levels(),
        &[vec![
            KeyField::new("a", KeyKind::Str),
            KeyField::new("b", KeyKind::Int)
        ]]
    );
}

#[test]
fn every_bad_key_is_refused_with_its_exact_message() {
    let cases = [
        (
            weather("temp-max", "berlin", "1D"),
            r#"value "temp-max" of field "quantity" contains the separator '-' (str values may not contain the separator or '/')"#,
        ),
        (
            weather("temp", "a/b", "1D"),
            r#"value "a/b" of field "city" contains '/' (str values may not contain the separator '-' or '/')"#,
        ),
        (
            weather("temp", "", "1D"),
            r#"value "" of field "city" is empty (a str value needs at least one character)"#,
        ),
        (
            weather("temp", "new york", "1D"),
            r#"value "new york" of field "city" has character ' ', which is not allowed (use letters, digits and _ . =)"#,
        ),
        (
            weather("temp", "zürich", "1D"),
            r#"value "zürich" of field "city" has character 'ü', which is not allowed (use letters, digits and _ . =)"#,
        ),
        (
            weather(".hidden", "berlin", "1D"),
            r#"value ".hidden" of field "quantity" starts with '.', which may not begin a name segment"#,
        ),
        (
            weather("temp", "berlin", ".."),
            r#"value ".." of field "frequency" starts with '.', which may not begin a name segment"#,
        ),
    ];
    for (key, reason) in cases {
        let err = key.to_path().expect_err(reason).to_string();
        assert_eq!(err, format!("{WEATHER}{reason}"));
    }
    // A '.' inside a segment is fine.
    assert_eq!(
        weather("temp", ".berlin", "1D")
            .to_path()
            .expect("not at a segment start")
            .as_str(),
        "weather/temp-.berlin/1D"
    );

    let err = DeltaKey { delta: -5 }
        .to_path()
        .expect_err("negative")
        .to_string();
    assert_eq!(
        err,
        r#"invalid key for collection "deltas" (deltas/<delta>): value -5 of int field "delta" contains the separator '-', so its name would not parse back; negative numbers need a separator other than '-' (one of _ . =)"#
    );
    assert_eq!(
        DeltaKey { delta: 5 }.to_path().expect("positive").as_str(),
        "deltas/5"
    );

    let mut k = run_key();
    k.big = u64::MAX;
    let err = k.to_path().expect_err("u64::MAX").to_string();
    assert!(
        err.ends_with(r#"value 18446744073709551615 of field "big" does not fit in a 64-bit signed integer, which is how keys store ints"#),
        "{err}"
    );
}

#[test]
fn every_bad_path_is_refused_with_its_exact_message() {
    let mismatch = |name: &str, reason: &str| {
        format!(
            r#"dataset name "{name}" does not match collection "weather" (weather/<quantity>-<city>/<frequency>): {reason}"#
        )
    };
    for (path, reason) in [
        (
            "weather/temp/1D",
            r#"segment "temp" has 1 field separated by '-', expected 2 (<quantity>-<city>)"#,
        ),
        (
            "weather/temp-berlin-mitte/1D",
            r#"segment "temp-berlin-mitte" has 3 fields separated by '-', expected 2 (<quantity>-<city>)"#,
        ),
        (
            "weather/temp-berlin",
            r#"it has 1 level below "weather" where the collection has 2 (<quantity>-<city>/<frequency>)"#,
        ),
        (
            "weather/temp-berlin/1D/x",
            r#"it has 3 levels below "weather" where the collection has 2 (<quantity>-<city>/<frequency>)"#,
        ),
        (
            "weather/-berlin/1D",
            r#"value "" of field "quantity" is empty (a str value needs at least one character)"#,
        ),
        (
            "climate/temp-berlin/1D",
            r#"it is not under the collection's prefix "weather/""#,
        ),
        (
            "weather",
            r#"it is not under the collection's prefix "weather/""#,
        ),
    ] {
        let err = WeatherKey::from_path(path).expect_err(path).to_string();
        assert_eq!(err, mismatch(path, reason));
    }
    let err = WeatherKey::from_path("weather//1D")
        .expect_err("not a name")
        .to_string();
    assert_eq!(
        err,
        r#"invalid dataset name "weather//1D": it has an empty segment (a leading, trailing or doubled '/')"#
    );

    let good = run_key().to_path().expect("path").to_string();
    let run_mismatch = |name: &str, reason: &str| {
        format!(
            r#"dataset name "{name}" does not match collection "ml/runs" ({}): {reason}"#,
            RunKey::key_schema().pattern()
        )
    };
    for (from, to, reason) in [
        (
            "_255_",
            "_256_",
            r#"invalid key for collection "ml/runs" (ml/runs/<model>_<small>_<big>_<neg>_<tiny>_<mid>_<word>_<wide>_<size>_<ptr>/<seed>_<type>): value 256 of field "small" is out of range for u8"#,
        ),
        (
            "_-128_",
            "_-129_",
            r#"invalid key for collection "ml/runs" (ml/runs/<model>_<small>_<big>_<neg>_<tiny>_<mid>_<word>_<wide>_<size>_<ptr>/<seed>_<type>): value -129 of field "tiny" is out of range for i8"#,
        ),
    ] {
        let path = good.replacen(from, to, 1);
        let err = RunKey::from_path(&path).expect_err(&path).to_string();
        assert_eq!(err, reason);
    }
    for (from, to, reason) in [
        (
            "_255_",
            "_x_",
            r#"value "x" of int field "small" is not an integer"#,
        ),
        (
            "_255_",
            "_0255_",
            r#"value "0255" of int field "small" is not written as tarn writes the integer 255 (no leading zeros, no '+')"#,
        ),
        (
            "_1099511627776_",
            "_99999999999999999999_",
            r#"value "99999999999999999999" of int field "big" is out of range (ints are 64-bit)"#,
        ),
    ] {
        let path = good.replacen(from, to, 1);
        let err = RunKey::from_path(&path).expect_err(&path).to_string();
        assert_eq!(err, run_mismatch(&path, reason));
    }
    // Without a field for it, a negative number splits in two with the '-' separator.
    let err = DeltaKey::from_path("deltas/-5")
        .expect_err("two fields")
        .to_string();
    assert!(
        err.ends_with(r#"segment "-5" has 2 fields separated by '-', expected 1 (<delta>)"#),
        "{err}"
    );
}

fn str_value() -> impl Strategy<Value = String> {
    // Valid anywhere with the '-' separator: no '-', no leading '.'.
    proptest::string::string_regex("[A-Za-z0-9_=][A-Za-z0-9_.=]{0,11}").expect("regex")
}

fn run_keys() -> impl Strategy<Value = RunKey> {
    let strs = "[A-Za-z0-9=-][A-Za-z0-9.=-]{0,7}";
    let s = || proptest::string::string_regex(strs).expect("regex");
    (
        (
            any::<i64>(),
            s(),
            any::<u8>(),
            s(),
            0..=i64::MAX as u64,
            any::<i32>(),
        ),
        (
            any::<i8>(),
            any::<i16>(),
            any::<u16>(),
            any::<u32>(),
            0..=i64::MAX as usize,
            any::<isize>(),
        ),
    )
        .prop_map(
            |((seed, model, small, r#type, big, neg), (tiny, mid, word, wide, size, ptr))| RunKey {
                seed,
                model,
                small,
                r#type,
                big,
                neg,
                tiny,
                mid,
                word,
                wide,
                size,
                ptr,
            },
        )
}

proptest! {
    #[test]
    fn derived_keys_round_trip(q in str_value(), c in str_value(), f in str_value()) {
        let key = weather(&q, &c, &f);
        let path = key.to_path().expect("valid key");
        prop_assert_eq!(path.as_str(), format!("weather/{q}-{c}/{f}"));
        prop_assert_eq!(WeatherKey::from_path(path.as_str()), Ok(key));
    }

    /// Any text at all: a key is either refused or comes back unchanged (no two keys share
    /// a name).
    #[test]
    fn any_key_is_refused_or_round_trips(
        q in "[a-c./_= -]{0,4}",
        c in "[a-c./_= -]{0,4}",
        f in "[a-c./_= -]{0,4}",
        delta in any::<i32>(),
    ) {
        let key = weather(&q, &c, &f);
        if let Ok(path) = key.to_path() {
            prop_assert_eq!(WeatherKey::from_path(path.as_str()), Ok(key));
        }
        let key = DeltaKey { delta };
        match key.to_path() {
            Ok(path) => prop_assert_eq!(DeltaKey::from_name(&path), Ok(key)),
            Err(_) => prop_assert!(delta < 0),
        }
    }

    #[test]
    fn derived_int_keys_round_trip(key in run_keys()) {
        let path = key.to_path().expect("valid key");
        prop_assert_eq!(RunKey::from_name(&path), Ok(key));
    }
}

async fn create(lake: &Lake, uri: &str) {
    lake.write(
        uri,
        kiv_batch(&[(1, 1, 1)]),
        WriteRequest::new().ordered_on("k"),
    )
    .await
    .unwrap_or_else(|e| panic!("write {uri}: {e}"));
}

fn names(listing: &tarn::CollectionListing) -> Vec<String> {
    listing
        .datasets
        .iter()
        .map(|d| d.summary.name.to_string())
        .collect()
}

async fn discovery_adopts_an_existing_tree_and_reports_what_does_not_fit(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    for uri in [
        "weather/temp-berlin/1D",
        "weather/temp-paris/1D",
        "weather/rain-berlin/1h",
        "weather/temp/1D",
        "weather/README",
        "weather",
        "weatherx/a-b/c",
    ] {
        create(&lake, uri).await;
    }
    let created = lake
        .create_collection(WeatherKey::key_schema().clone())
        .await
        .expect("create over an existing tree");
    assert_eq!(created.collection.name().as_str(), "weather");
    assert_eq!(
        names(&created),
        [
            "weather/rain-berlin/1h",
            "weather/temp-berlin/1D",
            "weather/temp-paris/1D"
        ]
    );
    assert_eq!(
        created.datasets[0].key,
        vec![
            ("quantity".to_string(), KeyValue::from("rain")),
            ("city".to_string(), KeyValue::from("berlin")),
            ("frequency".to_string(), KeyValue::from("1h")),
        ]
    );
    let unmatched: Vec<(String, String)> = created
        .unmatched
        .iter()
        .map(|u| (u.name.to_string(), u.reason.clone()))
        .collect();
    assert_eq!(
            unmatched,
            [
                (
                    "weather/README".to_string(),
                    r#"it has 1 level below "weather" where the collection has 2 (<quantity>-<city>/<frequency>)"#.to_string()
                ),
                (
                    "weather/temp/1D".to_string(),
                    r#"segment "temp" has 1 field separated by '-', expected 2 (<quantity>-<city>)"#.to_string()
                ),
            ]
        );

    // Filters: every (field, value) must match; unmatched names are always reported.
    let berlin = lake
        .collection_datasets("weather", &[("city", "berlin")])
        .await
        .expect("filter");
    assert_eq!(
        names(&berlin),
        ["weather/rain-berlin/1h", "weather/temp-berlin/1D"]
    );
    assert_eq!(berlin.unmatched.len(), 2);
    let one = lake
        .collection_datasets("weather", &[("city", "berlin"), ("quantity", "temp")])
        .await
        .expect("filter");
    assert_eq!(names(&one), ["weather/temp-berlin/1D"]);
    let none = lake
        .collection_datasets("weather", &[("city", "oslo")])
        .await
        .expect("filter");
    assert!(none.datasets.is_empty());
    let all = lake.collection_datasets("weather", &[]).await.expect("all");
    assert_eq!(all.datasets.len(), 3);

    for (filter, message) in [
        (
            ("town", "berlin"),
            r#"invalid filter town=berlin for collection "weather" (weather/<quantity>-<city>/<frequency>): unknown field "town" (the fields are quantity, city, frequency)"#,
        ),
        (
            ("city", "new york"),
            r#"invalid filter city=new york for collection "weather" (weather/<quantity>-<city>/<frequency>): value "new york" of field "city" has character ' ', which is not allowed (use letters, digits and _ . =)"#,
        ),
        (
            ("city", "a-b"),
            r#"invalid filter city=a-b for collection "weather" (weather/<quantity>-<city>/<frequency>): value "a-b" of field "city" contains the separator '-' (str values may not contain the separator or '/')"#,
        ),
    ] {
        let err = lake
            .collection_datasets("weather", &[filter])
            .await
            .expect_err(message);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), message);
    }

    // Int fields: filters are parsed as ints.
    lake.create_collection(RunKey::key_schema().clone())
        .await
        .expect("create");
    let k = run_key();
    create(&lake, k.to_path().expect("path").as_str()).await;
    let found = lake
        .collection_datasets("ml/runs", &[("seed", "-7"), ("small", "255")])
        .await
        .expect("int filter");
    assert_eq!(found.datasets.len(), 1);
    assert_eq!(RunKey::from_name(&found.datasets[0].summary.name), Ok(k));
    let err = lake
        .collection_datasets("ml/runs", &[("small", "lots")])
        .await
        .expect_err("not an int");
    assert!(
        err.to_string()
            .ends_with(r#"value "lots" of int field "small" is not an integer"#),
        "{err}"
    );

    // Lookups.
    let listed: Vec<String> = lake
        .collections()
        .await
        .expect("list")
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(listed, ["ml/runs", "weather"]);
    assert_eq!(
        lake.collection("weather").await.expect("get").schema,
        *WeatherKey::key_schema()
    );
    let err = lake.collection("nope").await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        r#"collection "nope" does not exist (`tarn collection ls` lists them)"#
    );
    let err = lake
        .collection_datasets("nope", &[])
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

async fn duplicate_and_overlapping_collections_are_refused(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    lake.create_collection(WeatherKey::key_schema().clone())
        .await
        .expect("create");
    let err = lake
        .create_collection(WeatherKey::key_schema().clone())
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), r#"collection "weather" already exists"#);
    let inner = KeySchema::new("weather/x", '-', vec![vec![KeyField::str("a")]]).expect("s");
    let err = lake.create_collection(inner).await.expect_err("overlap");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        r#"collection "weather/x" overlaps collection "weather": one lies inside the other, so a dataset name would belong to both"#
    );
    assert_eq!(lake.collections().await.expect("list").len(), 1);
}

async fn the_first_write_of_a_dataset_under_a_collection_must_be_a_key(place: LakePlace) {
    let lake = relaxed_lake(&place).await;
    // Made before the collection: adopted as it is, and appends to it still work.
    create(&lake, "weather/temp/1D").await;
    lake.create_collection(WeatherKey::key_schema().clone())
        .await
        .expect("create");
    lake.create_collection(RunKey::key_schema().clone())
        .await
        .expect("create");
    let before = fingerprint(&lake, &place).await;

    for (uri, message) in [
        (
            "tarn://weather/snow/1D",
            r#"tarn://weather/snow/1D: refusing to create the dataset: dataset name "weather/snow/1D" does not match collection "weather" (weather/<quantity>-<city>/<frequency>): segment "snow" has 1 field separated by '-', expected 2 (<quantity>-<city>)"#,
        ),
        (
            "weather/snow-oslo",
            r#"tarn://weather/snow-oslo: refusing to create the dataset: dataset name "weather/snow-oslo" does not match collection "weather" (weather/<quantity>-<city>/<frequency>): it has 1 level below "weather" where the collection has 2 (<quantity>-<city>/<frequency>)"#,
        ),
        (
            "ml/runs/a/b",
            r#"tarn://ml/runs/a/b: refusing to create the dataset: dataset name "ml/runs/a/b" does not match collection "ml/runs" (ml/runs/<model>_<small>_<big>_<neg>_<tiny>_<mid>_<word>_<wide>_<size>_<ptr>/<seed>_<type>): segment "a" has 1 field separated by '_', expected 10 (<model>_<small>_<big>_<neg>_<tiny>_<mid>_<word>_<wide>_<size>_<ptr>)"#,
        ),
    ] {
        let err = lake
            .write(
                uri,
                kiv_batch(&[(1, 1, 1)]),
                WriteRequest::new().ordered_on("k"),
            )
            .await
            .expect_err(uri);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), message);
        let err = lake
            .overwrite(
                uri,
                kiv_batch(&[(1, 1, 1)]),
                WriteRequest::new().ordered_on("k"),
            )
            .await
            .expect_err(uri);
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(fingerprint(&lake, &place).await, before, "lake changed");

    // Keys are created; the old, non-key dataset takes appends; beside the collection
    // (not under its prefix) nothing is checked.
    create(&lake, "weather/snow-oslo/1D").await;
    create(
        &lake,
        weather("temp", "rome", "1h").to_path().expect("p").as_str(),
    )
    .await;
    lake.write(
        "weather/temp/1D",
        kiv_batch(&[(2, 2, 2)]),
        WriteRequest::new(),
    )
    .await
    .expect("append to an adopted dataset");
    create(&lake, "weather").await;
    create(&lake, "weatherx/anything").await;
    let listing = lake
        .collection_datasets("weather", &[])
        .await
        .expect("list");
    assert_eq!(
        names(&listing),
        ["weather/snow-oslo/1D", "weather/temp-rome/1h"]
    );
    assert_eq!(
        listing
            .unmatched
            .iter()
            .map(|u| u.name.to_string())
            .collect::<Vec<_>>(),
        ["weather/temp/1D"]
    );
}

// The key and path tests above touch no lake; these run on every backend.
tarn_testkit::backend_tests!(
    discovery_adopts_an_existing_tree_and_reports_what_does_not_fit,
    duplicate_and_overlapping_collections_are_refused,
    the_first_write_of_a_dataset_under_a_collection_must_be_a_key,
);
