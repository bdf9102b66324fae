//! File formats read through DataFusion listing tables: csv, json, parquet, avro.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::config::CsvOptions as DfCsvOptions;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::avro::AvroFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, cast, lit, when};
use datafusion::prelude::SessionContext;
use datafusion::prelude::ident;
use datafusion::scalar::ScalarValue;
use object_store::ObjectMeta;

pub use super::find::{Listed, is_folder_glob, list_files, list_located, percent_decode};
use super::sized::SizedFormat;
use super::{CsvOptions, Format};
use crate::model::Source;
use crate::source::SourceError;
use crate::spec::source::Compression;

/// The compression a file name's extension implies.
pub fn compression_from_name(name: &str) -> Compression {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".gzip") {
        Compression::Gzip
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        Compression::Zstd
    } else if lower.ends_with(".bz2") {
        Compression::Bzip2
    } else if lower.ends_with(".xz") {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// A file's compression: as the source's options say, else from the file name.
pub fn compression_of(src: &Source, file: &str) -> Compression {
    let set = match super::format_of(src) {
        Some(Format::Csv(o)) => o.compression,
        Some(Format::Json(o)) => o.compression,
        Some(Format::Lines(o)) => o.compression,
        _ => None,
    };
    set.unwrap_or_else(|| compression_from_name(file))
}

fn first_location(src: &Source) -> &str {
    src.locations.first().map(String::as_str).unwrap_or("")
}

/// DataFusion's compression type for ours.
pub fn df_compression(c: Compression) -> FileCompressionType {
    match c {
        Compression::None => FileCompressionType::UNCOMPRESSED,
        Compression::Gzip => FileCompressionType::GZIP,
        Compression::Zstd => FileCompressionType::ZSTD,
        Compression::Bzip2 => FileCompressionType::BZIP2,
        Compression::Xz => FileCompressionType::XZ,
    }
}

fn compression_ext(c: Compression) -> &'static str {
    match c {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
        Compression::Bzip2 => ".bz2",
        Compression::Xz => ".xz",
    }
}

/// Splits a location into a listing URL, handling globs in object-store URLs too.
pub fn listing_url(location: &str) -> Result<ListingTableUrl, String> {
    if crate::validate::is_url(location)
        && location.contains(['*', '?', '['])
        && !location.starts_with("file://")
    {
        let cut = location.find(['*', '?', '[']).unwrap_or(location.len());
        let base_end = location[..cut].rfind('/').map(|i| i + 1).unwrap_or(cut);
        let base = url::Url::parse(&location[..base_end]).map_err(|e| e.to_string())?;
        // The pattern is matched against the path below the base, as for local globs.
        let pattern = glob::Pattern::new(&location[base_end..]).map_err(|e| e.to_string())?;
        return ListingTableUrl::try_new(base, Some(pattern)).map_err(|e| e.to_string());
    }
    ListingTableUrl::parse(location).map_err(|e| e.to_string())
}

pub(super) fn is_local_dir(location: &str) -> bool {
    !crate::validate::is_url(location) && std::path::Path::new(location).is_dir()
}

/// The listing URL of one location of a source and the object store serving it.
pub fn store_for(
    ctx: &SessionContext,
    src: &Source,
    location: &str,
) -> Result<
    (
        ListingTableUrl,
        std::sync::Arc<dyn object_store::ObjectStore>,
    ),
    SourceError,
> {
    let url = listing_url(location).map_err(|reason| SourceError::Read {
        name: src.name.clone(),
        file: location.to_string(),
        reason,
    })?;
    let store = ctx
        .runtime_env()
        .object_store(url.object_store())
        .map_err(|error| SourceError::Engine {
            name: src.name.clone(),
            error,
        })?;
    Ok((url, store))
}

fn one_byte(s: &Option<String>) -> Option<u8> {
    s.as_ref().and_then(|v| v.bytes().next())
}

/// The CSV format for a source's options.
pub fn csv_format(src: &Source, o: &CsvOptions) -> (CsvFormat, String) {
    let compression = compression_of(src, first_location(src));
    let mut opts = DfCsvOptions::default()
        .with_has_header(o.header.unwrap_or(true))
        .with_delimiter(one_byte(&o.delimiter).unwrap_or(b','))
        .with_quote(one_byte(&o.quote).unwrap_or(b'"'))
        .with_escape(one_byte(&o.escape))
        .with_schema_infer_max_rec(o.infer_rows.unwrap_or(1000));
    opts.comment = one_byte(&o.comment);
    if !o.null_values.is_empty() {
        let alts: Vec<String> = o.null_values.iter().map(|v| regex::escape(v)).collect();
        opts.null_regex = Some(format!("^(|{})$", alts.join("|")));
    }
    let format = CsvFormat::default()
        .with_options(opts)
        .with_file_compression_type(df_compression(compression));
    let ext = o
        .extension
        .clone()
        .unwrap_or_else(|| format!(".csv{}", compression_ext(compression)));
    (format, ext)
}

