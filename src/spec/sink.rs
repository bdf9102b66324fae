//! Sink entries of a pipeline file.

use schemars::JsonSchema;
use serde::Deserialize;

use super::range;
use super::source::Compression;
use crate::yaml::{DeError, Node, from_node_skipping};

/// The most rows a Parquet row group may hold (`row_group_size`).
pub const MAX_ROW_GROUP_SIZE: u64 = 16 << 20;

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
    /// `zstd` (default, level 3), `snappy`, `gzip`, `lz4`, `lz4_raw`, `brotli` or `none`. A
    /// level may follow in parentheses: `zstd(1)` to `zstd(22)`, `gzip(0)` to `gzip(9)`,
    /// `brotli(0)` to `brotli(11)`; the others take none.
    #[serde(default)]
    pub compression: Option<String>,
    /// Maximum rows per row group, 1 to 16777216 (default 1048576).
    #[serde(
        default,
        deserialize_with = "range::bounded::<_, 1, MAX_ROW_GROUP_SIZE>"
    )]
    #[schemars(range(min = 1, max = MAX_ROW_GROUP_SIZE))]
    pub row_group_size: Option<usize>,
}

/// A Parquet compression setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParquetCompressionError {
    /// Not a codec name.
    #[error("unknown Parquet compression `{0}` (zstd, snappy, gzip, lz4, lz4_raw, brotli or none)")]
    Unknown(String),
    /// A level outside the codec's range, or not a number.
    #[error("`{codec}` takes a level from {min} to {max}, found `{level}`")]
    Level {
        /// The codec.
        codec: &'static str,
        /// What was written between the parentheses.
        level: String,
        /// The lowest level.
        min: u32,
        /// The highest level.
        max: u32,
    },
    /// A level on a codec that has none.
    #[error("`{0}` takes no level")]
    NoLevel(&'static str),
}

/// Normalises a Parquet compression setting (`ZSTD` → `zstd(3)`, `none` → `uncompressed`),
/// checking the codec and its level as the Parquet writer will.
pub fn parquet_compression(name: &str) -> Result<String, ParquetCompressionError> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, level) = match lower.split_once('(') {
        Some((b, l)) => (b.trim(), Some(l.strip_suffix(')').unwrap_or("").trim())),
        None => (lower.as_str(), None),
    };
    let (codec, levels): (&'static str, Option<(u32, u32, u32)>) = match base {
        "none" | "uncompressed" => ("uncompressed", None),
        "snappy" => ("snappy", None),
        "lz4" => ("lz4", None),
        "lz4_raw" => ("lz4_raw", None),
        "zstd" => ("zstd", Some((1, 22, 3))),
        "gzip" => ("gzip", Some((0, 9, 6))),
        "brotli" => ("brotli", Some((0, 11, 4))),
        _ => return Err(ParquetCompressionError::Unknown(name.to_string())),
    };
    match (levels, level) {
        (None, None) => Ok(codec.to_string()),
        (None, Some(_)) => Err(ParquetCompressionError::NoLevel(codec)),
        (Some((_, _, default)), None) => Ok(format!("{codec}({default})")),
        (Some((min, max, _)), Some(l)) => match l.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(format!("{codec}({n})")),
            _ => Err(ParquetCompressionError::Level {
                codec,
                level: l.to_string(),
                min,
                max,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names_and_levels() {
        assert_eq!(parquet_compression("zstd").as_deref(), Ok("zstd(3)"));
        assert_eq!(parquet_compression("ZSTD(9)").as_deref(), Ok("zstd(9)"));
        assert_eq!(parquet_compression("none").as_deref(), Ok("uncompressed"));
        assert_eq!(parquet_compression("snappy").as_deref(), Ok("snappy"));
        assert_eq!(parquet_compression("gzip(0)").as_deref(), Ok("gzip(0)"));
        assert_eq!(
            parquet_compression("brotli(11)").as_deref(),
            Ok("brotli(11)")
        );
        for bad in [
            "zip",
            "",
            "zstd(999)",
            "zstd(0)",
            "gzip(10)",
            "brotli(12)",
            "zstd(",
            "zstd(-1)",
            "snappy(2)",
            "zstd()",
        ] {
            let e = parquet_compression(bad).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert_eq!(
            parquet_compression("zstd(999)").unwrap_err().to_string(),
            "`zstd` takes a level from 1 to 22, found `999`"
        );
    }
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
