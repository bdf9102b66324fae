//! CSV read row by row (see [`super::tolerant`]): exact physical lines, bad rows judged one
//! by one, and schema inference that leaves bad rows out.
//!
//! Line numbers are taken from where a record ends (the reader counts every `\n`, quoted or
//! not) minus the newlines inside it, so quoted newlines, blank lines, comment lines and CRLF
//! endings do not shift them. Only `\n` ends a record; a `\r` before it is dropped.

use std::io::Read;
use std::sync::Arc;

use csv::{ByteRecord, Reader, ReaderBuilder, Terminator};
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;

use super::CsvOptions;
use super::tolerant::{CHUNK_ROWS, Job, ReadCx, Tracked, Verdicts};
use crate::source::file::badrows::BadRowLog;

fn byte(s: &Option<String>) -> Option<u8> {
    s.as_ref().and_then(|v| v.bytes().next())
}

fn reader<R: Read>(o: &CsvOptions, input: R) -> Reader<Tracked<R>> {
    ReaderBuilder::new()
        .has_headers(false)
        .delimiter(byte(&o.delimiter).unwrap_or(b','))
        .quote(byte(&o.quote).unwrap_or(b'"'))
        .escape(byte(&o.escape))
        .double_quote(o.escape.is_none())
        .comment(byte(&o.comment))
        .terminator(Terminator::Any(b'\n'))
        .flexible(true)
        .from_reader(Tracked::new(input))
}

/// The fields of a record, a `\r` before the line end dropped.
fn fields(rec: &ByteRecord) -> impl Iterator<Item = &[u8]> {
    let last = rec.len().saturating_sub(1);
    rec.iter()
        .enumerate()
        .map(move |(i, f)| match f.strip_suffix(b"\r") {
            Some(s) if i == last => s,
            _ => f,
        })
}

/// A line holding only `\r` (a blank line of a CRLF file), which is no record.
fn is_blank(rec: &ByteRecord) -> bool {
    rec.len() == 1 && rec.get(0) == Some(b"\r")
}

/// The physical line a record just read starts on.
fn start_line<R: Read>(rdr: &Reader<Tracked<R>>, rec: &ByteRecord) -> u64 {
    let end = rdr.position();
    let ended_by_newline = !rdr.get_ref().ended_without_newline(end.byte());
    let last = end.line() - u64::from(ended_by_newline);
    let inside = rec.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
    last.saturating_sub(inside).max(1)
}

fn raw_text(rec: &ByteRecord, delimiter: u8) -> String {
    let parts: Vec<String> = fields(rec)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    parts.join(&(delimiter as char).to_string())
}

/// Rows split into text cells, waiting to be typed.
struct Chunk {
    cells: Vec<BinaryBuilder>,
    lines: Vec<u64>,
    /// Rows found bad while splitting (line, reason, raw text), logged with the typed ones
    /// so that the log, and `on_bad_row: fail`, see rows in line order.
    bad: Vec<(u64, String, String)>,
}

impl Chunk {
    fn new(n: usize) -> Self {
        Self {
            cells: (0..n).map(|_| BinaryBuilder::new()).collect(),
            lines: Vec::with_capacity(CHUNK_ROWS),
            bad: Vec::new(),
        }
    }

    fn job(&mut self, cx: &ReadCx<'_>, delimiter: u8) -> Job {
        let cells: Vec<BinaryArray> = self.cells.iter_mut().map(|b| b.finish()).collect();
        let lines = std::mem::take(&mut self.lines);
        let bad = std::mem::take(&mut self.bad);
        let (schema, file, log) = (cx.schema.clone(), cx.file.to_string(), cx.log.clone());
        Box::new(move || type_rows(cells, &lines, bad, &schema, &file, &log, delimiter))
    }

    fn len(&self) -> usize {
        self.lines.len() + self.bad.len()
    }
}

/// Splits a CSV file into records, handing chunks to be typed to `cx.emit`.
pub(super) fn read(
    o: &CsvOptions,
    input: Box<dyn Read + Send>,
    cx: ReadCx<'_>,
) -> Result<(), DataFusionError> {
    let delimiter = byte(&o.delimiter).unwrap_or(b',');
    let mut rdr = reader(o, input);
    let n = cx.schema.fields().len();
    let nulls: Vec<&[u8]> = o.null_values.iter().map(|v| v.as_bytes()).collect();
    let mut header = o.header.unwrap_or(true);
    let (mut rec, mut chunk, mut rows) = (ByteRecord::new(), Chunk::new(n), 0u64);
    loop {
        let more = rdr.read_byte_record(&mut rec).map_err(|e| {
            DataFusionError::Execution(format!("source `{}`: {}: {e}", cx.log.source, cx.file))
        })?;
        if !more {
            break;
        }
        if is_blank(&rec) {
            continue;
        }
        if std::mem::take(&mut header) {
            continue;
        }
        rows += 1;
        let line = start_line(&rdr, &rec);
        if rec.len() != n {
            let reason = format!("expected {n} fields, found {}", rec.len());
            chunk.bad.push((line, reason, raw_text(&rec, delimiter)));
        } else {
            for (f, b) in fields(&rec).zip(chunk.cells.iter_mut()) {
                if f.is_empty() || nulls.contains(&f) {
                    b.append_null();
                } else {
                    b.append_value(f);
                }
            }
            chunk.lines.push(line);
        }
        if chunk.len() == CHUNK_ROWS {
            cx.log.read_rows(cx.file, rows);
            let job = chunk.job(&cx, delimiter);
            if !(cx.emit)(job) {
                return Ok(());
            }
        }
    }
    cx.log.read_rows(cx.file, rows);
    if chunk.len() > 0 {
        let job = chunk.job(&cx, delimiter);
        (cx.emit)(job);
    }
    Ok(())
}

