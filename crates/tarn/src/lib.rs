//! tarn: a versioned data lake for ordered (time-series) tables.
//!
//! A [`Lake`] is a storage root of immutable Parquet files plus a SQL catalog. Every
//! mutation of a dataset (write, delete-range, overwrite, compaction, metadata change)
//! commits one immutable version; any version is read back by a `tarn://` URI.
//!
//! ```no_run
//! # async fn demo() -> tarn::Result<()> {
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampSecondArray};
//! use tarn::{Lake, ReadRequest, WriteRequest};
//!
//! let lake = Lake::init("./lake").await?;
//! let ts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![0, 60, 120]).with_timezone("UTC"));
//! let temp: ArrayRef = Arc::new(Float64Array::from(vec![3.5, 3.6, 3.4]));
//! let batch = RecordBatch::try_from_iter([("ts", ts), ("temp", temp)])?;
//! lake.write("tarn://weather/berlin", batch, WriteRequest::new().ordered_on("ts")).await?;
//! let snapshot = lake.snapshot("tarn://weather/berlin:v1").await?;
//! let batches = lake.read(&snapshot, &ReadRequest::default()).await?;
//! # Ok(()) }
//! ```
//!
//! Datasets named by typed keys form a collection (SPEC §1); a struct is such a key with
//! `#[derive(tarn::Key)]`:
//!
//! ```
//! use tarn::Key;
//!
//! #[derive(tarn::Key, Debug, PartialEq)]
//! #[tarn(collection = "weather")] // separator = "_" to change the default '-'
//! struct WeatherKey {
//!     quantity: String,
//!     city: String,
//!     #[tarn(level = 1)]
//!     frequency: String,
//! }
//!
//! let key = WeatherKey { quantity: "temp".into(), city: "berlin".into(), frequency: "1D".into() };
//! assert_eq!(key.to_path()?.as_str(), "weather/temp-berlin/1D");
//! assert_eq!(WeatherKey::from_path("weather/temp-berlin/1D")?, key);
//! assert_eq!(WeatherKey::key_schema().pattern(), "weather/<quantity>-<city>/<frequency>");
//! // `Lake::create_collection(WeatherKey::key_schema().clone())` records it in a lake.
//! # Ok::<(), tarn::Error>(())
//! ```

mod branches;
mod collection;
mod config;
mod diff;
mod error;
pub mod input;
mod intersect;
mod lake;
mod read;
pub mod registry_store;
mod snapshot;
mod stream_write;
mod vacuum;
mod writer;

pub use branches::{BranchInfo, MergeInfo, TagInfo, check_tag_name};
pub use collection::{CollectionDataset, CollectionListing, UnmatchedDataset};
pub use config::{CONFIG_FILE, LakeConfig, PostgresConfig, S3Config, locate};
pub use diff::{DiffRange, DiffReport};
pub use error::{Error, ErrorKind, Result};
pub use intersect::{IntersectRequest, IntersectStep, Step};
pub use lake::{Durability, Initialized, IoCounters, Lake, LakeState};
pub use read::ReadRequest;
pub use snapshot::{DatasetInfo, Snapshot, VersionInfo};
pub use stream_write::{BatchStream, IN_MEMORY_LIMIT_BYTES, STREAM_THRESHOLD_BYTES};
pub use tarn_store::StoreRequests;
/// Which row groups a mutation merges under a row-count target (SPEC §3.5): the pure
/// decision, for simulations and for tools that plan a layout.
pub use tarn_store::coalesce;
/// How tarn encodes a Parquet file it writes for other readers (LZ4, delta-encoded time
/// stamps, page statistics; row groups of at most 131,072 rows or 32 MiB).
pub use tarn_store::parquet_io::export_properties as parquet_export_properties;
pub use vacuum::{VacuumReport, VacuumRequest};
/// The write path's own step from encoded row groups to catalog rows, for tools that
/// replay the write step by step (tarn-bench's `--breakdown`).
#[doc(hidden)]
pub use writer::new_row_groups;
pub use writer::{WriteOutcome, WriteRequest, conform_batch};

pub use tarn_catalog::service::{
    CommitEvent, NewRequest, QueueDepth, RequestOutcome, RequestRecord, RequestStatus,
    ServiceStore, TokenRecord,
};
pub use tarn_catalog::{CollectionRecord, DatasetSummary};
pub use tarn_core as core;
/// A collection's key as a Rust type: the trait, and `#[derive(tarn::Key)]` (same name, like
/// `serde::Serialize`). See the `collection` section of the guide.
pub use tarn_core::key::Key;
pub use tarn_core::{
    BranchName, DatasetName, DuplicatesOn, Frequency, KeyField, KeyKind, KeySchema, KeyValue,
    OrderedKind, OrderedValue, Ref, RowGroupTarget, TarnUri, WriteOptions,
};
pub use tarn_derive::Key;
/// One row group of a snapshot: where it is (file path, index in the file), its rows and
/// bytes, and its `ordered_on` bounds.
pub use tarn_store::RowGroupRef as RowGroup;
