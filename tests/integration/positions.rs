//! Positions of SQL errors: through every YAML scalar style and through templates, to the
//! exact `file:line:col`, the same from `validate` and from `run`; and suggestions from what
//! is in scope (the query's CTEs, the columns of its tables).

use crate::util::*;

/// A pipeline around one transform `t` over an inline source `s(a, name)`.
fn pipeline(transform: &str) -> String {
    format!(
        "vars:\n  cols: \"a,\\n  nope\"\nsources:\n  s: {{ type: inline, rows: [{{a: 1, name: x}}] }}\n  customers: {{ type: inline, rows: [{{id: 1}}] }}\ntransforms:\n  t:\n{transform}sinks:\n  o: {{ from: t, type: csv, path: out/o.csv }}\n"
    )
}

/// `p.yaml:L:C` of the first `needle` in the pipeline's transforms.
fn at(body: &str, needle: &str) -> String {
    let (i, line) = body
        .lines()
        .enumerate()
        .skip_while(|(_, l)| !l.starts_with("transforms:"))
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in\n{body}"));
    let col = line[..line.find(needle).unwrap()].chars().count() + 1;
    format!("p.yaml:{}:{col}", i + 1)
}

/// Runs `validate` and `run` on the pipeline; both fail (exit 2) and name `place`.
fn assert_place(f: &Fixture, place: &str, message: &str) {
    for cmd in ["validate", "run"] {
        let r = f.run(&[cmd, "p.yaml"]).expect_code(2);
        assert!(r.stderr.contains(message), "{cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("{place} (transforms.t.sql)")),
            "{cmd}: expected {place}\n{}",
            r.stderr
        );
        assert!(!r.stderr.contains("SQL syntax error"), "{}", r.stderr);
    }
}

fn unknown_column_at(transform: &str, needle: &str) {
    let body = pipeline(transform);
    let f = Fixture::new();
    f.file("p.yaml", &body);
    assert_place(&f, &at(&body, needle), "column 'nope' not found");
}

#[test]
fn literal_block_that_starts_with_a_blank_line() {
    unknown_column_at(
        "    sql: |\n\n      select a,\n        nope\n      from s\n",
        "nope",
    );
}

#[test]
fn folded_block() {
    unknown_column_at(
        "    sql: >\n      select a,\n        name,\n      nope\n      from s\n",
        "nope",
    );
}

#[test]
fn block_with_an_indentation_indicator() {
    unknown_column_at(
        "    sql: |2\n          select a,\n            nope\n          from s\n",
        "nope",
    );
}

#[test]
fn double_quoted_with_escapes() {
    unknown_column_at(
        "    sql: \"select a,\\n  \\\"name\\\",\\tnope from s\"\n",
        "nope",
    );
}

#[test]
fn single_quoted_over_lines() {
    unknown_column_at(
        "    sql: 'select a, ''x'' AS c,\n      nope from s'\n",
        "nope",
    );
}

#[test]
fn plain_over_lines() {
    unknown_column_at("    sql: select a,\n      nope from s\n", "nope");
}

#[test]
fn var_that_expands_to_several_lines_points_at_its_expression() {
    unknown_column_at(
        "    sql: |\n      select\n        {{ cols }}\n      from s\n",
        "{{ cols }}",
    );
}

#[test]
fn comment_before_the_sql_does_not_shift_lines() {
    unknown_column_at(
        "    sql: |\n      {#- a comment\n          over two lines #}\n      select a,\n        nope\n      from s\n",
        "nope",
    );
}

#[test]
fn error_inside_a_loop_body_points_into_the_body() {
    unknown_column_at(
        "    sql: |\n      select a\n      {%- for i in [1, 2] %}\n        , nope\n      {%- endfor %}\n      from s\n",
        "nope",
    );
}

