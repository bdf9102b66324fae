//! Secrets never leave `etl`: a secret with awkward characters is read with `env()` into
//! every key that takes a template, every command runs on each pipeline, and no output,
//! log line, file or file name holds the secret in any encoding (raw, percent-encoded in
//! any mix, JSON- or Debug-escaped, or escaped after being percent-encoded). The runs
//! themselves are checked too (exit codes, outputs written), so the test cannot pass by
//! everything failing early.
//!
//! In the pipelines below, `ENV_PW` stands for `{{ env('ETL_TEST_PW') }}` (see
//! [`Probe::input`]); each probe runs, in order: validate, validate --strict, validate with
//! JSON logs, run --dry-run, explain, preview, graph, test, run, run with JSON logs.

mod probe;

use probe::{ORDERS, PW, Probe, expect_in, files_with};

use crate::util::*;

const ALL_OK: [i32; 10] = [0; 10];
const INVALID: [i32; 10] = [2; 10];

#[test]
fn names_descriptions_vars_checks_and_test_vars() {
    let mut p = Probe::new();
    let head = r#"
name: "ENV_PW"
description: "the ENV_PW pipeline"
vars:
  pw: "ENV_PW"
  greeting: "hello {{ pw }}"
"#;
    let rest = r#"
    description: "{{ greeting }}"
transforms:
  per_country:
    description: "{{ pw }}"
    sql: |
      SELECT country, count(*) AS n FROM orders
      WHERE country <> {{ pw | sql_quote }}
      GROUP BY country
checks:
  per_country:
    - not_null: [country]
      name: "{{ pw }}"
    - accepted_values: { column: country, values: [DE, FR, "{{ pw }}"] }
sinks:
  out: { from: per_country, type: csv, path: out/named.csv, description: "{{ pw }}" }
tests:
  counts:
    vars: { pw: "ENV_PW" }
    given: { orders: { rows: [ { id: 1, country: DE, amount: 1.0 } ] } }
    expect: { per_country: { rows: [ { country: DE, n: 1 } ] } }
"#;
    p.input("named.yaml", &[head, ORDERS, rest].concat());
    let runs = p.all_commands("named.yaml", "per_country", ALL_OK);
    expect_in(&runs[0].stdout, "named.yaml: valid");
    expect_in(&runs[4].stdout, "logical plan");
    expect_in(&runs[5].stdout, "| DE      | 2 |");
    expect_in(&runs[7].stdout, "test ***::counts ... ok");
    expect_in(&runs[8].stderr, "etl run *** (ds=");
    expect_in(&runs[8].stdout, "***: success");
    expect_in(&runs[8].stdout, "per_country: ***");
    let last: serde_json::Value =
        serde_json::from_str(runs[9].stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["pipeline"], "***");
    assert_eq!(
        read_csv(&p.path("out/named.csv"), &[]),
        vec![vec!["DE", "2"], vec!["FR", "1"]]
    );
    let records = files_with(&p.path(".etl/runs"), ".json");
    assert_eq!(records.len(), 2, "one record per run");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    assert_eq!(record["pipeline"], "***");
    assert_eq!(record["vars"]["pw"], "***");
    assert_eq!(record["vars"]["greeting"], "hello ***");
    assert!(p.assert_no_trace_in_files() > 0);
}

