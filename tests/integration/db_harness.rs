//! The database test servers themselves: fresh databases are isolated, SQL round-trips
//! through the client helpers, passwords are checked, TLS is enforced, a private server stops
//! and starts, and no server outlives the test binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::*;

fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn postgres_fresh_databases_sql_and_passwords() {
    let pg = pg();
    let a = pg.fresh_db("harness a");
    let b = pg.fresh_db("harness b");
    assert_ne!(a, b);
    PgServer::exec(
        &a,
        "CREATE TABLE t (id int PRIMARY KEY, name text);\n\
         INSERT INTO t VALUES (1, 'x'), (2, NULL), (3, 'a b');",
    );
    let got = PgServer::sql(&a, "SELECT id, name FROM t ORDER BY id");
    assert_eq!(got, rows(&[&["1", "x"], &["2", "NULL"], &["3", "a b"]]));
    let err = PgServer::try_sql(&b, "SELECT * FROM t").unwrap_err();
    assert!(err.contains("relation \"t\" does not exist"), "{err}");

    let who = "SELECT current_database(), current_user, rolsuper FROM pg_roles \
               WHERE rolname = current_user";
    let me = PgServer::sql(&pg.url(), who);
    assert!(
        pg.url().contains(&format!(":{}/", pg.port())),
        "{}",
        pg.url()
    );
    if !pg.is_external() {
        assert_eq!(me, rows(&[&["etl", "etl", "f"]]));
    }

    if pg.password().is_empty() {
        assert!(
            pg.is_external(),
            "the local server's test login has a password"
        );
        return;
    }
    let wrong = a.replace(&pg.password(), "not-the-password");
    assert_ne!(wrong, a, "the URL carries the password");
    let err = PgServer::try_sql(&wrong, "SELECT 1").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains(&pg.password()), "{err}");
}

#[test]
fn postgres_two_phase_commit_is_enabled() {
    let pg = pg();
    let url = pg.fresh_db("2pc");
    let max = PgServer::sql(&url, "SHOW max_prepared_transactions");
    if !pg.is_external() {
        assert_eq!(max, rows(&[&["10"]]));
    }
    PgServer::exec(
        &url,
        "CREATE TABLE t (v int);\nBEGIN;\nINSERT INTO t VALUES (7);\n\
         PREPARE TRANSACTION 'etl:harness';",
    );
    assert_eq!(
        PgServer::sql(&url, "SELECT count(*) FROM t"),
        rows(&[&["0"]])
    );
    PgServer::exec(&url, "COMMIT PREPARED 'etl:harness'");
    assert_eq!(PgServer::sql(&url, "SELECT v FROM t"), rows(&[&["7"]]));
}

#[test]
fn postgres_tls_server_requires_tls_and_verifies_its_certificate() {
    let pg = pg_tls();
    let url = pg.fresh_db("tls");
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(PgServer::sql(&url, ssl), rows(&[&["t"]]));
    let Some(ca) = pg.ca_cert() else {
        assert!(pg.is_external(), "a local TLS server has a CA certificate");
        return;
    };
    let verify = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let verified = url.replace("sslmode=require", &verify);
    assert_eq!(PgServer::sql(&verified, ssl), rows(&[&["t"]]));
    let plain = url.replace("sslmode=require", "sslmode=disable");
    let err = PgServer::try_sql(&plain, "SELECT 1").unwrap_err();
    assert!(err.contains("no encryption"), "{err}");
}

