//! `lines`: text files read one row per line, into a single string column `line`.
//!
//! Files are read whole through the object store (decompressed by extension) and split on
//! `\n` (a trailing `\r` is dropped), so a log line never breaks on commas or quotes.

use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use super::LinesOptions;
use super::listing::{compression_of, df_compression, list_files, store_for};
use crate::model::Source;
use crate::source::SourceError;

const BATCH_ROWS: usize = 8192;

/// The schema of a `lines` source.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
}

/// Reads all lines into an in-memory table, one partition per file.
pub async fn build(
    ctx: &SessionContext,
    src: &Source,
    opts: &LinesOptions,
) -> Result<Arc<dyn TableProvider>, SourceError> {
    let files = list_files(ctx, src, "").await?;
    let (_, store) = store_for(ctx, src, &src.locations[0])?;
    let mut partitions = Vec::new();
    for meta in files {
        let file = meta.location.to_string();
        let read_err = |reason: String| SourceError::Read {
            name: src.name.clone(),
            file: file.clone(),
            reason,
        };
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| read_err(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| read_err(e.to_string()))?;
        let compression = compression_of(src, &file);
        let mut text = String::new();
        df_compression(compression)
            .convert_read(std::io::Cursor::new(bytes))
            .map_err(|e| read_err(e.to_string()))?
            .read_to_string(&mut text)
            .map_err(|e| read_err(format!("not UTF-8 text or damaged compression: {e}")))?;
        partitions.push(batches(&text, opts.skip_empty).map_err(|e| read_err(e.to_string()))?);
    }
    let table = MemTable::try_new(schema(), partitions).map_err(|error| SourceError::Engine {
        name: src.name.clone(),
        error,
    })?;
    Ok(Arc::new(table))
}

fn batches(
    text: &str,
    skip_empty: bool,
) -> Result<Vec<RecordBatch>, datafusion::arrow::error::ArrowError> {
    let mut out = Vec::new();
    let mut builder = StringBuilder::new();
    let mut n = 0;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() && text.is_empty() {
        return Ok(out);
    }
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if skip_empty && line.trim().is_empty() {
            continue;
        }
        builder.append_value(line);
        n += 1;
        if n == BATCH_ROWS {
            out.push(RecordBatch::try_new(
                schema(),
                vec![Arc::new(builder.finish()) as ArrayRef],
            )?);
            n = 0;
        }
    }
    if n > 0 {
        out.push(RecordBatch::try_new(
            schema(),
            vec![Arc::new(builder.finish()) as ArrayRef],
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_keeping_empty_ones_unless_asked() {
        let b = batches("a\r\n\nc\n", false).unwrap();
        assert_eq!(b[0].num_rows(), 3);
        let b = batches("a\n\nc", true).unwrap();
        assert_eq!(b[0].num_rows(), 2);
        assert!(batches("", false).unwrap().is_empty());
    }
}
