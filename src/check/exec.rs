//! Running a planned check: its outcome, failing-row count, sample and stored failures.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::DataFusionError;
use datafusion::prelude::DataFrame;

use super::compile::{Compiled, Plan};
use super::store;
use crate::model::{Check, CheckKind};
use crate::spec::{CheckSeverity, RelativeTo};

/// How many failing rows a report shows.
const SAMPLE_ROWS: usize = 5;

/// What running a check needs besides its plan.
#[derive(Debug, Clone, Copy)]
pub struct RunCx<'a> {
    /// The logical date, `YYYY-MM-DD` (for `freshness` relative to `ds`).
    pub ds: &'a str,
    /// The run id, which names stored failures.
    pub run_id: &'a str,
    /// Where `store_failures` writes (`<state dir>/failures`); `None` stores nothing.
    pub failures_dir: Option<&'a Path>,
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The query failed (reading a source, a cast).
    #[error("{0}")]
    Query(#[from] DataFusionError),
    /// The failing rows could not be written.
    #[error("cannot write the failing rows to {}: {error}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: DataFusionError,
    },
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check.
    pub check: Check,
    /// Rows (or keys) breaking it; for checks on the whole table, 1 when it failed. 0 when
    /// it holds.
    pub failures: u64,
    /// What was found, for the report.
    pub detail: String,
    /// A few failing rows, as a table.
    pub sample: Option<String>,
    /// The Parquet file the failing rows were stored in.
    pub stored: Option<PathBuf>,
}

impl CheckOutcome {
    /// True when the check holds.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }

    /// True when it failed with severity error.
    pub fn is_fatal(&self) -> bool {
        !self.passed() && self.check.severity == CheckSeverity::Error
    }
}

impl Compiled {
    /// Runs the check.
    pub async fn run(self, cx: &RunCx<'_>) -> Result<CheckOutcome, CheckError> {
        let check = self.check;
        let mut out = CheckOutcome {
            check,
            failures: 0,
            detail: "ok".into(),
            sample: None,
            stored: None,
        };
        let table_row = match self.plan {
            Plan::Rows(df) => return rows(out, df, cx).await,
            Plan::RowCount(df) => row_count(&mut out, df).await?,
            Plan::Table(df) => {
                let batches = df.collect().await?;
                let ok = first_value(&batches, |a| {
                    let b = a.as_boolean_opt()?;
                    b.is_valid(0).then(|| b.value(0))
                });
                out.failures = u64::from(ok != Some(true));
                out.detail = match ok {
                    Some(true) => "ok".into(),
                    Some(false) => "false".into(),
                    None => "NULL, which fails".into(),
                };
                batches.into_iter().next()
            }
            Plan::Freshness(df) => freshness(&mut out, df, cx).await?,
        };
        if !out.passed()
            && out.check.store_failures
            && let (Some(batch), Some(dir)) = (table_row, cx.failures_dir)
        {
            out.stored = Some(store::write_batch(dir, &out.check, cx.run_id, batch)?);
        }
        Ok(out)
    }
}

async fn rows(
    mut out: CheckOutcome,
    failing: DataFrame,
    cx: &RunCx<'_>,
) -> Result<CheckOutcome, CheckError> {
    let n = failing.clone().count().await? as u64;
    out.failures = n;
    if n == 0 {
        return Ok(out);
    }
    let batches: Vec<RecordBatch> = failing
        .clone()
        .limit(0, Some(SAMPLE_ROWS))?
        .collect()
        .await?;
    out.sample = pretty_format_batches(&batches).ok().map(|t| t.to_string());
    out.detail = match &out.check.kind {
        CheckKind::Unique(_) => format!("{n} duplicated keys"),
        CheckKind::NotNull(_) => format!("{n} rows with NULL"),
        CheckKind::AcceptedValues { .. } => format!("{n} rows with other values"),
        CheckKind::Relationships { column, to, field } => {
            format!("{n} rows whose `{column}` is not in `{to}.{field}`")
        }
        _ => format!("{n} failing rows"),
    };
    if out.check.store_failures
        && let Some(dir) = cx.failures_dir
    {
        out.stored = Some(store::write_rows(dir, &out.check, cx.run_id, failing).await?);
    }
    Ok(out)
}

