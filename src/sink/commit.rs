//! Committing every sink of a run as one unit, and finishing a commit a crash interrupted.
//!
//! Each sink first writes into a staging place beside its target, named after the pipeline
//! and the run (`.NAME.etl-tmp-<pipeline>-<run id>`), so nothing of one run can touch
//! another's. When every sink has written and every check passed, the commit:
//!
//! 1. prepares each staged output (manifest, flushed to disk);
//! 2. writes a journal (`<state dir>/pipelines/<key>/journal.json`): the run and, per sink,
//!    its staged and final paths;
//! 3. moves each output into place (one rename or atomic exchange per local sink, an
//!    idempotent copy per object-store sink, marked done in the journal);
//! 4. marks the journal as cleaning up, removes the old outputs, deletes the journal.
//!
//! After a crash at any point, the next `etl run` or `etl state` of the pipeline reads the
//! journal first: if no output was moved yet, it rolls the commit back (removes the staged
//! outputs); otherwise it rolls it forward. Either way every sink ends at the old run's
//! output or every sink at the new run's.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::{SinkError, local, objstore};
use crate::model::{Pipeline, Sink};
use crate::spec::sink::SinkMode;
use crate::validate::is_url;

/// Output written to a staging place, waiting for commit.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The sink.
    pub sink: Sink,
    /// Staging path or URL.
    pub staging: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: usize,
}

/// Where a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Outputs are being moved into place.
    Committing,
    /// Nothing was moved; staged outputs are being removed.
    RollingBack,
    /// Every output is in place; old outputs are being removed.
    CleaningUp,
}

/// One sink in a journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    sink: String,
    staging: String,
    target: String,
    /// Where a local folder's old output is renamed to on platforms without an exchange.
    aside: String,
    single_file: bool,
    append: bool,
    /// For object stores, which cannot tell from the target whether the copy finished.
    done: bool,
    rows: u64,
    bytes: u64,
    files: usize,
}

/// A commit in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    run_id: String,
    ds: String,
    started_at: String,
    phase: Phase,
    entries: Vec<Entry>,
}

/// The last commit of a pipeline, for `etl state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastCommit {
    /// The run.
    pub run_id: String,
    /// Its logical date.
    pub ds: String,
    /// When the commit finished, UTC.
    pub committed_at: String,
    /// `committed` or `recovered` (finished by a later command).
    pub how: String,
    /// What each sink holds now.
    pub sinks: Vec<CommittedSink>,
}

/// One sink of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommittedSink {
    /// The sink.
    pub name: String,
    /// Its path or URL (secrets masked).
    pub location: String,
    /// Rows written.
    pub rows: u64,
}

fn journal_path(p: &Pipeline) -> std::path::PathBuf {
    crate::state::pipeline_dir(&p.state_dir, &p.name).join("journal.json")
}

fn last_commit_path(p: &Pipeline) -> std::path::PathBuf {
    crate::state::pipeline_dir(&p.state_dir, &p.name).join("last_commit.json")
}

