//! Registry errors. Each says what is wrong and, where ids are at fault, lists them: the
//! first [`SHOWN`] and how many in all.

use std::fmt;

/// How many offending ids an error lists.
pub const SHOWN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The input is refused as it is; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A named component, dataset or column does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Tarn(#[from] tarn::Error),
    #[error(transparent)]
    Query(#[from] tarn_query::QueryError),
    #[error("{0}")]
    Io(String),
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Tarn(e) if e.kind() == tarn::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Other,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// `items` as `a, b, c (and 17 more; 20 in all)` with at most [`SHOWN`] shown.
pub struct Listing<'a, T: fmt::Display>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for Listing<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        if self.0.len() > SHOWN {
            write!(
                f,
                " (and {} more; {} in all)",
                self.0.len() - SHOWN,
                self.0.len()
            )?;
        }
        Ok(())
    }
}

/// An id shown in a message: quoted, so that blanks and empty ids are visible.
pub struct Id<'a>(pub &'a str);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_stop_at_twenty() {
        let few = ["a", "b"];
        assert_eq!(Listing(&few).to_string(), "a, b");
        let many: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let text = Listing(&many).to_string();
        assert!(text.starts_with("0, 1, 2"), "{text}");
        assert!(text.ends_with("19 (and 5 more; 25 in all)"), "{text}");
    }
}
