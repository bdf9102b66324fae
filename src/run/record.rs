//! Run records: one JSON file per run under `<state dir>/runs/`.
//!
//! A record is named by its start time and run id only, never by a templated value, and its
//! content is masked (see [`crate::secrets::json_pretty`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::report::StepReport;

/// What a run record holds.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file.
    pub file: String,
    /// The logical date.
    pub ds: String,
    /// `success` or `failed`.
    pub status: String,
    /// Start time, UTC, RFC 3339.
    pub started_at: String,
    /// End time, UTC, RFC 3339.
    pub finished_at: String,
    /// Wall time.
    pub seconds: f64,
    /// The vars, secrets redacted.
    pub vars: serde_json::Value,
    /// Sinks selected with `--select`, if any.
    pub select: Vec<String>,
    /// Every step.
    pub steps: Vec<StepReport>,
    /// The error, if the run failed.
    pub error: Option<String>,
}

impl RunRecord {
    /// Writes the record (secrets redacted) and returns its path.
    pub fn write(&self, state_dir: &Path) -> std::io::Result<PathBuf> {
        let dir = state_dir.join("runs");
        std::fs::create_dir_all(&dir)?;
        let stamp = self
            .started_at
            .replace([':', '-'], "")
            .chars()
            .take(15)
            .collect::<String>();
        let path = dir.join(format!("{stamp}_{}.json", self.run_id));
        let value = serde_json::to_value(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, crate::secrets::json_pretty(value))?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