/// The pipeline's last commit, if any.
pub fn last_commit(p: &Pipeline) -> Option<LastCommit> {
    let bytes = std::fs::read(last_commit_path(p)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A short tag of the pipeline for staging names.
fn pipeline_tag(p: &Pipeline) -> String {
    crate::state::short_hash(&crate::state::key(&p.name))[..8].to_string()
}

/// Where a sink stages its output in a run.
pub fn staging_location(p: &Pipeline, sink: &Sink, run_id: &str) -> String {
    let loc = sink.location.trim_end_matches('/');
    let (parent, name) = match loc.rfind('/') {
        Some(i) => (&loc[..i], &loc[i + 1..]),
        None => (".", loc),
    };
    let base = format!("{parent}/.{name}.etl-tmp-{}-{run_id}", pipeline_tag(p));
    if sink.single_file {
        let ext = name.rfind('.').map(|i| &name[i..]).unwrap_or("");
        format!("{base}{ext}")
    } else {
        base
    }
}

fn aside_location(staging: &str) -> String {
    staging.replacen(".etl-tmp-", ".etl-old-", 1)
}

fn write_journal(p: &Pipeline, j: &Journal) -> Result<(), SinkError> {
    let path = journal_path(p);
    let bytes = serde_json::to_vec_pretty(j).unwrap_or_default();
    crate::state::write_atomic(&path, &bytes).map_err(|e| SinkError::Journal {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn read_journal(p: &Pipeline) -> Result<Option<Journal>, SinkError> {
    let path = journal_path(p);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SinkError::Journal {
                path: path.display().to_string(),
                reason: format!("the commit journal is damaged ({e}); inspect the sinks' targets and staging folders, then delete it"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SinkError::Journal {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

fn remove_journal(p: &Pipeline) -> Result<(), SinkError> {
    let path = journal_path(p);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                crate::state::sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SinkError::Journal {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

fn entry_error(e: &Entry, reason: impl ToString) -> SinkError {
    SinkError::Commit {
        name: e.sink.clone(),
        path: e.target.clone(),
        reason: reason.to_string(),
    }
}

/// Commits every staged output of a run as one unit.
pub async fn commit_run(
    ctx: &SessionContext,
    p: &Pipeline,
    staged: &[Staged],
    run_id: &str,
    ds: &str,
) -> Result<(), SinkError> {
    let key = crate::state::key(&p.name);
    let mut entries = Vec::new();
    for st in staged {
        let s = &st.sink;
        if s.mode == SinkMode::ErrorIfExists && super::exists_non_empty(ctx, &s.location).await {
            return Err(SinkError::Exists {
                name: s.name.clone(),
                path: s.location.clone(),
            });
        }
        let e = Entry {
            sink: s.name.clone(),
            staging: st.staging.clone(),
            target: s.location.trim_end_matches('/').to_string(),
            aside: aside_location(&st.staging),
            single_file: s.single_file,
            append: s.mode == SinkMode::Append,
            done: false,
            rows: st.rows,
            bytes: st.bytes,
            files: st.files,
        };
        let owner = (key.as_str(), s.name.as_str(), run_id);
        if is_url(&e.target) {
            objstore::prepare(ctx, &e.staging, &e.target, e.single_file, e.append, owner)
                .await
                .map_err(|r| entry_error(&e, r))?;
        } else {
            local::prepare(
                Path::new(&e.staging),
                Path::new(&e.target),
                e.single_file,
                e.append,
                owner,
            )
            .map_err(|r| entry_error(&e, r))?;
        }
        entries.push(e);
    }
    crate::fault::point("commit");
    let mut journal = Journal {
        run_id: run_id.to_string(),
        ds: ds.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
        phase: Phase::Committing,
        entries,
    };
    write_journal(p, &journal)?;
    crate::fault::point("commit");
    finish(ctx, p, &mut journal, "committed").await
}

/// Moves every entry not yet in place, then cleans up and forgets the journal.
async fn finish(
    ctx: &SessionContext,
    p: &Pipeline,
    j: &mut Journal,
    how: &str,
) -> Result<(), SinkError> {
    if j.phase == Phase::Committing {
        for i in 0..j.entries.len() {
            if entry_done(&j.entries[i], &j.run_id) {
                continue;
            }
            swap_entry(ctx, &j.entries[i]).await?;
            if is_url(&j.entries[i].target) {
                j.entries[i].done = true;
                write_journal(p, j)?;
            }
            crate::fault::point("commit");
        }
        j.phase = Phase::CleaningUp;
        write_journal(p, j)?;
        crate::fault::point("commit");
    }
    for e in &j.entries {
        cleanup_entry(ctx, e).await?;
        crate::fault::point("commit");
    }
    write_last_commit(p, j, how);
    remove_journal(p)?;
    crate::fault::point("commit");
    Ok(())
}

fn entry_done(e: &Entry, run_id: &str) -> bool {
    if is_url(&e.target) {
        e.done
    } else {
        local::is_done(
            Path::new(&e.staging),
            Path::new(&e.target),
            e.single_file,
            run_id,
        )
    }
}

async fn swap_entry(ctx: &SessionContext, e: &Entry) -> Result<(), SinkError> {
    if is_url(&e.target) {
        objstore::swap(ctx, &e.staging, &e.target, e.single_file, e.append)
            .await
            .map_err(|r| entry_error(e, r))
    } else {
        local::swap(
            Path::new(&e.staging),
            Path::new(&e.target),
            e.single_file,
            Path::new(&e.aside),
        )
        .map_err(|r| entry_error(e, r))
    }
}

async fn cleanup_entry(ctx: &SessionContext, e: &Entry) -> Result<(), SinkError> {
    if is_url(&e.target) {
        objstore::remove(ctx, &e.staging)
            .await
            .map_err(|r| entry_error(e, r))
    } else {
        local::cleanup(Path::new(&e.staging), Path::new(&e.aside)).map_err(|r| entry_error(e, r))
    }
}

async fn roll_back(ctx: &SessionContext, p: &Pipeline, j: &mut Journal) -> Result<(), SinkError> {
    if j.phase != Phase::RollingBack {
        j.phase = Phase::RollingBack;
        write_journal(p, j)?;
    }
    for e in &j.entries {
        if is_url(&e.target) {
            objstore::remove(ctx, &e.staging)
                .await
                .map_err(|r| entry_error(e, r))?;
        } else {
            local::roll_back(
                Path::new(&e.staging),
                Path::new(&e.target),
                Path::new(&e.aside),
            )
            .map_err(|r| entry_error(e, r))?;
        }
    }
    remove_journal(p)
}

fn write_last_commit(p: &Pipeline, j: &Journal, how: &str) {
    let record = LastCommit {
        run_id: j.run_id.clone(),
        ds: j.ds.clone(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        how: how.to_string(),
        sinks: j
            .entries
            .iter()
            .map(|e| CommittedSink {
                name: e.sink.clone(),
                location: crate::secrets::redact(&e.target).into_owned(),
                rows: e.rows,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    if let Err(e) = crate::state::write_atomic(&last_commit_path(p), &bytes) {
        tracing::warn!(error = %e, "cannot write the last-commit record");
    }
}

/// Finishes a commit that a crash interrupted, if there is one: rolls it back when nothing
/// was moved into place yet, forward otherwise. Returns what was done, for the user.
pub async fn recover(ctx: &SessionContext, p: &Pipeline) -> Result<Option<String>, SinkError> {
    let Some(mut j) = read_journal(p)? else {
        return Ok(None);
    };
    for e in &j.entries {
        for loc in [&e.target, &e.staging] {
            let conn = p
                .sinks
                .get(&e.sink)
                .and_then(|s| s.spec.connection())
                .and_then(|c| crate::source::pipeline_connection(p, c));
            crate::store::ensure_store(ctx, loc, conn).map_err(|error| SinkError::Store {
                name: e.sink.clone(),
                error,
            })?;
        }
    }
    let names = j
        .entries
        .iter()
        .map(|e| e.sink.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let short = j.run_id.chars().take(8).collect::<String>();
    let message = match j.phase {
        Phase::RollingBack => {
            roll_back(ctx, p, &mut j).await?;
            format!(
                "run {short} was interrupted before its commit; its staged output was removed ({names})"
            )
        }
        Phase::CleaningUp => {
            finish(ctx, p, &mut j, "recovered").await?;
            format!("run {short} was interrupted after its commit; finished cleaning up ({names})")
        }
        Phase::Committing => {
            let mut any = false;
            for e in &j.entries {
                any |= entry_done(e, &j.run_id);
            }
            if any {
                finish(ctx, p, &mut j, "recovered").await?;
                format!(
                    "run {short} was interrupted during its commit; rolled forward: every sink now holds its output ({names})"
                )
            } else {
                roll_back(ctx, p, &mut j).await?;
                format!(
                    "run {short} was interrupted before any output was moved into place; rolled back: every sink keeps its previous output ({names})"
                )
            }
        }
    };
    Ok(Some(message))
}

/// Removes staging places an interrupted run of this pipeline left beside a sink (after
/// [`recover`], which needs them). Staging of other pipelines is left alone.
pub async fn remove_stale_staging(ctx: &SessionContext, p: &Pipeline, sink: &Sink, run_id: &str) {
    let target = sink.location.trim_end_matches('/');
    let Some((parent, name)) = target.rsplit_once('/') else {
        return;
    };
    let tag = pipeline_tag(p);
    let prefixes = [
        format!(".{name}.etl-tmp-{tag}-"),
        format!(".{name}.etl-old-{tag}-"),
    ];
    let stale = |file_name: &str| {
        prefixes
            .iter()
            .any(|pre| file_name.starts_with(pre.as_str()))
            && !file_name.contains(run_id)
    };
    if is_url(target) {
        let conn = sink
            .spec
            .connection()
            .and_then(|c| crate::source::pipeline_connection(p, c));
        if crate::store::ensure_store(ctx, target, conn).is_err() {
            return;
        }
        if let Err(e) = objstore::remove_matching(ctx, parent, &stale).await {
            tracing::warn!(error = %e, "cannot remove staging left by an interrupted run");
        }
        return;
    }
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if stale(&file_name) {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing output left by an interrupted run");
            let _ = local::remove_path(&path);
        }
    }
}
