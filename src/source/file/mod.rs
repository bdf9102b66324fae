//! File sources: `csv`, `json`, `parquet`, `avro` and `lines`, locally or on object stores.
//!
//! One config struct, [`FileSourceSpec`], with per-format options. Formats read through
//! DataFusion's listing tables (parallel, streaming, object-store aware) except `lines` (a
//! column of text lines) and sources that tolerate bad rows (read serially per file, so every
//! row's physical line is known: see [`tolerant`]).

mod find;
mod layout;
mod lines;
pub mod listing;
mod locate;
mod sized;
pub mod tolerant;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

pub use listing::{compression_from_name, list_files};
pub use locate::{BadRow, describe_csv_error};
use layout::Layout;
pub use tolerant::BadRowLog;

use super::SourceError;
use crate::connector::{
    BuildCx, Built, CheckCx, SourceConnector, SourceEntry, config_schema, parse_config,
};
use crate::model::Source;
use crate::spec::source::{Compression, IncrementalSpec, OnBadRow};

/// A file-based source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec<O: Default> {
    /// A file, a directory, a glob (`data/*.csv`), or an `s3://`, `gs://`, `az://` or
    /// `https://` URL. Relative paths are relative to the pipeline file.
    pub path: String,
    /// Column names and SQL types (`bigint`, `decimal(10,2)`, `timestamp`, ...). Inferred from
    /// the data when absent.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// Format options.
    #[serde(default)]
    pub options: O,
    /// What to do with rows that do not parse.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
    /// Read only rows past the last committed value of a cursor column.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// The connection holding object-store credentials, if not from the environment.
    #[serde(default)]
    pub connection: Option<String>,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
}

/// Parquet reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetOptions {
    /// Add a column with this name holding each row's file: its path relative to the
    /// pipeline's folder, or its URL.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Read Hive-style `col=value/` folders below the source's folder or glob as columns
    /// (default true). Values are `bigint` when all are integers, `date` when all are
    /// `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.
    #[serde(default)]
    pub hive_partitioning: Option<bool>,
}

/// Avro reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvroOptions {
    /// Add a column with this name holding each row's file: its path relative to the
    /// pipeline's folder, or its URL.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Read Hive-style `col=value/` folders below the source's folder or glob as columns
    /// (default true). Values are `bigint` when all are integers, `date` when all are
    /// `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.
    #[serde(default)]
    pub hive_partitioning: Option<bool>,
}

/// CSV reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// The first line holds column names (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// Field separator, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Quote character (default `"`).
    #[serde(default)]
    pub quote: Option<String>,
    /// Escape character inside quoted fields (default: doubled quotes).
    #[serde(default)]
    pub escape: Option<String>,
    /// Lines starting with this character are skipped.
    #[serde(default)]
    pub comment: Option<String>,
    /// Extra strings read as NULL besides the empty field (e.g. `NA`, `\N`).
    #[serde(default)]
    pub null_values: Vec<String>,
    /// Compression; by default taken from the file extension (`.gz`, `.zst`, `.bz2`, `.xz`).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Only read files with this extension when `path` is a directory (default `.csv`
    /// plus the compression's extension).
    #[serde(default)]
    pub extension: Option<String>,
    /// How many rows schema inference looks at (default 1000).
    #[serde(default)]
    pub infer_rows: Option<usize>,
    /// Add a column with this name holding each row's file: its path relative to the
    /// pipeline's folder, or its URL.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Read Hive-style `col=value/` folders below the source's folder or glob as columns
    /// (default true). Values are `bigint` when all are integers, `date` when all are
    /// `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.
    #[serde(default)]
    pub hive_partitioning: Option<bool>,
}

