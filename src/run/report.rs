//! Step reports and the end-of-run summary table (secrets masked).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use serde::Serialize;

/// What kind of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A source opened.
    Source,
    /// A transform computed.
    Transform,
    /// A check run.
    Check,
    /// A sink written.
    Sink,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Done.
    Ok,
    /// A check with severity warn failed.
    Warned,
    /// Failed.
    Failed,
    /// Not done (dry run, or another step failed).
    Skipped,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: StepKind,
    /// How it ended.
    pub status: StepStatus,
    /// Rows produced or written.
    pub rows: Option<u64>,
    /// Bytes written.
    pub bytes: Option<u64>,
    /// A check: the rows (or keys) that break it; 1 for a failed check on the whole table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Wall time.
    pub seconds: f64,
    /// More about it.
    pub detail: Option<String>,
}

impl StepReport {
    /// A step with no numbers yet.
    pub fn new(name: &str, kind: StepKind, status: StepStatus) -> Self {
        Self {
            name: name.to_string(),
            kind,
            status,
            rows: None,
            bytes: None,
            failures: None,
            seconds: 0.0,
            detail: None,
        }
    }

    /// Sets the time.
    pub fn timed(mut self, seconds: f64) -> Self {
        self.seconds = seconds;
        self
    }

    /// Sets the rows.
    pub fn with_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// Sets the bytes.
    pub fn with_bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// Sets the failing-row count of a check.
    pub fn with_failures(mut self, failures: u64) -> Self {
        self.failures = Some(failures);
        self
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// `1.2 MiB` and the like.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The summary table printed at the end of a run. Secrets are masked cell by cell, so the
/// columns stay aligned.
pub fn summary_table(steps: &[StepReport]) -> String {
    let mask = |s: &str| Cell::new(crate::secrets::redact(s));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "step", "kind", "status", "rows", "bytes", "time", "detail",
    ]);
    for s in steps {
        let status = match s.status {
            StepStatus::Ok => "ok",
            StepStatus::Warned => "WARN",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        t.add_row(vec![
            mask(&s.name),
            Cell::new(format!("{:?}", s.kind).to_lowercase()),
            Cell::new(status),
            Cell::new(s.rows.map(|r| r.to_string()).unwrap_or_default())
                .set_alignment(CellAlignment::Right),
            Cell::new(s.bytes.map(human_bytes).unwrap_or_default())
                .set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}s", s.seconds)).set_alignment(CellAlignment::Right),
            mask(s.detail.as_deref().unwrap_or_default()),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_masks_cells_and_keeps_columns_aligned() {
        crate::secrets::register("report-s3cret");
        let steps = vec![
            StepReport::new("report-s3cret", StepKind::Sink, StepStatus::Ok)
                .with_detail("1 file → out/report-s3cret.csv".into()),
        ];
        let t = summary_table(&steps);
        assert!(!t.contains("s3cret") && t.contains("out/***.csv"), "{t}");
        let widths: Vec<usize> = t.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
    }
}
