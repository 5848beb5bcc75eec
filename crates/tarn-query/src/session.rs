//! A query session over one lake state (docs/design/0004).
//!
//! DataFusion plans synchronously, so everything the catalog must answer is answered before
//! planning: the SQL is parsed, every table name and every `tarn('...')` call in it is
//! resolved to a snapshot at the session's lake state, and only then is the statement
//! planned against those snapshots. All tables of all queries of a session see the same lake
//! state, even while writers commit.

use crate::collection::CollectionTable;
use crate::error::{QueryError, Result, close_names};
use crate::functions::FixedOffsetDateTrunc;
use crate::table::{DATA_URL, SCAN_REPORTS, SnapshotTable};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, TableFactor, Value, Visit,
    VisitMut, Visitor, VisitorMut,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use tarn::{Lake, LakeState};

/// The name of the table function that reads any `tarn://` URI.
pub const TABLE_FUNCTION: &str = "tarn";

/// SQL over one lake state.
pub struct QuerySession {
    lake: Lake,
    state: LakeState,
    ctx: SessionContext,
    /// Every collection name of the lake when the session started.
    collections: BTreeSet<String>,
    /// Tables registered so far, by the name they are registered under.
    registered: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for QuerySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuerySession")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What the pre-pass found in a statement.
#[derive(Debug, Default)]
struct References {
    /// Table names, as the dataset (or URI) they were rewritten to.
    tables: BTreeSet<String>,
    /// Table names that are collections.
    collections: BTreeSet<String>,
    /// `tarn('...')` arguments, rewritten to the tables [`call_table`] names.
    calls: BTreeSet<String>,
    errors: Vec<QueryError>,
}

/// A lake's query engine: the DataFusion runtime (the lake's object store, the Parquet
/// metadata cache, the memory pool) shared by every session it makes. A long-lived process
/// keeps one engine per lake, so that each new session finds the footers and page indexes
/// of the files it reads already parsed. Data files are immutable and never reuse a name,
/// so nothing cached goes stale.
#[derive(Clone)]
pub struct QueryEngine {
    lake: Lake,
    runtime: Arc<RuntimeEnv>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

impl QueryEngine {
    pub fn new(lake: &Lake) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        let url = datafusion::execution::object_store::ObjectStoreUrl::parse(DATA_URL)?;
        runtime.register_object_store(url.as_ref(), lake.object_store());
        Ok(Self {
            lake: lake.clone(),
            runtime,
        })
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// A session at `as_of`, else at the lake's current state.
    pub async fn session(&self, as_of: Option<LakeState>) -> Result<QuerySession> {
        self.session_in(as_of, self.runtime.clone()).await
    }

    /// A session whose queries may hold at most `memory_limit` bytes at once (sorts, joins,
    /// aggregations), with no spilling to disk: a query that needs more fails with
    /// DataFusion's resources-exhausted error instead of taking the process's memory. It
    /// shares the engine's caches and object stores.
    pub async fn session_with_memory_limit(
        &self,
        as_of: Option<LakeState>,
        memory_limit: usize,
    ) -> Result<QuerySession> {
        use datafusion::execution::disk_manager::{DiskManager, DiskManagerMode};
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(memory_limit)),
            disk_manager: Arc::new(
                DiskManager::builder()
                    .with_mode(DiskManagerMode::Disabled)
                    .build()?,
            ),
            cache_manager: self.runtime.cache_manager.clone(),
            object_store_registry: self.runtime.object_store_registry.clone(),
        });
        self.session_in(as_of, runtime).await
    }

    async fn session_in(
        &self,
        as_of: Option<LakeState>,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<QuerySession> {
        let lake = &self.lake;
        let state = match as_of {
            Some(s) => s,
            None => lake.state().await?,
        };
        let collections = lake
            .collections()
            .await?
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true)
            // tarn's scans split their partitions at row-group boundaries already.
            .set_bool("datafusion.optimizer.repartition_file_scans", false);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        // Replaces `date_trunc`: same results, arithmetic for UTC and fixed offsets.
        ctx.register_udf(FixedOffsetDateTrunc::udf());
        ctx.register_udtf(TABLE_FUNCTION, Arc::new(TarnFunction));
        Ok(QuerySession {
            lake: lake.clone(),
            state,
            ctx,
            collections,
            registered: Mutex::default(),
        })
    }
}

