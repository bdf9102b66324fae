//! The phases of a run after planning: shared transforms, checks, staged writes, commit.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::future::join_all;

use super::progress::Progress;
use super::report::{StepKind, StepReport, StepStatus};
use super::{RunOutcome, place};
use crate::check::{CheckError, CheckOutcome, RunCx};
use crate::connector::StageCx;
use crate::diagnostic::Diagnostic;
use crate::model::{Check, Pipeline};
use crate::sink::{self, SinkError, StagedOutput};

/// What every phase needs.
pub(super) struct Cx<'a> {
    pub ctx: &'a SessionContext,
    pub p: &'a Pipeline,
    pub needed: &'a [String],
    pub run_id: &'a str,
    pub ds: &'a str,
    pub progress: &'a Progress,
    pub shared: &'a sink::RunResources,
    pub marks: &'a HashMap<String, BTreeMap<String, crate::state::watermark::Watermark>>,
    pub prev_runs: &'a HashMap<String, Option<String>>,
}

impl<'a> Cx<'a> {
    /// What committing or aborting staged outputs needs.
    pub(super) fn commit_cx(&self) -> sink::CommitCx<'a> {
        sink::CommitCx {
            ctx: self.ctx,
            pipeline: self.p,
            run_id: self.run_id,
            shared: self.shared,
        }
    }
}

/// A dry run (checks were planned already): report what each sink would write, after
/// checking what only the planned schemas tell (partition columns).
pub(super) async fn dry_run(
    ctx: &SessionContext,
    p: &Pipeline,
    sinks: &[String],
    checks: &[Check],
    out: &mut RunOutcome,
) -> Result<(), Diagnostic> {
    for c in checks {
        out.steps.push(
            StepReport::new(&check_step_name(c), StepKind::Check, StepStatus::Skipped)
                .with_detail("dry run: planned, not run".into()),
        );
    }
    for s in sinks {
        let sink = &p.sinks[s];
        if let Ok(df) = ctx.table(sink.from.as_str()).await
            && let Some(d) = crate::validate::partition_problems(p, sink, df.schema().as_arrow())
                .into_iter()
                .next()
        {
            return Err(d);
        }
        out.steps.push(
            StepReport::new(s, StepKind::Sink, StepStatus::Skipped)
                .with_detail(format!("dry run: would write {}", p.sinks[s].location)),
        );
    }
    Ok(())
}

/// Materialises transforms read by more than one sink or check, so they are computed once.
pub(super) async fn materialize_shared(
    cx: &Cx<'_>,
    sinks: &[String],
    checks: &[Check],
    out: &mut RunOutcome,
) -> Result<(), Diagnostic> {
    let p = cx.p;
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for s in sinks {
        *readers.entry(p.sinks[s].from.as_str()).or_default() += 1;
    }
    for c in checks {
        for r in c.relations() {
            if let Some((name, _)) = p.transforms.get_key_value(&r) {
                *readers.entry(name.as_str()).or_default() += 1;
            }
        }
    }
    for name in p.transforms.keys() {
        if readers.get(name.as_str()).copied().unwrap_or(0) < 2 {
            continue;
        }
        let yaml_path = format!("transforms.{name}");
        let bar = cx
            .progress
            .step(&format!("transform {name} (shared, computed once)"));
        let start = Instant::now();
        let df = cx
            .ctx
            .table(name.as_str())
            .await
            .map_err(|e| place(p, &yaml_path, e.to_string()))?;
        let cached = match df.cache().await {
            Ok(c) => c,
            Err(e) => {
                return Err(read_failure(cx, &e, &yaml_path, &format!("transform `{name}`")).await);
            }
        };
        let rows = cached.clone().count().await.unwrap_or(0);
        let _ = cx.ctx.deregister_table(name.as_str());
        cx.ctx
            .register_table(name.as_str(), cached.into_view())
            .map_err(|e| place(p, &yaml_path, e.to_string()))?;
        bar.finish();
        out.steps.push(
            StepReport::new(name, StepKind::Transform, StepStatus::Ok)
                .timed(start.elapsed().as_secs_f64())
                .with_rows(rows as u64)
                .with_detail("shared: computed once".into()),
        );
    }
    Ok(())
}

