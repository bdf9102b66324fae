//! User-facing diagnostics: what went wrong, and where in the pipeline file.
//!
//! Every problem found while loading, rendering or validating a pipeline becomes a
//! [`Diagnostic`] that carries the file, the YAML path (`sinks.daily.partition_by`) and the
//! 1-based line and column, so a user can jump straight to the place. Stages collect them in a
//! [`Diagnostics`] list instead of stopping at the first one.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secrets;

/// A position in a text file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

impl Pos {
    /// A position from a 1-based line and column.
    pub fn new(line: usize, col: usize) -> Self {
        Self { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Makes the pipeline invalid (exit code 2).
    Error,
    /// Reported, but does not stop anything.
    Warning,
}

/// One problem, with the place it points at.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the problem is in (a pipeline file, or an SQL file it includes).
    pub file: Option<PathBuf>,
    /// Dotted YAML path of the offending key or value, e.g. `sources.sales.options`.
    pub yaml_path: Option<String>,
    /// Line and column in `file`.
    pub pos: Option<Pos>,
    /// One-line reason.
    pub message: String,
    /// An optional hint: "did you mean `partition_by`?".
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error with only a message; place it with the builder methods.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: None,
            yaml_path: None,
            pos: None,
            message: message.into(),
            help: None,
        }
    }

    /// A new warning with only a message.
    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(message)
        }
    }

    /// Sets the file.
    pub fn in_file(mut self, file: impl AsRef<Path>) -> Self {
        self.file = Some(file.as_ref().to_path_buf());
        self
    }

    /// Sets the YAML path.
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        if !p.is_empty() {
            self.yaml_path = Some(p);
        }
        self
    }

    /// Sets the position, if known.
    pub fn at(mut self, pos: Option<Pos>) -> Self {
        if pos.is_some() {
            self.pos = pos;
        }
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a "did you mean" hint when one of `candidates` is close to `word`.
    pub fn suggest<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match did_you_mean(word, candidates) {
            Some(h) => self.with_help(h),
            None => self,
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with a snippet of the offending line when the file is readable,
    /// secrets masked.
    pub fn render(&self, color: bool) -> String {
        let (label, code) = match self.severity {
            Severity::Error => ("error", "31"),
            Severity::Warning => ("warning", "33"),
        };
        let mut out = if color {
            format!(
                "\x1b[1;{code}m{label}\x1b[0m\x1b[1m: {}\x1b[0m\n",
                self.message
            )
        } else {
            format!("{label}: {}\n", self.message)
        };
        if let Some(loc) = self.location() {
            out.push_str(&format!("  --> {loc}\n"));
        }
        if let (Some(file), Some(pos)) = (&self.file, self.pos)
            && let Some(snippet) = snippet(file, pos)
        {
            out.push_str(&snippet);
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        secrets::redact(&out).into_owned()
    }

    /// `file:line:col (yaml.path)`, as much of it as is known.
    pub fn location(&self) -> Option<String> {
        let mut loc = String::new();
        if let Some(f) = &self.file {
            loc.push_str(&f.display().to_string());
            if let Some(p) = self.pos {
                loc.push_str(&format!(":{p}"));
            }
        }
        if let Some(path) = &self.yaml_path {
            if loc.is_empty() {
                loc.push_str(path);
            } else {
                loc.push_str(&format!(" ({path})"));
            }
        }
        (!loc.is_empty()).then_some(loc)
    }

    /// The diagnostic as a JSON object for `--log-format json`, secrets masked everywhere in
    /// it (a file name can hold one too: `sql_file` paths are templated).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "level": match self.severity { Severity::Error => "error", Severity::Warning => "warning" },
            "message": self.message,
            "file": self.file.as_ref().map(|f| f.display().to_string()),
            "line": self.pos.map(|p| p.line),
            "col": self.pos.map(|p| p.col),
            "yaml_path": self.yaml_path,
            "help": self.help,
        });
        secrets::redact_json(&mut v);
        v
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self
            .location()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        text.push_str(&self.message);
        if let Some(help) = &self.help {
            text.push_str(&format!(" (help: {help})"));
        }
        f.write_str(&secrets::redact(&text))
    }
}

fn snippet(file: &Path, pos: Pos) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().nth(pos.line.checked_sub(1)?)?;
    let num = pos.line.to_string();
    let pad = " ".repeat(num.len());
    let caret_pad = " ".repeat(pos.col.saturating_sub(1));
    Some(format!("{pad} |\n{num} | {line}\n{pad} | {caret_pad}^\n"))
}

/// A list of diagnostics gathered by a stage.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True when at least one is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Sorts by file and position so output reads top to bottom.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    }
}

/// Suggests the closest candidate to a misspelt name, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["partition_by", "path", "mode"];
        assert_eq!(
            did_you_mean("partiton_by", keys).as_deref(),
            Some("did you mean `partition_by`?")
        );
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn location_joins_file_pos_and_path() {
        let d = Diagnostic::error("boom")
            .in_file("p.yaml")
            .at(Some(Pos::new(3, 5)))
            .at_path("sinks.out.mode");
        assert_eq!(d.location().unwrap(), "p.yaml:3:5 (sinks.out.mode)");
        assert_eq!(d.to_string(), "p.yaml:3:5 (sinks.out.mode): boom");
    }

    #[test]
    fn every_rendering_masks_secrets() {
        crate::secrets::register("diag-s3cret value");
        let d = Diagnostic::error("cannot open https://u:diag-s3cret%20value@h/x")
            .in_file("sql/diag-s3cret value.sql")
            .at(Some(Pos::new(1, 2)))
            .with_help("is `diag-s3cret value` right?");
        for text in [d.render(false), d.to_string(), d.to_json().to_string()] {
            assert!(!crate::secrets::contains_secret(&text), "{text}");
            assert!(
                text.contains("u:***@h") && text.contains("sql/***.sql"),
                "{text}"
            );
        }
    }
}
