//! The example pipelines run as shipped, and every sink's output matches the independent
//! oracle (`pipelines/expected/compute.py`) row for row.

use crate::util::*;

fn check_example(pipeline: &str, sinks: &[(&str, &str, &[&str])]) {
    let out = tempfile::tempdir().unwrap();
    let out_var = format!("out_dir={}", out.path().display());
    let file = repo().join("pipelines").join(format!("{pipeline}.yaml"));
    let state = tempfile::tempdir().unwrap();
    let run = etl_env(
        &repo(),
        &["run", file.to_str().unwrap(), "--var", &out_var],
        &[("ETL_STATE_DIR", state.path().to_str().unwrap())],
    )
    .expect_code(0);
    assert_eq!(
        files_below(&state.path().join("runs")).len(),
        1,
        "one run record"
    );
    assert!(run.stdout.contains("success"), "{}", run.stdout);
    for (sink, rel, partitions) in sinks {
        let expected_file = repo()
            .join("pipelines/expected")
            .join(pipeline)
            .join(format!("{sink}.csv"));
        let columns = csv_header(&expected_file);
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        let path = out.path().join(rel);
        let actual = if rel.ends_with(".csv") {
            read_csv(&path, &cols)
        } else {
            read_parquet(&path, partitions, &cols)
        };
        let expected = read_csv(&expected_file, &cols);
        let n = |rows: Vec<Vec<String>>| {
            let mut r: Vec<Vec<String>> = rows
                .into_iter()
                .map(|row| row.iter().map(|v| norm(v)).collect())
                .collect();
            r.sort();
            r
        };
        let (a, e) = (n(actual), n(expected));
        assert_eq!(a.len(), e.len(), "{pipeline}/{sink}: row count");
        for (x, y) in a.iter().zip(&e) {
            assert_eq!(
                x, y,
                "{pipeline}/{sink}: first differing row (columns {columns:?})"
            );
        }
    }
}

#[test]
fn retail_star_schema() {
    check_example(
        "retail_star",
        &[
            ("dim_date_parquet", "dim_date", &[]),
            ("dim_category_parquet", "dim_category", &[]),
            ("dim_country_parquet", "dim_country", &[]),
            ("fact_sales_parquet", "fact_sales", &[]),
        ],
    );
}

#[test]
fn customer_anonymization() {
    check_example(
        "customer_anonymize",
        &[
            ("customers_anon_parquet", "customers_anon", &[]),
            ("transactions_out", "transactions.csv", &[]),
        ],
    );
}

#[test]
fn web_access_log() {
    check_example("web_logs", &[("hourly_parquet", "hourly", &[])]);
}

#[test]
fn card_fraud_windows_partitioned() {
    check_example(
        "card_fraud",
        &[
            ("per_minute_parquet", "per_minute", &[]),
            ("flagged_parquet", "flagged", &["tx_date"]),
        ],
    );
}

#[test]
fn fraud_output_is_hive_partitioned_by_date() {
    let out = tempfile::tempdir().unwrap();
    let file = repo().join("pipelines/card_fraud.yaml");
    let state = tempfile::tempdir().unwrap();
    etl_env(
        &repo(),
        &[
            "run",
            file.to_str().unwrap(),
            "--var",
            &format!("out_dir={}", out.path().display()),
        ],
        &[("ETL_STATE_DIR", state.path().to_str().unwrap())],
    )
    .expect_code(0);
    let mut dirs: Vec<String> = std::fs::read_dir(out.path().join("flagged"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    // The hidden manifest records what the sink wrote.
    assert_eq!(
        dirs,
        vec![".etl-manifest", "tx_date=2024-06-30", "tx_date=2024-07-01"]
    );
}

#[test]
fn example_pipeline_tests_pass() {
    let files: Vec<String> = [
        "retail_star",
        "customer_anonymize",
        "web_logs",
        "card_fraud",
        "warehouse",
    ]
    .iter()
    .map(|p| {
        repo()
            .join("pipelines")
            .join(format!("{p}.yaml"))
            .display()
            .to_string()
    })
    .collect();
    let mut args = vec!["test"];
    args.extend(files.iter().map(String::as_str));
    let run = etl(&repo(), &args).expect_code(0);
    assert!(run.stdout.contains(" 0 failed"), "{}", run.stdout);
    assert!(!run.stdout.contains(" 0 passed"), "{}", run.stdout);
}

#[test]
fn example_pipelines_validate() {
    for p in [
        "retail_star",
        "customer_anonymize",
        "web_logs",
        "card_fraud",
    ] {
        let file = repo().join("pipelines").join(format!("{p}.yaml"));
        let run = etl(&repo(), &["validate", file.to_str().unwrap()]).expect_code(0);
        assert!(run.stdout.contains("valid"), "{}", run.stdout);
    }
}

/// Seeds the shop's `sales` table with the example's own script.
fn seed_sales(url: &str, n: usize) {
    let script = std::fs::read_to_string(repo().join("pipelines/warehouse/sales.sql")).unwrap();
    crate::servers::MySqlServer::exec(url, &format!("SET @n = {n};\n{script}"));
}

#[test]
fn warehouse_example_loads_the_star_schema_incrementally_and_exactly_once() {
    use crate::servers::*;
    let (shop, wh) = (mysql().fresh_db("shop"), pg().fresh_db("warehouse"));
    seed_sales(&shop, 300);
    let state = tempfile::tempdir().unwrap();
    let file = repo().join("pipelines/warehouse.yaml");
    let env = [
        ("SHOP_URL", shop.as_str()),
        ("WAREHOUSE_URL", wh.as_str()),
        ("ETL_STATE_DIR", state.path().to_str().unwrap()),
    ];
    let run = || etl_env(&repo(), &["run", file.to_str().unwrap()], &env).expect_code(0);
    // What the shop holds, computed by MariaDB itself.
    let expected = |extra: &str| {
        MySqlServer::sql(
            &shop,
            &format!("SELECT COUNT(*), SUM(quantity * price), COUNT(DISTINCT DATE(ts)) FROM sales {extra}"),
        )[0]
            .clone()
    };
    let loaded = || {
        PgServer::sql(
            &wh,
            "SELECT count(*), sum(amount), (SELECT count(*) FROM star.dim_date) FROM star.fact_sales",
        )[0]
            .clone()
    };
    run();
    assert_eq!(loaded(), expected(""));
    assert_eq!(
        PgServer::sql(&wh, "SELECT category FROM star.dim_category ORDER BY 1").concat(),
        vec!["Garden", "Kitchen", "Office"]
    );
    assert_eq!(
        PgServer::sql(&wh, "SELECT country_code FROM star.dim_country ORDER BY 1").concat(),
        vec!["DE", "FR", "GB", "NL", "US", "XX"]
    );
    seed_sales(&shop, 120);
    run();
    run();
    assert_eq!(loaded(), expected(""));
    assert_eq!(
        PgServer::sql(
            &wh,
            "SELECT count(*) - count(DISTINCT rowid) FROM star.fact_sales"
        ),
        vec![vec!["0"]]
    );
}
