//! Bad rows: every mode with exact physical lines (short and long rows, bad casts, invalid
//! JSON, invalid UTF-8, quoted newlines, byte-order marks), counted once per run however many
//! consumers read the source; quarantine files read back; `max_bad_rows`; quarantine sinks;
//! JSON layouts; schemas from JSON Schema and nested types.

use std::path::Path;

use crate::util::*;

/// Two CSV files behind one glob. a.csv: a quoted newline (lines 3-4), a bad cast (5), a
/// short row (6), invalid UTF-8 (7), a long row (8), a good row (9). b.csv: a byte-order
/// mark, CRLF endings, a blank line, a bad cast on line 4.
fn messy_csv(f: &Fixture) {
    std::fs::create_dir_all(f.path().join("d")).unwrap();
    std::fs::write(
        f.path().join("d/a.csv"),
        b"id,qty,note\n1,2,plain\n2,3,\"two\nlines\"\n3,three,x\n4,5\n5,6,caf\xe9\n6,7,x,extra\n7,8,last\n",
    )
    .unwrap();
    std::fs::write(
        f.path().join("d/b.csv"),
        b"\xEF\xBB\xBFid,qty,note\r\n8,9,ok\r\n\r\n9,nine,bad\r\n10,11,ok\r\n",
    )
    .unwrap();
}

/// The file names, lines, raw texts and reasons of a source's quarantine file.
fn quarantined(f: &Fixture, source: &str) -> Vec<Vec<String>> {
    let dir = f.path().join(".etl/quarantine").join(source);
    let files = files_below(&dir);
    assert_eq!(files.len(), 1, "one quarantine file per run: {files:?}");
    let mut rows = read_parquet(
        &dir.join(&files[0]),
        &[],
        &["file", "line", "raw", "reason"],
    );
    for r in rows.iter_mut() {
        r[0] = Path::new(&r[0])
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
    }
    rows.sort_by_key(|r| (r[0].clone(), r[1].parse::<u64>().unwrap()));
    rows
}

fn messy_pipeline(f: &Fixture, mode: &str, extra: &str) {
    f.file(
        "p.yaml",
        &format!(
            "sources:\n  s:\n    type: csv\n    path: d/*.csv\n    schema: {{ id: int, qty: int, note: string }}\n    on_bad_row: {mode}\n{extra}transforms:\n  big: {{ sql: SELECT * FROM s WHERE qty > 2 }}\ncheck_placeholder: {{}}\nsinks:\n  all: {{ from: s, type: csv, path: out/all.csv }}\n  again: {{ from: s, type: parquet, path: out/again.parquet }}\n  big_out: {{ from: big, type: csv, path: out/big.csv }}\n"
        )
        .replace("check_placeholder: {}\n", "checks:\n  s:\n    - row_count: { min: 1 }\n"),
    );
}

