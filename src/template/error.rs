//! Template failures: minijinja's errors in the user's words, and the limits' own.

use minijinja::ErrorKind;

use super::limits::{MAX_FUEL, MAX_OUTPUT, size_text};
use super::{Templater, VALUE_SLOT};
use crate::diagnostic::{Diagnostic, did_you_mean};

/// A template failure, before it is placed in the file.
#[derive(Debug, Clone)]
pub struct TemplateError {
    /// The reason, in the user's words.
    pub message: String,
    /// 1-based line inside the template text, if known.
    pub line: Option<usize>,
    /// Byte offset inside the template text where the problem is, if known.
    pub offset: Option<usize>,
    /// A hint.
    pub help: Option<String>,
    /// True when the template was not rendered because the pipeline's templates used up
    /// their total budget; every later template fails the same way, so report it once.
    pub exhausted: bool,
}

impl Templater {
    /// Turns a minijinja error on `text` into a template error with a hint.
    pub(super) fn convert(&self, err: minijinja::Error, text: &str) -> TemplateError {
        let mut help = None;
        let message = match err.kind() {
            ErrorKind::UndefinedError => {
                let unknown: Vec<String> = self
                    .referenced_names(text)
                    .into_iter()
                    .filter(|n| n != VALUE_SLOT && !self.has_name(n))
                    .collect();
                match unknown.first() {
                    Some(name) => {
                        let known = self.known_names();
                        help = did_you_mean(name, known.iter().map(String::as_str)).or_else(|| {
                            Some("define it under `vars:` or pass `--var name=value`".into())
                        });
                        format!("undefined variable `{name}` in template")
                    }
                    None => format!(
                        "undefined value in template: {}",
                        err.detail().unwrap_or("an attribute or item is missing")
                    ),
                }
            }
            ErrorKind::SyntaxError => {
                format!(
                    "template syntax error: {}",
                    err.detail().unwrap_or("invalid syntax")
                )
            }
            ErrorKind::UnknownFilter | ErrorKind::UnknownFunction => {
                help = Some(
                    "available: env(), date_add, date_format, month_start, month_end, sql_quote, sql_ident"
                        .into(),
                );
                format!(
                    "template error: {}",
                    err.detail().unwrap_or("unknown filter or function")
                )
            }
            _ => format!(
                "template error: {}",
                err.detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.to_string())
            ),
        };
        TemplateError {
            message,
            line: err.line(),
            offset: err.range().map(|r| r.start),
            help,
            exhausted: false,
        }
    }
}

impl TemplateError {
    /// A limit was hit while rendering this value.
    pub(super) fn limit(message: String) -> Self {
        Self {
            message,
            line: None,
            offset: None,
            help: Some(format!(
                "templates are for values, not computation: one value may run {MAX_FUEL} instructions and render {}",
                size_text(MAX_OUTPUT)
            )),
            exhausted: false,
        }
    }

    /// The pipeline's templates used up their total budget.
    pub(super) fn exhausted(message: String) -> Self {
        Self {
            message,
            line: None,
            offset: None,
            help: None,
            exhausted: true,
        }
    }

    /// Turns the error into a diagnostic.
    pub fn into_diagnostic(self) -> Diagnostic {
        let d = Diagnostic::error(self.message);
        match self.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    }
}
