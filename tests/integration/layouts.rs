//! File layouts as they arrive: folder globs, Hive-style folders as columns, a file column,
//! one compressed output file, Parquet timestamp units, and partitioning by a timestamp.

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::util::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A pipeline reading `source` (YAML of one source named `s`) into `out/t.csv` with `sql`.
fn to_csv(f: &Fixture, source: &str, sql: &str) {
    f.file(
        "p.yaml",
        &format!(
            "sources:\n  s: {source}\ntransforms:\n  t:\n    sql: \"{sql}\"\nsinks:\n  out: {{ from: t, type: csv, path: out/t.csv }}\n"
        ),
    );
}

#[test]
fn globs_with_wildcards_in_folder_names_read_every_matching_file() {
    let f = Fixture::new();
    f.file("raw/2024-01-01/a.json", "{\"id\": 1}\n");
    f.file("raw/2024-01-02/b.json", "{\"id\": 2}\n{\"id\": 3}\n");
    f.file("raw/2024-01-02/skip.txt", "not json\n");
    f.file("raw/deep/er/c.json", "{\"id\": 4}\n");
    to_csv(
        &f,
        "{ type: json, path: \"raw/*/*.json\" }",
        "SELECT id FROM s ORDER BY id",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let rows = read_csv(&f.path().join("out/t.csv"), &["id"]);
    assert_eq!(
        rows,
        vec![vec!["1"], vec!["2"], vec!["3"]],
        "one folder level"
    );

    f.file("raw/deep/er/d.csv", "id\n5\n");
    f.file("raw/top.csv", "id\n6\n");
    f.file("raw/2024-01-01/e.csv", "id\n7\n");
    to_csv(
        &f,
        "{ type: csv, path: \"raw/**/*.csv\", schema: { id: bigint } }",
        "SELECT id FROM s ORDER BY id",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let rows = read_csv(&f.path().join("out/t.csv"), &["id"]);
    assert_eq!(rows, vec![vec!["5"], vec!["6"], vec!["7"]], "any depth");

    // A folder glob that matches nothing says so.
    to_csv(
        &f,
        "{ type: csv, path: \"raw/*/*.tsv\" }",
        "SELECT * FROM s",
    );
    let run = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(run.stderr.contains("raw/*/*.tsv"), "{}", run.stderr);
}

#[test]
fn hive_folders_are_read_back_as_typed_columns() {
    let f = Fixture::new();
    f.file(
        "data/year=2024/day=2024-01-01/city=New%20York/x.csv",
        "v\n1\n2\n",
    );
    f.file("data/year=2024/day=2024-01-02/city=Paris/x.csv", "v\n3\n");
    f.file("data/year=2023/day=2023-12-31/city=Paris/y.csv", "v\n4\n");
    to_csv(
        &f,
        "{ type: csv, path: data/ }",
        "SELECT v, year + 1 AS next, day + INTERVAL '1' DAY AS after, city FROM s WHERE year = 2024 ORDER BY v",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let rows = read_csv(&f.path().join("out/t.csv"), &["v", "next", "after", "city"]);
    assert_eq!(
        rows,
        vec![
            vec!["1", "2025", "2024-01-02", "New York"],
            vec!["2", "2025", "2024-01-02", "New York"],
            vec!["3", "2025", "2024-01-03", "Paris"],
        ]
    );
    // `etl preview` shows the folder columns' types too.
    let run = f.run(&["validate", "p.yaml"]).expect_code(0);
    assert!(!run.stderr.contains("error"), "{}", run.stderr);

    // Turned off, the folders are only folders.
    to_csv(
        &f,
        "{ type: csv, path: data/, options: { hive_partitioning: false } }",
        "SELECT * FROM s",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(csv_header(&f.path().join("out/t.csv")), vec!["v"]);

    // A declared type wins over the inferred one; files in folders of another shape fail.
    to_csv(
        &f,
        "{ type: csv, path: data/, schema: { v: bigint, year: string, day: string, city: string } }",
        "SELECT year || '-' || city AS k FROM s WHERE v = 4",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/t.csv"), &["k"]),
        vec![vec!["2023-Paris"]]
    );
    f.file("data/stray.csv", "v\n9\n");
    let run = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("Hive-style folders must be the same for every file"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_column_names_each_rows_file() {
    let f = Fixture::new();
    f.file("in/a.csv", "id\n1\n2\n");
    f.file("in/sub/b.csv", "id\n3\n");
    to_csv(
        &f,
        "{ type: csv, path: \"in/**/*.csv\", options: { file_column: source_file } }",
        "SELECT id, source_file FROM s ORDER BY id",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/t.csv"), &["id", "source_file"]),
        vec![
            vec!["1", "in/a.csv"],
            vec!["2", "in/a.csv"],
            vec!["3", "in/sub/b.csv"],
        ]
    );
    // A folder reads its own files (and `col=value/` folders), not other folders below it.
    to_csv(
        &f,
        "{ type: csv, path: in/, options: { file_column: source_file } }",
        "SELECT id, source_file FROM s ORDER BY id",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/t.csv"), &["id", "source_file"]),
        vec![vec!["1", "in/a.csv"], vec!["2", "in/a.csv"]]
    );
    // Parquet and NDJSON sources take it too, with skipped bad rows.
    f.file("j/a.json", "{\"id\": 1}\n{\"id\": \n{\"id\": 2}\n");
    to_csv(
        &f,
        "{ type: json, path: j/, on_bad_row: skip, options: { file_column: f } }",
        "SELECT id, f FROM s ORDER BY id",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/t.csv"), &["id", "f"]),
        vec![vec!["1", "j/a.json"], vec!["2", "j/a.json"]]
    );
    // Declaring the added column in `schema:` is refused by validate.
    to_csv(
        &f,
        "{ type: csv, path: in/, schema: { id: bigint, src: string }, options: { file_column: src } }",
        "SELECT * FROM s",
    );
    let run = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("do not declare it in `schema:`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_compressed_output_file_is_one_file() {
    let f = Fixture::new();
    f.file("in.csv", "id,name\n1,a\n2,b\n");
    f.file(
        "p.yaml",
        r#"
sources:
  s: { type: csv, path: in.csv }
sinks:
  report: { from: s, type: csv, path: out/report.csv.gz }
  events: { from: s, type: json, path: out/events.jsonl.zst }
"#,
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let report = f.path().join("out/report.csv.gz");
    assert!(report.is_file(), "a file, not a folder");
    assert!(f.path().join("out/events.jsonl.zst").is_file());
    let bytes = std::fs::read(&report).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let rows = runtime().block_on(async {
        let ctx = SessionContext::new();
        let opts = CsvReadOptions::new()
            .file_compression_type(FileCompressionType::GZIP)
            .file_extension(".csv.gz");
        let df = ctx.read_csv(report.to_str().unwrap(), opts).await.unwrap();
        df.count().await.unwrap()
    });
    assert_eq!(rows, 2);

    // The extension and an explicit compression must agree.
    f.file(
        "p.yaml",
        r#"
sources:
  s: { type: csv, path: in.csv }
sinks:
  report: { from: s, type: csv, path: out/report.csv.gz, options: { compression: zstd } }
"#,
    );
    let run = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(run.stderr.contains("`compression` says"), "{}", run.stderr);
}

fn parquet_type(path: &Path, column: &str) -> DataType {
    runtime().block_on(async {
        let ctx = SessionContext::new();
        let df = ctx
            .read_parquet(path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        df.schema()
            .field_with_unqualified_name(column)
            .unwrap()
            .data_type()
            .clone()
    })
}

#[test]
fn parquet_timestamps_are_microseconds_unless_nanoseconds_are_asked_for() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
transforms:
  t:
    sql: "SELECT CAST('2024-01-02 10:00:00.123456' AS TIMESTAMP) AS at, named_struct('at', CAST('2024-01-02 10:00:00' AS TIMESTAMP)) AS nested"
sinks:
  us: { from: t, type: parquet, path: out/us.parquet }
  ns: { from: t, type: parquet, path: out/ns.parquet, options: { timestamp_unit: ns } }
"#,
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let us = f.path().join("out/us.parquet");
    assert_eq!(
        parquet_type(&us, "at"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    match parquet_type(&us, "nested") {
        DataType::Struct(fields) => assert_eq!(
            fields[0].data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        ),
        other => panic!("{other}"),
    }
    assert_eq!(
        read_parquet(&us, &[], &["at"]),
        vec![vec!["2024-01-02T10:00:00.123456"]]
    );
    assert_eq!(
        parquet_type(&f.path().join("out/ns.parquet"), "at"),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
}

#[test]
fn partitioning_by_a_timestamp_is_valid_and_runs() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
transforms:
  t:
    sql: "SELECT 1 AS id, CAST('2024-01-02 10:00:00' AS TIMESTAMP) AS at UNION ALL SELECT 2, CAST('2024-01-03 00:00:00' AS TIMESTAMP)"
sinks:
  out: { from: t, type: parquet, path: out/, partition_by: [at] }
"#,
    );
    // validate and run agree: both accept it, and the folders are named by the value's text.
    f.run(&["validate", "p.yaml"]).expect_code(0);
    f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    f.run(&["run", "p.yaml"]).expect_code(0);
    let folders = files_below(&f.path().join("out"));
    assert!(
        folders.iter().any(|p| p.starts_with("at=2024-01-02")),
        "{folders:?}"
    );
    let rows = read_parquet(&f.path().join("out"), &["at"], &["id", "at"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
}