fn expected_bad() -> Vec<Vec<String>> {
    let rows = [
        [
            "a.csv",
            "5",
            "3,three,x",
            "column `qty`: `three` is not a valid int",
        ],
        ["a.csv", "6", "4,5", "expected 3 fields, found 2"],
        [
            "a.csv",
            "7",
            "5,6,caf\u{FFFD}",
            "column `note`: not UTF-8 text",
        ],
        ["a.csv", "8", "6,7,x,extra", "expected 3 fields, found 4"],
        [
            "b.csv",
            "4",
            "9,nine,bad",
            "column `qty`: `nine` is not a valid int",
        ],
    ];
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn quarantine_counts_each_bad_row_once_with_its_physical_line() {
    let f = Fixture::new();
    messy_csv(&f);
    messy_pipeline(&f, "quarantine", "");
    // Preview shows the good rows and leaves nothing behind.
    let r = f.run(&["preview", "p.yaml", "s"]).expect_code(0);
    assert!(r.stdout.contains("last"), "{}", r.stdout);
    assert!(!f.path().join(".etl/quarantine").exists());
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    // Three sinks, a transform and a check read the source: still 5 bad rows of 10.
    assert!(
        r.stdout.contains("5 bad rows of 10 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(quarantined(&f, "s"), expected_bad());
    assert_eq!(
        read_csv(&f.path().join("out/all.csv"), &["id"]),
        [["1"], ["10"], ["2"], ["7"], ["8"]]
    );
    assert_eq!(
        read_parquet(&f.path().join("out/again.parquet"), &[], &["id"]).len(),
        5
    );
    let dir = f.path().join(".etl/quarantine/s");
    let run_ids = read_parquet(&dir.join(&files_below(&dir)[0]), &[], &["source", "run_id"]);
    assert!(
        run_ids.iter().all(|r| r[0] == "s" && r[1].len() == 32),
        "{run_ids:?}"
    );
}

#[test]
fn skip_counts_once_and_writes_nothing() {
    let f = Fixture::new();
    messy_csv(&f);
    messy_pipeline(&f, "skip", "");
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("5 bad rows of 10 skipped"),
        "{}",
        r.stdout
    );
    assert!(!f.path().join(".etl/quarantine").exists());
    assert_eq!(
        read_csv(&f.path().join("out/big.csv"), &["id"]),
        [["10"], ["2"], ["7"], ["8"]]
    );
}

#[test]
fn fail_names_the_first_bad_row_in_run_and_preview() {
    let f = Fixture::new();
    messy_csv(&f);
    messy_pipeline(&f, "fail", "");
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("a.csv:5: column `qty`: `three` is not a valid int"),
        "{}",
        r.stderr
    );
    assert!(!f.path().join("out").exists());
    let r = f.run(&["preview", "p.yaml", "s"]).expect_code(1);
    assert!(r.stderr.contains("a.csv:5: column `qty`"), "{}", r.stderr);
    // Each kind of bad row alone, read by the fast path, located exactly.
    for (body, line, reason) in [
        (
            "id,qty,note\n1,2,x\n\"2\",3,\"a\nb\nc\"\n3,4\n",
            6,
            "expected 3 fields, found 2",
        ),
        (
            "id,qty,note\n1,2,x\n2,3,y,z\n",
            3,
            "expected 3 fields, found 4",
        ),
        (
            "id,qty,note\n\n1,2,x\n2,3.5,y\n",
            4,
            "column `qty`: `3.5` is not a valid int",
        ),
    ] {
        std::fs::remove_dir_all(f.path().join("d")).unwrap();
        f.file("d/a.csv", body);
        let r = f.run(&["run", "p.yaml"]).expect_code(1);
        let want = format!("a.csv:{line}: {reason}");
        assert!(r.stderr.contains(&want), "want {want}\n{}", r.stderr);
    }
}

#[test]
fn rows_after_quoted_newlines_keep_their_physical_line() {
    let f = Fixture::new();
    let mut text = String::from("id,note\n");
    for i in 1..=50 {
        text.push_str(&format!("{i},\"line one\nline two\"\n"));
    }
    text.push_str("51,x,extra\n");
    f.file("d/a.csv", &text);
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/a.csv, schema: { id: int, note: string }, on_bad_row: quarantine }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(quarantined(&f, "s")[0][1], "102");
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/a.csv, schema: { id: int, note: string } }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("a.csv:102: expected 2 fields, found 3"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_skipped_row_is_not_blamed_for_another_sources_error() {
    let f = Fixture::new();
    f.file("d/skipped.csv", "id,qty\n1,2\n2\n3,4\n");
    f.file("e/strict.csv", "id,qty\n1,2\n2,3\n3,x\n");
    f.file(
        "p.yaml",
        "sources:\n  a: { type: csv, path: d/skipped.csv, schema: { id: int, qty: int }, on_bad_row: skip }\n  b: { type: csv, path: e/strict.csv, schema: { id: int, qty: int } }\ntransforms:\n  t: { sql: \"SELECT a.id, b.qty FROM a JOIN b USING (id)\" }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("strict.csv:4: column `qty`: `x` is not a valid int"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("skipped.csv"), "{}", r.stderr);
}

#[test]
fn a_byte_order_mark_is_not_data() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path().join("d")).unwrap();
    std::fs::write(f.path().join("d/h.csv"), b"\xEF\xBB\xBFid,name\n1,a\n2,b\n").unwrap();
    std::fs::write(f.path().join("d/n.csv"), b"\xEF\xBB\xBF1,a\n2,b\n").unwrap();
    std::fs::write(f.path().join("d/l.log"), b"\xEF\xBB\xBFfirst\nsecond\n").unwrap();
    std::fs::write(f.path().join("d/j.json"), b"\xEF\xBB\xBF{\"id\": 1}\n").unwrap();
    f.file(
        "p.yaml",
        "sources:\n  h: { type: csv, path: d/h.csv }\n  n: { type: csv, path: d/n.csv, options: { header: false }, schema: { id: int, name: string } }\n  l: { type: lines, path: d/l.log }\n  j: { type: json, path: d/j.json }\ntransforms:\n  t: { sql: \"SELECT (SELECT sum(id) FROM h) AS h, (SELECT sum(id) FROM n) AS n, (SELECT min(line) FROM l) AS l, (SELECT sum(id) FROM j) AS j\" }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &[]),
        [["3", "3", "first", "1"]]
    );
}

