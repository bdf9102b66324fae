//! File sinks (parquet, csv, json) written by DataFusion into a staging place.

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::common::config::{CsvOptions, JsonOptions, TableParquetOptions};
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::{DataFrame, SessionContext};

use super::SinkError;
use super::commit::{Staged, staging_location};
use crate::model::{Pipeline, Sink};
use crate::spec::SinkSpec;
use crate::spec::sink::parquet_compression;
use crate::spec::source::Compression;
use crate::types::{PartitionValue, partition_value};

fn variant(c: Option<Compression>) -> CompressionTypeVariant {
    match c.unwrap_or(Compression::None) {
        Compression::None => CompressionTypeVariant::UNCOMPRESSED,
        Compression::Gzip => CompressionTypeVariant::GZIP,
        Compression::Zstd => CompressionTypeVariant::ZSTD,
        Compression::Bzip2 => CompressionTypeVariant::BZIP2,
        Compression::Xz => CompressionTypeVariant::XZ,
    }
}

/// Writes a sink's rows to its staging place. Returns what to commit.
pub async fn write(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    sink: &Sink,
    df: DataFrame,
    run_id: &str,
) -> Result<Staged, SinkError> {
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
    let staging = staging_location(sink, run_id);
    let local = !crate::validate::is_url(&staging);
    if let Some(parent) = std::path::Path::new(&staging).parent().filter(|_| local) {
        std::fs::create_dir_all(parent).map_err(|e| SinkError::Commit {
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
    let result = write_format(sink, df, &target).await?;
    let rows = result
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        })
        .map(|a| a.value(0))
        .unwrap_or(0);
    let mut staged = Staged::new(sink, staging, rows);
    staged.measure(ctx).await;
    Ok(staged)
}

/// Partition columns that the writer cannot put in a folder name itself (dates, timestamps,
/// decimals) are written as their text, `CAST(col AS VARCHAR)`.
fn partition_values_as_text(
    df: DataFrame,
    partition_by: &[String],
) -> Result<DataFrame, datafusion::error::DataFusionError> {
    let as_text = |f: &Field| {
        partition_by.contains(f.name()) && partition_value(f.data_type()) == PartitionValue::AsText
    };
    if !df.schema().fields().iter().any(|f| as_text(f)) {
        return Ok(df);
    }
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, f)| {
            let column = Expr::Column(Column::from((qualifier, f)));
            if as_text(f) {
                cast(column, DataType::Utf8).alias(f.name())
            } else {
                column
            }
        })
        .collect();
    df.select(exprs)
}

/// Runs the query and writes it at `target` in the sink's format; returns DataFusion's
/// one-row count batch.
async fn write_format(
    sink: &Sink,
    df: DataFrame,
    target: &str,
) -> Result<Vec<RecordBatch>, SinkError> {
    let write_opts = DataFrameWriteOptions::new()
        .with_single_file_output(sink.single_file)
        .with_partition_by(sink.partition_by.clone());
    let werr = |error| SinkError::Write {
        name: sink.name.clone(),
        error,
    };
    let df = partition_values_as_text(df, &sink.partition_by).map_err(werr)?;
    match &sink.spec {
        SinkSpec::Parquet(s) => {
            let mut opts = TableParquetOptions::default();
            let compression = s.options.compression.as_deref().unwrap_or("zstd");
            opts.global.compression =
                Some(
                    parquet_compression(compression).map_err(|e| SinkError::Options {
                        name: sink.name.clone(),
                        reason: e.to_string(),
                    })?,
                );
            if let Some(n) = s.options.row_group_size {
                opts.global.max_row_group_size = n;
            }
            df.write_parquet(target, write_opts, Some(opts))
                .await
                .map_err(werr)
        }
        SinkSpec::Csv(s) => {
            let delimiter = s
                .options
                .delimiter
                .as_ref()
                .and_then(|d| d.bytes().next())
                .unwrap_or(b',');
            let mut opts = CsvOptions::default()
                .with_has_header(s.options.header.unwrap_or(true))
                .with_delimiter(delimiter);
            opts.compression = variant(s.options.compression);
            df.write_csv(target, write_opts, Some(opts))
                .await
                .map_err(werr)
        }
        SinkSpec::Json(s) => {
            let opts = JsonOptions {
                compression: variant(s.options.compression),
                ..Default::default()
            };
            df.write_json(target, write_opts, Some(opts))
                .await
                .map_err(werr)
        }
    }
}