impl QuerySession {
    /// A session at `as_of`, else at the lake's current state, with a runtime of its own
    /// (see [`QueryEngine`] to share one).
    pub async fn new(lake: &Lake, as_of: Option<LakeState>) -> Result<Self> {
        QueryEngine::new(lake)?.session(as_of).await
    }

    /// The lake state every query of this session reads.
    pub fn state(&self) -> LakeState {
        self.state
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans `sql` (one statement) with every table resolved at the session's lake state.
    /// `$1`, `$2`, ... take `params`.
    pub async fn sql(&self, sql: &str, params: Vec<ScalarValue>) -> Result<DataFrame> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        let datasets = self.existing_datasets(&statement).await?;
        let mut refs = References::default();
        self.rewrite(&mut statement, &datasets, &mut refs);
        if let Some(e) = refs.errors.into_iter().next() {
            return Err(e);
        }
        for name in &refs.tables {
            self.register(name).await?;
        }
        for name in &refs.collections {
            self.register_collection(name).await?;
        }
        for uri in &refs.calls {
            self.register_call(uri).await?;
        }
        let explain = matches!(statement, DfStatement::Explain(_));
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(e) => return Err(self.explain_error(QueryError::from_datafusion(e)).await),
        };
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(QueryError::from_datafusion)?;
        let df = if params.is_empty() {
            df
        } else {
            df.with_param_values(params)?
        };
        if explain {
            self.explain_with_catalog(df).await
        } else {
            Ok(df)
        }
    }

    /// Runs an `EXPLAIN [ANALYZE]` and adds a row `tarn_catalog_pruning` that says, for each
    /// scan, what the catalog pruned before DataFusion saw the files.
    async fn explain_with_catalog(&self, df: DataFrame) -> Result<DataFrame> {
        let reports: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut batches = SCAN_REPORTS
            .scope(reports.clone(), df.collect())
            .await
            .map_err(QueryError::from_datafusion)?;
        let lines = std::mem::take(
            &mut *reports
                .lock()
                .map_err(|_| QueryError::Internal("scan reports poisoned".into()))?,
        );
        if let Some(schema) = batches.first().map(|b| b.schema())
            && schema.fields().len() == 2
            && !lines.is_empty()
        {
            let text = |i: usize, t: String| -> datafusion::common::Result<ArrayRef> {
                let array: ArrayRef = Arc::new(StringArray::from(vec![t]));
                Ok(datafusion::arrow::compute::cast(
                    &array,
                    schema.field(i).data_type(),
                )?)
            };
            let columns = vec![
                text(0, "tarn_catalog_pruning".into())?,
                text(1, lines.join("\n"))?,
            ];
            let row = RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| QueryError::from_datafusion(e.into()))?;
            batches.push(row);
        }
        Ok(self.ctx.read_batches(batches)?)
    }

    /// Registers the table a rewritten name stands for (a dataset name, or a URI).
    async fn register(&self, name: &str) -> Result<()> {
        if self.is_registered(name)? {
            return Ok(());
        }
        let snapshot = self.lake.snapshot_at(name, Some(self.state)).await?;
        self.ctx
            .register_table(
                datafusion::common::TableReference::bare(name),
                Arc::new(self.table(snapshot)),
            )
            .map_err(QueryError::from_datafusion)?;
        self.mark_registered(name)
    }

    /// Registers the snapshot `tarn('uri')` reads, as the table [`call_table`] names.
    async fn register_call(&self, uri: &str) -> Result<()> {
        let name = call_table(uri);
        if self.is_registered(&name)? {
            return Ok(());
        }
        let snapshot = self.lake.snapshot_at(uri, Some(self.state)).await?;
        self.ctx
            .register_table(
                datafusion::common::TableReference::bare(name.as_str()),
                Arc::new(self.table(snapshot)),
            )
            .map_err(QueryError::from_datafusion)?;
        self.mark_registered(&name)
    }

    /// Registers a collection as one table of its datasets as they were at the session's
    /// lake state (a dataset created later is not part of it).
    async fn register_collection(&self, name: &str) -> Result<()> {
        if self.is_registered(name)? {
            return Ok(());
        }
        let listing = self.lake.collection_datasets(name, &[]).await?;
        let fields: Vec<(String, tarn::core::key::KeyKind)> = listing
            .collection
            .schema
            .fields()
            .map(|f| (f.name.clone(), f.kind))
            .collect();
        let mut members = Vec::new();
        for d in listing.datasets {
            match self
                .lake
                .snapshot_at(d.summary.name.as_str(), Some(self.state))
                .await
            {
                Ok(snapshot) => members.push((
                    d.key.into_iter().map(|(_, v)| v).collect(),
                    self.table(snapshot),
                )),
                Err(e) if e.kind() == tarn::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let table = CollectionTable::try_new(name, &fields, members)?;
        self.ctx
            .register_table(
                datafusion::common::TableReference::bare(name),
                Arc::new(table),
            )
            .map_err(QueryError::from_datafusion)?;
        self.mark_registered(name)
    }

    /// `snapshot` as a table of this session. With DataFusion's
    /// `datafusion.execution.parquet.schema_force_view_types` (on by default), its string
    /// and binary columns are `Utf8View` and `BinaryView`, as in DataFusion's own Parquet
    /// tables.
    fn table(&self, snapshot: tarn::Snapshot) -> SnapshotTable {
        let views = self
            .ctx
            .state_ref()
            .read()
            .config_options()
            .execution
            .parquet
            .schema_force_view_types;
        SnapshotTable::new(self.lake.clone(), snapshot).with_view_types(views)
    }

    fn is_registered(&self, name: &str) -> Result<bool> {
        Ok(self
            .registered
            .lock()
            .map_err(|_| QueryError::Internal("session poisoned".into()))?
            .contains(name))
    }

    fn mark_registered(&self, name: &str) -> Result<()> {
        self.registered
            .lock()
            .map_err(|_| QueryError::Internal("session poisoned".into()))?
            .insert(name.to_string());
        Ok(())
    }

    /// The datasets among the names the statement's tables could mean (looked up one by
    /// one, so that a lake of millions of datasets is never listed to plan a query).
    async fn existing_datasets(&self, statement: &DfStatement) -> Result<BTreeSet<String>> {
        let mut names = Candidates::default();
        names.collect(statement);
        let mut out = BTreeSet::new();
        for name in names.0 {
            let Ok(dataset) = tarn::DatasetName::new(name.as_str()) else {
                continue;
            };
            if self.lake.dataset_exists(&dataset).await? {
                out.insert(name);
            }
        }
        Ok(out)
    }

    /// Rewrites table names to the datasets they mean, and collects `tarn()` calls.
    fn rewrite(
        &self,
        statement: &mut DfStatement,
        datasets: &BTreeSet<String>,
        refs: &mut References,
    ) {
        match statement {
            DfStatement::Statement(s) => {
                let mut visitor = Rewriter {
                    datasets,
                    collections: &self.collections,
                    refs,
                };
                let _ = s.visit(&mut visitor);
            }
            DfStatement::Explain(explain) => self.rewrite(&mut explain.statement, datasets, refs),
            _ => {}
        }
    }

    /// Adds the close dataset names to DataFusion's "table not found" (listing the lake's
    /// datasets, on this error path only).
    async fn explain_error(&self, e: QueryError) -> QueryError {
        let QueryError::DataFusion(df) = &e else {
            return e;
        };
        let text = df.to_string();
        let Some(rest) = text.split("table '").nth(1) else {
            return e;
        };
        if !text.contains("not found") {
            return e;
        }
        let full = rest.split('\'').next().unwrap_or_default();
        // DataFusion qualifies the name with its default catalog and schema.
        let name = full.strip_prefix("datafusion.").unwrap_or(full);
        let name = name.strip_prefix("public.").unwrap_or(name);
        let as_path = name.replace('.', "/");
        let datasets: Vec<String> = match self.lake.datasets(None).await {
            Ok(all) => all.into_iter().map(|d| d.name.to_string()).collect(),
            Err(_) => Vec::new(),
        };
        let mut close = close_names(&as_path, datasets.iter().map(String::as_str));
        if close.is_empty() {
            close = close_names(name, datasets.iter().map(String::as_str));
        }
        let hint = if close.is_empty() {
            format!(
                "; it is no dataset of this lake ({} datasets; `tarn ls` lists them)",
                datasets.len()
            )
        } else {
            format!("; did you mean {}?", close.join(", "))
        };
        QueryError::UnknownTable {
            name: format!("\"{name}\""),
            hint: format!(
                "{hint} A dataset a/b/c is the table \"a/b/c\" (quoted) or a.b.c; any version is tarn('tarn://a/b/c:v3')"
            ),
        }
    }
}

/// Every name a statement's table references could mean: a single part as it is (and the
/// dataset of a URI), several parts joined by `/` or `.` in every way.
#[derive(Default)]
struct Candidates(BTreeSet<String>);

impl Candidates {
    fn collect(&mut self, statement: &DfStatement) {
        match statement {
            DfStatement::Statement(s) => {
                let _ = s.visit(self);
            }
            DfStatement::Explain(explain) => self.collect(&explain.statement),
            _ => {}
        }
    }
}

impl Visitor for Candidates {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args: None, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let parts: Option<Vec<&str>> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i.value.as_str()),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        let Some(parts) = parts else {
            return ControlFlow::Continue(());
        };
        if let [one] = parts.as_slice() {
            self.0.insert(one.to_string());
            if (one.contains('@') || one.contains(':'))
                && let Ok(uri) = tarn::TarnUri::parse_lenient(one)
            {
                self.0.insert(uri.dataset.to_string());
            }
            return ControlFlow::Continue(());
        }
        // At most 2^(n-1) joins; names of more than 12 parts are no dataset anyway.
        if parts.len() > 12 {
            return ControlFlow::Continue(());
        }
        for mask in 0..(1u32 << (parts.len() - 1)) {
            let mut s = parts[0].to_string();
            for (i, p) in parts.iter().enumerate().skip(1) {
                s.push(if mask & (1 << (i - 1)) == 0 { '/' } else { '.' });
                s.push_str(p);
            }
            self.0.insert(s);
        }
        ControlFlow::Continue(())
    }
}

