//! What a run asks of its sources besides their rows: whether `--from-landed` can replay
//! them, what reading them cost (for the summary), and the `after_commit` moves of their
//! input files.

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use super::RunOutcome;
use super::report::{StepKind, StepReport, StepStatus};
use crate::connector::BuildCx;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Pipeline;
use crate::plan::counting::ReadCount;
use crate::sink::commit::Entry;

/// With `--from-landed`: every source the run reads can be replayed.
pub(super) fn check_replay(p: &Pipeline, needed: &[String]) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::default();
    for name in needed {
        let Some(src) = p.sources.get(name) else {
            continue;
        };
        if let Err(why) = src.spec.check_replay() {
            diags.push(
                Diagnostic::error(format!("--from-landed: source `{name}`: {why}"))
                    .in_file(&p.file)
                    .at_path(src.yaml_path.clone())
                    .at(p.pos(&src.yaml_path))
                    .with_help("add `land: { path: ... }` to the source and run once without --from-landed"),
            );
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(())
    }
}

/// Puts what reading each source cost (requests, retries, bytes) into its summary step; a
/// source whose read failed before it had a step gets a failed one.
pub(super) fn add_read_stats(p: &Pipeline, needed: &[String], run_id: &str, out: &mut RunOutcome) {
    for name in needed {
        let Some(stats) = p.sources.get(name).and_then(|s| s.spec.read_stats(run_id)) else {
            continue;
        };
        let step = match out
            .steps
            .iter_mut()
            .position(|s| s.kind == StepKind::Source && &s.name == name)
        {
            Some(i) => &mut out.steps[i],
            None => {
                out.steps
                    .push(StepReport::new(name, StepKind::Source, StepStatus::Failed));
                out.steps.last_mut().expect("just pushed")
            }
        };
        step.bytes = Some(stats.bytes);
        step.detail = Some(match step.detail.take() {
            Some(d) => format!("{}; {d}", stats.detail),
            None => stats.detail,
        });
    }
}

/// Puts the rows read from each source (its largest scan, over every plan of the run) into
/// its summary step.
pub(super) fn add_rows_read(reads: &[(String, Arc<ReadCount>)], out: &mut RunOutcome) {
    for step in out.steps.iter_mut().filter(|s| s.kind == StepKind::Source) {
        let rows = reads
            .iter()
            .filter(|(name, _)| *name == step.name)
            .filter_map(|(_, count)| count.rows())
            .max();
        if rows.is_some() {
            step.rows = rows;
        }
    }
}

/// The `after_commit` entries of the sources this run read. A source that a sink outside
/// this run also reads (`--select`) keeps its files, so that sink still gets them.
pub(super) async fn after_commit_entries(
    ctx: &SessionContext,
    p: &Pipeline,
    sinks: &[String],
    needed: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<Entry>, Diagnostic> {
    let mut entries = Vec::new();
    for name in needed {
        let Some(src) = p.sources.get(name) else {
            continue;
        };
        let cx = BuildCx {
            ctx,
            pipeline: p,
            source: src,
            options: Default::default(),
        };
        let entry = src.spec.after_commit(&cx).await.map_err(|e| {
            Diagnostic::error(e.to_string())
                .in_file(&p.file)
                .at_path(format!("{}.after_commit", src.yaml_path))
                .at(p.pos(&format!("{}.after_commit", src.yaml_path)))
        })?;
        let Some(entry) = entry else { continue };
        let left_out: Vec<&String> = p
            .sinks_reading(name)
            .filter(|k| !sinks.contains(k))
            .collect();
        match left_out.first() {
            Some(k) => notes.push(format!(
                "source `{name}`: after_commit skipped: sink `{k}` reads it too and was not part of this run"
            )),
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

/// Adds what each source's `after_commit` did to its summary step.
pub(super) fn report_after_commit(done: Vec<(String, String)>, out: &mut RunOutcome) {
    for (source, summary) in done {
        match out
            .steps
            .iter_mut()
            .find(|s| s.kind == StepKind::Source && s.name == source)
        {
            Some(step) => {
                step.detail = Some(match step.detail.take() {
                    Some(d) => format!("{d}; {summary}"),
                    None => summary,
                })
            }
            None => out.steps.push(
                StepReport::new(&source, StepKind::Source, StepStatus::Ok).with_detail(summary),
            ),
        }
    }
}
