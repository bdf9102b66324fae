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

/// The most partitions a query may be planned for (`target_partitions`, `--threads`).
pub const MAX_PARTITIONS: u64 = 1024;
/// The largest batch, in rows (`batch_size`).
pub const MAX_BATCH_SIZE: u64 = 1 << 20;
/// The smallest memory limit (`memory_limit`, `--memory-limit`): 1 MiB.
pub const MIN_MEMORY_LIMIT: u64 = 1 << 20;
/// The largest memory limit: 1 PiB.
pub const MAX_MEMORY_LIMIT: u64 = 1 << 50;

/// A memory limit that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryLimitError {
    /// Not a size at all.
    #[error("`{0}` is not a size (write e.g. 2GiB or 512MB)")]
    NotASize(String),
    /// Outside [`MIN_MEMORY_LIMIT`]..=[`MAX_MEMORY_LIMIT`].
    #[error("`{0}` is out of range: a memory limit is from 1 MiB to 1 PiB")]
    OutOfRange(String),
}

/// Parses a memory limit (`2GiB`, `512MB`), from 1 MiB to 1 PiB.
pub fn parse_memory_limit(s: &str) -> Result<usize, MemoryLimitError> {
    let n = parse_size(s).ok_or_else(|| MemoryLimitError::NotASize(s.to_string()))?;
    if (MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&(n as u64)) {
        Ok(n)
    } else {
        Err(MemoryLimitError::OutOfRange(s.to_string()))
    }
}

/// Parses `--threads`: a whole number from 1 to [`MAX_PARTITIONS`].
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_PARTITIONS}"
        )),
    }
}

/// Checks `--memory-limit` (keeping the text, which `etl run` parses).
pub fn check_memory_limit(s: &str) -> Result<String, String> {
    parse_memory_limit(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

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

/// Builds a session. Out-of-range settings (validated before they get here) are clamped
/// into range rather than handed to the engine, which would panic or exhaust memory.
pub fn session(opts: &EngineOptions) -> Result<SessionContext, DataFusionError> {
    let batch = opts
        .batch_size
        .unwrap_or(8192)
        .clamp(1, MAX_BATCH_SIZE as usize);
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(batch);
    if let Some(n) = opts.target_partitions {
        config = config.with_target_partitions(n.clamp(1, MAX_PARTITIONS as usize));
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
        let limit = limit.clamp(MIN_MEMORY_LIMIT as usize, MAX_MEMORY_LIMIT as usize);
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
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < usize::MAX as f64).then_some(bytes as usize)
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
        assert_eq!(parse_size("99999999999999999999999t"), None);
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_memory_limit("2GiB"), Ok(2 << 30));
        assert!(matches!(
            parse_memory_limit("0"),
            Err(MemoryLimitError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_memory_limit("2PiB"),
            Err(MemoryLimitError::NotASize(_))
        ));
        assert!(matches!(
            parse_memory_limit("4096t"),
            Err(MemoryLimitError::OutOfRange(_))
        ));
        assert_eq!(parse_threads("4"), Ok(4));
        for bad in ["0", "-1", "1025", "4294967296", "x"] {
            assert!(parse_threads(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sessions_clamp_what_would_break_the_engine() {
        let ctx = session(&EngineOptions {
            batch_size: Some(0),
            target_partitions: Some(usize::MAX),
            memory_limit: Some(0),
            spill_dir: None,
        })
        .unwrap();
        let config = ctx.copied_config();
        assert_eq!(config.batch_size(), 1);
        assert_eq!(config.target_partitions(), 1024);
    }
}
