//! Committing every sink of a run as one unit, and finishing a commit a crash interrupted.
//!
//! Each sink first writes into a staging place: files beside their target, named after the
//! pipeline and the run (`.NAME.etl-tmp-<pipeline>-<run id>`), so nothing of one run can
//! touch another's; database sinks into a transaction left open. When every sink has
//! written and every check passed, the commit:
//!
//! 1. prepares each staged output (manifests flushed to disk; all database transactions but
//!    one are `PREPARE`d, the remaining one is the commit point);
//! 2. writes a journal (`<state dir>/pipelines/<key>/journal.json`): the run, each sink's
//!    staged and final places, the watermarks to save;
//! 3. commits the commit point (a database `COMMIT`, which also records the run in the
//!    database's `etl_state.commits`), then `COMMIT PREPARED`s the other transactions, then
//!    moves each file output into place (one rename or atomic exchange per local sink, an
//!    idempotent copy per object-store sink);
//! 4. saves the watermarks, marks the journal as cleaning up, removes old outputs, deletes
//!    the journal.
//!
//! After a crash at any point, the next `etl run` or `etl state` of the pipeline reads the
//! journal first: if nothing was committed yet it rolls the commit back (removes staged
//! files, rolls back prepared transactions); otherwise it rolls it forward. Either way every
//! sink ends at the old run's output or every sink at the new run's.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::{RunResources, SinkError, StagedOutput, local, objstore, postgres};
use crate::model::{Pipeline, Sink};
use crate::state::watermark::Watermarks;
use crate::validate::is_url;

/// What committing needs.
pub struct CommitCx<'a> {
    /// The session (object stores are registered in it).
    pub ctx: &'a SessionContext,
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// The run being committed (or recovered).
    pub run_id: &'a str,
    /// Live resources of the run (open transactions); empty in recovery.
    pub shared: &'a RunResources,
}

/// Where a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Outputs are being moved into place.
    Committing,
    /// Nothing was committed; staged outputs are being removed.
    RollingBack,
    /// Every output is in place; old outputs are being removed.
    CleaningUp,
}

/// One staged output in a journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A local file or folder.
    Local {
        /// The sink.
        sink: String,
        /// Staging path.
        staging: String,
        /// Final path.
        target: String,
        /// Where an old folder is renamed on platforms without an exchange.
        aside: String,
        /// One file rather than a folder.
        single_file: bool,
        /// `append` mode.
        append: bool,
        /// Rows written.
        rows: u64,
    },
    /// An object-store object or prefix.
    Store {
        /// The sink.
        sink: String,
        /// Staging URL.
        staging: String,
        /// Final URL.
        target: String,
        /// One object rather than a prefix.
        single_file: bool,
        /// `append` mode.
        append: bool,
        /// Set once the copy is done (the target cannot tell).
        done: bool,
        /// Rows written.
        rows: u64,
    },
    /// A PostgreSQL transaction holding one or more sinks' rows.
    Postgres {
        /// The connection's name in the pipeline (its URL is never written here).
        connection: String,
        /// The sinks, with their rows.
        sinks: Vec<(String, u64)>,
        /// The prepared transaction's id; `None` for the commit point.
        gid: Option<String>,
    },
    /// A file source's input files to move or delete (`after_commit`), rolled forward after
    /// every sink; never rolled back (the files stay where they are).
    AfterCommit(crate::source::file::moves::Moves),
}

impl Entry {
    /// A file output's entry (local or object store, by its target).
    pub fn file(
        sink: &str,
        staging: &str,
        target: &str,
        single_file: bool,
        append: bool,
        rows: u64,
    ) -> Self {
        if is_url(target) {
            Self::Store {
                sink: sink.to_string(),
                staging: staging.to_string(),
                target: target.to_string(),
                single_file,
                append,
                done: false,
                rows,
            }
        } else {
            Self::Local {
                sink: sink.to_string(),
                staging: staging.to_string(),
                target: target.to_string(),
                aside: staging.replacen(".etl-tmp-", ".etl-old-", 1),
                single_file,
                append,
                rows,
            }
        }
    }

