//! The `tarn://<dataset>[@<branch>][:<ref>]` URI of SPEC §5, parsed in full here even where a
//! ref form is resolved by a later layer. A bad URI is an error that quotes it and names the
//! part that is wrong.

use crate::error::{CoreError, Result};
use crate::name::{BranchName, DatasetName};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;

pub const SCHEME: &str = "tarn://";

/// Which version of a branch a URI designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// Empty ref: the live head; a pipeline reading it this way follows it in real time.
    Live,
    /// `latest`: the head at the time the URI is resolved.
    Latest,
    /// `v<N>`: version N (1-based).
    Version(u64),
    /// A signed integer: Python-style index in commit order (`0` first, `-1` latest).
    Index(i64),
    /// `YYYY-MM-DD`: the last version committed at or before the end of that day (UTC).
    Date(NaiveDate),
    /// RFC 3339: the last version committed at or before that instant.
    Timestamp(DateTime<Utc>),
    /// Anything else: a tag name.
    Tag(String),
}

impl Ref {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if text.is_empty() {
            return Ok(Ref::Live);
        }
        if text == "latest" {
            return Ok(Ref::Latest);
        }
        if let Some(digits) = text.strip_prefix('v')
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return match digits.parse::<u64>() {
                Ok(0) => Err("versions start at v1".into()),
                Ok(n) => Ok(Ref::Version(n)),
                Err(_) => Err(format!("version {digits} is too large")),
            };
        }
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<i64>()
                .map(Ref::Index)
                .map_err(|_| format!("index {text} is out of range"));
        }
        if looks_like_date(text) {
            return NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Ref::Date)
                .map_err(|e| format!("{text:?} looks like a date but is not a valid one ({e})"));
        }
        if looks_like_timestamp(text) {
            return DateTime::parse_from_rfc3339(text)
                .map(|t| Ref::Timestamp(t.with_timezone(&Utc)))
                .map_err(|e| {
                    format!(
                        "{text:?} looks like a timestamp but is not RFC 3339 ({e}); \
                         write e.g. 2024-01-05T12:00:00Z"
                    )
                });
        }
        validate_tag(text).map(|()| Ref::Tag(text.to_string()))
    }
}

fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn looks_like_timestamp(text: &str) -> bool {
    // Bytes, not `&text[..10]`: the tenth byte may fall inside a multi-byte character.
    let b = text.as_bytes();
    b.len() > 10
        && text.is_char_boundary(10)
        && looks_like_date(&text[..10])
        && matches!(b[10], b'T' | b't' | b' ')
}

/// A tag name: one segment of `[A-Za-z0-9_.=-]`, not starting with `.`, and not parseable as
/// any other ref form (so `tarn://x:v3` can never mean a tag called `v3`).
pub fn validate_tag(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("a tag name may not be empty".into());
    }
    if name.starts_with('.') {
        return Err(format!("tag {name:?} may not start with '.'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '-')))
    {
        return Err(format!(
            "tag {name:?} contains {c:?}; tags use letters, digits and _ . = -"
        ));
    }
    Ok(())
}

/// True when `name` would be read back as a tag, i.e. it does not look like a version,
/// index, date or timestamp. Used to reject such tag names at creation.
pub fn is_tag_like(name: &str) -> bool {
    matches!(Ref::parse(name), Ok(Ref::Tag(_)))
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Live => Ok(()),
            Ref::Latest => f.write_str("latest"),
            Ref::Version(n) => write!(f, "v{n}"),
            Ref::Index(i) => write!(f, "{i}"),
            Ref::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Ref::Timestamp(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            Ref::Tag(t) => f.write_str(t),
        }
    }
}

/// A parsed `tarn://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarnUri {
    pub dataset: DatasetName,
    /// `None` means the default branch, `main`.
    pub branch: Option<BranchName>,
    pub reference: Ref,
}

impl TarnUri {
    pub fn new(dataset: DatasetName) -> Self {
        Self {
            dataset,
            branch: None,
            reference: Ref::Live,
        }
    }

    /// Parses a full `tarn://` URI.
    pub fn parse(uri: &str) -> Result<Self> {
        let Some(rest) = uri.strip_prefix(SCHEME) else {
            return Err(invalid(uri, "it must start with tarn://".into()));
        };
        Self::parse_body(uri, rest)
    }

    /// Parses a `tarn://` URI or a bare `dataset[@branch][:ref]`, as the CLI accepts both.
    pub fn parse_lenient(text: &str) -> Result<Self> {
        match text.strip_prefix(SCHEME) {
            Some(rest) => Self::parse_body(text, rest),
            None if text.contains("://") => Err(invalid(
                text,
                "only the tarn:// scheme names a dataset".into(),
            )),
            None => Self::parse_body(text, text),
        }
    }

    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        // Dataset names and branch names never contain ':' or '@', so the first ':' starts
        // the ref (which may itself contain ':' in an RFC 3339 time).
        let (head, reference) = match rest.split_once(':') {
            Some((head, r)) => (head, Some(r)),
            None => (rest, None),
        };
        let (dataset, branch) = match head.split_once('@') {
            Some((d, b)) => (d, Some(b)),
            None => (head, None),
        };
        if dataset.is_empty() {
            return Err(invalid(uri, "the dataset name is missing".into()));
        }
        let dataset = DatasetName::new(dataset).map_err(|e| match e {
            CoreError::InvalidName { reason, .. } => {
                invalid(uri, format!("dataset name {dataset:?}: {reason}"))
            }
            other => other,
        })?;
        let branch = match branch {
            None => None,
            Some("") => return Err(invalid(uri, "the branch after '@' is empty".into())),
            Some(b) => Some(BranchName::new(b).map_err(|e| match e {
                CoreError::InvalidBranch { reason, .. } => {
                    invalid(uri, format!("branch {b:?}: {reason}"))
                }
                other => other,
            })?),
        };
        let reference = match reference {
            None => Ref::Live,
            Some(r) => {
                Ref::parse(r).map_err(|reason| invalid(uri, format!("ref {r:?}: {reason}")))?
            }
        };
        Ok(Self {
            dataset,
            branch,
            reference,
        })
    }

    pub fn branch_name(&self) -> BranchName {
        self.branch.clone().unwrap_or_else(BranchName::main)
    }

    pub fn with_ref(mut self, reference: Ref) -> Self {
        self.reference = reference;
        self
    }
}

