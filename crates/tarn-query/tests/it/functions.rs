//! `date_trunc` in a tarn session returns exactly what DataFusion's own returns, for every
//! time unit, time zone and granularity, nulls and extreme values included.

use arrow::array::{
    Array, ArrayRef, PrimitiveArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use proptest::prelude::*;
use std::sync::Arc;
use tarn_query::FixedOffsetDateTrunc;
use tarn_query::datafusion::common::ScalarValue;
use tarn_query::datafusion::config::ConfigOptions;
use tarn_query::datafusion::execution::FunctionRegistry;
use tarn_query::datafusion::functions::datetime::date_trunc::DateTruncFunc;
use tarn_query::datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl,
};

const ZONES: &[Option<&str>] = &[
    None,
    Some("UTC"),
    Some("Etc/UTC"),
    Some("+00:00"),
    Some("+05:45"),
    Some("-03:30"),
    Some("+0530"),
    Some("-08"),
    Some("Europe/Zurich"),
    Some("America/New_York"),
];

const GRANULARITIES: &[&str] = &[
    "microsecond",
    "millisecond",
    "second",
    "minute",
    "hour",
    "HOUR",
    "day",
    "week",
    "month",
    "quarter",
    "year",
];

fn timestamps(unit: TimeUnit, values: &[Option<i64>], tz: Option<&str>) -> ArrayRef {
    let values = values.iter().copied();
    let tz: Option<Arc<str>> = tz.map(Into::into);
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from_iter(values).with_timezone_opt(tz)),
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone_opt(tz))
        }
        TimeUnit::Microsecond => {
            Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone_opt(tz))
        }
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from_iter(values).with_timezone_opt(tz))
        }
    }
}

fn invoke(f: &dyn ScalarUDFImpl, granularity: &str, values: &ArrayRef) -> Result<ArrayRef, String> {
    let granularity = ScalarValue::Utf8(Some(granularity.to_string()));
    let arg_fields: Vec<FieldRef> = vec![
        Arc::new(Field::new("g", DataType::Utf8, false)),
        Arc::new(Field::new("ts", values.data_type().clone(), true)),
    ];
    let return_field = f
        .return_field_from_args(ReturnFieldArgs {
            arg_fields: &arg_fields,
            scalar_arguments: &[Some(&granularity), None],
        })
        .map_err(|e| e.to_string())?;
    let out = f
        .invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(granularity),
                ColumnarValue::Array(values.clone()),
            ],
            arg_fields,
            number_rows: values.len(),
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })
        .map_err(|e| e.to_string())?;
    out.into_array(values.len()).map_err(|e| e.to_string())
}

/// Values around the epoch, across the years DataFusion's calendar arithmetic covers in
/// every unit, and at the ends of i64 (where the arithmetic must not overflow).
fn value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        3 => (-10_000_000_000i64..10_000_000_000).prop_map(Some),
        3 => (-2_000_000_000_000_000_000i64..2_000_000_000_000_000_000)
            .prop_map(|v| Some(v / 1_000)),
        1 => any::<i64>().prop_map(Some),
        1 => (0i64..1_000_000).prop_map(|d| Some(i64::MIN + d)),
        1 => (0i64..1_000_000).prop_map(|d| Some(i64::MAX - d)),
    ]
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop_oneof![
        Just(TimeUnit::Second),
        Just(TimeUnit::Millisecond),
        Just(TimeUnit::Microsecond),
        Just(TimeUnit::Nanosecond),
    ]
}

/// `values` as `(value, is_null)` so that null slots compare by validity only.
fn cells(a: &ArrayRef) -> (DataType, Vec<Option<i64>>) {
    let ints = arrow::compute::cast(a, &DataType::Int64).expect("to int64");
    let ints = ints
        .as_any()
        .downcast_ref::<PrimitiveArray<arrow::datatypes::Int64Type>>()
        .expect("int64");
    (a.data_type().clone(), ints.iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("TARN_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn date_trunc_matches_datafusion(
        unit in unit(),
        zone in 0..ZONES.len(),
        granularity in 0..GRANULARITIES.len(),
        values in proptest::collection::vec(value(), 0..40),
    ) {
        let array = timestamps(unit, &values, ZONES[zone]);
        let granularity = GRANULARITIES[granularity];
        // DataFusion's arithmetic overflows (a panic in debug builds) at the ends of i64.
        let theirs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            invoke(&DateTruncFunc::new(), granularity, &array)
        }))
            .unwrap_or_else(|_| Err("DataFusion panicked".into()));
        let ours = invoke(&FixedOffsetDateTrunc::default(), granularity, &array);
        match arithmetic(granularity, ZONES[zone]) {
            // tarn's arithmetic: the model's answer, which is DataFusion's wherever
            // DataFusion has one, and an error where the answer does not fit.
            Some(offset) => {
                let want: Option<Vec<Option<i64>>> = values
                    .iter()
                    .map(|v| match v {
                        None => Some(None),
                        Some(v) => model(unit, granularity, offset, *v).map(Some),
                    })
                    .collect();
                match want {
                    Some(want) => {
                        let ours = ours.map_err(TestCaseError::fail)?;
                        prop_assert_eq!(&cells(&ours).1, &want);
                        if let Ok(theirs) = theirs {
                            prop_assert_eq!(cells(&theirs), cells(&ours));
                        }
                    }
                    None => {
                        let err = ours.expect_err("an out-of-range truncation");
                        prop_assert!(err.contains("out of the range of Timestamp"), "{}", err);
                    }
                }
            }
            // Everything else is DataFusion's own answer.
            None => match (theirs, ours) {
                (Ok(theirs), Ok(ours)) => prop_assert_eq!(cells(&theirs), cells(&ours)),
                (Err(theirs), Err(ours)) => prop_assert_eq!(theirs, ours),
                (theirs, ours) => prop_assert!(false, "DataFusion: {:?}\ntarn: {:?}", theirs, ours),
            },
        }
    }
}

