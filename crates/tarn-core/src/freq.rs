//! Time frequencies such as `1D`, `1h`, `15min`, `1W`, `1MS` (pandas-style aliases), used as
//! row-group targets (SPEC §3.6) and later as iteration steps. A frequency cuts time into
//! periods aligned on the Unix epoch (weeks start on Monday, months and years on the 1st).

use crate::error::{CoreError, Result};
use crate::time;
use crate::value::{OrderedKind, OrderedValue};
use arrow::datatypes::TimeUnit;
use chrono::{Datelike, NaiveDate};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FreqUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    MonthStart,
    YearStart,
}

/// `count` times a calendar or fixed unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frequency {
    pub count: u32,
    pub unit: FreqUnit,
}

const ALIASES: &[(&str, FreqUnit)] = &[
    ("ms", FreqUnit::Millisecond),
    ("L", FreqUnit::Millisecond),
    ("s", FreqUnit::Second),
    ("S", FreqUnit::Second),
    ("min", FreqUnit::Minute),
    ("T", FreqUnit::Minute),
    ("h", FreqUnit::Hour),
    ("H", FreqUnit::Hour),
    ("D", FreqUnit::Day),
    ("d", FreqUnit::Day),
    ("W", FreqUnit::Week),
    ("MS", FreqUnit::MonthStart),
    ("YS", FreqUnit::YearStart),
    ("AS", FreqUnit::YearStart),
];

const DAY_SECONDS: i64 = 86_400;
/// 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05.
const WEEK_ORIGIN_SECONDS: i64 = 4 * DAY_SECONDS;

