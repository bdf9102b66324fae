//! No input crashes or hangs `etl`: seeded mutations of every example pipeline (values,
//! numbers, templates, paths, types, options, YAML structure, nesting, aliases, unicode),
//! each through `etl validate` and `etl run --dry-run`. A case passes when the process ends
//! in time with exit code 0, 1, 2 or 3 and no panic message.
//!
//! Files run in batches (one process validates many files); a batch that fails is rerun file
//! by file to name the culprit, whose seed and YAML the assertion prints. Everything runs in a
//! temporary copy of `pipelines/`, so relative data paths resolve and nothing is written into
//! the repository. `ETL_FUZZ_SEED` and `ETL_FUZZ_CASES` (per pipeline) run other or more
//! cases locally. Inputs that once broke `etl` are kept in `fuzz_regressions/`, each with
//! the exit codes it must give on its first lines.

mod mutate;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::repo;

/// Cases per example pipeline.
const CASES: usize = 75;
/// Files per `etl` process.
const BATCH: usize = 50;
/// A whole batch may take this long (debug builds on a slow runner included).
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// One file alone may take this long.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);
/// The fixed date, so that runs are reproducible.
const DATE: &str = "2024-06-30";

/// How one process ended.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stderr: String,
    timed_out: bool,
}

impl Outcome {
    /// Why this ending breaks the contract, if it does.
    fn problem(&self) -> Option<String> {
        if self.timed_out {
            return Some("did not finish in time (hang)".into());
        }
        for marker in [
            "panicked at",
            "stack overflow",
            "fatal runtime error",
            "memory allocation of",
        ] {
            if self.stderr.contains(marker) {
                return Some(format!("stderr has `{marker}`"));
            }
        }
        match self.code {
            Some(0..=3) => None,
            Some(c) => Some(format!("exit code {c}")),
            None => Some("killed by a signal (abort or crash)".into()),
        }
    }
}

/// Runs `etl` in `dir`, killing it (by its pid) if it runs past `timeout`.
fn run_etl(dir: &Path, args: &[String], timeout: Duration) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .current_dir(dir)
        .env_remove("ETL_LOG_FORMAT")
        .env_remove("ETL_MEMORY_LIMIT")
        .env("NO_COLOR", "1")
        .env("ETL_STATE_DIR", dir.join(".fuzz-state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start etl");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status, false);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            break (child.wait().expect("wait"), true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code: status.code(),
        stderr: reader.join().unwrap_or_default(),
        timed_out,
    }
}

/// A copy of `pipelines/` (without outputs) in a temporary folder.
fn pipelines_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let name = e.file_name();
            if name == "out" || name == ".etl" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                copy(&p, &to.join(&name));
            } else {
                std::fs::copy(&p, to.join(&name)).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy(&repo().join("pipelines"), dir.path());
    dir
}

/// A mutated file to try.
struct Case {
    seed: u64,
    file: PathBuf,
}

/// The commands every case goes through.
fn commands() -> [Vec<String>; 2] {
    let date = vec!["--date".to_string(), DATE.to_string()];
    [
        [vec!["validate".to_string()], date.clone()].concat(),
        [vec!["run".to_string(), "--dry-run".to_string()], date].concat(),
    ]
}

