//! The harness of the secrets tests: the secret, every form it can take in text, and a
//! fixture that runs `etl` with it and checks what comes out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::util::*;

/// The secret: every character in it is one that some encoder changes.
pub const PW: &str = "p@ss w/rd\"%!";
pub const VAR: &str = "ETL_TEST_PW";

/// Every way `s` can be percent-encoded: each subset of its special characters encoded,
/// hex in either case, a space as `%20` or `+`; and everything encoded.
fn percent_forms(s: &str) -> BTreeSet<String> {
    let specials: Vec<char> = s.chars().filter(|c| !c.is_ascii_alphanumeric()).collect();
    let enc = |c: char, upper: bool| {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| {
                if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect::<String>()
    };
    let mut out = BTreeSet::new();
    for subset in 0..(1u32 << specials.len()) {
        for upper in [true, false] {
            for plus in [true, false] {
                let form: String = s
                    .chars()
                    .map(|c| match specials.iter().position(|x| *x == c) {
                        Some(i) if subset & (1 << i) != 0 => {
                            if c == ' ' && plus {
                                "+".to_string()
                            } else {
                                enc(c, upper)
                            }
                        }
                        _ => c.to_string(),
                    })
                    .collect();
                out.insert(form);
            }
        }
        out.insert(s.chars().map(|c| enc(c, true)).collect());
        out.insert(s.chars().map(|c| enc(c, false)).collect());
    }
    out
}

/// Every form of the secret this test looks for.
fn forms() -> Vec<String> {
    let unquote = |q: String| q[1..q.len() - 1].to_string();
    let mut out = BTreeSet::new();
    for p in percent_forms(PW) {
        let json = unquote(serde_json::to_string(&p).unwrap());
        out.insert(json.replace('/', "\\/"));
        out.insert(unquote(serde_json::to_string(&json).unwrap()));
        out.insert(unquote(format!("{json:?}")));
        out.insert(unquote(format!("{p:?}")));
        out.insert(json);
        out.insert(p);
    }
    let unicode: String = PW
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\u{:04x}", c as u32)
            }
        })
        .collect();
    out.insert(unicode);
    out.insert(PW.replace('"', "&quot;"));
    assert!(out.contains(PW) && out.contains("p%40ss%20w%2Frd%22%25%21"));
    out.into_iter().collect()
}

/// A fixture folder with a local HTTP server, that runs `etl` with the secret set and checks
/// everything it prints.
pub struct Probe {
    f: Fixture,
    port: String,
    /// Files and folders the test wrote (they may hold the secret: they are the input).
    inputs: BTreeSet<PathBuf>,
    forms: Vec<String>,
}

impl Probe {
    pub fn new() -> Self {
        let f = Fixture::new();
        std::fs::create_dir_all(f.path().join("www")).unwrap();
        let base = serve_dir(f.path().join("www"));
        let port = base.rsplit(':').next().unwrap().to_string();
        let mut p = Self {
            f,
            port,
            inputs: BTreeSet::new(),
            forms: forms(),
        };
        p.inputs.insert(p.f.path().join("www"));
        p
    }

    /// Writes an input file. In its text, `ENV_PW` becomes `{{ env('ETL_TEST_PW') }}` and
    /// `PORT` the HTTP server's port.
    pub fn input(&mut self, rel: &str, content: &str) {
        let env = format!("{{{{ env('{VAR}') }}}}");
        let text = content.replace("ENV_PW", &env).replace("PORT", &self.port);
        let path = self.f.file(rel, &text);
        let mut p = path.as_path();
        while p != self.f.path() {
            self.inputs.insert(p.to_path_buf());
            p = p.parent().unwrap();
        }
    }

    fn leak(&self, text: &str) -> Option<&str> {
        self.forms
            .iter()
            .find(|f| text.contains(f.as_str()))
            .map(String::as_str)
    }

    fn assert_clean(&self, what: &str, text: &str) {
        if let Some(form) = self.leak(text) {
            panic!("the secret leaked as `{form}` in {what}:\n{text}");
        }
    }

    /// Runs `etl` with the secret in the environment (and debug logs for runs), checks
    /// stdout and stderr, and expects `code`.
    pub fn etl(&self, args: &[&str], code: i32) -> Run {
        // Debug logs for runs (DataFusion's and object_store's too), without the list of
        // every function DataFusion registers.
        let log = if args.contains(&"run") {
            "debug,datafusion::execution::session_state=info"
        } else {
            "info"
        };
        let r = etl_env(self.f.path(), args, &[(VAR, PW), ("ETL_LOG", log)]);
        self.assert_clean(&format!("the stdout of etl {args:?}"), &r.stdout);
        self.assert_clean(&format!("the stderr of etl {args:?}"), &r.stderr);
        assert_eq!(
            r.code, code,
            "etl {args:?}\n--- stdout\n{}\n--- stderr\n{}",
            r.stdout, r.stderr
        );
        r
    }

    /// Every command on one pipeline: validate (text, strict, JSON), a dry run, explain,
    /// preview `name`, graph, test, run and run with JSON logs. Returns the runs in order.
    pub fn all_commands(&self, file: &str, name: &str, codes: [i32; 10]) -> Vec<Run> {
        let commands: [Vec<&str>; 10] = [
            vec!["validate", file],
            vec!["validate", "--strict", file],
            vec!["--log-format", "json", "validate", file],
            vec!["run", "--dry-run", file],
            vec!["explain", file],
            vec!["preview", file, name],
            vec!["graph", file],
            vec!["test", file],
            vec!["run", file],
            vec!["--log-format", "json", "run", file],
        ];
        commands
            .iter()
            .zip(codes)
            .map(|(args, code)| self.etl(args, code))
            .collect()
    }

    /// Checks every file and folder `etl` created, names and contents; returns how many.
    pub fn assert_no_trace_in_files(&self) -> usize {
        let mut stack = vec![self.f.path().to_path_buf()];
        let mut created = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path.clone());
                }
                if self.inputs.contains(&path) {
                    continue;
                }
                created += 1;
                let name = entry.file_name().to_string_lossy().into_owned();
                self.assert_clean(&format!("the name of {}", path.display()), &name);
                if path.is_file() {
                    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                    self.assert_clean(&format!("the file {}", path.display()), &text);
                }
            }
        }
        created
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.f.path().join(rel)
    }
}

pub const ORDERS: &str = r#"
sources:
  orders:
    type: inline
    rows:
      - { id: 1, country: DE, amount: 10.5 }
      - { id: 2, country: FR, amount: 4.0 }
      - { id: 3, country: DE, amount: 1.5 }
"#;

/// Panics, showing `text`, unless it contains `needle`.
pub fn expect_in(text: &str, needle: &str) {
    assert!(text.contains(needle), "`{needle}` not found in:\n{text}");
}

/// Files below `dir` whose name ends with `ext`.
pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|f| f.ends_with(ext))
        .map(|f| dir.join(f))
        .collect()
}
