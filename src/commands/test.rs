//! `etl test`: run a pipeline's `tests:` with fixtures in place of its sources.
//!
//! A test needs no network and no database: every source that the expected tables depend on
//! must be given (inline rows or a file). Only the columns listed in the expected rows are
//! compared, as a multiset unless `ordered: true`. Values compare by meaning: numbers
//! numerically, timestamps with or without `T`.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use indexmap::IndexMap;

use super::{EXIT_FAILED, EXIT_OK, Output, load_pipeline, new_run_id};
use crate::cli::{LogFormat, TestArgs};
use crate::diagnostic::Diagnostic;
use crate::engine::{EngineOptions, session};
use crate::load::LoadOptions;
use crate::model::Pipeline;
use crate::plan::{PlanError, SourceMode, plan};
use crate::source::file::{CsvOptions, FileSourceSpec, JsonOptions, ParquetOptions};
use crate::source::inline::InlineSourceSpec;
use crate::spec::source::OnBadRow;
use crate::spec::{ExpectSpec, FixtureSpec, SourceSpec, TestSpec};
use crate::template::EnvMode;

/// Runs the tests of every pipeline given.
pub async fn test(args: &TestArgs, out: Output) -> u8 {
    let (mut passed, mut failed) = (0, 0);
    let mut worst = EXIT_OK;
    for file in &args.pipelines {
        let opts = LoadOptions {
            vars: Vec::new(),
            vars_file: None,
            extra_vars: IndexMap::new(),
            ds: chrono::Utc::now().date_naive(),
            run_id: new_run_id(),
            env_mode: EnvMode::Placeholder,
        };
        let base = match load_pipeline(file, &opts, out) {
            Ok(p) => p,
            Err(code) => return code,
        };
        for (name, t) in &base.tests {
            if !args.names.is_empty() && !args.names.contains(name) {
                continue;
            }
            let mut topts = opts.clone();
            topts.extra_vars = t.vars.clone();
            let result = match load_pipeline(file, &topts, out) {
                Ok(p) => run_test(&p, name, t).await,
                Err(code) => Err(vec![format!(
                    "the pipeline does not load with this test's vars (exit {code})"
                )]),
            };
            let label = format!("{}::{name}", base.name);
            match result {
                Ok(()) => {
                    passed += 1;
                    report(out, &label, true, &[]);
                }
                Err(problems) => {
                    failed += 1;
                    worst = EXIT_FAILED;
                    report(out, &label, false, &problems);
                }
            }
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

fn report(out: Output, label: &str, ok: bool, problems: &[String]) {
    match out.format {
        LogFormat::Text => {
            out.line(&format!(
                "test {label} ... {}",
                if ok { "ok" } else { "FAILED" }
            ));
            for p in problems {
                out.line(p);
            }
        }
        LogFormat::Json => out.json(
            serde_json::json!({"event": "test", "test": label, "ok": ok, "problems": problems}),
        ),
    }
}

fn fixture_source(
    p: &Pipeline,
    name: &str,
    f: &FixtureSpec,
) -> Result<crate::model::Source, String> {
    let orig = &p.sources[name];
    let schema_spec = orig.spec.schema().cloned();
    let spec =
        match (&f.rows, &f.path) {
            (Some(rows), None) => SourceSpec(std::sync::Arc::new(InlineSourceSpec {
                rows: rows.clone(),
                schema: schema_spec,
                description: None,
            })),
            (None, Some(path)) => {
                let format = f.format.clone().unwrap_or_else(|| {
                    path.rsplit('.')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                });
                match format.as_str() {
                    "csv" => SourceSpec(std::sync::Arc::new(FileSourceSpec::<CsvOptions>::at(
                        path,
                        schema_spec,
                    ))),
                    "json" | "jsonl" | "ndjson" => SourceSpec(std::sync::Arc::new(
                        FileSourceSpec::<JsonOptions>::at(path, schema_spec),
                    )),
                    "parquet" => SourceSpec(std::sync::Arc::new(
                        FileSourceSpec::<ParquetOptions>::at(path, schema_spec),
                    )),
                    other => {
                        return Err(format!(
                            "fixture for `{name}`: unknown format `{other}` (csv, json, parquet)"
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "fixture for `{name}` needs exactly one of `rows` or `path`"
                ));
            }
        };
    let locations = f
        .path
        .iter()
        .map(|pth| {
            crate::validate::resolve_local(&p.base_dir, pth)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    Ok(crate::model::Source {
        name: name.to_string(),
        spec,
        schema: orig.schema.clone(),
        locations,
        on_bad_row: OnBadRow::Fail,
        yaml_path: orig.yaml_path.clone(),
    })
}

async fn run_test(p: &Pipeline, name: &str, t: &TestSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut needed: Vec<String> = Vec::new();
    for target in t.expect.keys() {
        if !p.is_relation(target) {
            return Err(vec![format!(
                "test `{name}` expects `{target}`, which is not a source or transform"
            )]);
        }
        for n in p.upstream(target) {
            if !needed.contains(&n) {
                needed.push(n);
            }
        }
    }
    let mut fixture = p.clone();
    for (src, f) in &t.given {
        if !p.sources.contains_key(src) {
            problems.push(format!(
                "test `{name}` gives `{src}`, which is not a source"
            ));
            continue;
        }
        match fixture_source(p, src, f) {
            Ok(s) => {
                fixture.sources.insert(src.clone(), s);
            }
            Err(e) => problems.push(e),
        }
    }
    for n in needed.iter().filter(|n| p.sources.contains_key(*n)) {
        if !t.given.contains_key(n) {
            problems.push(format!(
                "test `{name}` needs source `{n}` but does not give it (add it under `given:`)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let ctx = session(&EngineOptions {
        target_partitions: Some(2),
        ..Default::default()
    })
    .map_err(|e| vec![e.to_string()])?;
    let planned = match plan(ctx, &fixture, SourceMode::Strict, Some(&needed)).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(d)) => return Err(d.0.iter().map(Diagnostic::to_string).collect()),
        Err(PlanError::Source(_, d)) => return Err(vec![d.to_string()]),
    };
    for (target, expect) in &t.expect {
        if let Err(e) = compare(&planned.ctx, p, target, expect).await {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

async fn compare(
    ctx: &datafusion::prelude::SessionContext,
    p: &Pipeline,
    target: &str,
    expect: &ExpectSpec,
) -> Result<(), String> {
    let expected_rows = match (&expect.rows, &expect.path) {
        (Some(r), None) => r.clone(),
        (None, Some(path)) => read_expected_file(ctx, p, path).await?,
        _ => {
            return Err(format!(
                "expected `{target}` needs exactly one of `rows` or `path`"
            ));
        }
    };
    let batches: Vec<RecordBatch> = async { ctx.table(target).await?.collect().await }
        .await
        .map_err(|e| format!("`{target}`: {e}"))?;
    let mut columns: Vec<String> = Vec::new();
    for r in &expected_rows {
        for k in r.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let actual = rows_as_text(&batches, &columns).map_err(|e| format!("`{target}`: {e}"))?;
    let expected: Vec<Vec<String>> = expected_rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| json_text(r.get(c).unwrap_or(&serde_json::Value::Null)))
                .collect()
        })
        .collect();
    let (missing, unexpected) = diff(&expected, &actual, expect.ordered);
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "  `{target}`: {} expected rows, {} actual rows",
        expected.len(),
        actual.len()
    );
    let fmt = |row: &Vec<String>| {
        columns
            .iter()
            .zip(row)
            .map(|(c, v)| format!("{c}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for r in &missing {
        msg.push_str(&format!("\n    - missing    {{ {} }}", fmt(r)));
    }
    for r in &unexpected {
        msg.push_str(&format!("\n    + unexpected {{ {} }}", fmt(r)));
    }
    Err(msg)
}

async fn read_expected_file(
    ctx: &datafusion::prelude::SessionContext,
    p: &Pipeline,
    path: &str,
) -> Result<Vec<IndexMap<String, serde_json::Value>>, String> {
    let full = crate::validate::resolve_local(&p.base_dir, path);
    let full_s = full.to_string_lossy().into_owned();
    let df = if full_s.ends_with(".csv") {
        ctx.read_csv(full_s.as_str(), datafusion::prelude::CsvReadOptions::new())
            .await
    } else if full_s.ends_with(".parquet") {
        ctx.read_parquet(full_s.as_str(), Default::default()).await
    } else {
        ctx.read_json(full_s.as_str(), Default::default()).await
    }
    .map_err(|e| format!("expected rows file {}: {e}", full.display()))?;
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    let cols: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let rows = rows_as_text(&batches, &cols)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            cols.iter()
                .cloned()
                .zip(r.into_iter().map(|v| {
                    if v == "NULL" {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(v)
                    }
                }))
                .collect()
        })
        .collect())
}

fn rows_as_text(batches: &[RecordBatch], columns: &[String]) -> Result<Vec<Vec<String>>, String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let mut fmts = Vec::new();
        for c in columns {
            let idx = b.schema().index_of(c).map_err(|_| {
                let names: Vec<String> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                format!("no column `{c}` (columns: {})", names.join(", "))
            })?;
            fmts.push(
                ArrayFormatter::try_new(b.column(idx).as_ref(), &opts)
                    .map_err(|e| e.to_string())?,
            );
        }
        for row in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    Ok(out)
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// True when two cell texts mean the same value.
pub fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        return (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    }
    normalize_time(a) == normalize_time(b)
}

fn normalize_time(s: &str) -> String {
    let mut t = s.trim().replacen('T', " ", 1);
    for suffix in ["Z", "+00:00"] {
        if let Some(x) = t.strip_suffix(suffix) {
            t = x.to_string();
        }
    }
    if let Some(dot) = t.rfind('.')
        && t[dot + 1..].chars().all(|c| c == '0')
        && t.contains(':')
    {
        t.truncate(dot);
    }
    t
}

fn diff(
    expected: &[Vec<String>],
    actual: &[Vec<String>],
    ordered: bool,
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let row_eq = |a: &Vec<String>, b: &Vec<String>| a.iter().zip(b).all(|(x, y)| same_value(x, y));
    if ordered {
        let mut missing = Vec::new();
        let mut unexpected = Vec::new();
        for i in 0..expected.len().max(actual.len()) {
            match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) if row_eq(e, a) => {}
                (e, a) => {
                    missing.extend(e.cloned());
                    unexpected.extend(a.cloned());
                }
            }
        }
        return (missing, unexpected);
    }
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for e in expected {
        match actual
            .iter()
            .enumerate()
            .find(|(i, a)| !used[*i] && row_eq(e, a))
        {
            Some((i, _)) => used[i] = true,
            None => missing.push(e.clone()),
        }
    }
    let unexpected = actual
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a.clone())
        .collect();
    (missing, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_by_meaning() {
        assert!(same_value("7.50", "7.5"));
        assert!(same_value("2024-01-01T10:00:00", "2024-01-01 10:00:00"));
        assert!(same_value("2024-01-01T10:00:00.000", "2024-01-01 10:00:00"));
        assert!(!same_value("1", "2"));
        assert!(!same_value("a", "b"));
    }

    #[test]
    fn multiset_diff_reports_both_sides() {
        let e = vec![vec!["1".to_string()], vec!["2".to_string()]];
        let a = vec![vec!["2".to_string()], vec!["3".to_string()]];
        let (m, u) = diff(&e, &a, false);
        assert_eq!(m, vec![vec!["1".to_string()]]);
        assert_eq!(u, vec![vec!["3".to_string()]]);
    }
}
