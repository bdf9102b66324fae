//! Sinks: write a DataFrame to its destination, atomically, replacing only what etl wrote.
//!
//! Writing is two-phase. [`write`] puts the output in a staging place beside the final path;
//! only when every sink of the run has written (and every check passed) does
//! [`commit::commit_run`] move all staged outputs into place as one unit, journaled so that
//! a crash at any step is finished or undone by the next run. Before any data is read,
//! [`check_ownership`] refuses to replace a target holding files etl did not write.

pub mod commit;
mod file;
pub mod local;
pub mod manifest;
pub mod objstore;

use std::path::Path;

use datafusion::prelude::SessionContext;

pub use commit::{Staged, commit_run, recover, remove_stale_staging, staging_location};
pub use file::write;
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
    /// Object-store setup failed.
    #[error("sink `{name}`: {error}")]
    Store {
        /// The sink.
        name: String,
        /// The store error.
        error: crate::store::StoreError,
    },
}

/// Refuses to replace a target that holds files etl did not write for this sink (unless the
/// sink says `replace_existing: true`). `append` removes nothing, so it is not checked.
pub async fn check_ownership(
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
        !manifest::local_files(Path::new(location)).is_empty() || Path::new(location).is_file()
    }
}

/// Removes whatever is at a staging place (after a failure elsewhere in the run).
pub async fn remove_staging(ctx: &SessionContext, staging: &str) {
    let result = if is_url(staging) {
        objstore::remove(ctx, staging)
            .await
            .map_err(|e| e.to_string())
    } else {
        local::remove_path(Path::new(staging)).map_err(|e| e.to_string())
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot remove a staging place; the next run removes it");
    }
}

impl Staged {
    /// A staged output.
    pub fn new(sink: &Sink, staging: String, rows: u64) -> Self {
        Self {
            sink: sink.clone(),
            staging,
            rows,
            bytes: 0,
            files: 0,
        }
    }

    /// Fills in bytes and files from what is in the staging place.
    pub async fn measure(&mut self, ctx: &SessionContext) {
        if is_url(&self.staging) {
            (self.bytes, self.files) = objstore::measure(ctx, &self.staging).await;
        } else {
            let root = Path::new(&self.staging);
            let files: Vec<std::path::PathBuf> = if root.is_file() {
                vec![root.to_path_buf()]
            } else {
                manifest::local_files(root)
                    .iter()
                    .map(|f| root.join(f))
                    .collect()
            };
            self.files = files.len();
            self.bytes = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
        }
    }
}
