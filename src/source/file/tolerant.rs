//! Serial reading of text files that knows every row's physical line: CSV with
//! `on_bad_row: skip | quarantine`, every JSON source, and `lines`.
//!
//! Each file is one partition, read on a blocking thread that splits it into rows and counts
//! physical lines (quoted newlines, blank lines, CRLF and a byte-order mark included). Typing
//! a chunk of rows (casts, JSON decoding) is handed over as a [`Job`] that the consumer of the
//! stream runs, so splitting and typing use two cores. A row is bad when it does not parse
//! (wrong number of fields, invalid JSON, not UTF-8) or a value does not fit its column; bad
//! rows go to the source's [`BadRowLog`], which with `on_bad_row: fail` turns the first one
//! into the error that stops the read. Nothing is read before the query runs, except what
//! schema inference needs.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use super::badrows::BadRowLog;
use super::listing::{compression_of, df_compression, list_files, store_for};
use super::{BadRow, Format};
use crate::model::Source;
use crate::source::SourceError;

/// Rows per chunk handed from the splitting thread to the consumer.
pub(super) const CHUNK_ROWS: usize = 8192;

/// Typing of one chunk of rows, run by the stream's consumer.
pub(super) type Job = Box<dyn FnOnce() -> Result<Option<RecordBatch>, DataFusionError> + Send>;

/// Where rows go while one file is read.
pub(super) struct ReadCx<'a> {
    /// The file, as messages name it.
    pub file: &'a str,
    /// The typed schema rows are read into.
    pub schema: &'a SchemaRef,
    /// Where bad rows go.
    pub log: &'a Arc<BadRowLog>,
    /// Takes each chunk's typing job; false when the consumer is gone.
    pub emit: &'a mut dyn FnMut(Job) -> bool,
}

/// One file of a source: where it is and how to open it.
#[derive(Clone)]
struct FileRef {
    /// As messages name it (`/abs/path.csv`, or the object's path).
    display: String,
    location: object_store::path::Path,
    local: bool,
    store: Arc<dyn ObjectStore>,
}

impl FileRef {
    async fn open(&self, src: &Source) -> Result<Box<dyn Read + Send>, DataFusionError> {
        let io = |e: String| {
            DataFusionError::Execution(format!("source `{}`: {}: {e}", src.name, self.display))
        };
        let raw: Box<dyn Read + Send> = if self.local {
            Box::new(std::fs::File::open(&self.display).map_err(|e| io(e.to_string()))?)
        } else {
            let bytes = self
                .store
                .get(&self.location)
                .await
                .map_err(|e| io(e.to_string()))?
                .bytes()
                .await
                .map_err(|e| io(e.to_string()))?;
            Box::new(std::io::Cursor::new(bytes))
        };
        df_compression(compression_of(src, &self.display)).convert_read(raw)
    }
}

/// Lists a source's files.
async fn files_of(ctx: &SessionContext, src: &Source) -> Result<Vec<FileRef>, SourceError> {
    let files = list_files(ctx, src, "").await?;
    let remote = src.locations.iter().any(|l| crate::validate::is_url(l));
    let (_, store) = store_for(ctx, src, &src.locations[0])?;
    Ok(files
        .into_iter()
        .map(|m| FileRef {
            display: if remote {
                m.location.to_string()
            } else {
                format!("/{}", m.location)
            },
            location: m.location,
            local: !remote,
            store: store.clone(),
        })
        .collect())
}

/// Splits one file into rows, handing typing jobs to `cx.emit`.
fn read_file(
    src: &Source,
    input: Box<dyn Read + Send>,
    cx: ReadCx<'_>,
) -> Result<(), DataFusionError> {
    match super::format_of(src) {
        Some(Format::Csv(o)) => super::csvread::read(o, input, cx),
        Some(Format::Json(o)) => super::jsonread::read(o, input, cx),
        Some(Format::Lines(o)) => super::lines::read(o, input, cx),
        _ => Err(DataFusionError::Internal(format!(
            "source `{}` is not read row by row",
            src.name
        ))),
    }
}

/// One file of a source: a partition that reads it serially.
struct FilePartition {
    src: Source,
    file: FileRef,
    schema: SchemaRef,
    log: Arc<BadRowLog>,
}

impl fmt::Debug for FilePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FilePartition({})", self.file.display)
    }
}

