//! Values of an `ordered_on` column: what types can order a dataset, how a bound typed on
//! the command line is parsed in that type, and how min/max values are kept in the catalog.
//! Timestamps are i64 counts of the dataset's unit since the Unix epoch, dates are days.

use crate::error::{CoreError, Result};
use crate::time;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The family of an `ordered_on` column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderedKind {
    Int,
    Float,
    Str,
    Timestamp(TimeUnit),
    Date,
}

impl OrderedKind {
    pub fn of(column: &str, data_type: &DataType) -> Result<Self> {
        Ok(match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Self::Int,
            DataType::Float32 | DataType::Float64 => Self::Float,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::Str,
            DataType::Timestamp(unit, _) => Self::Timestamp(*unit),
            DataType::Date32 => Self::Date,
            other => {
                return Err(CoreError::UnsupportedOrderedOn {
                    column: column.to_string(),
                    data_type: other.to_string(),
                    reason:
                        "ordered_on must be an integer, float, string, date32 or timestamp column"
                            .into(),
                });
            }
        })
    }

    /// Parses a bound given as text (a CLI `--start`/`--end`) in this kind.
    pub fn parse(&self, column: &str, text: &str) -> Result<OrderedValue> {
        let bad = |reason: &str| CoreError::InvalidValue {
            input: text.to_string(),
            column: column.to_string(),
            reason: reason.to_string(),
        };
        match self {
            Self::Int => text
                .trim()
                .parse::<i64>()
                .map(OrderedValue::Int)
                .map_err(|_| bad("expected an integer")),
            Self::Float => match text.trim().parse::<f64>() {
                Ok(v) if v.is_nan() => Err(bad("NaN is not an ordered value")),
                // -0.0 and 0.0 are one value of the order (as in the catalog).
                Ok(v) => Ok(OrderedValue::Float(v + 0.0)),
                Err(_) => Err(bad("expected a number")),
            },
            Self::Str => Ok(OrderedValue::Str(text.to_string())),
            Self::Timestamp(unit) => {
                let t = time::parse_instant(text.trim()).ok_or_else(|| {
                    bad("expected an RFC 3339 timestamp (2024-01-05T12:00:00Z) or a date (2024-01-05)")
                })?;
                time::from_datetime(&t, *unit)
                    .map(OrderedValue::Timestamp)
                    .ok_or_else(|| bad("out of range for the column's time unit"))
            }
            Self::Date => {
                let t = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map_err(|_| bad("expected a date YYYY-MM-DD"))?;
                let days = (t - time::epoch_date()).num_days();
                i32::try_from(days)
                    .map(OrderedValue::Date)
                    .map_err(|_| bad("date out of range"))
            }
        }
    }

    /// Rebuilds a value stored in the catalog as an SQL integer.
    pub fn from_integer(&self, v: i64) -> OrderedValue {
        match self {
            Self::Timestamp(_) => OrderedValue::Timestamp(v),
            Self::Date => OrderedValue::Date(v as i32),
            Self::Float => OrderedValue::Float(v as f64),
            Self::Str => OrderedValue::Str(v.to_string()),
            Self::Int => OrderedValue::Int(v),
        }
    }
}

/// One value of an `ordered_on` column.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderedValue {
    Int(i64),
    Float(f64),
    Str(String),
    Timestamp(i64),
    Date(i32),
}

/// How a value is kept in an SQL column whose comparisons must agree with the value's order.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlScalar {
    Integer(i64),
    Real(f64),
    Text(String),
}

