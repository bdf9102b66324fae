//! `etl validate`, `explain`, `graph` and `preview`: looking at a pipeline without running it.

use comfy_table::{Cell, Table};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::displayable;

use super::{EXIT_FAILED, EXIT_INVALID, EXIT_OK, Output, load_options, load_pipeline, new_run_id};
use crate::cli::{ExplainArgs, GraphArgs, LogFormat, PreviewArgs, ValidateArgs};
use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean, name_list};
use crate::engine::{EngineOptions, session};
use crate::model::Pipeline;
use crate::plan::{PlanError, Planned, SourceMode, plan};
use crate::template::EnvMode;

/// `etl validate`: everything short of moving data, every problem at once.
pub async fn validate(args: &ValidateArgs, out: Output) -> u8 {
    let mut worst = EXIT_OK;
    for file in &args.pipelines {
        let mode = if args.strict {
            EnvMode::Strict
        } else {
            EnvMode::Placeholder
        };
        let opts = match load_options(&args.vars, None, mode, &new_run_id()) {
            Ok(o) => o,
            Err(d) => {
                out.diagnostic(&d);
                return EXIT_INVALID;
            }
        };
        let code = match load_pipeline(file, &opts, out) {
            Ok(p) => match left_out_checks(&p, &args.select, out) {
                Ok(()) => validate_planned(&p, args.strict, out).await,
                Err(code) => code,
            },
            Err(code) => code,
        };
        if code == EXIT_OK && out.format == LogFormat::Text {
            out.line(&format!("{}: valid", file.display()));
        } else if out.format == LogFormat::Json {
            out.json(serde_json::json!({"event": "validate", "file": file.display().to_string(), "valid": code == EXIT_OK}));
        }
        worst = worst.max(code);
    }
    worst
}

/// With `--select`: the selection is valid, and a note names the checks it leaves out.
fn left_out_checks(p: &Pipeline, select: &[String], out: Output) -> Result<(), u8> {
    if select.is_empty() {
        return Ok(());
    }
    let sel = crate::run::selection(p, select).map_err(|d| {
        out.diagnostics(&d);
        EXIT_INVALID
    })?;
    let Some(note) = sel.left_out_note() else {
        return Ok(());
    };
    match out.format {
        LogFormat::Text => out.err_line(&format!("note: {note}")),
        LogFormat::Json => {
            let left_out: Vec<serde_json::Value> = sel
                .left_out
                .iter()
                .map(|c| serde_json::json!({"check": c.name, "on": c.target}))
                .collect();
            out.json(serde_json::json!({"event": "note", "pipeline": p.name, "message": note, "left_out_checks": left_out}));
        }
    }
    Ok(())
}

/// Plans every source, transform and check. A source that cannot be read leaves what reads
/// it unplanned: a warning, or under `--strict` an error (exit 2).
async fn validate_planned(p: &Pipeline, strict: bool, out: Output) -> u8 {
    let ctx = match session(&EngineOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            out.diagnostic(&Diagnostic::error(format!("cannot start the engine: {e}")));
            return EXIT_FAILED;
        }
    };
    let planned = match plan(ctx, p, SourceMode::Lenient, None).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(mut d)) => {
            d.sort();
            out.diagnostics(&d);
            return EXIT_INVALID;
        }
        Err(PlanError::Source(_, d)) => {
            out.diagnostic(&d);
            return EXIT_FAILED;
        }
    };
    if strict && !planned.warnings.0.is_empty() {
        let mut errors = planned.warnings;
        for d in errors.0.iter_mut() {
            d.severity = crate::diagnostic::Severity::Error;
        }
        out.diagnostics(&errors);
        return EXIT_INVALID;
    }
    out.diagnostics(&planned.warnings);
    let mut diags = Diagnostics::default();
    for c in &p.checks {
        // A check on something that could not be planned was already reported.
        if !c
            .relations()
            .iter()
            .all(|r| planned.schemas.contains_key(r))
        {
            continue;
        }
        if let Err(d) = crate::check::compile(&planned.ctx, p, c).await {
            diags.push(d);
        }
    }
    for s in p.sinks.values() {
        if let Some(schema) = planned.schemas.get(&s.from) {
            for d in crate::validate::partition_problems(p, s, schema) {
                diags.push(d);
            }
        }
    }
    if diags.has_errors() {
        out.diagnostics(&diags);
        return EXIT_INVALID;
    }
    EXIT_OK
}

async fn planned(
    args: &crate::cli::VarArgs,
    file: &std::path::Path,
    out: Output,
) -> Result<(Pipeline, Planned), u8> {
    let opts = load_options(args, None, EnvMode::Strict, &new_run_id()).map_err(|d| {
        out.diagnostic(&d);
        EXIT_INVALID
    })?;
    let mut p = load_pipeline(file, &opts, out)?;
    // Looking changes nothing: bad rows are skipped, not written to quarantine.
    for s in p.sources.values_mut() {
        if s.on_bad_row == crate::spec::source::OnBadRow::Quarantine {
            s.on_bad_row = crate::spec::source::OnBadRow::Skip;
        }
    }
    let ctx = session(&EngineOptions::default()).map_err(|e| {
        out.diagnostic(&Diagnostic::error(format!("cannot start the engine: {e}")));
        EXIT_FAILED
    })?;
    match plan(ctx, &p, SourceMode::Strict, None).await {
        Ok(pl) => Ok((p, pl)),
        Err(PlanError::Invalid(d)) => {
            out.diagnostics(&d);
            Err(EXIT_INVALID)
        }
        Err(PlanError::Source(_, d)) => {
            out.diagnostic(&d);
            Err(EXIT_FAILED)
        }
    }
}

