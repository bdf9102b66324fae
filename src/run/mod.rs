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

pub mod incremental;
mod phases;
mod progress;
pub mod record;
pub mod report;

use std::collections::HashMap;
use std::time::Instant;

use crate::connector::StageCx;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::engine::{EngineOptions, session};
use crate::model::{Check, Pipeline};
use crate::plan::{PlanError, plan_run};
use crate::sink::{self, SinkError};

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
    /// The logical date, for the commit record.
    pub ds: String,
    /// How long to wait for another run's lock (`None`: not at all).
    pub wait: Option<std::time::Duration>,
    /// Ignore the watermarks of incremental sources: read every row.
    pub full_refresh: bool,
}

/// How a run ended badly.
#[derive(Debug)]
pub enum RunError {
    /// The pipeline or the command line is invalid (exit 2).
    Invalid(Diagnostics),
    /// The run failed (exit 1); the report says where.
    Failed(Box<RunOutcome>),
    /// Another run of the pipeline holds its lock (exit 3).
    Locked(Diagnostic),
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// Per-step reports, in execution order.
    pub steps: Vec<StepReport>,
    /// The first error, for the summary.
    pub error: Option<Diagnostic>,
    /// Things the user should know that are not steps (an interrupted commit finished).
    pub notes: Vec<String>,
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
                let d = Diagnostic::error(format!(
                    "--select {s}: no sink, transform or source has this name"
                ));
                diags.push(d.suggest(s, p.sinks.keys().map(String::as_str)));
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
        notes: Vec::new(),
        seconds: 0.0,
    };
    let result = run_phases(p, opts, run_id, &sinks, &needed, &mut out).await;
    out.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => Ok(out),
        Err(Stop::Invalid(mut d)) => {
            for note in out.notes.drain(..).rev() {
                d.0.insert(0, Diagnostic::warning(note).in_file(&p.file));
            }
            Err(RunError::Invalid(d))
        }
        Err(Stop::Failed(d)) => Err(out.failed(d)),
        Err(Stop::Locked(d)) => Err(RunError::Locked(d)),
    }
}

/// Why the phases stopped early.
enum Stop {
    Invalid(Diagnostics),
    Failed(Diagnostic),
    Locked(Diagnostic),
}

