//! JSON read record by record (see [`super::tolerant`]), in three layouts:
//!
//! - `lines`: one JSON object per line (NDJSON). A line that is not exactly one JSON value
//!   (two objects, half of a pretty-printed one, a truncated one) is a bad row.
//! - `array`: one top-level array of objects, laid out any way.
//! - `concatenated`: objects one after another, pretty-printed or not.
//!
//! Without `options: { json: ... }` a file is `array` when its first non-blank character is
//! `[`, else `lines`. In the document layouts a value that is not valid JSON leaves the rest
//! of the file unreadable: it is one bad row, from its line on.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use serde::de::IgnoredAny;

use super::tolerant::{CHUNK_ROWS, Job, ReadCx, Tracked, Verdicts, nullable};
use super::{JsonLayout, JsonOptions};
use crate::source::file::badrows::BadRowLog;

/// A record's text, or why it is bad; and whether to go on.
type OnValue<'a> =
    dyn FnMut(u64, Result<&[u8], (String, String)>) -> Result<bool, DataFusionError> + 'a;

/// Calls `f` with each record of a file and its physical line.
fn each_value(
    layout: Option<JsonLayout>,
    input: Box<dyn Read + Send>,
    f: &mut OnValue<'_>,
) -> Result<(), DataFusionError> {
    let mut rdr = BufReader::with_capacity(1 << 16, Tracked::new(input));
    let layout = match layout {
        Some(l) => l,
        None => {
            let head = rdr.fill_buf()?;
            match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => JsonLayout::Array,
                _ => JsonLayout::Lines,
            }
        }
    };
    if layout == JsonLayout::Lines {
        return each_line(rdr, f);
    }
    let mut data = Vec::new();
    rdr.read_to_end(&mut data)?;
    each_document(&data, layout == JsonLayout::Array, f)
}

fn each_line(mut rdr: impl BufRead, f: &mut OnValue<'_>) -> Result<(), DataFusionError> {
    let (mut buf, mut line) = (Vec::new(), 0u64);
    loop {
        buf.clear();
        if rdr.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let verdict = one_object(text)
            .map(|_| text)
            .map_err(|reason| (reason, lossy(text)));
        if !f(line, verdict)? {
            return Ok(());
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks that a line is exactly one JSON object.
fn one_object(text: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(text).is_err() {
        return Err("not UTF-8 text".into());
    }
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(text) {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the line ends inside a value".to_string(),
            _ if e.to_string().starts_with("trailing characters") => {
                let next = text.get(e.column().saturating_sub(1)).copied();
                if matches!(next, Some(b'{' | b'[')) {
                    "more than one value on the line".to_string()
                } else {
                    "text after the value".to_string()
                }
            }
            _ => message(&e),
        };
        return Err(format!("invalid JSON: {what} (column {})", e.column()));
    }
    object_check(text)
}

fn object_check(text: &[u8]) -> Result<(), String> {
    let kind = match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => return Ok(()),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    Err(format!("expected a JSON object, found {kind}"))
}

/// serde_json's message without its position.
fn message(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
}

/// Counts lines up to increasing byte offsets.
struct LineCounter<'a> {
    data: &'a [u8],
    pos: usize,
    line: u64,
}

impl LineCounter<'_> {
    fn at(&mut self, pos: usize) -> u64 {
        let pos = pos.min(self.data.len());
        if pos > self.pos {
            self.line += self.data[self.pos..pos]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            self.pos = pos;
        }
        self.line
    }
}

