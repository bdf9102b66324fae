//! The other commands: graph, schema, init, preview, explain, test, JSON logs, secrets.

use crate::util::*;

const P: &str = r#"
vars:
  token: "{{ env('ETL_TEST_TOKEN') }}"
sources:
  orders:
    type: inline
    rows:
      - { id: 1, country: DE, amount: 10.5 }
      - { id: 2, country: FR, amount: 4.0 }
      - { id: 3, country: DE, amount: 1.5 }
transforms:
  per_country:
    sql: |
      SELECT country, count(*) AS n, sum(amount) AS total
      FROM orders GROUP BY country
sinks:
  out:
    from: per_country
    type: csv
    path: "out/{{ token }}.csv"
tests:
  sums:
    given:
      orders: { rows: [ { id: 1, country: DE, amount: 2.0 }, { id: 2, country: DE, amount: 3.0 } ] }
    expect:
      per_country: { rows: [ { country: DE, n: 2, total: 5.0 } ] }
  wrong:
    given:
      orders: { rows: [ { id: 1, country: DE, amount: 2.0 } ] }
    expect:
      per_country: { rows: [ { country: DE, total: 3.0 } ] }
"#;

const SECRET: &str = "s3cr3t-t0ken-value";

#[test]
fn graph_in_mermaid_and_dot() {
    let f = Fixture::new();
    f.file("p.yaml", P);
    let r = f.run(&["graph", "p.yaml"]).expect_code(0);
    insta::assert_snapshot!("graph_mermaid", r.stdout);
    let r = f
        .run(&["graph", "p.yaml", "--format", "dot"])
        .expect_code(0);
    assert!(
        r.stdout.contains("\"orders\" -> \"per_country\";"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\"per_country\" -> \"out\";"),
        "{}",
        r.stdout
    );
}

#[test]
fn schema_is_json_schema_with_field_docs() {
    let f = Fixture::new();
    let r = f.run(&["schema"]).expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["title"], "etl pipeline");
    let text = r.stdout;
    assert!(
        text.contains("Columns to split the output by"),
        "sink docs present"
    );
    assert!(text.contains("\"csv\""), "source types present");
}

#[test]
fn init_scaffolds_a_pipeline_that_runs_and_tests() {
    let f = Fixture::new();
    f.run(&["init", "repo"]).expect_code(0);
    let dir = f.path().join("repo");
    etl(&dir, &["run", "pipelines/example.yaml"]).expect_code(0);
    let rows = read_parquet(&dir.join("out/per_country"), &[], &["country", "orders"]);
    assert_eq!(rows, vec![vec!["DE", "2"], vec!["FR", "1"]]);
    etl(&dir, &["test", "pipelines/example.yaml"]).expect_code(0);
    // A second init refuses to overwrite.
    f.run(&["init", "repo"]).expect_code(1);
}

#[test]
fn preview_and_explain() {
    let f = Fixture::new();
    f.file("p.yaml", P);
    let env = [("ETL_TEST_TOKEN", SECRET)];
    let r = etl_env(f.path(), &["preview", "p.yaml", "per_country"], &env).expect_code(0);
    assert!(r.stdout.contains("| DE      | 2 | 12.0  |"), "{}", r.stdout);
    let r = etl_env(f.path(), &["explain", "p.yaml", "per_country"], &env).expect_code(0);
    assert!(r.stdout.contains("logical plan"), "{}", r.stdout);
    assert!(r.stdout.contains("AggregateExec"), "{}", r.stdout);
    etl_env(f.path(), &["preview", "p.yaml", "nope"], &env).expect_code(2);
}

#[test]
fn tests_pass_and_fail_with_the_rows_that_differ() {
    let f = Fixture::new();
    f.file("p.yaml", P);
    let r = f.run(&["test", "p.yaml"]).expect_code(1);
    assert!(r.stdout.contains("test p::sums ... ok"), "{}", r.stdout);
    assert!(
        r.stdout.contains("test p::wrong ... FAILED"),
        "{}",
        r.stdout
    );
    // The rows that differ, as a table: expected (-) and actual (+).
    let row = |mark: &str, total: &str| {
        r.stdout.lines().any(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
            cells.len() >= 4 && cells[1] == mark && cells[2] == "DE" && cells[3] == total
        })
    };
    assert!(row("-", "3.0") && row("+", "2.0"), "{}", r.stdout);
    assert!(r.stdout.contains("1 passed, 1 failed"), "{}", r.stdout);
}

#[test]
fn secrets_never_reach_output_or_run_records() {
    let f = Fixture::new();
    f.file("p.yaml", P);
    let env = [("ETL_TEST_TOKEN", SECRET)];
    let r = etl_env(f.path(), &["run", "p.yaml"], &env).expect_code(0);
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("***"), "{}", r.stdout);
    assert!(
        f.path().join(format!("out/{SECRET}.csv")).exists(),
        "the value is still used"
    );
    let runs = f.path().join(".etl/runs");
    for rec in files_below(&runs) {
        let text = std::fs::read_to_string(runs.join(rec)).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("\"token\": \"***\""), "{text}");
    }
    let r = etl_env(f.path(), &["run", "p.yaml", "--log-format", "json"], &env).expect_code(0);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    let r = etl_env(f.path(), &["explain", "p.yaml"], &env).expect_code(0);
    assert!(!r.stdout.contains(SECRET));
}

#[test]
fn json_log_format_is_one_object_per_line() {
    let f = Fixture::new();
    f.file("p.yaml", P);
    let r = etl_env(
        f.path(),
        &["run", "p.yaml", "--log-format", "json"],
        &[("ETL_TEST_TOKEN", "t")],
    )
    .expect_code(0);
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run");
    assert_eq!(last["status"], "success");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step" && e["step"]["name"] == "out" && e["step"]["rows"] == 2)
    );
}