    fn sinks(&self) -> Vec<(String, u64)> {
        match self {
            Self::Local { sink, rows, .. } | Self::Store { sink, rows, .. } => {
                vec![(sink.clone(), *rows)]
            }
            Self::Postgres { sinks, .. } => sinks.clone(),
            Self::AfterCommit(_) => Vec::new(),
        }
    }

    fn error(&self, reason: impl ToString) -> SinkError {
        let (name, path) = match self {
            Self::Local { sink, target, .. } | Self::Store { sink, target, .. } => {
                (sink.clone(), target.clone())
            }
            Self::Postgres {
                sinks, connection, ..
            } => (
                sinks
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("connection `{connection}`"),
            ),
            Self::AfterCommit(m) => (m.source.clone(), "after_commit".to_string()),
        };
        SinkError::Commit {
            name,
            path,
            reason: reason.to_string(),
        }
    }

    async fn is_done(&self, cx: &CommitCx<'_>) -> Result<bool, SinkError> {
        Ok(match self {
            Self::Local {
                staging,
                target,
                single_file,
                ..
            } => local::is_done(
                Path::new(staging),
                Path::new(target),
                *single_file,
                cx.run_id,
            ),
            Self::Store { done, .. } => *done,
            Self::Postgres {
                connection, sinks, ..
            } => postgres::is_committed(cx, connection, &sinks[0].0).await?,
            Self::AfterCommit(m) => {
                m.is_done(cx.ctx, cx.pipeline)
                    .await
                    .map_err(|reason| SinkError::AfterCommit {
                        name: m.source.clone(),
                        reason,
                    })?
            }
        })
    }

    async fn roll_forward(&mut self, cx: &CommitCx<'_>) -> Result<(), SinkError> {
        match self {
            Self::Local {
                staging,
                target,
                single_file,
                aside,
                ..
            } => local::swap(
                Path::new(staging),
                Path::new(target),
                *single_file,
                Path::new(aside),
            )
            .map_err(|e| self.error(e)),
            Self::Store {
                staging,
                target,
                single_file,
                append,
                done,
                ..
            } => {
                let r = objstore::swap(cx.ctx, staging, target, *single_file, *append).await;
                if r.is_ok() {
                    *done = true;
                }
                r.map_err(|e| self.error(e))
            }
            Self::Postgres {
                connection, gid, ..
            } => postgres::commit(cx, connection, gid.as_deref()).await,
            Self::AfterCommit(m) => {
                m.apply(cx.ctx, cx.pipeline)
                    .await
                    .map_err(|reason| SinkError::AfterCommit {
                        name: m.source.clone(),
                        reason,
                    })
            }
        }
    }

    async fn roll_back(&self, cx: &CommitCx<'_>) -> Result<(), SinkError> {
        match self {
            Self::Local {
                staging,
                target,
                aside,
                ..
            } => local::roll_back(Path::new(staging), Path::new(target), Path::new(aside))
                .map_err(|e| self.error(e)),
            Self::Store { staging, .. } => objstore::remove(cx.ctx, staging)
                .await
                .map_err(|e| self.error(e)),
            Self::Postgres {
                connection, gid, ..
            } => postgres::roll_back(cx, connection, gid.as_deref()).await,
            Self::AfterCommit(_) => Ok(()),
        }
    }

    async fn cleanup(&self, cx: &CommitCx<'_>) -> Result<(), SinkError> {
        match self {
            Self::Local { staging, aside, .. } => {
                local::cleanup(Path::new(staging), Path::new(aside)).map_err(|e| self.error(e))
            }
            Self::Store { staging, .. } => objstore::remove(cx.ctx, staging)
                .await
                .map_err(|e| self.error(e)),
            Self::Postgres { .. } | Self::AfterCommit(_) => Ok(()),
        }
    }
}

/// A commit in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    run_id: String,
    ds: String,
    started_at: String,
    phase: Phase,
    entries: Vec<Entry>,
    /// The watermarks to save once every sink committed.
    #[serde(default)]
    watermarks: Option<Watermarks>,
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
    /// Its path, URL or table (secrets masked).
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

