//! Bad input: each gives the right exit code, a message that points at the place, and
//! leaves no partial output behind.

use crate::util::*;

const SALES: &str =
    "rowid,ts,qty,price\n1,2024-01-01 10:00:00,2,3.50\n2,2024-01-01 11:00:00,1,4.00\n";

fn pipeline(body: &str) -> (Fixture, String) {
    let f = Fixture::new();
    f.file("data/sales.csv", SALES);
    f.file("p.yaml", body);
    (f, "p.yaml".to_string())
}

const GOOD: &str = r#"
vars:
  out: out
sources:
  sales:
    type: csv
    path: data/sales.csv
    schema: { rowid: bigint, ts: timestamp, qty: int, price: "decimal(10,2)" }
transforms:
  totals:
    sql: |
      SELECT rowid, qty * price AS amount
      FROM sales
sinks:
  totals_out:
    from: totals
    type: parquet
    path: "{{ out }}/totals"
"#;

#[test]
fn malformed_yaml_points_at_the_line() {
    let (f, p) = pipeline("sources:\n  sales:\n    type: csv\n    path: [a, b\n  x: 1\n");
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(r.stderr.contains("invalid YAML"), "{}", r.stderr);
    assert!(r.stderr.contains("p.yaml:"), "{}", r.stderr);
}

