//! Finding the exact bad row after a parallel scan failed.
//!
//! Scans split files into byte ranges, so the reader's line numbers are relative to a range
//! and the file is not known. When a read fails, the source is read again serially (error
//! path only) by the same reader that `skip` and `quarantine` use, so the file, the physical
//! 1-based line and the reason are the ones those modes would report.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;

use super::Format;
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

/// Reads a source serially and returns its first bad row, if any.
pub async fn locate_bad_row(
    ctx: &SessionContext,
    src: &Source,
    format: Format<'_>,
    schema: SchemaRef,
) -> Option<BadRow> {
    match format {
        Format::Csv(_) | Format::Json(_) | Format::Lines(_) => {
            super::tolerant::first_bad_row(ctx, src, schema).await
        }
        Format::Parquet | Format::Avro => None,
    }
}
