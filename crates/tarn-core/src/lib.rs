//! tarn's pure types: what a dataset name, a `tarn://` URI, an ordered value, a frequency,
//! a collection's key schema and a write option are, and how they are parsed and
//! validated. Nothing here does I/O, so every other crate (store, catalog, facade, CLI)
//! agrees on one definition of each.

pub mod error;
pub mod freq;
pub mod key;
pub mod name;
pub mod options;
pub mod time;
pub mod uri;
pub mod value;

pub use error::{CoreError, Result};
pub use freq::Frequency;
pub use key::{Key, KeyField, KeyKind, KeySchema, KeyValue};
pub use name::{BranchName, DatasetName};
pub use options::{DuplicatesOn, RowGroupTarget, WriteOptions};
pub use uri::{Ref, TarnUri};
pub use value::{OrderedKind, OrderedValue};
