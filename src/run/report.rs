//! Step reports, the end-of-run summary table (secrets masked, as wide as the terminal) and
//! the rollup that ends a backfill.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table};
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
    let mut t = fitted_table();
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
            Cell::new(rows_cell(s)).set_alignment(CellAlignment::Right),
            Cell::new(s.bytes.map(human_bytes).unwrap_or_default())
                .set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}s", s.seconds)).set_alignment(CellAlignment::Right),
            mask(&shorten_paths(s.detail.as_deref().unwrap_or_default())),
        ]);
    }
    // The short columns keep their width; the name and the detail wrap.
    for i in 1..=5 {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    t.to_string()
}

/// Paths below the current folder, relative to it (`out/report.csv`, not `/home/.../out/
/// report.csv`).
fn shorten_paths(text: &str) -> String {
    match std::env::current_dir() {
        Ok(cwd) if cwd.parent().is_some() => text.replace(&format!("{}/", cwd.display()), ""),
        _ => text.to_string(),
    }
}

/// The rows of a step as the summary shows them; a check shows its failing rows.
fn rows_cell(s: &StepReport) -> String {
    match (s.kind, s.failures, s.rows) {
        (StepKind::Check, Some(n), _) => format!("{n} failing"),
        (_, _, Some(r)) => r.to_string(),
        _ => String::new(),
    }
}

/// The width tables are fitted to: `COLUMNS` when set, else the terminal's (none when the
/// output is not a terminal).
fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= 20)
}

/// A table that wraps its cells (long paths and details) to fit the terminal's width.
fn fitted_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    if let Some(w) = terminal_width() {
        t.set_width(w);
    }
    t
}

/// One date of a backfill (`--from/--to`).
#[derive(Debug, Clone, Serialize)]
pub struct DayResult {
    /// The logical date.
    pub ds: String,
    /// `success`, `failed`, `invalid` or `locked`.
    pub status: &'static str,
    /// Rows the sinks wrote.
    pub rows: u64,
}

/// The rollup that ends a backfill: each date, its status and rows, and the dates that
/// failed.
pub fn backfill_rollup(pipeline: &str, days: &[DayResult]) -> String {
    let mut t = fitted_table();
    t.set_header(vec!["ds", "status", "rows written"]);
    for d in days {
        t.add_row(vec![
            Cell::new(&d.ds),
            Cell::new(d.status),
            Cell::new(d.rows).set_alignment(CellAlignment::Right),
        ]);
    }
    let failed: Vec<&str> = days
        .iter()
        .filter(|d| d.status != "success")
        .map(|d| d.ds.as_str())
        .collect();
    let last = if failed.is_empty() {
        format!(
            "{pipeline}: backfill of {} dates: all succeeded",
            days.len()
        )
    } else {
        format!(
            "{pipeline}: backfill of {} dates: {} failed: {}",
            days.len(),
            failed.len(),
            failed.join(", ")
        )
    };
    format!("{t}\n{last}")
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
