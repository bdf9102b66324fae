//! Source entries of a pipeline file.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::range;
use crate::yaml::{DeError, Node, from_node_skipping};

/// The most rows schema inference may look at (`infer_rows`).
pub const MAX_INFER_ROWS: u64 = 10_000_000;

/// A source: where rows come from. The `type` key picks the connector.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceSpec {
    /// Delimited text files.
    Csv(FileSourceSpec<CsvOptions>),
    /// Newline-delimited JSON files (`.json`, `.jsonl`, `.ndjson`).
    Json(FileSourceSpec<JsonOptions>),
    /// Parquet files.
    Parquet(FileSourceSpec<NoOptions>),
    /// Avro object container files.
    Avro(FileSourceSpec<NoOptions>),
    /// Text files read one row per line, in a single column `line` (logs).
    Lines(FileSourceSpec<LinesOptions>),
    /// Rows written in the pipeline file itself: small lookups and tests.
    Inline(InlineSourceSpec),
}

/// The source types this version can read.
pub const SOURCE_TYPES: &[&str] = &["csv", "json", "parquet", "avro", "lines", "inline"];

/// Source types of the format that this version does not read yet.
pub const PLANNED_SOURCE_TYPES: &[&str] = &["postgres", "mysql", "sqlite", "http", "kafka"];

impl SourceSpec {
    /// Deserializes a source entry, dispatching on its `type` (the explicit registry).
    pub fn from_node(kind: &str, node: &Node, path: &str) -> Result<Option<Self>, DeError> {
        Ok(Some(match kind {
            "csv" => Self::Csv(from_node_skipping(node, path, "type")?),
            "json" | "jsonl" | "ndjson" => Self::Json(from_node_skipping(node, path, "type")?),
            "parquet" => Self::Parquet(from_node_skipping(node, path, "type")?),
            "avro" => Self::Avro(from_node_skipping(node, path, "type")?),
            "lines" => Self::Lines(from_node_skipping(node, path, "type")?),
            "inline" => Self::Inline(from_node_skipping(node, path, "type")?),
            _ => return Ok(None),
        }))
    }

    /// The connector name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Json(_) => "json",
            Self::Parquet(_) => "parquet",
            Self::Avro(_) => "avro",
            Self::Lines(_) => "lines",
            Self::Inline(_) => "inline",
        }
    }

    /// The path of a file source; `None` for inline rows.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Csv(s) => Some(&s.path),
            Self::Json(s) => Some(&s.path),
            Self::Parquet(s) | Self::Avro(s) => Some(&s.path),
            Self::Lines(s) => Some(&s.path),
            Self::Inline(_) => None,
        }
    }

    /// What to do with rows that do not parse.
    pub fn on_bad_row(&self) -> OnBadRow {
        match self {
            Self::Csv(s) => s.on_bad_row,
            Self::Json(s) => s.on_bad_row,
            Self::Parquet(s) | Self::Avro(s) => s.on_bad_row,
            Self::Lines(s) => s.on_bad_row,
            Self::Inline(_) => OnBadRow::Fail,
        }
    }

    /// The connection holding object-store credentials, if any.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Self::Csv(s) => s.connection.as_deref(),
            Self::Json(s) => s.connection.as_deref(),
            Self::Parquet(s) | Self::Avro(s) => s.connection.as_deref(),
            Self::Lines(s) => s.connection.as_deref(),
            Self::Inline(_) => None,
        }
    }

    /// The compression set in the options, for the text formats; `None` means "from the
    /// file extension".
    pub fn compression(&self) -> Option<Compression> {
        match self {
            Self::Csv(s) => s.options.compression,
            Self::Json(s) => s.options.compression,
            Self::Lines(s) => s.options.compression,
            _ => None,
        }
    }

    /// The declared schema, if any.
    pub fn schema(&self) -> Option<&IndexMap<String, String>> {
        match self {
            Self::Csv(s) => s.schema.as_ref(),
            Self::Json(s) => s.schema.as_ref(),
            Self::Parquet(s) => s.schema.as_ref(),
            Self::Avro(s) => s.schema.as_ref(),
            Self::Lines(_) => None,
            Self::Inline(s) => s.schema.as_ref(),
        }
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

/// A file-based source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec<O: Default> {
    /// A file, a directory, a glob (`data/*.csv`), or an `s3://`, `gs://`, `az://` or
    /// `https://` URL. Relative paths are relative to the pipeline file.
    pub path: String,
    /// Column names and SQL types (`bigint`, `decimal(10,2)`, `timestamp`, ...). Inferred from
    /// the data when absent. Each type must be one the format can read: CSV has no `binary`;
    /// JSON reads `binary` from hex strings; a `lines` source has exactly `line: string`.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// Format options.
    #[serde(default)]
    pub options: O,
    /// What to do with rows that do not parse.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
    /// The connection holding object-store credentials, if not from the environment.
    #[serde(default)]
    pub connection: Option<String>,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
}

/// A format without options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

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

/// CSV reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// The first line holds column names (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// Field separator, one ASCII character other than a line break (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Quote character, one ASCII character other than a line break and the delimiter
    /// (default `"`).
    #[serde(default)]
    pub quote: Option<String>,
    /// Escape character inside quoted fields, one ASCII character (default: doubled quotes).
    #[serde(default)]
    pub escape: Option<String>,
    /// Lines starting with this character (one ASCII character) are skipped.
    #[serde(default)]
    pub comment: Option<String>,
    /// Extra strings read as NULL besides the empty field (e.g. `NA`, `\N`); at most 1000,
    /// each at most 1000 bytes.
    #[serde(default)]
    pub null_values: Vec<String>,
    /// Compression; by default taken from the file extension (`.gz`, `.zst`, `.bz2`, `.xz`).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Only read files with this extension when `path` is a directory (default `.csv`
    /// plus the compression's extension); not empty, no `/` and no wildcards.
    #[serde(default)]
    pub extension: Option<String>,
    /// How many rows schema inference looks at, 1 to 10000000 (default 1000).
    #[serde(default, deserialize_with = "range::bounded::<_, 1, MAX_INFER_ROWS>")]
    #[schemars(range(min = 1, max = MAX_INFER_ROWS))]
    pub infer_rows: Option<usize>,
}

/// JSON reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOptions {
    /// Compression; by default taken from the file extension.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Only read files with this extension when `path` is a directory; not empty, no `/`
    /// and no wildcards.
    #[serde(default)]
    pub extension: Option<String>,
    /// How many rows schema inference looks at, 1 to 10000000 (default 1000).
    #[serde(default, deserialize_with = "range::bounded::<_, 1, MAX_INFER_ROWS>")]
    #[schemars(range(min = 1, max = MAX_INFER_ROWS))]
    pub infer_rows: Option<usize>,
}

/// `lines` reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesOptions {
    /// Compression; by default taken from the file extension.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Skip empty lines (default false).
    #[serde(default)]
    pub skip_empty: bool,
}

/// Rows in the pipeline file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineSourceSpec {
    /// The rows, one mapping per row.
    pub rows: Vec<IndexMap<String, serde_json::Value>>,
    /// Column types; inferred from the values when absent.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// What the rows are.
    #[serde(default)]
    pub description: Option<String>,
}
