//! Helpers: run the binary, write fixture files, read outputs back.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with everything printed when the exit code is not `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `etl` with `args` in `cwd`.
pub fn etl(cwd: &Path, args: &[&str]) -> Run {
    etl_env(cwd, args, &[])
}

/// Runs `etl` with extra environment variables.
pub fn etl_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etl"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("ETL_LOG_FORMAT")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run etl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temp folder with files written into it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn run(&self, args: &[&str]) -> Run {
        etl(self.path(), args)
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads Parquet (a file or a folder, with Hive partition columns) as sorted text rows.
pub fn read_parquet(path: &Path, partitions: &[&str], columns: &[&str]) -> Vec<Vec<String>> {
    runtime().block_on(async {
        let ctx = SessionContext::new();
        let cols: Vec<(String, datafusion::arrow::datatypes::DataType)> = partitions
            .iter()
            .map(|p| (p.to_string(), datafusion::arrow::datatypes::DataType::Utf8))
            .collect();
        let mut opts = ParquetReadOptions::default().table_partition_cols(cols);
        if path.is_dir() {
            opts = opts.file_extension(".parquet");
        }
        let df = ctx
            .read_parquet(path.to_str().unwrap(), opts)
            .await
            .expect("read parquet");
        rows(df, columns).await
    })
}

/// Reads a CSV file as sorted text rows.
pub fn read_csv(path: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    runtime().block_on(async {
        let ctx = SessionContext::new();
        let df = ctx
            .read_csv(
                path.to_str().unwrap(),
                CsvReadOptions::new().schema_infer_max_records(0),
            )
            .await
            .expect("read csv");
        rows(df, columns).await
    })
}

async fn rows(df: datafusion::prelude::DataFrame, columns: &[&str]) -> Vec<Vec<String>> {
    let df = if columns.is_empty() {
        df
    } else {
        df.select_columns(columns).expect("columns")
    };
    let batches = df.collect().await.expect("collect");
    let opts = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for b in &batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out.sort();
    out
}

/// Column names of an expected-output CSV.
pub fn csv_header(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Normalises a cell for comparison with the oracle's CSV: timestamps with a space,
/// numbers rounded to 2 decimals.
pub fn norm(v: &str) -> String {
    let t = v.replacen('T', " ", 1);
    if let Ok(f) = t.parse::<f64>()
        && t.contains('.')
    {
        return format!("{f:.2}");
    }
    t.trim_end_matches(".000000000").to_string()
}

/// Lists every file below a folder (relative paths, sorted).
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A tiny HTTP/1.1 file server on 127.0.0.1 (HEAD, GET, byte ranges) for URL sources.
/// Serves `root` until the test process ends; returns the base URL.
pub fn serve_dir(root: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut range: Option<(usize, Option<usize>)> = None;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(r) = lower.strip_prefix("range: bytes=") {
                            let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                            range = Some((a.parse().unwrap_or(0), b.parse().ok()));
                        }
                    }
                    let mut parts = request.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts
                        .next()
                        .unwrap_or("/")
                        .trim_start_matches('/')
                        .to_string();
                    let head = "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\nETag: \"1\"\r\nAccept-Ranges: bytes\r\n";
                    match std::fs::read(root.join(&path)) {
                        Ok(body) => {
                            let (status, slice) = match range {
                                Some((a, b)) => {
                                    let end =
                                        b.map(|b| b + 1).unwrap_or(body.len()).min(body.len());
                                    ("206 Partial Content", &body[a.min(end)..end])
                                }
                                None => ("200 OK", &body[..]),
                            };
                            let mut resp = format!(
                                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{head}",
                                slice.len()
                            );
                            if let Some((a, _)) = range {
                                resp.push_str(&format!(
                                    "Content-Range: bytes {a}-{}/{}\r\n",
                                    a + slice.len().saturating_sub(1),
                                    body.len()
                                ));
                            }
                            resp.push_str("\r\n");
                            let _ = stream.write_all(resp.as_bytes());
                            if method != "HEAD" {
                                let _ = stream.write_all(slice);
                            }
                        }
                        Err(_) => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                        }
                    }
                    let _ = stream.flush();
                }
            });
        }
    });
    format!("http://{addr}")
}
