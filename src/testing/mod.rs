//! Pipeline tests (`etl test`): fixtures in place of sources, expected rows and check
//! outcomes out.
//!
//! A pipeline's tests come from its `tests:` map and from `NAME.test.yaml` beside it (a
//! `tests:` map alone). A `defaults` entry holds what every test starts from (`given`,
//! `vars`, `ds`, `run_id`, `tolerance`). Each test loads the pipeline again with its own vars
//! and logical date, replaces the sources it gives, and plans only what its expectations
//! need: no network, no database, nothing written.

mod compare;
mod discover;
mod fixture;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

pub use discover::{find_pipelines, test_file_of};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::engine::{EngineOptions, session};
use crate::load::LoadOptions;
use crate::model::{Check, Pipeline};
use crate::plan::{PlanError, SourceMode, plan};
use crate::spec::TestSpec;
use crate::template::EnvMode;

/// The name of the shared-fixtures entry of a `tests:` map.
pub const DEFAULTS: &str = "defaults";

/// One test, with the defaults merged in.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Its name.
    pub name: String,
    /// What it gives and expects.
    pub spec: TestSpec,
    /// The file it is written in.
    pub file: PathBuf,
}

/// How a test ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything as expected.
    Passed,
    /// The pipeline did not produce what the test expects (exit 1).
    Failed(Vec<String>),
    /// The test cannot run as written (exit 2): an unknown source, a bad date, a fixture
    /// that does not load.
    Invalid(Vec<String>),
}