async fn row_count(
    out: &mut CheckOutcome,
    df: DataFrame,
) -> Result<Option<RecordBatch>, CheckError> {
    let CheckKind::RowCount { min, max } = out.check.kind else {
        return Ok(None);
    };
    let n = df.count().await? as u64;
    let bound = match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => String::new(),
    };
    out.failures = u64::from(min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m));
    out.detail = format!("{n} rows, expected {bound}");
    let as_i64 = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let batch = RecordBatch::try_from_iter(vec![
        (
            "rows",
            std::sync::Arc::new(Int64Array::from(vec![as_i64(Some(n))])) as _,
        ),
        (
            "min",
            std::sync::Arc::new(Int64Array::from(vec![as_i64(min)])) as _,
        ),
        (
            "max",
            std::sync::Arc::new(Int64Array::from(vec![as_i64(max)])) as _,
        ),
    ])
    .map_err(DataFusionError::from)?;
    Ok(Some(batch))
}

async fn freshness(
    out: &mut CheckOutcome,
    df: DataFrame,
    cx: &RunCx<'_>,
) -> Result<Option<RecordBatch>, CheckError> {
    let CheckKind::Freshness {
        column,
        max_age,
        relative_to,
    } = &out.check.kind
    else {
        return Ok(None);
    };
    let batches = df.collect().await?;
    let latest = first_value(&batches, |a| {
        let t = a.as_primitive_opt::<TimestampMicrosecondType>()?;
        t.is_valid(0).then(|| t.value(0))
    })
    .and_then(DateTime::<Utc>::from_timestamp_micros);
    let reference = reference_time(*relative_to, cx.ds);
    let age = latest.map(|l| (reference - l).to_std().unwrap_or(Duration::ZERO));
    let shown =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    out.failures = u64::from(age.is_none_or(|a| a > *max_age));
    out.detail = match (latest, age) {
        (Some(l), Some(a)) => format!(
            "newest `{column}` is {} old at {} ({}; at most {})",
            shown(a),
            reference.format("%Y-%m-%d %H:%M:%S"),
            l.format("%Y-%m-%d %H:%M:%S"),
            shown(*max_age),
        ),
        _ => format!("no rows with a `{column}`"),
    };
    let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
    let max_age_s = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let ts = |v: Option<i64>| {
        std::sync::Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(
            vec![v],
        )) as std::sync::Arc<dyn Array>
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("latest", ts(micros(latest))),
        ("reference", ts(micros(Some(reference)))),
        (
            "max_age_seconds",
            std::sync::Arc::new(Int64Array::from(vec![max_age_s])) as _,
        ),
    ])
    .map_err(DataFusionError::from)?;
    Ok(Some(batch))
}

/// What `freshness` measures against: now, or the end of the logical date (midnight UTC
/// after it) when that has passed.
fn reference_time(relative_to: RelativeTo, ds: &str) -> DateTime<Utc> {
    let now = Utc::now();
    match relative_to {
        RelativeTo::Now => now,
        RelativeTo::Ds => NaiveDate::parse_from_str(ds, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(now, |end| end.and_utc().min(now)),
    }
}

/// The first row's value of the first column, read by `get`.
fn first_value<T>(batches: &[RecordBatch], get: impl Fn(&dyn Array) -> Option<T>) -> Option<T> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    get(batch.column(0).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_reference_is_the_end_of_the_day_or_now() {
        let t = reference_time(RelativeTo::Ds, "2024-01-05");
        assert_eq!(t.to_rfc3339(), "2024-01-06T00:00:00+00:00");
        let future = reference_time(RelativeTo::Ds, "2999-01-01");
        assert!(future <= Utc::now());
    }
}
