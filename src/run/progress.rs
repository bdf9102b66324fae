//! Progress spinners on a terminal; nothing otherwise.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// A set of spinners, or nothing when progress is off.
pub struct Progress {
    multi: Option<MultiProgress>,
}

/// One spinner.
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Spinners when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self {
            multi: enabled.then(MultiProgress::new),
        }
    }

    /// Starts a spinner for a step.
    pub fn step(&self, label: &str) -> Step {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_message(crate::secrets::redact(label).into_owned());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Step { bar }
    }

    /// Removes all spinners.
    pub fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Step {
    /// Ends the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
