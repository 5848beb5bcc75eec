//! Records and mapping files read as arrow-csv reads every other CSV input: a quoted header
//! may hold the separator or a quote, whether the file has rows or only its header; a
//! Parquet file without rows still names its columns.

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use std::path::Path;
use std::sync::Arc;
use tarn_registry::{read_mapping_rows, read_records, read_text_table};

/// The columns of the header `id,"name, full","note ""x""",plain`.
const COLUMNS: [&str; 4] = ["id", "name, full", "note \"x\"", "plain"];
const HEADER: &str = "id,\"name, full\",\"note \"\"x\"\"\",plain\n";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_quoted_csv_header_names_the_same_columns_with_and_without_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let only = write(dir.path(), "header.csv", HEADER);
    let table = read_text_table(&only).expect("header only");
    assert_eq!(table.columns, COLUMNS);
    assert!(table.rows.is_empty());
    // The columns are found by their full names, so the error is about the missing rows.
    let e = read_records(&only, "id", "name, full")
        .expect_err("no records")
        .to_string();
    assert!(e.contains("holds no records"), "{e}");

    let with_rows = write(
        dir.path(),
        "rows.csv",
        &format!("{HEADER}01,\"Doe, Jane\",\"a \"\"b\"\"\",p\n02,Roe,,q\n"),
    );
    let table = read_text_table(&with_rows).expect("rows");
    assert_eq!(table.columns, COLUMNS);
    assert_eq!(
        table.rows,
        vec![
            vec![
                Some("01".to_string()),
                Some("Doe, Jane".to_string()),
                Some("a \"b\"".to_string()),
                Some("p".to_string()),
            ],
            vec![
                Some("02".to_string()),
                Some("Roe".to_string()),
                None,
                Some("q".to_string()),
            ],
        ]
    );
    let records = read_records(&with_rows, "id", "name, full").expect("records");
    assert_eq!(
        records
            .iter()
            .map(|r| (r.id.as_str(), r.name.as_str()))
            .collect::<Vec<_>>(),
        [("01", "Doe, Jane"), ("02", "Roe")]
    );
    assert_eq!(
        records[0].extra.keys().collect::<Vec<_>>(),
        ["note \"x\"", "plain"]
    );
    assert_eq!(records[1].extra.keys().collect::<Vec<_>>(), ["plain"]);
}

#[test]
fn a_mapping_file_with_only_a_quoted_header_has_no_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "map.csv",
        "\"from, id\",\"to, id\",\"share, %\"\n",
    );
    let rows = read_mapping_rows(&path, "from, id", "to, id", "share, %").expect("mapping");
    assert!(rows.is_empty(), "{rows:?}");
    let path = write(
        dir.path(),
        "map_rows.csv",
        "\"from, id\",\"to, id\",\"share, %\"\n\"a,1\",b,0.5\n",
    );
    let rows = read_mapping_rows(&path, "from, id", "to, id", "share, %").expect("mapping");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].from_id.as_str(),
            rows[0].to_id.as_str(),
            rows[0].fraction
        ),
        ("a,1", "b", 0.5)
    );
}

#[test]
fn a_parquet_file_without_rows_names_its_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.parquet");
    let column: ArrayRef = Arc::new(StringArray::from(Vec::<String>::new()));
    let batch = RecordBatch::try_from_iter([("id", column.clone()), ("name, full", column)])
        .expect("batch");
    let file = std::fs::File::create(&path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let table = read_text_table(&path).expect("parquet");
    assert_eq!(table.columns, ["id", "name, full"]);
    assert!(table.rows.is_empty());
}
