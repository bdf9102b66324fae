//! File sources: formats, paths, compression, NULLs.

use std::io::Write;

use crate::util::*;

fn to_csv(f: &Fixture, source: &str, select: &str) -> Vec<Vec<String>> {
    f.file("p.yaml", &format!("{source}\ntransforms:\n  t:\n    sql: {select}\nsinks:\n  out: {{ from: t, type: csv, path: out/t.csv }}\n"));
    f.run(&["run", "p.yaml"]).expect_code(0);
    read_csv(&f.path().join("out/t.csv"), &[])
}

#[test]
fn csv_empty_fields_are_null_for_strings_too() {
    let f = Fixture::new();
    f.file("d/a.csv", "id,name\n1,\n2,bob\n");
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: csv, path: d/a.csv, schema: { id: int, name: string } }",
        "\"SELECT id, name IS NULL AS missing FROM s\"",
    );
    assert_eq!(rows, vec![vec!["1", "true"], vec!["2", "false"]]);
}

#[test]
fn csv_options_delimiter_and_null_values() {
    let f = Fixture::new();
    f.file("d/a.csv", "id;name\n1;NA\n2;bob\n");
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: csv, path: d/a.csv, options: { delimiter: ';', null_values: [NA] } }",
        "\"SELECT id, name FROM s WHERE name IS NOT NULL\"",
    );
    assert_eq!(rows, vec![vec!["2", "bob"]]);
}

#[test]
fn glob_and_directory_paths_read_every_file() {
    let f = Fixture::new();
    f.file("d/a.csv", "id\n1\n");
    f.file("d/b.csv", "id\n2\n");
    f.file("d/notes.txt", "not csv\n");
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: csv, path: \"d/*.csv\", schema: { id: int } }",
        "\"SELECT sum(id) AS n FROM s\"",
    );
    assert_eq!(rows, vec![vec!["3"]]);
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: csv, path: d, schema: { id: int } }",
        "\"SELECT sum(id) AS n FROM s\"",
    );
    assert_eq!(rows, vec![vec!["3"]]);
}

#[test]
fn gzip_csv_and_json_lines_inputs() {
    let f = Fixture::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"id,v\n1,10\n2,20\n").unwrap();
    std::fs::create_dir_all(f.path().join("d")).unwrap();
    std::fs::write(f.path().join("d/a.csv.gz"), gz.finish().unwrap()).unwrap();
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: csv, path: d/a.csv.gz, schema: { id: int, v: int } }",
        "\"SELECT sum(v) AS total FROM s\"",
    );
    assert_eq!(rows, vec![vec!["30"]]);
    f.file("d/c.jsonl", "{\"id\": 1, \"tags\": \"x\"}\n{\"id\": 2}\n");
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: json, path: d/c.jsonl }",
        "\"SELECT id, tags FROM s ORDER BY id\"",
    );
    assert_eq!(rows, vec![vec!["1", "x"], vec!["2", ""]]);
}

#[test]
fn lines_source_gives_one_row_per_line() {
    let f = Fixture::new();
    f.file(
        "d/app.log",
        "GET /a 200\r\nGET /b, with comma \"quoted\" 500\n\nPOST /c 201\n",
    );
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: lines, path: d/app.log }",
        "\"SELECT count(*) AS n, sum(CASE WHEN line LIKE '%500' THEN 1 ELSE 0 END) AS errors FROM s\"",
    );
    assert_eq!(rows, vec![vec!["4", "1"]]);
}

#[test]
fn parquet_round_trip_and_inferred_csv_schema() {
    let f = Fixture::new();
    f.file("d/a.csv", "id,price\n1,2.5\n2,3.5\n");
    f.file(
        "p1.yaml",
        "sources:\n  s: { type: csv, path: d/a.csv }\nsinks:\n  o: { from: s, type: parquet, path: mid/a.parquet }\n",
    );
    f.run(&["run", "p1.yaml"]).expect_code(0);
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: parquet, path: mid/a.parquet }",
        "\"SELECT sum(price) AS total FROM s\"",
    );
    assert_eq!(rows, vec![vec!["6.0"]]);
}

#[test]
fn unknown_schema_type_is_invalid() {
    let f = Fixture::new();
    f.file("d/a.csv", "id\n1\n");
    f.file("p.yaml", "sources:\n  s:\n    type: csv\n    path: d/a.csv\n    schema: { id: integr }\nsinks:\n  o: { from: s, type: csv, path: o.csv }\n");
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("unknown type `integr`"), "{}", r.stderr);
    assert!(r.stderr.contains("p.yaml:5:"), "{}", r.stderr);
}

#[test]
fn http_url_source_against_a_local_server() {
    let f = Fixture::new();
    f.file("www/sales.csv", "id,amount\n1,2.50\n2,4.00\n3,1.25\n");
    let base = serve_dir(f.path().join("www"));
    let rows = to_csv(
        &f,
        &format!(
            "sources:\n  s: {{ type: csv, path: \"{base}/sales.csv\", schema: {{ id: int, amount: \"decimal(10,2)\" }} }}"
        ),
        "\"SELECT count(*) AS n, sum(amount) AS total FROM s\"",
    );
    assert_eq!(rows, vec![vec!["3", "7.75"]]);
    // A missing URL is a run failure naming the source.
    f.file(
        "q.yaml",
        &format!("sources:\n  s: {{ type: csv, path: \"{base}/nope.csv\", schema: {{ id: int }} }}\nsinks:\n  o: {{ from: s, type: csv, path: o.csv }}\n"),
    );
    let r = f.run(&["run", "q.yaml"]).expect_code(1);
    assert!(r.stderr.contains("source `s`"), "{}", r.stderr);
}

