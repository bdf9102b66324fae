//! `etl test`: fixtures, expected rows, check outcomes, diffs, test files and folders.

use crate::util::*;

/// A pipeline whose transform doubles `v`, with a not-null check on the result.
const PIPELINE: &str = r#"
sources:
  s:
    type: csv
    path: s.csv
    schema: { id: bigint, v: double, d: "decimal(10,2)" }
  lookup:
    type: csv
    path: lookup.csv
    schema: { id: bigint, label: string }
transforms:
  t:
    sql: |
      SELECT s.id, s.v * 3 AS v3, s.d, l.label
      FROM s LEFT JOIN lookup l USING (id)
checks:
  t:
    - not_null: [v3]
      name: v3_present
sinks:
  out:
    from: t
    type: csv
    path: out/t.csv
"#;

fn fixture(tests: &str) -> Fixture {
    let f = Fixture::new();
    f.file("p.yaml", &format!("{PIPELINE}{tests}"));
    f
}

#[test]
fn a_failing_test_prints_a_table_of_the_rows_that_differ() {
    let f = fixture(
        r#"
tests:
  wrong:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2}, {id: 2, v: 2.0, d: 3} ] }
      lookup: { rows: [ {id: 1, label: one} ] }
    expect:
      t: { rows: [ {id: 1, v3: 3.0, label: one}, {id: 2, v3: 7.0, label: null} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(1);
    let out = &run.stdout;
    assert!(out.contains("test p::wrong ... FAILED"), "{out}");
    assert!(
        out.contains("`t`: 1 expected row not found, 1 unexpected row (2 expected, 2 actual)"),
        "{out}"
    );
    assert!(
        out.contains("compared columns: id, v3, label (order ignored"),
        "{out}"
    );
    // The table: a header of the compared columns, the expected row marked -, the actual +.
    let row = |mark: &str, v3: &str| {
        out.lines().any(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
            cells.len() >= 5
                && cells[1] == mark
                && cells[2] == "2"
                && cells[3] == v3
                && cells[4] == "NULL"
        })
    };
    assert!(row("-", "7.0") && row("+", "6.0"), "{out}");
    assert!(out.contains("tests: 0 passed, 1 failed"), "{out}");
}