#[test]
fn failing_checks_and_tests_show_masked_rows() {
    let mut p = Probe::new();
    p.input(
        "check.yaml",
        r#"
vars:
  pw: "ENV_PW"
sources:
  notes:
    type: inline
    rows:
      - { id: 1, note: "{{ pw }}" }
      - { id: 2, note: plain }
transforms:
  tagged:
    sql: SELECT id, {{ pw | sql_quote }} AS tag FROM notes
checks:
  notes:
    - expect: "note <> {{ pw | sql_quote }}"
      name: "no {{ pw }}"
sinks:
  out: { from: tagged, type: json, path: out/check.json }
tests:
  wrong_tag:
    vars: { pw: "ENV_PW" }
    given: { notes: { rows: [ { id: 1, note: x } ] } }
    expect: { tagged: { rows: [ { id: 1, tag: wrong } ] } }
"#,
    );
    let runs = p.all_commands("check.yaml", "tagged", [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    expect_in(&runs[5].stdout, "| 1  | *** |");
    expect_in(&runs[7].stdout, "test check::wrong_tag ... FAILED");
    let masked = runs[7].stdout.lines().any(|l| {
        let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
        cells.len() >= 4 && cells[1] == "+" && cells[2] == "1" && cells[3] == "***"
    });
    assert!(masked, "{}", runs[7].stdout);
    expect_in(&runs[8].stderr, "check no *** on `notes` failed");
    assert!(
        !p.path("out/check.json").exists(),
        "a failed check writes nothing"
    );
    assert!(p.assert_no_trace_in_files() > 0);
}

#[test]
fn quarantined_rows_and_a_source_path_holding_the_secret() {
    let mut p = Probe::new();
    p.input(
        &format!("data/{PW}/sales.csv"),
        &format!("id,amount\n1,2.50\n2,{PW}\n3,1.25\n"),
    );
    p.input(
        "quarantine.yaml",
        r#"
sources:
  sales:
    type: csv
    path: "data/ENV_PW/sales.csv"
    schema: { id: int, amount: "decimal(10,2)" }
    on_bad_row: quarantine
transforms:
  total:
    sql: SELECT count(*) AS n, sum(amount) AS total FROM sales
sinks:
  out: { from: total, type: csv, path: out/total.csv }
"#,
    );
    let runs = p.all_commands("quarantine.yaml", "sales", ALL_OK);
    expect_in(&runs[8].stdout, "1 bad row of 3 quarantined");
    assert_eq!(
        read_csv(&p.path("out/total.csv"), &[]),
        vec![vec!["2", "3.75"]]
    );
    let files = files_with(&p.path(".etl/quarantine/sales"), ".parquet");
    assert!(!files.is_empty(), "rows were quarantined");
    for file in files {
        let rows = read_parquet(&file, &[], &["line", "raw", "file", "reason"]);
        for row in rows {
            assert_eq!(row[..2], ["3", "2,***"], "{row:?}");
            expect_in(&row[2], "/data/***/sales.csv");
            expect_in(&row[3], "`***` is not a valid");
        }
    }
    assert!(p.assert_no_trace_in_files() > 0);
}

#[test]
fn a_password_in_a_url_and_in_connection_options() {
    let mut p = Probe::new();
    p.input("www/sales.csv", "id,amount\n1,2.50\n2,4.00\n3,1.25\n");
    p.input("www/bucket/sales.csv", "id,amount\n1,2.50\n2,4.00\n");
    // The password's `/` is encoded by hand; the URL parser encodes the rest its own way,
    // so the secret travels half percent-encoded (`p%40ss%20w%2Frd%22%!`).
    let url = "http://user:{{ env('ETL_TEST_PW') | replace('/', '%2F') }}@127.0.0.1:PORT";
    let source = |path: &str, out: &str| {
        format!(
            "sources:\n  sales:\n    type: csv\n    path: \"{url}/{path}\"\n    schema: {{ id: int, amount: \"decimal(10,2)\" }}\nsinks:\n  out: {{ from: sales, type: csv, path: {out} }}\n"
        )
    };
    p.input("http.yaml", &source("sales.csv", "out/http.csv"));
    p.input(
        "http_missing.yaml",
        &source("missing/ENV_PW.csv", "out/missing.csv"),
    );
    p.input(
        "s3.yaml",
        r#"
connections:
  store:
    type: s3
    url: "postgres://etl:ENV_PW@127.0.0.1:PORT/db"
    options:
      endpoint: http://127.0.0.1:PORT
      allow_http: "true"
      region: us-east-1
      access_key_id: etl
      secret_access_key: "ENV_PW"
sources:
  sales:
    type: csv
    path: s3://bucket/sales.csv
    connection: store
    schema: { id: int, amount: "decimal(10,2)" }
sinks:
  out: { from: sales, type: csv, path: out/s3.csv }
"#,
    );
    let runs = p.all_commands("http.yaml", "sales", ALL_OK);
    expect_in(&runs[5].stdout, "3 rows shown");
    assert_eq!(read_csv(&p.path("out/http.csv"), &[]).len(), 3);
    // A URL that is not there: a warning for validate (an error under --strict), a failure
    // for everything that reads.
    let runs = p.all_commands("http_missing.yaml", "sales", [0, 2, 0, 1, 1, 1, 0, 0, 1, 1]);
    expect_in(&runs[0].stderr, "no files match http://user:***@127.0.0.1:");
    expect_in(&runs[8].stderr, "/missing/***.csv");
    assert!(!p.path("out/missing.csv").exists());
    p.all_commands("s3.yaml", "sales", ALL_OK);
    assert_eq!(read_csv(&p.path("out/s3.csv"), &[]).len(), 2);
    assert!(p.assert_no_trace_in_files() > 0);
}

#[test]
fn template_validation_and_sql_errors() {
    let mut p = Probe::new();
    p.input("data/plain.csv", "id,amount\n1,2.50\n");
    let sinks =
        |from: &str| format!("sinks:\n  out: {{ from: {from}, type: csv, path: out/x.csv }}\n");
    p.input(
        "template.yaml",
        &[
            ORDERS,
            "sinks:\n  out: { from: orders, type: csv, path: \"out/{{ env('ETL_TEST_PW') | date_add(1) }}\" }\n",
        ]
        .concat(),
    );
    let types = "sources:\n  sales:\n    type: csv\n    path: data/plain.csv\n    schema: { id: \"ENV_PW\", amount: double }\n";
    p.input("types.yaml", &[types, &sinks("sales")].concat());
    p.input(
        "enums.yaml",
        r#"
sources:
  sales: { type: csv, path: data/plain.csv, on_bad_row: "ENV_PW" }
sinks:
  out: { from: sales, type: csv, path: out/enums.csv, options: { compression: "ENV_PW" } }
"#,
    );
    let ident =
        "transforms:\n  ident:\n    sql: SELECT {{ env('ETL_TEST_PW') | sql_ident }} FROM orders\n";
    p.input("sql.yaml", &[ORDERS, ident, &sinks("ident")].concat());
    let file = "transforms:\n  from_file:\n    sql_file: \"sql/ENV_PW.sql\"\n";
    p.input(
        "sql_file.yaml",
        &[ORDERS, file, &sinks("from_file")].concat(),
    );
    p.input(
        &format!("sql/{PW}.sql"),
        "SELECT * FROM {{ env('ETL_TEST_PW') | sql_ident }}\n",
    );
    let runs = p.all_commands("template.yaml", "orders", INVALID);
    expect_in(&runs[0].stderr, "template error: `***` is not a date");
    let runs = p.all_commands("types.yaml", "sales", INVALID);
    expect_in(&runs[0].stderr, "unknown type `***`");
    let runs = p.all_commands("enums.yaml", "sales", INVALID);
    expect_in(
        &runs[0].stderr,
        "unknown variant `***`, expected one of `fail`",
    );
    expect_in(
        &runs[0].stderr,
        "unknown variant `***`, expected one of `none`",
    );
    // `graph` and `test` (there are no tests) do not plan SQL.
    let runs = p.all_commands("sql.yaml", "orders", [2, 2, 2, 2, 2, 2, 0, 0, 2, 2]);
    expect_in(&runs[0].stderr, "column '***' not found");
    let runs = p.all_commands("sql_file.yaml", "orders", INVALID);
    expect_in(&runs[0].stderr, "unknown table `***`");
    expect_in(&runs[0].stderr, "sql/***.sql:1:15");
    assert_eq!(
        p.assert_no_trace_in_files(),
        0,
        "invalid pipelines leave nothing"
    );
}

#[test]
fn runtime_failures_and_a_missing_source() {
    let mut p = Probe::new();
    p.input("data/plain.csv", &format!("id,note\n1,{PW}\n2,x\n"));
    p.input(
        "options.yaml",
        r#"
sources:
  notes:
    type: csv
    path: data/plain.csv
    options: { null_values: ["ENV_PW"] }
sinks:
  out: { from: notes, type: csv, path: out/options.csv, options: { delimiter: ";" } }
"#,
    );
    p.input(
        "memory.yaml",
        r#"
sources:
  notes: { type: csv, path: data/plain.csv }
sinks:
  out: { from: notes, type: csv, path: out/memory.csv }
engine:
  memory_limit: "ENV_PW"
"#,
    );
    p.input(
        "cast.yaml",
        r#"
sources:
  notes:
    type: inline
    rows:
      - { id: 1, note: "ENV_PW" }
transforms:
  numbers:
    sql: SELECT CAST(note AS INT) AS n FROM notes
sinks:
  out: { from: numbers, type: csv, path: out/cast.csv }
"#,
    );
    p.input(
        "missing.yaml",
        r#"
sources:
  sales: { type: csv, path: "nowhere/ENV_PW.csv" }
sinks:
  out: { from: sales, type: csv, path: out/missing.csv }
"#,
    );
    p.input(
        "sink_options.yaml",
        r#"
sources:
  notes: { type: csv, path: data/plain.csv }
sinks:
  out: { from: notes, type: csv, path: out/sink_options.csv, options: { delimiter: "ENV_PW" } }
"#,
    );
    let runs = p.all_commands("sink_options.yaml", "notes", INVALID);
    expect_in(
        &runs[0].stderr,
        "`delimiter`: expected one ASCII character, found `***`",
    );
    let runs = p.all_commands("memory.yaml", "notes", INVALID);
    expect_in(&runs[0].stderr, "`***` is not a size");
    p.all_commands("options.yaml", "notes", ALL_OK);
    let written = std::fs::read_to_string(p.path("out/options.csv")).unwrap();
    assert_eq!(
        written.lines().count(),
        3,
        "a header and two rows: {written}"
    );
    let runs = p.all_commands("cast.yaml", "numbers", [0, 0, 0, 0, 0, 1, 0, 0, 1, 1]);
    expect_in(
        &runs[5].stderr,
        "Cannot cast string '***' to value of Int32",
    );
    expect_in(
        &runs[8].stderr,
        "Cannot cast string '***' to value of Int32",
    );
    // A missing input is a warning for validate (an error under --strict), a failure for
    // everything that reads it.
    let runs = p.all_commands("missing.yaml", "sales", [0, 2, 0, 1, 1, 1, 0, 0, 1, 1]);
    expect_in(&runs[0].stderr, "nowhere/***.csv");
    assert!(!p.path("out/cast.csv").exists() && !p.path("out/missing.csv").exists());
    assert!(p.assert_no_trace_in_files() > 0, "run records were written");
}

#[test]
fn sink_path_and_state_dir_holding_the_secret() {
    let mut p = Probe::new();
    let sink = "sinks:\n  out: { from: orders, type: csv, mode: error_if_exists, path: \"out/ENV_PW.csv\" }\n";
    p.input("sink.yaml", &[ORDERS, sink].concat());
    let state = "state: { dir: \"state/ENV_PW\" }\nsinks:\n  out: { from: orders, type: csv, path: out/state.csv }\n";
    p.input("state.yaml", &[ORDERS, state].concat());
    // The last run finds the one before's output, and `error_if_exists` names the path.
    let runs = p.all_commands("sink.yaml", "orders", [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect_in(&runs[3].stdout, "would write");
    expect_in(&runs[3].stdout, "out/***.csv");
    expect_in(&runs[9].stdout, "out/***.csv");
    assert_eq!(read_csv(&p.path(&format!("out/{PW}.csv")), &[]).len(), 3);
    let runs = p.all_commands("state.yaml", "orders", ALL_OK);
    expect_in(&runs[8].stdout, "run record: ");
    expect_in(&runs[8].stdout, "/state/***/runs/");
    let records = files_with(&p.path(&format!("state/{PW}/runs")), ".json");
    assert_eq!(records.len(), 2, "one record per run");
    assert!(p.assert_no_trace_in_files() > 0);
}

/// `env(name, secret=false)` reads a value that is not a secret: it is printed as it is,
/// while a value read the usual way is still masked in the same run.
#[test]
fn a_value_read_with_secret_false_is_printed_as_it_is() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
name: plain
sources:
  s:
    type: inline
    rows: [{ id: 1, note: "{{ env('ETL_TEST_HIDDEN') }}" }]
sinks:
  out: { from: s, type: csv, path: "out/{{ env('ETL_TEST_TARGET', secret=false) }}.csv" }
"#,
    );
    let env = [
        ("ETL_TEST_TARGET", "eu-west-reports"),
        ("ETL_TEST_HIDDEN", "hidden-value-42"),
    ];
    let run = etl_env(f.path(), &["run", "p.yaml"], &env).expect_code(0);
    let printed = format!("{}{}", run.stdout, run.stderr);
    assert!(printed.contains("out/eu-west-reports.csv"), "{printed}");
    assert!(!printed.contains("***/"), "{printed}");
    let written = std::fs::read_to_string(f.path().join("out/eu-west-reports.csv")).unwrap();
    assert_eq!(written, "id,note\n1,hidden-value-42\n");
    let preview = etl_env(f.path(), &["preview", "p.yaml", "s"], &env).expect_code(0);
    assert!(
        !preview.stdout.contains("hidden-value-42"),
        "{}",
        preview.stdout
    );
    assert!(preview.stdout.contains("***"), "{}", preview.stdout);
}
