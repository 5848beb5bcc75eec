//! A collection as one table (SPEC §1, §6): every dataset of the collection, with its key
//! fields as leading columns, so that `SELECT city, avg(temp) FROM weather GROUP BY city`
//! reads them all. Each member is a [`SnapshotTable`] resolved at the session's lake state;
//! the scan is the union of the members' scans, each with its key values as constants.
//! A filter `field = value` on a key field skips the members it excludes before any file
//! is opened.

use crate::error::QueryError;
use crate::table::SnapshotTable;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::expressions::{Column, Literal};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use std::sync::Arc;
use tarn::core::key::{KeyKind, KeyValue};

/// The datasets of one collection, as one table.
#[derive(Debug)]
pub struct CollectionTable {
    name: String,
    /// Key fields (all levels, in order), then the datasets' columns.
    schema: SchemaRef,
    keys: usize,
    members: Vec<(Vec<ScalarValue>, SnapshotTable)>,
}

fn key_scalar(value: &KeyValue) -> ScalarValue {
    match value {
        KeyValue::Int(i) => ScalarValue::Int64(Some(*i)),
        KeyValue::Str(s) => ScalarValue::Utf8(Some(s.clone())),
    }
}

impl CollectionTable {
    /// `fields` are the key fields in order; `members` each dataset's key values (in the
    /// same order) and snapshot table. Every member must have the same columns (names and
    /// types), none named like a key field.
    pub fn try_new(
        name: &str,
        fields: &[(String, KeyKind)],
        members: Vec<(Vec<KeyValue>, SnapshotTable)>,
    ) -> Result<Self, QueryError> {
        let mut columns: Vec<Field> = fields
            .iter()
            .map(|(n, kind)| {
                Field::new(
                    n,
                    match kind {
                        KeyKind::Int => DataType::Int64,
                        KeyKind::Str => DataType::Utf8,
                    },
                    false,
                )
            })
            .collect();
        let data = match members.first() {
            Some((_, first)) => first.schema(),
            None => Arc::new(Schema::empty()),
        };
        for (_, member) in &members {
            let other = member.schema();
            let same = other.fields().len() == data.fields().len()
                && other
                    .fields()
                    .iter()
                    .zip(data.fields())
                    .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
            if !same {
                return Err(QueryError::InvalidCall(format!(
                    "collection {name} cannot be one table: dataset {} has columns ({}) where {} has ({}); query the datasets one by one",
                    member.snapshot().name(),
                    describe(&other),
                    members[0].1.snapshot().name(),
                    describe(&data)
                )));
            }
        }
        for f in data.fields() {
            if fields.iter().any(|(k, _)| k == f.name()) {
                return Err(QueryError::InvalidCall(format!(
                    "collection {name} cannot be one table: its key field {:?} is also a column of its datasets",
                    f.name()
                )));
            }
            columns.push(f.as_ref().clone());
        }
        Ok(Self {
            name: name.to_string(),
            schema: Arc::new(Schema::new(columns)),
            keys: fields.len(),
            members: members
                .into_iter()
                .map(|(key, table)| (key.iter().map(key_scalar).collect(), table))
                .collect(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the member with `key` can hold rows that pass `filters` (only `key = value`
    /// conjuncts are looked at).
    fn admits(&self, key: &[ScalarValue], filters: &[Expr]) -> bool {
        filters.iter().all(|f| match f {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                    match self.schema.index_of(&c.name) {
                        Ok(i) if i < self.keys => {
                            key[i].cast_to(&v.data_type()).ok().as_ref() == Some(v)
                        }
                        _ => true,
                    }
                }
                _ => true,
            },
            _ => true,
        })
    }
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl TableProvider for CollectionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let projected = Arc::new(self.schema.project(projection)?);
        // The member scans read the data columns the projection names (at least one, so
        // that row counts survive a projection of key columns only).
        let mut data: Vec<usize> = projection
            .iter()
            .filter(|&&i| i >= self.keys)
            .map(|&i| i - self.keys)
            .collect();
        if data.is_empty() && self.schema.fields().len() > self.keys {
            data.push(0);
        }
        // Filters on data columns only reach the members (a key column is unknown there).
        let data_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| self.schema.index_of(&c.name).is_ok_and(|i| i >= self.keys))
            })
            .cloned()
            .collect();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        for (key, member) in &self.members {
            if !self.admits(key, filters) {
                continue;
            }
            let plan = member
                .scan(state, Some(&data), &data_filters, limit)
                .await?;
            let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = projection
                .iter()
                .map(|&i| {
                    let name = self.schema.field(i).name().clone();
                    let expr: Arc<dyn PhysicalExpr> = if i < self.keys {
                        Arc::new(Literal::new(key[i].clone()))
                    } else {
                        let at = data.iter().position(|&d| d == i - self.keys).unwrap_or(0);
                        Arc::new(Column::new(&name, at))
                    };
                    (expr, name)
                })
                .collect();
            inputs.push(Arc::new(ProjectionExec::try_new(exprs, plan)?));
        }
        match inputs.len() {
            0 => Ok(Arc::new(EmptyExec::new(projected))),
            1 => Ok(inputs.remove(0)),
            _ => UnionExec::try_new(inputs),
        }
    }
}
