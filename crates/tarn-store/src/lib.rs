//! tarn's data plane: immutable Parquet files in an object store, and the ordered merge of
//! SPEC §3 that decides which row groups a mutation rewrites and what it writes instead.
//! It knows nothing of SQL: the caller gives it the row groups of a snapshot and commits
//! what it returns.

pub mod coalesce;
pub mod counting;
pub mod durable;
pub mod error;
pub mod location;
pub mod merge;
pub mod mutation;
pub mod parquet_io;
pub mod schema;
pub mod stream;

pub use coalesce::Coalescing;
pub use counting::StoreRequests;
pub use durable::DataStore;
pub use error::{Result, StoreError};
pub use location::{S3Settings, StorageLocation};
pub use mutation::{DatasetLayout, Mutation, MutationOutput, RowGroupRef, execute};
