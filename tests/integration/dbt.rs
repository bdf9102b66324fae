//! Templates for dbt users: values that keep their type (`values: "{{ methods }}"`), typed
//! `--var`, and `ref()`/`source()`/`var()`/`config()` in SQL, with a dbt model file run
//! unchanged through `sql_file`.

use serde_json::Value;

use crate::util::*;

/// Orders with a status; `lost` is the odd one.
const ORDERS: &str = r#"
sources:
  orders:
    type: inline
    rows:
      - { id: 1, customer_id: 1, amount: 10, status: placed }
      - { id: 2, customer_id: 2, amount: 20, status: shipped }
      - { id: 3, customer_id: 1, amount: 5, status: lost }
    schema: { id: bigint, customer_id: bigint, amount: bigint, status: string }
"#;

/// The single run record a run left.
fn run_record(f: &Fixture) -> Value {
    let runs = f.path().join(".etl/runs");
    let files = files_below(&runs);
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(runs.join(&files[0])).unwrap();
    serde_json::from_str(&text).unwrap()
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

fn check_names(r: &Run) -> Vec<String> {
    steps(r)
        .iter()
        .filter(|s| s["kind"] == "check")
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_whole_expression_keeps_its_type() {
    let f = Fixture::new();
    let pipeline = format!(
        r#"
vars:
  methods: [placed, shipped]
  key: [id]
  max_rows: 3
  check_name: 42
{ORDERS}
transforms:
  by_status:
    sql: select status, count(*) as n from orders group by status
checks:
  orders:
    - accepted_values: {{ column: status, values: "{{{{ methods }}}}" }}
    - unique: "{{{{ key }}}}"
    - row_count: {{ max: "{{{{ max_rows }}}}" }}
      name: "{{{{ check_name }}}}"
sinks:
  out: {{ from: by_status, type: csv, path: out/by_status.csv }}
"#
    );
    f.file("p.yaml", &pipeline);
    // `lost` is not accepted: the list reached the check as a list of two values.
    let r = f
        .run(&["--log-format", "json", "run", "p.yaml"])
        .expect_code(1);
    assert!(!f.path().join("out/by_status.csv").exists());
    let failed: Vec<Value> = steps(&r)
        .into_iter()
        .filter(|s| s["kind"] == "check" && s["status"] != "ok")
        .collect();
    assert_eq!(failed.len(), 1, "{}", r.stdout);
    assert!(
        failed[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("orders: accepted_values"),
        "{failed:?}"
    );
    // A number where a string is expected (a check's name) is taken as its text.
    assert!(
        check_names(&r).contains(&"orders: 42".to_string()),
        "{}",
        r.stdout
    );
    std::fs::remove_dir_all(f.path().join(".etl")).unwrap();

    // Typed `--var`: a list, a number.
    let r = f
        .run(&[
            "--log-format",
            "json",
            "run",
            "p.yaml",
            "--var",
            "methods=[placed, shipped, lost]",
            "--var",
            "max_rows=2",
        ])
        .expect_code(1);
    let failed: Vec<String> = steps(&r)
        .into_iter()
        .filter(|s| s["kind"] == "check" && s["status"] != "ok")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, ["orders: 42"], "{}", r.stdout);
    let record = run_record(&f);
    assert_eq!(
        record["vars"]["methods"],
        serde_json::json!(["placed", "shipped", "lost"])
    );
    assert_eq!(record["vars"]["max_rows"], serde_json::json!(2));
    std::fs::remove_dir_all(f.path().join(".etl")).unwrap();

    f.run(&["run", "p.yaml", "--var", "methods=[placed, shipped, lost]"])
        .expect_code(0);
    let mut rows = read_csv(&f.path().join("out/by_status.csv"), &["status", "n"]);
    rows.sort();
    assert_eq!(rows, [["lost", "1"], ["placed", "1"], ["shipped", "1"]]);
}

#[test]
fn typed_vars_from_the_command_line_and_a_vars_file() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
vars:
  n: 1
  word: x
  flag: false
  methods: []
  nested: {{}}
  doubled: "{{{{ n * 2 }}}}"
  quoted: x
{ORDERS}
sinks:
  out: {{ from: orders, type: csv, path: "out/{{{{ word }}}}-{{{{ n }}}}.csv" }}
"#
        ),
    );
    f.file(
        "vars.yaml",
        "nested: { a: [1, 2], b: yes-text }\nflag: true\n",
    );
    f.run(&[
        "run",
        "p.yaml",
        "--vars-file",
        "vars.yaml",
        "--var",
        "n=3",
        "--var",
        "word=hello",
        "--var",
        "methods=[a, 'b c']",
        "--var",
        "quoted='007'",
    ])
    .expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/hello-3.csv"), &["id"]).len(),
        3
    );
    let vars = &run_record(&f)["vars"];
    assert_eq!(vars["n"], serde_json::json!(3));
    assert_eq!(vars["doubled"], serde_json::json!(6), "vars refer to vars");
    assert_eq!(vars["word"], serde_json::json!("hello"));
    assert_eq!(vars["flag"], serde_json::json!(true));
    assert_eq!(vars["methods"], serde_json::json!(["a", "b c"]));
    assert_eq!(
        vars["nested"],
        serde_json::json!({ "a": [1, 2], "b": "yes-text" })
    );
    assert_eq!(vars["quoted"], serde_json::json!("007"));

    // A malformed value is a command-line error that says what is wrong.
    let r = f
        .run(&["validate", "p.yaml", "--var", "methods=[a,"])
        .expect_code(2);
    assert!(
        r.stderr.contains("--var `methods=[a,`") && r.stderr.contains("YAML"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_secret_inside_a_list_stays_a_string_and_masked() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
vars:
  accepted: ["{{{{ env('ETL_DBT_STATUS') }}}}", shipped]
{ORDERS}
checks:
  orders:
    - accepted_values: {{ column: status, values: "{{{{ accepted }}}}" }}
sinks:
  out: {{ from: orders, type: csv, path: out/orders.csv }}
"#
        ),
    );
    let env = [("ETL_DBT_STATUS", "placed-0000-secret")];
    let r = etl_env(f.path(), &["--log-format", "json", "run", "p.yaml"], &env).expect_code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("placed-0000-secret"), "{all}");
    assert_eq!(
        run_record(&f)["vars"]["accepted"],
        serde_json::json!(["***", "shipped"])
    );
    let r = etl_env(f.path(), &["explain", "p.yaml"], &env);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("placed-0000-secret"), "{all}");
}

