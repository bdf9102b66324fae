//! `etl run`: one run per pipeline and logical date.

use std::path::Path;

use chrono::{Duration, NaiveDate, Utc};

use super::{
    EXIT_FAILED, EXIT_INVALID, EXIT_LOCKED, EXIT_OK, Output, load_options, load_pipeline,
    new_run_id, parse_date_arg, parse_wait,
};
use crate::cli::{LogFormat, RunArgs};
use crate::engine::{EngineOptions, parse_size};
use crate::run::report::{DayResult, StepKind};
use crate::run::{RunError, RunOptions, RunOutcome, RunRecord, report};
use crate::template::EnvMode;

/// Runs every pipeline for every date; the exit code is the worst seen.
pub async fn run(args: &RunArgs, out: Output) -> u8 {
    let dates = match dates(args) {
        Ok(d) => d,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let memory_limit = match &args.memory_limit {
        Some(s) => match parse_size(s) {
            Some(n) => Some(n),
            None => {
                out.diagnostic(
                    &crate::diagnostic::Diagnostic::error(format!(
                        "--memory-limit `{s}` is not a size"
                    ))
                    .with_help("write e.g. 2GiB or 512MB"),
                );
                return EXIT_INVALID;
            }
        },
        None => None,
    };
    let wait = match parse_wait(&args.wait) {
        Ok(w) => w,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let mut worst = EXIT_OK;
    for file in &args.pipelines {
        let mut days = Vec::new();
        for ds in &dates {
            let (code, rows) = run_one(file, *ds, args, memory_limit, wait, out).await;
            worst = worst.max(code);
            days.extend(ds.map(|d| DayResult {
                ds: d.to_string(),
                status: status_name(code),
                rows,
            }));
            if code == EXIT_INVALID || code == EXIT_LOCKED {
                break;
            }
        }
        if dates.len() > 1 {
            print_rollup(file, &days, out);
        }
    }
    worst
}

fn status_name(code: u8) -> &'static str {
    match code {
        EXIT_OK => "success",
        EXIT_INVALID => "invalid",
        EXIT_LOCKED => "locked",
        _ => "failed",
    }
}

/// The end of a backfill: one line per date and the dates that failed.
fn print_rollup(file: &Path, days: &[DayResult], out: Output) {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match out.format {
        LogFormat::Text => out.line(&report::backfill_rollup(&name, days)),
        LogFormat::Json => out.json(serde_json::json!({
            "event": "backfill",
            "pipeline": name,
            "dates": days,
            "failed": days.iter().filter(|d| d.status != "success").map(|d| &d.ds).collect::<Vec<_>>(),
        })),
    }
}

fn dates(args: &RunArgs) -> Result<Vec<Option<NaiveDate>>, crate::diagnostic::Diagnostic> {
    match (&args.from, &args.to) {
        (Some(f), Some(t)) => {
            let from = parse_date_arg("--from", f)?;
            let to = parse_date_arg("--to", t)?;
            if to < from {
                return Err(crate::diagnostic::Diagnostic::error(format!(
                    "--to {to} is before --from {from}"
                )));
            }
            let n = (to - from).num_days();
            Ok((0..=n).map(|i| Some(from + Duration::days(i))).collect())
        }
        _ => match &args.vars.date {
            Some(d) => Ok(vec![Some(parse_date_arg("--date", d)?)]),
            None => Ok(vec![None]),
        },
    }
}

/// One run of one pipeline for one date: its exit code and the rows its sinks wrote.
async fn run_one(
    file: &Path,
    ds: Option<NaiveDate>,
    args: &RunArgs,
    memory_limit: Option<usize>,
    wait: Option<std::time::Duration>,
    out: Output,
) -> (u8, u64) {
    let run_id = new_run_id();
    let opts = match load_options(&args.vars, ds, EnvMode::Strict, &run_id) {
        Ok(o) => o,
        Err(d) => {
            out.diagnostic(&d);
            return (EXIT_INVALID, 0);
        }
    };
    let ds = opts.ds;
    let pipeline = match load_pipeline(file, &opts, out) {
        Ok(p) => p,
        Err(code) => return (code, 0),
    };
    let started_at = Utc::now();
    tracing::info!(pipeline = %pipeline.name, ds = %ds, run_id = %run_id, "run started");
    if out.format == LogFormat::Text {
        out.err_line(&format!(
            "etl run {} (ds={ds}, run {})",
            pipeline.name,
            &run_id[..8]
        ));
    }
    let engine = EngineOptions {
        memory_limit: memory_limit
            .or_else(|| pipeline.engine.memory_limit.as_deref().and_then(parse_size)),
        spill_dir: args.spill_dir.clone(),
        target_partitions: args.threads.or(pipeline.engine.target_partitions),
        batch_size: pipeline.engine.batch_size,
    };
    let run_opts = RunOptions {
        select: args.select.clone(),
        dry_run: args.dry_run,
        engine,
        progress: out.tty && out.format == LogFormat::Text,
        ds: ds.to_string(),
        wait,
        full_refresh: args.full_refresh,
        from_landed: args.from_landed,
    };
    let result = crate::run::run(&pipeline, &run_opts, &run_id).await;
    let (code, outcome) = match result {
        Ok(o) => (EXIT_OK, o),
        Err(RunError::Invalid(d)) => {
            out.diagnostics(&d);
            return (EXIT_INVALID, 0);
        }
        Err(RunError::Failed(o)) => (EXIT_FAILED, *o),
        Err(RunError::Locked(d)) => {
            out.diagnostic(&d);
            return (EXIT_LOCKED, 0);
        }
    };
    let record = RunRecord {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        file: pipeline.file.display().to_string(),
        ds: ds.to_string(),
        status: if code == EXIT_OK { "success" } else { "failed" }.into(),
        started_at: started_at.to_rfc3339(),
        finished_at: Utc::now().to_rfc3339(),
        seconds: outcome.seconds,
        vars: serde_json::to_value(&pipeline.vars).unwrap_or_default(),
        select: args.select.clone(),
        steps: outcome.steps.clone(),
        error: outcome.error.as_ref().map(|d| d.to_string()),
    };
    let record_path = if args.dry_run {
        None
    } else {
        record.write(&pipeline.state_dir).ok()
    };
    print_outcome(&pipeline.name, &outcome, code, record_path.as_deref(), out);
    let written = outcome
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Sink)
        .filter_map(|s| s.rows)
        .sum();
    (code, written)
}