#[test]
fn ndjson_bad_lines_are_bad_rows_and_inference_skips_them() {
    let f = Fixture::new();
    f.file(
        "d/e.jsonl",
        "{\"id\": 1, \"n\": 5}\n{\"id\": 2, \"n\": 6}{\"id\": 3}\n{\"id\": 4,\n\"n\": 7}\n\n{\"id\": 5, \"n\": 8, \"tail\": tru\n[1, 2]\n{\"id\": 6, \"n\": 9}\n",
    );
    // No schema: inference reads past the bad lines.
    f.file(
        "p.yaml",
        "sources:\n  e: { type: json, path: d/e.jsonl, on_bad_row: quarantine }\nsinks:\n  o: { from: e, type: csv, path: out/e.csv }\n  p: { from: e, type: csv, path: out/p.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("5 bad rows of 7 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_csv(&f.path().join("out/e.csv"), &["id", "n"]),
        [["1", "5"], ["6", "9"]]
    );
    let bad: Vec<(String, String)> = quarantined(&f, "e")
        .into_iter()
        .map(|r| (r[1].clone(), r[3].clone()))
        .collect();
    let lines: Vec<&str> = bad.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(lines, ["2", "3", "4", "6", "7"]);
    assert!(
        bad[0]
            .1
            .starts_with("invalid JSON: more than one value on the line"),
        "{bad:?}"
    );
    assert!(
        bad[1]
            .1
            .starts_with("invalid JSON: the line ends inside a value"),
        "{bad:?}"
    );
    assert!(
        bad[2].1.starts_with("invalid JSON: text after the value"),
        "{bad:?}"
    );
    assert!(bad[3].1.starts_with("invalid JSON"), "{bad:?}");
    assert_eq!(bad[4].1, "expected a JSON object, found an array");
}

#[test]
fn json_documents_arrays_and_concatenated_objects() {
    let f = Fixture::new();
    f.file(
        "d/array.json",
        "[\n  {\"id\": 1, \"n\": 10},\n  {\n    \"id\": 2,\n    \"n\": \"ten\"\n  },\n  {\"id\": 3, \"n\": 30}\n]\n",
    );
    f.file(
        "d/pretty.json",
        "{\n  \"id\": 4,\n  \"n\": 40\n}\n{\"id\": 5, \"n\": 50}\n{\n  \"id\": 6,\n  \"n\": }\n",
    );
    f.file(
        "p.yaml",
        "sources:\n  a: { type: json, path: d/array.json, schema: { id: int, n: int }, on_bad_row: quarantine }\n  c: { type: json, path: d/pretty.json, schema: { id: int, n: int }, on_bad_row: quarantine, options: { json: concatenated } }\ntransforms:\n  t: { sql: SELECT * FROM a UNION ALL SELECT * FROM c }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &["id"]),
        [["1"], ["3"], ["4"], ["5"]]
    );
    let a = quarantined(&f, "a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0][1], "3");
    assert!(a[0][3].starts_with("column `n`:"), "{a:?}");
    let c = quarantined(&f, "c");
    assert_eq!(c[0][1], "8");
    assert!(
        c[0][3].contains("the rest of the file is not read"),
        "{c:?}"
    );
    // Read as NDJSON (forced), the pretty-printed file fails on its first line.
    f.file(
        "p.yaml",
        "sources:\n  c: { type: json, path: d/pretty.json, options: { json: lines }, schema: { id: int } }\nsinks:\n  o: { from: c, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("pretty.json:1: invalid JSON: the line ends inside a value"),
        "{}",
        r.stderr
    );
}

#[test]
fn lines_sources_quarantine_lines_that_are_not_text() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path().join("logs")).unwrap();
    std::fs::write(f.path().join("logs/a.log"), b"one\ntw\xffo\nthree\n").unwrap();
    f.file(
        "p.yaml",
        "sources:\n  l: { type: lines, path: logs/a.log, on_bad_row: quarantine }\nsinks:\n  o: { from: l, type: csv, path: out/o.csv }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &[]),
        [["one"], ["three"]]
    );
    let q = quarantined(&f, "l");
    assert_eq!(q[0][1..], ["2", "tw\u{FFFD}o", "not UTF-8 text (byte 3)"]);
    f.file(
        "p.yaml",
        "sources:\n  l: { type: lines, path: logs/a.log }\nsinks:\n  o: { from: l, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(r.stderr.contains("a.log:2: not UTF-8 text"), "{}", r.stderr);
}

