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
    let line = source_line(file, pos.line)?;
    // A very long line (a minified or generated file) is shown around the column only.
    let (line, col) = clip(&line, pos.col, 120);
    let num = pos.line.to_string();
    let pad = " ".repeat(num.len());
    let caret_pad = " ".repeat(col.saturating_sub(1));
    Some(format!("{pad} |\n{num} | {line}\n{pad} | {caret_pad}^\n"))
}

/// A window of at most about `width` characters of `line` around the 1-based column `col`,
/// and the column within it.
fn clip(line: &str, col: usize, width: usize) -> (String, usize) {
    let chars = line.chars().count();
    if chars <= width {
        return (line.to_string(), col);
    }
    let start = col
        .saturating_sub(width / 2)
        .min(chars.saturating_sub(width));
    let window: String = line.chars().skip(start).take(width).collect();
    let (head, shift) = if start > 0 { ("…", 1) } else { ("", 0) };
    let tail = if start + width < chars { "…" } else { "" };
    (format!("{head}{window}{tail}"), col - start + shift)
}

/// One line (1-based) of a source file. The last file read is kept with its line starts
/// (while its size and modification time stay the same), so printing many diagnostics for
/// one file reads it once.
fn source_line(file: &Path, line: usize) -> Option<String> {
    type Stamp = (PathBuf, u64, Option<std::time::SystemTime>);
    type Source = (Stamp, std::sync::Arc<(String, Vec<usize>)>);
    static LAST: std::sync::Mutex<Option<Source>> = std::sync::Mutex::new(None);
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.len() > 64 << 20 {
        return None;
    }
    let stamp = (file.to_path_buf(), meta.len(), meta.modified().ok());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let cached = last
        .as_ref()
        .filter(|(s, _)| *s == stamp)
        .map(|(_, s)| s.clone());
    let source = match cached {
        Some(s) => s,
        None => {
            let text = std::fs::read_to_string(file).ok()?;
            let starts = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            let source = std::sync::Arc::new((text, starts));
            *last = Some((stamp, source.clone()));
            source
        }
    };
    let (text, starts) = &*source;
    let start = *starts.get(line.checked_sub(1)?)?;
    if start >= text.len() {
        return None;
    }
    let end = starts.get(line).map_or(text.len(), |e| e - 1);
    Some(text.get(start..end)?.trim_end_matches('\r').to_string())
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

/// A list of names for a hint: all of them when there are few, else the first ones and the
/// count (a hint that lists twenty thousand names helps nobody, and costs a copy per error).
pub fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 20;
    let mut iter = names.into_iter();
    let shown: Vec<&str> = iter.by_ref().take(SHOWN).collect();
    let rest = iter.count();
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{}, … ({} in all)", shown.join(", "), SHOWN + rest)
    }
}

/// How many candidates a "did you mean" looks at: enough for any list of keys or names a
/// person reads, and a bound on the work when a file has a great many names and errors.
const MAX_SUGGESTION_CANDIDATES: usize = 1000;

/// Suggests the closest candidate to a misspelt name, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .take(MAX_SUGGESTION_CANDIDATES)
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// A hint for a column that is not there: the same name in another case, else a close
/// name, else `None`.
pub fn column_hint(column: &str, names: &[&str]) -> Option<String> {
    match names.iter().find(|n| n.eq_ignore_ascii_case(column)) {
        Some(n) => Some(format!(
            "did you mean `{n}`? (column names are case-sensitive)"
        )),
        None => did_you_mean(column, names.iter().copied()),
    }
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
    fn long_name_lists_are_cut() {
        assert_eq!(name_list(["a", "b"]), "a, b");
        let many: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let text = name_list(many.iter().map(String::as_str));
        assert!(
            text.starts_with("n0, n1,") && text.ends_with("n19, … (25 in all)"),
            "{text}"
        );
    }

    #[test]
    fn snippets_show_the_line_and_clip_long_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        let long = format!("v: {}x", "- ".repeat(200));
        std::fs::write(&file, format!("a: 1\r\nb: 2\n{long}\n")).unwrap();
        assert_eq!(source_line(&file, 1).as_deref(), Some("a: 1"));
        assert_eq!(source_line(&file, 2).as_deref(), Some("b: 2"));
        assert_eq!(source_line(&file, 9), None);
        let s = snippet(&file, Pos::new(3, 300)).unwrap();
        let shown = s.lines().nth(1).unwrap();
        assert!(shown.chars().count() < 140, "{shown}");
        let caret = s.lines().nth(2).unwrap().chars().position(|c| c == '^');
        assert_eq!(shown.chars().nth(caret.unwrap()), long.chars().nth(299));
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
