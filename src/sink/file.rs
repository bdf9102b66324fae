//! File sinks: `parquet`, `csv` and `json`, locally or on object stores.
//!
//! DataFusion writes the rows into a staging place beside the target (named after the
//! pipeline and the run); the run's commit moves it into place with the other sinks (see
//! [`super::commit`]). A path ending in the format's extension, without `partition_by`, is
//! one file; anything else is a folder of part files.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::{CsvOptions, JsonOptions, TableParquetOptions};
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use schemars::JsonSchema;
use serde::Deserialize;

use super::commit::{Entry, staging_location};
use super::{SinkError, StagedOutput, local, manifest, objstore};
use crate::connector::{CheckCx, SinkConnector, SinkEntry, StageCx, config_schema, parse_config};
use crate::model::{Pipeline, Sink};
use crate::spec::sink::{MAX_ROW_GROUP_SIZE, SinkMode, parquet_compression};
use crate::spec::source::Compression;
use crate::types::{PartitionValue, partition_value};
use crate::validate::is_url;

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
    /// `zstd` (default, level 3), `snappy`, `gzip`, `lz4`, `lz4_raw`, `brotli` or `none`. A
    /// level may follow in parentheses: `zstd(1)` to `zstd(22)`, `gzip(0)` to `gzip(9)`,
    /// `brotli(0)` to `brotli(11)`; the others take none.
    #[serde(default)]
    pub compression: Option<String>,
    /// Maximum rows per row group, 1 to 16777216 (default 1048576).
    #[serde(
        default,
        deserialize_with = "crate::spec::range::bounded::<_, 1, MAX_ROW_GROUP_SIZE>"
    )]
    #[schemars(range(min = 1, max = MAX_ROW_GROUP_SIZE))]
    pub row_group_size: Option<usize>,
    /// The unit timestamps are written in: `us` (microseconds, the default, which Spark,
    /// Athena, BigQuery, Snowflake and pandas all read) or `ns` (nanoseconds, as computed;
    /// some readers refuse them). Nanoseconds below a microsecond are dropped with `us`.
    #[serde(default)]
    pub timestamp_unit: Option<TimestampUnit>,
}

/// The unit of timestamps written to Parquet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum TimestampUnit {
    /// Microseconds.
    #[default]
    #[serde(rename = "us", alias = "microseconds")]
    Microseconds,
    /// Nanoseconds.
    #[serde(rename = "ns", alias = "nanoseconds")]
    Nanoseconds,
}

/// CSV writing options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSinkOptions {
    /// Field separator, one ASCII character other than a line break (default `,`).
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

fn variant(c: Option<Compression>) -> CompressionTypeVariant {
    match c.unwrap_or(Compression::None) {
        Compression::None => CompressionTypeVariant::UNCOMPRESSED,
        Compression::Gzip => CompressionTypeVariant::GZIP,
        Compression::Zstd => CompressionTypeVariant::ZSTD,
        Compression::Bzip2 => CompressionTypeVariant::BZIP2,
        Compression::Xz => CompressionTypeVariant::XZ,
    }
}

/// What differs between the file formats written.
#[async_trait]
pub trait FileSinkOptions:
    Default + Clone + std::fmt::Debug + Send + Sync + JsonSchema + for<'de> Deserialize<'de> + 'static
{
    /// The connector's `type`, which is also the extension of a single-file path.
    const KIND: &'static str;
    /// Other extensions that mean one file.
    const OTHER_EXTENSIONS: &'static [&'static str] = &[];
    /// Whether the whole file may be compressed (`out/report.csv.gz`).
    const COMPRESSIBLE: bool = false;
    /// The compression set in the options.
    fn compression(&self) -> Option<Compression> {
        None
    }
    /// Checks of the options.
    fn check(&self, _cx: &mut CheckCx<'_>) {}
    /// Runs the query and writes it at `target`; returns DataFusion's one-row count batch.
    async fn write(
        &self,
        sink: &Sink,
        df: DataFrame,
        target: &str,
    ) -> Result<Vec<RecordBatch>, SinkError>;
}

fn write_options(sink: &Sink) -> DataFrameWriteOptions {
    DataFrameWriteOptions::new()
        .with_single_file_output(sink.single_file)
        .with_partition_by(sink.partition_by.clone())
}

fn werr(sink: &Sink) -> impl Fn(datafusion::error::DataFusionError) -> SinkError + '_ {
    move |error| SinkError::Write {
        name: sink.name.clone(),
        error,
    }
}

