//! Dataset and branch names (SPEC §1): paths of `[A-Za-z0-9_.=-]+` segments joined by `/`,
//! no segment starting with `.`, case-sensitive. Validation here is what keeps a name from
//! ever escaping the lake's data directory (no `..`, no absolute path, no empty segment).

use crate::error::{CoreError, Result};
use std::fmt;

/// A validated dataset name such as `weather/berlin/1D`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

fn segment_error(segment: &str) -> Option<String> {
    if segment.is_empty() {
        return Some("it has an empty segment (a leading, trailing or doubled '/')".into());
    }
    if segment.starts_with('.') {
        return Some(format!(
            "segment {segment:?} starts with '.' (names may not contain '.' or '..' segments)"
        ));
    }
    if let Some(c) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '-')))
    {
        return Some(format!(
            "character {c:?} is not allowed (use letters, digits and _ . = - in segments joined by /)"
        ));
    }
    None
}

impl DatasetName {
    pub const MAX_LEN: usize = 1024;

    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let invalid = |reason: String| CoreError::InvalidName {
            name: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if name.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "it is longer than {} bytes",
                Self::MAX_LEN
            )));
        }
        if name.starts_with('/') {
            return Err(invalid("absolute paths are not dataset names".into()));
        }
        if let Some(reason) = name.split('/').find_map(segment_error) {
            return Err(invalid(reason));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `prefix` or lies under it (`a/b` is under `a`, `ab` is not).
    pub fn is_under(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || self.0 == prefix
            || (self.0.starts_with(prefix) && self.0.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DatasetName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

impl std::str::FromStr for DatasetName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// A validated branch name: one segment (no `/`), same characters as a dataset segment.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BranchName(String);

impl BranchName {
    pub const MAIN: &'static str = "main";

    pub fn main() -> Self {
        Self(Self::MAIN.to_string())
    }

    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.contains('/') {
            Some("branch names are one segment and may not contain '/'".to_string())
        } else if name.len() > 256 {
            Some("it is longer than 256 bytes".to_string())
        } else {
            segment_error(&name)
        };
        match reason {
            Some(reason) => Err(CoreError::InvalidBranch { name, reason }),
            None => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BranchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BranchName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<BranchName> for String {
    fn from(value: BranchName) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_names() {
        for n in ["a", "weather/berlin/1D", "x=1/y-2/z_3.parquet", "A.b"] {
            assert_eq!(
                DatasetName::new(n).map(|d| d.to_string()),
                Ok(n.to_string())
            );
        }
    }

    #[test]
    fn rejects_traversal_and_bad_characters() {
        for (n, needle) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("a/../b", "starts with '.'"),
            ("..", "starts with '.'"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a b", "' '"),
            ("a\\b", "'\\\\'"),
            ("é", "'é'"),
            ("a:b", "':'"),
        ] {
            let err = DatasetName::new(n).expect_err(n).to_string();
            assert!(err.contains(needle), "{n:?}: {err}");
        }
    }

    #[test]
    fn prefix_matching_is_by_segment() {
        let name = DatasetName::new("ab/c").expect("valid");
        assert!(name.is_under("ab"));
        assert!(name.is_under("ab/"));
        assert!(name.is_under(""));
        assert!(!name.is_under("a"));
    }

    #[test]
    fn branch_names() {
        assert!(BranchName::new("dev-1").is_ok());
        assert!(BranchName::new("a/b").is_err());
        assert!(BranchName::new(".hidden").is_err());
    }
}
