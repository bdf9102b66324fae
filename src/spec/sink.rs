//! Sink entries of a pipeline file: the wrapper the registry builds, and what every sink
//! connector shares. The config structs live with their connectors (`crate::sink::*`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::connector::{SINKS, SinkConnector, tagged_union};

/// A sink: where a source's or transform's rows are written. `type` picks the connector
/// (see [`crate::connector::SINKS`]).
#[derive(Debug, Clone)]
pub struct SinkSpec(pub Arc<dyn SinkConnector>);

impl std::ops::Deref for SinkSpec {
    type Target = dyn SinkConnector;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl JsonSchema for SinkSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sink".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        tagged_union(generator, SINKS.iter().map(|e| (e.name, e.schema)))
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
    /// Insert new rows and update existing ones by `key` (database sinks).
    Upsert,
}

/// The most rows a Parquet row group may hold (`row_group_size`).
pub const MAX_ROW_GROUP_SIZE: u64 = 16 << 20;

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
            assert!(parquet_compression(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parquet_compression("zstd(999)").unwrap_err().to_string(),
            "`zstd` takes a level from 1 to 22, found `999`"
        );
    }
}