/// Where a file sink stages its output in a run.
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
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| SinkError::Journal {
            path: path.display().to_string(),
            reason: format!(
                "the commit journal is damaged ({e}); inspect the sinks' targets and staging folders, then delete it"
            ),
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

/// Commits every staged output of a run as one unit, then applies `after` (the file sources'
/// `after_commit` moves) and saves `watermarks`. Returns what `after` did, per source.
pub async fn commit_run(
    cx: &CommitCx<'_>,
    staged: &mut [Box<dyn StagedOutput>],
    ds: &str,
    watermarks: Option<Watermarks>,
    after: Vec<Entry>,
) -> Result<Vec<(String, String)>, SinkError> {
    let mut entries: Vec<Entry> = Vec::new();
    for st in staged.iter_mut() {
        let e = st.prepare(cx).await?;
        // Sinks on one database connection share its transaction: one entry.
        if let Entry::Postgres {
            connection, sinks, ..
        } = &e
            && let Some(Entry::Postgres { sinks: all, .. }) = entries
                .iter_mut()
                .find(|x| matches!(x, Entry::Postgres { connection: c, .. } if c == connection))
        {
            all.extend(sinks.iter().cloned());
            continue;
        }
        entries.push(e);
    }
    // Database transactions first; all but the first are prepared (two-phase commit), and
    // the first is the commit point: once it commits, the run is committed. The journal names
    // the prepared transactions before they exist, so a crash leaves none behind unknown.
    entries.sort_by_key(|e| !matches!(e, Entry::Postgres { .. }));
    // Input files move only once every sink's output is in place.
    entries.extend(after);
    let mut first = true;
    for e in entries.iter_mut() {
        if let Entry::Postgres {
            connection, gid, ..
        } = e
        {
            if !first {
                *gid = Some(postgres::gid_for(cx, connection));
            }
            first = false;
        }
    }
    crate::fault::point("commit");
    let mut journal = Journal {
        run_id: cx.run_id.to_string(),
        ds: ds.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
        phase: Phase::Committing,
        entries,
        watermarks,
    };
    write_journal(cx.pipeline, &journal)?;
    crate::fault::point("commit");
    for i in 0..journal.entries.len() {
        if let Entry::Postgres {
            connection,
            gid: Some(gid),
            ..
        } = &journal.entries[i]
            && let Err(e) = postgres::prepare(cx, connection, gid).await
        {
            // Nothing is committed yet: undo all of it.
            let _ = roll_back(cx, &mut journal).await;
            return Err(e);
        }
    }
    crate::fault::point("commit");
    finish(cx, &mut journal, "committed").await?;
    Ok(journal
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::AfterCommit(m) => Some((m.source.clone(), m.summary())),
            _ => None,
        })
        .collect())
}

/// Moves every entry not yet in place, saves the watermarks, cleans up and forgets the
/// journal.
async fn finish(cx: &CommitCx<'_>, j: &mut Journal, how: &str) -> Result<(), SinkError> {
    let p = cx.pipeline;
    if j.phase == Phase::Committing {
        for i in 0..j.entries.len() {
            if j.entries[i].is_done(cx).await? {
                continue;
            }
            j.entries[i].roll_forward(cx).await?;
            if matches!(j.entries[i], Entry::Store { .. }) {
                write_journal(p, j)?;
            }
            crate::fault::point("commit");
        }
        if let Some(w) = &j.watermarks {
            save_watermarks(cx, w).await?;
            crate::fault::point("commit");
        }
        j.phase = Phase::CleaningUp;
        write_journal(p, j)?;
        crate::fault::point("commit");
    }
    for e in &j.entries {
        e.cleanup(cx).await?;
        crate::fault::point("commit");
    }
    write_last_commit(p, j, how);
    remove_journal(p)?;
    crate::fault::point("commit");
    Ok(())
}

async fn save_watermarks(cx: &CommitCx<'_>, w: &Watermarks) -> Result<(), SinkError> {
    let p = cx.pipeline;
    let store = crate::state::store::StateStore::new(&p.state_dir, p.state_url.as_deref())
        .map_err(|e| SinkError::State(e.to_string()))?;
    store
        .save(cx.ctx, &crate::state::key(&p.name), w)
        .await
        .map_err(|e| SinkError::State(e.to_string()))
}

