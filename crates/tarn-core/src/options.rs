//! The options of a write (SPEC §3): deduplication key, row-group target and trailing
//! coalescing. They are stored with the dataset at its first write and can be overridden per
//! write; an override is kept by the version it creates.

use crate::error::{CoreError, Result};
use crate::freq::Frequency;
use std::fmt;

/// Which columns make two rows duplicates. `ordered_on` is always part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatesOn {
    /// Keep every row.
    #[default]
    None,
    /// Rows equal on these columns (plus `ordered_on`) are duplicates.
    Columns(Vec<String>),
    /// Rows equal on every column are duplicates (`*`).
    All,
}

impl DuplicatesOn {
    /// Parses `c1,c2`, `*`, or the empty string (no deduplication).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text == "*" {
            Self::All
        } else if text.is_empty() {
            Self::None
        } else {
            Self::Columns(text.split(',').map(|c| c.trim().to_string()).collect())
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// For display and JSON: `null`, `"*"`, or the list of columns.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::None => serde_json::Value::Null,
            Self::All => "*".into(),
            Self::Columns(c) => c.clone().into(),
        }
    }
}

/// What a row group aims at (SPEC §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowGroupTarget {
    /// About this many rows per row group.
    Rows(u64),
    /// One period of this frequency per row group; a row group never spans two periods.
    Frequency(Frequency),
}

impl RowGroupTarget {
    /// The default: 100,000 rows, a size that decodes in about a millisecond per column and
    /// keeps footers small.
    pub const DEFAULT_ROWS: u64 = 100_000;

    /// Parses a positive row count (`100000`) or a frequency (`1D`).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u64>() {
                Ok(0) => Err(CoreError::InvalidOption(
                    "row-group size must be at least 1 row".into(),
                )),
                Ok(n) => Ok(Self::Rows(n)),
                Err(_) => Err(CoreError::InvalidOption(format!(
                    "row-group size {text} is too large"
                ))),
            };
        }
        Frequency::parse(text).map(Self::Frequency)
    }
}

impl Default for RowGroupTarget {
    fn default() -> Self {
        Self::Rows(Self::DEFAULT_ROWS)
    }
}

impl fmt::Display for RowGroupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rows(n) => write!(f, "{n}"),
            Self::Frequency(freq) => write!(f, "{freq}"),
        }
    }
}

/// The stored write options of a dataset (and of each of its versions).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredWriteOptions", into = "StoredWriteOptions")]
pub struct WriteOptions {
    pub duplicates_on: DuplicatesOn,
    pub row_group_target: RowGroupTarget,
    /// How the trailing row groups under a row-count target are merged (SPEC §3.5,
    /// docs/design/0007): `None`, the default, keeps a size-tiered tail; `Some(n)`
    /// (`--max-off-target n`) is oups's rule: when more than `n` trailing row groups are
    /// under target, they are merged.
    pub max_off_target: Option<u32>,
}

/// The JSON of [`WriteOptions`] in the catalog (`versions.options_json`).
///
/// Options stored before the tiered tail carry only `max_off_target`, a number that was 1
/// unless the dataset was created with another `--max-off-target`: 1 reads as the tiered
/// default (tarn cannot tell an explicit 1 from the old default, and the old default is
/// what the tiered tail replaces), any other number as that explicit choice. Options stored
/// now add `coalescing`, so an explicit 1 stays explicit; they keep a number in
/// `max_off_target` (1 for the tiered tail) so that an older tarn still reads them.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWriteOptions {
    duplicates_on: DuplicatesOn,
    row_group_target: RowGroupTarget,
    #[serde(default)]
    max_off_target: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    coalescing: Option<StoredCoalescing>,
}

#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredCoalescing {
    Tiered,
    MaxOffTarget,
}

impl From<StoredWriteOptions> for WriteOptions {
    fn from(s: StoredWriteOptions) -> Self {
        let max_off_target = match (s.coalescing, s.max_off_target) {
            (Some(StoredCoalescing::Tiered), _) => None,
            (Some(StoredCoalescing::MaxOffTarget), n) => Some(n.unwrap_or(1)),
            (None, None | Some(1)) => None,
            (None, Some(n)) => Some(n),
        };
        Self {
            duplicates_on: s.duplicates_on,
            row_group_target: s.row_group_target,
            max_off_target,
        }
    }
}

impl From<WriteOptions> for StoredWriteOptions {
    fn from(o: WriteOptions) -> Self {
        let (max_off_target, coalescing) = match o.max_off_target {
            None => (1, StoredCoalescing::Tiered),
            Some(n) => (n, StoredCoalescing::MaxOffTarget),
        };
        Self {
            duplicates_on: o.duplicates_on,
            row_group_target: o.row_group_target,
            max_off_target: Some(max_off_target),
            coalescing: Some(coalescing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(RowGroupTarget::parse("500"), Ok(RowGroupTarget::Rows(500)));
        assert!(matches!(
            RowGroupTarget::parse("1D"),
            Ok(RowGroupTarget::Frequency(_))
        ));
        assert!(RowGroupTarget::parse("0").is_err());
        assert!(RowGroupTarget::parse("1Q").is_err());
    }

    #[test]
    fn stored_options_tell_the_tiered_default_from_an_explicit_max_off_target() {
        let read = |json: &str| -> Option<u32> {
            serde_json::from_str::<WriteOptions>(json)
                .expect("options")
                .max_off_target
        };
        let legacy = |n: u32| {
            format!(
                r#"{{"duplicates_on":"none","row_group_target":{{"rows":100000}},"max_off_target":{n}}}"#
            )
        };
        // Stored before the tiered tail: 1 was the default, so it reads as the default.
        assert_eq!(read(&legacy(1)), None);
        assert_eq!(read(&legacy(3)), Some(3));
        assert_eq!(read(&legacy(0)), Some(0));
        // Stored now: both kinds round-trip, an explicit 1 included.
        for max_off_target in [None, Some(0), Some(1), Some(3)] {
            let options = WriteOptions {
                max_off_target,
                ..WriteOptions::default()
            };
            let json = serde_json::to_string(&options).expect("json");
            assert_eq!(read(&json), max_off_target, "{json}");
            // An older tarn reads the number: 1 (its own default) for the tiered tail.
            let value: serde_json::Value = serde_json::from_str(&json).expect("value");
            assert_eq!(
                value["max_off_target"].as_u64(),
                Some(u64::from(max_off_target.unwrap_or(1))),
                "{json}"
            );
        }
    }

    #[test]
    fn parses_duplicates_on() {
        assert_eq!(DuplicatesOn::parse("*"), DuplicatesOn::All);
        assert_eq!(DuplicatesOn::parse(""), DuplicatesOn::None);
        assert_eq!(
            DuplicatesOn::parse("a, b"),
            DuplicatesOn::Columns(vec!["a".into(), "b".into()])
        );
    }
}
