//! Sinks: write a DataFrame to its destination, atomically, replacing only what etl wrote.
//!
//! Writing is two-phase. Each connector (one module per connector, see
//! [`crate::connector::SINKS`]) stages its output: files in a staging place beside the
//! final path, database rows in an open transaction. Only when every sink of the run has
//! staged (and every check passed) does [`commit::commit_run`] commit them all as one unit,
//! journaled so that a crash at any step is finished or undone by the next run. Before any
//! data is read, each connector refuses to replace what etl did not write.

pub mod columns;
pub mod commit;
pub mod file;
pub mod local;
pub mod manifest;
pub mod objstore;
pub mod postgres;

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;

pub use commit::{CommitCx, commit_run, recover, remove_stale_staging, staging_location};
use manifest::Ownership;

use crate::model::{Pipeline, Sink};
use crate::spec::sink::SinkMode;
use crate::validate::is_url;

/// A sink could not write or commit.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// `error_if_exists` and something is there.
    #[error("sink `{name}`: {path} already exists (mode: error_if_exists)")]
    Exists {
        /// The sink.
        name: String,
        /// The final path.
        path: String,
    },
    /// The target holds files that no earlier run of this sink wrote.
    #[error(
        "sink `{name}`: {path} holds files that etl did not write for this sink (for example {file}); it was left untouched"
    )]
    Foreign {
        /// The sink.
        name: String,
        /// The final path.
        path: String,
        /// One such file.
        file: String,
    },
    /// Bad sink options (compression name and the like).
    #[error("sink `{name}`: {reason}")]
    Options {
        /// The sink.
        name: String,
        /// Why.
        reason: String,
    },
    /// The query or the writer failed.
    #[error("sink `{name}`: {error}")]
    Write {
        /// The sink.
        name: String,
        /// The engine's error.
        error: datafusion::error::DataFusionError,
    },
    /// Moving files into place failed.
    #[error("sink `{name}`: cannot move the output into place at {path}: {reason}")]
    Commit {
        /// The sink.
        name: String,
        /// The final path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The commit journal could not be written or read.
    #[error("commit journal {path}: {reason}")]
    Journal {
        /// The journal file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A database sink failed.
    #[error("sink `{name}`: {reason}")]
    Db {
        /// The sink.
        name: String,
        /// Why (the server's message).
        reason: String,
    },
    /// Another run committed this sink after this run started (fenced out).
    #[error(
        "sink `{name}`: another run ({other}) committed to it after this run started; nothing of this run was committed"
    )]
    Fenced {
        /// The sink.
        name: String,
        /// The run that got there first.
        other: String,
    },
    /// A source's `after_commit` moves failed (every sink committed; the next run finishes
    /// the moves).
    #[error("source `{name}`: after_commit: {reason}")]
    AfterCommit {
        /// The source.
        name: String,
        /// Why.
        reason: String,
    },
    /// Watermarks could not be saved.
    #[error("cannot save the watermarks: {0}")]
    State(String),
    /// Object-store setup failed.
    #[error("sink `{name}`: {error}")]
    Store {
        /// The sink.
        name: String,
        /// The store error.
        error: crate::store::StoreError,
    },
}