/// JSON reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOptions {
    /// Compression; by default taken from the file extension.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Only read files with this extension when `path` is a directory.
    #[serde(default)]
    pub extension: Option<String>,
    /// How many rows schema inference looks at (default 1000).
    #[serde(default)]
    pub infer_rows: Option<usize>,
    /// Add a column with this name holding each row's file: its path relative to the
    /// pipeline's folder, or its URL.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Read Hive-style `col=value/` folders below the source's folder or glob as columns
    /// (default true). Values are `bigint` when all are integers, `date` when all are
    /// `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.
    #[serde(default)]
    pub hive_partitioning: Option<bool>,
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
    /// Add a column with this name holding each row's file: its path relative to the
    /// pipeline's folder, or its URL.
    #[serde(default)]
    pub file_column: Option<String>,
    /// Read Hive-style `col=value/` folders below the source's folder or glob as columns
    /// (default true). Values are `bigint` when all are integers, `date` when all are
    /// `YYYY-MM-DD`, else `string`, unless `schema:` declares the column.
    #[serde(default)]
    pub hive_partitioning: Option<bool>,
}

/// A source's format with its options, as the readers in this module need it.
#[derive(Debug, Clone, Copy)]
pub enum Format<'a> {
    /// CSV.
    Csv(&'a CsvOptions),
    /// Newline-delimited JSON.
    Json(&'a JsonOptions),
    /// Parquet.
    Parquet,
    /// Avro.
    Avro,
    /// Text lines.
    Lines(&'a LinesOptions),
}

/// What differs between the file formats.
pub trait FileOptions:
    Default + Clone + std::fmt::Debug + Send + Sync + JsonSchema + for<'de> Deserialize<'de> + 'static
{
    /// The connector's `type`.
    const KIND: &'static str;
    /// The format, with these options.
    fn format(&self) -> Format<'_>;
    /// Compression set in the options (`None`: from the file name).
    fn compression(&self) -> Option<Compression> {
        None
    }
    /// Whether bad rows can be skipped or quarantined.
    const TOLERANT: bool = false;
    /// Checks of the options.
    fn check(&self, _cx: &mut CheckCx<'_>) {}
    /// The file column and Hive folders asked for.
    fn layout(&self) -> Layout<'_>;
}

/// `impl FileOptions`: the layout options every format shares.
macro_rules! layout_of {
    () => {
        fn layout(&self) -> Layout<'_> {
            Layout {
                file_column: self.file_column.as_deref(),
                hive: self.hive_partitioning.unwrap_or(true),
            }
        }
    };
}

impl FileOptions for CsvOptions {
    const KIND: &'static str = "csv";
    layout_of!();
    const TOLERANT: bool = true;
    fn format(&self) -> Format<'_> {
        Format::Csv(self)
    }
    fn compression(&self) -> Option<Compression> {
        self.compression
    }
    fn check(&self, cx: &mut CheckCx<'_>) {
        for (key, v) in [
            ("delimiter", &self.delimiter),
            ("quote", &self.quote),
            ("escape", &self.escape),
            ("comment", &self.comment),
        ] {
            if let Some(v) = v.as_ref().filter(|v| v.len() != 1) {
                cx.error(
                    &format!("options.{key}"),
                    format!("`{key}` is one ASCII character, found `{v}`"),
                );
            }
        }
    }
}

impl FileOptions for JsonOptions {
    const KIND: &'static str = "json";
    layout_of!();
    const TOLERANT: bool = true;
    fn format(&self) -> Format<'_> {
        Format::Json(self)
    }
    fn compression(&self) -> Option<Compression> {
        self.compression
    }
}

impl FileOptions for ParquetOptions {
    const KIND: &'static str = "parquet";
    layout_of!();
    fn format(&self) -> Format<'_> {
        Format::Parquet
    }
}

impl FileOptions for AvroOptions {
    const KIND: &'static str = "avro";
    layout_of!();
    fn format(&self) -> Format<'_> {
        Format::Avro
    }
}

impl FileOptions for LinesOptions {
    const KIND: &'static str = "lines";
    layout_of!();
    fn format(&self) -> Format<'_> {
        Format::Lines(self)
    }
    fn compression(&self) -> Option<Compression> {
        self.compression
    }
}

