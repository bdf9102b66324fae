//! Bad-row accounting: one log per source and run, however many times the source is read.
//!
//! A source that several sinks, checks, transforms or incremental groups read is scanned once
//! per reader, so the same bad row is met several times. The log keys every bad row by its
//! file and physical line: a row is counted and quarantined once per run. Rows read are
//! counted per file (the most any one scan of the file saw), for `max_bad_rows` fractions.
//!
//! Quarantined rows are kept until the run ends, then written, sorted by file and line, as
//! one Parquet file `<state dir>/quarantine/<source>/<run id>.parquet` (columns `source`,
//! `file`, `line`, `raw`, `reason`, `run_id`; secrets masked), or handed to the sink named
//! in the source's `quarantine:` key. Nothing is written by planning, `validate`, `explain`
//! or `preview`: only [`BadRowLog::finish`], which only `etl run` calls.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::BadRow;
use crate::spec::source::OnBadRow;

/// `max_bad_rows:` a count (`100`), or a fraction of the rows read (`0.01`, or `"1%"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaxBadRows {
    /// A whole number: at most this many bad rows; a number between 0 and 1: at most this
    /// fraction of the rows read.
    Number(f64),
    /// A percentage of the rows read (`"0.5%"`).
    Percent(String),
}

/// A checked `max_bad_rows` limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadRowLimit {
    /// At most this many bad rows.
    Count(u64),
    /// At most this fraction of the rows read.
    Fraction(f64),
}

impl MaxBadRows {
    /// The limit it sets, or why it sets none.
    pub fn limit(&self) -> Result<BadRowLimit, String> {
        let bad = || {
            "`max_bad_rows` is a whole number of rows (`100`), a fraction of the rows read between 0 and 1 (`0.01`) or a percentage (`\"1%\"`)".to_string()
        };
        match self {
            Self::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Ok(BadRowLimit::Count(*n as u64)),
            Self::Number(n) if *n > 0.0 && *n < 1.0 => Ok(BadRowLimit::Fraction(*n)),
            Self::Number(_) => Err(bad()),
            Self::Percent(s) => match s.trim().strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
                Some(Ok(p)) if (0.0..=100.0).contains(&p) => Ok(BadRowLimit::Fraction(p / 100.0)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for BadRowLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Fraction(x) => write!(f, "{}% of the rows read", x * 100.0),
        }
    }
}

/// One bad row: why, and its text as read.
#[derive(Debug, Clone)]
struct Entry {
    reason: String,
    raw: String,
}

/// Bad rows met by one source during a run.
pub struct BadRowLog {
    /// The source.
    pub source: String,
    mode: OnBadRow,
    limit: Option<BadRowLimit>,
    run_id: String,
    quarantine_file: PathBuf,
    /// The sink that receives the bad rows instead of the Parquet file.
    pub sink: Option<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rows: BTreeMap<(String, u64), Entry>,
    read: HashMap<String, u64>,
    written: Option<PathBuf>,
    /// With `on_bad_row: fail`, the row that stopped the read.
    first: Option<BadRow>,
}

impl fmt::Debug for BadRowLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadRowLog({}, {} rows)", self.source, self.count())
    }
}

/// Where a log's rows go, and how many may be bad.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// Skip, quarantine or fail.
    pub mode: OnBadRow,
    /// `max_bad_rows`.
    pub limit: Option<BadRowLimit>,
    /// The sink named in `quarantine:`.
    pub sink: Option<String>,
}