#[test]
fn unknown_table_after_a_comment_points_at_its_line() {
    let body = pipeline(
        "    sql: |\n      {# note #}\n      select a\n      from {{ 'nowhere' }} join s on true\n",
    );
    let f = Fixture::new();
    f.file("p.yaml", &body);
    assert_place(&f, &at(&body, "{{ 'nowhere' }}"), "unknown table `nowhere`");
}

#[test]
fn template_error_is_reported_alone_at_its_line() {
    let body = pipeline(
        "    sql: |\n      {#- comment\n       #}\n      select a,\n        {{ undefined_thing }}\n      from s\n",
    );
    let f = Fixture::new();
    f.file("p.yaml", &body);
    for cmd in ["validate", "run"] {
        let r = f.run(&[cmd, "p.yaml"]).expect_code(2);
        assert!(
            r.stderr.contains("undefined variable `undefined_thing`"),
            "{}",
            r.stderr
        );
        let place = at(&body, "undefined_thing");
        let line = place.rsplit_once(':').unwrap().0;
        assert!(
            r.stderr.contains(&format!("{line}:")),
            "{line}\n{}",
            r.stderr
        );
        assert!(!r.stderr.contains("SQL"), "{}", r.stderr);
        assert_eq!(r.stderr.matches("error:").count(), 1, "{}", r.stderr);
    }
}

#[test]
fn sql_file_positions_are_the_files_own_through_the_template() {
    let body = pipeline("    sql_file: models/t.sql\n");
    let f = Fixture::new();
    f.file("p.yaml", &body);
    f.file(
        "models/t.sql",
        "{# header\n   comment #}\nselect a\n{%- for i in [1] %}\n  , nope\n{%- endfor %}\nfrom s\n",
    );
    for cmd in ["validate", "run"] {
        let r = f.run(&[cmd, "p.yaml"]).expect_code(2);
        assert!(r.stderr.contains("column 'nope' not found"), "{}", r.stderr);
        assert!(r.stderr.contains("t.sql:5:5"), "{cmd}: {}", r.stderr);
    }
}

#[test]
fn template_error_in_sql_file_points_at_its_line() {
    let body = pipeline("    sql_file: models/t.sql\n");
    let f = Fixture::new();
    f.file("p.yaml", &body);
    f.file(
        "models/t.sql",
        "{# a\n b #}\nselect a,\n  {{ nope_var }}\nfrom s\n",
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("undefined variable `nope_var`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("t.sql:4:"), "{}", r.stderr);
    assert!(!r.stderr.contains("SQL"), "{}", r.stderr);
}

#[test]
fn misspelt_cte_suggests_the_cte() {
    let body = pipeline(
        "    sql: |\n      with customer_payments as (select a from s)\n      select a from customer_payment\n",
    );
    let f = Fixture::new();
    f.file("p.yaml", &body);
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("unknown table `customer_payment`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean `customer_payments`?"),
        "{}",
        r.stderr
    );
    let (i, line) = body
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("from customer_payment"))
        .unwrap();
    let place = format!(
        "p.yaml:{}:{}",
        i + 1,
        line.find("customer_payment").unwrap() + 1
    );
    assert!(r.stderr.contains(&place), "{place}\n{}", r.stderr);
}

#[test]
fn unknown_column_suggests_a_column_in_scope() {
    let body = pipeline("    sql: select nmae from s\n");
    let f = Fixture::new();
    f.file("p.yaml", &body);
    for cmd in ["validate", "run"] {
        let r = f.run(&[cmd, "p.yaml"]).expect_code(2);
        assert!(r.stderr.contains("column 'nmae' not found"), "{}", r.stderr);
        assert!(r.stderr.contains("did you mean `name`?"), "{}", r.stderr);
        assert!(r.stderr.contains(&at(&body, "nmae")), "{}", r.stderr);
    }
    let f = Fixture::new();
    f.file("p.yaml", &pipeline("    sql: 'select \"Name\" from s'\n"));
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr
            .contains("did you mean `name`? (column names are case-sensitive)"),
        "{}",
        r.stderr
    );
}