/// The format of a file source (`None` for other connectors).
pub fn format_of(src: &Source) -> Option<Format<'_>> {
    let any = src.spec.as_any();
    if let Some(s) = any.downcast_ref::<FileSourceSpec<CsvOptions>>() {
        return Some(s.options.format());
    }
    if let Some(s) = any.downcast_ref::<FileSourceSpec<JsonOptions>>() {
        return Some(s.options.format());
    }
    if let Some(s) = any.downcast_ref::<FileSourceSpec<ParquetOptions>>() {
        return Some(s.options.format());
    }
    if let Some(s) = any.downcast_ref::<FileSourceSpec<AvroOptions>>() {
        return Some(s.options.format());
    }
    any.downcast_ref::<FileSourceSpec<LinesOptions>>()
        .map(|s| s.options.format())
}

impl<O: FileOptions> FileSourceSpec<O> {
    /// Builds the table of `src` (the source, or one part of it) in one piece. Tolerant
    /// reads log bad rows to `log`, or to a new log.
    async fn build_one(
        &self,
        cx: &BuildCx<'_>,
        src: &Source,
        log: Option<Arc<BadRowLog>>,
    ) -> Result<Built, SourceError> {
        let format = self.options.format();
        let plain = || async {
            match format {
                Format::Lines(o) => lines::build(cx.ctx, src, o).await,
                _ => listing::build(cx.ctx, src, format).await,
            }
        };
        if src.on_bad_row == OnBadRow::Fail {
            return Ok(Built {
                table: plain().await?,
                bad_rows: None,
            });
        }
        // The typed schema: declared, or inferred by the plain table.
        let schema = match &src.schema {
            Some(s) => s.clone(),
            None => plain().await?.schema(),
        };
        let log = log.unwrap_or_else(|| {
            Arc::new(BadRowLog::new(
                &src.name,
                src.on_bad_row,
                &cx.pipeline.state_dir,
                &cx.pipeline.run_id,
            ))
        });
        let table = tolerant::build(cx.ctx, src, schema, log.clone()).await?;
        Ok(Built {
            table,
            bad_rows: Some(log),
        })
    }

    /// Builds a source read in parts (see [`layout`]): one schema for every part, one
    /// bad-row log for the source.
    async fn build_split(
        &self,
        cx: &BuildCx<'_>,
        src: &Source,
        split: &layout::Split,
    ) -> Result<Built, SourceError> {
        let schema = match (&src.schema, self.options.format()) {
            (Some(declared), _) => split.file_schema(declared),
            (None, Format::Lines(_)) => lines::schema(),
            (None, _) => {
                let all = Source {
                    on_bad_row: OnBadRow::Fail,
                    ..split.part_source(src, &split.all, None)
                };
                self.build_one(cx, &all, None).await?.table.schema()
            }
        };
        let log = (src.on_bad_row != OnBadRow::Fail).then(|| {
            Arc::new(BadRowLog::new(
                &src.name,
                src.on_bad_row,
                &cx.pipeline.state_dir,
                &cx.pipeline.run_id,
            ))
        });
        let mut tables = Vec::with_capacity(split.parts.len());
        for part in &split.parts {
            let sub = split.part_source(src, &part.locations, Some(schema.clone()));
            tables.push(self.build_one(cx, &sub, log.clone()).await?.table);
        }
        let file_column = self.options.layout().file_column;
        Ok(Built {
            table: split.union(cx.ctx, src, file_column, tables)?,
            bad_rows: log,
        })
    }

    /// A source reading `path` with default options (test fixtures).
    pub fn at(path: &str, schema: Option<IndexMap<String, String>>) -> Self {
        Self {
            path: path.to_string(),
            schema,
            options: O::default(),
            on_bad_row: OnBadRow::Fail,
            incremental: None,
            connection: None,
            description: None,
        }
    }
}