async fn roll_back(cx: &CommitCx<'_>, j: &mut Journal) -> Result<(), SinkError> {
    if j.phase != Phase::RollingBack {
        j.phase = Phase::RollingBack;
        write_journal(cx.pipeline, j)?;
    }
    for e in &j.entries {
        e.roll_back(cx).await?;
    }
    remove_journal(cx.pipeline)
}

fn write_last_commit(p: &Pipeline, j: &Journal, how: &str) {
    let sinks = j
        .entries
        .iter()
        .flat_map(|e| e.sinks())
        .map(|(name, rows)| CommittedSink {
            location: p
                .sinks
                .get(&name)
                .map(|s| crate::secrets::redact(&s.location).into_owned())
                .unwrap_or_default(),
            name,
            rows,
        })
        .collect();
    let record = LastCommit {
        run_id: j.run_id.clone(),
        ds: j.ds.clone(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        how: how.to_string(),
        sinks,
    };
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    if let Err(e) = crate::state::write_atomic(&last_commit_path(p), &bytes) {
        tracing::warn!(error = %e, "cannot write the last-commit record");
    }
}

/// Finishes a commit that a crash interrupted, if there is one: rolls it back when nothing
/// was committed yet, forward otherwise. Returns what was done, for the user.
pub async fn recover(ctx: &SessionContext, p: &Pipeline) -> Result<Option<String>, SinkError> {
    let Some(mut j) = read_journal(p)? else {
        return Ok(None);
    };
    for e in &j.entries {
        let Entry::Store {
            sink,
            staging,
            target,
            ..
        } = e
        else {
            continue;
        };
        for loc in [target, staging] {
            let conn = p
                .sinks
                .get(sink)
                .and_then(|s| s.spec.connection())
                .and_then(|c| crate::source::pipeline_connection(p, c));
            crate::store::ensure_store(ctx, loc, conn).map_err(|error| SinkError::Store {
                name: sink.clone(),
                error,
            })?;
        }
    }
    let shared = RunResources::default();
    let run_id = j.run_id.clone();
    let cx = CommitCx {
        ctx,
        pipeline: p,
        run_id: &run_id,
        shared: &shared,
    };
    let names = j
        .entries
        .iter()
        .flat_map(|e| e.sinks())
        .map(|(s, _)| s)
        .collect::<Vec<_>>()
        .join(", ");
    let short = j.run_id.chars().take(8).collect::<String>();
    let message = match j.phase {
        Phase::RollingBack => {
            roll_back(&cx, &mut j).await?;
            format!(
                "run {short} was interrupted before its commit; its staged output was removed ({names})"
            )
        }
        Phase::CleaningUp => {
            finish(&cx, &mut j, "recovered").await?;
            format!("run {short} was interrupted after its commit; finished cleaning up ({names})")
        }
        Phase::Committing => {
            // Input files move only after every sink committed, so only the sinks say
            // whether the commit happened.
            let mut any = false;
            for e in j
                .entries
                .iter()
                .filter(|e| !matches!(e, Entry::AfterCommit(_)))
            {
                any |= e.is_done(&cx).await?;
            }
            if any {
                finish(&cx, &mut j, "recovered").await?;
                format!(
                    "run {short} was interrupted during its commit; rolled forward: every sink now holds its output ({names})"
                )
            } else {
                roll_back(&cx, &mut j).await?;
                format!(
                    "run {short} was interrupted before any output was committed; rolled back: every sink keeps its previous output ({names})"
                )
            }
        }
    };
    Ok(Some(message))
}

/// Removes staging places an interrupted run of this pipeline left beside a file sink
/// (after [`recover`], which needs them). Staging of other pipelines is left alone.
pub async fn remove_stale_staging(ctx: &SessionContext, p: &Pipeline, sink: &Sink, run_id: &str) {
    if sink.spec.path().is_none() {
        return;
    }
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
