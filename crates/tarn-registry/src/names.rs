//! Names of registry components, and the `KIND:NAME[@N]` references of the command line.

use crate::error::{RegistryError, Result};
use tarn::registry_store::ComponentKind;

/// The longest name.
pub const MAX_NAME: usize = 64;

/// Checks a dimension, mapping or project name (and a dimension type): ASCII lowercase
/// letters, digits, `_` and `-`, starting with a letter or digit, at most 64 bytes.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} name {name:?} is not valid: use lowercase letters, digits, '_' and '-', starting with a letter or digit, at most {MAX_NAME} characters"
        )))
    }
}

/// The component name of a dataset's registration to a project.
pub fn registration_name(project: &str, dataset: &str) -> String {
    format!("{project}/{dataset}")
}

/// A component as the command line names it: `KIND:NAME[@N]`, or `NAME[@N]` when one kind
/// has that name (the caller resolves which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRef {
    pub kind: Option<ComponentKind>,
    pub name: String,
    pub version: Option<u64>,
}

impl ComponentRef {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            RegistryError::Invalid(format!(
                "component {text:?} {why}; write KIND:NAME[@VERSION], e.g. dimension:county or mapping:county_to_state@2 (kinds: dimension, mapping, project, registration)"
            ))
        };
        let (kind, rest) = match text.split_once(':') {
            Some((k, rest)) => (
                Some(ComponentKind::parse(k).ok_or_else(|| bad(&format!("has no kind {k:?}")))?),
                rest,
            ),
            None => (None, text),
        };
        let (name, version) = match rest.rsplit_once('@') {
            Some((name, v)) => {
                let v = v.strip_prefix('v').unwrap_or(v);
                let n: u64 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(&format!("has a bad version {v:?} (versions start at 1)"))
                })?;
                (name, Some(n))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("has no name"));
        }
        Ok(Self {
            kind,
            name: name.to_string(),
            version,
        })
    }
}

impl std::fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(k) = self.kind {
            write!(f, "{}:", k.as_str())?;
        }
        f.write_str(&self.name)?;
        if let Some(v) = self.version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "county",
            "county_to_state",
            "us-2020",
            "0a",
            &"a".repeat(64),
        ] {
            check_name("dimension", good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "County", "_x", "-x", "a b", "a/b", "é", &"a".repeat(65)] {
            let e = check_name("dimension", bad).expect_err(bad).to_string();
            assert!(e.contains("is not valid"), "{e}");
        }
    }

    #[test]
    fn references() {
        let r = ComponentRef::parse("dimension:county@2").expect("parse");
        assert_eq!(r.kind, Some(ComponentKind::Dimension));
        assert_eq!((r.name.as_str(), r.version), ("county", Some(2)));
        assert_eq!(r.to_string(), "dimension:county@2");
        let r = ComponentRef::parse("registration:study/demand/nc@v3").expect("parse");
        assert_eq!(r.name, "study/demand/nc");
        assert_eq!(r.version, Some(3));
        let r = ComponentRef::parse("county").expect("parse");
        assert_eq!((r.kind, r.version), (None, None));
        for (bad, needle) in [
            ("thing:x", "has no kind \"thing\""),
            ("dimension:", "has no name"),
            ("dimension:x@0", "bad version"),
            ("dimension:x@two", "bad version"),
        ] {
            let e = ComponentRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
