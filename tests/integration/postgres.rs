//! PostgreSQL sources and sinks against a real server (started by the harness).

use crate::servers::*;
use crate::util::*;

fn pipeline_with(url: &str, body: &str) -> Fixture {
    let f = Fixture::new();
    f.file(
        "p.yaml",
        &format!(
            "connections:\n  wh: {{ type: postgres, url: \"{{{{ env('WH_URL') }}}}\" }}\n{body}"
        ),
    );
    let _ = url;
    f
}

fn run_with(f: &Fixture, url: &str, args: &[&str]) -> Run {
    etl_env(f.path(), args, &[("WH_URL", url)])
}

const TYPES_DDL: &str = "CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE t (
  id int PRIMARY KEY, s smallint, b bigint, n numeric(12,3), big numeric(50,10), r real, d double precision,
  tx text, vc varchar(10), ch char(3), ok boolean, dt date, tm time, ts timestamp, tz timestamptz,
  iv interval, u uuid, j json, jb jsonb, by bytea, ai int[], at text[], m mood);
INSERT INTO t VALUES
 (1, -2, 9223372036854775807, -12345.678, 12345678901234567890123456789.0123456789, 1.5, -2.25,
  'héllo', 'ab', 'x', true, '1969-07-20', '01:02:03.000004', '1900-01-01 00:00:00.000001',
  '2024-03-01 10:00:00+02', '1 year 2 mons 3 days 04:05:06.000007',
  '00112233-4455-6677-8899-aabbccddeeff', '{\"a\": 1}', '{\"b\": [1, 2]}', '\\x00ff', '{1,NULL,3}', '{a,\"b c\"}', 'happy'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}', NULL, NULL);";

#[test]
fn every_mapped_type_round_trips_through_a_postgres_source() {
    let url = pg().fresh_db("types");
    PgServer::exec(&url, TYPES_DDL);
    let f = pipeline_with(
        &url,
        "sources:\n  t: { type: postgres, connection: wh, table: public.t }\ntransforms:\n  shown:\n    sql: |\n      SELECT id, s, b, CAST(n AS VARCHAR) AS n, CAST(big AS VARCHAR) AS big, r, d, tx, vc, ch, ok,\n             CAST(dt AS VARCHAR) AS dt, CAST(tm AS VARCHAR) AS tm, CAST(ts AS VARCHAR) AS ts, CAST(tz AS VARCHAR) AS tz,\n             CAST(iv AS VARCHAR) AS iv, encode(u, 'hex') AS u, j, jb, encode(by, 'hex') AS by,\n             array_to_string(ai, '|', 'NULL') AS ai, array_to_string(at, '|') AS at, m\n      FROM t\nsinks:\n  out: { from: shown, type: csv, path: out/t.csv }\n",
    );
    run_with(&f, &url, &["run", "p.yaml"]).expect_code(0);
    let rows = read_csv(&f.path().join("out/t.csv"), &[]);
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    let expect = [
        "1",
        "-2",
        "9223372036854775807",
        "-12345.678",
        "12345678901234567890123456789.0123456789",
        "1.5",
        "-2.25",
        "héllo",
        "ab",
        "x  ",
        "true",
        "1969-07-20",
        "01:02:03.000004",
        "1900-01-01T00:00:00.000001",
        "2024-03-01T08:00:00.000000Z",
        "",
        "00112233445566778899aabbccddeeff",
        "{\"a\": 1}",
        "{\"b\": [1, 2]}",
        "00ff",
        "1|NULL|3",
        "a|b c",
        "happy",
    ];
    for (i, (got, want)) in r.iter().zip(expect.iter()).enumerate() {
        if i == 15 {
            assert!(
                got.contains("14 mons") || got.contains("1 years 2 mons"),
                "interval: {got}"
            );
            continue;
        }
        if i == 14 {
            assert!(
                got.starts_with("2024-03-01T08:00:00"),
                "timestamptz in UTC: {got}"
            );
            continue;
        }
        assert_eq!(got, want, "column {i} of {r:?}");
    }
    assert_eq!(rows[1][0], "2");
    assert!(rows[1][1..20].iter().all(String::is_empty), "{:?}", rows[1]);
}

