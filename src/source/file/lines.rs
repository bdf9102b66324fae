//! `lines`: text files read one row per line, into a single string column `line`.
//!
//! Lines end at `\n` (a `\r` before it is dropped), so a log line never breaks on commas or
//! quotes; a byte-order mark is skipped. A line that is not UTF-8 text is a bad row.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;

use super::LinesOptions;
use super::tolerant::{CHUNK_ROWS, ReadCx, Tracked};

/// The schema of a `lines` source.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
}

/// Reads a file's lines, handing batches to `cx.emit`.
pub(super) fn read(
    opts: &LinesOptions,
    input: Box<dyn Read + Send>,
    cx: ReadCx<'_>,
) -> Result<(), DataFusionError> {
    let mut rdr = BufReader::with_capacity(1 << 16, Tracked::new(input));
    let (mut buf, mut line, mut rows) = (Vec::new(), 0u64, 0u64);
    let mut builder = StringBuilder::new();
    let mut n = 0;
    let schema = cx.schema.clone();
    let flush = |builder: &mut StringBuilder| -> Result<RecordBatch, DataFusionError> {
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(builder.finish()) as ArrayRef],
        )?)
    };
    loop {
        buf.clear();
        if rdr.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if opts.skip_empty && text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows += 1;
        match std::str::from_utf8(text) {
            Ok(s) => builder.append_value(s),
            Err(e) => {
                let reason = format!("not UTF-8 text (byte {})", e.valid_up_to() + 1);
                cx.log
                    .record(cx.file, line, &reason, &String::from_utf8_lossy(text))?;
                continue;
            }
        }
        n += 1;
        if n == CHUNK_ROWS {
            n = 0;
            cx.log.read_rows(cx.file, rows);
            let batch = flush(&mut builder)?;
            if !(cx.emit)(Box::new(move || Ok(Some(batch)))) {
                return Ok(());
            }
        }
    }
    cx.log.read_rows(cx.file, rows);
    if n > 0 {
        let batch = flush(&mut builder)?;
        (cx.emit)(Box::new(move || Ok(Some(batch))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::file::badrows::{BadRowLog, LogSettings};
    use crate::spec::source::OnBadRow;

    fn read_all(text: &[u8], skip_empty: bool) -> (Vec<String>, Arc<BadRowLog>) {
        let settings = LogSettings {
            mode: OnBadRow::Skip,
            ..Default::default()
        };
        let log = Arc::new(BadRowLog::new(
            "l",
            settings,
            std::path::Path::new("/x"),
            "r",
        ));
        let mut out = Vec::new();
        let mut emit = |job: super::super::tolerant::Job| {
            let b = job().unwrap().unwrap();
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .unwrap()
                .clone();
            out.extend(a.iter().map(|v| v.unwrap().to_string()));
            true
        };
        let cx = ReadCx {
            file: "/f.log",
            schema: &schema(),
            log: &log,
            emit: &mut emit,
        };
        read(
            &LinesOptions {
                skip_empty,
                ..Default::default()
            },
            Box::new(std::io::Cursor::new(text.to_vec())),
            cx,
        )
        .unwrap();
        (out, log)
    }

    #[test]
    fn splits_lines_keeping_empty_ones_unless_asked() {
        assert_eq!(read_all(b"\xEF\xBB\xBFa\r\n\nc\n", false).0, ["a", "", "c"]);
        assert_eq!(read_all(b"a\n\nc", true).0, ["a", "c"]);
        assert!(read_all(b"", false).0.is_empty());
        let (rows, log) = read_all(b"a\n\xFF\xFEb\nc\n", false);
        assert_eq!(rows, ["a", "c"]);
        assert_eq!((log.count(), log.rows_read()), (1, 3));
    }
}
