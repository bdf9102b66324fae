//! Running a pipeline: plan, materialise shared transforms, run checks, write sinks, commit.
//!
//! Order of a run, and why:
//! 1. sources and transforms are registered (transforms as lazy views);
//! 2. a transform read by more than one sink or check is computed once and kept;
//! 3. checks run (concurrently); a failed `error` check stops the run before any write;
//! 4. sinks write concurrently into staging places;
//! 5. only if all succeeded is every staged output moved into place.
//!
//! Whatever happens, a run record is written under the state folder.

mod progress;
pub mod record;
pub mod report;

use std::collections::HashMap;
use std::time::Instant;

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::future::join_all;

use crate::check::{CheckOutcome, run_check};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::engine::{EngineOptions, session};
use crate::model::Pipeline;
use crate::plan::{PlanError, SourceMode, plan};
use crate::sink::{self, SinkError, Staged};
use crate::spec::SourceSpec;
use crate::spec::sink::SinkMode;

pub use record::RunRecord;
pub use report::{StepKind, StepReport, StepStatus};

/// Run settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Sinks to run (with what they need); all when empty.
    pub select: Vec<String>,
    /// Plan and check everything, move no data.
    pub dry_run: bool,
    /// Engine settings.
    pub engine: EngineOptions,
    /// Show progress spinners (a terminal, text logs).
    pub progress: bool,
}

/// How a run ended badly.
#[derive(Debug)]
pub enum RunError {
    /// The pipeline or the command line is invalid (exit 2).
    Invalid(Diagnostics),
    /// The run failed (exit 1); the report says where.
    Failed(Box<RunOutcome>),
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// Per-step reports, in execution order.
    pub steps: Vec<StepReport>,
    /// The first error, for the summary.
    pub error: Option<Diagnostic>,
    /// Wall time.
    pub seconds: f64,
}

impl RunOutcome {
    fn failed(mut self, d: Diagnostic) -> RunError {
        self.error = Some(d);
        RunError::Failed(Box::new(self))
    }
}

/// The sinks a run writes, and every source and transform they need.
pub fn selection(
    p: &Pipeline,
    select: &[String],
) -> Result<(Vec<String>, Vec<String>), Diagnostics> {
    let mut diags = Diagnostics::default();
    let sinks: Vec<String> = if select.is_empty() {
        p.sinks.keys().cloned().collect()
    } else {
        let mut out = Vec::new();
        for s in select {
            if p.sinks.contains_key(s) {
                out.push(s.clone());
            } else if p.is_relation(s) {
                // A source or transform: the sinks that read it.
                let readers: Vec<String> = p
                    .sinks
                    .values()
                    .filter(|k| p.upstream(&k.name).contains(s))
                    .map(|k| k.name.clone())
                    .collect();
                if readers.is_empty() {
                    diags.push(Diagnostic::error(format!(
                        "--select {s}: no sink reads `{s}`"
                    )));
                }
                out.extend(readers);
            } else {
                let mut d = Diagnostic::error(format!(
                    "--select {s}: no sink, transform or source has this name"
                ));
                if let Some(h) =
                    crate::diagnostic::did_you_mean(s, p.sinks.keys().map(String::as_str))
                {
                    d = d.with_help(h);
                }
                diags.push(d);
            }
        }
        out.dedup();
        out
    };
    if diags.has_errors() {
        return Err(diags);
    }
    let mut needed: Vec<String> = Vec::new();
    for s in &sinks {
        for n in p.upstream(s) {
            if !needed.contains(&n) {
                needed.push(n);
            }
        }
    }
    Ok((sinks, needed))
}

