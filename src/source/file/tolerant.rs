//! Reading CSV and JSON sources that tolerate bad rows (`on_bad_row: skip | quarantine`).
//!
//! Each file is read serially (one partition per file), so every row's physical line is
//! known. A row is bad when it does not parse (wrong number of fields, invalid JSON) or a
//! value does not fit its column's type. Good rows flow on as typed batches; bad rows are
//! counted, and with `quarantine` written as JSON lines (source, file, line, reason, raw
//! row; secrets masked) to `<state dir>/quarantine/<source>/<run id>.jsonl`. Nothing is read
//! or written before the query runs, so `validate`, `explain` and dry runs leave no trace.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder as JsonReaderBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;

use super::listing::{compression_of, df_compression, list_files};
use super::{CsvOptions, Format};
use crate::model::Source;
use crate::source::SourceError;
use crate::spec::source::OnBadRow;

const BATCH_ROWS: usize = 8192;

/// Bad rows met by one source during a run.
pub struct BadRowLog {
    /// The source.
    pub source: String,
    mode: OnBadRow,
    quarantine_file: PathBuf,
    inner: Mutex<LogInner>,
}

#[derive(Default)]
struct LogInner {
    count: u64,
    writer: Option<std::io::BufWriter<std::fs::File>>,
    write_error: Option<String>,
}

impl fmt::Debug for BadRowLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadRowLog({}, {} rows)", self.source, self.count())
    }
}

impl BadRowLog {
    /// A log for `source`; quarantined rows go under `state_dir`.
    pub fn new(source: &str, mode: OnBadRow, state_dir: &std::path::Path, run_id: &str) -> Self {
        let quarantine_file = state_dir
            .join("quarantine")
            .join(source)
            .join(format!("{run_id}.jsonl"));
        Self {
            source: source.to_string(),
            mode,
            quarantine_file,
            inner: Mutex::new(LogInner::default()),
        }
    }

    /// How many bad rows were met.
    pub fn count(&self) -> u64 {
        self.inner.lock().map(|i| i.count).unwrap_or(0)
    }

    /// Where quarantined rows were written, if any were.
    pub fn quarantine_file(&self) -> Option<&std::path::Path> {
        (self.mode == OnBadRow::Quarantine && self.count() > 0)
            .then_some(self.quarantine_file.as_path())
    }

    /// A summary for the run report.
    pub fn summary(&self) -> Option<String> {
        let n = self.count();
        match (n, self.mode) {
            (0, _) => None,
            (n, OnBadRow::Quarantine) => Some(format!(
                "{n} bad rows quarantined → {}",
                self.quarantine_file.display()
            )),
            (n, _) => Some(format!("{n} bad rows skipped")),
        }
    }

    fn record(
        &self,
        file: &str,
        line: Option<u64>,
        reason: &str,
        raw: &str,
    ) -> Result<(), DataFusionError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DataFusionError::Execution("bad-row log poisoned".into()))?;
        inner.count += 1;
        if self.mode != OnBadRow::Quarantine {
            return Ok(());
        }
        if inner.writer.is_none() && inner.write_error.is_none() {
            let opened = self
                .quarantine_file
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.quarantine_file)
                });
            match opened {
                Ok(f) => inner.writer = Some(std::io::BufWriter::new(f)),
                Err(e) => inner.write_error = Some(e.to_string()),
            }
        }
        if let Some(e) = &inner.write_error {
            return Err(DataFusionError::Execution(format!(
                "source `{}`: cannot write quarantined rows to {}: {e}",
                self.source,
                self.quarantine_file.display()
            )));
        }
        let entry = serde_json::json!({"source": self.source, "file": file, "line": line, "reason": reason, "row": raw});
        let entry = crate::secrets::json_line(entry);
        let w = inner.writer.as_mut().expect("opened above");
        writeln!(w, "{entry}")
            .and_then(|_| w.flush())
            .map_err(|e| DataFusionError::Execution(e.to_string()))
    }
}

/// One file of a tolerant source: a partition that reads it serially.
struct FilePartition {
    src: Source,
    file: String,
    schema: SchemaRef,
    log: Arc<BadRowLog>,
}

impl fmt::Debug for FilePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FilePartition({})", self.file)
    }
}

