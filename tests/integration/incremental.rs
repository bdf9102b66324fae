//! Incremental loads: only new rows are read, watermarks advance only with the sinks'
//! commit, and a crash anywhere never duplicates or loses a row.

use crate::servers::*;
use crate::util::*;

/// A MariaDB `sales` table with rows `1..=n`.
fn shop(n: usize) -> String {
    let url = mysql().fresh_db("shop");
    MySqlServer::exec(
        &url,
        "CREATE TABLE sales (rowid BIGINT PRIMARY KEY AUTO_INCREMENT, product VARCHAR(20), qty INT UNSIGNED, price DECIMAL(10,2), ts DATETIME(6));",
    );
    add_sales(&url, n);
    url
}

fn add_sales(url: &str, n: usize) {
    if n == 0 {
        return;
    }
    let values: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('p{}', {}, {}.25, '2024-01-01 10:00:00.{:06}')",
                i % 7,
                i % 5 + 1,
                i % 9,
                i
            )
        })
        .collect();
    MySqlServer::exec(
        url,
        &format!(
            "INSERT INTO sales (product, qty, price, ts) VALUES {};",
            values.join(",")
        ),
    );
}

const PIPE: &str = r#"
connections:
  shop: { type: mysql, url: "{{ env('SHOP_URL') }}" }
  wh: { type: postgres, url: "{{ env('WH_URL') }}" }
sources:
  sales:
    type: mysql
    connection: shop
    table: sales
    incremental: { cursor: rowid }
transforms:
  facts:
    sql: SELECT rowid, product, qty, price * qty AS amount, ts FROM sales
sinks:
  fact_sales: { from: facts, type: postgres, connection: wh, table: dw.fact_sales, mode: append }
"#;

struct Env {
    f: Fixture,
    shop: String,
    wh: String,
}

impl Env {
    fn new(rows: usize, pipeline: &str) -> Self {
        let f = Fixture::new();
        f.file("p.yaml", pipeline);
        Self {
            f,
            shop: shop(rows),
            wh: pg().fresh_db("wh"),
        }
    }

    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = vec![
            ("SHOP_URL", self.shop.as_str()),
            ("WH_URL", self.wh.as_str()),
        ];
        env.extend_from_slice(extra);
        etl_env(self.f.path(), args, &env)
    }

    fn loaded(&self) -> (i64, i64) {
        let r = PgServer::sql(
            &self.wh,
            "SELECT count(*), count(DISTINCT rowid) FROM dw.fact_sales",
        );
        (r[0][0].parse().unwrap(), r[0][1].parse().unwrap())
    }
}

#[test]
fn mysql_to_postgres_append_reads_only_new_rows_exactly_once() {
    let e = Env::new(50, PIPE);
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    assert_eq!(e.loaded(), (50, 50));
    let r = e.run(&["state", "p.yaml"], &[]).expect_code(0);
    assert!(
        r.stdout
            .contains("fact_sales: 50 (in the sink's commit records)"),
        "{}",
        r.stdout
    );
    add_sales(&e.shop, 7);
    let r = e.run(&["explain", "p.yaml"], &[]).expect_code(0);
    assert!(r.stdout.contains("MySqlScan"), "{}", r.stdout);
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    assert_eq!(e.loaded(), (57, 57));
    // Nothing new: nothing loaded.
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    assert_eq!(e.loaded(), (57, 57));
    // Killed after the database committed, before the local state was saved: the sink's own
    // commit record says what it has, so the next run does not load those rows again.
    add_sales(&e.shop, 5);
    let mut k = 1;
    loop {
        let r = e.run(&["run", "p.yaml"], &[("ETL_FAULT", &format!("commit:{k}"))]);
        if r.code == 0 {
            break;
        }
        assert_eq!(r.code, -1, "step {k}: {}", r.stderr);
        e.run(&["run", "p.yaml"], &[]).expect_code(0);
        let (n, distinct) = e.loaded();
        assert_eq!(n, distinct, "step {k}: duplicates");
        add_sales(&e.shop, 1);
        k += 1;
    }
    let total: i64 = MySqlServer::sql(&e.shop, "SELECT count(*) FROM sales")[0][0]
        .parse()
        .unwrap();
    assert_eq!(e.loaded(), (total, total), "every row exactly once");
}

#[test]
fn a_run_killed_in_the_middle_of_a_large_load_changes_nothing_and_the_rerun_loads_once() {
    let e = Env::new(0, PIPE);
    // About 3 MB of COPY data: the load is killed after its first megabyte.
    for _ in 0..6 {
        add_sales(&e.shop, 5000);
    }
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    add_sales(&e.shop, 20_000);
    let before = e.loaded();
    let r = e.run(&["run", "p.yaml"], &[("ETL_FAULT", "copy:1")]);
    assert_eq!(r.code, -1, "{}", r.stderr);
    assert_eq!(e.loaded(), before, "the killed load left no rows");
    let r = e.run(&["state", "p.yaml"], &[]).expect_code(0);
    assert!(
        r.stdout.contains("fact_sales: 30000"),
        "watermark not advanced: {}",
        r.stdout
    );
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    assert_eq!(e.loaded(), (50_000, 50_000));
}

