//! Source entries of a pipeline file: the wrapper the registry builds, and the settings
//! every source connector shares (bad rows, compression, incremental reading).
//!
//! The config structs themselves live with their connectors (`crate::source::*`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::connector::{SOURCES, SourceConnector, tagged_union};

/// A source: where rows come from. The `type` key picks the connector (see
/// [`crate::connector::SOURCES`]).
#[derive(Debug, Clone)]
pub struct SourceSpec(pub Arc<dyn SourceConnector>);

impl std::ops::Deref for SourceSpec {
    type Target = dyn SourceConnector;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl JsonSchema for SourceSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Source".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        tagged_union(generator, SOURCES.iter().map(|e| (e.name, e.schema)))
    }
}

/// What to do with a row that does not parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Stop with the file, line and reason of the first bad row.
    #[default]
    Fail,
    /// Drop bad rows and count them in the run summary.
    Skip,
    /// Write bad rows, with file, line and reason, under `<state dir>/quarantine/<source>/`.
    Quarantine,
}

/// Compression of input or output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// zstd (`.zst`).
    Zstd,
    /// bzip2 (`.bz2`).
    Bzip2,
    /// xz (`.xz`).
    Xz,
}

/// What to do with rows whose incremental cursor is NULL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnNullCursor {
    /// Stop the run, saying how many there are.
    #[default]
    Fail,
    /// Leave them out, and report how many.
    Skip,
    /// Read them on every run (pair with an `upsert` sink), and report how many.
    Include,
}

/// Incremental reading: only rows past the last committed cursor value are read.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSpec {
    /// The cursor column: an integer, date, timestamp or string column that grows with new
    /// rows. Rows with `cursor > watermark` (and up to the largest value seen when the run
    /// starts) are read.
    pub cursor: String,
    /// Re-read this far behind the watermark (`10m`, `1h`, `2d` for time cursors; a number for
    /// integer cursors), for cursors that are not unique or arrive out of order. Pair with
    /// an `upsert` sink, so re-read rows replace themselves.
    #[serde(default)]
    pub lookback: Option<serde_json::Value>,
    /// Rows whose cursor is NULL: `fail` (default), `skip` or `include`.
    #[serde(default)]
    pub on_null_cursor: OnNullCursor,
    /// For HTTP sources: the request parameter that carries the watermark.
    #[serde(default)]
    pub param: Option<String>,
}
