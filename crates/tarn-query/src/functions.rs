//! Scalar functions a tarn session registers over DataFusion's own.
//!
//! [`FixedOffsetDateTrunc`] replaces `date_trunc` (and its alias `datetrunc`). A tarn
//! dataset's `ordered_on` column is usually a UTC timestamp (`Timestamp(_, "UTC")`), and
//! DataFusion truncates such values to the hour or the day one at a time through a time-zone
//! conversion: that was about 70% of the time of W5's hourly average (docs/benchmarks.md).
//! In UTC, in a fixed offset (`+05:45`) and without a time zone, an hour, a day and a week
//! always have the same length, so these truncations are arithmetic here, as DataFusion
//! already does for finer granularities and for timestamps without a zone. Named zones
//! (which may observe daylight saving), months, quarters, years and scalar arguments go to
//! DataFusion's implementation unchanged. Results are DataFusion's (tests/it/functions.rs
//! compares them on random values), except that a truncation out of the range of the type
//! is an error instead of an overflow.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use std::sync::Arc;

/// `date_trunc` with arithmetic truncation of hours, days and weeks for timestamps in UTC,
/// in a fixed offset or without a time zone, and of finer granularities in every zone.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct FixedOffsetDateTrunc {
    inner: DateTruncFunc,
}

impl FixedOffsetDateTrunc {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Self::default())
    }
}

/// How a granularity truncates with arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The same in every time zone: offsets are whole minutes (DataFusion makes the same
    /// assumption).
    Fine(i64),
    /// Fixed length only in UTC, in a fixed offset, or without a time zone.
    Civil(i64),
}

/// The length in nanoseconds of a granularity done with arithmetic; `None` for months,
/// quarters and years (and anything DataFusion should reject itself).
fn step(granularity: &ColumnarValue) -> Option<Step> {
    let ColumnarValue::Scalar(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)),
    ) = granularity
    else {
        return None;
    };
    const SECOND: i64 = 1_000_000_000;
    Some(match text.to_ascii_lowercase().as_str() {
        "microsecond" => Step::Fine(1_000),
        "millisecond" => Step::Fine(1_000_000),
        "second" => Step::Fine(SECOND),
        "minute" => Step::Fine(60 * SECOND),
        "hour" => Step::Civil(3_600 * SECOND),
        "day" => Step::Civil(86_400 * SECOND),
        "week" => Step::Civil(7 * 86_400 * SECOND),
        _ => return None,
    })
}

/// The offset east of UTC, in seconds, of a time zone that never changes it: `UTC`,
/// `Etc/UTC`, `GMT`, `Etc/GMT`, and the fixed offsets Arrow accepts (`±HH:MM`, `±HHMM`,
/// `±HH`). `None` for other names, which may observe daylight saving.
fn fixed_offset_seconds(tz: &str) -> Option<i64> {
    if matches!(tz, "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT") {
        return Some(0);
    }
    let b = tz.as_bytes();
    let digits = match b.len() {
        6 if b[3] == b':' => [b[1], b[2], b[4], b[5]],
        5 => [b[1], b[2], b[3], b[4]],
        3 => [b[1], b[2], b'0', b'0'],
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = digits.map(|c| i64::from(c - b'0'));
    let seconds = (d[0] * 10 + d[1]) * 3_600 + (d[2] * 10 + d[3]) * 60;
    if seconds >= 86_400 {
        return None;
    }
    match b[0] {
        b'+' => Some(seconds),
        b'-' => Some(-seconds),
        _ => None,
    }
}

fn nanos_per_unit(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `values` truncated to multiples of `step` counted from `origin` (both in the array's
/// unit), or an error naming the first value whose truncation is out of range.
fn truncate<T: ArrowTimestampType>(
    values: &dyn Array,
    step: i64,
    origin: i64,
    tz: Option<&Arc<str>>,
) -> Result<ArrayRef> {
    let values = values.as_primitive::<T>();
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.values().iter().enumerate() {
        // In i128 nothing here can overflow; the result must fit back in i64. A null slot
        // holds an arbitrary value, so its result is never an error.
        let shifted = i128::from(v) - i128::from(origin);
        let truncated = i128::from(v) - shifted.rem_euclid(i128::from(step));
        out.push(match i64::try_from(truncated) {
            Ok(t) => t,
            Err(_) if values.is_null(i) => 0,
            Err(_) => {
                return exec_err!(
                    "date_trunc: {v} truncated to a multiple of {step} is out of the range of {}",
                    values.data_type()
                );
            }
        });
    }
    let array = PrimitiveArray::<T>::new(out.into(), values.nulls().cloned())
        .with_timezone_opt(tz.cloned());
    Ok(Arc::new(array))
}

impl ScalarUDFImpl for FixedOffsetDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [granularity, ColumnarValue::Array(values)] = args.args.as_slice()
            && let DataType::Timestamp(unit, tz) = values.data_type()
            && let Some(step) = step(granularity)
        {
            let offset_seconds = match (step, tz) {
                (Step::Fine(_), _) | (Step::Civil(_), None) => Some(0),
                (Step::Civil(_), Some(tz)) => fixed_offset_seconds(tz),
            };
            if let Some(offset_seconds) = offset_seconds {
                let (Step::Fine(step_nanos) | Step::Civil(step_nanos)) = step;
                let per_unit = nanos_per_unit(*unit);
                // Finer than the unit: every value is already truncated.
                let step = (step_nanos / per_unit).max(1);
                // Local midnight of 1970-01-01 is at -offset UTC; weeks start on the
                // Monday before it, 1969-12-29, three days earlier.
                let per_second = 1_000_000_000 / per_unit;
                let mut origin = -offset_seconds * per_second;
                if step_nanos == 7 * 86_400 * 1_000_000_000 {
                    origin -= 3 * 86_400 * per_second;
                }
                let tz = tz.as_ref();
                let out = match unit {
                    TimeUnit::Second => truncate::<TimestampSecondType>(values, step, origin, tz),
                    TimeUnit::Millisecond => {
                        truncate::<TimestampMillisecondType>(values, step, origin, tz)
                    }
                    TimeUnit::Microsecond => {
                        truncate::<TimestampMicrosecondType>(values, step, origin, tz)
                    }
                    TimeUnit::Nanosecond => {
                        truncate::<TimestampNanosecondType>(values, step, origin, tz)
                    }
                }?;
                return Ok(ColumnarValue::Array(out));
            }
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offsets() {
        for (tz, want) in [
            ("UTC", Some(0)),
            ("+00:00", Some(0)),
            ("+05:45", Some(20_700)),
            ("-03:30", Some(-12_600)),
            ("+0530", Some(19_800)),
            ("-08", Some(-28_800)),
            ("Europe/Zurich", None),
            ("utc", None),
            ("+5:45", None),
            ("+24:00", None),
            ("+05:4", None),
            ("*05:45", None),
            ("+", None),
            ("+0:545", None),
            ("", None),
        ] {
            assert_eq!(fixed_offset_seconds(tz), want, "{tz}");
        }
    }
}
