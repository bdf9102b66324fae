//! `etl state`: a pipeline's committed state (last commit, watermarks), after finishing any
//! interrupted commit; `--reset` and `--set` change watermarks wherever they are kept.
//!
//! Like `etl run`, it holds the pipeline's lock while it works, so it never races a run.

use std::collections::BTreeMap;

use super::{
    EXIT_FAILED, EXIT_INVALID, EXIT_OK, Output, load_options, load_pipeline, lock_pipeline,
    new_run_id, parse_wait,
};
use crate::cli::{LogFormat, StateArgs};
use crate::diagnostic::Diagnostic;
use crate::engine::{EngineOptions, session};
use crate::model::Pipeline;
use crate::sink::commit::{LastCommit, last_commit};
use crate::sink::postgres::PostgresSinkSpec;
use crate::state::store::StateStore;
use crate::state::watermark::{Mark, Watermark, Watermarks};
use crate::template::EnvMode;

/// `etl state PIPELINE`.
pub async fn state(args: &StateArgs, out: Output) -> u8 {
    let run_id = new_run_id();
    let wait = match parse_wait(&args.wait) {
        Ok(w) => w,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let opts = match load_options(&args.vars, None, EnvMode::Strict, &run_id) {
        Ok(o) => o,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let p = match load_pipeline(&args.pipeline, &opts, out) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let sets = match parse_sets(&p, &args.set, args.reset.as_deref()) {
        Ok(s) => s,
        Err(d) => {
            out.diagnostic(&d);
            return EXIT_INVALID;
        }
    };
    let _lock = match lock_pipeline(&p, &run_id, wait, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match state_locked(&p, &run_id, &sets, args.reset.as_deref(), out).await {
        Ok(()) => EXIT_OK,
        Err((code, d)) => {
            out.diagnostic(&d.in_file(&p.file));
            code
        }
    }
}

/// `--set SOURCE=VALUE` arguments, checked against the pipeline.
fn parse_sets(
    p: &Pipeline,
    sets: &[String],
    reset: Option<&str>,
) -> Result<Vec<(String, String)>, Diagnostic> {
    let incremental = |name: &str| {
        p.sources
            .get(name)
            .is_some_and(|s| s.spec.incremental().is_some())
    };
    let names: Vec<&str> = p
        .sources
        .iter()
        .filter(|(_, s)| s.spec.incremental().is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let unknown = |s: &str| {
        Diagnostic::error(format!("`{s}` is not an incremental source of {}", p.name))
            .suggest(s, names.iter().copied())
    };
    if let Some(r) = reset.filter(|r| !r.is_empty() && !incremental(r)) {
        return Err(unknown(r));
    }
    sets.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Diagnostic::error(format!("--set `{kv}` is not of the form SOURCE=VALUE"))
            })?;
            if !incremental(k.trim()) {
                return Err(unknown(k.trim()));
            }
            Ok((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

async fn state_locked(
    p: &Pipeline,
    run_id: &str,
    sets: &[(String, String)],
    reset: Option<&str>,
    out: Output,
) -> Result<(), (u8, Diagnostic)> {
    let failed = |d: Diagnostic| (EXIT_FAILED, d);
    let ctx = session(&EngineOptions::default())
        .map_err(|e| failed(Diagnostic::error(format!("cannot start the engine: {e}"))))?;
    let recovered = crate::sink::recover(&ctx, p).await.map_err(|e| {
        failed(Diagnostic::error(format!(
            "cannot finish an interrupted commit: {e}"
        )))
    })?;
    for s in p.sinks.values() {
        crate::sink::remove_stale_staging(&ctx, p, s, run_id).await;
    }
    let store = StateStore::new(&p.state_dir, p.state_url.as_deref())
        .map_err(|e| failed(Diagnostic::error(e.to_string())))?;
    let key = crate::state::key(&p.name);
    let mut marks = store
        .load(&ctx, &key)
        .await
        .map_err(|e| failed(Diagnostic::error(e.to_string())))?;
    let mut changed = Vec::new();
    if let Some(r) = reset {
        for source in incremental_sources(p)
            .into_iter()
            .filter(|s| r.is_empty() || s == r)
        {
            marks.sources.remove(&source);
            for sink in readers(p, &source) {
                set_sink_mark(p, &sink, &source, None)
                    .await
                    .map_err(failed)?;
            }
            changed.push(format!(
                "{source}: watermark forgotten; the next run reads every row"
            ));
        }
    }
    for (source, value) in sets {
        let w = parse_value(&ctx, p, source, value).await?;
        for sink in readers(p, source) {
            set_sink_mark(p, &sink, source, Some(&w))
                .await
                .map_err(failed)?;
            marks.set(
                source,
                &sink,
                Mark {
                    value: w.clone(),
                    run_id: "set".into(),
                    updated_at: chrono::Utc::now().to_rfc3339(),
                },
            );
        }
        changed.push(format!(
            "{source}: watermark set to {}; the next run reads rows past it",
            w.display()
        ));
    }
    if !changed.is_empty() {
        store
            .save(&ctx, &key, &marks)
            .await
            .map_err(|e| failed(Diagnostic::error(e.to_string())))?;
    }
    let sink_marks = sink_records(p).await.map_err(failed)?;
    let last = last_commit(p);
    match out.format {
        LogFormat::Text => print_text(
            p,
            recovered.as_deref(),
            last.as_ref(),
            &marks,
            &sink_marks,
            &changed,
            &store.describe(&key),
        ),
        LogFormat::Json => out.json(serde_json::json!({
            "event": "state",
            "pipeline": p.name,
            "state_dir": p.state_dir.display().to_string(),
            "recovered": recovered,
            "changed": changed,
            "last_commit": last,
            "watermarks": marks,
            "sink_records": sink_marks,
        })),
    }
    Ok(())
}

fn incremental_sources(p: &Pipeline) -> Vec<String> {
    p.sources
        .iter()
        .filter(|(_, s)| s.spec.incremental().is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

/// The sinks that read a source.
fn readers(p: &Pipeline, source: &str) -> Vec<String> {
    p.sinks_reading(source).cloned().collect()
}

fn pg_sink<'a>(p: &'a Pipeline, sink: &str) -> Option<&'a PostgresSinkSpec> {
    p.sinks
        .get(sink)?
        .spec
        .as_any()
        .downcast_ref::<PostgresSinkSpec>()
}

async fn set_sink_mark(
    p: &Pipeline,
    sink: &str,
    source: &str,
    w: Option<&Watermark>,
) -> Result<(), Diagnostic> {
    if let Some(spec) = pg_sink(p, sink) {
        crate::sink::postgres::set_mark(p, &spec.connection, sink, source, w)
            .await
            .map_err(|e| Diagnostic::error(e.to_string()))?;
    }
    Ok(())
}

/// Database sinks' own records: sink → source → watermark.
async fn sink_records(
    p: &Pipeline,
) -> Result<BTreeMap<String, BTreeMap<String, Watermark>>, Diagnostic> {
    let mut out = BTreeMap::new();
    for name in p.sinks.keys() {
        if let Some(spec) = pg_sink(p, name) {
            let c = crate::sink::postgres::read_commits(p, &spec.connection, name)
                .await
                .map_err(|e| Diagnostic::error(e.to_string()))?;
            if !c.marks.is_empty() {
                out.insert(name.clone(), c.marks);
            }
        }
    }
    Ok(out)
}

/// Parses a value for `--set` as the type of the source's cursor column.
async fn parse_value(
    ctx: &datafusion::prelude::SessionContext,
    p: &Pipeline,
    source: &str,
    value: &str,
) -> Result<Watermark, (u8, Diagnostic)> {
    let src = &p.sources[source];
    let cursor = &src.spec.incremental().expect("incremental").cursor;
    // Only the cursor column's type is needed: an API source makes one request at most.
    let probe = crate::connector::BuildOptions {
        probe: true,
        ..Default::default()
    };
    let built = crate::source::build_with(ctx, p, src, probe)
        .await
        .map_err(|e| (EXIT_FAILED, Diagnostic::error(e.to_string())))?;
    let schema = built.table.schema();
    let field = schema.field_with_name(cursor).map_err(|_| {
        (
            EXIT_INVALID,
            Diagnostic::error(format!(
                "the cursor column `{cursor}` is not a column of source `{source}`"
            )),
        )
    })?;
    Watermark::parse_as(value, field.data_type()).map_err(|e| {
        (
            EXIT_INVALID,
            Diagnostic::error(format!("--set {source}={value}: {e}")),
        )
    })
}

fn print_text(
    p: &Pipeline,
    recovered: Option<&str>,
    last: Option<&LastCommit>,
    marks: &Watermarks,
    sink_marks: &BTreeMap<String, BTreeMap<String, Watermark>>,
    changed: &[String],
    store: &str,
) {
    let mut text = format!("pipeline {} (state: {})\n", p.name, p.state_dir.display());
    if let Some(r) = recovered {
        text.push_str(&format!("recovered: {r}\n"));
    }
    for c in changed {
        text.push_str(&format!("changed: {c}\n"));
    }
    match last {
        None => text.push_str("last commit: none yet\n"),
        Some(c) => {
            text.push_str(&format!(
                "last commit: run {} (ds {}) at {}{}\n",
                c.run_id,
                c.ds,
                c.committed_at,
                if c.how == "recovered" {
                    " (finished by recovery)"
                } else {
                    ""
                }
            ));
            let width = c.sinks.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for s in &c.sinks {
                text.push_str(&format!(
                    "  {:width$}  {:>10} rows  → {}\n",
                    s.name, s.rows, s.location
                ));
            }
        }
    }
    let sources = incremental_sources(p);
    if !sources.is_empty() {
        text.push_str(&format!("watermarks ({store}):\n"));
    }
    for source in sources {
        let cursor = &p.sources[&source]
            .spec
            .incremental()
            .expect("incremental")
            .cursor;
        text.push_str(&format!("  {source} (cursor {cursor}):\n"));
        for sink in readers(p, &source) {
            let state = marks.get(&source, &sink).map(|m| m.value.display());
            let record = sink_marks
                .get(&sink)
                .and_then(|m| m.get(&source))
                .map(Watermark::display);
            let shown = match (&state, &record) {
                (_, Some(r)) => format!("{r} (in the sink's commit records)"),
                (Some(s), None) => s.clone(),
                (None, None) => "none yet: the next run reads every row".into(),
            };
            text.push_str(&format!("    {sink}: {shown}\n"));
        }
    }
    crate::out::text(&text);
}
