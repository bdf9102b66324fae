//! Object-store paths against a real S3-compatible server (moto) on 127.0.0.1.
//!
//! The server comes from PyPI (`moto[server]`): `$ETL_TEST_MOTO_SERVER` may point at a
//! `moto_server` binary; otherwise the harness installs one into a virtualenv under
//! `target/test-venv` the first time (as `.ci/run` does before the tests).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("ETL_TEST_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = repo().join("target/test-venv");
    let bin = venv.join("bin/moto_server");
    if !bin.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "moto[server]"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        assert!(
            ok,
            "could not install moto[server] into {} (python3 -m venv + pip)",
            venv.display()
        );
    }
    bin
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

#[test]
fn s3_sources_and_sinks_through_a_local_server() {
    let moto = start_moto();
    let port = moto.port;
    assert_eq!(http(port, "PUT", "/etl-test", b"").0, 200, "create bucket");
    http(
        port,
        "PUT",
        "/etl-test/in/a.csv",
        b"id,amount\n1,2.50\n2,4.00\n",
    );
    http(port, "PUT", "/etl-test/in/b.csv", b"id,amount\n3,1.25\n");
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let f = Fixture::new();
    f.file(
        "write.yaml",
        r#"
sources:
  sales: { type: csv, path: "s3://etl-test/in/*.csv", schema: { id: int, amount: "decimal(10,2)" } }
transforms:
  total:
    sql: SELECT count(*) AS n, sum(amount) AS total FROM sales
sinks:
  parts: { from: sales, type: parquet, path: "s3://etl-test/out/sales" }
  one: { from: total, type: csv, path: "s3://etl-test/out/total.csv" }
"#,
    );
    f.file(
        "read.yaml",
        r#"
sources:
  back: { type: parquet, path: "s3://etl-test/out/sales/" }
  total: { type: csv, path: "s3://etl-test/out/total.csv" }
transforms:
  both:
    sql: SELECT b.id, b.amount, t.n FROM back b CROSS JOIN total t
sinks:
  local: { from: both, type: csv, path: back.csv }
"#,
    );
    for _ in 0..2 {
        etl_env(f.path(), &["run", "write.yaml"], &env).expect_code(0);
    }
    etl_env(f.path(), &["run", "read.yaml"], &env).expect_code(0);
    let rows = read_csv(&f.path().join("back.csv"), &[]);
    assert_eq!(
        rows,
        vec![
            vec!["1", "2.50", "3"],
            vec!["2", "4.00", "3"],
            vec!["3", "1.25", "3"]
        ],
        "overwrite kept one copy"
    );
    let (_, listing) = http(port, "GET", "/etl-test?list-type=2&prefix=out/", b"");
    assert!(
        !listing.contains("etl-tmp"),
        "no staging objects left: {listing}"
    );
    assert!(listing.contains("out/total.csv"), "{listing}");

    // An object etl did not write in a target prefix is refused before anything is read.
    http(port, "PUT", "/etl-test/theirs/notes.txt", b"keep me");
    f.file(
        "foreign.yaml",
        "sources:\n  s: { type: inline, rows: [ { a: 1 } ] }\nsinks:\n  o: { from: s, type: parquet, path: \"s3://etl-test/theirs\" }\n",
    );
    let r = etl_env(f.path(), &["run", "foreign.yaml"], &env).expect_code(2);
    assert!(r.stderr.contains("theirs/notes.txt"), "{}", r.stderr);
    let (_, listing) = http(port, "GET", "/etl-test?list-type=2&prefix=theirs/", b"");
    assert!(
        listing.contains("theirs/notes.txt"),
        "left untouched: {listing}"
    );
    assert!(!listing.contains(".parquet"), "{listing}");

    // A run killed at any step of its commit is finished (or undone) by `etl state`.
    let mut k = 1;
    loop {
        let fault = format!("commit:{k}");
        let mut with_fault = env.to_vec();
        with_fault.push(("ETL_FAULT", fault.as_str()));
        let r = etl_env(f.path(), &["run", "write.yaml"], &with_fault);
        if r.code == 0 {
            assert!(k > 4, "only {k} commit steps were exercised");
            break;
        }
        assert_eq!(r.code, -1, "step {k}: {}", r.stderr);
        etl_env(f.path(), &["state", "write.yaml"], &env).expect_code(0);
        let (_, listing) = http(port, "GET", "/etl-test?list-type=2&prefix=out/", b"");
        assert!(!listing.contains("etl-tmp"), "step {k}: {listing}");
        etl_env(f.path(), &["run", "read.yaml"], &env).expect_code(0);
        assert_eq!(
            read_csv(&f.path().join("back.csv"), &[]).len(),
            3,
            "step {k}"
        );
        k += 1;
    }

    // Watermarks can live in the bucket, for CI runners that lose their disks.
    f.file("in/a.csv", "id\n1\n2\n");
    f.file(
        "inc.yaml",
        "state: { url: \"s3://etl-test/state\" }\nsources:\n  s: { type: csv, path: \"in/*.csv\", schema: { id: bigint }, incremental: { cursor: id } }\nsinks:\n  o: { from: s, type: csv, path: out/inc.csv }\n",
    );
    etl_env(f.path(), &["run", "inc.yaml"], &env).expect_code(0);
    let (_, listing) = http(port, "GET", "/etl-test?list-type=2&prefix=state/", b"");
    assert!(
        listing.contains("state/pipelines/inc/watermarks.json"),
        "{listing}"
    );
    f.file("in/b.csv", "id\n3\n");
    let other = tempfile::tempdir().unwrap();
    let mut elsewhere = env.to_vec();
    elsewhere.push(("ETL_STATE_DIR", other.path().to_str().unwrap()));
    etl_env(f.path(), &["run", "inc.yaml"], &elsewhere).expect_code(0);
    assert_eq!(
        read_csv(&f.path().join("out/inc.csv"), &["id"]),
        vec![vec!["3"]]
    );
}

