//! File sources: `csv`, `json`, `parquet`, `avro` and `lines`, locally or on object stores.
//!
//! One config struct, [`FileSourceSpec`], with per-format options. Parquet, Avro and CSV
//! that fails on a bad row read through DataFusion's listing tables (parallel, streaming,
//! object-store aware). JSON (in its three layouts), `lines`, and CSV that skips or
//! quarantines bad rows are read serially per file, so every row's physical line is known
//! (see [`tolerant`]); bad rows are counted once per run (see [`badrows`]).

pub mod after_commit;
pub mod badrows;
mod bounded;
mod csvread;
mod find;
mod jsonread;
pub mod jsonschema;
mod layout;
mod lines;
pub mod listing;
mod locate;
pub mod moves;
mod policy;
mod sized;
pub mod tolerant;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

pub use badrows::{BadRowLog, BadRowLogs, MaxBadRows};
pub use bounded::MAX_LISTED_ENTRIES;
use layout::Layout;
pub use listing::{compression_from_name, list_files};
pub use locate::BadRow;

use super::SourceError;

/// The most rows schema inference may look at (`infer_rows`).
pub const MAX_INFER_ROWS: u64 = 10_000_000;
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
    /// the data when absent. Each type must be one the format can read: CSV has no `binary`;
    /// JSON reads `binary` from hex strings; a `lines` source has exactly `line: string`.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// Format options.
    #[serde(default)]
    pub options: O,
    /// The schema as a JSON Schema file (draft 7 or 2020-12), instead of `schema:`:
    /// property types (nested objects and arrays too), `format: date | date-time`,
    /// `required` (not null) and `enum` (an accepted-values check). A row that violates it
    /// is a bad row. Relative to the pipeline file.
    #[serde(default)]
    pub schema_file: Option<String>,
    /// What to do with rows that do not parse.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
    /// With `on_bad_row: skip | quarantine`: fail the run when more rows than this are bad,
    /// a count (`100`) or a fraction of the rows read (`0.01`, or `"1%"`).
    #[serde(default)]
    pub max_bad_rows: Option<MaxBadRows>,
    /// With `on_bad_row: quarantine`: the sink (one whose `from:` is this source) that
    /// receives the bad rows (columns `source`, `file`, `line`, `raw`, `reason`, `run_id`)
    /// instead of `<state dir>/quarantine/<source>/<run id>.parquet`.
    #[serde(default)]
    pub quarantine: Option<String>,
    /// Read only rows past the last committed value of a cursor column.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// The connection holding object-store credentials, if not from the environment.
    #[serde(default)]
    pub connection: Option<String>,
    /// Once every sink committed, move the files this run read (`move_to: "archived/{{ ds
    /// }}"`) or delete them (`delete: true`). Only the files the run read are touched; a
    /// failed run touches none.
    #[serde(default)]
    pub after_commit: Option<after_commit::AfterCommit>,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
    /// The files each run read, when `after_commit` is set (not part of the file).
    #[serde(skip)]
    pub pinned: Arc<after_commit::Pinned>,
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
    #[serde(
        default,
        deserialize_with = "crate::spec::range::bounded::<_, 1, MAX_INFER_ROWS>"
    )]
    #[schemars(range(min = 1, max = MAX_INFER_ROWS))]
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

/// How records are laid out in a JSON file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonLayout {
    /// One JSON object per line (NDJSON, JSON Lines).
    Lines,
    /// One top-level array of objects.
    Array,
    /// Objects one after another, pretty-printed or not.
    Concatenated,
}

