//! `etl state`: a pipeline's committed state, after finishing any interrupted commit.
//!
//! Like `etl run`, it holds the pipeline's lock while it works, so it never races a run.

use super::{
    EXIT_FAILED, EXIT_INVALID, EXIT_OK, Output, load_options, load_pipeline, lock_pipeline,
    new_run_id, parse_wait,
};
use crate::cli::{LogFormat, StateArgs};
use crate::diagnostic::Diagnostic;
use crate::engine::{EngineOptions, session};
use crate::sink::commit::{LastCommit, last_commit};
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
    let _lock = match lock_pipeline(&p, &run_id, wait, out) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let ctx = match session(&EngineOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            out.diagnostic(&Diagnostic::error(format!("cannot start the engine: {e}")));
            return EXIT_FAILED;
        }
    };
    let recovered = match crate::sink::recover(&ctx, &p).await {
        Ok(r) => r,
        Err(e) => {
            out.diagnostic(
                &Diagnostic::error(format!("cannot finish an interrupted commit: {e}"))
                    .in_file(&p.file),
            );
            return EXIT_FAILED;
        }
    };
    for s in p.sinks.values() {
        crate::sink::remove_stale_staging(&ctx, &p, s, &run_id).await;
    }
    let last = last_commit(&p);
    match out.format {
        LogFormat::Text => print_text(&p, recovered.as_deref(), last.as_ref()),
        LogFormat::Json => out.json(serde_json::json!({
            "event": "state",
            "pipeline": p.name,
            "state_dir": p.state_dir.display().to_string(),
            "recovered": recovered,
            "last_commit": last,
        })),
    }
    EXIT_OK
}

fn print_text(p: &crate::model::Pipeline, recovered: Option<&str>, last: Option<&LastCommit>) {
    let mut text = format!("pipeline {} (state: {})\n", p.name, p.state_dir.display());
    if let Some(r) = recovered {
        text.push_str(&format!("recovered: {r}\n"));
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
    crate::out::text(&text);
}