#[test]
fn projection_filters_and_limit_reach_the_sql_sent() {
    let url = pg().fresh_db("pushdown");
    PgServer::exec(
        &url,
        "CREATE TABLE sales (id int, country text, amount numeric(10,2), note text); \
         INSERT INTO sales SELECT g, CASE WHEN g % 2 = 0 THEN 'DE' ELSE 'FR' END, g * 1.5, 'n' || g FROM generate_series(1, 100) g;",
    );
    let f = pipeline_with(
        &url,
        "sources:\n  sales: { type: postgres, connection: wh, table: sales }\ntransforms:\n  de:\n    sql: SELECT id, amount FROM sales WHERE country = 'DE' AND id > 10 AND id <= 20\nsinks:\n  out: { from: de, type: csv, path: out/de.csv }\n",
    );
    let r = run_with(&f, &url, &["explain", "p.yaml"]).expect_code(0);
    assert!(
        r.stdout.contains("PostgresScan: connection=wh, partitions=1, sql=SELECT \"id\", \"amount\" FROM \"public\".\"sales\" WHERE"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\"country\" = 'DE'") && r.stdout.contains("\"id\" > 10"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("note"),
        "only needed columns: {}",
        r.stdout
    );
    assert!(!r.stdout.contains(PASSWORD), "{}", r.stdout);
    run_with(&f, &url, &["run", "p.yaml"]).expect_code(0);
    let rows = read_csv(&f.path().join("out/de.csv"), &["id"]);
    let ids: Vec<i32> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, vec![12, 14, 16, 18, 20]);
    // A limit with exact filters goes to the server too.
    f.file(
        "q.yaml",
        &std::fs::read_to_string(f.path().join("p.yaml")).unwrap(),
    );
    let r = run_with(&f, &url, &["preview", "p.yaml", "sales", "--limit", "3"]).expect_code(0);
    assert!(r.stdout.contains("3 rows shown"), "{}", r.stdout);
}

const ITEMS: &str = "vars:\n  gen: a\nsources:\n  items:\n    type: inline\n    rows:\n      - { id: 1, name: one, price: 1.50 }\n      - { id: 2, name: two, price: 2.00 }\n      - { id: 3, name: three, price: 3.25 }\n    schema: { id: bigint, name: string, price: \"decimal(10,2)\" }\ntransforms:\n  tagged:\n    sql: \"SELECT id, name, price, '{{ gen }}' AS gen FROM items\"\n";

fn table(url: &str, sql: &str) -> Vec<Vec<String>> {
    PgServer::sql(url, sql)
}