/// A sink's output, staged and waiting for the run's commit.
#[async_trait]
pub trait StagedOutput: Send + Sync {
    /// The sink.
    fn sink(&self) -> &Sink;
    /// Rows written.
    fn rows(&self) -> u64;
    /// Bytes written, when known.
    fn bytes(&self) -> Option<u64>;
    /// A line for the summary (`2 files → out/daily`).
    fn detail(&self) -> String;
    /// Makes the output ready to commit, and describes it for the commit journal.
    async fn prepare(&mut self, cx: &CommitCx<'_>) -> Result<commit::Entry, SinkError>;
    /// Throws the staged output away (another sink or a check failed).
    async fn abort(&mut self, cx: &CommitCx<'_>);
}

/// What a sink's own commit records say (database sinks keep them with the data): the run
/// that last committed it, and the watermark of each incremental source it read.
#[derive(Debug, Clone, Default)]
pub struct SinkCommits {
    /// The run that last committed the sink.
    pub run_id: Option<String>,
    /// Source → watermark.
    pub marks: std::collections::BTreeMap<String, crate::state::watermark::Watermark>,
}

/// Resources the sinks of one run share, by key (one database transaction per connection).
#[derive(Default)]
pub struct RunResources {
    items: tokio::sync::Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl RunResources {
    /// The resource under `key`, made by `make` the first time.
    pub async fn get_or_try_insert<T, E, F>(&self, key: &str, make: F) -> Result<Arc<T>, E>
    where
        T: Any + Send + Sync,
        F: std::future::Future<Output = Result<T, E>>,
    {
        let mut items = self.items.lock().await;
        if let Some(v) = items.get(key).cloned()
            && let Ok(t) = v.downcast::<T>()
        {
            return Ok(t);
        }
        let t = Arc::new(make.await?);
        items.insert(key.to_string(), t.clone());
        Ok(t)
    }

    /// The resource under `key`, if there is one of type `T`.
    pub async fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.items
            .lock()
            .await
            .get(key)
            .cloned()?
            .downcast::<T>()
            .ok()
    }
}

/// Refuses to replace a target that holds files etl did not write for this sink (unless the
/// sink says `replace_existing: true`). `append` removes nothing, so it is not checked.
pub async fn check_file_ownership(
    ctx: &SessionContext,
    p: &Pipeline,
    sink: &Sink,
) -> Result<(), SinkError> {
    if sink.replace_existing || sink.mode == SinkMode::Append {
        return Ok(());
    }
    let key = crate::state::key(&p.name);
    let ownership = if is_url(&sink.location) {
        let conn = sink
            .spec
            .connection()
            .and_then(|c| crate::source::pipeline_connection(p, c));
        crate::store::ensure_store(ctx, &sink.location, conn).map_err(|error| {
            SinkError::Store {
                name: sink.name.clone(),
                error,
            }
        })?;
        objstore::ownership(ctx, &sink.location, sink.single_file, (&key, &sink.name))
            .await
            .map_err(|e| SinkError::Commit {
                name: sink.name.clone(),
                path: sink.location.clone(),
                reason: format!("cannot list what is there: {e}"),
            })?
    } else {
        manifest::local_ownership(
            Path::new(sink.location.trim_end_matches('/')),
            sink.single_file,
            &key,
            &sink.name,
        )
    };
    match ownership {
        Ownership::Empty | Ownership::Ours => Ok(()),
        Ownership::Foreign(file) => Err(SinkError::Foreign {
            name: sink.name.clone(),
            path: sink.location.clone(),
            file,
        }),
    }
}

/// True when the path holds a file, or a folder with at least one file.
pub async fn exists_non_empty(ctx: &SessionContext, location: &str) -> bool {
    if is_url(location) {
        objstore::exists_non_empty(ctx, location).await
    } else {
        any_local_file(Path::new(location))
    }
}

/// True when there is a file at or below `root` (besides the manifest). Stops at the first file, and gives up
/// (answering yes) after [`crate::source::MAX_LISTED_ENTRIES`] entries, so asking about a
/// folder like `/` costs a moment, not a walk of the whole disk.
fn any_local_file(root: &Path) -> bool {
    if root.is_file() {
        return true;
    }
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            seen += 1;
            if seen > crate::source::MAX_LISTED_ENTRIES {
                return true;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                // etl's own manifest alone does not make a folder non-empty.
                Ok(_) if dir == root && e.file_name() == manifest::MANIFEST => {}
                Ok(_) => return true,
                Err(_) => {}
            }
        }
    }
    false
}

/// Removes whatever is at a staging place (after a failure elsewhere in the run).
pub async fn remove_staging(ctx: &SessionContext, staging: &str) {
    let result = if is_url(staging) {
        objstore::remove(ctx, staging)
            .await
            .map_err(|e| e.to_string())
    } else {
        local::remove_path(Path::new(staging))
            .map(|()| local::remove_created_parents(Path::new(staging)))
            .map_err(|e| e.to_string())
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot remove a staging place; the next run removes it");
    }
}
