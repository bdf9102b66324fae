//! Sinks: write a DataFrame to its destination, atomically.
//!
//! Writing is two-phase. [`write`] puts the output in a staging place beside the final path
//! (`.NAME.etl-tmp-RUNID`); only when every sink of the run has written (and every check
//! passed) does [`commit`] move the staged output into place. A failed or killed run leaves
//! the previous output untouched and nothing at the final path.

mod commit;
mod file;

pub use commit::{
    Staged, abort, commit, exists_non_empty, remove_staging, remove_stale_staging, staging_location,
};
pub use file::write;

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
    /// Object-store setup failed.
    #[error("sink `{name}`: {error}")]
    Store {
        /// The sink.
        name: String,
        /// The store error.
        error: crate::store::StoreError,
    },
}