fn invalid(uri: &str, reason: String) -> CoreError {
    CoreError::InvalidUri {
        uri: uri.to_string(),
        reason,
    }
}

impl fmt::Display for TarnUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.dataset)?;
        if let Some(b) = &self.branch {
            write!(f, "@{b}")?;
        }
        if self.reference != Ref::Live {
            write!(f, ":{}", self.reference)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for TarnUri {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_lenient(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> TarnUri {
        TarnUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_ref_form() {
        assert_eq!(p("tarn://a/b").reference, Ref::Live);
        assert_eq!(p("tarn://a/b:").reference, Ref::Live);
        assert_eq!(p("tarn://a:latest").reference, Ref::Latest);
        assert_eq!(p("tarn://a:v12").reference, Ref::Version(12));
        assert_eq!(p("tarn://a:-1").reference, Ref::Index(-1));
        assert_eq!(p("tarn://a:0").reference, Ref::Index(0));
        assert_eq!(p("tarn://a:+3").reference, Ref::Index(3));
        assert_eq!(
            p("tarn://a:2023-01-05").reference,
            Ref::Date(NaiveDate::from_ymd_opt(2023, 1, 5).expect("date"))
        );
        let t = p("tarn://a@dev:2023-01-05T10:00:00+02:00");
        assert_eq!(t.branch.as_ref().map(|b| b.as_str()), Some("dev"));
        assert_eq!(
            t.reference,
            Ref::Timestamp(
                DateTime::parse_from_rfc3339("2023-01-05T08:00:00Z")
                    .expect("ts")
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(
            p("tarn://a:release-1.2").reference,
            Ref::Tag("release-1.2".into())
        );
        assert_eq!(p("tarn://a:v1.2").reference, Ref::Tag("v1.2".into()));
    }

    #[test]
    fn errors_name_the_part() {
        for (uri, needle) in [
            ("a/b", "tarn://"),
            ("tarn://", "dataset name is missing"),
            ("tarn://a/../b", "dataset name"),
            ("tarn:///etc", "dataset name"),
            ("tarn://a@:v1", "branch after '@' is empty"),
            ("tarn://a@x/y", "branch"),
            ("tarn://a:v0", "start at v1"),
            ("tarn://a:2023-13-01", "not a valid one"),
            ("tarn://a:2023-01-01T25:00:00Z", "not RFC 3339"),
            ("tarn://a:bad tag", "contains ' '"),
            ("tarn://a:99999999999999999999", "out of range"),
        ] {
            let err = TarnUri::parse(uri).expect_err(uri).to_string();
            assert!(err.contains(needle), "{uri}: {err}");
            assert!(
                err.contains(&format!("{uri:?}")),
                "{uri}: error must quote the URI: {err}"
            );
        }
    }

    #[test]
    fn lenient_accepts_bare_names() {
        let u = TarnUri::parse_lenient("w/x@dev:v2").expect("parses");
        assert_eq!(u.to_string(), "tarn://w/x@dev:v2");
        assert!(TarnUri::parse_lenient("s3://x").is_err());
    }

    #[test]
    fn tags_cannot_look_like_other_forms() {
        for t in [
            "v1",
            "1",
            "-2",
            "latest",
            "2023-01-01",
            "2023-01-01T00:00:00Z",
        ] {
            assert!(!is_tag_like(t), "{t}");
        }
        assert!(is_tag_like("gold"));
    }

    /// Found by schemathesis through `tarn serve`: a ref whose tenth byte falls inside a
    /// multi-byte character panicked in the timestamp test instead of being refused.
    #[test]
    fn multi_byte_refs_are_refused_not_a_panic() {
        for uri in [
            "L:ê\u{80}\u{b}󃁒\u{9b}Ö🞙qQ",
            "tarn://a:2024-01-0é",
            "tarn://a:ééééééé",
        ] {
            assert!(TarnUri::parse_lenient(uri).is_err(), "{uri}");
        }
    }

    proptest! {
        /// No text panics the parser (it either parses or says why not).
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}") {
            let _ = TarnUri::parse(&text);
            let _ = TarnUri::parse_lenient(&text);
            let _ = TarnUri::parse_lenient(&format!("a:{text}"));
        }

        #[test]
        fn display_round_trips(
            ds in "[a-z0-9_=-]{1,8}(/[A-Za-z0-9_=-]{1,8}){0,3}",
            br in proptest::option::of("[a-z0-9_-]{1,8}"),
            r in prop_oneof![
                Just(Ref::Live), Just(Ref::Latest),
                (1u64..1_000_000).prop_map(Ref::Version),
                any::<i32>().prop_map(|i| Ref::Index(i as i64)),
                "[a-z][a-z0-9_-]{0,10}".prop_filter("tag", |t| is_tag_like(t)).prop_map(Ref::Tag),
            ],
        ) {
            let uri = TarnUri {
                dataset: DatasetName::new(ds).expect("valid"),
                branch: br.map(|b| BranchName::new(b).expect("valid")),
                reference: r,
            };
            prop_assert_eq!(TarnUri::parse(&uri.to_string()).expect("parses"), uri);
        }
    }
}