#[test]
fn an_expected_column_missing_from_the_output_is_an_error_not_null() {
    let f = fixture(
        r#"
tests:
  no_such_column:
    given:
      s: { rows: [ {id: 1, v: null, d: 2} ] }
      lookup: { rows: [ {id: 9, label: nine} ] }
    expect:
      t: { rows: [ {id: 1, lable: null} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(1);
    assert!(
        run.stdout.contains(
            "`t` has no column `lable` (its columns: id, v3, d, label); did you mean `label`?"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_column_left_out_of_one_expected_row_is_an_error() {
    let f = fixture(
        r#"
tests:
  ragged:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2}, {id: 2, v: 1.0, d: 2} ] }
      lookup: { rows: [ {id: 1, label: one} ] }
    expect:
      t: { rows: [ {id: 1, label: one}, {id: 2} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(2);
    assert!(
        run.stdout.contains("test p::ragged ... INVALID"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "expected row 2 of `t` has no `label`, which other rows have: write `label: null`"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn floats_compare_with_a_relative_tolerance_that_a_test_can_widen() {
    let f = fixture(
        r#"
tests:
  defaults:
    given:
      lookup: { rows: [ {id: 1, label: one} ] }
  # 0.1 * 3 is 0.30000000000000004 in binary floating point: equal within 1e-9.
  binary_noise_is_equal:
    given:
      s: { rows: [ {id: 1, v: 0.1, d: 2} ] }
    expect:
      t: { rows: [ {id: 1, v3: 0.3, d: 2.00} ] }
  off_by_a_millionth:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
    expect:
      t: { rows: [ {id: 1, v3: 3.000003} ] }
  widened:
    tolerance: 1e-5
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
    expect:
      t: { rows: [ {id: 1, v3: 3.000003} ] }
  decimals_are_exact:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2.01} ] }
    expect:
      t: { rows: [ {id: 1, d: 2.0100000001} ], tolerance: 0.1 }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(1);
    let out = &run.stdout;
    assert!(
        out.contains("test p::binary_noise_is_equal ... ok"),
        "{out}"
    );
    assert!(
        out.contains("test p::off_by_a_millionth ... FAILED"),
        "{out}"
    );
    assert!(out.contains("floats within a relative 1e-9"), "{out}");
    assert!(out.contains("test p::widened ... ok"), "{out}");
    // The tolerance is for floats only: a decimal compares exactly.
    assert!(
        out.contains("test p::decimals_are_exact ... FAILED"),
        "{out}"
    );
    assert!(out.contains("tests: 2 passed, 2 failed"), "{out}");
}

#[test]
fn ds_and_run_id_can_be_pinned() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
sources:
  s: { type: csv, path: s.csv, schema: { id: bigint } }
transforms:
  t:
    sql: "SELECT id, DATE '{{ ds }}' AS day, '{{ run_id }}' AS run FROM s"
tests:
  pinned:
    ds: 2024-02-29
    run_id: r-42
    given:
      s: { rows: [ {id: 1} ] }
    expect:
      t: { rows: [ {id: 1, day: "2024-02-29", run: r-42} ] }
  bad_date:
    ds: 2024-02-30
    given:
      s: { rows: [ {id: 1} ] }
    expect:
      t: { rows: [ {id: 1} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(2);
    assert!(
        run.stdout.contains("test p::pinned ... ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("test p::bad_date ... INVALID"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("`ds: 2024-02-30` is not a date"),
        "{}",
        run.stdout
    );
}

#[test]
fn defaults_give_shared_fixtures_and_a_test_can_replace_one() {
    let f = fixture(
        r#"
tests:
  defaults:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
      lookup: { rows: [ {id: 1, label: shared} ] }
  uses_defaults:
    expect:
      t: { rows: [ {id: 1, label: shared} ] }
  own_lookup:
    given:
      lookup: { rows: [ {id: 1, label: own} ] }
    expect:
      t: { rows: [ {id: 1, label: own} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(0);
    assert!(
        run.stdout.contains("tests: 2 passed, 0 failed"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_test_can_expect_a_check_to_fail() {
    let f = fixture(
        r#"
tests:
  defaults:
    given:
      lookup: { rows: [ {id: 1, label: one} ] }
  null_fails_the_check:
    given:
      s: { rows: [ {id: 1, v: null, d: 2} ] }
    expect:
      checks: { fail: [v3_present] }
  but_it_passed:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
    expect:
      checks: { fail: [v3_present] }
  expected_to_pass:
    given:
      s: { rows: [ {id: 1, v: null, d: 2}, {id: 2, v: null, d: 2} ] }
    expect:
      checks: { pass: ["t.v3_present"] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(1);
    let out = &run.stdout;
    assert!(out.contains("test p::null_fails_the_check ... ok"), "{out}");
    assert!(
        out.contains("check `v3_present` on `t` was expected to fail, but passed (ok)"),
        "{out}"
    );
    assert!(
        out.contains(
            "check `v3_present` on `t` was expected to pass, but failed: 2 rows with NULL"
        ),
        "{out}"
    );
}

#[test]
fn an_unknown_check_or_source_in_a_test_is_invalid() {
    let f = fixture(
        r#"
tests:
  typo:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
      lookups: { rows: [ {id: 1, label: one} ] }
    expect:
      checks: { fail: [v3_presnt] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(2);
    assert!(
        run.stdout
            .contains("no check is named `v3_presnt` (did you mean `v3_present`?)"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unknown_name_is_an_error_before_anything_runs() {
    let f = fixture(
        r#"
tests:
  doubles:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
      lookup: { rows: [ {id: 1, label: one} ] }
    expect:
      t: { rows: [ {id: 1, v3: 3.0} ] }
"#,
    );
    let run = f
        .run(&["test", "p.yaml", "--name", "doubel"])
        .expect_code(2);
    assert!(
        run.stderr
            .contains("error: --name doubel: no test has this name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `doubles`?"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("test p::"), "{}", run.stdout);
    f.run(&["test", "p.yaml", "--name", "p::doubles"])
        .expect_code(0);
}

#[test]
fn tests_beside_the_pipeline_in_a_test_file() {
    let f = fixture(
        r#"
tests:
  inline:
    given:
      s: { rows: [ {id: 1, v: 1.0, d: 2} ] }
      lookup: { rows: [ {id: 1, label: one} ] }
    expect:
      t: { rows: [ {id: 1, v3: 3.0} ] }
"#,
    );
    f.file(
        "p.test.yaml",
        r#"
tests:
  from_the_test_file:
    given:
      s: { rows: [ {id: 2, v: 2.0, d: 2} ] }
      lookup: { rows: [] }
    expect:
      t: { rows: [ {id: 2, v3: 6.0, label: null} ] }
"#,
    );
    let run = f.run(&["test", "p.yaml"]).expect_code(0);
    assert!(
        run.stdout.contains("test p::inline ... ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("test p::from_the_test_file ... ok"),
        "{}",
        run.stdout
    );
    // A test file holds tests only, with places in its messages.
    f.file("p.test.yaml", "tests:\n  x:\n    gven: {}\nsources: {}\n");
    let run = f.run(&["test", "p.yaml"]).expect_code(2);
    assert!(run.stderr.contains("p.test.yaml:3:5"), "{}", run.stderr);
    assert!(
        run.stderr.contains("did you mean `given`?"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("a test file holds only `tests:`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_folder_runs_every_pipeline_below_it() {
    let f = Fixture::new();
    let pipeline = |n: i64| {
        format!(
            r#"
sources:
  s: {{ type: csv, path: s.csv, schema: {{ id: bigint }} }}
transforms:
  t: {{ sql: "SELECT id + {n} AS id FROM s" }}
tests:
  adds:
    given:
      s: {{ rows: [ {{id: 1}} ] }}
    expect:
      t: {{ rows: [ {{id: {}}} ] }}
"#,
            1 + n
        )
    };
    f.file("repo/a.yaml", &pipeline(1));
    f.file("repo/nested/deeper/b.yml", &pipeline(2));
    f.file("repo/vars/prod.yaml", "data_dir: /data\n");
    f.file("repo/.etl/ignored.yaml", &pipeline(3));
    let run = f.run(&["test", "repo"]).expect_code(0);
    assert!(run.stdout.contains("test a::adds ... ok"), "{}", run.stdout);
    assert!(run.stdout.contains("test b::adds ... ok"), "{}", run.stdout);
    assert!(
        run.stdout.contains("tests: 2 passed, 0 failed"),
        "{}",
        run.stdout
    );
    f.run(&["test", "repo/vars"]).expect_code(2);
}

#[test]
fn every_example_pipeline_has_tests_and_they_pass() {
    let run = etl(&repo(), &["test", "pipelines/"]).expect_code(0);
    for p in [
        "card_fraud",
        "customer_anonymize",
        "retail_star",
        "warehouse",
        "weather",
        "web_logs",
    ] {
        assert!(
            run.stdout
                .lines()
                .filter(|l| l.starts_with(&format!("test {p}::")))
                .count()
                >= 2,
            "{p} needs at least two tests:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains(" 0 failed"), "{}", run.stdout);
    assert!(
        std::fs::read_to_string(repo().join(".ci/run"))
            .unwrap()
            .contains("etl test pipelines/"),
        "CI runs the examples' tests"
    );
}