#[test]
fn unknown_nested_key_has_line_col_and_did_you_mean() {
    let body = GOOD.replace(
        "    path: \"{{ out }}/totals\"",
        "    path: \"{{ out }}/totals\"\n    partiton_by: [rowid]",
    );
    let (f, p) = pipeline(&body);
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(
        r.stderr.contains("unknown key `partiton_by`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("p.yaml:19:5 (sinks.totals_out.partiton_by)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean `partition_by`?"),
        "{}",
        r.stderr
    );
}

#[test]
fn validate_collects_every_error() {
    let body = GOOD
        .replace("type: parquet", "type: parquet\n    modee: append")
        .replace("    schema: {", "    shema: 1\n    schema: {")
        .replace("FROM sales", "FROM saels");
    let (f, p) = pipeline(&body);
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(r.stderr.contains("unknown key `modee`"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown key `shema`"), "{}", r.stderr);
}

#[test]
fn bad_template_points_at_its_key() {
    let body = GOOD
        .replace("path: data/sales.csv", "path: \"{{ data_dri }}/sales.csv\"")
        .replace("vars:\n", "vars:\n  data_dir: data\n");
    let (f, p) = pipeline(&body);
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(
        r.stderr.contains("undefined variable `data_dri`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(sources.sales.path)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("did you mean `data_dir`?"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_env_var_is_an_error_to_run_and_a_warning_to_validate() {
    let body = GOOD.replace(
        "  out: out",
        "  out: \"{{ env('ETL_TEST_SURELY_UNSET') }}\"",
    );
    let (f, p) = pipeline(&body);
    let r = f.run(&["run", &p]).expect_code(2);
    assert!(r.stderr.contains("ETL_TEST_SURELY_UNSET"), "{}", r.stderr);
    let r = f.run(&["validate", &p]).expect_code(0);
    assert!(r.stderr.contains("warning"), "{}", r.stderr);
    f.run(&["validate", "--strict", &p]).expect_code(2);
    assert!(!f.path().join("out").exists());
}

#[test]
fn unknown_table_in_sql_points_into_the_block() {
    let (f, p) = pipeline(&GOOD.replace("FROM sales", "FROM saels"));
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(r.stderr.contains("unknown table `saels`"), "{}", r.stderr);
    assert!(r.stderr.contains("p.yaml:13:12"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `sales`?"), "{}", r.stderr);
}

#[test]
fn sql_syntax_error_points_into_the_block() {
    let (f, p) = pipeline(&GOOD.replace(
        "SELECT rowid, qty * price AS amount",
        "SELECT rowid, (qty * price AS amount",
    ));
    let r = f.run(&["run", &p]).expect_code(2);
    assert!(r.stderr.contains("SQL syntax error"), "{}", r.stderr);
    assert!(r.stderr.contains("p.yaml:12:"), "{}", r.stderr);
    assert!(r.stderr.contains("Expected"), "{}", r.stderr);
    assert!(!f.path().join("out").exists());
}

#[test]
fn unknown_column_is_a_planning_error() {
    let (f, p) = pipeline(&GOOD.replace("qty * price", "quantity * price"));
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(r.stderr.contains("quantity"), "{}", r.stderr);
    assert!(r.stderr.contains("(transforms.totals.sql)"), "{}", r.stderr);
}

#[test]
fn cycle_names_the_transforms() {
    let body = r#"
sources:
  s: { type: inline, rows: [{a: 1}] }
transforms:
  a:
    sql: SELECT * FROM b
  b:
    sql: SELECT * FROM a
sinks:
  o: { from: a, type: csv, path: out/o.csv }
"#;
    let (f, p) = pipeline(body);
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(
        r.stderr.contains("cycle: a → b → a") || r.stderr.contains("cycle: b → a → b"),
        "{}",
        r.stderr
    );
}

#[test]
fn duplicate_names_and_unknown_from_are_named() {
    let body = GOOD.replace(
        "  totals_out:\n    from: totals",
        "  totals:\n    from: totalz",
    );
    let (f, p) = pipeline(&body);
    let r = f.run(&["validate", &p]).expect_code(2);
    assert!(
        r.stderr.contains("the name `totals` is used twice"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("reads `totalz`"), "{}", r.stderr);
}

#[test]
fn missing_input_file_fails_the_run_with_exit_1() {
    let (f, p) = pipeline(&GOOD.replace("data/sales.csv", "data/nope.csv"));
    let r = f.run(&["run", &p]).expect_code(1);
    assert!(r.stderr.contains("no such file or folder"), "{}", r.stderr);
    assert!(r.stderr.contains("nope.csv"), "{}", r.stderr);
    assert!(r.stderr.contains("(sources.sales.path)"), "{}", r.stderr);
    // validate only warns: the data may not exist where CI validates.
    f.run(&["validate", &p]).expect_code(0);
}

#[test]
fn unparsable_value_names_file_line_and_column_and_keeps_old_output() {
    let (f, p) = pipeline(GOOD);
    f.run(&["run", &p]).expect_code(0);
    let before = read_parquet(&f.path().join("out/totals"), &[], &[]);
    assert_eq!(before.len(), 2);
    f.file(
        "data/sales.csv",
        &format!("{SALES}3,2024-01-02 09:00:00,two,1.00\n"),
    );
    let r = f.run(&["run", &p]).expect_code(1);
    assert!(r.stderr.contains("sales.csv:4"), "{}", r.stderr);
    assert!(
        r.stderr.contains("column `qty`: `two` is not a valid int"),
        "{}",
        r.stderr
    );
    assert_eq!(
        read_parquet(&f.path().join("out/totals"), &[], &[]),
        before,
        "previous output intact"
    );
    let leftovers: Vec<String> = std::fs::read_dir(f.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, vec!["totals"], "no staging folders left");
}

#[test]
fn failed_error_check_writes_nothing() {
    let body = format!("{GOOD}\nchecks:\n  totals:\n    - expect: amount > 5\n");
    let (f, p) = pipeline(&body);
    let r = f.run(&["run", &p]).expect_code(1);
    assert!(
        r.stderr
            .contains("check expect(amount > 5) on `totals` failed: 1 failing rows"),
        "{}",
        r.stderr
    );
    assert!(!f.path().join("out").exists() || files_below(&f.path().join("out")).is_empty());
    let warn = body.replace(
        "- expect: amount > 5",
        "- expect: amount > 5\n      severity: warn",
    );
    f.file("p.yaml", &warn);
    let r = f.run(&["run", &p]).expect_code(0);
    assert!(r.stdout.contains("WARN"), "{}", r.stdout);
}

#[test]
fn bad_command_line_values_exit_2() {
    let (f, p) = pipeline(GOOD);
    assert!(
        f.run(&["run", &p, "--date", "2024-13-01"])
            .expect_code(2)
            .stderr
            .contains("not a date")
    );
    assert!(
        f.run(&["run", &p, "--var", "novalue"])
            .expect_code(2)
            .stderr
            .contains("name=value")
    );
    f.run(&["run", &p, "--select", "nosuch"]).expect_code(2);
    f.run(&["frobnicate"]).expect_code(2);
}

#[test]
fn validate_output_snapshot() {
    let body = GOOD
        .replace(
            "    path: \"{{ out }}/totals\"",
            "    path: \"{{ out }}/totals\"\n    partiton_by: [rowid]",
        )
        .replace("FROM sales", "FROM saels");
    let (f, p) = pipeline(&body);
    let r = f.run(&["validate", &p]).expect_code(2);
    insta::assert_snapshot!("validate_two_errors", r.stderr);
}

/// A source that exists but cannot be read leaves what reads it unplanned: `validate` warns
/// and names what it skipped; `validate --strict` makes it an error.
#[test]
fn validate_names_what_an_unreadable_source_leaves_unplanned_and_strict_refuses_it() {
    let f = Fixture::new();
    std::fs::write(f.path().join("bad.parquet"), b"\x00\xff\xfe not parquet\n").unwrap();
    f.file(
        "p.yaml",
        r#"
sources:
  s: { type: parquet, path: bad.parquet }
  fine: { type: inline, rows: [{ a: 1 }] }
transforms:
  t: { sql: "SELECT * FROM s" }
  u: { sql: "SELECT * FROM t" }
sinks:
  o: { from: u, type: csv, path: out/o.csv }
  other: { from: fine, type: csv, path: out/other.csv }
checks:
  t: [{ not_null: a }]
"#,
    );
    let lenient = f.run(&["validate", "p.yaml"]).expect_code(0);
    assert!(lenient.stderr.contains("warning"), "{}", lenient.stderr);
    assert!(
        lenient
            .stderr
            .contains("transforms `t`, `u`; sinks `o`; checks `not_null(a)`"),
        "{}",
        lenient.stderr
    );
    assert!(!lenient.stderr.contains("`other`"), "{}", lenient.stderr);
    let strict = f.run(&["validate", "--strict", "p.yaml"]).expect_code(2);
    assert!(
        strict.stderr.contains("error: source `s`"),
        "{}",
        strict.stderr
    );
    assert!(strict.stderr.contains("p.yaml:3:"), "{}", strict.stderr);
}