/// The tests of a pipeline: its own `tests:` and those of `NAME.test.yaml`, defaults merged.
pub fn collect(
    pipeline_file: &Path,
    inline: &IndexMap<String, TestSpec>,
) -> Result<Vec<TestCase>, Diagnostics> {
    let mut all: Vec<(String, TestSpec, PathBuf)> = inline
        .iter()
        .map(|(n, t)| (n.clone(), t.clone(), pipeline_file.to_path_buf()))
        .collect();
    if let Some(extra) = test_file_of(pipeline_file) {
        let mut diags = Diagnostics::default();
        for (name, spec) in discover::load_test_file(&extra)? {
            if name != DEFAULTS && all.iter().any(|(n, _, _)| *n == name) {
                diags.push(
                    Diagnostic::error(format!(
                        "test `{name}` is defined both in {} and in {}",
                        pipeline_file.display(),
                        extra.display()
                    ))
                    .in_file(&extra)
                    .at_path(format!("tests.{name}")),
                );
            }
            all.push((name, spec, extra.clone()));
        }
        if diags.has_errors() {
            return Err(diags);
        }
    }
    let defaults: Vec<TestSpec> = all
        .iter()
        .filter(|(n, _, _)| n == DEFAULTS)
        .map(|(_, t, _)| t.clone())
        .collect();
    let mut diags = Diagnostics::default();
    for (_, d, file) in all.iter().filter(|(n, _, _)| n == DEFAULTS) {
        if !d.expect.is_empty() {
            diags.push(
                Diagnostic::error("`defaults` holds what every test starts from (`given`, `vars`, `ds`, `run_id`, `tolerance`), not `expect`")
                    .in_file(file)
                    .at_path("tests.defaults.expect"),
            );
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(all
        .into_iter()
        .filter(|(n, _, _)| n != DEFAULTS)
        .map(|(name, spec, file)| TestCase {
            spec: defaults.iter().fold(spec, with_defaults),
            name,
            file,
        })
        .collect())
}

/// A test with the gaps filled from `defaults` (the test's own values win).
fn with_defaults(mut t: TestSpec, d: &TestSpec) -> TestSpec {
    for (k, v) in &d.given {
        if !t.given.contains_key(k) {
            t.given.insert(k.clone(), v.clone());
        }
    }
    let mut vars = d.vars.clone();
    vars.extend(t.vars);
    t.vars = vars;
    t.ds = t.ds.or_else(|| d.ds.clone());
    t.run_id = t.run_id.or_else(|| d.run_id.clone());
    t.tolerance = t.tolerance.or(d.tolerance);
    t
}

/// Runs one test of the pipeline in `file`, loaded with `base` options plus the test's vars,
/// date and run id.
pub async fn run_case(file: &Path, base: &LoadOptions, case: &TestCase) -> Outcome {
    let t = &case.spec;
    let mut opts = base.clone();
    opts.env_mode = EnvMode::Placeholder;
    opts.extra_vars = t.vars.clone();
    opts.run_id = t.run_id.clone().unwrap_or_else(|| "test".into());
    if let Some(ds) = &t.ds {
        match crate::template::parse_ds(ds) {
            Some(d) => opts.ds = d,
            None => {
                return Outcome::Invalid(vec![format!(
                    "`ds: {ds}` is not a date (write YYYY-MM-DD)"
                )]);
            }
        }
    }
    let p = match load_quiet(file, &opts) {
        Ok(p) => p,
        Err(d) => {
            let mut lines = vec!["the pipeline does not load with this test's vars:".to_string()];
            lines.extend(
                d.0.iter()
                    .filter(|d| d.is_error())
                    .map(|d| format!("  {d}")),
            );
            return Outcome::Invalid(lines);
        }
    };
    let ds = opts.ds.format("%Y-%m-%d").to_string();
    match run_loaded(&p, case, &ds).await {
        Ok(failures) if failures.is_empty() => Outcome::Passed,
        Ok(failures) => Outcome::Failed(failures),
        Err(invalid) => Outcome::Invalid(invalid),
    }
}

/// Loads and validates a pipeline without printing anything.
fn load_quiet(file: &Path, opts: &LoadOptions) -> Result<Pipeline, Diagnostics> {
    let loaded = crate::load::load(file, opts)?;
    crate::validate::validate(&loaded)
}

/// Plans what the test needs on its fixtures and compares. `Err` when the test cannot run.
async fn run_loaded(p: &Pipeline, case: &TestCase, ds: &str) -> Result<Vec<String>, Vec<String>> {
    let t = &case.spec;
    let name = &case.name;
    if t.expect.is_empty() {
        return Err(vec![format!(
            "test `{name}` expects nothing: add rows under `expect:` (or `checks: {{ fail: [...] }}`)"
        )]);
    }
    let checks = expected_checks(p, t)?;
    let mut problems = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for target in t.expect.tables.keys() {
        if !p.is_relation(target) {
            let d = Diagnostic::error(format!(
                "test `{name}` expects `{target}`, which is not a source or transform"
            ))
            .suggest(
                target,
                p.sources
                    .keys()
                    .chain(p.transforms.keys())
                    .map(String::as_str),
            );
            problems.push(with_help(d));
        }
        targets.push(target.clone());
    }
    // A check may read other tables than its target (`relationships`, subqueries).
    targets.extend(checks.iter().flat_map(|(c, _)| c.relations()));
    let needed = needed_by(p, &targets);
    let fixture = fixture::apply(p, name, &t.given, &needed, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let ctx = session(&EngineOptions {
        target_partitions: Some(2),
        ..Default::default()
    })
    .map_err(|e| vec![format!("cannot start the engine: {e}")])?;
    let planned = match plan(ctx, &fixture, SourceMode::Strict, Some(&needed)).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(d)) => return Err(d.0.iter().map(Diagnostic::to_string).collect()),
        Err(PlanError::Source(_, d)) => return Err(vec![d.to_string()]),
    };
    let mut failures = Vec::new();
    for (target, expect) in &t.expect.tables {
        let tolerance = expect
            .tolerance
            .or(t.tolerance)
            .unwrap_or(compare::DEFAULT_TOLERANCE);
        match compare::table(&planned.ctx, p, target, expect, tolerance).await {
            Ok(None) => {}
            Ok(Some(diff)) => failures.push(diff),
            Err(compare::Problem::Invalid(msg)) => return Err(vec![msg]),
            Err(compare::Problem::Failed(msg)) => failures.push(msg),
        }
    }
    for (check, must_fail) in &checks {
        if let Some(msg) = check_outcome(&planned.ctx, p, ds, check, *must_fail).await {
            failures.push(msg);
        }
    }
    Ok(failures)
}

/// The checks named under `expect.checks`, with whether each must fail.
fn expected_checks(p: &Pipeline, t: &TestSpec) -> Result<Vec<(Check, bool)>, Vec<String>> {
    let Some(ec) = &t.expect.checks else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let lists = [(&ec.fail, true), (&ec.pass, false)];
    for (names, must_fail) in lists {
        for wanted in names {
            let found: Vec<&Check> = p
                .checks
                .iter()
                .filter(|c| c.name == *wanted || format!("{}.{}", c.target, c.name) == *wanted)
                .collect();
            if found.is_empty() {
                let names: Vec<String> = p.checks.iter().map(|c| c.name.clone()).collect();
                let d = Diagnostic::error(format!("no check is named `{wanted}`"))
                    .suggest(wanted, names.iter().map(String::as_str));
                let d = if d.help.is_none() && !names.is_empty() {
                    d.with_help(format!("checks: {}", names.join(", ")))
                } else {
                    d
                };
                problems.push(with_help(d));
            }
            out.extend(found.into_iter().map(|c| (c.clone(), must_fail)));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Runs one check on the fixtures; a message when its outcome is not the expected one.
async fn check_outcome(
    ctx: &datafusion::prelude::SessionContext,
    p: &Pipeline,
    ds: &str,
    check: &Check,
    must_fail: bool,
) -> Option<String> {
    let label = format!("check `{}` on `{}`", check.name, check.target);
    let compiled = match crate::check::compile(ctx, p, check).await {
        Ok(c) => c,
        Err(d) => return Some(format!("{label} does not plan: {}", with_help(d))),
    };
    let cx = crate::check::RunCx {
        ds,
        run_id: &p.run_id,
        failures_dir: None,
    };
    match compiled.run(&cx).await {
        Err(e) => Some(format!(
            "{label} could not run: {}",
            crate::plan::clean_message(&e.to_string())
        )),
        Ok(o) if must_fail && o.passed() => Some(format!(
            "{label} was expected to fail, but passed ({})",
            o.detail
        )),
        Ok(o) if !must_fail && !o.passed() => {
            let mut msg = format!("{label} was expected to pass, but failed: {}", o.detail);
            if let Some(sample) = &o.sample {
                for line in sample.lines() {
                    msg.push_str(&format!("\n    {line}"));
                }
            }
            Some(msg)
        }
        Ok(_) => None,
    }
}

/// Every source and transform the targets read, transitively.
fn needed_by(p: &Pipeline, targets: &[String]) -> Vec<String> {
    let mut needed: Vec<String> = Vec::new();
    for target in targets {
        for n in p.upstream(target) {
            if !needed.contains(&n) {
                needed.push(n);
            }
        }
    }
    needed
}

fn with_help(d: Diagnostic) -> String {
    match &d.help {
        Some(h) => format!("{} ({h})", d.message),
        None => d.message,
    }
}