/// Types a chunk of rows: cells that are not UTF-8 or do not fit their column make their
/// row bad; the good rows come back as a batch.
fn type_rows(
    cells: Vec<BinaryArray>,
    lines: &[u64],
    known: Vec<(u64, String, String)>,
    schema: &SchemaRef,
    file: &str,
    log: &BadRowLog,
    delimiter: u8,
) -> Result<Option<RecordBatch>, DataFusionError> {
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut verdicts = Verdicts::new(lines.len());
    let mut typed: Vec<ArrayRef> = Vec::with_capacity(cells.len());
    for (bytes, field) in cells.iter().zip(schema.fields()) {
        let text = cast_with_options(bytes, &DataType::Utf8, &opts)?;
        for row in newly_null(bytes, &text) {
            verdicts.mark(row, || format!("column `{}`: not UTF-8 text", field.name()));
        }
        let value = match field.data_type() {
            DataType::Utf8 => text.clone(),
            ty => cast_with_options(&text, ty, &opts)?,
        };
        for row in newly_null(&text, &value) {
            verdicts.mark(row, || {
                let strings = text.as_any().downcast_ref::<StringArray>();
                format!(
                    "column `{}`: `{}` is not a valid {}",
                    field.name(),
                    strings.map(|s| s.value(row)).unwrap_or_default(),
                    crate::types::sql_name(field.data_type())
                )
            });
        }
        typed.push(value);
    }
    verdicts.required(schema, &typed);
    let raw = |row: usize| {
        let parts: Vec<String> = cells
            .iter()
            .map(|c| {
                if c.is_null(row) {
                    String::new()
                } else {
                    String::from_utf8_lossy(c.value(row)).into_owned()
                }
            })
            .collect();
        parts.join(&(delimiter as char).to_string())
    };
    verdicts.apply(typed, schema, file, lines, raw, log, known)
}

/// Rows that hold a value in `before` and none in `after` (a failed conversion).
fn newly_null<'a>(before: &'a dyn Array, after: &'a dyn Array) -> Vec<usize> {
    if after.null_count() == before.null_count() {
        return Vec::new();
    }
    (0..before.len())
        .filter(|r| before.is_valid(*r) && after.is_null(*r))
        .collect()
}

/// Infers column types from the first `infer_rows` good rows of the files (as the fast path
/// would, with Arrow's CSV inference), leaving out rows that do not parse.
pub(super) fn infer(
    o: &CsvOptions,
    inputs: Vec<(String, Box<dyn Read + Send>)>,
) -> Result<SchemaRef, String> {
    let max = o.infer_rows.unwrap_or(1000);
    let header = o.header.unwrap_or(true);
    let mut out = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut width: Option<usize> = None;
    let mut taken = 0;
    'files: for (i, (_, input)) in inputs.into_iter().enumerate() {
        let mut rdr = reader(o, input);
        let mut rec = ByteRecord::new();
        let mut first = true;
        while rdr.read_byte_record(&mut rec).map_err(|e| e.to_string())? {
            if is_blank(&rec) {
                continue;
            }
            let cells: Vec<&[u8]> = fields(&rec).collect();
            if std::mem::take(&mut first) {
                if i == 0 {
                    width = Some(cells.len());
                    let names: Vec<Vec<u8>> = if header {
                        cells.iter().map(|c| c.to_vec()).collect()
                    } else {
                        (1..=cells.len())
                            .map(|i| format!("column_{i}").into_bytes())
                            .collect()
                    };
                    out.write_record(&names).map_err(|e| e.to_string())?;
                }
                if header {
                    continue;
                }
            }
            if Some(cells.len()) != width || cells.iter().any(|c| std::str::from_utf8(c).is_err()) {
                continue;
            }
            out.write_record(&cells).map_err(|e| e.to_string())?;
            taken += 1;
            if taken >= max {
                break 'files;
            }
        }
    }
    let buf = out.into_inner().map_err(|e| e.to_string())?;
    let mut format = Format::default().with_header(true);
    if !o.null_values.is_empty() {
        let alts: Vec<String> = o.null_values.iter().map(|v| regex::escape(v)).collect();
        let re =
            regex::Regex::new(&format!("^(|{})$", alts.join("|"))).map_err(|e| e.to_string())?;
        format = format.with_null_regex(re);
    }
    let (schema, _) = format
        .infer_schema(std::io::Cursor::new(buf), Some(max))
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<(u64, String)> {
        let mut rdr = reader(&CsvOptions::default(), text.as_bytes());
        let mut rec = ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut rec).unwrap() {
            if is_blank(&rec) {
                continue;
            }
            out.push((start_line(&rdr, &rec), raw_text(&rec, b',')));
        }
        out
    }

    #[test]
    fn physical_lines_across_quotes_blank_lines_and_crlf() {
        let got = lines_of("h\n\n\na\n\"x\ny\"\nb");
        assert_eq!(
            got,
            vec![
                (1, "h".into()),
                (4, "a".into()),
                (5, "x\ny".into()),
                (7, "b".into())
            ]
        );
        let got = lines_of("\u{feff}h\r\na,1\r\n\r\nb\r\n");
        assert_eq!(
            got,
            vec![(1, "h".into()), (2, "a,1".into()), (4, "b".into())]
        );
    }
}