#[test]
fn null_cursors_are_never_dropped_silently() {
    let f = Fixture::new();
    f.file("d.csv", "id,v\n1,a\n,b\n3,c\n");
    let body = |policy: &str| {
        format!(
            "sources:\n  s:\n    type: csv\n    path: d.csv\n    schema: {{ id: bigint, v: string }}\n    incremental: {{ cursor: id{policy} }}\nsinks:\n  o: {{ from: s, type: csv, path: out/o.csv }}\n"
        )
    };
    f.file("p.yaml", &body(""));
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("1 rows whose cursor `id` is NULL"),
        "{}",
        r.stderr
    );
    assert!(!f.path().join("out").exists());
    f.file("p.yaml", &body(", on_null_cursor: skip"));
    let r = f.run(&["run", "p.yaml"]).expect_code(0);
    assert!(
        r.stderr
            .contains("1 rows with a NULL cursor `id` were skipped"),
        "{}",
        r.stderr
    );
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &["v"]),
        vec![vec!["a"], vec!["c"]]
    );
    f.file("p.yaml", &body(", on_null_cursor: include"));
    f.run(&["state", "p.yaml", "--reset"]).expect_code(0);
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &["v"]),
        vec![vec!["a"], vec!["b"], vec!["c"]]
    );
    // A cursor column that does not exist.
    f.file("p.yaml", &body("").replace("cursor: id", "cursor: idd"));
    let r = f.run(&["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("the cursor column `idd` is not a column of source `s`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean `id`?"), "{}", r.stderr);
}

#[test]
fn file_sources_are_incremental_too_and_state_can_be_set_and_reset() {
    let f = Fixture::new();
    f.file(
        "in/a.csv",
        "id,ts\n1,2024-01-01 10:00:00.000001\n2,2024-01-01 10:00:00.000002\n",
    );
    let body = "sources:\n  s:\n    type: csv\n    path: \"in/*.csv\"\n    schema: { id: bigint, ts: timestamp }\n    incremental: { cursor: ts }\nsinks:\n  o: { from: s, type: parquet, path: out/o, mode: append }\n";
    f.file("p.yaml", body);
    f.run(&["run", "p.yaml"]).expect_code(0);
    // A new file with a row one microsecond later: precision is kept, nothing is re-read.
    f.file(
        "in/b.csv",
        "id,ts\n2,2024-01-01 10:00:00.000002\n3,2024-01-01 10:00:00.000003\n",
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    let ids = |f: &Fixture| -> Vec<String> {
        read_parquet(&f.path().join("out/o"), &[], &["id"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(ids(&f), vec!["1", "2", "3"]);
    let r = f.run(&["state", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("o: 2024-01-01 10:00:00.000003"),
        "{}",
        r.stdout
    );
    // --set starts the next run exactly there.
    let r = f
        .run(&["state", "p.yaml", "--set", "s=2024-01-01 10:00:00.000001"])
        .expect_code(0);
    assert!(
        r.stdout
            .contains("watermark set to 2024-01-01 10:00:00.000001"),
        "{}",
        r.stdout
    );
    f.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(ids(&f), vec!["1", "2", "2", "2", "3", "3"]);
    let r = f
        .run(&["state", "p.yaml", "--set", "s=not a time"])
        .expect_code(2);
    assert!(r.stderr.contains("is not a timestamp"), "{}", r.stderr);
    f.run(&["state", "p.yaml", "--set", "nosuch=1"])
        .expect_code(2);
    // --full-refresh reads everything and says what an append sink will do.
    let r = f.run(&["run", "p.yaml", "--full-refresh"]).expect_code(0);
    assert!(
        r.stderr.contains("--full-refresh: sink `o` appends"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_second_run_that_read_the_same_rows_is_fenced_out() {
    let e = Env::new(20, PIPE);
    e.run(&["run", "p.yaml"], &[]).expect_code(0);
    add_sales(&e.shop, 10);
    let go = e.f.path().join("go");
    // Run A stages the new rows and waits before committing.
    let mut a = std::process::Command::new(env!("CARGO_BIN_EXE_etl"));
    a.args(["run", "p.yaml"])
        .current_dir(e.f.path())
        .env("SHOP_URL", &e.shop)
        .env("WH_URL", &e.wh)
        .env("ETL_FAULT", format!("staged:1:wait={}", go.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let a = a.spawn().unwrap();
    let t = std::time::Instant::now();
    while !std::fs::read_dir(e.f.path().join(".etl/pipelines/p"))
        .map(|d| d.count() > 0)
        .unwrap_or(false)
    {
        assert!(t.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Run B, from another machine's state folder (no shared lock), read the same rows: it
    // waits for A's commit record, then finds that A got there first.
    let other = tempfile::tempdir().unwrap();
    let mut b = std::process::Command::new(env!("CARGO_BIN_EXE_etl"));
    b.args(["run", "p.yaml"])
        .current_dir(e.f.path())
        .env("SHOP_URL", &e.shop)
        .env("WH_URL", &e.wh)
        .env("ETL_STATE_DIR", other.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let b = b.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&go, "").unwrap();
    let out = a.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = b.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("committed to it after this run started"),
        "{stderr}"
    );
    assert_eq!(e.loaded(), (30, 30));
}
