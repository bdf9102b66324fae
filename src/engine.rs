//! The DataFusion session: built once per run from the engine settings.
//!
//! Memory is bounded when a limit is given (sorts, joins and aggregations then spill to disk
//! in the spill folder), spans are collected so SQL errors can point into the pipeline file,
//! and object stores are registered on demand for the URLs a pipeline uses.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Settings for a session.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Memory limit in bytes; unbounded when absent.
    pub memory_limit: Option<usize>,
    /// Where spill files go; the OS temp folder when absent.
    pub spill_dir: Option<PathBuf>,
    /// Planned partitions; the number of cores when absent.
    pub target_partitions: Option<usize>,
    /// Rows per batch.
    pub batch_size: Option<usize>,
}

/// Builds a session.
pub fn session(opts: &EngineOptions) -> Result<SessionContext, DataFusionError> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(opts.batch_size.unwrap_or(8192));
    if let Some(n) = opts.target_partitions {
        config = config.with_target_partitions(n.max(1));
    }
    let options = config.options_mut();
    options.sql_parser.collect_spans = true;
    // Star schemas join a large fact table with small dimensions: broadcast a build side
    // of up to 64 MiB / 2M rows instead of repartitioning the fact table by key.
    options.optimizer.hash_join_single_partition_threshold = 64 << 20;
    options.optimizer.hash_join_single_partition_threshold_rows = 2_000_000;
    // A folder sink gets one part file unless the output is large (a new file every
    // `soft_max_rows_per_output_file` rows), not one per partition of a tiny result.
    if let Ok(one) = datafusion::config::ConfigNonZeroUsize::try_new(1) {
        options.execution.minimum_parallel_output_files = one;
    }
    // Parquet output: zstd unless a sink says otherwise.
    options.execution.parquet.compression = Some("zstd(3)".into());
    if let Some(limit) = opts.memory_limit {
        // Each sort keeps this much back for merging its spill files; the default (10 MiB
        // per partition) would use up a small limit before any data is sorted.
        options.execution.sort_spill_reservation_bytes = (limit / 16).clamp(256 << 10, 10 << 20);
    }
    let mut disk = DiskManagerBuilder::default();
    if let Some(dir) = &opts.spill_dir {
        std::fs::create_dir_all(dir).map_err(|e| DataFusionError::External(Box::new(e)))?;
        disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
    }
    let mut runtime = RuntimeEnvBuilder::new().with_disk_manager_builder(disk);
    if let Some(limit) = opts.memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    Ok(SessionContext::new_with_config_rt(
        config,
        Arc::new(runtime.build()?),
    ))
}

/// Parses a size such as `2GiB`, `512MB`, `1.5g` or a plain number of bytes.
pub fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0_f64.powi(4),
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("512mb"), Some(512 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
    }
}