async fn run_phases(
    p: &Pipeline,
    opts: &RunOptions,
    run_id: &str,
    sinks: &[String],
    needed: &[String],
    out: &mut RunOutcome,
) -> Result<(), Stop> {
    let new_session = || {
        session(&opts.engine).map_err(|e| {
            Stop::Invalid(one(Diagnostic::error(format!(
                "cannot start the engine: {e}"
            ))))
        })
    };
    let ctx = new_session()?;
    let shared = sink::RunResources::default();
    let (no_marks, no_runs) = (HashMap::new(), HashMap::new());
    // Refuse to replace what etl did not write, before any data is read.
    check_targets(
        p,
        sinks,
        &StageCx {
            ctx: &ctx,
            pipeline: p,
            run_id,
            shared: &shared,
            marks: &no_marks,
            prev_runs: &no_runs,
        },
    )
    .await?;
    let t0 = Instant::now();
    let planned = match plan_run(ctx, p, Some(needed), &HashMap::new()).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(d)) => return Err(Stop::Invalid(d)),
        Err(PlanError::Source(_, d)) => return Err(Stop::Failed(d)),
    };
    // What the writers cannot do is an invalid pipeline, found before any data moves.
    let mut invalid = Diagnostics::default();
    for name in sinks {
        let s = &p.sinks[name];
        if let Some(schema) = planned.schemas.get(&s.from) {
            for d in crate::sink::columns::partition_diagnostics(p, s, schema) {
                invalid.push(d);
            }
        }
    }
    if invalid.has_errors() {
        return Err(Stop::Invalid(invalid));
    }
    let checks_of = |needed: &[String]| -> Vec<Check> {
        p.checks
            .iter()
            .filter(|c| needed.contains(&c.target))
            .cloned()
            .collect()
    };
    if opts.dry_run {
        return phases::dry_run(&planned.ctx, p, sinks, &checks_of(needed), out)
            .await
            .map_err(|d| Stop::Invalid(one(d)));
    }
    // One run of a pipeline at a time. Planning came first so that an invalid pipeline
    // leaves nothing behind, not even a lock file.
    let _lock = crate::state::PipelineLock::acquire(&p.state_dir, &p.name, run_id, opts.wait)
        .map_err(|e| match e {
            crate::state::LockError::Held { .. } => {
                Stop::Locked(Diagnostic::error(e.to_string()).in_file(&p.file))
            }
            crate::state::LockError::Io { .. } => {
                Stop::Failed(Diagnostic::error(e.to_string()).in_file(&p.file))
            }
        })?;
    let store = crate::state::store::StateStore::new(&p.state_dir, p.state_url.as_deref())
        .map_err(|e| Stop::Failed(Diagnostic::error(e.to_string()).in_file(&p.file)))?;
    let _state_lock = store
        .lock(&crate::state::key(&p.name))
        .await
        .map_err(|e| match e {
            crate::state::store::StateError::Locked(_) => {
                Stop::Locked(Diagnostic::error(e.to_string()).in_file(&p.file))
            }
            other => Stop::Failed(Diagnostic::error(other.to_string()).in_file(&p.file)),
        })?;
    // First put right what an interrupted earlier run left: its commit, its staging.
    match sink::recover(&planned.ctx, p).await {
        Ok(Some(note)) => out.notes.push(note),
        Ok(None) => {}
        Err(e) => return Err(Stop::Failed(recovery_failure(p, &e))),
    }
    for s in p.sinks.values() {
        sink::remove_stale_staging(&planned.ctx, p, s, run_id).await;
    }
    // What each database sink's own records say it holds.
    let (mut sink_marks, mut prev_runs) = (HashMap::new(), HashMap::new());
    {
        let cx = StageCx {
            ctx: &planned.ctx,
            pipeline: p,
            run_id,
            shared: &shared,
            marks: &no_marks,
            prev_runs: &no_runs,
        };
        for name in sinks {
            let s = &p.sinks[name];
            match s.spec.committed(&cx, s).await {
                Ok(Some(c)) => {
                    sink_marks.insert(name.clone(), c.marks);
                    prev_runs.insert(name.clone(), c.run_id);
                }
                Ok(None) => {}
                Err(e) => return Err(Stop::Failed(place(p, &s.yaml_path, e.to_string()))),
            }
        }
    }
    let inc = incremental::plan(
        &planned.ctx,
        p,
        sinks,
        &sink_marks,
        opts.full_refresh,
        run_id,
    )
    .await
    .map_err(Stop::Failed)?;
    out.notes.extend(inc.notes.iter().cloned());
    for name in needed.iter().filter(|n| p.sources.contains_key(*n)) {
        out.steps.push(
            StepReport::new(name, StepKind::Source, StepStatus::Ok)
                .timed(t0.elapsed().as_secs_f64()),
        );
    }
    let progress = progress::Progress::new(opts.progress);
    let mut staged = Vec::new();
    let mut bad_rows = planned.bad_rows.clone();
    let mut reads = vec![planned.reads.clone()];
    let mut first = Some(planned.ctx);
    let result = async {
        for group in &inc.groups {
            let group_needed: Vec<String> = needed
                .iter()
                .filter(|n| group.sinks.iter().any(|k| p.upstream(k).contains(n)))
                .cloned()
                .collect();
            // Incremental sources read only their new rows: plan again with those bounds.
            let ctx = match (group.bounds.is_empty(), first.take()) {
                (true, Some(ctx)) => ctx,
                _ => match plan_run(new_session()?, p, Some(&group_needed), &group.bounds).await
                {
                    Ok(pl) => {
                        bad_rows.extend(pl.bad_rows);
                        reads.push(pl.reads);
                        pl.ctx
                    }
                    Err(PlanError::Invalid(d)) => return Err(Stop::Invalid(d)),
                    Err(PlanError::Source(_, d)) => return Err(Stop::Failed(d)),
                },
            };
            let cx = phases::Cx {
                ctx: &ctx,
                p,
                needed: &group_needed,
                run_id,
                ds: &opts.ds,
                progress: &progress,
                shared: &shared,
                marks: &inc.marks,
                prev_runs: &prev_runs,
            };
            let checks = checks_of(&group_needed);
            let r = async {
                phases::materialize_shared(&cx, &group.sinks, &checks, out).await?;
                phases::run_checks(&cx, &checks, out).await?;
                phases::write_sinks(&cx, &group.sinks, out).await
            }
            .await;
            match r {
                Ok(s) => staged.extend(s),
                Err(d) => {
                    let commit_cx = sink::CommitCx {
                        ctx: &ctx,
                        pipeline: p,
                        run_id,
                        shared: &shared,
                    };
                    for (st, _) in staged.iter_mut() {
                        st.abort(&commit_cx).await;
                    }
                    return Err(Stop::Failed(d));
                }
            }
            first = Some(ctx);
        }
        crate::fault::point("staged");
        let ctx = first.take().unwrap_or(new_session()?);
        let cx = phases::Cx {
            ctx: &ctx,
            p,
            needed,
            run_id,
            ds: &opts.ds,
            progress: &progress,
            shared: &shared,
            marks: &inc.marks,
            prev_runs: &prev_runs,
        };
        phases::commit_all(&cx, staged, inc.state.clone(), out)
            .await
            .map_err(Stop::Failed)
    }
    .await;
    progress.clear();
    for step in out.steps.iter_mut().filter(|s| s.kind == StepKind::Source) {
        // Each plan reads its own rows (incremental groups read different bounds).
        let per_plan: Vec<u64> = reads
            .iter()
            .filter_map(|r| r.get(&step.name).and_then(|c| c.rows()))
            .collect();
        if !per_plan.is_empty() {
            step.rows = Some(per_plan.iter().sum());
        }
    }
    for log in &bad_rows {
        if let Some(summary) = log.summary()
            && let Some(step) = out
                .steps
                .iter_mut()
                .find(|s| s.kind == StepKind::Source && s.name == log.source)
        {
            step.detail = Some(summary);
        }
    }
    result
}