#[test]
fn private_postgres_stops_and_starts_and_goes_away_on_drop() {
    let mut pg = start_private_pg();
    let url = pg.fresh_db("private");
    PgServer::exec(&url, "CREATE TABLE t (v int); INSERT INTO t VALUES (1);");
    pg.stop();
    let err = PgServer::try_sql(&url, "SELECT 1").unwrap_err();
    assert!(err.contains("Connection refused"), "{err}");
    pg.start();
    assert_eq!(PgServer::sql(&url, "SELECT v FROM t"), rows(&[&["1"]]));
    let (pid, dir) = (pg.server_pid().unwrap(), pg.dir().unwrap().to_path_buf());
    drop(pg);
    assert!(!alive(pid), "postgres {pid} still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn dead_urls_refuse_connections() {
    let err = PgServer::try_sql(&dead_pg_url(), "SELECT 1").unwrap_err();
    assert!(err.contains("Connection refused"), "{err}");
    let err = MySqlServer::try_sql(&dead_mysql_url(), "SELECT 1").unwrap_err();
    assert!(err.contains("Can't connect"), "{err}");
}

#[test]
fn mysql_fresh_databases_sql_and_passwords() {
    let my = mysql();
    let a = my.fresh_db("harness a");
    let b = my.fresh_db("harness b");
    assert!(a.contains("prefer_socket=false"), "{a}");
    MySqlServer::exec(
        &a,
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10), price DECIMAL(10,2));\n\
         INSERT INTO t VALUES (1, 'x', 1.5), (2, NULL, NULL), (3, 'ä b', 2);",
    );
    let got = MySqlServer::sql(&a, "SELECT id, name, price FROM t ORDER BY id");
    let want = rows(&[
        &["1", "x", "1.50"],
        &["2", "NULL", "NULL"],
        &["3", "ä b", "2.00"],
    ]);
    assert_eq!(got, want);
    let err = MySqlServer::try_sql(&b, "SELECT * FROM t").unwrap_err();
    assert!(err.contains("doesn't exist"), "{err}");

    if my.password().is_empty() {
        assert!(
            my.is_external(),
            "the local server's test login has a password"
        );
        return;
    }
    let wrong = a.replace(&my.password(), "not-the-password");
    assert_ne!(wrong, a, "the URL carries the password");
    let err = MySqlServer::try_sql(&wrong, "SELECT 1").unwrap_err();
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains(&my.password()), "{err}");
}

/// True while `pid` runs (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    !stat.is_empty() && !state.starts_with('Z')
}

/// Databases of `url`'s name that exist, seen through the shared server's admin login.
fn exists_pg(db: &str) -> bool {
    let q = format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'");
    PgServer::sql(&pg().admin_url(), &q) != rows(&[&["0"]])
}

fn exists_mysql(db: &str) -> bool {
    let q = format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{db}'");
    MySqlServer::sql(&mysql().admin_url(), &q) != rows(&[&["0"]])
}

/// Runs this test again as a child that starts both servers, then ends it (`kill` or a
/// normal exit) and waits until the servers and their dirs are gone.
fn child_servers_go_away(kill: bool) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("ETL_HARNESS_CHILD", if kill { "hang" } else { "exit" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the test binary");
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut started = Vec::new();
    while started.len() < 2 {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        // libtest prints `test <name> ... ` first, on the same line.
        if let Some(at) = line.find("server ") {
            let rest = &line[at + "server ".len()..];
            let f: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            started.push(f);
        }
    }
    if kill {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    let gone = |f: &Vec<String>| match (f[0].as_str(), f[1].parse::<u32>()) {
        ("pg", Ok(0)) => !exists_pg(&f[2]),
        ("mysql", Ok(0)) => !exists_mysql(&f[2]),
        (_, Ok(pid)) => !alive(pid) && !std::path::Path::new(&f[2]).exists(),
        _ => panic!("bad line {f:?}"),
    };
    let start = Instant::now();
    while !started.iter().all(gone) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still there after the test binary ended: {started:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the child when the test fails before it ends the child itself.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD_TEST: &str = "db_harness::servers_stop_when_the_test_binary_ends";

#[test]
fn servers_stop_when_the_test_binary_ends() {
    if let Ok(mode) = std::env::var("ETL_HARNESS_CHILD") {
        let db = |url: String| {
            url.rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string()
        };
        let (p, m) = (pg(), mysql());
        let where_ = |dir: Option<&std::path::Path>, url| {
            dir.map_or_else(|| db(url), |d| d.display().to_string())
        };
        let pid = p.server_pid().unwrap_or(0);
        println!("server pg {pid} {}", where_(p.dir(), p.url()));
        let pid = m.server_pid().unwrap_or(0);
        println!("server mysql {pid} {}", where_(m.dir(), m.url()));
        if mode == "hang" {
            std::thread::sleep(Duration::from_secs(300));
        }
        return;
    }
    child_servers_go_away(true);
    child_servers_go_away(false);
}
