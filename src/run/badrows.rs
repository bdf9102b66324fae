//! Bad rows at the end of a run, once every reader of every source is done: `max_bad_rows`,
//! quarantine files, sinks that receive a source's bad rows, and the summary.
//!
//! Each source's bad rows are counted once per run (see `source::file::badrows`), so the
//! numbers here do not depend on how many sinks, checks or incremental groups read a source.

use std::sync::Arc;
use std::time::Instant;

use datafusion::prelude::SessionContext;

use super::phases::Cx;
use super::report::StepKind;
use super::{RunOutcome, place};
use crate::connector::StageCx;
use crate::diagnostic::Diagnostic;
use crate::model::Pipeline;
use crate::sink::StagedOutput;
use crate::source::BadRowLog;

/// Before the commit: writes quarantine files, fails the run when a source had more bad
/// rows than `max_bad_rows` allows, and stages the sinks that receive bad rows.
pub(super) async fn settle(
    cx: &Cx<'_>,
    quarantine_sinks: &[(String, Arc<BadRowLog>)],
    staged: &mut Vec<(Box<dyn StagedOutput>, f64)>,
    out: &mut RunOutcome,
) -> Result<(), Diagnostic> {
    let p = cx.p;
    // A source read by nothing but its quarantine sink: read it once to judge its rows.
    for (_, log) in quarantine_sinks {
        if log.rows_read() == 0 && log.count() == 0 {
            let path = format!("sources.{}", log.source);
            let df = cx
                .ctx
                .table(log.source.as_str())
                .await
                .map_err(|e| place(p, &path, e.to_string()))?;
            df.count()
                .await
                .map_err(|e| place(p, &path, crate::plan::clean_message(&e.to_string())))?;
        }
    }
    for log in p.bad_rows.all() {
        let written = log.finish().map_err(|e| {
            place(
                p,
                &format!("sources.{}.on_bad_row", log.source),
                crate::plan::clean_message(&e.to_string()),
            )
        })?;
        if let Some(why) = log.over_limit() {
            let help = match written {
                Some(file) => format!("the bad rows are in {}", file.display()),
                None => "fix the input, or raise `max_bad_rows`".into(),
            };
            return Err(
                place(p, &format!("sources.{}.max_bad_rows", log.source), why).with_help(help),
            );
        }
    }
    let stage_cx = StageCx {
        ctx: cx.ctx,
        pipeline: p,
        run_id: cx.run_id,
        shared: cx.shared,
        marks: cx.marks,
        prev_runs: cx.prev_runs,
    };
    for (name, log) in quarantine_sinks {
        let s = &p.sinks[name];
        let t = Instant::now();
        let df = log
            .table()
            .and_then(|batch| cx.ctx.read_batch(batch))
            .map_err(|e| place(p, &s.yaml_path, e.to_string()))?;
        match s.spec.stage(&stage_cx, s, df).await {
            Ok(st) => staged.push((st, t.elapsed().as_secs_f64())),
            Err(e) => {
                out.steps.push(
                    super::StepReport::new(name, StepKind::Sink, super::StepStatus::Failed)
                        .with_detail(e.to_string()),
                );
                return Err(place(p, &s.yaml_path, e.to_string()));
            }
        }
    }
    Ok(())
}

/// After the run, whatever its outcome: quarantined rows are kept (a failed run's too, for
/// finding out why), and each source's step says how many rows were bad.
pub(super) fn report(p: &Pipeline, out: &mut RunOutcome) {
    for log in p.bad_rows.all() {
        if let Err(e) = log.finish() {
            out.notes.push(crate::plan::clean_message(&e.to_string()));
        }
        if let Some(summary) = log.summary()
            && let Some(step) = out
                .steps
                .iter_mut()
                .find(|s| s.kind == StepKind::Source && s.name == log.source)
        {
            step.detail = Some(summary);
        }
    }
}

/// Explains a failed read as the bad row behind it, when a CSV, JSON or `lines` source among
/// `needed` has one: the file, the physical line and the reason, placed at the source's
/// `path`. The serial readers name the row themselves; after a fast CSV scan failed, the
/// source is read again serially to find it.
pub async fn bad_row_diagnostic(
    ctx: &SessionContext,
    p: &Pipeline,
    needed: &[String],
    text: &str,
) -> Option<Diagnostic> {
    let at_source = |src: &crate::model::Source, message: String| {
        let path_key = format!("{}.path", src.yaml_path);
        Diagnostic::error(message)
            .in_file(&p.file)
            .at_path(path_key.clone())
            .at(p.pos(&path_key))
            .with_help("fix the row, declare the column with a type that fits it, or set `on_bad_row: skip` or `quarantine` on the source")
    };
    if let Some(i) = text.find("source `") {
        let said = text[i..].trim();
        let name = said["source `".len()..]
            .split('`')
            .next()
            .unwrap_or_default();
        if let Some(src) = p.sources.get(name) {
            return Some(at_source(src, said.to_string()));
        }
    }
    let markers = [
        "Parser error",
        "Csv error",
        "Json error",
        "parsing value",
        "Error parsing",
        "Cast error",
        "incorrect number of fields",
        "Encountered unexpected",
        "not a valid",
        "non-nullable",
        "UTF-8",
        "utf-8",
        "utf8",
    ];
    if !markers.iter().any(|m| text.contains(m)) {
        return None;
    }
    for name in needed {
        let Some(src) = p.sources.get(name) else {
            continue;
        };
        let schema = match (&src.schema, ctx.table_provider(name.as_str()).await) {
            (Some(s), _) => s.clone(),
            (None, Ok(t)) => t.schema(),
            (None, Err(_)) => continue,
        };
        let build_cx = crate::connector::BuildCx {
            ctx,
            pipeline: p,
            source: src,
            options: Default::default(),
        };
        if let Some(bad) = src.spec.locate_bad_row(&build_cx, schema).await {
            return Some(at_source(src, bad.to_string()));
        }
    }
    None
}