/// JSON reading options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOptions {
    /// The layout: `lines`, `array` or `concatenated`. By default a file whose first
    /// non-blank character is `[` is an array, any other newline-delimited.
    #[serde(default)]
    pub json: Option<JsonLayout>,
    /// Compression; by default taken from the file extension.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Only read files with this extension when `path` is a directory; not empty, no `/`
    /// and no wildcards.
    #[serde(default)]
    pub extension: Option<String>,
    /// How many rows schema inference looks at, 1 to 10000000 (default 1000).
    #[serde(
        default,
        deserialize_with = "crate::spec::range::bounded::<_, 1, MAX_INFER_ROWS>"
    )]
    #[schemars(range(min = 1, max = MAX_INFER_ROWS))]
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
        use crate::validate::options;
        options::csv_characters(
            cx,
            &[
                ("delimiter", self.delimiter.as_ref()),
                ("quote", self.quote.as_ref()),
                ("escape", self.escape.as_ref()),
                ("comment", self.comment.as_ref()),
            ],
        );
        options::null_values(cx, &self.null_values);
        options::extension(cx, self.extension.as_deref());
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
    fn check(&self, cx: &mut CheckCx<'_>) {
        crate::validate::options::extension(cx, self.extension.as_deref());
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
    const TOLERANT: bool = true;
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
    /// A source reading `path` with default options (test fixtures).
    pub fn at(path: &str, schema: Option<IndexMap<String, String>>) -> Self {
        Self {
            path: path.to_string(),
            schema,
            schema_file: None,
            options: O::default(),
            on_bad_row: OnBadRow::Fail,
            max_bad_rows: None,
            quarantine: None,
            incremental: None,
            connection: None,
            after_commit: None,
            description: None,
            pinned: Arc::default(),
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
    fn schema_file(&self) -> Option<&str> {
        self.schema_file.as_deref()
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
                    "`on_bad_row` applies to csv, json and lines sources; a {} source either reads or fails",
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
                cx.error(
                    "options.file_column",
                    "`file_column` names the column to add; it is empty",
                );
            } else if self.schema.as_ref().is_some_and(|s| s.contains_key(c)) {
                cx.error(
                    "options.file_column",
                    format!(
                        "`file_column: {c}` is added to the rows; do not declare it in `schema:`"
                    ),
                );
            }
        }
        crate::validate::options::declared_types(cx, O::KIND, self.schema.as_ref());
        self.check_bad_rows(cx);
        if self.schema_file.is_some() {
            if self.schema.is_some() {
                cx.error(
                    "schema_file",
                    "give the schema as `schema:` or as `schema_file:`, not both",
                );
            }
            if !matches!(O::KIND, "csv" | "json") {
                cx.error(
                    "schema_file",
                    format!(
                        "`schema_file` applies to csv and json sources, not to {}",
                        O::KIND
                    ),
                );
            }
        }
        if let Some(ac) = &self.after_commit {
            after_commit::check(ac, &self.path, cx);
        }
        self.options.check(cx);
    }

    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        // With `after_commit`, the run reads exactly the files it listed first.
        let pinned;
        let src = match &self.after_commit {
            None => cx.source,
            Some(_) => {
                self.ensure_stores(cx)?;
                match after_commit::pin(cx, self.options.format(), &self.pinned).await? {
                    Some(s) => {
                        pinned = s;
                        &pinned
                    }
                    None => return empty(cx),
                }
            }
        };
        let cx = &BuildCx {
            ctx: cx.ctx,
            pipeline: cx.pipeline,
            source: src,
            options: cx.options,
        };
        self.build_from(cx).await
    }

    async fn locate_bad_row(&self, cx: &BuildCx<'_>, schema: SchemaRef) -> Option<BadRow> {
        // A source that skips or quarantines bad rows never fails on one: do not blame it.
        if cx.source.on_bad_row != OnBadRow::Fail {
            return None;
        }
        locate::locate_bad_row(cx.ctx, cx.source, self.options.format(), schema).await
    }

    async fn after_commit(
        &self,
        cx: &BuildCx<'_>,
    ) -> Result<Option<crate::sink::commit::Entry>, SourceError> {
        match &self.after_commit {
            Some(ac) => {
                after_commit::entry(cx, ac, &self.pinned, &self.path, self.connection.as_deref())
                    .await
            }
            None => Ok(None),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `cx` for another source (a part of the one being built).
fn with_source<'b>(cx: &BuildCx<'b>, source: &'b Source) -> BuildCx<'b> {
    BuildCx {
        ctx: cx.ctx,
        pipeline: cx.pipeline,
        source,
        options: cx.options,
    }
}

/// An empty table with the declared schema (an `after_commit` source with nothing to read).
fn empty(cx: &BuildCx<'_>) -> Result<Built, SourceError> {
    let schema = cx
        .source
        .schema
        .clone()
        .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
    let table =
        datafusion::datasource::MemTable::try_new(schema, vec![vec![]]).map_err(|error| {
            SourceError::Engine {
                name: cx.source.name.clone(),
                error,
            }
        })?;
    Ok(Built {
        table: Arc::new(table),
        bad_rows: None,
    })
}

impl<O: FileOptions> FileSourceSpec<O> {
    fn ensure_stores(&self, cx: &BuildCx<'_>) -> Result<(), SourceError> {
        let connection = self
            .connection
            .as_deref()
            .and_then(|c| super::pipeline_connection(cx.pipeline, c));
        for loc in &cx.source.locations {
            crate::store::ensure_store(cx.ctx, loc, connection).map_err(|error| {
                SourceError::Store {
                    name: cx.source.name.clone(),
                    error,
                }
            })?;
        }
        Ok(())
    }

    async fn build_from(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
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
        match layout::split(
            cx.ctx,
            src,
            &ext,
            self.options.layout(),
            &cx.pipeline.base_dir,
        )
        .await?
        {
            None => self.build_whole(cx).await,
            Some(split) => self.build_split(cx, &split).await,
        }
    }

    /// Builds a source read in parts (see [`layout`]): one schema for every part (declared,
    /// or inferred over every file), one bad-row log for the source.
    async fn build_split(
        &self,
        cx: &BuildCx<'_>,
        split: &layout::Split,
    ) -> Result<Built, SourceError> {
        let src = cx.source;
        let schema = match &src.schema {
            Some(declared) => split.file_schema(declared),
            None => {
                let all = split.part_source(src, &split.all, None);
                self.build_whole(&with_source(cx, &all))
                    .await?
                    .table
                    .schema()
            }
        };
        let mut tables = Vec::with_capacity(split.parts.len());
        let mut bad_rows = None;
        for part in &split.parts {
            let sub = split.part_source(src, &part.locations, Some(schema.clone()));
            let built = self.build_whole(&with_source(cx, &sub)).await?;
            bad_rows = bad_rows.or(built.bad_rows);
            tables.push(built.table);
        }
        let file_column = self.options.layout().file_column;
        Ok(Built {
            table: split.union(cx.ctx, src, file_column, tables)?,
            bad_rows,
        })
    }

    /// Builds the table of `cx.source` (the source, or one part of it) in one piece.
    async fn build_whole(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        let src = cx.source;
        let format = self.options.format();
        if !self.serial(cx, format).await {
            match listing::build(cx.ctx, src, format).await {
                Ok(table) => {
                    return Ok(Built {
                        table,
                        bad_rows: None,
                    });
                }
                // DataFusion's CSV inference stops at text that is not UTF-8 without naming
                // the row: the serial reader infers past it, then fails on it by line.
                Err(e)
                    if src.schema.is_none()
                        && matches!(format, Format::Csv(_))
                        && e.to_string().contains("UTF-8") => {}
                Err(e) => return Err(e),
            }
        }
        let log = match src.on_bad_row {
            OnBadRow::Fail => Arc::new(BadRowLog::failing(&src.name)),
            mode => cx.pipeline.bad_rows.get_or_create(&src.name, || {
                let settings = badrows::LogSettings {
                    mode,
                    limit: self.max_bad_rows.as_ref().and_then(|m| m.limit().ok()),
                    sink: self.quarantine.clone(),
                };
                BadRowLog::new(
                    &src.name,
                    settings,
                    &cx.pipeline.state_dir,
                    &cx.pipeline.run_id,
                )
            }),
        };
        let schema = match (&src.schema, format) {
            (_, Format::Lines(_)) => lines::schema(),
            (Some(s), _) => s.clone(),
            (None, f) => tolerant::infer(cx.ctx, src, f).await?,
        };
        let table = tolerant::build(cx.ctx, src, schema, log.clone()).await?;
        Ok(Built {
            table,
            bad_rows: (src.on_bad_row != OnBadRow::Fail).then_some(log),
        })
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
