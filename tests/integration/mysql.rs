//! MySQL / MariaDB sources against a real server (started by the harness), and commits that
//! span databases and files.

use crate::servers::*;
use crate::util::*;

fn run(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Run {
    etl_env(f.path(), args, env)
}

#[test]
fn every_mapped_mysql_type_round_trips() {
    let url = mysql().fresh_db("types");
    MySqlServer::exec(
        &url,
        "CREATE TABLE t (id INT PRIMARY KEY, tiny TINYINT, utiny TINYINT UNSIGNED, ubig BIGINT UNSIGNED, \
         d DECIMAL(10,2), wide DECIMAL(40,10), f FLOAT, db DOUBLE, s VARCHAR(20), c CHAR(3), txt TEXT, \
         bin VARBINARY(4), dt DATE, dtm DATETIME(6), tsm TIMESTAMP(3) NULL, tm TIME, yr YEAR, \
         e ENUM('red','green'), st SET('x','y','z'), b1 BIT(1), b10 BIT(10), j JSON); \
         INSERT INTO t VALUES (1, -128, 255, 18446744073709551615, -12345678.91, 123456789012345678901234567890.0123456789, \
           1.5, -2.25, 'héllo', 'ab', 'long text', X'00FF', '1969-07-20', '1900-01-01 00:00:00.000001', \
           '2024-03-01 10:00:00.123', '12:34:56', 2024, 'green', 'x,z', b'1', b'1000000001', '{\"a\": [1, 2]}'), \
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let f = Fixture::new();
    f.file(
        "p.yaml",
        "connections:\n  shop: { type: mysql, url: \"{{ env('SHOP_URL') }}\" }\nsources:\n  t: { type: mysql, connection: shop, table: t }\ntransforms:\n  shown:\n    sql: |\n      SELECT id, tiny, utiny, CAST(ubig AS VARCHAR) AS ubig, CAST(d AS VARCHAR) AS d, CAST(wide AS VARCHAR) AS wide,\n             f, db, s, c, txt, encode(bin, 'hex') AS bin, CAST(dt AS VARCHAR) AS dt, CAST(dtm AS VARCHAR) AS dtm,\n             CAST(tsm AS VARCHAR) AS tsm, CAST(tm AS VARCHAR) AS tm, yr, e, st, b1, b10, j,\n             arrow_typeof(ubig) AS ubig_type, arrow_typeof(d) AS d_type\n      FROM t\nsinks:\n  out: { from: shown, type: csv, path: out/t.csv }\n",
    );
    run(&f, &["run", "p.yaml"], &[("SHOP_URL", &url)]).expect_code(0);
    let rows = read_csv(&f.path().join("out/t.csv"), &[]);
    let expect = [
        "1",
        "-128",
        "255",
        "18446744073709551615",
        "-12345678.91",
        "123456789012345678901234567890.0123456789",
        "1.5",
        "-2.25",
        "héllo",
        "ab",
        "long text",
        "00ff",
        "1969-07-20",
        "1900-01-01T00:00:00.000001",
        "2024-03-01T10:00:00.123Z",
        "12:34:56",
        "2024",
        "green",
        "x,z",
        "true",
        "513",
        "{\"a\": [1, 2]}",
        "UInt64",
        "Decimal128(10, 2)",
    ];
    for (i, (got, want)) in rows[0].iter().zip(expect.iter()).enumerate() {
        if i == 14 {
            assert!(
                got.starts_with("2024-03-01T10:00:00.123"),
                "timestamp in UTC: {got}"
            );
            continue;
        }
        assert_eq!(got, want, "column {i} of {:?}", rows[0]);
    }
    assert!(rows[1][1..22].iter().all(String::is_empty), "{:?}", rows[1]);
}

#[test]
fn zero_dates_are_an_error_or_null_as_the_source_says() {
    let url = mysql().fresh_db("zero");
    MySqlServer::exec(
        &url,
        "SET SESSION sql_mode = ''; CREATE TABLE z (id INT, d DATE, t DATETIME); \
         INSERT INTO z VALUES (1, '2024-01-02', '2024-01-02 03:04:05'), (2, '0000-00-00', '2024-05-00 10:00:00');",
    );
    let f = Fixture::new();
    let body = |opt: &str| {
        format!(
            "connections:\n  shop: {{ type: mysql, url: \"{{{{ env('SHOP_URL') }}}}\" }}\nsources:\n  z: {{ type: mysql, connection: shop, table: z{opt} }}\nsinks:\n  out: {{ from: z, type: csv, path: out/z.csv }}\n"
        )
    };
    f.file("p.yaml", &body(""));
    let r = run(&f, &["run", "p.yaml"], &[("SHOP_URL", &url)]).expect_code(1);
    assert!(
        r.stderr.contains("column `d`: a zero or partial date"),
        "{}",
        r.stderr
    );
    assert!(!f.path().join("out/z.csv").exists());
    f.file("p.yaml", &body(", zero_dates: \"null\""));
    run(&f, &["run", "p.yaml"], &[("SHOP_URL", &url)]).expect_code(0);
    let rows = read_csv(&f.path().join("out/z.csv"), &[]);
    assert_eq!(rows[1], vec!["2", "", ""]);
}

#[test]
fn mysql_pushdown_and_a_down_server() {
    let url = mysql().fresh_db("push");
    MySqlServer::exec(
        &url,
        "CREATE TABLE s (id INT, name VARCHAR(10)); INSERT INTO s VALUES (1, 'Apple'), (2, 'apple'), (3, 'banana'), (4, 'a\\\\b');",
    );
    let f = Fixture::new();
    f.file(
        "p.yaml",
        "connections:\n  shop: { type: mysql, url: \"{{ env('SHOP_URL') }}\" }\nsources:\n  s: { type: mysql, connection: shop, table: s }\ntransforms:\n  t:\n    sql: \"SELECT id FROM s WHERE name = 'apple' OR name > 'b' OR name = 'a\\\\b'\"\nsinks:\n  out: { from: t, type: csv, path: out/t.csv }\n",
    );
    let r = run(&f, &["explain", "p.yaml"], &[("SHOP_URL", &url)]).expect_code(0);
    assert!(
        r.stdout.contains("MySqlScan: connection=shop"),
        "{}",
        r.stdout
    );
    run(&f, &["run", "p.yaml"], &[("SHOP_URL", &url)]).expect_code(0);
    // Case-insensitive collation on the server, byte order in DataFusion: 'Apple' is not 'apple'.
    let mut ids: Vec<String> = read_csv(&f.path().join("out/t.csv"), &["id"])
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["2", "3", "4"]);
    let r = run(&f, &["run", "p.yaml"], &[("SHOP_URL", &dead_mysql_url())]).expect_code(1);
    assert!(
        r.stderr.contains("connection `shop` to 127.0.0.1"),
        "{}",
        r.stderr
    );
}

#[test]
fn sinks_on_two_databases_and_a_file_commit_together_after_any_crash() {
    let (a, b) = (pg().fresh_db("two_a"), pg().fresh_db("two_b"));
    let f = Fixture::new();
    f.file(
        "p.yaml",
        "vars:\n  gen: old\nconnections:\n  a: { type: postgres, url: \"{{ env('A_URL') }}\" }\n  b: { type: postgres, url: \"{{ env('B_URL') }}\" }\nsources:\n  s: { type: inline, rows: [ { id: 1 }, { id: 2 } ] }\ntransforms:\n  t:\n    sql: \"SELECT id, '{{ gen }}' AS gen FROM s\"\nsinks:\n  ta: { from: t, type: postgres, connection: a, table: t }\n  tb: { from: t, type: postgres, connection: b, table: t }\n  tf: { from: t, type: csv, path: out/t.csv }\n",
    );
    let env = [("A_URL", a.as_str()), ("B_URL", b.as_str())];
    let gens = || -> Vec<String> {
        vec![
            PgServer::sql(&a, "SELECT min(gen) || max(gen) FROM t")[0][0].clone(),
            PgServer::sql(&b, "SELECT min(gen) || max(gen) FROM t")[0][0].clone(),
            read_csv(&f.path().join("out/t.csv"), &["gen"])
                .concat()
                .join(""),
        ]
    };
    run(&f, &["run", "p.yaml"], &env).expect_code(0);
    assert_eq!(gens(), vec!["oldold", "oldold", "oldold"]);
    let mut k = 1;
    loop {
        let fault = format!("commit:{k}");
        let mut with_fault = env.to_vec();
        with_fault.push(("ETL_FAULT", &fault));
        let r = run(&f, &["run", "p.yaml", "--var", "gen=new"], &with_fault);
        if r.code == 0 {
            assert!(k > 5, "only {k} steps");
            break;
        }
        assert_eq!(r.code, -1, "step {k}: {}", r.stderr);
        run(&f, &["state", "p.yaml"], &env).expect_code(0);
        let g = gens();
        assert!(
            g == vec!["oldold"; 3] || g == vec!["newnew"; 3],
            "step {k}: sinks disagree: {g:?}"
        );
        assert!(PgServer::sql(&a, "SELECT count(*) FROM pg_prepared_xacts")[0][0] == "0");
        assert!(PgServer::sql(&b, "SELECT count(*) FROM pg_prepared_xacts")[0][0] == "0");
        run(&f, &["run", "p.yaml"], &env).expect_code(0);
        k += 1;
    }
}

#[test]
fn sslmode_is_honoured() {
    let tls = pg_tls();
    let url = tls.fresh_db("tls");
    let f = Fixture::new();
    f.file(
        "p.yaml",
        "connections:\n  wh: { type: postgres, url: \"{{ env('WH_URL') }}\" }\nsources:\n  s: { type: inline, rows: [ { id: 1 } ] }\nsinks:\n  out: { from: s, type: postgres, connection: wh, table: t }\n",
    );
    run(&f, &["run", "p.yaml"], &[("WH_URL", &url)]).expect_code(0);
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let r = run(&f, &["run", "p.yaml"], &[("WH_URL", &plain)]).expect_code(1);
    assert!(r.stderr.contains("connection `wh`"), "{}", r.stderr);
    if let Some(ca) = tls.ca_cert() {
        let verified = format!(
            "{}&sslrootcert={}",
            url.replace("sslmode=require", "sslmode=verify-full"),
            ca.display()
        );
        run(&f, &["run", "p.yaml"], &[("WH_URL", &verified)]).expect_code(0);
    }
}

#[test]
fn watermarks_can_live_in_postgres_with_an_advisory_lock() {
    let state = pg().fresh_db("state");
    let f = Fixture::new();
    f.file("in/a.csv", "id\n1\n2\n");
    f.file(
        "p.yaml",
        "state: { url: \"{{ env('STATE_URL') }}\" }\nsources:\n  s: { type: csv, path: \"in/*.csv\", schema: { id: bigint }, incremental: { cursor: id } }\nsinks:\n  o: { from: s, type: csv, path: out/o.csv }\n",
    );
    let env = [("STATE_URL", state.as_str())];
    run(&f, &["run", "p.yaml"], &env).expect_code(0);
    assert_eq!(
        PgServer::sql(
            &state,
            "SELECT source, sink, mark->>'value' FROM etl_state.watermarks"
        ),
        vec![vec!["s", "o", "2"]]
    );
    f.file("in/b.csv", "id\n3\n");
    // Another machine (its own local folder) sees the same watermark.
    let other = tempfile::tempdir().unwrap();
    run(
        &f,
        &["run", "p.yaml"],
        &[env[0], ("ETL_STATE_DIR", other.path().to_str().unwrap())],
    )
    .expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/o.csv"), &["id"]),
        vec![vec!["3"]]
    );
}
