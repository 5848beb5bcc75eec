//! Errors of parsing and validating tarn's pure types. Each message names the bad input and
//! says what a good one looks like.

/// An input that does not parse or validate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error("invalid dataset name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid branch name {name:?}: {reason}")]
    InvalidBranch { name: String, reason: String },
    #[error("invalid URI {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("invalid frequency {input:?}: {reason}")]
    InvalidFrequency { input: String, reason: String },
    #[error("invalid value {input:?} for {column}: {reason}")]
    InvalidValue {
        input: String,
        column: String,
        reason: String,
    },
    #[error("invalid key field spec {spec:?}: {reason}")]
    InvalidFieldSpec { spec: String, reason: String },
    #[error("invalid key schema for collection {collection:?}: {reason}")]
    InvalidKeySchema { collection: String, reason: String },
    /// A key (field values) that does not convert to a dataset name of its collection.
    #[error("invalid key for collection {collection:?} ({pattern}): {reason}")]
    InvalidKey {
        collection: String,
        pattern: String,
        reason: String,
    },
    /// A dataset name that does not parse as a key of the collection.
    #[error("dataset name {name:?} does not match collection {collection:?} ({pattern}): {reason}")]
    KeyMismatch {
        name: String,
        collection: String,
        pattern: String,
        reason: String,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("unsupported ordered_on column {column:?} of type {data_type}: {reason}")]
    UnsupportedOrderedOn {
        column: String,
        data_type: String,
        reason: String,
    },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
