use tarn_core::CoreError;

/// Errors of the data plane.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: {}{source}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    ObjectStore {
        /// The store, as [`crate::DataStore::describe`] names it.
        store: String,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Parquet error in {path}: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The input does not fit the dataset; the message lists every difference.
    #[error("{0}")]
    Schema(String),
    /// The input is unusable as given (null ordered_on, NaN, ...).
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("storage task failed: {0}")]
    Task(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
