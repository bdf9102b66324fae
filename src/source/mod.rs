//! Sources: each connector turns a validated [`Source`] into a DataFusion table.
//!
//! The registry is the `match` in [`register`]: one arm per connector, one file per
//! connector. File formats go through DataFusion's listing tables (parallel, streaming,
//! object-store aware); `lines` and `inline` build in-memory tables.

mod bounded;
mod file;
mod inline;
mod lines;
mod locate;
mod sized;
mod tolerant;

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

pub use bounded::MAX_LISTED_ENTRIES;
pub use file::list_files;
pub use locate::{BadRow, locate_bad_row};
pub use tolerant::BadRowLog;

use crate::model::{Pipeline, Source};
use crate::spec::SourceSpec;
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
    /// The engine refused the table (schema inference, listing).
    #[error("source `{name}`: {error}")]
    Engine {
        /// The source.
        name: String,
        /// The engine's error.
        error: DataFusionError,
    },
}

/// Builds the table for a source.
pub async fn build(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    src: &Source,
) -> Result<Arc<dyn TableProvider>, SourceError> {
    let connection = src
        .spec
        .connection()
        .and_then(|c| pipeline_connection(pipeline, c));
    for loc in &src.locations {
        crate::store::ensure_store(ctx, loc, connection).map_err(|error| SourceError::Store {
            name: src.name.clone(),
            error,
        })?;
    }
    match &src.spec {
        SourceSpec::Csv(_) | SourceSpec::Json(_) | SourceSpec::Parquet(_) | SourceSpec::Avro(_) => {
            file::build(ctx, src).await
        }
        SourceSpec::Lines(spec) => lines::build(ctx, src, &spec.options).await,
        SourceSpec::Inline(spec) => inline::build(src, spec),
    }
}

/// Builds a source whose bad rows are skipped or quarantined (`on_bad_row`), with the log
/// that counts them.
pub async fn build_tolerant(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    src: &Source,
) -> Result<(Arc<dyn TableProvider>, Arc<BadRowLog>), SourceError> {
    // The typed schema: declared, or inferred by the plain table.
    let schema = match &src.schema {
        Some(s) => s.clone(),
        None => build(ctx, pipeline, src).await?.schema(),
    };
    let log = Arc::new(BadRowLog::new(
        &src.name,
        src.on_bad_row,
        &pipeline.state_dir,
        &pipeline.run_id,
    ));
    let table = tolerant::build(ctx, src, schema, log.clone()).await?;
    Ok((table, log))
}

/// The options of a named connection, for object stores.
pub fn pipeline_connection<'a>(
    pipeline: &'a Pipeline,
    name: &str,
) -> Option<&'a indexmap::IndexMap<String, String>> {
    pipeline.connections.get(name).map(|c| &c.options)
}