#[test]
fn vars_files_overrides_and_vars_referring_to_vars() {
    let f = Fixture::new();
    f.file("d/a.csv", "id\n1\n2\n3\n");
    f.file("vars.yaml", "min_id: 2\n");
    f.file(
        "p.yaml",
        "vars:\n  root: d\n  file: \"{{ root }}/a.csv\"\n  min_id: 1\n  out: out\nsources:\n  s: { type: csv, path: \"{{ file }}\", schema: { id: int } }\ntransforms:\n  t:\n    sql: \"SELECT count(*) AS n FROM s WHERE id >= {{ min_id }}\"\nsinks:\n  o: { from: t, type: csv, path: \"{{ out }}/t.csv\" }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(read_csv(&f.path().join("out/t.csv"), &[]), vec![vec!["3"]]);
    f.run(&["run", "p.yaml", "--vars-file", "vars.yaml"])
        .expect_code(0);
    assert_eq!(read_csv(&f.path().join("out/t.csv"), &[]), vec![vec!["2"]]);
    f.run(&[
        "run",
        "p.yaml",
        "--vars-file",
        "vars.yaml",
        "--var",
        "min_id=3",
    ])
    .expect_code(0);
    assert_eq!(read_csv(&f.path().join("out/t.csv"), &[]), vec![vec!["1"]]);
}

const MESSY: &str = "rowid,qty,price\n1,2,3.50\n2,two,1.00\n3,1\n4,5,2.00\n";

fn messy_pipeline(f: &Fixture, mode: &str) {
    f.file("d/sales.csv", MESSY);
    f.file(
        "p.yaml",
        &format!(
            "sources:\n  sales:\n    type: csv\n    path: d/sales.csv\n    schema: {{ rowid: bigint, qty: int, price: \"decimal(10,2)\" }}\n    on_bad_row: {mode}\nsinks:\n  o: {{ from: sales, type: csv, path: out/good.csv }}\n"
        ),
    );
}

#[test]
fn on_bad_row_skip_drops_and_counts_bad_rows() {
    let f = Fixture::new();
    messy_pipeline(&f, "skip");
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(r.stdout.contains("2 bad rows of 4 skipped"), "{}", r.stdout);
    assert_eq!(
        read_csv(&f.path().join("out/good.csv"), &["rowid"]),
        vec![vec!["1"], vec!["4"]]
    );
    assert!(!f.path().join(".etl/quarantine").exists());
}

#[test]
fn on_bad_row_quarantine_keeps_file_line_and_reason() {
    let f = Fixture::new();
    messy_pipeline(&f, "quarantine");
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("2 bad rows of 4 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_csv(&f.path().join("out/good.csv"), &["rowid"]),
        vec![vec!["1"], vec!["4"]]
    );
    let dir = f.path().join(".etl/quarantine/sales");
    let files = files_below(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".parquet"), "{files:?}");
    let rows = read_parquet(
        &dir.join(&files[0]),
        &[],
        &["line", "reason", "raw", "file"],
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][..3],
        ["3", "column `qty`: `two` is not a valid int", "2,two,1.00"]
    );
    assert!(rows[0][3].ends_with("d/sales.csv"));
    assert_eq!(rows[1][..2], ["4", "expected 3 fields, found 2"]);
    // Planning alone reads nothing and quarantines nothing.
    std::fs::remove_dir_all(f.path().join(".etl")).unwrap();
    f.run(&["validate", "p.yaml"]).expect_code(0);
    f.run(&["run", "p.yaml", "--dry-run"]).expect_code(0);
    assert!(!f.path().join(".etl/quarantine").exists());
}

#[test]
fn on_bad_row_skip_for_json_lines() {
    let f = Fixture::new();
    f.file(
        "d/e.jsonl",
        "{\"id\": 1, \"n\": 5}\n{\"id\": 2, \"n\": \"many\"}\nnot json\n{\"id\": 4, \"n\": 7}\n",
    );
    f.file(
        "p.yaml",
        "sources:\n  e: { type: json, path: d/e.jsonl, schema: { id: int, n: int }, on_bad_row: quarantine }\nsinks:\n  o: { from: e, type: csv, path: out/e.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("2 bad rows of 4 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_csv(&f.path().join("out/e.csv"), &[]),
        vec![vec!["1", "5"], vec!["4", "7"]]
    );
    let dir = f.path().join(".etl/quarantine/e");
    let rows = read_parquet(&dir.join(&files_below(&dir)[0]), &[], &["line"]);
    assert_eq!(rows, vec![vec!["2"], vec!["3"]]);
}

#[test]
fn avro_source() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let f = Fixture::new();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
        ],
    )
    .unwrap();
    let mut w = arrow_avro::writer::AvroWriter::new(Vec::new(), schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    std::fs::create_dir_all(f.path().join("d")).unwrap();
    std::fs::write(f.path().join("d/people.avro"), w.into_inner()).unwrap();
    let rows = to_csv(
        &f,
        "sources:\n  s: { type: avro, path: d/people.avro }",
        "\"SELECT id, name FROM s WHERE name IS NOT NULL ORDER BY id\"",
    );
    assert_eq!(rows, vec![vec!["1", "a"], vec!["3", "c"]]);
}