fn unknown_name(p: &Pipeline, name: &str) -> Diagnostic {
    let all: Vec<&str> = p
        .sources
        .keys()
        .chain(p.transforms.keys())
        .chain(p.sinks.keys())
        .map(String::as_str)
        .collect();
    let d = Diagnostic::error(format!(
        "`{name}` is not a source, transform or sink of {}",
        p.name
    ));
    match did_you_mean(name, all.iter().copied()) {
        Some(h) => d.with_help(h),
        None => d.with_help(format!("names: {}", name_list(all.iter().copied()))),
    }
}

/// `etl explain`: optimised logical and physical plans.
pub async fn explain(args: &ExplainArgs, out: Output) -> u8 {
    let (p, planned) = match planned(&args.vars, &args.pipeline, out).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let targets: Vec<(String, String)> = match &args.name {
        Some(n) if p.sinks.contains_key(n) => vec![(format!("sink {n}"), p.sinks[n].from.clone())],
        Some(n) if p.is_relation(n) => vec![(n.clone(), n.clone())],
        Some(n) => {
            out.diagnostic(&unknown_name(&p, n));
            return EXIT_INVALID;
        }
        None => p
            .sinks
            .values()
            .map(|s| (format!("sink {}", s.name), s.from.clone()))
            .collect(),
    };
    for (label, rel) in targets {
        let df = match planned.ctx.table(rel.as_str()).await {
            Ok(df) => df,
            Err(e) => {
                out.diagnostic(&Diagnostic::error(e.to_string()));
                return EXIT_FAILED;
            }
        };
        let state = planned.ctx.state();
        let logical = match state.optimize(df.logical_plan()) {
            Ok(l) => l,
            Err(e) => {
                out.diagnostic(&Diagnostic::error(format!("cannot optimise `{rel}`: {e}")));
                return EXIT_FAILED;
            }
        };
        let physical = match state.create_physical_plan(&logical).await {
            Ok(ph) => ph,
            Err(e) => {
                out.diagnostic(&Diagnostic::error(format!("cannot plan `{rel}`: {e}")));
                return EXIT_FAILED;
            }
        };
        let text = format!(
            "== {label} ({rel}) ==\n-- logical plan (optimised) --\n{}\n-- physical plan --\n{}",
            logical.display_indent(),
            displayable(physical.as_ref()).indent(true)
        );
        out.line(&text);
    }
    EXIT_OK
}

/// `etl graph`.
pub fn graph(args: &GraphArgs, out: Output) -> u8 {
    let opts = match load_options(&args.vars, None, EnvMode::Placeholder, &new_run_id()) {
        Ok(o) => o,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    match load_pipeline(&args.pipeline, &opts, out) {
        Ok(p) => {
            crate::out::text(&crate::plan::graph::render(&p, args.format));
            EXIT_OK
        }
        Err(code) => code,
    }
}

/// `etl preview`.
pub async fn preview(args: &PreviewArgs, out: Output) -> u8 {
    let (p, planned) = match planned(&args.vars, &args.pipeline, out).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let rel = match p.sinks.get(&args.name) {
        Some(s) => s.from.clone(),
        None if p.is_relation(&args.name) => args.name.clone(),
        None => {
            out.diagnostic(&unknown_name(&p, &args.name));
            return EXIT_INVALID;
        }
    };
    let result = async {
        let df = planned.ctx.table(rel.as_str()).await?;
        df.limit(0, Some(args.limit))?.collect().await
    }
    .await;
    match result {
        Ok(batches) => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            out.line(&masked_table(&batches).unwrap_or_else(|e| e.to_string()));
            out.line(&format!(
                "{rows} row{} shown (limit {})",
                if rows == 1 { "" } else { "s" },
                args.limit
            ));
            EXIT_OK
        }
        Err(e) => {
            // A bad row is named by its file and physical line, as `etl run` names it.
            let located =
                crate::run::bad_row_diagnostic(&planned.ctx, &p, &p.upstream(&rel), &e.to_string())
                    .await;
            out.diagnostic(&located.unwrap_or_else(|| {
                Diagnostic::error(format!(
                    "`{rel}`: {}",
                    crate::plan::clean_message(&e.to_string())
                ))
            }));
            EXIT_FAILED
        }
    }
}

/// Rows as a table like Arrow's `pretty_format_batches`, with secrets masked cell by cell so
/// the columns stay aligned.
fn masked_table(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let mask = |s: &str| crate::secrets::redact(s).into_owned();
    let mut table = Table::new();
    table.load_preset("||--+-++|    ++++++");
    let Some(first) = batches.first() else {
        return Ok(table.to_string());
    };
    table.set_header(
        first
            .schema()
            .fields()
            .iter()
            .map(|f| Cell::new(mask(f.name()))),
    );
    let opts = FormatOptions::default().with_display_error(true);
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            table.add_row(
                fmts.iter()
                    .map(|f| Cell::new(mask(&f.value(row).to_string()))),
            );
        }
    }
    Ok(table.to_string())
}
