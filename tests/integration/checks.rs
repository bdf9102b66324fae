//! Checks: every kind passing and failing, severities, `where`, `store_failures`, checks on
//! what no sink reads, `--select`, plan errors before any data is read, dbt's test style.

use serde_json::Value;

use crate::util::*;

/// Customers and orders; order 3 refers to a customer that does not exist, order 4 to none.
const DATA: &str = r#"
sources:
  customers:
    type: inline
    rows:
      - { id: 1, name: Ann, tier: gold }
      - { id: 2, name: Bob, tier: silver }
    schema: { id: bigint, name: string, tier: string }
  orders:
    type: inline
    rows:
      - { id: 1, customer_id: 1, amount: 10, status: placed, ts: "2024-01-05 23:00:00" }
      - { id: 2, customer_id: 2, amount: 20, status: shipped, ts: "2024-01-05 22:00:00" }
      - { id: 3, customer_id: 9, amount: -5, status: placed, ts: "2024-01-05 21:00:00" }
      - { id: 3, customer_id: null, amount: 7, status: lost, ts: "2024-01-04 12:00:00" }
    schema: { id: bigint, customer_id: bigint, amount: bigint, status: string, ts: timestamp }
"#;

const SINK: &str = "sinks:\n  out: { from: customers, type: csv, path: out/customers.csv }\n";

/// A fixture with `DATA`, the given checks (YAML under `checks:`) and a sink.
fn with_checks(checks: &str) -> Fixture {
    let f = Fixture::new();
    f.file("p.yaml", &format!("{DATA}checks:\n{checks}{SINK}"));
    f
}

/// The JSON step events of a run.
fn steps(r: &Run) -> Vec<Value> {
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "step")
        .map(|v| v["step"].clone())
        .collect()
}

/// The step of the check whose name starts with `prefix` (`orders: unique(id)`).
fn check_step(r: &Run, prefix: &str) -> Value {
    steps(r)
        .into_iter()
        .find(|s| s["kind"] == "check" && s["name"].as_str().unwrap_or("").starts_with(prefix))
        .unwrap_or_else(|| panic!("no check step {prefix}\n{}\n{}", r.stdout, r.stderr))
}

fn run_json(f: &Fixture, extra: &[&str]) -> Run {
    let mut args = vec!["--log-format", "json", "run", "p.yaml"];
    args.extend_from_slice(extra);
    f.run(&args)
}

#[test]
fn every_kind_passes_and_fails() {
    // (check, step name prefix, failures when it fails); each first as written (failing),
    // then with the edit that makes it pass.
    let cases: &[(&str, &str, u64, (&str, &str))] = &[
        (
            "not_null: [customer_id]",
            "orders: not_null",
            1,
            ("customer_id]", "id]"),
        ),
        (
            "unique: [id]",
            "orders: unique(",
            1,
            ("[id]", "[id, status]"),
        ),
        (
            "accepted_values: { column: status, values: [placed, shipped] }",
            "orders: accepted_values",
            1,
            ("shipped]", "shipped, lost]"),
        ),
        (
            "relationships: { column: customer_id, to: customers, field: id }",
            "orders: relationships",
            1,
            ("to: customers, field: id", "to: orders, field: customer_id"),
        ),
        ("row_count: { max: 3 }", "orders: row_count", 1, ("3", "4")),
        (
            "expect: \"amount > 0\"",
            "orders: expect(",
            1,
            ("> 0", "> -10"),
        ),
        (
            "expect_table: \"sum(amount) > 40\"",
            "orders: expect_table",
            1,
            ("> 40", "> 30"),
        ),
        (
            "freshness: { column: ts, max_age: 30m, relative_to: ds }",
            "orders: freshness",
            1,
            ("30m", "2h"),
        ),
    ];
    for (check, name, failures, (from, to)) in cases {
        let f = with_checks(&format!("  orders:\n    - {check}\n"));
        let r = run_json(&f, &["--date", "2024-01-05"]).expect_code(1);
        let s = check_step(&r, name);
        assert_eq!(s["status"], "failed", "{check}: {s}");
        assert_eq!(s["failures"], *failures, "{check}: {s}");
        assert!(r.stderr.contains("failed"), "{check}: {}", r.stderr);
        let fixed = check.replacen(from, to, 1);
        let f = with_checks(&format!("  orders:\n    - {fixed}\n"));
        let r = run_json(&f, &["--date", "2024-01-05"]).expect_code(0);
        let s = check_step(&r, name);
        assert_eq!(
            (&s["status"], &s["failures"]),
            (&"ok".into(), &0.into()),
            "{fixed}: {s}"
        );
    }
}