#[test]
fn sink_modes_create_append_overwrite_and_upsert() {
    let url = pg().fresh_db("modes");
    let f = pipeline_with(
        &url,
        &format!(
            "{ITEMS}sinks:\n  out: {{ from: tagged, type: postgres, connection: wh, table: mart.items, mode: append }}\n"
        ),
    );
    run_with(&f, &url, &["run", "p.yaml"]).expect_code(0);
    run_with(&f, &url, &["run", "p.yaml", "--var", "gen=b"]).expect_code(0);
    assert_eq!(
        table(&url, "SELECT count(*), count(DISTINCT gen) FROM mart.items"),
        vec![vec!["6", "2"]]
    );
    let cols = table(
        &url,
        "SELECT column_name || ':' || data_type FROM information_schema.columns WHERE table_schema = 'mart' AND table_name = 'items' ORDER BY ordinal_position",
    );
    assert_eq!(
        cols.concat(),
        vec!["id:bigint", "name:text", "price:numeric", "gen:text"]
    );
    // overwrite: the table's rows are replaced; views and grants on it are untouched.
    PgServer::exec(&url, "CREATE VIEW mart.v AS SELECT id, gen FROM mart.items");
    f.file(
        "p.yaml",
        &std::fs::read_to_string(f.path().join("p.yaml"))
            .unwrap()
            .replace("mode: append", "mode: overwrite"),
    );
    run_with(&f, &url, &["run", "p.yaml", "--var", "gen=c"]).expect_code(0);
    assert_eq!(
        table(&url, "SELECT count(*), min(gen), max(gen) FROM mart.v"),
        vec![vec!["3", "c", "c"]]
    );
    // upsert on a key: a new table gets it as its primary key.
    let up = format!(
        "{ITEMS}sinks:\n  up: {{ from: tagged, type: postgres, connection: wh, table: mart.items_up, mode: upsert, key: [id], create_indexes: [[name]] }}\n"
    );
    let g = pipeline_with(&url, &up);
    run_with(&g, &url, &["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        table(
            &url,
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'items_up'"
        ),
        vec![vec!["2"]]
    );
    let before = table(&url, "SELECT id, xmin::text FROM mart.items_up ORDER BY id");
    run_with(&g, &url, &["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        table(&url, "SELECT id, xmin::text FROM mart.items_up ORDER BY id"),
        before,
        "a rerun changes nothing"
    );
    run_with(&g, &url, &["run", "p.yaml", "--var", "gen=z"]).expect_code(0);
    assert_eq!(
        table(&url, "SELECT count(*), min(gen) FROM mart.items_up"),
        vec![vec!["3", "z"]]
    );
}

#[test]
fn schema_drift_is_explicit_and_bad_outputs_change_nothing() {
    let url = pg().fresh_db("drift");
    PgServer::exec(
        &url,
        "CREATE SCHEMA mart; CREATE TABLE mart.items (id bigint PRIMARY KEY, name text);",
    );
    let f = pipeline_with(
        &url,
        &format!(
            "{ITEMS}sinks:\n  out: {{ from: tagged, type: postgres, connection: wh, table: mart.items, mode: append }}\n"
        ),
    );
    let r = run_with(&f, &url, &["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr
            .contains("does not: `price`, `gen` (on_schema_change: fail)"),
        "{}",
        r.stderr
    );
    assert_eq!(
        table(&url, "SELECT count(*) FROM mart.items"),
        vec![vec!["0"]]
    );
    f.file(
        "p.yaml",
        &std::fs::read_to_string(f.path().join("p.yaml"))
            .unwrap()
            .replace(
                "mode: append",
                "mode: append, on_schema_change: add_columns",
            ),
    );
    run_with(&f, &url, &["run", "p.yaml"]).expect_code(0);
    assert_eq!(
        table(&url, "SELECT count(*), sum(price) FROM mart.items"),
        vec![vec!["3", "6.75"]]
    );
    // Duplicate keys in one upsert batch are an error; nothing changes.
    let dup = "sources:\n  d: { type: inline, rows: [ { id: 1, name: a }, { id: 1, name: b } ] }\nsinks:\n  up: { from: d, type: postgres, connection: wh, table: mart.items, mode: upsert, key: [id] }\n";
    let g = pipeline_with(&url, dup);
    let r = run_with(&g, &url, &["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("rows with the same key (id)"),
        "{}",
        r.stderr
    );
    assert_eq!(
        table(&url, "SELECT name FROM mart.items WHERE id = 1"),
        vec![vec!["one"]]
    );
    // A key that is not in the output.
    let nokey = "sources:\n  d: { type: inline, rows: [ { id: 1, name: a } ] }\nsinks:\n  up: { from: d, type: postgres, connection: wh, table: mart.other, mode: upsert, key: [code] }\n";
    let g = pipeline_with(&url, nokey);
    let r = run_with(&g, &url, &["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("key column `code` is not in the output"),
        "{}",
        r.stderr
    );
}

#[test]
fn overwrite_refuses_a_table_etl_did_not_load() {
    let url = pg().fresh_db("foreign");
    PgServer::exec(
        &url,
        "CREATE TABLE keep (id bigint, name text, price numeric(10,2), gen text); INSERT INTO keep VALUES (9, 'mine', 1, 'x');",
    );
    let f = pipeline_with(
        &url,
        &format!(
            "{ITEMS}sinks:\n  out: {{ from: tagged, type: postgres, connection: wh, table: keep }}\n"
        ),
    );
    let r = run_with(&f, &url, &["run", "p.yaml"]).expect_code(2);
    assert!(
        r.stderr.contains("rows that no run of this sink loaded"),
        "{}",
        r.stderr
    );
    assert_eq!(table(&url, "SELECT id FROM keep"), vec![vec!["9"]]);
    f.file(
        "p.yaml",
        &std::fs::read_to_string(f.path().join("p.yaml"))
            .unwrap()
            .replace("table: keep }", "table: keep, replace_existing: true }"),
    );
    run_with(&f, &url, &["run", "p.yaml"]).expect_code(0);
    assert_eq!(table(&url, "SELECT count(*) FROM keep"), vec![vec!["3"]]);
}

#[test]
fn a_server_that_is_down_or_a_wrong_password_fails_clearly_without_the_password() {
    let f = pipeline_with(
        "",
        &format!(
            "{ITEMS}sinks:\n  out: {{ from: tagged, type: postgres, connection: wh, table: t }}\n"
        ),
    );
    let dead = dead_pg_url();
    let r = run_with(&f, &dead, &["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("connection `wh` to 127.0.0.1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("tried 4 times"), "{}", r.stderr);
    let url = pg().fresh_db("pw");
    let wrong = url.replace(PASSWORD, "not-the-Pw-9");
    let r = run_with(&f, &wrong, &["run", "p.yaml"]).expect_code(1);
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("not-the-Pw-9") && !r.stdout.contains("not-the-Pw-9"),
        "{}",
        r.stderr
    );
    let r = run_with(&f, &url, &["run", "p.yaml", "--log-format", "json"]).expect_code(0);
    assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD));
    for file in files_below(&f.path().join(".etl")) {
        let text = std::fs::read_to_string(f.path().join(".etl").join(&file)).unwrap_or_default();
        assert!(!text.contains(PASSWORD), "{file}");
    }
}

#[test]
fn a_missing_table_a_bad_query_and_an_unmapped_type_are_clear_errors() {
    let url = pg().fresh_db("bad");
    PgServer::exec(&url, "CREATE TABLE pts (id int, p point);");
    let cases = [
        (
            "sources:\n  s: { type: postgres, connection: wh, table: nope }\n",
            "relation \"public.nope\" does not exist",
        ),
        (
            "sources:\n  s: { type: postgres, connection: wh, query: \"SELEC 1\" }\n",
            "syntax error at or near",
        ),
        (
            "sources:\n  s: { type: postgres, connection: wh, table: pts }\n",
            "column `p` has type `point`, which etl cannot read",
        ),
    ];
    for (body, expected) in cases {
        let f = pipeline_with(
            &url,
            &format!("{body}sinks:\n  o: {{ from: s, type: csv, path: out/o.csv }}\n"),
        );
        let r = run_with(&f, &url, &["run", "p.yaml"]).expect_code(1);
        assert!(r.stderr.contains(expected), "{body}: {}", r.stderr);
        assert!(r.stderr.contains("source `s`"), "{}", r.stderr);
    }
}

#[test]
fn a_big_table_is_read_in_parallel_under_one_snapshot() {
    let url = pg().fresh_db("big");
    PgServer::exec(
        &url,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 250000) g;",
    );
    let f = pipeline_with(
        &url,
        "sources:\n  big: { type: postgres, connection: wh, table: big }\ntransforms:\n  total:\n    sql: SELECT count(*) AS n, sum(id) AS s, count(DISTINCT id) AS d FROM big\nsinks:\n  out: { from: total, type: csv, path: out/t.csv }\n",
    );
    let r = run_with(&f, &url, &["explain", "p.yaml", "--threads", "2"]);
    let r = if r.code == 2 {
        run_with(&f, &url, &["explain", "p.yaml"]).expect_code(0)
    } else {
        r.expect_code(0)
    };
    assert!(r.stdout.contains("partitions=2"), "{}", r.stdout);
    assert!(
        r.stdout.contains("ctid >= '(0,0)'::tid AND ctid <"),
        "{}",
        r.stdout
    );
    run_with(&f, &url, &["run", "p.yaml", "--threads", "2"]).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/t.csv"), &[]),
        vec![vec!["250000", "31250125000", "250000"]]
    );
}