#[test]
fn errors_in_a_native_value_point_at_its_key() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            r#"
vars:
  cols: {{ a: 1 }}
{ORDERS}
checks:
  orders:
    - accepted_values: {{ column: status, values: "{{{{ cols }}}}" }}
sinks:
  out: {{ from: orders, type: csv, path: "{{{{ nope }}}}" }}
"#
        ),
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    // The mapping where a list is expected, at its value; the undefined name, at the name.
    assert!(
        r.stderr.contains("p.yaml:16:50") && r.stderr.contains("expected a list, found a mapping"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("p.yaml:18:45") && r.stderr.contains("undefined variable `nope`"),
        "{}",
        r.stderr
    );
}

/// A dbt model, as dbt writes it.
const MODEL: &str = r#"{{ config(materialized='table', tags=['finance']) }}

with orders as (
    select * from {{ source('shop', 'raw_orders') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
)

select
    c.name,
    count(*) as orders,
    sum(o.amount) as amount
from orders o
join customers c on c.id = o.customer_id
where o.ordered_at >= '{{ var("start_date", "2020-01-01") }}'
  and o.status in ({% for s in var('statuses') %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor %})
group by c.name
"#;

fn dbt_project() -> Fixture {
    let f = Fixture::new();
    f.file("models/customer_orders.sql", MODEL);
    f.file(
        "p.yaml",
        r#"
vars:
  statuses: [placed, shipped]
sources:
  raw_orders:
    type: inline
    rows:
      - { id: 1, customer_id: 1, amount: 10, status: placed, ordered_at: "2019-12-31" }
      - { id: 2, customer_id: 1, amount: 20, status: shipped, ordered_at: "2024-01-02" }
      - { id: 3, customer_id: 2, amount: 5, status: placed, ordered_at: "2024-01-03" }
      - { id: 4, customer_id: 2, amount: 7, status: lost, ordered_at: "2024-01-04" }
    schema: { id: bigint, customer_id: bigint, amount: bigint, status: string, ordered_at: date }
  raw_customers:
    type: inline
    rows: [ { id: 1, name: Ann }, { id: 2, name: Bob } ]
    schema: { id: bigint, name: string }
transforms:
  stg_customers:
    sql: |
      {{ config(materialized='view') }}
      select id, upper(name) as name from {{ ref('raw_customers') }}
  customer_orders:
    sql_file: models/customer_orders.sql
checks:
  customer_orders:
    - expect: "amount > {{ var('min_amount', 0) }}"
sinks:
  out: { from: customer_orders, type: csv, path: out/customer_orders.csv }
"#,
    );
    f
}

#[test]
fn a_dbt_model_runs_unchanged_through_sql_file() {
    let f = dbt_project();
    f.run(&["run", "p.yaml"]).expect_code(0);
    let mut rows = read_csv(
        &f.path().join("out/customer_orders.csv"),
        &["name", "orders", "amount"],
    );
    rows.sort();
    assert_eq!(rows, [["ANN", "1", "20"], ["BOB", "1", "5"]]);

    // var() with a default takes the var when there is one.
    f.run(&["run", "p.yaml", "--var", "start_date=2019-01-01"])
        .expect_code(0);
    let mut rows = read_csv(
        &f.path().join("out/customer_orders.csv"),
        &["name", "orders", "amount"],
    );
    rows.sort();
    assert_eq!(rows, [["ANN", "2", "30"], ["BOB", "1", "5"]]);

    // The graph sees ref() and source() as dependencies.
    let r = f.run(&["graph", "p.yaml"]).expect_code(0);
    for edge in [
        "raw_orders --> customer_orders",
        "stg_customers --> customer_orders",
        "raw_customers --> stg_customers",
    ] {
        assert!(r.stdout.contains(edge), "{edge}:\n{}", r.stdout);
    }
    let r = f
        .run(&["run", "p.yaml", "--var", "min_amount=6"])
        .expect_code(1);
    assert!(r.stderr.contains("amount > 6"), "{}", r.stderr);
}

#[test]
fn unknown_refs_and_missing_vars_name_themselves() {
    let f = dbt_project();
    let model = MODEL.replace("ref('stg_customers')", "ref('stg_customer')");
    f.file("models/customer_orders.sql", &model);
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("customer_orders.sql:8:")
            && r.stderr
                .contains("no source or transform is named `stg_customer`")
            && r.stderr.contains("did you mean `stg_customers`?"),
        "{}",
        r.stderr
    );

    let model = MODEL.replace("'raw_orders'", "'stg_customers'");
    f.file("models/customer_orders.sql", &model);
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("no source is named `stg_customers`"),
        "{}",
        r.stderr
    );

    f.file("models/customer_orders.sql", MODEL);
    let pipeline = std::fs::read_to_string(f.path().join("p.yaml")).unwrap();
    f.file(
        "p.yaml",
        &pipeline.replace("ref('raw_customers')", "ref('raw_customer')"),
    );
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    // The SQL block starts on line 20; the ref is on its second line.
    assert!(
        r.stderr.contains("p.yaml:21:") && r.stderr.contains("`raw_customer`"),
        "{}",
        r.stderr
    );

    f.file("p.yaml", &pipeline.replace("statuses:", "status_list:"));
    let r = f.run(&["validate", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr
            .contains("var('statuses'): no var is named `statuses`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_number_in_a_text_column_is_its_text() {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
vars:
  n: 7
sources:
  items:
    type: inline
    rows:
      - { id: 1, label: "{{ n }}", flag: "{{ n > 3 }}" }
      - { id: 2, label: 8, flag: false }
    schema: { id: bigint, label: string, flag: boolean }
sinks:
  out: { from: items, type: csv, path: out/items.csv }
"#,
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/items.csv"), &["label", "flag"]),
        [["7", "true"], ["8", "false"]]
    );
}