/// The extension the files of a folder must carry for a listing format (`.csv`, `.json.gz`,
/// `.parquet`, ...); empty for `lines`, which reads every file of a folder.
pub fn folder_extension(src: &Source, format: Format<'_>) -> String {
    match format {
        Format::Lines(_) => String::new(),
        _ => df_format(src, format).1,
    }
}

/// The DataFusion format of a file source and the extension its folder files carry.
fn df_format(src: &Source, format: Format<'_>) -> (Arc<dyn FileFormat>, String) {
    match format {
        Format::Csv(o) => {
            let (f, ext) = csv_format(src, o);
            (Arc::new(SizedFormat::new(Arc::new(f))), ext)
        }
        Format::Json(o) => {
            let compression = compression_of(src, first_location(src));
            let f = JsonFormat::default()
                .with_file_compression_type(df_compression(compression))
                .with_schema_infer_max_rec(o.infer_rows.unwrap_or(1000));
            let ext = o
                .extension
                .clone()
                .unwrap_or_else(|| format!(".json{}", compression_ext(compression)));
            (Arc::new(SizedFormat::new(Arc::new(f))), ext)
        }
        Format::Avro => (Arc::new(AvroFormat), ".avro".into()),
        Format::Parquet | Format::Lines(_) => {
            (Arc::new(ParquetFormat::default()), ".parquet".into())
        }
    }
}

/// Builds a listing table for a file source (csv, json, parquet, avro).
pub async fn build(
    ctx: &SessionContext,
    src: &Source,
    source_format: Format<'_>,
) -> Result<Arc<dyn TableProvider>, SourceError> {
    let (format, ext) = df_format(src, source_format);
    let files = list_located(ctx, src, &ext).await?;
    let urls = src
        .locations
        .iter()
        .map(|l| {
            listing_url(l).map_err(|reason| SourceError::Read {
                name: src.name.clone(),
                file: l.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let any_dir = src
        .locations
        .iter()
        .any(|l| is_local_dir(l) || l.ends_with('/'));
    let options = ListingOptions::new(format.clone()).with_file_extension(if any_dir {
        ext.as_str()
    } else {
        ""
    });
    let config = ListingTableConfig::new_with_multi_paths(urls.clone())
        .with_listing_options(options.clone());
    let inferred = match &src.schema {
        Some(schema) => Ok(config.with_schema(schema.clone())),
        // DataFusion infers from the first location only: with several (the files of a
        // folder glob), every file counts.
        None if urls.len() > 1 => {
            let (_, store) = store_for(ctx, src, first_location(src))?;
            let metas: Vec<ObjectMeta> = files
                .iter()
                .filter(|f| f.meta.size > 0)
                .map(|f| f.meta.clone())
                .collect();
            format
                .infer_schema(&ctx.state(), &store, &metas)
                .await
                .map(|schema| config.with_schema(schema))
        }
        None => config.infer_schema(&ctx.state()).await,
    };
    let config = inferred.map_err(|error| infer_failure(src, &files, &error))?;
    let engine = |error| SourceError::Engine {
        name: src.name.clone(),
        error,
    };
    if let Format::Csv(o) = source_format
        && !o.null_values.is_empty()
        && let Some(typed) = config.file_schema.clone()
    {
        let raw = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options);
        return null_markers_view(ctx, raw, typed, &o.null_values).map_err(engine);
    }
    Ok(Arc::new(ListingTable::try_new(config).map_err(engine)?))
}

/// Schema inference failed: name the first file.
fn infer_failure(src: &Source, files: &[Listed], error: &DataFusionError) -> SourceError {
    SourceError::Read {
        name: src.name.clone(),
        file: files
            .first()
            .map(|f| f.location.clone())
            .unwrap_or_default(),
        reason: format!("cannot infer the schema: {error}"),
    }
}

/// The CSV reader only knows the empty field as NULL: read every column as text, turn the
/// extra NULL markers into NULL, then cast to the real types.
fn null_markers_view(
    ctx: &SessionContext,
    raw: ListingTableConfig,
    typed: datafusion::arrow::datatypes::SchemaRef,
    markers: &[String],
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let strings: Vec<Field> = typed
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    let raw = Arc::new(ListingTable::try_new(
        raw.with_schema(Arc::new(Schema::new(strings))),
    )?);
    let markers: Vec<Expr> = markers.iter().map(|v| lit(v.clone())).collect();
    let exprs = typed
        .fields()
        .iter()
        .map(|f| {
            let c = ident(f.name());
            let nulled = when(
                c.clone().in_list(markers.clone(), false),
                lit(ScalarValue::Utf8(None)),
            )
            .otherwise(c)?;
            Ok(cast(nulled, f.data_type().clone()).alias(f.name()))
        })
        .collect::<Result<Vec<_>, DataFusionError>>()?;
    Ok(ctx.read_table(raw)?.select(exprs)?.into_view())
}