impl OrderedValue {
    /// The value at `index` of an `ordered_on` array. `None` for a null, or for a value that
    /// cannot order a dataset (NaN, a u64 above i64::MAX).
    pub fn from_array(array: &dyn Array, index: usize) -> Option<Self> {
        if array.is_null(index) {
            return None;
        }
        Some(match array.data_type() {
            DataType::Int8 => Self::Int(array.as_primitive::<Int8Type>().value(index) as i64),
            DataType::Int16 => Self::Int(array.as_primitive::<Int16Type>().value(index) as i64),
            DataType::Int32 => Self::Int(array.as_primitive::<Int32Type>().value(index) as i64),
            DataType::Int64 => Self::Int(array.as_primitive::<Int64Type>().value(index)),
            DataType::UInt8 => Self::Int(array.as_primitive::<UInt8Type>().value(index) as i64),
            DataType::UInt16 => Self::Int(array.as_primitive::<UInt16Type>().value(index) as i64),
            DataType::UInt32 => Self::Int(array.as_primitive::<UInt32Type>().value(index) as i64),
            DataType::UInt64 => {
                Self::Int(i64::try_from(array.as_primitive::<UInt64Type>().value(index)).ok()?)
            }
            DataType::Float32 => {
                let v = array.as_primitive::<Float32Type>().value(index) as f64;
                if v.is_nan() {
                    return None;
                }
                Self::Float(v + 0.0)
            }
            DataType::Float64 => {
                let v = array.as_primitive::<Float64Type>().value(index);
                if v.is_nan() {
                    return None;
                }
                Self::Float(v + 0.0)
            }
            DataType::Utf8 => Self::Str(array.as_string::<i32>().value(index).to_string()),
            DataType::LargeUtf8 => Self::Str(array.as_string::<i64>().value(index).to_string()),
            DataType::Utf8View => Self::Str(array.as_string_view().value(index).to_string()),
            DataType::Timestamp(_, _) => {
                let a = array.as_any();
                use arrow::array::{
                    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
                    TimestampSecondArray,
                };
                if let Some(a) = a.downcast_ref::<TimestampNanosecondArray>() {
                    Self::Timestamp(a.value(index))
                } else if let Some(a) = a.downcast_ref::<TimestampMicrosecondArray>() {
                    Self::Timestamp(a.value(index))
                } else if let Some(a) = a.downcast_ref::<TimestampMillisecondArray>() {
                    Self::Timestamp(a.value(index))
                } else {
                    Self::Timestamp(a.downcast_ref::<TimestampSecondArray>()?.value(index))
                }
            }
            DataType::Date32 => Self::Date(array.as_primitive::<Date32Type>().value(index)),
            _ => return None,
        })
    }