#[test]
fn warn_reports_and_writes_error_stops_and_writes_nothing() {
    let f = with_checks("  orders:\n    - expect: \"amount > 0\"\n      severity: warn\n");
    let r = run_json(&f, &[]).expect_code(0);
    let s = check_step(&r, "orders: expect(amount > 0)");
    assert_eq!(
        (&s["status"], &s["failures"]),
        (&"warned".into(), &1.into())
    );
    assert!(f.path().join("out/customers.csv").exists());
    let f = with_checks("  orders:\n    - expect: \"amount > 0\"\n");
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("check expect(amount > 0) on `orders` failed: 1 failing rows"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("| 3  | 9"),
        "the sample shows the row: {}",
        r.stderr
    );
    assert!(!f.path().join("out").exists());
}

#[test]
fn a_failing_check_leaves_the_previous_output_untouched() {
    let f = with_checks(
        "  customers:\n    - accepted_values: { column: tier, values: [gold, silver] }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let before = std::fs::read_to_string(f.path().join("out/customers.csv")).unwrap();
    let changed = std::fs::read_to_string(f.path().join("p.yaml"))
        .unwrap()
        .replace("name: Bob, tier: silver", "name: Bea, tier: bronze");
    f.file("p.yaml", &changed);
    f.run(&["run", "p.yaml"]).expect_code(1);
    let after = std::fs::read_to_string(f.path().join("out/customers.csv")).unwrap();
    assert_eq!(before, after);
    assert!(after.contains("Bob") && !after.contains("Bea"), "{after}");
}

#[test]
fn checks_on_what_no_sink_reads_run_on_every_run() {
    let f = Fixture::new();
    let body = format!(
        "{DATA}transforms:\n  refunds:\n    sql: SELECT * FROM orders WHERE amount < 0\n\
         checks:\n  refunds:\n    - row_count: {{ max: 0 }}\n{SINK}"
    );
    f.file("p.yaml", &body);
    let r = run_json(&f, &[]).expect_code(1);
    let s = check_step(&r, "refunds: row_count");
    assert_eq!(
        (&s["status"], &s["failures"]),
        (&"failed".into(), &1.into()),
        "{s}"
    );
    assert!(!f.path().join("out").exists(), "no sink committed");
}

#[test]
fn select_runs_the_checks_on_what_it_reads_and_names_the_rest() {
    let f = with_checks(
        "  orders:\n    - expect: \"amount > 0\"\n  customers:\n    - unique: id\n    - relationships: { column: id, to: orders, field: customer_id }\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(1);
    let r = run_json(&f, &["--select", "out"]).expect_code(0);
    assert_eq!(check_step(&r, "customers: unique(id)")["status"], "ok");
    // A check on a selected table that reads another one still runs, reading it.
    assert_eq!(check_step(&r, "customers: relationships")["status"], "ok");
    let s = check_step(&r, "orders: expect(amount > 0)");
    assert_eq!(s["status"], "skipped", "{s}");
    assert!(
        r.stdout.contains(r#""event":"note""#) && r.stdout.contains("--select leaves out 1 check"),
        "{}",
        r.stdout
    );
    let v = f
        .run(&["validate", "p.yaml", "--select", "out"])
        .expect_code(0);
    assert!(
        v.stderr
            .contains("note: --select leaves out 1 check on what the selected sinks do not read: `expect(amount > 0)` on `orders`"),
        "{}",
        v.stderr
    );
    f.run(&["validate", "p.yaml", "--select", "nope"])
        .expect_code(2);
}

/// A source that fails when read: a declared bigint column holding text on line 3.
fn broken_source(f: &Fixture) -> &'static str {
    f.file("broken.csv", "id\n1\nnot-a-number\n");
    "  broken:\n    type: csv\n    path: broken.csv\n    schema: { id: bigint }\n"
}

#[test]
fn a_check_that_does_not_plan_exits_2_before_any_data_is_read() {
    let f = Fixture::new();
    let broken = broken_source(&f);
    let body = |check: &str| {
        format!(
            "{DATA}{broken}transforms:\n  both:\n    sql: SELECT * FROM broken\n\
             checks:\n  both:\n    - not_null: [id]\n  orders:\n{check}\
             sinks:\n  a: {{ from: both, type: csv, path: out/a.csv }}\n  b: {{ from: both, type: csv, path: out/b.csv }}\n"
        )
    };
    // The control: the source does fail when read.
    f.file("p.yaml", &body("    - not_null: [id]\n"));
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(r.stderr.contains("broken.csv"), "{}", r.stderr);
    std::fs::remove_dir_all(f.path().join(".etl")).unwrap();
    for (check, message) in [
        (
            "    - not_null: [custmer_id]\n",
            "`custmer_id` is not a column of `orders`",
        ),
        (
            "    - expect: |\n        amount > 0\n        AND custmer_id IN (SELECT id FROM customers)\n",
            "'custmer_id' not found",
        ),
        (
            "    - expect: \"id IN (SELECT id FROM custmers)\"\n",
            "unknown table `custmers`",
        ),
    ] {
        f.file("p.yaml", &body(check));
        for cmd in ["validate", "run"] {
            let r = f.run(&[cmd, "p.yaml"]).expect_code(2);
            assert!(r.stderr.contains(message), "{cmd}: {}", r.stderr);
            assert!(
                !r.stderr.contains("broken.csv"),
                "{cmd} read data: {}",
                r.stderr
            );
        }
        assert!(!f.path().join(".etl").exists(), "no lock, no run record");
    }
    // The place of a misspelt column inside a multi-line `expect`: its own line and column.
    let text = body("    - expect: |\n        amount > 0\n        AND custmer_id > 0\n");
    f.file("p.yaml", &text);
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    let line = text
        .lines()
        .position(|l| l.contains("AND custmer_id"))
        .unwrap()
        + 1;
    assert!(
        r.stderr
            .contains(&format!("p.yaml:{line}:13 (checks.orders[0].expect)")),
        "{line}: {}",
        r.stderr
    );
}

#[test]
fn expect_may_read_other_tables_in_subqueries() {
    let f = with_checks(
        "  orders:\n    - expect: \"customer_id IN (SELECT id FROM customers)\"\n    - expect: \"amount <= (SELECT max(amount) FROM orders)\"\n",
    );
    let r = run_json(&f, &[]).expect_code(1);
    let s = check_step(&r, "orders: expect(customer_id IN");
    assert_eq!(
        (&s["status"], &s["failures"]),
        (&"failed".into(), &1.into()),
        "{s}"
    );
    assert_eq!(check_step(&r, "orders: expect(amount <=")["status"], "ok");
}

#[test]
fn relationships_across_tables_with_where() {
    let f = with_checks(
        "  orders:\n    - relationships: { column: customer_id, to: \"ref('customers')\", field: id }\n      where: \"status <> 'placed'\"\n  customers:\n    - relationships: { column: id, to: orders, field: customer_id }\n",
    );
    let r = run_json(&f, &[]).expect_code(0);
    // Order 3 (customer 9) is `placed`: filtered out; NULL references never fail.
    let s = check_step(&r, "orders: relationships");
    assert_eq!(
        (&s["status"], &s["failures"]),
        (&"ok".into(), &0.into()),
        "{s}"
    );
    assert_eq!(check_step(&r, "customers: relationships")["failures"], 0);
    let f = with_checks(
        "  orders:\n    - relationships: { column: customer_id, to: customers, field: id }\n",
    );
    let r = run_json(&f, &[]).expect_code(1);
    let error = r
        .stdout
        .lines()
        .find(|l| l.contains(r#""event":"run""#))
        .unwrap();
    assert!(
        error.contains("1 rows whose `customer_id` is not in `customers.id`"),
        "{error}"
    );
}

#[test]
fn freshness_relative_to_now_and_to_ds() {
    let f = Fixture::new();
    let body = |age: &str| {
        format!(
            "transforms:\n  recent:\n    sql: SELECT now() - INTERVAL '{age}' AS ts\n\
             checks:\n  recent:\n    - freshness: {{ column: ts, max_age: 2h }}\n"
        )
    };
    f.file("p.yaml", &body("1 hour"));
    let r = run_json(&f, &[]).expect_code(0);
    assert_eq!(check_step(&r, "recent: freshness")["status"], "ok");
    f.file("p.yaml", &body("3 hours"));
    let r = run_json(&f, &[]).expect_code(1);
    let s = check_step(&r, "recent: freshness");
    assert!(s["detail"].as_str().unwrap().contains("at most 2h"), "{s}");
    // Relative to ds: the end of the logical date. The newest order is 23:00 on the 5th.
    let f =
        with_checks("  orders:\n    - freshness: { column: ts, max_age: 2h, relative_to: ds }\n");
    run_json(&f, &["--date", "2024-01-05"]).expect_code(0);
    let r = run_json(&f, &["--date", "2024-01-06"]).expect_code(1);
    let detail = check_step(&r, "orders: freshness")["detail"].to_string();
    assert!(
        detail.contains("1day 1h old at 2024-01-07 00:00:00"),
        "{detail}"
    );
}

fn only_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files = files_below(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    dir.join(&files[0])
}

#[test]
fn store_failures_keeps_the_failing_rows_as_parquet_per_run() {
    let f = with_checks(
        "  orders:\n    - unique: id\n      store_failures: true\n      severity: warn\n    - not_null: customer_id\n      name: orders need a customer\n      store_failures: true\n      severity: warn\n    - row_count: { min: 10 }\n      store_failures: true\n      severity: warn\n    - expect: \"amount > -100\"\n      store_failures: true\n",
    );
    let r = run_json(&f, &[]).expect_code(0);
    let record: Value = {
        let path = r.stdout.lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v["run_record"].as_str().map(str::to_string)
        });
        serde_json::from_str(&std::fs::read_to_string(path.unwrap()).unwrap()).unwrap()
    };
    let run_id = record["run_id"].as_str().unwrap();
    let failures = f.path().join(".etl/failures");
    let dup = only_file(&failures.join("unique_orders_id"));
    assert_eq!(
        dup.file_name().unwrap().to_string_lossy(),
        format!("{run_id}.parquet")
    );
    assert_eq!(
        read_parquet(&dup, &[], &["id", "n_records"]),
        vec![vec!["3", "2"]]
    );
    let nulls = only_file(&failures.join("orders_need_a_customer"));
    assert_eq!(
        read_parquet(&nulls, &[], &["id", "status"]),
        vec![vec!["3", "lost"]]
    );
    let count = only_file(&failures.join("row_count_orders"));
    assert_eq!(
        read_parquet(&count, &[], &["rows", "min"]),
        vec![vec!["4", "10"]]
    );
    assert!(
        !failures.join("expect_orders_3").exists(),
        "a passing check stores nothing"
    );
    // The run record has each check's outcome and failing-row count.
    let steps = record["steps"].as_array().unwrap();
    let dup_step = steps
        .iter()
        .find(|s| s["name"] == "orders: unique(id)")
        .unwrap();
    assert_eq!(
        (&dup_step["status"], &dup_step["failures"]),
        (&"warned".into(), &1.into())
    );
    // A second run adds its own file.
    run_json(&f, &[]).expect_code(0);
    assert_eq!(files_below(&failures.join("unique_orders_id")).len(), 2);
}

#[test]
fn dbt_column_tests_are_checks() {
    let f = with_checks(
        r#"  orders:
    columns:
      id:
        tests:
          - unique
          - not_null
      status:
        data_tests:
          - accepted_values: { values: [placed, shipped], config: { severity: warn } }
      customer_id:
        tests:
          - relationships: { to: ref('customers'), field: id, config: { where: "status <> 'placed'" } }
    tests:
      - dbt_utils.expression_is_true: { expression: "amount > -10" }
    checks:
      - row_count: { min: 1 }
  customers:
    columns:
      - name: id
        description: the key
        tests: [unique, not_null]
      - name: tier
        tests:
          - accepted_values:
              values: [gold]
              severity: warn
"#,
    );
    let r = run_json(&f, &[]).expect_code(1);
    let status = |name: &str| {
        let s = check_step(&r, name);
        (
            s["status"].as_str().unwrap().to_string(),
            s["failures"].as_u64().unwrap(),
        )
    };
    assert_eq!(status("orders: unique(id)"), ("failed".into(), 1));
    assert_eq!(status("orders: not_null(id)"), ("ok".into(), 0));
    assert_eq!(
        status("orders: accepted_values(status)"),
        ("warned".into(), 1)
    );
    assert_eq!(
        status("orders: relationships(customer_id"),
        ("ok".into(), 0)
    );
    assert_eq!(status("orders: expect(amount > -10)"), ("ok".into(), 0));
    assert_eq!(status("orders: row_count"), ("ok".into(), 0));
    assert_eq!(status("customers: unique(id)"), ("ok".into(), 0));
    assert_eq!(
        status("customers: accepted_values(tier)"),
        ("warned".into(), 1)
    );
    // A misspelt test name points at its line, with a suggestion.
    let f = with_checks("  orders:\n    columns:\n      id:\n        tests: [uniqe]\n");
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(r.stderr.contains("unknown test `uniqe`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `unique`?"), "{}", r.stderr);
    let line = DATA.lines().count() + 5;
    assert!(
        r.stderr.contains(&format!("p.yaml:{line}:")),
        "{line}: {}",
        r.stderr
    );
}