/// Runs a batch; on failure, each file alone, returning a report per failing case.
fn check_batch(dir: &Path, cases: &[Case], command: &[String]) -> Vec<String> {
    let files: Vec<String> = cases.iter().map(|c| c.file.display().to_string()).collect();
    let args = [command.to_vec(), files].concat();
    if run_etl(dir, &args, BATCH_TIMEOUT).problem().is_none() {
        return Vec::new();
    }
    let mut failures = Vec::new();
    for case in cases {
        let args = [command.to_vec(), vec![case.file.display().to_string()]].concat();
        let outcome = run_etl(dir, &args, CASE_TIMEOUT);
        if let Some(problem) = outcome.problem() {
            let yaml = std::fs::read_to_string(&case.file).unwrap_or_default();
            let shown: String = yaml.chars().take(3000).collect();
            let tail: String = outcome.stderr.chars().take(2000).collect();
            failures.push(format!(
                "seed {} — `etl {}`: {problem}\n--- mutated YAML\n{shown}\n--- stderr\n{tail}",
                case.seed,
                command.join(" ")
            ));
        }
    }
    failures
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_example_pipelines_never_crash_or_hang() {
    let dir = pipelines_copy();
    let base_seed = env_number("ETL_FUZZ_SEED", 20_240_630);
    let per_pipeline = env_number("ETL_FUZZ_CASES", CASES as u64) as usize;
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "the example pipelines are missing");
    let mut cases = Vec::new();
    for (n, example) in examples.iter().enumerate() {
        let original = std::fs::read_to_string(example).unwrap();
        for i in 0..per_pipeline {
            let seed = base_seed + (n * 100_000 + i) as u64;
            let file = dir.path().join(format!("fuzz_{seed}.yaml"));
            std::fs::write(&file, mutate::mutate(&original, seed)).unwrap();
            cases.push(Case { seed, file });
        }
    }
    let mut failures = Vec::new();
    for command in commands() {
        for batch in cases.chunks(BATCH) {
            failures.extend(check_batch(dir.path(), batch, &command));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract (rerun one with ETL_FUZZ_SEED=<seed> ETL_FUZZ_CASES=1 \
         for the first pipeline, or see the YAML below):\n\n{}",
        failures.len(),
        cases.len() * 2,
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// What a regression file says it must give.
struct Expected {
    validate: Vec<i32>,
    dry_run: Vec<i32>,
    args: Vec<String>,
}

/// Reads `# expect: validate 2, dry-run 1|2` and an optional `# args: ["--var", "k=v"]`.
fn expected(text: &str, file: &Path) -> Expected {
    let codes = |line: &str, what: &str| -> Vec<i32> {
        let rest = line
            .split(what)
            .nth(1)
            .unwrap_or_else(|| panic!("{}: the first line says `{what} N`", file.display()));
        let word = rest.trim().split([',', ' ']).next().unwrap_or_default();
        word.split('|')
            .map(|c| c.parse().expect("an exit code"))
            .collect()
    };
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("# expect:"),
        "{}: no `# expect:` line",
        file.display()
    );
    let args = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("# args:"))
        .map(|a| serde_json::from_str(a.trim()).expect("# args: is a JSON list of strings"))
        .unwrap_or_default();
    Expected {
        validate: codes(first, "validate"),
        dry_run: codes(first, "dry-run"),
        args,
    }
}

#[test]
fn regression_inputs_give_their_exit_codes() {
    let dir = pipelines_copy();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(repo().join("tests/integration/fuzz_regressions"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let want = expected(&text, file);
        let copy = dir.path().join(file.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        let [validate, dry_run] = commands();
        for (command, codes) in [(validate, &want.validate), (dry_run, &want.dry_run)] {
            let args = [
                command.clone(),
                want.args.clone(),
                vec![copy.display().to_string()],
            ]
            .concat();
            let outcome = run_etl(dir.path(), &args, CASE_TIMEOUT);
            let wrong_code = outcome.code.is_none_or(|c| !codes.contains(&c));
            if let Some(problem) = outcome.problem().or(wrong_code
                .then(|| format!("exit code {:?}, expected one of {codes:?}", outcome.code)))
            {
                failures.push(format!(
                    "{} — `etl {}`: {problem}\n{}",
                    file.display(),
                    command.join(" "),
                    outcome.stderr.chars().take(2000).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_large_honest_file_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("vars:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  key_{i}: value number {i}\n"));
    }
    text.push_str("sources:\n  s: { type: inline, rows: [{a: \"{{ key_99999 }}\"}] }\n");
    text.push_str("sinks:\n  o: { from: s, type: csv, path: out/o.csv }\n");
    let file = dir.path().join("large.yaml");
    std::fs::write(&file, text).unwrap();
    let args = vec!["validate".to_string(), file.display().to_string()];
    let outcome = run_etl(dir.path(), &args, CASE_TIMEOUT);
    assert_eq!(outcome.problem(), None, "{}", outcome.stderr);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
}

#[test]
fn out_of_range_command_line_values_are_usage_errors() {
    let dir = pipelines_copy();
    for (flag, value) in [
        ("--threads", "0"),
        ("--threads", "4294967296"),
        ("--memory-limit", "0"),
        ("--memory-limit", "lots"),
        ("--date", "262143-01-01"),
    ] {
        let args: Vec<String> = ["run", "--dry-run", flag, value, "web_logs.yaml"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let outcome = run_etl(dir.path(), &args, CASE_TIMEOUT);
        assert_eq!(
            outcome.problem(),
            None,
            "{flag} {value}: {}",
            outcome.stderr
        );
        assert_eq!(outcome.code, Some(2), "{flag} {value}: {}", outcome.stderr);
        assert!(outcome.stderr.contains(value), "{}", outcome.stderr);
    }
}

#[test]
fn a_fifo_named_like_a_pipeline_is_refused_at_once_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("d/p.yaml");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::fs::write(
        dir.path().join("d/ok.yaml"),
        "sources:\n  s: { type: inline, rows: [{ a: 1 }] }\n",
    )
    .unwrap();
    // Opening a FIFO for reading waits for a writer: both must answer instead.
    for args in [["validate", "d/p.yaml"], ["test", "d"]] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run_etl(dir.path(), &args, CASE_TIMEOUT);
        assert!(!out.timed_out, "etl {args:?} hung on a FIFO");
        if args[0] == "validate" {
            assert_eq!(out.code, Some(2), "{}", out.stderr);
            assert!(
                out.stderr.contains("cannot read the pipeline file"),
                "{}",
                out.stderr
            );
        } else {
            assert!(!out.stderr.contains("p.yaml"), "{}", out.stderr);
        }
    }
}