#[async_trait]
impl FileSinkOptions for ParquetSinkOptions {
    const KIND: &'static str = "parquet";
    fn check(&self, cx: &mut CheckCx<'_>) {
        if let Some(c) = &self.compression
            && let Err(e) = parquet_compression(c)
        {
            cx.error("options.compression", e.to_string());
        }
    }
    async fn write(
        &self,
        sink: &Sink,
        df: DataFrame,
        target: &str,
    ) -> Result<Vec<RecordBatch>, SinkError> {
        let mut opts = TableParquetOptions::default();
        let compression = self.compression.as_deref().unwrap_or("zstd");
        opts.global.compression =
            Some(
                parquet_compression(compression).map_err(|e| SinkError::Options {
                    name: sink.name.clone(),
                    reason: e.to_string(),
                })?,
            );
        if let Some(n) = self.row_group_size {
            opts.global.max_row_group_size = n;
        }
        let df = match self.timestamp_unit.unwrap_or_default() {
            TimestampUnit::Microseconds => {
                super::columns::timestamps_in_microseconds(df).map_err(werr(sink))?
            }
            TimestampUnit::Nanoseconds => df,
        };
        df.write_parquet(target, write_options(sink), Some(opts))
            .await
            .map_err(werr(sink))
    }
}

#[async_trait]
impl FileSinkOptions for CsvSinkOptions {
    const KIND: &'static str = "csv";
    const COMPRESSIBLE: bool = true;
    fn compression(&self) -> Option<Compression> {
        self.compression
    }
    fn check(&self, cx: &mut CheckCx<'_>) {
        if let Some(Err(msg)) = self
            .delimiter
            .as_deref()
            .map(crate::validate::options::one_char)
        {
            cx.error("options.delimiter", format!("`delimiter`: {msg}"));
        }
    }
    async fn write(
        &self,
        sink: &Sink,
        df: DataFrame,
        target: &str,
    ) -> Result<Vec<RecordBatch>, SinkError> {
        let delimiter = self
            .delimiter
            .as_ref()
            .and_then(|d| d.bytes().next())
            .unwrap_or(b',');
        let mut opts = CsvOptions::default()
            .with_has_header(self.header.unwrap_or(true))
            .with_delimiter(delimiter);
        opts.compression = variant(
            self.compression
                .or_else(|| path_compression(&sink.location)),
        );
        df.write_csv(target, write_options(sink), Some(opts))
            .await
            .map_err(werr(sink))
    }
}

#[async_trait]
impl FileSinkOptions for JsonSinkOptions {
    const KIND: &'static str = "json";
    const OTHER_EXTENSIONS: &'static [&'static str] = &[".jsonl", ".ndjson"];
    const COMPRESSIBLE: bool = true;
    fn compression(&self) -> Option<Compression> {
        self.compression
    }
    async fn write(
        &self,
        sink: &Sink,
        df: DataFrame,
        target: &str,
    ) -> Result<Vec<RecordBatch>, SinkError> {
        let opts = JsonOptions {
            compression: variant(
                self.compression
                    .or_else(|| path_compression(&sink.location)),
            ),
            ..Default::default()
        };
        df.write_json(target, write_options(sink), Some(opts))
            .await
            .map_err(werr(sink))
    }
}

impl<O: FileSinkOptions> FileSinkSpec<O> {
    /// True when the path names one file rather than a folder of parts.
    pub fn single_file(&self) -> bool {
        self.partition_by.is_empty() && names_one_file::<O>(&self.path)
    }
}

/// The compression a sink path's last extension names (`.gz`, `.zst`, `.bz2`, `.xz`).
pub fn path_compression(path: &str) -> Option<Compression> {
    let lower = path.to_ascii_lowercase();
    [
        (".gz", Compression::Gzip),
        (".gzip", Compression::Gzip),
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
        (".bz2", Compression::Bzip2),
        (".xz", Compression::Xz),
    ]
    .into_iter()
    .find(|(ext, _)| lower.ends_with(ext))
    .map(|(_, c)| c)
}

/// True when a path ends in the format's extension, followed for CSV and JSON by a
/// compression extension or not (`report.csv`, `report.csv.gz`, `events.jsonl.zst`).
fn names_one_file<O: FileSinkOptions>(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let mut base = lower.as_str();
    if O::COMPRESSIBLE && path_compression(base).is_some() {
        base = base.rsplit_once('.').map(|(b, _)| b).unwrap_or(base);
    }
    base.ends_with(&format!(".{}", O::KIND))
        || O::OTHER_EXTENSIONS.iter().any(|e| base.ends_with(e))
}