/// Plans and runs the checks concurrently; the first failed `error` check stops the run.
pub(super) async fn run_checks(
    cx: &Cx<'_>,
    checks: &[Check],
    out: &mut RunOutcome,
) -> Result<(), Diagnostic> {
    let failures_dir = cx.p.state_dir.join("failures");
    let run_cx = RunCx {
        ds: cx.ds,
        run_id: cx.run_id,
        failures_dir: Some(&failures_dir),
    };
    let run_cx = &run_cx;
    let results = join_all(checks.iter().map(|c| async move {
        let bar = cx
            .progress
            .step(&format!("check {} on {}", c.name, c.target));
        let t = Instant::now();
        let r = match crate::check::compile(cx.ctx, cx.p, c).await {
            Ok(compiled) => compiled.run(run_cx).await.map_err(Failure::Run),
            Err(d) => Err(Failure::Plan(d)),
        };
        bar.finish();
        (c, r, t.elapsed().as_secs_f64())
    }))
    .await;
    let mut fatal: Option<Diagnostic> = None;
    for (c, r, secs) in results {
        match r {
            Ok(outcome) => {
                let status = match (outcome.passed(), outcome.is_fatal()) {
                    (true, _) => StepStatus::Ok,
                    (false, true) => StepStatus::Failed,
                    (false, false) => StepStatus::Warned,
                };
                if outcome.is_fatal() && fatal.is_none() {
                    fatal = Some(check_failure(cx.p, &outcome));
                }
                out.steps.push(check_step(&outcome, status, secs));
            }
            Err(f) => {
                let d = match f {
                    Failure::Plan(d) => d,
                    Failure::Run(CheckError::Query(e)) => {
                        let what = format!("check `{}` on `{}`", c.name, c.target);
                        read_failure(cx, &e, &c.yaml_path, &what).await
                    }
                    Failure::Run(e) => place(
                        cx.p,
                        &c.yaml_path,
                        format!("check `{}` on `{}`: {e}", c.name, c.target),
                    ),
                };
                out.steps.push(
                    StepReport::new(&check_step_name(c), StepKind::Check, StepStatus::Failed)
                        .timed(secs)
                        .with_detail(d.message.clone()),
                );
                fatal.get_or_insert(d);
            }
        }
    }
    fatal.map_or(Ok(()), Err)
}

/// Why a check did not give an outcome.
enum Failure {
    Plan(Diagnostic),
    Run(CheckError),
}

/// Writes every sink to its staging place, concurrently. On any failure, throws all staged
/// output away and returns the first error.
pub(super) async fn write_sinks(
    cx: &Cx<'_>,
    sinks: &[String],
    out: &mut RunOutcome,
) -> Result<Vec<(Box<dyn StagedOutput>, f64)>, Diagnostic> {
    let stage_cx = StageCx {
        ctx: cx.ctx,
        pipeline: cx.p,
        run_id: cx.run_id,
        shared: cx.shared,
        marks: cx.marks,
        prev_runs: cx.prev_runs,
    };
    let stage_cx = &stage_cx;
    let writes = join_all(sinks.iter().map(|name| async move {
        let s = &cx.p.sinks[name];
        let bar = cx.progress.step(&format!("sink {name} → {}", s.location));
        let t = Instant::now();
        let r = match cx.ctx.table(s.from.as_str()).await {
            Ok(df) => s.spec.stage(stage_cx, s, df).await,
            Err(error) => Err(SinkError::Write {
                name: s.name.clone(),
                error,
            }),
        };
        bar.finish();
        (s, r, t.elapsed().as_secs_f64())
    }))
    .await;
    let mut staged: Vec<(Box<dyn StagedOutput>, f64)> = Vec::new();
    let mut failure: Option<Diagnostic> = None;
    for (s, r, secs) in writes {
        match r {
            Ok(st) => staged.push((st, secs)),
            Err(e) => {
                let d = match &e {
                    SinkError::Write { error, .. } => {
                        read_failure(cx, error, &s.yaml_path, &format!("sink `{}`", s.name)).await
                    }
                    other => {
                        crate::engine_error::polish(place(cx.p, &s.yaml_path, other.to_string()))
                    }
                };
                out.steps.push(
                    StepReport::new(&s.name, StepKind::Sink, StepStatus::Failed)
                        .timed(secs)
                        .with_detail(d.message.clone()),
                );
                failure.get_or_insert(d);
                // Whatever a failed file writer left in its staging place goes.
                if s.spec.path().is_some() {
                    sink::remove_staging(cx.ctx, &sink::staging_location(cx.p, s, cx.run_id)).await;
                }
            }
        }
    }
    let Some(d) = failure else { return Ok(staged) };
    let commit_cx = cx.commit_cx();
    for (st, secs) in staged.iter_mut() {
        st.abort(&commit_cx).await;
        out.steps.push(
            StepReport::new(&st.sink().name, StepKind::Sink, StepStatus::Skipped)
                .timed(*secs)
                .with_detail("written, not committed: another sink failed".into()),
        );
    }
    Err(d)
}