impl BadRowLog {
    /// A log for `source`; quarantined rows go under `state_dir`.
    pub fn new(source: &str, settings: LogSettings, state_dir: &Path, run_id: &str) -> Self {
        let quarantine_file = state_dir
            .join("quarantine")
            .join(source)
            .join(format!("{run_id}.parquet"));
        Self {
            source: source.to_string(),
            mode: settings.mode,
            limit: settings.limit,
            run_id: run_id.to_string(),
            quarantine_file,
            sink: settings.sink,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A log that fails at the first bad row (`on_bad_row: fail`).
    pub fn failing(source: &str) -> Self {
        Self::new(source, LogSettings::default(), Path::new(""), "")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many distinct bad rows were met.
    pub fn count(&self) -> u64 {
        self.lock().rows.len() as u64
    }

    /// How many rows were read (good and bad), counting each file once.
    pub fn rows_read(&self) -> u64 {
        self.lock().read.values().sum()
    }

    /// Records that a scan of `file` read `rows` rows (good and bad).
    pub fn read_rows(&self, file: &str, rows: u64) {
        let mut inner = self.lock();
        let seen = inner.read.entry(file.to_string()).or_default();
        *seen = (*seen).max(rows);
    }

    /// Records a bad row. With `on_bad_row: fail` this is the error that stops the read.
    pub fn record(
        &self,
        file: &str,
        line: u64,
        reason: &str,
        raw: &str,
    ) -> Result<(), DataFusionError> {
        if self.mode == OnBadRow::Fail {
            let bad = BadRow {
                source: self.source.clone(),
                file: file.to_string(),
                line: Some(line as usize),
                reason: reason.to_string(),
            };
            let message = bad.to_string();
            self.lock().first.get_or_insert(bad);
            return Err(DataFusionError::Execution(message));
        }
        let raw = if self.mode == OnBadRow::Quarantine {
            raw.to_string()
        } else {
            String::new()
        };
        self.lock()
            .rows
            .entry((file.to_string(), line))
            .or_insert_with(|| Entry {
                reason: reason.to_string(),
                raw,
            });
        Ok(())
    }

    /// With `on_bad_row: fail`, the first bad row met.
    pub fn first_bad(&self) -> Option<BadRow> {
        self.lock().first.clone()
    }

    /// Where quarantined rows were written, once [`finish`](Self::finish) wrote them.
    pub fn quarantine_file(&self) -> Option<PathBuf> {
        self.lock().written.clone()
    }

    /// A summary for the run report.
    pub fn summary(&self) -> Option<String> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let of = match self.rows_read() {
            0 => String::new(),
            read => format!(" of {read}"),
        };
        let rows = if n == 1 { "row" } else { "rows" };
        Some(match (self.mode, &self.sink, self.quarantine_file()) {
            (OnBadRow::Quarantine, Some(sink), _) => {
                format!("{n} bad {rows}{of} quarantined → sink {sink}")
            }
            (OnBadRow::Quarantine, None, Some(path)) => {
                format!("{n} bad {rows}{of} quarantined → {}", path.display())
            }
            (OnBadRow::Quarantine, None, None) => format!("{n} bad {rows}{of} quarantined"),
            _ => format!("{n} bad {rows}{of} skipped"),
        })
    }

    /// Why the run must fail, when more rows were bad than `max_bad_rows` allows.
    pub fn over_limit(&self) -> Option<String> {
        let (bad, read) = (self.count(), self.rows_read());
        let allowed = match self.limit? {
            BadRowLimit::Count(n) => n as f64,
            BadRowLimit::Fraction(x) => x * read as f64,
        };
        (bad as f64 > allowed).then(|| {
            format!(
                "source `{}`: {bad} bad rows of {read} read, more than `max_bad_rows: {}` allows",
                self.source,
                self.limit.expect("checked above")
            )
        })
    }

    /// The bad rows as a table (`source`, `file`, `line`, `raw`, `reason`, `run_id`), sorted
    /// by file and line, every secret masked.
    pub fn table(&self) -> Result<RecordBatch, DataFusionError> {
        let inner = self.lock();
        let mask = |s: &str| crate::secrets::redact(s).into_owned();
        let n = inner.rows.len();
        let text = |f: &dyn Fn(&(String, u64), &Entry) -> String| -> ArrayRef {
            std::sync::Arc::new(StringArray::from_iter_values(
                inner.rows.iter().map(|(k, e)| f(k, e)),
            ))
        };
        let columns: Vec<ArrayRef> = vec![
            std::sync::Arc::new(StringArray::from(vec![mask(&self.source); n])),
            text(&|(file, _), _| mask(file)),
            std::sync::Arc::new(Int64Array::from_iter_values(
                inner.rows.keys().map(|(_, line)| *line as i64),
            )),
            text(&|_, e| mask(&e.raw)),
            text(&|_, e| mask(&e.reason)),
            std::sync::Arc::new(StringArray::from(vec![self.run_id.clone(); n])),
        ];
        Ok(RecordBatch::try_new(quarantine_schema(), columns)?)
    }

    /// At the end of a run: writes the quarantined rows to their Parquet file (unless a sink
    /// takes them). Returns the file, when one was written.
    pub fn finish(&self) -> Result<Option<PathBuf>, DataFusionError> {
        if self.mode != OnBadRow::Quarantine || self.sink.is_some() || self.count() == 0 {
            return Ok(None);
        }
        if let Some(done) = self.quarantine_file() {
            return Ok(Some(done));
        }
        let batch = self.table()?;
        let path = &self.quarantine_file;
        let io = |e: std::io::Error| {
            DataFusionError::Execution(format!(
                "source `{}`: cannot write quarantined rows to {}: {e}",
                self.source,
                path.display()
            ))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("parquet.tmp");
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        std::fs::rename(&tmp, path).map_err(io)?;
        self.lock().written = Some(path.clone());
        Ok(Some(path.clone()))
    }
}

/// The columns of quarantined rows.
pub fn quarantine_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("source"),
        text("file"),
        Field::new("line", DataType::Int64, false),
        text("raw"),
        text("reason"),
        text("run_id"),
    ]))
}