impl PartitionStream for FilePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
        let (src, file, schema, log) = (
            self.src.clone(),
            self.file.clone(),
            self.schema.clone(),
            self.log.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let result = read_file(&src, &file, &schema, &log, &mut |b| {
                tx.blocking_send(Ok(b)).is_ok()
            });
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Builds a tolerant table for a local CSV or JSON source with the given (typed) schema.
pub async fn build(
    ctx: &SessionContext,
    src: &Source,
    schema: SchemaRef,
    log: Arc<BadRowLog>,
) -> Result<Arc<dyn TableProvider>, SourceError> {
    if src.locations.iter().any(|l| crate::validate::is_url(l)) {
        return Err(SourceError::Read {
            name: src.name.clone(),
            file: src.locations[0].clone(),
            reason: format!(
                "`on_bad_row: {}` reads local files only",
                if log.mode == OnBadRow::Skip {
                    "skip"
                } else {
                    "quarantine"
                }
            ),
        });
    }
    let files = list_files(ctx, src, "").await?;
    let partitions: Vec<Arc<dyn PartitionStream>> = files
        .iter()
        .map(|m| {
            Arc::new(FilePartition {
                src: src.clone(),
                file: format!("/{}", m.location),
                schema: schema.clone(),
                log: log.clone(),
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    let table =
        StreamingTable::try_new(schema, partitions).map_err(|error| SourceError::Engine {
            name: src.name.clone(),
            error,
        })?;
    Ok(Arc::new(table))
}

fn read_file(
    src: &Source,
    file: &str,
    schema: &SchemaRef,
    log: &BadRowLog,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), DataFusionError> {
    let io = |e: std::io::Error| {
        DataFusionError::Execution(format!("source `{}`: {file}: {e}", src.name))
    };
    let compression = compression_of(src, file);
    let raw = std::fs::File::open(file).map_err(io)?;
    let reader = df_compression(compression).convert_read(raw)?;
    match super::format_of(src) {
        Some(Format::Csv(o)) => read_csv(o, file, reader, schema, log, emit),
        _ => read_json(file, reader, schema, log, emit),
    }
}

/// Rows of text cells waiting to be typed, with their lines and raw text.
struct Pending {
    cells: Vec<StringBuilder>,
    lines: Vec<u64>,
    raws: Vec<String>,
    /// Rows already known to be bad (unreadable, wrong field count), logged at the next
    /// flush so that the log stays in line order.
    bad: Vec<(Option<u64>, String, String)>,
}

impl Pending {
    fn new(n: usize) -> Self {
        Self {
            cells: (0..n).map(|_| StringBuilder::new()).collect(),
            lines: Vec::new(),
            raws: Vec::new(),
            bad: Vec::new(),
        }
    }

    /// Types the pending rows; bad values go to the log, good rows come back as a batch.
    fn flush(
        &mut self,
        file: &str,
        schema: &SchemaRef,
        log: &BadRowLog,
    ) -> Result<Option<RecordBatch>, DataFusionError> {
        if self.lines.is_empty() {
            return self.log_bad(file, log).map(|_| None);
        }
        let opts = CastOptions {
            safe: true,
            ..Default::default()
        };
        let texts: Vec<ArrayRef> = self
            .cells
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let typed: Vec<ArrayRef> = texts
            .iter()
            .zip(schema.fields())
            .map(|(t, f)| cast_with_options(t, f.data_type(), &opts))
            .collect::<Result<_, _>>()?;
        let mut keep = Vec::with_capacity(self.lines.len());
        for row in 0..self.lines.len() {
            let bad = texts
                .iter()
                .zip(&typed)
                .zip(schema.fields())
                .find(|((t, v), _)| t.is_valid(row) && v.is_null(row));
            match bad {
                Some(((t, _), f)) => {
                    let value = t
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::StringArray>()
                        .map(|a| a.value(row))
                        .unwrap_or("");
                    let reason = format!(
                        "column `{}`: `{value}` is not a valid {}",
                        f.name(),
                        crate::types::sql_name(f.data_type())
                    );
                    self.bad.push((
                        Some(self.lines[row]),
                        reason,
                        std::mem::take(&mut self.raws[row]),
                    ));
                    keep.push(false);
                }
                None => keep.push(true),
            }
        }
        self.lines.clear();
        self.raws.clear();
        self.log_bad(file, log)?;
        let batch = RecordBatch::try_new(schema.clone(), typed)?;
        Ok(Some(filter_record_batch(
            &batch,
            &BooleanArray::from(keep),
        )?))
    }
}

impl Pending {
    fn log_bad(&mut self, file: &str, log: &BadRowLog) -> Result<(), DataFusionError> {
        self.bad.sort_by_key(|(line, _, _)| *line);
        for (line, reason, raw) in self.bad.drain(..) {
            log.record(file, line, &reason, &raw)?;
        }
        Ok(())
    }
}

fn read_csv(
    o: &CsvOptions,
    file: &str,
    reader: Box<dyn Read + Send>,
    schema: &SchemaRef,
    log: &BadRowLog,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), DataFusionError> {
    let byte = |s: &Option<String>| s.as_ref().and_then(|v| v.bytes().next());
    let delimiter = byte(&o.delimiter).unwrap_or(b',');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(o.header.unwrap_or(true))
        .delimiter(delimiter)
        .quote(byte(&o.quote).unwrap_or(b'"'))
        .escape(byte(&o.escape))
        .comment(byte(&o.comment))
        .flexible(true)
        .from_reader(reader);
    let n = schema.fields().len();
    let mut pending = Pending::new(n);
    for record in rdr.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line());
                pending
                    .bad
                    .push((line, format!("unreadable row: {e}"), String::new()));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let raw = record
            .iter()
            .collect::<Vec<_>>()
            .join(&(delimiter as char).to_string());
        if record.len() != n {
            pending.bad.push((
                Some(line),
                format!("expected {n} fields, found {}", record.len()),
                raw,
            ));
            continue;
        }
        for (cell, b) in record.iter().zip(pending.cells.iter_mut()) {
            if cell.is_empty() || o.null_values.iter().any(|v| v == cell) {
                b.append_null();
            } else {
                b.append_value(cell);
            }
        }
        pending.lines.push(line);
        pending.raws.push(raw);
        if pending.lines.len() == BATCH_ROWS
            && let Some(b) = pending.flush(file, schema, log)?
            && !emit(b)
        {
            return Ok(());
        }
    }
    if let Some(b) = pending.flush(file, schema, log)? {
        emit(b);
    }
    Ok(())
}

fn read_json(
    file: &str,
    reader: Box<dyn Read + Send>,
    schema: &SchemaRef,
    log: &BadRowLog,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), DataFusionError> {
    let decode = |lines: &[String]| -> Result<Option<RecordBatch>, DataFusionError> {
        let mut d = JsonReaderBuilder::new(schema.clone()).build_decoder()?;
        for l in lines {
            d.decode(l.as_bytes())?;
            d.decode(b"\n")?;
        }
        Ok(d.flush()?)
    };
    let mut chunk: Vec<(u64, String)> = Vec::new();
    let flush = |chunk: &mut Vec<(u64, String)>,
                 emit: &mut dyn FnMut(RecordBatch) -> bool|
     -> Result<bool, DataFusionError> {
        let lines: Vec<String> = chunk.iter().map(|(_, l)| l.clone()).collect();
        let batches = match decode(&lines) {
            Ok(b) => b.into_iter().collect::<Vec<_>>(),
            // Somewhere in the chunk is a bad line: decode line by line to find it.
            Err(_) => {
                let mut good = Vec::new();
                for (line_no, l) in chunk.iter() {
                    match decode(std::slice::from_ref(l)) {
                        Ok(Some(b)) => good.push(b),
                        Ok(None) => {}
                        Err(e) => log.record(
                            file,
                            Some(*line_no),
                            &e.to_string().replace("Json error: ", ""),
                            l,
                        )?,
                    }
                }
                good
            }
        };
        chunk.clear();
        Ok(batches.into_iter().all(&mut *emit))
    };
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                log.record(file, Some(line_no), &format!("not UTF-8 text: {e}"), "")?;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        chunk.push((line_no, line));
        if chunk.len() == BATCH_ROWS / 8 && !flush(&mut chunk, emit)? {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, emit)?;
    }
    Ok(())
}
