//! Sources: each connector turns a validated [`Source`] into a DataFusion table.
//!
//! One module per connector (see [`crate::connector::SOURCES`] for the registry): files
//! (csv, json, parquet, avro, lines), inline rows, PostgreSQL, MySQL and HTTP APIs.

pub mod file;
pub mod http;
pub mod inline;
pub mod mysql;
pub mod postgres;

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

pub use file::{BadRow, BadRowLog, BadRowLogs, MAX_LISTED_ENTRIES, list_files};

use crate::model::{Pipeline, Source};
use crate::store::StoreError;

/// A source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path without wildcards that does not exist.
    #[error("source `{name}`: no such file or folder: {path}")]
    NotFound {
        /// The source.
        name: String,
        /// The resolved path.
        path: String,
    },
    /// A device, a pipe or another file that is not a regular file.
    #[error("source `{name}`: {path} is not a regular file or folder")]
    NotAFile {
        /// The source.
        name: String,
        /// The resolved path.
        path: String,
    },
    /// A folder with too much below it to list.
    #[error(
        "source `{name}`: {folder} holds more than {limit} files and folders; point `path` at a narrower folder or glob"
    )]
    TooManyFiles {
        /// The source.
        name: String,
        /// The folder listed.
        folder: String,
        /// The bound.
        limit: usize,
    },
    /// A folder or glob that matched no file.
    #[error("source `{name}`: no files match {pattern}")]
    NoFiles {
        /// The source.
        name: String,
        /// The folder or glob.
        pattern: String,
    },
    /// A file that could not be read or decoded.
    #[error("source `{name}`: {file}: {reason}")]
    Read {
        /// The source.
        name: String,
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// Inline rows that do not fit the schema.
    #[error("source `{name}`: inline rows: {reason}")]
    Inline {
        /// The source.
        name: String,
        /// Why.
        reason: String,
    },
    /// The object store could not be opened.
    #[error("source `{name}`: {error}")]
    Store {
        /// The source.
        name: String,
        /// The store error.
        error: StoreError,
    },
    /// A database source failed (connecting, describing, reading).
    #[error("source `{name}`: {error}")]
    Db {
        /// The source.
        name: String,
        /// The database error.
        error: crate::db::DbError,
    },
    /// An HTTP API source failed (a request, a body, the landing zone).
    #[error("source `{name}`: {error}")]
    Http {
        /// The source.
        name: String,
        /// What went wrong.
        error: http::HttpError,
    },
    /// A file source's `after_commit` could not be prepared.
    #[error("source `{name}`: after_commit: {reason}")]
    AfterCommit {
        /// The source.
        name: String,
        /// Why.
        reason: String,
    },
    /// The engine refused the table (schema inference, listing).
    #[error("source `{name}`: {error}")]
    Engine {
        /// The source.
        name: String,
        /// The engine's error.
        error: DataFusionError,
    },
}

impl SourceError {
    /// The key of the source's entry the error is about, when it is not the entry itself
    /// or its `path`: an API's `url`, its `land`, a file source's `after_commit`.
    pub fn yaml_key(&self) -> Option<&'static str> {
        match self {
            Self::Http {
                error: http::HttpError::Land { .. } | http::HttpError::Replay { .. },
                ..
            } => Some("land"),
            Self::Http { .. } => Some("url"),
            Self::AfterCommit { .. } => Some("after_commit"),
            _ => None,
        }
    }

    /// What a user can do about the error, when there is something general to say.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Self::NotFound { .. } | Self::NoFiles { .. } => {
                Some("relative paths are relative to the pipeline file's folder")
            }
            Self::Http {
                error: http::HttpError::Transport { .. },
                ..
            } => Some(
                "check that the API is up and reachable from here (URL, network, proxy); the \
                 source's `retries:` and `timeout:` set how long etl keeps trying",
            ),
            Self::Http {
                error: http::HttpError::Status { .. },
                ..
            } => Some(
                "the API refused the request: check the URL, `params:` and `headers:`; 429 and \
                 5xx answers are retried as the source's `retries:` says",
            ),
            _ => None,
        }
    }
}

/// Builds the table for a source with its connector.
pub async fn build(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    src: &Source,
) -> Result<crate::connector::Built, SourceError> {
    build_with(
        ctx,
        pipeline,
        src,
        crate::connector::BuildOptions::default(),
    )
    .await
}

/// Builds the table for a source with its connector, as a command asks.
pub async fn build_with(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    src: &Source,
    options: crate::connector::BuildOptions<'_>,
) -> Result<crate::connector::Built, SourceError> {
    let cx = crate::connector::BuildCx {
        ctx,
        pipeline,
        source: src,
        options,
    };
    src.spec.build(&cx).await
}

/// The options of a named connection, for object stores.
pub fn pipeline_connection<'a>(
    pipeline: &'a Pipeline,
    name: &str,
) -> Option<&'a indexmap::IndexMap<String, String>> {
    pipeline.connections.get(name).map(|c| &c.options)
}
