//! Errors of SQL over a lake: DataFusion's own (SQL syntax with its position, planning,
//! execution), tarn's (a URI that does not resolve), and the ones this crate adds (an
//! unknown or ambiguous table name, with the close names).

use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Tarn(#[from] tarn::Error),
    /// DataFusion's error, shown as DataFusion words it (its causes are in the message).
    #[error("{0}")]
    DataFusion(DataFusionError),
    /// The SQL does not parse; the message gives the line and column.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// A table name that is no dataset of the lake.
    #[error("unknown table {name}{hint}")]
    UnknownTable { name: String, hint: String },
    /// A dotted name that matches several datasets.
    #[error(
        "table name {name} is ambiguous: it matches the datasets {candidates}; quote the one you mean, e.g. \"{first}\""
    )]
    Ambiguous {
        name: String,
        candidates: String,
        first: String,
    },
    /// The `tarn()` table function was called wrongly.
    #[error("{0}")]
    InvalidCall(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::SQL(parser, _) => {
                let text = parser.to_string();
                QueryError::Syntax(
                    text.strip_prefix("sql parser error: ")
                        .unwrap_or(&text)
                        .to_string(),
                )
            }
            other => QueryError::DataFusion(other),
        }
    }
}

impl QueryError {
    /// Carries this error through DataFusion (inside a table provider) so that it comes
    /// back out unchanged.
    pub fn into_datafusion(self) -> DataFusionError {
        match self {
            QueryError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }

    /// Unwraps an error that went through DataFusion back into ours.
    pub fn from_datafusion(e: DataFusionError) -> Self {
        match e {
            DataFusionError::External(inner) => match inner.downcast::<QueryError>() {
                Ok(q) => *q,
                Err(other) => DataFusionError::External(other).into(),
            },
            DataFusionError::Context(context, inner) => match *inner {
                DataFusionError::External(ext) if ext.is::<QueryError>() => {
                    QueryError::from_datafusion(DataFusionError::External(ext))
                }
                other => DataFusionError::Context(context, Box::new(other)).into(),
            },
            other => other.into(),
        }
    }

    /// Whether the user's input (SQL, a name, a URI) is at fault, rather than the lake.
    pub fn is_user_error(&self) -> bool {
        match self {
            QueryError::Tarn(e) => e.kind() != tarn::ErrorKind::Internal,
            QueryError::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::SQL(..)
                    | DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
            ),
            QueryError::UnknownTable { .. }
            | QueryError::Ambiguous { .. }
            | QueryError::InvalidCall(_)
            | QueryError::Syntax(_) => true,
            QueryError::Internal(_) => false,
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Levenshtein distance, for "did you mean".
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Up to five names close to `name`, closest first.
pub(crate) fn close_names<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .map(|n| (distance(name, n), n))
        .filter(|(d, n)| *d <= limit || n.ends_with(name) || n.contains(name))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| format!("\"{n}\""))
        .collect()
}
