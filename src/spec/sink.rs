//! Sink entries of a pipeline file.

use schemars::JsonSchema;
use serde::Deserialize;

use super::source::Compression;
use crate::yaml::{DeError, Node, from_node_skipping};

/// A sink: where a source's or transform's rows are written. `type` picks the connector.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkSpec {
    /// Parquet files (zstd-compressed by default).
    Parquet(FileSinkSpec<ParquetSinkOptions>),
    /// CSV files with a header row.
    Csv(FileSinkSpec<CsvSinkOptions>),
    /// Newline-delimited JSON files.
    Json(FileSinkSpec<JsonSinkOptions>),
}

/// The sink types this version can write.
pub const SINK_TYPES: &[&str] = &["parquet", "csv", "json"];

/// Sink types of the format that this version does not write yet.
pub const PLANNED_SINK_TYPES: &[&str] = &["postgres", "mysql"];

impl SinkSpec {
    /// Deserializes a sink entry, dispatching on its `type` (the explicit registry).
    pub fn from_node(kind: &str, node: &Node, path: &str) -> Result<Option<Self>, DeError> {
        Ok(Some(match kind {
            "parquet" => Self::Parquet(from_node_skipping(node, path, "type")?),
            "csv" => Self::Csv(from_node_skipping(node, path, "type")?),
            "json" | "jsonl" | "ndjson" => Self::Json(from_node_skipping(node, path, "type")?),
            _ => return Ok(None),
        }))
    }

    /// The connector name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Parquet(_) => "parquet",
            Self::Csv(_) => "csv",
            Self::Json(_) => "json",
        }
    }

    /// The output path or URL.
    pub fn path(&self) -> &str {
        match self {
            Self::Parquet(s) => &s.path,
            Self::Csv(s) => &s.path,
            Self::Json(s) => &s.path,
        }
    }

    /// Partition columns.
    pub fn partition_by(&self) -> &[String] {
        match self {
            Self::Parquet(s) => &s.partition_by,
            Self::Csv(s) => &s.partition_by,
            Self::Json(s) => &s.partition_by,
        }
    }

    /// What to do with existing output.
    pub fn mode(&self) -> SinkMode {
        match self {
            Self::Parquet(s) => s.mode,
            Self::Csv(s) => s.mode,
            Self::Json(s) => s.mode,
        }
    }

    /// The connection holding object-store credentials, if any.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Self::Parquet(s) => s.connection.as_deref(),
            Self::Csv(s) => s.connection.as_deref(),
            Self::Json(s) => s.connection.as_deref(),
        }
    }

    /// Whether the sink may remove files at its path that etl did not write.
    pub fn replace_existing(&self) -> bool {
        match self {
            Self::Parquet(s) => s.replace_existing,
            Self::Csv(s) => s.replace_existing,
            Self::Json(s) => s.replace_existing,
        }
    }

    /// The name of the source or transform written.
    pub fn from(&self) -> &str {
        match self {
            Self::Parquet(s) => &s.from,
            Self::Csv(s) => &s.from,
            Self::Json(s) => &s.from,
        }
    }
}

/// How a sink treats what is already at its path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    /// Replace it, atomically on success.
    #[default]
    Overwrite,
    /// Add new part files beside the existing ones (folder paths only).
    Append,
    /// Fail if anything is there.
    ErrorIfExists,
}

/// A file sink.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec<O: Default> {
    /// The source or transform to write.
    pub from: String,
    /// A folder of part files, or one file when the path ends in the format's extension and
    /// there is no `partition_by`. Local path (relative to the pipeline file) or object-store
    /// URL.
    pub path: String,
    /// Columns to split the output by, as Hive-style `col=value/` folders.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// What to do with existing output.
    #[serde(default)]
    pub mode: SinkMode,
    /// Let this sink remove files at its path that etl did not write for it. By default a
    /// run refuses (exit 2, before reading any data) to replace a non-empty target holding a
    /// file that no earlier run of this pipeline's sink of the same name wrote.
    #[serde(default)]
    pub replace_existing: bool,
    /// Format options.
    #[serde(default)]
    pub options: O,
    /// The connection holding object-store credentials, if not from the environment.
    #[serde(default)]
    pub connection: Option<String>,
    /// What the output is.
    #[serde(default)]
    pub description: Option<String>,
}

/// Parquet writing options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkOptions {
    /// `zstd` (default), `snappy`, `gzip`, `lz4`, `brotli` or `none`; a level may follow in
    /// parentheses: `zstd(3)`.
    #[serde(default)]
    pub compression: Option<String>,
    /// Maximum rows per row group.
    #[serde(default)]
    pub row_group_size: Option<usize>,
}

/// CSV writing options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSinkOptions {
    /// Field separator, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Write a header row (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// Compress the files.
    #[serde(default)]
    pub compression: Option<Compression>,
}

/// JSON writing options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSinkOptions {
    /// Compress the files.
    #[serde(default)]
    pub compression: Option<Compression>,
}
