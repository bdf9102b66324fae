//! `etl test`: run pipelines' tests (see [`crate::testing`]).
//!
//! Arguments are pipeline files or folders (every pipeline below a folder). Exit code: 0 when
//! every test passed, 1 when one failed, 2 when a pipeline or a test is invalid or `--name`
//! names no test.

use std::path::PathBuf;

use super::{EXIT_FAILED, EXIT_INVALID, EXIT_OK, Output, load_pipeline};
use crate::cli::{LogFormat, TestArgs};
use crate::diagnostic::Diagnostic;
use crate::load::LoadOptions;
use crate::template::EnvMode;
use crate::testing::{Outcome, TestCase, collect, find_pipelines, run_case};

/// A pipeline and its tests.
struct Suite {
    file: PathBuf,
    name: String,
    cases: Vec<TestCase>,
}

/// Runs the tests of every pipeline given (files or folders).
pub async fn test(args: &TestArgs, out: Output) -> u8 {
    let files = match pipeline_files(&args.pipelines) {
        Ok(f) => f,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let opts = LoadOptions {
        vars: Vec::new(),
        vars_file: None,
        extra_vars: Default::default(),
        ds: chrono::Utc::now().date_naive(),
        run_id: "test".into(),
        env_mode: EnvMode::Placeholder,
    };
    let mut worst = EXIT_OK;
    let mut suites = Vec::new();
    for file in &files {
        let p = match load_pipeline(file, &opts, out) {
            Ok(p) => p,
            Err(code) => {
                worst = worst.max(code);
                continue;
            }
        };
        match collect(file, &p.tests) {
            Ok(cases) => suites.push(Suite {
                file: file.clone(),
                name: p.name.clone(),
                cases,
            }),
            Err(d) => {
                out.diagnostics(&d);
                worst = EXIT_INVALID;
            }
        }
    }
    if let Err(d) = check_names(&args.names, &suites) {
        out.diagnostic(&d);
        return EXIT_INVALID;
    }
    let (mut passed, mut failed) = (0, 0);
    for suite in &suites {
        if suite.cases.is_empty() && out.format == LogFormat::Text {
            out.err_line(&format!("{}: no tests", suite.file.display()));
        }
        for case in suite
            .cases
            .iter()
            .filter(|c| selected(&args.names, suite, c))
        {
            let outcome = run_case(&suite.file, &opts, case).await;
            let code = match &outcome {
                Outcome::Passed => {
                    passed += 1;
                    EXIT_OK
                }
                Outcome::Failed(_) => {
                    failed += 1;
                    EXIT_FAILED
                }
                Outcome::Invalid(_) => {
                    failed += 1;
                    EXIT_INVALID
                }
            };
            worst = worst.max(code);
            report(out, &format!("{}::{}", suite.name, case.name), &outcome);
        }
    }
    if out.format == LogFormat::Text {
        out.line(&format!("tests: {passed} passed, {failed} failed"));
    } else {
        out.json(serde_json::json!({"event": "tests", "passed": passed, "failed": failed}));
    }
    if passed + failed == 0 && worst == EXIT_OK {
        out.err_line("no tests found");
    }
    worst
}

/// The pipeline files named, with folders expanded to every pipeline below them.
fn pipeline_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let found = find_pipelines(a).map_err(|limit| {
                Diagnostic::error(format!(
                    "more than {limit} files and folders below {}",
                    a.display()
                ))
                .with_help(
                    "name the folder that holds the pipelines, or the pipeline files themselves",
                )
            })?;
            if found.is_empty() {
                return Err(Diagnostic::error(format!(
                    "no pipeline files below {}",
                    a.display()
                ))
                .with_help("a pipeline file is a .yaml or .yml file with `sources`, `transforms` or `sinks`"));
            }
            out.extend(found);
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

fn selected(names: &[String], suite: &Suite, case: &TestCase) -> bool {
    names.is_empty()
        || names
            .iter()
            .any(|n| *n == case.name || *n == format!("{}::{}", suite.name, case.name))
}

/// Every `--name` must name a test: a typo would otherwise run nothing and pass.
fn check_names(names: &[String], suites: &[Suite]) -> Result<(), Diagnostic> {
    let all: Vec<String> = suites
        .iter()
        .flat_map(|s| {
            s.cases
                .iter()
                .map(move |c| format!("{}::{}", s.name, c.name))
        })
        .collect();
    for n in names {
        if suites.iter().any(|s| {
            s.cases
                .iter()
                .any(|c| selected(std::slice::from_ref(n), s, c))
        }) {
            continue;
        }
        let bare: Vec<&str> = all
            .iter()
            .map(|q| q.rsplit("::").next().unwrap_or(q))
            .chain(all.iter().map(String::as_str))
            .collect();
        let d = Diagnostic::error(format!("--name {n}: no test has this name"));
        let d = match crate::diagnostic::did_you_mean(n, bare) {
            Some(h) => d.with_help(h),
            None if all.is_empty() => d.with_help("the pipelines given have no tests"),
            None => d.with_help(format!("tests: {}", all.join(", "))),
        };
        return Err(d);
    }
    Ok(())
}

fn report(out: Output, label: &str, outcome: &Outcome) {
    let (status, problems): (&str, &[String]) = match outcome {
        Outcome::Passed => ("ok", &[]),
        Outcome::Failed(p) => ("FAILED", p),
        Outcome::Invalid(p) => ("INVALID", p),
    };
    match out.format {
        LogFormat::Text => {
            out.line(&format!("test {label} ... {status}"));
            for p in problems {
                for line in p.lines() {
                    out.line(&format!("  {line}"));
                }
            }
        }
        LogFormat::Json => out.json(serde_json::json!({
            "event": "test",
            "test": label,
            "ok": matches!(outcome, Outcome::Passed),
            "status": status.to_ascii_lowercase(),
            "problems": problems,
        })),
    }
}