impl Frequency {
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: String| CoreError::InvalidFrequency {
            input: input.to_string(),
            reason,
        };
        let text = input.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, alias) = text.split_at(split);
        let count = if digits.is_empty() {
            1
        } else {
            digits
                .parse::<u32>()
                .map_err(|_| invalid("the count is too large".into()))?
        };
        if count == 0 {
            return Err(invalid("the count must be at least 1".into()));
        }
        let unit = ALIASES
            .iter()
            .find(|(a, _)| *a == alias)
            .map(|(_, u)| *u)
            .ok_or_else(|| {
                invalid(if alias.is_empty() {
                    "a frequency needs a unit".into()
                } else {
                    format!("unknown unit {alias:?}; use ms, s, min, h, D, W, MS or YS (e.g. 1D, 15min, 1MS)")
                })
            })?;
        Ok(Self { count, unit })
    }

    fn fixed_seconds(&self) -> Option<(i64, i64)> {
        let (secs, origin) = match self.unit {
            FreqUnit::Millisecond | FreqUnit::MonthStart | FreqUnit::YearStart => return None,
            FreqUnit::Second => (1, 0),
            FreqUnit::Minute => (60, 0),
            FreqUnit::Hour => (3_600, 0),
            FreqUnit::Day => (DAY_SECONDS, 0),
            FreqUnit::Week => (7 * DAY_SECONDS, WEEK_ORIGIN_SECONDS),
        };
        Some((secs * self.count as i64, origin))
    }

    /// Checks that this frequency can cut values of `kind`.
    pub fn check_kind(&self, column: &str, kind: OrderedKind) -> Result<()> {
        let ok = match kind {
            OrderedKind::Timestamp(_) => true,
            OrderedKind::Date => !matches!(
                self.unit,
                FreqUnit::Millisecond | FreqUnit::Second | FreqUnit::Minute | FreqUnit::Hour
            ),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(CoreError::InvalidFrequency {
                input: self.to_string(),
                reason: format!(
                    "ordered_on column {column:?} is not a timestamp{}: use a row count instead",
                    if kind == OrderedKind::Date {
                        " (a date column takes D, W, MS or YS)"
                    } else {
                        ""
                    }
                ),
            })
        }
    }

    /// The index of the period holding `value`; two values share a period iff their indexes
    /// are equal. `None` for a value this frequency cannot cut (see [`Self::check_kind`]).
    pub fn period_of(&self, value: &OrderedValue, kind: OrderedKind) -> Option<i64> {
        let (v, unit) = match (value, kind) {
            (OrderedValue::Timestamp(v), OrderedKind::Timestamp(unit)) => (*v, unit),
            (OrderedValue::Date(d), OrderedKind::Date) => {
                (*d as i64 * DAY_SECONDS, TimeUnit::Second)
            }
            _ => return None,
        };
        let per = time::units_per_second(unit) as i128;
        if let Some((secs, origin)) = self.fixed_seconds() {
            let len = secs as i128 * per;
            let shifted = v as i128 - origin as i128 * per;
            return i64::try_from(shifted.div_euclid(len)).ok();
        }
        if self.unit == FreqUnit::Millisecond {
            let len = self.count as i128 * per / 1000;
            if len == 0 {
                return None;
            }
            return i64::try_from((v as i128).div_euclid(len)).ok();
        }
        let t = time::to_datetime(v, unit)?;
        let months = (t.year() as i64 - 1970) * 12 + t.month0() as i64;
        let index = match self.unit {
            FreqUnit::MonthStart => months,
            _ => months.div_euclid(12),
        };
        Some(index.div_euclid(self.count as i64))
    }

    /// The first value of period `index` (inclusive start), in `kind`.
    pub fn period_start(&self, index: i64, kind: OrderedKind) -> Option<OrderedValue> {
        let (unit, is_date) = match kind {
            OrderedKind::Timestamp(unit) => (unit, false),
            OrderedKind::Date => (TimeUnit::Second, true),
            _ => return None,
        };
        let per = time::units_per_second(unit) as i128;
        let start_units: i128 = if let Some((secs, origin)) = self.fixed_seconds() {
            (index as i128 * secs as i128 + origin as i128) * per
        } else if self.unit == FreqUnit::Millisecond {
            index as i128 * self.count as i128 * per / 1000
        } else {
            let months = match self.unit {
                FreqUnit::MonthStart => index * self.count as i64,
                _ => index * self.count as i64 * 12,
            };
            let year = 1970 + months.div_euclid(12);
            let month = months.rem_euclid(12) as u32 + 1;
            let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
            let t = date.and_hms_opt(0, 0, 0)?.and_utc();
            time::from_datetime(&t, unit)? as i128
        };
        let v = i64::try_from(start_units).ok()?;
        Some(if is_date {
            OrderedValue::Date(i32::try_from(v.div_euclid(DAY_SECONDS)).ok()?)
        } else {
            OrderedValue::Timestamp(v)
        })
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alias = match self.unit {
            FreqUnit::Millisecond => "ms",
            FreqUnit::Second => "s",
            FreqUnit::Minute => "min",
            FreqUnit::Hour => "h",
            FreqUnit::Day => "D",
            FreqUnit::Week => "W",
            FreqUnit::MonthStart => "MS",
            FreqUnit::YearStart => "YS",
        };
        write!(f, "{}{alias}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: OrderedKind = OrderedKind::Timestamp(TimeUnit::Nanosecond);

    fn ts(text: &str) -> OrderedValue {
        NS.parse("ts", text).expect("valid")
    }

    #[test]
    fn parses_aliases() {
        assert_eq!(
            Frequency::parse("1D").map(|f| f.to_string()),
            Ok("1D".into())
        );
        assert_eq!(
            Frequency::parse("15min").map(|f| f.to_string()),
            Ok("15min".into())
        );
        assert_eq!(
            Frequency::parse("h").map(|f| f.to_string()),
            Ok("1h".into())
        );
        assert_eq!(
            Frequency::parse("1MS").map(|f| f.to_string()),
            Ok("1MS".into())
        );
        for bad in ["", "0D", "1x", "D1", "99999999999D"] {
            assert!(Frequency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_align_on_calendar() {
        let day = Frequency::parse("1D").expect("valid");
        let a = day.period_of(&ts("2024-03-01T00:00:00Z"), NS);
        let b = day.period_of(&ts("2024-03-01T23:59:59.999999999Z"), NS);
        let c = day.period_of(&ts("2024-03-02T00:00:00Z"), NS);
        assert_eq!(a, b);
        assert_ne!(b, c);
        let week = Frequency::parse("1W").expect("valid");
        let mon = week
            .period_of(&ts("2024-03-04T00:00:00Z"), NS)
            .expect("in range");
        assert_eq!(week.period_of(&ts("2024-03-10T23:00:00Z"), NS), Some(mon));
        assert_eq!(week.period_start(mon, NS), Some(ts("2024-03-04")));
        let month = Frequency::parse("1MS").expect("valid");
        let feb = month
            .period_of(&ts("2024-02-29T12:00:00Z"), NS)
            .expect("in range");
        assert_eq!(month.period_start(feb, NS), Some(ts("2024-02-01")));
        assert_eq!(month.period_start(feb + 1, NS), Some(ts("2024-03-01")));
        let before_epoch = day
            .period_of(&ts("1969-12-31T12:00:00Z"), NS)
            .expect("in range");
        assert_eq!(day.period_start(before_epoch, NS), Some(ts("1969-12-31")));
    }

    #[test]
    fn date_columns_take_day_multiples() {
        let day = Frequency::parse("1D").expect("valid");
        assert!(day.check_kind("d", OrderedKind::Date).is_ok());
        assert!(
            Frequency::parse("1h")
                .expect("valid")
                .check_kind("d", OrderedKind::Date)
                .is_err()
        );
        assert!(day.check_kind("i", OrderedKind::Int).is_err());
        let p = day
            .period_of(&OrderedValue::Date(10), OrderedKind::Date)
            .expect("in range");
        assert_eq!(
            day.period_start(p, OrderedKind::Date),
            Some(OrderedValue::Date(10))
        );
    }
}