    /// A one-element array of `data_type` holding this value, for Arrow comparison kernels.
    pub fn to_array(&self, data_type: &DataType) -> Option<ArrayRef> {
        use arrow::array::*;
        let array: ArrayRef = match (self, data_type) {
            (Self::Int(v), DataType::Int8) => {
                Arc::new(Int8Array::from(vec![i8::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::Int16) => {
                Arc::new(Int16Array::from(vec![i16::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::Int32) => {
                Arc::new(Int32Array::from(vec![i32::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v])),
            (Self::Int(v), DataType::UInt8) => {
                Arc::new(UInt8Array::from(vec![u8::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::UInt16) => {
                Arc::new(UInt16Array::from(vec![u16::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::UInt32) => {
                Arc::new(UInt32Array::from(vec![u32::try_from(*v).ok()?]))
            }
            (Self::Int(v), DataType::UInt64) => {
                Arc::new(UInt64Array::from(vec![u64::try_from(*v).ok()?]))
            }
            (Self::Float(v), DataType::Float32) => Arc::new(Float32Array::from(vec![*v as f32])),
            (Self::Float(v), DataType::Float64) => Arc::new(Float64Array::from(vec![*v])),
            (Self::Str(v), DataType::Utf8) => Arc::new(StringArray::from(vec![v.as_str()])),
            (Self::Str(v), DataType::LargeUtf8) => {
                Arc::new(LargeStringArray::from(vec![v.as_str()]))
            }
            (Self::Str(v), DataType::Utf8View) => Arc::new(StringViewArray::from(vec![v.as_str()])),
            (Self::Timestamp(v), DataType::Timestamp(unit, tz)) => {
                let a: ArrayRef = match unit {
                    TimeUnit::Second => Arc::new(TimestampSecondArray::from(vec![*v])),
                    TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(vec![*v])),
                    TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(vec![*v])),
                    TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(vec![*v])),
                };
                arrow::compute::cast(&a, &DataType::Timestamp(*unit, tz.clone())).ok()?
            }
            (Self::Date(v), DataType::Date32) => Arc::new(Date32Array::from(vec![*v])),
            _ => return None,
        };
        Some(array)
    }

    pub fn to_sql(&self) -> SqlScalar {
        match self {
            Self::Int(v) | Self::Timestamp(v) => SqlScalar::Integer(*v),
            Self::Date(v) => SqlScalar::Integer(*v as i64),
            Self::Float(v) => SqlScalar::Real(*v),
            Self::Str(v) => SqlScalar::Text(v.clone()),
        }
    }

    pub fn from_sql(kind: OrderedKind, value: SqlScalar) -> Self {
        match value {
            SqlScalar::Integer(v) => kind.from_integer(v),
            SqlScalar::Real(v) => Self::Float(v),
            SqlScalar::Text(v) => Self::Str(v),
        }
    }

    /// The value as JSON: timestamps in RFC 3339 (UTC), dates as `YYYY-MM-DD`.
    pub fn to_json(&self, kind: OrderedKind) -> serde_json::Value {
        match self {
            Self::Int(v) => (*v).into(),
            Self::Float(v) => {
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
            }
            Self::Str(v) => v.clone().into(),
            Self::Timestamp(_) | Self::Date(_) => self.display(kind).into(),
        }
    }

    /// Human form: timestamps in RFC 3339 (UTC), dates as `YYYY-MM-DD`.
    pub fn display(&self, kind: OrderedKind) -> String {
        match (self, kind) {
            (Self::Timestamp(v), OrderedKind::Timestamp(unit)) => time::to_datetime(*v, unit)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_else(|| v.to_string()),
            (Self::Date(v), _) => (time::epoch_date() + chrono::Duration::days(*v as i64))
                .format("%Y-%m-%d")
                .to_string(),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for OrderedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) | Self::Timestamp(v) => write!(f, "{v}"),
            Self::Date(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Str(v) => f.write_str(v),
        }
    }
}

impl Eq for OrderedValue {}

impl PartialOrd for OrderedValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Total order, agreeing with Arrow's sort kernels: floats by `total_cmp`. Values of
/// different families never meet in one dataset; they order by family to stay total.
impl Ord for OrderedValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use OrderedValue::*;
        match (self, other) {
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl OrderedValue {
    fn rank(&self) -> u8 {
        match self {
            Self::Int(_) => 0,
            Self::Float(_) => 1,
            Self::Str(_) => 2,
            Self::Timestamp(_) => 3,
            Self::Date(_) => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bounds_in_the_column_type() {
        let ts = OrderedKind::Timestamp(TimeUnit::Millisecond);
        assert_eq!(
            ts.parse("ts", "1970-01-02"),
            Ok(OrderedValue::Timestamp(86_400_000))
        );
        assert_eq!(
            ts.parse("ts", "1970-01-01T00:00:01Z"),
            Ok(OrderedValue::Timestamp(1000))
        );
        assert!(ts.parse("ts", "soon").is_err());
        assert_eq!(
            OrderedKind::Date.parse("d", "1970-01-03"),
            Ok(OrderedValue::Date(2))
        );
        assert_eq!(OrderedKind::Int.parse("i", "-5"), Ok(OrderedValue::Int(-5)));
        assert!(OrderedKind::Int.parse("i", "5.5").is_err());
        assert!(OrderedKind::Float.parse("f", "NaN").is_err());
        let err = OrderedKind::Int
            .parse("i", "x")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("\"x\"") && err.contains("i"), "{err}");
    }

    #[test]
    fn displays_timestamps_in_utc() {
        let kind = OrderedKind::Timestamp(TimeUnit::Second);
        assert_eq!(
            OrderedValue::Timestamp(86_400).display(kind),
            "1970-01-02T00:00:00Z"
        );
        assert_eq!(
            OrderedValue::Date(31).display(OrderedKind::Date),
            "1970-02-01"
        );
    }

    #[test]
    fn rejects_unorderable_types() {
        assert!(OrderedKind::of("b", &DataType::Boolean).is_err());
        assert!(OrderedKind::of("t", &DataType::Timestamp(TimeUnit::Nanosecond, None)).is_ok());
    }
}