impl PartitionStream for FilePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Job, DataFusionError>>(2);
        let (src, file, schema, log) = (
            self.src.clone(),
            self.file.clone(),
            self.schema.clone(),
            self.log.clone(),
        );
        tokio::spawn(async move {
            let input = match file.open(&src).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let _ = tokio::task::spawn_blocking(move || {
                let mut emit = |job: Job| tx.blocking_send(Ok(job)).is_ok();
                let cx = ReadCx {
                    file: &file.display,
                    schema: &schema,
                    log: &log,
                    emit: &mut emit,
                };
                if let Err(e) = read_file(&src, input, cx) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .await;
        });
        let jobs = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let batches = jobs.filter_map(|item| async move {
            match item {
                Ok(job) => job().transpose(),
                Err(e) => Some(Err(e)),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// Builds a table that reads a source's files serially, with the given (typed) schema.
pub async fn build(
    ctx: &SessionContext,
    src: &Source,
    schema: SchemaRef,
    log: Arc<BadRowLog>,
) -> Result<Arc<dyn TableProvider>, SourceError> {
    let partitions: Vec<Arc<dyn PartitionStream>> = files_of(ctx, src)
        .await?
        .into_iter()
        .map(|file| {
            Arc::new(FilePartition {
                src: src.clone(),
                file,
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

/// True when a local file of the source starts with a UTF-8 byte-order mark (which
/// DataFusion's CSV reader would take for data).
pub async fn starts_with_bom(ctx: &SessionContext, src: &Source) -> bool {
    let Ok(files) = files_of(ctx, src).await else {
        return false;
    };
    files.iter().filter(|f| f.local).any(|f| {
        let mut head = [0u8; 3];
        std::fs::File::open(&f.display)
            .and_then(|mut r| r.read_exact(&mut head))
            .is_ok()
            && head == [0xEF, 0xBB, 0xBF]
    })
}

/// Reads a source serially and returns its first bad row, if any (after a fast scan failed,
/// or to explain an error). Bad rows are judged exactly as `skip` and `quarantine` judge them.
pub async fn first_bad_row(
    ctx: &SessionContext,
    src: &Source,
    schema: SchemaRef,
) -> Option<BadRow> {
    let files = files_of(ctx, src).await.ok()?;
    for file in files {
        let input = file.open(src).await.ok()?;
        let (src, schema) = (src.clone(), schema.clone());
        let found = tokio::task::spawn_blocking(move || {
            let log = Arc::new(BadRowLog::failing(&src.name));
            let mut failed: Option<DataFusionError> = None;
            let mut emit = |job: Job| match job() {
                Ok(_) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            };
            let cx = ReadCx {
                file: &file.display,
                schema: &schema,
                log: &log,
                emit: &mut emit,
            };
            let _ = read_file(&src, input, cx);
            log.first_bad()
        })
        .await
        .ok()?;
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Infers the schema of a JSON or CSV source from its first rows, leaving out rows that
/// `on_bad_row` would leave out.
pub async fn infer(
    ctx: &SessionContext,
    src: &Source,
    format: Format<'_>,
) -> Result<SchemaRef, SourceError> {
    let files = files_of(ctx, src).await?;
    let mut inputs = Vec::new();
    for f in &files {
        let input = f.open(src).await.map_err(|error| SourceError::Engine {
            name: src.name.clone(),
            error,
        })?;
        inputs.push((f.display.clone(), input));
    }
    let first = files.first().map(|f| f.display.clone()).unwrap_or_default();
    let result = match format {
        Format::Csv(o) => super::csvread::infer(o, inputs),
        Format::Json(o) => super::jsonread::infer(o, inputs),
        _ => Ok(super::lines::schema()),
    };
    result.map_err(|reason| SourceError::Read {
        name: src.name.clone(),
        file: first,
        reason: format!("cannot infer the schema: {reason}"),
    })
}

/// The rows of a typed batch that are bad, with why: filled by the readers.
pub(super) struct Verdicts {
    reasons: Vec<Option<String>>,
    bad: usize,
}

impl Verdicts {
    /// All rows good so far.
    pub fn new(rows: usize) -> Self {
        Self {
            reasons: vec![None; rows],
            bad: 0,
        }
    }

    /// Marks a row bad (the first reason found for it stays).
    pub fn mark(&mut self, row: usize, reason: impl FnOnce() -> String) {
        if self.reasons[row].is_none() {
            self.reasons[row] = Some(reason());
            self.bad += 1;
        }
    }

    /// Marks rows where a required (not null) column is null.
    pub fn required(&mut self, schema: &SchemaRef, columns: &[ArrayRef]) {
        for (f, c) in schema.fields().iter().zip(columns) {
            if f.is_nullable() || c.null_count() == 0 {
                continue;
            }
            for row in (0..c.len()).filter(|r| c.is_null(*r)) {
                self.mark(row, || {
                    format!("column `{}` is required, found no value", f.name())
                });
            }
        }
    }

    /// Logs the bad rows, in line order with `known` (rows found bad before typing: line,
    /// reason, raw text), and returns the batch without them, with the real schema.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        self,
        columns: Vec<ArrayRef>,
        schema: &SchemaRef,
        file: &str,
        lines: &[u64],
        raw: impl Fn(usize) -> String,
        log: &BadRowLog,
        mut known: Vec<(u64, String, String)>,
    ) -> Result<Option<RecordBatch>, DataFusionError> {
        for (row, reason) in self.reasons.iter().enumerate() {
            if let Some(reason) = reason {
                known.push((lines[row], reason.clone(), raw(row)));
            }
        }
        known.sort_by_key(|(line, _, _)| *line);
        for (line, reason, raw) in &known {
            log.record(file, *line, reason, raw)?;
        }
        if lines.is_empty() {
            return Ok(None);
        }
        if self.bad == 0 {
            return Ok(Some(RecordBatch::try_new(schema.clone(), columns)?));
        }
        if self.bad == lines.len() {
            return Ok(None);
        }
        let keep = BooleanArray::from_iter(self.reasons.iter().map(|r| Some(r.is_none())));
        let loose = RecordBatch::try_new(nullable(schema), columns)?;
        let kept = filter_record_batch(&loose, &keep)?;
        Ok(Some(RecordBatch::try_new(
            schema.clone(),
            kept.columns().to_vec(),
        )?))
    }
}

/// The schema with every top-level column nullable (rows are judged before NOT NULL holds).
pub(super) fn nullable(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Skips a UTF-8 byte-order mark at the start of a stream and tracks what was read: how
/// many bytes, the last one, and whether the end was reached.
pub(super) struct Tracked<R> {
    inner: R,
    /// The first bytes, without a byte-order mark (`None`: not read yet).
    head: Option<Vec<u8>>,
    head_pos: usize,
    /// Bytes handed out.
    pub total: u64,
    /// The last byte handed out.
    pub last: Option<u8>,
    /// The inner reader reported its end.
    pub eof: bool,
}

impl<R: Read> Tracked<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            head: None,
            head_pos: 0,
            total: 0,
            last: None,
            eof: false,
        }
    }

    /// True when the stream was read to its end and its last byte was not a newline: the
    /// last row had no line terminator.
    pub fn ended_without_newline(&self, consumed: u64) -> bool {
        self.eof && consumed == self.total && self.last != Some(b'\n')
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.head.is_none() {
            let mut head = vec![0u8; 3];
            let mut n = 0;
            while n < 3 {
                let k = self.inner.read(&mut head[n..])?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            head.truncate(n);
            if head == [0xEF, 0xBB, 0xBF] {
                head.clear();
            }
            self.head = Some(head);
        }
        let head = self.head.as_deref().unwrap_or_default();
        let n = if self.head_pos < head.len() {
            let k = (head.len() - self.head_pos).min(buf.len());
            buf[..k].copy_from_slice(&head[self.head_pos..self.head_pos + k]);
            self.head_pos += k;
            k
        } else {
            self.inner.read(buf)?
        };
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        } else if n > 0 {
            self.total += n as u64;
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let mut out = String::new();
        Tracked::new(&b"\xEF\xBB\xBFid\n1"[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "id\n1");
        let mut t = Tracked::new(&b"a\n"[..]);
        let mut one = [0u8; 1];
        let mut got = Vec::new();
        while t.read(&mut one).unwrap() > 0 {
            got.push(one[0]);
        }
        assert_eq!((got.as_slice(), t.total, t.eof), (&b"a\n"[..], 2, true));
    }
}
