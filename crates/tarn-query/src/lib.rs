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

/// Bind parameters `$1, $2, ...` from JSON values (numbers, strings, booleans, null), as
/// `tarn query --params` and `POST /api/v1/query` take them. The error names the parameter.
pub fn params_from_json(
    values: Vec<serde_json::Value>,
) -> std::result::Result<Vec<datafusion::common::ScalarValue>, String> {
    use datafusion::common::ScalarValue;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(match v {
                serde_json::Value::Null => ScalarValue::Null,
                serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(b)),
                serde_json::Value::String(s) => ScalarValue::Utf8(Some(s)),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => ScalarValue::Int64(Some(i)),
                    (None, Some(f)) => ScalarValue::Float64(Some(f)),
                    _ => return Err(format!("${} = {n} is out of range", i + 1)),
                },
                other => {
                    return Err(format!(
                        "${} = {other} is not a number, string, bool or null",
                        i + 1
                    ));
                }
            })
        })
        .collect()
}

pub use datafusion;