/// Commits every staged output, as one unit (see `sink::commit`), with the watermarks, then
/// the sources' `after_commit` moves.
pub(super) async fn commit_all(
    cx: &Cx<'_>,
    mut staged: Vec<(Box<dyn StagedOutput>, f64)>,
    watermarks: Option<crate::state::watermark::Watermarks>,
    after: Vec<sink::commit::Entry>,
    out: &mut RunOutcome,
) -> Result<(), Diagnostic> {
    let commit_cx = cx.commit_cx();
    let mut outputs: Vec<Box<dyn StagedOutput>> = Vec::new();
    let mut times = Vec::new();
    for (st, secs) in staged.drain(..) {
        outputs.push(st);
        times.push(secs);
    }
    let done = sink::commit_run(&commit_cx, &mut outputs, cx.ds, watermarks, after).await;
    let moves_failed = match &done {
        Err(SinkError::AfterCommit { name, .. }) => Some(name.clone()),
        _ => None,
    };
    if let (Err(e), None) = (&done, &moves_failed) {
        let name = match e {
            SinkError::Commit { name, .. }
            | SinkError::Exists { name, .. }
            | SinkError::Db { name, .. }
            | SinkError::Fenced { name, .. } => Some(name.clone()),
            _ => None,
        };
        for (st, secs) in outputs.iter_mut().zip(&times) {
            let failed = name.as_deref() == Some(st.sink().name.as_str());
            out.steps.push(
                StepReport::new(
                    &st.sink().name,
                    StepKind::Sink,
                    if failed {
                        StepStatus::Failed
                    } else {
                        StepStatus::Skipped
                    },
                )
                .timed(*secs)
                .with_detail(if failed {
                    e.to_string()
                } else {
                    "not committed".into()
                }),
            );
        }
        // Whatever is still open or staged (nothing was journaled, or recovery has it).
        for st in outputs.iter_mut() {
            st.abort(&commit_cx).await;
        }
        let yaml_path = name
            .and_then(|n| cx.p.sinks.get(&n).map(|s| s.yaml_path.clone()))
            .unwrap_or_else(|| "sinks".into());
        return Err(place(cx.p, &yaml_path, e.to_string()).with_help(
            "if some outputs were already committed, the next `etl run` or `etl state` of this pipeline finishes the commit",
        ));
    }
    for (st, secs) in outputs.iter().zip(&times) {
        let mut step = StepReport::new(&st.sink().name, StepKind::Sink, StepStatus::Ok)
            .timed(*secs)
            .with_rows(st.rows())
            .with_detail(st.detail());
        if let Some(b) = st.bytes() {
            step = step.with_bytes(b);
        }
        out.steps.push(step);
    }
    match (done, moves_failed) {
        (Err(e), Some(source)) => {
            let yaml_path = format!("sources.{source}.after_commit");
            Err(place(cx.p, &yaml_path, e.to_string()).with_help(
                "every sink committed; fix the cause, and the next `etl run` or `etl state` of this pipeline finishes moving the files",
            ))
        }
        (done, _) => {
            super::sources::report_after_commit(done.unwrap_or_default(), out);
            Ok(())
        }
    }
}

/// Explains a failure while reading: if a CSV or JSON source has a bad row, say exactly where.
async fn read_failure(
    cx: &Cx<'_>,
    err: &DataFusionError,
    yaml_path: &str,
    what: &str,
) -> Diagnostic {
    let text = err.to_string();
    if let Some(d) = super::badrows::bad_row_diagnostic(cx.ctx, cx.p, cx.needed, &text).await {
        return d;
    }
    crate::engine_error::polish(place(cx.p, yaml_path, format!("{what}: {text}")))
}

fn check_failure(p: &Pipeline, o: &CheckOutcome) -> Diagnostic {
    let msg = format!(
        "check {} on `{}` failed: {}",
        o.check.name, o.check.target, o.detail
    );
    let d = place(p, &o.check.yaml_path, msg);
    let stored = o
        .stored
        .as_ref()
        .map(|f| format!("all failing rows: {}", f.display()));
    let sample = o.sample.as_ref().map(|s| {
        format!(
            "failing rows (first {}):\n{s}",
            s.lines().count().saturating_sub(4)
        )
    });
    match (sample, stored) {
        (Some(s), Some(f)) => d.with_help(format!("{s}\n{f}")),
        (Some(h), None) | (None, Some(h)) => d.with_help(h),
        (None, None) => d,
    }
}

/// A check's name in the summary: `target: name`.
pub(super) fn check_step_name(c: &Check) -> String {
    format!("{}: {}", c.target, c.name)
}

fn check_step(o: &CheckOutcome, status: StepStatus, secs: f64) -> StepReport {
    let detail = match &o.stored {
        Some(f) => format!("{} → {}", o.detail, f.display()),
        None => o.detail.clone(),
    };
    StepReport::new(&check_step_name(&o.check), StepKind::Check, status)
        .timed(secs)
        .with_failures(o.failures)
        .with_detail(detail)
}

/// Throws away everything staged.
pub(super) async fn abort_staged(cx: &Cx<'_>, staged: &mut [(Box<dyn StagedOutput>, f64)]) {
    let commit_cx = cx.commit_cx();
    for (st, _) in staged.iter_mut() {
        st.abort(&commit_cx).await;
    }
}