#[test]
fn max_bad_rows_as_a_count_and_as_a_fraction() {
    let f = Fixture::new();
    messy_csv(&f);
    for (limit, code) in [("5", 0), ("4", 1), ("0.5", 0), ("0.4", 1), ("\"50%\"", 0)] {
        let _ = std::fs::remove_dir_all(f.path().join("out"));
        messy_pipeline(&f, "quarantine", &format!("    max_bad_rows: {limit}\n"));
        let r = f.run(&["run", "p.yaml"]).expect_code(code);
        if code == 1 {
            assert!(
                r.stderr
                    .contains("source `s`: 5 bad rows of 10 read, more than `max_bad_rows:"),
                "{}",
                r.stderr
            );
            assert!(
                r.stderr.contains("p.yaml:7:"),
                "points at the key: {}",
                r.stderr
            );
            assert!(!f.path().join("out/all.csv").exists(), "nothing committed");
        }
    }
    messy_pipeline(&f, "fail", "    max_bad_rows: 3\n");
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("`max_bad_rows` needs `on_bad_row: skip`"),
        "{}",
        r.stderr
    );
    messy_pipeline(&f, "skip", "    max_bad_rows: 1.5\n");
    f.run(&["validate", "p.yaml"]).expect_code(2);
}

#[test]
fn a_quarantine_sink_receives_the_bad_rows() {
    let f = Fixture::new();
    messy_csv(&f);
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/*.csv, schema: { id: int, qty: int, note: string }, on_bad_row: quarantine, quarantine: rejects }\nsinks:\n  good: { from: s, type: csv, path: out/good.csv }\n  rejects: { from: s, type: csv, path: out/rejects.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout
            .contains("5 bad rows of 10 quarantined → sink rejects"),
        "{}",
        r.stdout
    );
    assert!(!f.path().join(".etl/quarantine").exists());
    let rows = read_csv(&f.path().join("out/rejects.csv"), &["line", "reason"]);
    assert_eq!(rows.len(), 5);
    assert!(rows.contains(&vec![
        "6".to_string(),
        "expected 3 fields, found 2".to_string()
    ]));
    assert_eq!(read_csv(&f.path().join("out/good.csv"), &["id"]).len(), 5);
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/*.csv, on_bad_row: quarantine, quarantine: rejcts }\n  t: { type: csv, path: d/a.csv }\nsinks:\n  rejects: { from: t, type: csv, path: out/rejects.csv }\n",
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("did you mean `rejects`"), "{}", r.stderr);
}

const CUSTOMERS_SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "signup"],
  "properties": {
    "id": { "type": "integer" },
    "signup": { "type": "string", "format": "date" },
    "status": { "enum": ["active", "gone"] },
    "address": { "$ref": "#/$defs/address" },
    "tags": { "type": "array", "items": { "type": "string" } }
  },
  "$defs": {
    "address": { "type": "object", "required": ["city"], "properties": { "city": { "type": "string" }, "zip": { "type": ["string", "null"] } } }
  }
}"##;

#[test]
fn json_schema_gives_types_and_its_violations_are_bad_rows() {
    let f = Fixture::new();
    f.file("customers.schema.json", CUSTOMERS_SCHEMA);
    f.file(
        "d/c.jsonl",
        concat!(
            "{\"id\": 1, \"signup\": \"2024-01-02\", \"status\": \"active\", \"address\": {\"city\": \"Oslo\"}, \"tags\": [\"a\", \"b\"]}\n",
            "{\"id\": 2, \"status\": \"active\"}\n",
            "{\"id\": 3, \"signup\": \"yesterday\"}\n",
            "{\"id\": 4, \"signup\": \"2024-03-04\", \"address\": {\"zip\": \"0150\"}}\n",
            "{\"id\": 5, \"signup\": \"2024-05-06\", \"address\": {\"city\": \"Bergen\", \"zip\": null}}\n",
        ),
    );
    f.file(
        "p.yaml",
        "sources:\n  c: { type: json, path: d/c.jsonl, schema_file: customers.schema.json, on_bad_row: quarantine }\ntransforms:\n  t: { sql: \"SELECT id, signup + INTERVAL '1 day' AS next, address['city'] AS city, cardinality(tags) AS n FROM c\" }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &[]),
        [
            ["1", "2024-01-03", "Oslo", "2"],
            ["5", "2024-05-07", "Bergen", ""]
        ]
    );
    let bad: Vec<String> = quarantined(&f, "c")
        .into_iter()
        .map(|r| format!("{}: {}", r[1], r[3]))
        .collect();
    assert_eq!(bad[0], "2: column `signup` is required, found no value");
    assert!(bad[1].starts_with("3: column `signup`:"), "{bad:?}");
    assert_eq!(
        bad[2],
        "4: column `address.city` is required, found no value"
    );
    // `enum` is an accepted-values check on the source.
    f.file(
        "d/c.jsonl",
        "{\"id\": 1, \"signup\": \"2024-01-02\", \"status\": \"active\"}\n{\"id\": 2, \"signup\": \"2024-01-02\", \"status\": \"unknown\"}\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("check accepted_values(status) on `c` failed"),
        "{}",
        r.stderr
    );
    // A CSV source takes it too, without the nested columns.
    f.file(
        "flat.schema.json",
        r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}}"#,
    );
    f.file(
        "d/c.csv",
        "id,at\n1,2024-01-02T03:04:05Z\n,2024-01-02T03:04:05Z\n3,soon\n",
    );
    f.file(
        "p.yaml",
        "sources:\n  c: { type: csv, path: d/c.csv, schema_file: flat.schema.json, on_bad_row: skip }\nsinks:\n  o: { from: c, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(r.stdout.contains("2 bad rows of 3 skipped"), "{}", r.stdout);
    f.file(
        "p.yaml",
        "sources:\n  c: { type: csv, path: d/c.csv, schema_file: customers.schema.json }\nsinks:\n  o: { from: c, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr
            .contains("a csv source cannot hold `struct<city: string, zip: string>`"),
        "{}",
        r.stderr
    );
}

#[test]
fn declared_nested_types() {
    let f = Fixture::new();
    f.file(
        "d/n.json",
        "[{\"id\": 1, \"who\": {\"name\": \"ann\", \"age\": 31}, \"tags\": [\"x\", \"y\"], \"score\": {\"math\": 3}}]\n",
    );
    f.file(
        "p.yaml",
        "sources:\n  n:\n    type: json\n    path: d/n.json\n    schema: { id: bigint, who: \"struct<name: string, age: int>\", tags: \"array<string>\", score: \"map<string, int>\" }\ntransforms:\n  t: { sql: \"SELECT id, who['name'] AS name, who['age'] + 1 AS next, tags[2] AS second, score['math'] AS math FROM n\" }\nsinks:\n  o: { from: t, type: csv, path: out/o.csv }\n  raw: { from: n, type: parquet, path: out/n.parquet }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &[]),
        [["1", "ann", "32", "y", "3"]]
    );
    assert_eq!(
        read_parquet(&f.path().join("out/n.parquet"), &[], &["id"]),
        [["1"]]
    );
    f.file(
        "p.yaml",
        "sources:\n  n: { type: csv, path: d/n.json, schema: { id: int, tags: \"array<string>\" } }\nsinks:\n  o: { from: n, type: csv, path: out/o.csv }\n",
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr
            .contains("column `tags`: a csv source cannot hold `array<string>`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("p.yaml:2:"), "{}", r.stderr);
}

#[test]
fn incremental_sources_count_each_bad_row_once_per_run() {
    let f = Fixture::new();
    f.file("in/a.csv", "id,v\n1,a\n2,b,extra\n3,c\n4\n");
    f.file(
        "p.yaml",
        "sources:\n  s:\n    type: csv\n    path: \"in/*.csv\"\n    schema: { id: bigint, v: string }\n    incremental: { cursor: id }\n    on_bad_row: quarantine\ntransforms:\n  t: { sql: SELECT id FROM s }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n  q: { from: t, type: parquet, path: out/q, mode: append }\n",
    );
    // The upper bound is found by reading the source, then each sink reads it again.
    let r = f.run(&["run", "p.yaml", "--select", "o"]).expect_code(0);
    assert!(
        r.stdout.contains("2 bad rows of 4 quarantined"),
        "{}",
        r.stdout
    );
    let lines = |f: &Fixture| -> Vec<(String, String)> {
        quarantined(f, "s")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    };
    let pair = |file: &str, line: &str| (file.to_string(), line.to_string());
    assert_eq!(lines(&f), [pair("a.csv", "3"), pair("a.csv", "5")]);
    std::fs::remove_dir_all(f.path().join(".etl/quarantine")).unwrap();
    // New rows: `o` starts from its watermark and `q` from nothing, so the run reads the
    // source in two groups besides the bound; every bad row is still met once.
    f.file("in/b.csv", "id,v\n5,e\nsix,f\n7,g\n");
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("3 bad rows of 7 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        lines(&f),
        [pair("a.csv", "3"), pair("a.csv", "5"), pair("b.csv", "3")]
    );
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &["id"]),
        [["5"], ["7"]]
    );
    let mut q = read_parquet(&f.path().join("out/q"), &[], &["id"]);
    q.sort();
    assert_eq!(q, [["1"], ["3"], ["5"], ["7"]]);
    // Over the limit, counted once: 3 of 7 is more than 2 but not more than 3.
    for (limit, code) in [("3", 0), ("2", 1)] {
        std::fs::remove_dir_all(f.path().join(".etl")).unwrap();
        let _ = std::fs::remove_dir_all(f.path().join("out"));
        let body = std::fs::read_to_string(f.path().join("p.yaml")).unwrap();
        let body = body.replace(
            "    on_bad_row: quarantine\n",
            &format!("    on_bad_row: quarantine\n    max_bad_rows: {limit}\n"),
        );
        f.file("p2.yaml", &body);
        let r = f.run(&["run", "p2.yaml"]).expect_code(code);
        if code == 1 {
            assert!(
                r.stderr.contains("source `s`: 3 bad rows of 7 read"),
                "{}",
                r.stderr
            );
        }
    }
}

#[test]
fn invalid_utf8_in_json_is_a_bad_row_on_its_line() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path().join("d")).unwrap();
    std::fs::write(
        f.path().join("d/e.jsonl"),
        b"{\"id\": 1, \"n\": \"a\"}\n\n{\"id\": 2, \"n\": \"b\xff\"}\n{\"id\": 3, \"n\": \"c\"}\n",
    )
    .unwrap();
    let body = |mode: &str| {
        format!(
            "sources:\n  e: {{ type: json, path: d/e.jsonl, schema: {{ id: int, n: string }}{mode} }}\nsinks:\n  o: {{ from: e, type: csv, path: out/e.csv }}\n"
        )
    };
    f.file("p.yaml", &body(", on_bad_row: quarantine"));
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("1 bad row of 3 quarantined"),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_csv(&f.path().join("out/e.csv"), &["id"]),
        [["1"], ["3"]]
    );
    let q = quarantined(&f, "e");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0][..2], ["e.jsonl", "3"]);
    assert!(q[0][3].contains("not UTF-8 text"), "{q:?}");
    f.file("p.yaml", &body(""));
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("e.jsonl:3: not UTF-8 text"),
        "{}",
        r.stderr
    );
    let r = f.run(&["preview", "p.yaml", "e"]).expect_code(1);
    assert!(
        r.stderr.contains("e.jsonl:3: not UTF-8 text"),
        "{}",
        r.stderr
    );
    // A CSV file without a declared schema: inference reads past the row, the read names it.
    std::fs::write(f.path().join("d/a.csv"), b"id,note\n1,x\n2,caf\xe9\n").unwrap();
    f.file(
        "p.yaml",
        "sources:\n  s: { type: csv, path: d/a.csv }\nsinks:\n  o: { from: s, type: csv, path: out/s.csv }\n",
    );
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("a.csv:3: column `note`: not UTF-8 text"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Arrow error"), "{}", r.stderr);
}
