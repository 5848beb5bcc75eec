//! SQL over tarn snapshots with Apache DataFusion (SPEC §6, docs/design/0004).
//!
//! - [`SnapshotTable`]: one snapshot as a DataFusion table. It hands the scan only the
//!   snapshot's row groups, with exact statistics from the catalog, prunes by `ordered_on`
//!   in the catalog first, and declares the `ordered_on` ordering.
//! - [`QuerySession`]: SQL over one lake state. Every dataset is a table (`"a/b/c"`, or
//!   `a.b.c` when that is unambiguous), `"a/b/c@dev:v3"` names any snapshot, and so does
//!   the table function `tarn('tarn://a/b/c:2024-01-05')`.
//! - [`CollectionTable`]: a collection as one table of all its datasets, with the key fields
//!   as leading columns.
//!
//! ```no_run
//! # async fn demo(lake: &tarn::Lake) -> tarn_query::Result<()> {
//! let session = tarn_query::QuerySession::new(lake, None).await?;
//! let df = session
//!     .sql("SELECT date_trunc('hour', ts) AS h, avg(temp) FROM \"weather/berlin\" GROUP BY h", vec![])
//!     .await?;
//! let batches = df.collect().await?;
//! # Ok(()) }
//! ```

mod collection;
mod error;
mod functions;
mod session;
mod table;

pub use collection::CollectionTable;
pub use error::{QueryError, Result};
pub use functions::FixedOffsetDateTrunc;
pub use session::{QueryEngine, QuerySession, TABLE_FUNCTION};
pub use table::{DATA_URL, SnapshotTable, plain_types};

pub use datafusion;
