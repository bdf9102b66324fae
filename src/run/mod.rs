//! Running a pipeline: plan, materialise shared transforms, run checks, write sinks, commit.
//!
//! Order of a run, and why:
//! 1. sources and transforms are registered (transforms as lazy views);
//! 2. every check in scope is planned, so a check that cannot be (a misspelt column) makes
//!    the pipeline invalid before any data is read;
//! 3. a transform read by more than one sink or check is computed once and kept;
//! 4. checks run (concurrently): every check, also on what no sink reads (with `--select`,
//!    those on what the selected sinks read); a failed `error` check stops the run before
//!    any write;
//! 5. sinks write concurrently into staging places;
//! 6. only if all succeeded is every staged output moved into place.
//!
//! Whatever happens, a run record is written under the state folder.

mod badrows;
pub mod incremental;
mod phases;
mod progress;
pub mod record;
pub mod report;
pub mod scope;
mod sources;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::connector::StageCx;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::engine::{EngineOptions, session};
use crate::model::Pipeline;
use crate::plan::{PlanError, PlanOptions, SourceMode, plan_with};
use crate::sink::{self, SinkError};
use crate::source::BadRowLog;

pub use badrows::bad_row_diagnostic;
pub use record::RunRecord;
pub use report::{StepKind, StepReport, StepStatus};
pub use scope::{Selection, selection};

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
    /// Read HTTP sources from what they landed instead of calling their APIs.
    pub from_landed: bool,
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

/// Runs a pipeline once.
pub async fn run(p: &Pipeline, opts: &RunOptions, run_id: &str) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let sel = selection(p, &opts.select).map_err(RunError::Invalid)?;
    let mut out = RunOutcome {
        steps: Vec::new(),
        error: None,
        notes: sel.left_out_note().into_iter().collect(),
        seconds: 0.0,
    };
    if opts.from_landed {
        sources::check_replay(p, &sel.needed).map_err(RunError::Invalid)?;
    }
    let result = run_phases(p, opts, run_id, &sel, &mut out).await;
    sources::add_read_stats(p, &sel.needed, run_id, &mut out);
    out.seconds = started.elapsed().as_secs_f64();
    for c in &sel.left_out {
        out.steps.push(
            StepReport::new(
                &phases::check_step_name(c),
                StepKind::Check,
                StepStatus::Skipped,
            )
            .with_detail(format!(
                "left out by --select: no selected sink reads `{}`",
                c.target
            )),
        );
    }
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
    sel: &Selection,
    out: &mut RunOutcome,
) -> Result<(), Stop> {
    let (sinks, needed) = (&sel.sinks[..], &sel.needed[..]);
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
    let plan_opts = PlanOptions {
        only: Some(needed),
        bounds: None,
        from_landed: opts.from_landed,
        probe: opts.dry_run,
        full_refresh: opts.full_refresh,
    };
    let planned = match plan_with(ctx, p, SourceMode::Strict, &plan_opts).await {
        Ok(pl) => pl,
        Err(PlanError::Invalid(d)) => return Err(Stop::Invalid(d)),
        Err(PlanError::Source(_, d)) => return Err(Stop::Failed(d)),
    };
    // Checks are planned with everything else, before any data moves.
    scope::plan_checks(&planned.ctx, p, &sel.checks)
        .await
        .map_err(Stop::Invalid)?;
    if opts.dry_run {
        return phases::dry_run(&planned.ctx, p, sinks, &sel.checks, out)
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
    // Sinks named in a source's `quarantine:` receive its bad rows once every other reader
    // of the source is done: they are staged after the groups.
    let quarantine_sinks: Vec<(String, Arc<BadRowLog>)> = p
        .bad_rows
        .all()
        .into_iter()
        .filter_map(|log| {
            let sink = log.sink.clone().filter(|s| sinks.contains(s))?;
            Some((sink, log))
        })
        .collect();
    let sinks: Vec<String> = sinks
        .iter()
        .filter(|s| !quarantine_sinks.iter().any(|(q, _)| q == *s))
        .cloned()
        .collect();
    let sinks = sinks.as_slice();
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
    // What the file sources read is known now: their `after_commit` moves.
    let after = sources::after_commit_entries(&planned.ctx, p, sinks, needed, &mut out.notes)
        .await
        .map_err(Stop::Failed)?;
    for name in needed.iter().filter(|n| p.sources.contains_key(*n)) {
        out.steps.push(
            StepReport::new(name, StepKind::Source, StepStatus::Ok)
                .timed(t0.elapsed().as_secs_f64()),
        );
    }
    let progress = progress::Progress::new(opts.progress);
    let mut staged = Vec::new();
    let assigned = scope::assign(p, sel, &inc.groups);
    let mut reads: Vec<_> = planned.reads.into_iter().collect();
    let mut first = Some(planned.ctx);
    let result = async {
        if let Some(ctx) = first.as_ref().filter(|_| !assigned.before.is_empty()) {
            // Checks on what no sink reads, on whole sources.
            let cx = phases::Cx {
                ctx,
                p,
                needed,
                run_id,
                ds: &opts.ds,
                progress: &progress,
                shared: &shared,
                marks: &inc.marks,
                prev_runs: &prev_runs,
            };
            phases::materialize_shared(&cx, &[], &assigned.before, out)
                .await
                .map_err(Stop::Failed)?;
            phases::run_checks(&cx, &assigned.before, out)
                .await
                .map_err(Stop::Failed)?;
        }
        for (group, (group_needed, checks)) in inc.groups.iter().zip(&assigned.groups) {
            // Incremental sources read only their new rows: plan again with those bounds.
            let ctx = match (group.bounds.is_empty(), first.take()) {
                (true, Some(ctx)) => ctx,
                _ => match plan_with(
                    new_session()?,
                    p,
                    SourceMode::Strict,
                    &PlanOptions {
                        only: Some(group_needed),
                        bounds: Some(&group.bounds),
                        ..plan_opts
                    },
                )
                .await
                {
                    Ok(pl) => {
                        reads.extend(pl.reads);
                        pl.ctx
                    }
                    Err(PlanError::Invalid(d)) => return Err(Stop::Invalid(d)),
                    Err(PlanError::Source(_, d)) => return Err(Stop::Failed(d)),
                },
            };
            let cx = phases::Cx {
                ctx: &ctx,
                p,
                needed: group_needed,
                run_id,
                ds: &opts.ds,
                progress: &progress,
                shared: &shared,
                marks: &inc.marks,
                prev_runs: &prev_runs,
            };
            let r = async {
                phases::materialize_shared(&cx, &group.sinks, checks, out).await?;
                phases::run_checks(&cx, checks, out).await?;
                phases::write_sinks(&cx, &group.sinks, out).await
            }
            .await;
            match r {
                Ok(s) => staged.extend(s),
                Err(d) => {
                    phases::abort_staged(&cx, &mut staged).await;
                    return Err(Stop::Failed(d));
                }
            }
            first = Some(ctx);
        }
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
        if let Err(d) = badrows::settle(&cx, &quarantine_sinks, &mut staged, out).await {
            phases::abort_staged(&cx, &mut staged).await;
            return Err(Stop::Failed(d));
        }
        crate::fault::point("staged");
        phases::commit_all(&cx, staged, inc.state.clone(), after, out)
            .await
            .map_err(Stop::Failed)
    }
    .await;
    progress.clear();
    sources::add_rows_read(&reads, out);
    badrows::report(p, out);
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