/// The bad-row logs of one run, by source: every plan of the run (incremental groups plan
/// again) shares them, so a row is counted once however often its source is read.
#[derive(Clone, Default)]
pub struct BadRowLogs(Arc<Mutex<IndexMap<String, Arc<BadRowLog>>>>);

impl fmt::Debug for BadRowLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadRowLogs({} sources)", self.all().len())
    }
}

impl BadRowLogs {
    /// The log of `source`, made by `make` the first time.
    pub fn get_or_create(&self, source: &str, make: impl FnOnce() -> BadRowLog) -> Arc<BadRowLog> {
        let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.entry(source.to_string())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Every log, in the order the sources were first built.
    pub fn all(&self) -> Vec<Arc<BadRowLog>> {
        let logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(mode: OnBadRow, limit: Option<BadRowLimit>) -> BadRowLog {
        let settings = LogSettings {
            mode,
            limit,
            sink: None,
        };
        BadRowLog::new("s", settings, Path::new("/nonexistent"), "r1")
    }

    #[test]
    fn a_row_met_twice_counts_once() {
        let l = log(OnBadRow::Skip, Some(BadRowLimit::Count(1)));
        for _ in 0..3 {
            l.record("/a.csv", 3, "bad", "x").unwrap();
            l.read_rows("/a.csv", 10);
        }
        assert_eq!((l.count(), l.rows_read()), (1, 10));
        assert!(l.over_limit().is_none());
        l.record("/b.csv", 3, "bad", "x").unwrap();
        assert_eq!(
            l.over_limit().unwrap(),
            "source `s`: 2 bad rows of 10 read, more than `max_bad_rows: 1` allows"
        );
    }

    #[test]
    fn fractions_and_percentages() {
        let m: MaxBadRows = serde_json::from_str("0.25").unwrap();
        assert_eq!(m.limit(), Ok(BadRowLimit::Fraction(0.25)));
        let m: MaxBadRows = serde_json::from_str("\"10%\"").unwrap();
        assert_eq!(m.limit(), Ok(BadRowLimit::Fraction(0.1)));
        let m: MaxBadRows = serde_json::from_str("3").unwrap();
        assert_eq!(m.limit(), Ok(BadRowLimit::Count(3)));
        assert!(MaxBadRows::Number(1.5).limit().is_err());
        let l = log(OnBadRow::Quarantine, Some(BadRowLimit::Fraction(0.25)));
        l.read_rows("/a.csv", 4);
        l.record("/a.csv", 2, "bad", "x").unwrap();
        assert!(l.over_limit().is_none());
        l.record("/a.csv", 3, "bad", "y").unwrap();
        assert!(l.over_limit().is_some());
        assert_eq!(l.table().unwrap().num_rows(), 2);
    }

    #[test]
    fn fail_mode_errors_with_the_place() {
        let l = BadRowLog::failing("s");
        let e = l.record("/a.csv", 7, "expected 3 fields, found 2", "");
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("/a.csv:7: expected 3 fields")
        );
    }
}