struct Rewriter<'a> {
    datasets: &'a BTreeSet<String>,
    collections: &'a BTreeSet<String>,
    refs: &'a mut References,
}

/// What a table name means.
enum Meaning {
    Dataset(String),
    Collection(String),
}

impl Rewriter<'_> {
    /// The dataset (or URI) a table name means, if any: a quoted `"a/b/c"` or
    /// `"a/b/c@dev:v3"`, or dotted parts `a.b.c` joined by `/` or `.` in the one way that
    /// names an existing dataset.
    fn resolve(&mut self, name: &ObjectName) -> Option<Meaning> {
        let parts: Vec<&Ident> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i),
                ObjectNamePart::Function(_) => None,
            })
            .collect::<Option<_>>()?;
        if let [one] = parts.as_slice() {
            let text = one.value.as_str();
            if self.datasets.contains(text) {
                return Some(Meaning::Dataset(text.to_string()));
            }
            if self.collections.contains(text) {
                return Some(Meaning::Collection(text.to_string()));
            }
            if (text.contains('@') || text.contains(':'))
                && let Ok(uri) = tarn::TarnUri::parse_lenient(text)
                && self.datasets.contains(uri.dataset.as_str())
            {
                return Some(Meaning::Dataset(text.to_string()));
            }
            return None;
        }
        // Every way to join the parts with '/' or '.', keeping those that are datasets
        // (names of more than 12 parts are none: see `Candidates`).
        let n = parts.len();
        if n > 12 {
            return None;
        }
        let mut found = Vec::new();
        for mask in 0..(1u32 << (n - 1)) {
            let mut s = parts[0].value.clone();
            for (i, p) in parts.iter().enumerate().skip(1) {
                s.push(if mask & (1 << (i - 1)) == 0 { '/' } else { '.' });
                s.push_str(&p.value);
            }
            if self.datasets.contains(&s) || self.collections.contains(&s) {
                found.push(s);
            }
        }
        match found.len() {
            0 => None,
            1 => found.pop().map(|s| {
                if self.datasets.contains(&s) {
                    Meaning::Dataset(s)
                } else {
                    Meaning::Collection(s)
                }
            }),
            _ => {
                self.refs.errors.push(QueryError::Ambiguous {
                    name: name.to_string(),
                    candidates: found
                        .iter()
                        .map(|f| format!("\"{f}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    first: found[0].clone(),
                });
                None
            }
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        match args {
            Some(call) => {
                let is_tarn = matches!(name.0.as_slice(),
                    [ObjectNamePart::Identifier(i)] if i.value.eq_ignore_ascii_case(TABLE_FUNCTION));
                if !is_tarn {
                    return ControlFlow::Continue(());
                }
                let uri = match call.args.as_slice() {
                    [
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(
                            datafusion::sql::sqlparser::ast::Expr::Value(v),
                        )),
                    ] => match &v.value {
                        Value::SingleQuotedString(uri) => uri.clone(),
                        _ => {
                            self.refs.errors.push(call_error());
                            return ControlFlow::Continue(());
                        }
                    },
                    _ => {
                        self.refs.errors.push(call_error());
                        return ControlFlow::Continue(());
                    }
                };
                // DataFusion names the scan of every table-function call `tarn()`, and plans
                // compare scans by name and schema, not by what they read: two calls on
                // versions of one dataset would be taken for one (a query subtracting
                // their counts got 0). Each call is a table named after its URI instead.
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '"',
                    call_table(&uri),
                ))]);
                *args = None;
                self.refs.calls.insert(uri);
            }
            None => {
                let meaning = self.resolve(name);
                let (text, set) = match &meaning {
                    Some(Meaning::Dataset(d)) => (d.clone(), &mut self.refs.tables),
                    Some(Meaning::Collection(c)) => (c.clone(), &mut self.refs.collections),
                    None => return ControlFlow::Continue(()),
                };
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '"', &text,
                ))]);
                set.insert(text);
            }
        }
        ControlFlow::Continue(())
    }
}

fn call_error() -> QueryError {
    QueryError::InvalidCall(
        "tarn() takes one argument, a string literal naming a snapshot: tarn('tarn://weather/berlin:v3')"
            .into(),
    )
}

/// The table a `tarn('uri')` call reads in a session: named by the call itself, so that
/// each URI is its own table (and reads as such in plans and messages).
fn call_table(uri: &str) -> String {
    format!("{TABLE_FUNCTION}('{}')", uri.replace('\'', "''"))
}

/// `tarn('tarn://...')` as DataFusion sees it: [`QuerySession::sql`] resolves every call
/// before planning (planning is synchronous) and rewrites it to the table of its snapshot,
/// so a call only reaches this when SQL is planned without the session.
#[derive(Debug)]
struct TarnFunction;

impl TableFunctionImpl for TarnFunction {
    fn call(&self, exprs: &[Expr]) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let uri = match exprs {
            [Expr::Literal(ScalarValue::Utf8(Some(uri)), _)] => uri,
            _ => return Err(call_error().into_datafusion()),
        };
        Err(QueryError::Internal(format!(
            "tarn('{uri}') was not resolved before planning: run SQL through QuerySession::sql"
        ))
        .into_datafusion())
    }
}