fn skip_ws(data: &[u8], mut pos: usize) -> usize {
    while pos < data.len() && data[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// The rest of a line from `pos`, for a bad row's raw text.
fn rest_of_line(data: &[u8], pos: usize) -> String {
    let end = data[pos..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(data.len(), |i| pos + i)
        .min(pos + 4096);
    lossy(&data[pos..end])
}

fn each_document(data: &[u8], array: bool, f: &mut OnValue<'_>) -> Result<(), DataFusionError> {
    let mut lines = LineCounter {
        data,
        pos: 0,
        line: 1,
    };
    let mut pos = skip_ws(data, 0);
    let bad = |lines: &mut LineCounter<'_>, pos: usize, reason: String, f: &mut OnValue<'_>| {
        f(lines.at(pos), Err((reason, rest_of_line(data, pos)))).map(|_| ())
    };
    if array {
        if data.get(pos) != Some(&b'[') {
            let reason = "expected `[`: the `array` layout is one JSON array of records".into();
            return bad(&mut lines, pos, reason, f);
        }
        pos += 1;
    }
    loop {
        pos = skip_ws(data, pos);
        match data.get(pos) {
            None if array => return bad(&mut lines, pos, "the array is not closed".into(), f),
            None => return Ok(()),
            Some(b']') if array => {
                let after = skip_ws(data, pos + 1);
                if after < data.len() {
                    return bad(&mut lines, after, "text after the array".into(), f);
                }
                return Ok(());
            }
            _ => {}
        }
        let mut values =
            serde_json::Deserializer::from_slice(&data[pos..]).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                let end = pos + values.byte_offset();
                let text = &data[pos..end];
                let verdict = object_check(text)
                    .map(|_| text)
                    .map_err(|r| (r, lossy(text)));
                if !f(lines.at(pos), verdict)? {
                    return Ok(());
                }
                pos = skip_ws(data, end);
                if array {
                    match data.get(pos) {
                        Some(b',') => pos += 1,
                        Some(b']') => {}
                        _ => {
                            let reason = "expected `,` or `]` after a record".into();
                            return bad(&mut lines, pos, reason, f);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                let line = lines.at(pos) + e.line() as u64 - 1;
                let reason = format!(
                    "invalid JSON: {} (column {}); the rest of the file is not read",
                    message(&e),
                    e.column()
                );
                return f(line, Err((reason, rest_of_line(data, pos)))).map(|_| ());
            }
            None => return Ok(()),
        }
    }
}

/// Splits a JSON file into records, handing chunks to be decoded to `cx.emit`.
pub(super) fn read(
    o: &JsonOptions,
    input: Box<dyn Read + Send>,
    cx: ReadCx<'_>,
) -> Result<(), DataFusionError> {
    let ReadCx {
        file,
        schema,
        log,
        emit,
    } = cx;
    let mut chunk = Chunk::default();
    let mut rows = 0u64;
    let job = |chunk: &mut Chunk| -> Job {
        let Chunk { values, bad } = std::mem::take(chunk);
        let (schema, file, log) = (schema.clone(), file.to_string(), log.clone());
        Box::new(move || decode(values, bad, &schema, &file, &log))
    };
    let mut on_value = |line: u64, v: Result<&[u8], (String, String)>| {
        rows += 1;
        match v {
            Ok(text) => chunk.values.push((line, text.to_vec())),
            Err((reason, raw)) => chunk.bad.push((line, reason, raw)),
        }
        if chunk.values.len() + chunk.bad.len() == CHUNK_ROWS {
            log.read_rows(file, rows);
            return Ok(emit(job(&mut chunk)));
        }
        Ok(true)
    };
    each_value(o.json, input, &mut on_value)?;
    log.read_rows(file, rows);
    if !chunk.values.is_empty() || !chunk.bad.is_empty() {
        emit(job(&mut chunk));
    }
    Ok(())
}

/// Records waiting to be decoded, and records found bad while splitting (line, reason,
/// raw text), logged together in line order.
#[derive(Default)]
struct Chunk {
    values: Vec<(u64, Vec<u8>)>,
    bad: Vec<(u64, String, String)>,
}

fn decoder(
    schema: &SchemaRef,
) -> Result<datafusion::arrow::json::reader::Decoder, DataFusionError> {
    Ok(ReaderBuilder::new(nullable(schema))
        .with_batch_size(CHUNK_ROWS)
        .with_coerce_primitive(true)
        .build_decoder()?)
}

fn decode_all(
    values: &[(u64, Vec<u8>)],
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>, DataFusionError> {
    let mut d = decoder(schema)?;
    for (_, v) in values {
        d.decode(v)?;
        d.decode(b"\n")?;
    }
    Ok(d.flush()?)
}

/// Decodes a chunk of records; records that do not fit the schema are bad rows.
fn decode(
    values: Vec<(u64, Vec<u8>)>,
    mut known: Vec<(u64, String, String)>,
    schema: &SchemaRef,
    file: &str,
    log: &BadRowLog,
) -> Result<Option<RecordBatch>, DataFusionError> {
    let (batch, good) = match decode_all(&values, schema) {
        Ok(Some(b)) if b.num_rows() == values.len() => (b, values),
        Ok(None) => (RecordBatch::new_empty(nullable(schema)), Vec::new()),
        // Somewhere in the chunk is a bad record: decode one by one to find it.
        _ => {
            let (mut batches, mut good) = (Vec::new(), Vec::new());
            for (line, v) in values {
                match decode_all(std::slice::from_ref(&(line, v.clone())), schema) {
                    Ok(Some(b)) => {
                        batches.push(b);
                        good.push((line, v));
                    }
                    Ok(None) => {}
                    Err(e) => known.push((line, clean_error(&e.to_string()), lossy(&v))),
                }
            }
            (concat_batches(&nullable(schema), &batches)?, good)
        }
    };
    let columns = batch.columns().to_vec();
    let mut verdicts = Verdicts::new(good.len());
    verdicts.required(schema, &columns);
    let lines: Vec<u64> = good.iter().map(|(l, _)| *l).collect();
    verdicts.apply(
        columns,
        schema,
        file,
        &lines,
        |row| lossy(&good[row].1),
        log,
        known,
    )
}

/// Arrow's JSON message, said the way the rest of etl says it.
fn clean_error(msg: &str) -> String {
    let mut m = msg
        .trim_start_matches("Arrow error: ")
        .trim_start_matches("Json error: ")
        .to_string();
    let mut path = Vec::new();
    while let Some(rest) = m.strip_prefix("whilst decoding field '") {
        let Some((name, rest)) = rest.split_once("': ") else {
            break;
        };
        path.push(name.to_string());
        m = rest.to_string();
    }
    if let Some((_, rest)) = m.split_once("non-nullable")
        && let Some((_, rest)) = rest
            .split_once("name: \"")
            .or_else(|| rest.split_once("Field { \""))
        && let Some((name, _)) = rest.split_once('"')
    {
        path.push(name.to_string());
        return format!("column `{}` is required, found no value", path.join("."));
    }
    if path.is_empty() {
        m
    } else {
        format!("column `{}`: {m}", path.join("."))
    }
}

/// Infers column types from the first `infer_rows` good records of the files, leaving out
/// records that `on_bad_row` would leave out.
pub(super) fn infer(
    o: &JsonOptions,
    inputs: Vec<(String, Box<dyn Read + Send>)>,
) -> Result<SchemaRef, String> {
    let max = o.infer_rows.unwrap_or(1000);
    let mut values: Vec<serde_json::Value> = Vec::new();
    for (_, input) in inputs {
        let mut take = |_: u64, v: Result<&[u8], (String, String)>| {
            if let Ok(value) = v.map(serde_json::from_slice::<serde_json::Value>) {
                values.extend(value.ok());
            }
            Ok(values.len() < max)
        };
        each_value(o.json, input, &mut take).map_err(|e| e.to_string())?;
        if values.len() >= max {
            break;
        }
    }
    if values.is_empty() {
        return Err("no JSON record to infer it from; declare a `schema:`".into());
    }
    let schema =
        infer_json_schema_from_iterator(values.into_iter().map(Ok)).map_err(|e| e.to_string())?;
    Ok(Arc::new(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(layout: Option<JsonLayout>, text: &str) -> Vec<(u64, Result<String, String>)> {
        let mut out = Vec::new();
        let mut f = |line: u64, v: Result<&[u8], (String, String)>| {
            out.push((line, v.map(lossy).map_err(|(r, _)| r)));
            Ok(true)
        };
        each_value(
            layout,
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            &mut f,
        )
        .unwrap();
        out
    }

    #[test]
    fn lines_hold_one_object_each() {
        let got = values(
            None,
            "{\"a\":1}\n\n{\"a\":2}{\"a\":3}\n{\n\"a\": 4}\n[1]\n{\"a\":",
        );
        assert_eq!(got[0], (1, Ok("{\"a\":1}".into())));
        assert_eq!(got[1].0, 3);
        assert!(
            got[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("more than one value")
        );
        assert!(
            got[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("ends inside a value")
        );
        assert_eq!(
            got[4],
            (6, Err("expected a JSON object, found an array".into()))
        );
        assert_eq!(got[5].0, 7);
    }

    #[test]
    fn documents_keep_their_lines() {
        let text = "\u{feff}[\n  {\"a\": 1},\n  {\n    \"a\": 2\n  },\n  7\n]\n";
        let got = values(None, text);
        assert_eq!(got[0], (2, Ok("{\"a\": 1}".into())));
        assert_eq!(got[1].0, 3);
        assert_eq!(
            got[2],
            (6, Err("expected a JSON object, found a number".into()))
        );
        let got = values(
            Some(JsonLayout::Concatenated),
            "{\"a\": 1}\n{\n \"a\": 2\n}\n{\"a\": }",
        );
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, 2);
        assert_eq!(got[2].0, 5);
        assert!(got[2].1.as_ref().unwrap_err().contains("rest of the file"));
    }

    #[test]
    fn arrow_messages_name_the_column() {
        assert_eq!(
            clean_error("Json error: whilst decoding field 'n': failed to parse \"x\" as Int32"),
            "column `n`: failed to parse \"x\" as Int32"
        );
        assert_eq!(
            clean_error(
                "Arrow error: Json error: whilst decoding field 'a': Encountered unmasked nulls in non-nullable StructArray child: Field { \"city\": Utf8 }"
            ),
            "column `a.city` is required, found no value"
        );
    }
}
