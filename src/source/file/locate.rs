//! Finding the exact bad row after a parallel scan failed.
//!
//! Scans split files into byte ranges, so the reader's line numbers are relative to a range
//! and the file is not known. When a read fails, the file is read again serially (error path
//! only) to report the file, the physical 1-based line, the column and the reason.

use std::io::{BufRead, BufReader, Read};

use datafusion::arrow::csv::ReaderBuilder as CsvReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder as JsonReaderBuilder;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use super::listing::{compression_of, df_compression, list_files, store_for};
use super::{CsvOptions, Format as SourceFormat};
use crate::model::Source;

/// A row that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The source.
    pub source: String,
    /// The file.
    pub file: String,
    /// Physical 1-based line (the header is line 1).
    pub line: Option<usize>,
    /// Why it does not parse.
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(
                f,
                "source `{}`: {}:{}: {}",
                self.source, self.file, l, self.reason
            ),
            None => write!(
                f,
                "source `{}`: {}: {}",
                self.source, self.file, self.reason
            ),
        }
    }
}

async fn open(ctx: &SessionContext, src: &Source, location: &str) -> Option<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if crate::validate::is_url(location) {
        let (_, store) = store_for(ctx, src, &src.locations[0]).ok()?;
        let path =
            object_store::path::Path::from_url_path(url::Url::parse(location).ok()?.path()).ok()?;
        let bytes = store.get(&path).await.ok()?.bytes().await.ok()?;
        Box::new(std::io::Cursor::new(bytes))
    } else {
        Box::new(std::fs::File::open(location).ok()?)
    };
    df_compression(compression_of(src, location))
        .convert_read(raw)
        .ok()
}

fn display_path(meta: &object_store::ObjectMeta, src: &Source) -> String {
    if src.locations.iter().any(|l| crate::validate::is_url(l)) {
        meta.location.to_string()
    } else {
        format!("/{}", meta.location)
    }
}

/// Reads a source serially and returns its first bad row, if any.
pub async fn locate_bad_row(
    ctx: &SessionContext,
    src: &Source,
    format: SourceFormat<'_>,
    schema: SchemaRef,
) -> Option<BadRow> {
    let files = list_files(ctx, src, "").await.ok()?;
    for meta in files {
        let file = display_path(&meta, src);
        let found = match format {
            SourceFormat::Csv(o) => scan_csv(open(ctx, src, &file).await?, o, schema.clone()),
            SourceFormat::Json(_) => scan_json(open(ctx, src, &file).await?, schema.clone()),
            _ => return None,
        };
        if let Some((line, reason)) = found {
            return Some(BadRow {
                source: src.name.clone(),
                file,
                line,
                reason,
            });
        }
    }
    None
}

fn scan_csv(
    reader: Box<dyn Read + Send>,
    o: &CsvOptions,
    schema: SchemaRef,
) -> Option<(Option<usize>, String)> {
    let header = o.header.unwrap_or(true);
    let mut format = Format::default()
        .with_header(header)
        .with_delimiter(
            o.delimiter
                .as_ref()
                .and_then(|d| d.bytes().next())
                .unwrap_or(b','),
        )
        .with_quote(
            o.quote
                .as_ref()
                .and_then(|d| d.bytes().next())
                .unwrap_or(b'"'),
        );
    if let Some(e) = o.escape.as_ref().and_then(|d| d.bytes().next()) {
        format = format.with_escape(e);
    }
    if let Some(c) = o.comment.as_ref().and_then(|d| d.bytes().next()) {
        format = format.with_comment(c);
    }
    if !o.null_values.is_empty() {
        let alts: Vec<String> = o.null_values.iter().map(|v| regex::escape(v)).collect();
        format =
            format.with_null_regex(regex::Regex::new(&format!("^(|{})$", alts.join("|"))).ok()?);
    }
    let csv = CsvReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(4096)
        .build(reader)
        .ok()?;
    for batch in csv {
        if let Err(e) = batch {
            return Some(describe_csv_error(&e.to_string(), &schema));
        }
    }
    None
}

/// Turns an Arrow CSV message into (physical line, reason).
pub fn describe_csv_error(msg: &str, schema: &SchemaRef) -> (Option<usize>, String) {
    let msg = msg
        .trim_start_matches("Parser error: ")
        .trim_start_matches("Csv error: ");
    if let Some(rest) = msg.strip_prefix("Error while parsing value '") {
        // Error while parsing value '<v>' as type '<T>' for column <i> at line <n>. Row data: ...
        let (value, rest) = rest.split_once("' as type '").unwrap_or((rest, ""));
        let (_, rest) = rest.split_once("' for column ").unwrap_or(("", rest));
        let (col, rest) = rest.split_once(" at line ").unwrap_or(("", rest));
        let line: Option<usize> = rest.split('.').next().and_then(|l| l.trim().parse().ok());
        let col_idx: Option<usize> = col.trim().parse().ok();
        let (col_name, ty) = col_idx
            .and_then(|i| schema.fields().get(i))
            .map(|f| (f.name().clone(), crate::types::sql_name(f.data_type())))
            .unwrap_or_else(|| (col.to_string(), String::new()));
        return (
            line.map(|l| l + 1),
            format!("column `{col_name}`: `{value}` is not a valid {ty}"),
        );
    }
    if let Some(rest) = msg.strip_prefix("incorrect number of fields for line ") {
        let (line, tail) = rest.split_once(',').unwrap_or((rest, ""));
        return (
            line.trim().parse().ok(),
            format!("wrong number of fields:{tail}"),
        );
    }
    (None, msg.to_string())
}

fn scan_json(reader: Box<dyn Read + Send>, schema: SchemaRef) -> Option<(Option<usize>, String)> {
    let mut decoder = JsonReaderBuilder::new(schema).build_decoder().ok()?;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some((Some(i + 1), format!("not UTF-8 text: {e}"))),
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = decoder
            .decode(line.as_bytes())
            .and_then(|_| decoder.decode(b"\n"))
            .and_then(|_| decoder.flush());
        if let Err(e) = result {
            let reason = e.to_string().trim_start_matches("Json error: ").to_string();
            return Some((Some(i + 1), reason));
        }
    }
    None
}