/// Before any data is read: every sink's target may be replaced by this run.
async fn check_targets(p: &Pipeline, sinks: &[String], cx: &StageCx<'_>) -> Result<(), Stop> {
    for name in sinks {
        let s = &p.sinks[name];
        if let Err(e) = s.spec.check_ownership(cx, s).await {
            let d = place(p, &format!("{}.path", s.yaml_path), e.to_string());
            return Err(match e {
                SinkError::Foreign { .. } => Stop::Invalid(one(d.with_help(
                    "point the sink elsewhere, move those files away, or set `replace_existing: true` on the sink to let it replace them",
                ))),
                _ => Stop::Failed(place(p, &s.yaml_path, e.to_string())),
            });
        }
    }
    Ok(())
}

fn one(d: Diagnostic) -> Diagnostics {
    let mut ds = Diagnostics::default();
    ds.push(d);
    ds
}

fn recovery_failure(p: &Pipeline, e: &SinkError) -> Diagnostic {
    crate::engine_error::polish(
        Diagnostic::error(format!("cannot finish the commit of an interrupted run: {e}"))
            .in_file(&p.file),
    )
    .with_help("fix the cause and run again, or run `etl state` on the pipeline; nothing of this run was written")
}

/// A diagnostic at a YAML path of the pipeline file, engine text explained.
fn place(p: &Pipeline, yaml_path: &str, message: String) -> Diagnostic {
    crate::engine_error::polish(
        Diagnostic::error(message)
            .in_file(&p.file)
            .at_path(yaml_path)
            .at(p.pos(yaml_path)),
    )
}