/// True when a file sink of `kind` writes one file at `path` (see [`FileSinkSpec::single_file`]).
pub fn single_file_path(kind: &str, path: &str, partitioned: bool) -> bool {
    !partitioned
        && match kind {
            "parquet" => names_one_file::<ParquetSinkOptions>(path),
            "csv" => names_one_file::<CsvSinkOptions>(path),
            "json" => names_one_file::<JsonSinkOptions>(path),
            _ => false,
        }
}

#[async_trait]
impl<O: FileSinkOptions> SinkConnector for FileSinkSpec<O> {
    fn kind(&self) -> &'static str {
        O::KIND
    }
    fn from(&self) -> &str {
        &self.from
    }
    fn mode(&self) -> SinkMode {
        self.mode
    }
    fn path(&self) -> Option<&str> {
        Some(&self.path)
    }
    fn connection(&self) -> Option<&str> {
        self.connection.as_deref()
    }
    fn partition_by(&self) -> &[String] {
        &self.partition_by
    }
    fn replace_existing(&self) -> bool {
        self.replace_existing
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.mode == SinkMode::Upsert {
            cx.error("mode", "`upsert` needs a database sink; files are `overwrite`, `append` or `error_if_exists`");
        }
        if self.single_file() && self.mode == SinkMode::Append {
            let d = cx.error(
                "mode",
                "`append` adds part files to a folder, but this path names one file",
            );
            *d = d.clone().with_help(format!(
                "drop the `.{}` extension from `path` to write a folder of parts",
                O::KIND
            ));
        }
        if self.path.trim().is_empty() || crate::validate::has_glob(&self.path) {
            cx.error(
                "path",
                "a sink path is a folder or a file name, without wildcards",
            );
        }
        if let Some(c) = &self.connection {
            cx.require_connection(c, &["s3", "gcs", "azure", "http"]);
        }
        if let (true, Some(from_path), Some(set)) = (
            O::COMPRESSIBLE,
            path_compression(&self.path),
            self.options.compression(),
        ) && from_path != set
        {
            cx.error(
                "options.compression",
                format!(
                    "the path's extension says {from_path:?} compression, but `compression` says {set:?}"
                ),
            );
        }
        self.options.check(cx);
    }

    async fn check_ownership(&self, cx: &StageCx<'_>, sink: &Sink) -> Result<(), SinkError> {
        super::check_file_ownership(cx.ctx, cx.pipeline, sink).await
    }

    async fn stage(
        &self,
        cx: &StageCx<'_>,
        sink: &Sink,
        df: DataFrame,
    ) -> Result<Box<dyn StagedOutput>, SinkError> {
        Ok(Box::new(
            write(self, cx.ctx, cx.pipeline, sink, df, cx.run_id).await?,
        ))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse<O: FileSinkOptions>(
    node: &crate::yaml::Node,
    path: &str,
) -> Result<Arc<dyn SinkConnector>, crate::yaml::DeError> {
    Ok(Arc::new(parse_config::<FileSinkSpec<O>>(node, path)?))
}

/// `type: parquet` (zstd-compressed by default).
pub const PARQUET: SinkEntry = SinkEntry {
    name: "parquet",
    aliases: &[],
    parse: parse::<ParquetSinkOptions>,
    schema: config_schema::<FileSinkSpec<ParquetSinkOptions>>,
};

/// `type: csv` (a header row, comma-separated).
pub const CSV: SinkEntry = SinkEntry {
    name: "csv",
    aliases: &[],
    parse: parse::<CsvSinkOptions>,
    schema: config_schema::<FileSinkSpec<CsvSinkOptions>>,
};

/// `type: json` (newline-delimited; also `jsonl`, `ndjson`).
pub const JSON: SinkEntry = SinkEntry {
    name: "json",
    aliases: &["jsonl", "ndjson"],
    parse: parse::<JsonSinkOptions>,
    schema: config_schema::<FileSinkSpec<JsonSinkOptions>>,
};

/// A file sink's output in its staging place.
#[derive(Debug, Clone)]
pub struct FileStaged {
    /// The sink.
    pub sink: Sink,
    /// Staging path or URL.
    pub staging: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: usize,
}

impl FileStaged {
    /// Fills in bytes and files from what is in the staging place.
    async fn measure(&mut self, ctx: &SessionContext) {
        if is_url(&self.staging) {
            (self.bytes, self.files) = objstore::measure(ctx, &self.staging).await;
        } else {
            let root = Path::new(&self.staging);
            let files: Vec<std::path::PathBuf> = if root.is_file() {
                vec![root.to_path_buf()]
            } else {
                manifest::local_files(root)
                    .iter()
                    .map(|f| root.join(f))
                    .collect()
            };
            self.files = files.len();
            self.bytes = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
        }
    }
}

#[async_trait]
impl StagedOutput for FileStaged {
    fn sink(&self) -> &Sink {
        &self.sink
    }
    fn rows(&self) -> u64 {
        self.rows
    }
    fn bytes(&self) -> Option<u64> {
        Some(self.bytes)
    }
    fn detail(&self) -> String {
        let files = format!(
            "{} file{}",
            self.files,
            if self.files == 1 { "" } else { "s" }
        );
        format!("{files} → {}", self.sink.location)
    }

    async fn prepare(&mut self, cx: &super::commit::CommitCx<'_>) -> Result<Entry, SinkError> {
        let s = &self.sink;
        if s.mode == SinkMode::ErrorIfExists && super::exists_non_empty(cx.ctx, &s.location).await {
            return Err(SinkError::Exists {
                name: s.name.clone(),
                path: s.location.clone(),
            });
        }
        let target = s.location.trim_end_matches('/').to_string();
        let append = s.mode == SinkMode::Append;
        let key = crate::state::key(&cx.pipeline.name);
        let owner = (key.as_str(), s.name.as_str(), cx.run_id);
        let err = |reason: String| SinkError::Commit {
            name: s.name.clone(),
            path: s.location.clone(),
            reason,
        };
        if is_url(&target) {
            objstore::prepare(cx.ctx, &self.staging, &target, s.single_file, append, owner)
                .await
                .map_err(|e| err(e.to_string()))?;
        } else {
            local::prepare(
                Path::new(&self.staging),
                Path::new(&target),
                s.single_file,
                append,
                owner,
            )
            .map_err(|e| err(e.to_string()))?;
        }
        Ok(Entry::file(
            &s.name,
            &self.staging,
            &target,
            s.single_file,
            append,
            self.rows,
        ))
    }

    async fn abort(&mut self, cx: &super::commit::CommitCx<'_>) {
        super::remove_staging(cx.ctx, &self.staging).await;
    }
}

/// Partition columns that the writer cannot put in a folder name itself (dates, timestamps,
/// decimals) are written as their text, `CAST(col AS VARCHAR)`.
fn partition_values_as_text(
    df: DataFrame,
    partition_by: &[String],
) -> Result<DataFrame, datafusion::error::DataFusionError> {
    super::columns::cast_columns(df, |f| {
        (partition_by.contains(f.name())
            && partition_value(f.data_type()) == PartitionValue::AsText)
            .then_some(DataType::Utf8)
    })
}

/// Writes a sink's rows to its staging place. Returns what to commit.
async fn write<O: FileSinkOptions>(
    spec: &FileSinkSpec<O>,
    ctx: &SessionContext,
    pipeline: &Pipeline,
    sink: &Sink,
    df: DataFrame,
    run_id: &str,
) -> Result<FileStaged, SinkError> {
    let conn_opts = sink
        .spec
        .connection()
        .and_then(|c| crate::source::pipeline_connection(pipeline, c));
    crate::store::ensure_store(ctx, &sink.location, conn_opts).map_err(|error| {
        SinkError::Store {
            name: sink.name.clone(),
            error,
        }
    })?;
    let staging = staging_location(pipeline, sink, run_id);
    let local = !crate::validate::is_url(&staging);
    if let Some(parent) = std::path::Path::new(&staging).parent().filter(|_| local) {
        super::local::create_parents(parent).map_err(|e| SinkError::Commit {
            name: sink.name.clone(),
            path: sink.location.clone(),
            reason: e.to_string(),
        })?;
    }
    // A trailing slash tells DataFusion a local target is a folder.
    let target = if sink.single_file || !local {
        staging.clone()
    } else {
        format!("{staging}/")
    };
    let df = partition_values_as_text(df, &sink.partition_by).map_err(werr(sink))?;
    let result = spec.options.write(sink, df, &target).await?;
    let rows = result
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        })
        .map(|a| a.value(0))
        .unwrap_or(0);
    let mut staged = FileStaged {
        sink: sink.clone(),
        staging,
        rows,
        bytes: 0,
        files: 0,
    };
    staged.measure(ctx).await;
    Ok(staged)
}