fn print_outcome(name: &str, outcome: &RunOutcome, code: u8, record: Option<&Path>, out: Output) {
    for note in &outcome.notes {
        match out.format {
            LogFormat::Text => crate::out::err_line(&format!("note: {note}")),
            LogFormat::Json => {
                out.json(serde_json::json!({"event": "note", "pipeline": name, "message": note}))
            }
        }
    }
    match out.format {
        LogFormat::Text => {
            if !outcome.steps.is_empty() {
                out.line(&report::summary_table(&outcome.steps));
            }
            if let Some(d) = &outcome.error {
                out.diagnostic(d);
            }
            let status = if code == EXIT_OK { "success" } else { "FAILED" };
            let rec = record
                .map(|p| format!(" — run record: {}", p.display()))
                .unwrap_or_default();
            out.line(&format!("{name}: {status} in {:.2}s{rec}", outcome.seconds));
        }
        LogFormat::Json => {
            for s in &outcome.steps {
                out.json(serde_json::json!({"event": "step", "pipeline": name, "step": s}));
            }
            out.json(serde_json::json!({
                "event": "run",
                "pipeline": name,
                "status": if code == EXIT_OK { "success" } else { "failed" },
                "seconds": outcome.seconds,
                "error": outcome.error.as_ref().map(|d| d.to_json()),
                "run_record": record.map(|p| p.display().to_string()),
            }));
        }
    }
    if code == EXIT_FAILED {
        tracing::error!(pipeline = name, "run failed");
    }
}