#[async_trait]
impl<O: FileOptions> SourceConnector for FileSourceSpec<O> {
    fn kind(&self) -> &'static str {
        O::KIND
    }
    fn path(&self) -> Option<&str> {
        Some(&self.path)
    }
    fn connection(&self) -> Option<&str> {
        self.connection.as_deref()
    }
    fn schema(&self) -> Option<&IndexMap<String, String>> {
        if O::KIND == "lines" {
            None
        } else {
            self.schema.as_ref()
        }
    }
    fn on_bad_row(&self) -> OnBadRow {
        self.on_bad_row
    }
    fn incremental(&self) -> Option<&IncrementalSpec> {
        self.incremental.as_ref()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.on_bad_row != OnBadRow::Fail && !O::TOLERANT {
            cx.error(
                "on_bad_row",
                format!(
                    "`on_bad_row` applies to csv and json sources; a {} source either reads or fails",
                    O::KIND
                ),
            );
        }
        if self.path.trim().is_empty() {
            cx.error("path", "`path` is empty");
        }
        if let Some(c) = &self.connection {
            cx.require_connection(c, &["s3", "gcs", "azure", "http"]);
        }
        if let Some(c) = self.options.layout().file_column {
            if c.trim().is_empty() {
                cx.error("options.file_column", "`file_column` names the column to add; it is empty");
            } else if self.schema.as_ref().is_some_and(|s| s.contains_key(c)) {
                cx.error(
                    "options.file_column",
                    format!("`file_column: {c}` is added to the rows; do not declare it in `schema:`"),
                );
            }
        }
        self.options.check(cx);
    }

    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        let src = cx.source;
        let connection = self
            .connection
            .as_deref()
            .and_then(|c| super::pipeline_connection(cx.pipeline, c));
        for loc in &src.locations {
            crate::store::ensure_store(cx.ctx, loc, connection).map_err(|error| {
                SourceError::Store {
                    name: src.name.clone(),
                    error,
                }
            })?;
        }
        let format = self.options.format();
        let ext = listing::folder_extension(src, format);
        let layout = self.options.layout();
        match layout::split(cx.ctx, src, &ext, layout, &cx.pipeline.base_dir).await? {
            None => self.build_one(cx, src, None).await,
            Some(split) => self.build_split(cx, src, &split).await,
        }
    }

    async fn locate_bad_row(&self, cx: &BuildCx<'_>, schema: SchemaRef) -> Option<BadRow> {
        locate::locate_bad_row(cx.ctx, cx.source, self.options.format(), schema).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse<O: FileOptions>(
    node: &crate::yaml::Node,
    path: &str,
) -> Result<Arc<dyn SourceConnector>, crate::yaml::DeError> {
    Ok(Arc::new(parse_config::<FileSourceSpec<O>>(node, path)?))
}

/// `type: csv`.
pub const CSV: SourceEntry = SourceEntry {
    name: "csv",
    aliases: &[],
    parse: parse::<CsvOptions>,
    schema: config_schema::<FileSourceSpec<CsvOptions>>,
};

/// `type: json` (newline-delimited JSON; also `jsonl`, `ndjson`).
pub const JSON: SourceEntry = SourceEntry {
    name: "json",
    aliases: &["jsonl", "ndjson"],
    parse: parse::<JsonOptions>,
    schema: config_schema::<FileSourceSpec<JsonOptions>>,
};

/// `type: parquet`.
pub const PARQUET: SourceEntry = SourceEntry {
    name: "parquet",
    aliases: &[],
    parse: parse::<ParquetOptions>,
    schema: config_schema::<FileSourceSpec<ParquetOptions>>,
};

/// `type: avro`.
pub const AVRO: SourceEntry = SourceEntry {
    name: "avro",
    aliases: &[],
    parse: parse::<AvroOptions>,
    schema: config_schema::<FileSourceSpec<AvroOptions>>,
};

/// `type: lines` (one row per text line, in a column `line`).
pub const LINES: SourceEntry = SourceEntry {
    name: "lines",
    aliases: &[],
    parse: parse::<LinesOptions>,
    schema: config_schema::<FileSourceSpec<LinesOptions>>,
};
