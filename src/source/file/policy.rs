//! How a file source is read, and the static checks of its bad-row settings
//! (`max_bad_rows`, `quarantine:`).

use super::{FileOptions, FileSourceSpec, Format, tolerant};
use crate::connector::{BuildCx, CheckCx};
use crate::spec::source::OnBadRow;

impl<O: FileOptions> FileSourceSpec<O> {
    pub(super) fn check_bad_rows(&self, cx: &mut CheckCx<'_>) {
        if let Some(m) = &self.max_bad_rows {
            if let Err(msg) = m.limit() {
                cx.error("max_bad_rows", msg);
            } else if self.on_bad_row == OnBadRow::Fail {
                cx.error(
                    "max_bad_rows",
                    "`max_bad_rows` needs `on_bad_row: skip` or `on_bad_row: quarantine` (with `fail` the first bad row stops the run)",
                );
            }
        }
        let Some(sink) = &self.quarantine else { return };
        if self.on_bad_row != OnBadRow::Quarantine {
            cx.error("quarantine", "`quarantine:` needs `on_bad_row: quarantine`");
        }
        let source = cx.yaml_path.trim_start_matches("sources.").to_string();
        match cx.loaded.spec.sinks.get(sink).map(|s| s.from().to_string()) {
            None => {
                let names: Vec<String> = cx.loaded.spec.sinks.keys().cloned().collect();
                let d = cx.error(
                    "quarantine",
                    format!("`quarantine:` names no sink: `{sink}`"),
                );
                *d = d.clone().suggest(sink, names.iter().map(String::as_str));
            }
            Some(from) if from != source => {
                cx.error(
                    "quarantine",
                    format!("sink `{sink}` receives this source's bad rows, so its `from:` must be `{source}`, not `{from}`"),
                );
            }
            Some(_) => {}
        }
    }

    /// Whether the source is read row by row (see [`tolerant`]) rather than by DataFusion.
    pub(super) async fn serial(&self, cx: &BuildCx<'_>, format: Format<'_>) -> bool {
        let src = cx.source;
        match format {
            Format::Parquet | Format::Avro => false,
            Format::Json(_) | Format::Lines(_) => true,
            Format::Csv(o) => {
                src.on_bad_row != OnBadRow::Fail
                    || src
                        .schema
                        .as_ref()
                        .is_some_and(|s| s.fields().iter().any(|f| !f.is_nullable()))
                    || (o.header == Some(false) && tolerant::starts_with_bom(cx.ctx, src).await)
            }
        }
    }
}