/// The offset east of UTC, in seconds, when tarn truncates `granularity` in `zone` with
/// arithmetic.
fn arithmetic(granularity: &str, zone: Option<&str>) -> Option<i64> {
    let fine = matches!(
        granularity.to_ascii_lowercase().as_str(),
        "microsecond" | "millisecond" | "second" | "minute"
    );
    let civil = matches!(
        granularity.to_ascii_lowercase().as_str(),
        "hour" | "day" | "week"
    );
    if fine {
        return Some(0);
    }
    if !civil {
        return None;
    }
    Some(match zone {
        None | Some("UTC" | "Etc/UTC" | "+00:00") => 0,
        Some("+05:45") => 20_700,
        Some("-03:30") => -12_600,
        Some("+0530") => 19_800,
        Some("-08") => -28_800,
        Some(_) => return None,
    })
}

/// `v` truncated to the start of its local microsecond ... week (weeks start on Monday),
/// computed in i128; `None` when that is out of the range of i64.
fn model(unit: TimeUnit, granularity: &str, offset: i64, v: i64) -> Option<i64> {
    let unit_nanos: i128 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let day: i128 = 86_400_000_000_000;
    let (step_nanos, origin_nanos) = match granularity.to_ascii_lowercase().as_str() {
        "microsecond" => (1_000, 0),
        "millisecond" => (1_000_000, 0),
        "second" => (1_000_000_000, 0),
        "minute" => (60_000_000_000, 0),
        "hour" => (3_600_000_000_000, 0),
        "day" => (day, 0),
        "week" => (7 * day, -3 * day),
        other => panic!("no arithmetic for {other}"),
    };
    let nanos = i128::from(v) * unit_nanos + i128::from(offset) * 1_000_000_000 - origin_nanos;
    let truncated_nanos = nanos - nanos.rem_euclid(step_nanos);
    // Back to UTC and to the unit; a step finer than the unit leaves `v` as it is.
    let back = truncated_nanos + origin_nanos - i128::from(offset) * 1_000_000_000;
    let out = if step_nanos < unit_nanos {
        i128::from(v)
    } else {
        back / unit_nanos
    };
    i64::try_from(out).ok()
}

#[test]
fn a_session_uses_the_fixed_offset_date_trunc() {
    let rt = super::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let lake = super::lake(dir.path()).await;
        let session = tarn_query::QuerySession::new(&lake, None)
            .await
            .expect("session");
        for name in ["date_trunc", "datetrunc"] {
            let udf = session.context().udf(name).expect("registered");
            assert!(
                udf.inner()
                    .downcast_ref::<FixedOffsetDateTrunc>()
                    .is_some(),
                "{name} is {:?}",
                udf.inner()
            );
        }
        // 2024-03-10T13:47:05Z in a +05:45 zone: local 19:32:05, so the local day starts
        // at 2024-03-09T18:15:00Z and the local week (Monday 2024-03-04) at
        // 2024-03-03T18:15:00Z. A column, not a literal: literals are DataFusion's.
        let batches = super::query(
            &session,
            "SELECT CAST(date_trunc('day', arrow_cast(x, 'Timestamp(Second, Some(\"+05:45\"))')) AS BIGINT) AS d,
                    CAST(date_trunc('week', arrow_cast(x, 'Timestamp(Second, Some(\"+05:45\"))')) AS BIGINT) AS w,
                    CAST(date_trunc('hour', arrow_cast(x, 'Timestamp(Second, Some(\"UTC\"))')) AS BIGINT) AS h
             FROM (VALUES (1710078425), (1710078425)) AS t(x)",
        )
        .await;
        assert_eq!(super::i64s(&batches, 0), vec![1_710_008_100; 2]);
        assert_eq!(super::i64s(&batches, 1), vec![1_709_489_700; 2]);
        assert_eq!(super::i64s(&batches, 2), vec![1_710_075_600; 2]);
    });
}
