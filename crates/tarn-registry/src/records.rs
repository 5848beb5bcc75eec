//! Reading records and mapping rows from CSV or Parquet files.
//!
//! Ids are text: a CSV is read with every column as a string, so `01001` keeps its leading
//! zero; a Parquet column of another type is cast to text (`1001`).

use crate::error::{Id, Listing, RegistryError, Result};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A table read from a file, every column as text (`None` for null).
#[derive(Debug)]
pub struct TextTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextTable {
    /// The index of `name`, or an error listing the columns there are.
    pub fn column(&self, path: &Path, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "{} has no column {name:?}; its columns are {}",
                path.display(),
                Listing(&self.columns.iter().map(|c| Id(c)).collect::<Vec<_>>())
            ))
        })
    }
}

/// Reads a CSV (with a header row) or Parquet file, by its extension.
pub fn read_text_table(path: &Path) -> Result<TextTable> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let io = |e: std::io::Error| RegistryError::Io(format!("cannot read {}: {e}", path.display()));
    let bad = |e: &dyn std::fmt::Display| {
        RegistryError::Invalid(format!("{} is not a valid {ext} file: {e}", path.display()))
    };
    // The columns come from the file's schema (arrow-csv parses the header, quotes and all),
    // so a file with a header and no rows still names its columns.
    let (schema, batches): (SchemaRef, Vec<RecordBatch>) = match ext.as_str() {
        "csv" => {
            let bytes = std::fs::read(path).map_err(io)?;
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(std::io::Cursor::new(&bytes), Some(1))
                .map_err(|e| bad(&e))?;
            let text = Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ));
            let batches = arrow::csv::ReaderBuilder::new(text.clone())
                .with_header(true)
                .build(std::io::Cursor::new(bytes))
                .map_err(|e| bad(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(&e))?;
            (text, batches)
        }
        "parquet" | "pq" => {
            let file = std::fs::File::open(path).map_err(io)?;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| bad(&e))?;
            let schema = reader.schema().clone();
            let batches = reader
                .build()
                .map_err(|e| bad(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(&e))?;
            (schema, batches)
        }
        _ => {
            return Err(RegistryError::Invalid(format!(
                "cannot tell the format of {} from its extension; records files are .csv or .parquet",
                path.display()
            )));
        }
    };
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    for batch in &batches {
        let text: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(&e))?;
        for i in 0..batch.num_rows() {
            rows.push(
                text.iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!c.is_null(i)).then(|| c.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(TextTable { columns, rows })
}

/// One dimension record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The other columns, by name (null cells left out).
    pub extra: BTreeMap<String, String>,
}

/// Reads the records of a dimension and checks them: ids present, non-empty and unique,
/// names present.
pub fn read_records(path: &Path, id_column: &str, name_column: &str) -> Result<Vec<Record>> {
    let table = read_text_table(path)?;
    let id = table.column(path, id_column)?;
    let name = table.column(path, name_column)?;
    let mut records = Vec::with_capacity(table.rows.len());
    let mut no_id = Vec::new();
    let mut no_name = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        // Rows as a spreadsheet counts them: the header is row 1.
        let line = i + 2;
        let record_id = row[id].as_deref().map(str::trim).unwrap_or_default();
        if record_id.is_empty() {
            no_id.push(format!("row {line}"));
            continue;
        }
        let Some(record_name) = row[name].clone() else {
            no_name.push(Id(record_id).to_string());
            continue;
        };
        let extra = table
            .columns
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != id && *c != name)
            .filter_map(|(c, col)| row[c].clone().map(|v| (col.clone(), v)))
            .collect();
        records.push(Record {
            id: record_id.to_string(),
            name: record_name,
            extra,
        });
    }
    if !no_id.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{}: {} record(s) have no {id_column:?}: {}",
            path.display(),
            no_id.len(),
            Listing(&no_id)
        )));
    }
    if !no_name.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{}: {} record(s) have no {name_column:?}: {}",
            path.display(),
            no_name.len(),
            Listing(&no_name)
        )));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *counts.entry(r.id.as_str()).or_default() += 1;
    }
    let duplicates: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{} ({n} times)", Id(id)))
        .collect();
    if !duplicates.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{}: {} id(s) appear more than once: {}",
            path.display(),
            duplicates.len(),
            Listing(&duplicates)
        )));
    }
    if records.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{} holds no records",
            path.display()
        )));
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records)
}

/// One row of a mapping file.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub from_id: String,
    pub to_id: String,
    pub fraction: f64,
}

/// Reads the rows of a mapping; the fraction column is optional (1 when absent or empty).
pub fn read_mapping_rows(
    path: &Path,
    from_column: &str,
    to_column: &str,
    fraction_column: &str,
) -> Result<Vec<MappingRow>> {
    let table = read_text_table(path)?;
    let from = table.column(path, from_column)?;
    let to = table.column(path, to_column)?;
    let fraction = table.columns.iter().position(|c| c == fraction_column);
    let mut rows = Vec::with_capacity(table.rows.len());
    let mut bad = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let line = i + 2;
        let (Some(f), Some(t)) = (row[from].as_deref(), row[to].as_deref()) else {
            bad.push(format!("row {line}: no {from_column:?} or {to_column:?}"));
            continue;
        };
        let fraction = match fraction.and_then(|c| row[c].as_deref()).map(str::trim) {
            None | Some("") => 1.0,
            Some(text) => match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => {
                    bad.push(format!("row {line}: fraction {text:?} is not a number > 0"));
                    continue;
                }
            },
        };
        rows.push(MappingRow {
            from_id: f.trim().to_string(),
            to_id: t.trim().to_string(),
            fraction,
        });
    }
    if !bad.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "{}: {} bad row(s): {}",
            path.display(),
            bad.len(),
            Listing(&bad)
        )));
    }
    Ok(rows)
}
