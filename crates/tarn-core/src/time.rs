//! Conversions between Arrow time units and UTC instants, shared by value parsing and
//! frequency arithmetic.

use arrow_schema::TimeUnit;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// How many units of `unit` make one second.
pub fn units_per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// The instant `value` (in `unit` since the Unix epoch) as a UTC date-time.
pub fn to_datetime(value: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    let per = units_per_second(unit);
    let secs = value.div_euclid(per);
    let sub = value.rem_euclid(per);
    let nanos = (sub as i128 * 1_000_000_000 / per as i128) as u32;
    DateTime::from_timestamp(secs, nanos)
}

/// `t` as a count of `unit` since the Unix epoch; `None` if it does not fit in an i64.
pub fn from_datetime(t: &DateTime<Utc>, unit: TimeUnit) -> Option<i64> {
    let secs = t.timestamp() as i128;
    let nanos = t.timestamp_subsec_nanos() as i128;
    let per = units_per_second(unit) as i128;
    let v = secs * per + nanos * per / 1_000_000_000;
    i64::try_from(v).ok()
}

pub fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Parses RFC 3339, `YYYY-MM-DD` (midnight UTC), or a naive `YYYY-MM-DD HH:MM:SS[.f]` /
/// `YYYY-MM-DDTHH:MM:SS[.f]` taken as UTC.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_negative_and_positive() {
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ] {
            for v in [-1_500_000_001i64, -1, 0, 1, 1_700_000_000_123] {
                let t = to_datetime(v, unit).expect("in range");
                assert_eq!(from_datetime(&t, unit), Some(v), "{unit:?} {v}");
            }
        }
    }

    #[test]
    fn parses_instants() {
        let a = parse_instant("2024-01-05").expect("date");
        let b = parse_instant("2024-01-05T00:00:00Z").expect("rfc");
        let c = parse_instant("2024-01-05 01:00:00").expect("naive");
        let d = parse_instant("2024-01-05T02:00:00+01:00").expect("offset");
        assert_eq!(a, b);
        assert_eq!(c, d);
        assert!(parse_instant("yesterday").is_none());
    }
}
