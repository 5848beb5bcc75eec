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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    pub duplicates_on: DuplicatesOn,
    pub row_group_target: RowGroupTarget,
    /// When more than this many trailing row groups are under target, they are merged.
    pub max_off_target: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            duplicates_on: DuplicatesOn::None,
            row_group_target: RowGroupTarget::default(),
            max_off_target: 1,
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
    fn parses_duplicates_on() {
        assert_eq!(DuplicatesOn::parse("*"), DuplicatesOn::All);
        assert_eq!(DuplicatesOn::parse(""), DuplicatesOn::None);
        assert_eq!(
            DuplicatesOn::parse("a, b"),
            DuplicatesOn::Columns(vec!["a".into(), "b".into()])
        );
    }
}