#[test]
fn s3_after_commit_moves_exactly_the_objects_read() {
    let moto = start_moto();
    let port = moto.port;
    assert_eq!(http(port, "PUT", "/drops", b"").0, 200, "create bucket");
    http(port, "PUT", "/drops/raw/a.csv", b"id\n1\n2\n");
    http(port, "PUT", "/drops/raw/b.csv", b"id\n3\n");
    // Below a subfolder: not read (a folder reads the objects directly in it), not moved.
    http(port, "PUT", "/drops/raw/2024/old.csv", b"id\n99\n");
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let f = Fixture::new();
    f.file(
        "p.yaml",
        r#"
sources:
  drops:
    type: csv
    path: "s3://drops/raw/"
    schema: { id: int }
    after_commit: { move_to: "archived/{{ ds }}" }
sinks:
  all: { from: drops, type: csv, path: all.csv }
"#,
    );
    let r = etl_env(f.path(), &["run", "p.yaml", "--date", "2024-06-01"], &env).expect_code(0);
    assert!(
        r.stdout.contains("after commit: moved 2 files"),
        "{}",
        r.stdout
    );
    assert_eq!(read_csv(&f.path().join("all.csv"), &["id"]).len(), 3);
    let (_, listing) = http(port, "GET", "/drops?list-type=2", b"");
    assert!(listing.contains("<Key>raw/2024/old.csv"), "{listing}");
    assert!(!listing.contains("<Key>raw/a.csv"), "{listing}");
    assert!(!listing.contains("<Key>raw/b.csv"), "{listing}");
    for key in ["archived/2024-06-01/a.csv", "archived/2024-06-01/b.csv"] {
        assert!(listing.contains(key), "{key}: {listing}");
    }
    // Nothing new: an empty read, nothing moved, the run succeeds.
    etl_env(f.path(), &["run", "p.yaml", "--date", "2024-06-02"], &env).expect_code(0);
}