/// Runs a pipeline once.
pub async fn run(p: &Pipeline, opts: &RunOptions, run_id: &str) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let (sinks, needed) = selection(p, &opts.select).map_err(RunError::Invalid)?;
    let mut out = RunOutcome {
        steps: Vec::new(),
        error: None,
        seconds: 0.0,
    };
    let ctx = session(&opts.engine).map_err(|e| {
        RunError::Invalid(one(Diagnostic::error(format!(
            "cannot start the engine: {e}"
        ))))
    })?;

    for name in &sinks {
        let s = &p.sinks[name];
        if s.mode == SinkMode::ErrorIfExists && sink::exists_non_empty(&ctx, &s.location).await {
            let e = SinkError::Exists {
                name: s.name.clone(),
                path: s.location.clone(),
            };
            return Err(out.failed(place(p, &s.yaml_path, e.to_string())));
        }
    }

    let t0 = Instant::now();
    let planned = match plan(ctx, p, SourceMode::Strict, Some(&needed)).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(d)) => return Err(RunError::Invalid(d)),
        Err(PlanError::Source(_, d)) => return Err(out.failed(d)),
    };
    let ctx = planned.ctx;
    for name in needed.iter().filter(|n| p.sources.contains_key(*n)) {
        out.steps.push(
            StepReport::new(name, StepKind::Source, StepStatus::Ok)
                .timed(t0.elapsed().as_secs_f64()),
        );
    }

    let checks: Vec<_> = p
        .checks
        .iter()
        .filter(|c| needed.contains(&c.target))
        .cloned()
        .collect();
    if opts.dry_run {
        for c in &checks {
            crate::check::failing_rows(
                ctx.table(c.target.as_str())
                    .await
                    .map_err(|e| RunError::Invalid(one(place(p, &c.yaml_path, e.to_string()))))?,
                &c.kind,
            )
            .map_err(|e| {
                RunError::Invalid(one(place(
                    p,
                    &c.yaml_path,
                    format!(
                        "check `{}`: {}",
                        c.name,
                        crate::plan::clean_message(&e.to_string())
                    ),
                )))
            })?;
        }
        for s in &sinks {
            out.steps.push(
                StepReport::new(s, StepKind::Sink, StepStatus::Skipped)
                    .with_detail(format!("dry run: would write {}", p.sinks[s].location)),
            );
        }
        out.seconds = started.elapsed().as_secs_f64();
        return Ok(out);
    }

    let progress = progress::Progress::new(opts.progress);
    if let Err(d) = materialize_shared(&ctx, p, &sinks, &checks, &mut out, &progress).await {
        return Err(out.failed(d));
    }

    // Checks.
    let results = join_all(checks.iter().map(|c| {
        let bar = progress.step(&format!("check {} on {}", c.name, c.target));
        let ctx = &ctx;
        async move {
            let t = Instant::now();
            let r = run_check(ctx, c).await;
            bar.finish();
            (c, r, t.elapsed().as_secs_f64())
        }
    }))
    .await;
    let mut fatal: Option<Diagnostic> = None;
    for (c, r, secs) in results {
        match r {
            Ok(outcome) => {
                let status = if outcome.passed() {
                    StepStatus::Ok
                } else if outcome.is_fatal() {
                    StepStatus::Failed
                } else {
                    StepStatus::Warned
                };
                if outcome.is_fatal() && fatal.is_none() {
                    fatal = Some(check_failure(p, &outcome));
                }
                out.steps.push(check_step(&outcome, status, secs));
            }
            Err(e) => {
                let d = read_failure(
                    &ctx,
                    p,
                    &needed,
                    &e,
                    &c.yaml_path,
                    &format!("check `{}` on `{}`", c.name, c.target),
                )
                .await;
                out.steps.push(
                    StepReport::new(
                        &format!("{}: {}", c.target, c.name),
                        StepKind::Check,
                        StepStatus::Failed,
                    )
                    .timed(secs)
                    .with_detail(d.message.clone()),
                );
                fatal.get_or_insert(d);
            }
        }
    }
    if let Some(d) = fatal {
        progress.clear();
        out.seconds = started.elapsed().as_secs_f64();
        return Err(out.failed(d));
    }

    // Sinks: write everything to staging, concurrently.
    let writes = join_all(sinks.iter().map(|name| {
        let s = &p.sinks[name];
        let bar = progress.step(&format!("sink {name} → {}", s.location));
        let ctx = &ctx;
        async move {
            let t = Instant::now();
            let r = match ctx.table(s.from.as_str()).await {
                Ok(df) => sink::write(ctx, p, s, df, run_id).await,
                Err(error) => Err(SinkError::Write {
                    name: s.name.clone(),
                    error,
                }),
            };
            bar.finish();
            (s, r, t.elapsed().as_secs_f64())
        }
    }))
    .await;
    progress.clear();
    let mut staged: Vec<(Staged, f64)> = Vec::new();
    let mut failure: Option<Diagnostic> = None;
    for (s, r, secs) in writes {
        match r {
            Ok(st) => staged.push((st, secs)),
            Err(e) => {
                let d = match &e {
                    SinkError::Write { error, .. } => {
                        read_failure(
                            &ctx,
                            p,
                            &needed,
                            error,
                            &s.yaml_path,
                            &format!("sink `{}`", s.name),
                        )
                        .await
                    }
                    other => place(p, &s.yaml_path, other.to_string()),
                };
                out.steps.push(
                    StepReport::new(&s.name, StepKind::Sink, StepStatus::Failed)
                        .timed(secs)
                        .with_detail(d.message.clone()),
                );
                failure.get_or_insert(d);
                // Remove whatever a failed writer left in its staging place.
                sink::remove_staging(&ctx, &sink_staging(s, run_id)).await;
            }
        }
    }
    if let Some(d) = failure {
        for (st, secs) in &staged {
            sink::abort(&ctx, st).await;
            out.steps.push(
                StepReport::new(&st.sink.name, StepKind::Sink, StepStatus::Skipped)
                    .timed(*secs)
                    .with_detail("written, not committed: another sink failed".into()),
            );
        }
        out.seconds = started.elapsed().as_secs_f64();
        return Err(out.failed(d));
    }
    // Commit.
    for (i, (st, secs)) in staged.iter().enumerate() {
        if let Err(e) = sink::commit(&ctx, st, run_id).await {
            for (rest, _) in &staged[i + 1..] {
                sink::abort(&ctx, rest).await;
            }
            sink::abort(&ctx, st).await;
            out.steps.push(
                StepReport::new(&st.sink.name, StepKind::Sink, StepStatus::Failed)
                    .timed(*secs)
                    .with_detail(e.to_string()),
            );
            out.seconds = started.elapsed().as_secs_f64();
            return Err(out.failed(place(p, &st.sink.yaml_path, e.to_string())));
        }
        out.steps.push(
            StepReport::new(&st.sink.name, StepKind::Sink, StepStatus::Ok)
                .timed(*secs)
                .with_rows(st.rows)
                .with_bytes(st.bytes)
                .with_detail(format!(
                    "{} file{} → {}",
                    st.files,
                    if st.files == 1 { "" } else { "s" },
                    st.sink.location
                )),
        );
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn sink_staging(s: &crate::model::Sink, run_id: &str) -> String {
    crate::sink::staging_location(s, run_id)
}

fn one(d: Diagnostic) -> Diagnostics {
    let mut ds = Diagnostics::default();
    ds.push(d);
    ds
}

fn place(p: &Pipeline, yaml_path: &str, message: String) -> Diagnostic {
    Diagnostic::error(message)
        .in_file(&p.file)
        .at_path(yaml_path)
        .at(p.pos(yaml_path))
}

/// Materialises transforms read by more than one sink or check, so they are computed once.
async fn materialize_shared(
    ctx: &SessionContext,
    p: &Pipeline,
    sinks: &[String],
    checks: &[crate::model::Check],
    out: &mut RunOutcome,
    progress: &progress::Progress,
) -> Result<(), Diagnostic> {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for s in sinks {
        *readers.entry(p.sinks[s].from.as_str()).or_default() += 1;
    }
    for c in checks {
        *readers.entry(c.target.as_str()).or_default() += 1;
    }
    for (name, t) in &p.transforms {
        if readers.get(name.as_str()).copied().unwrap_or(0) < 2 {
            continue;
        }
        let bar = progress.step(&format!("transform {name} (shared, computed once)"));
        let start = Instant::now();
        let df = ctx
            .table(name.as_str())
            .await
            .map_err(|e| place(p, &format!("transforms.{name}"), e.to_string()))?;
        let needed = p.upstream(name);
        let cached = match df.cache().await {
            Ok(c) => c,
            Err(e) => {
                return Err(read_failure(
                    ctx,
                    p,
                    &needed,
                    &e,
                    &format!("transforms.{}", t.name),
                    &format!("transform `{name}`"),
                )
                .await);
            }
        };
        let rows = cached.clone().count().await.unwrap_or(0) as u64;
        let _ = ctx.deregister_table(name.as_str());
        ctx.register_table(name.as_str(), cached.into_view())
            .map_err(|e| place(p, &format!("transforms.{name}"), e.to_string()))?;
        bar.finish();
        out.steps.push(
            StepReport::new(name, StepKind::Transform, StepStatus::Ok)
                .timed(start.elapsed().as_secs_f64())
                .with_rows(rows)
                .with_detail("shared: computed once".into()),
        );
    }
    Ok(())
}

/// Explains a failure while reading: if a CSV or JSON source has a bad row, say exactly where.
async fn read_failure(
    ctx: &SessionContext,
    p: &Pipeline,
    needed: &[String],
    err: &DataFusionError,
    yaml_path: &str,
    what: &str,
) -> Diagnostic {
    let text = err.to_string();
    let parse_error = [
        "Parser error",
        "Csv error",
        "Json error",
        "parsing value",
        "Error parsing",
        "Cast error",
        "incorrect number of fields",
        "Encountered unexpected",
        "not a valid",
    ]
    .iter()
    .any(|m| text.contains(m));
    if parse_error {
        for name in needed {
            let Some(src) = p.sources.get(name) else {
                continue;
            };
            if !matches!(src.spec, SourceSpec::Csv(_) | SourceSpec::Json(_)) {
                continue;
            }
            let Ok(table) = ctx.table_provider(name.as_str()).await else {
                continue;
            };
            if let Some(bad) = crate::source::locate_bad_row(ctx, src, table.schema()).await {
                let path_key = format!("{}.path", src.yaml_path);
                return Diagnostic::error(bad.to_string())
                    .in_file(&p.file)
                    .at_path(path_key.clone())
                    .at(p.pos(&path_key))
                    .with_help(
                        "fix the row, or declare the column with a type that fits it in `schema:`",
                    );
            }
        }
    }
    place(
        p,
        yaml_path,
        format!("{what}: {}", crate::plan::clean_message(&text)),
    )
}

fn check_failure(p: &Pipeline, o: &CheckOutcome) -> Diagnostic {
    let mut d = place(
        p,
        &o.check.yaml_path,
        format!(
            "check {} on `{}` failed: {}",
            o.check.name, o.check.target, o.detail
        ),
    );
    if let Some(s) = &o.sample {
        d = d.with_help(format!(
            "failing rows (first {}):\n{s}",
            s.lines().count().saturating_sub(4)
        ));
    }
    d
}

fn check_step(o: &CheckOutcome, status: StepStatus, secs: f64) -> StepReport {
    StepReport::new(
        &format!("{}: {}", o.check.target, o.check.name),
        StepKind::Check,
        status,
    )
    .timed(secs)
    .with_detail(o.detail.clone())
}
