//! Secret tracking and redaction.
//!
//! Every value a template reads through `env()` is registered here. Anything the program
//! prints or stores (diagnostics, logs, plans, run records, summaries) passes through
//! [`redact`], which replaces each registered value with `***`. The registry is process-wide
//! on purpose: a secret must stay hidden whichever component ends up printing it.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a redacted secret is shown as.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value. Very short values are not registered: masking every `1` or `a`
/// in the output would make it unreadable and hide nothing worth hiding.
pub fn register(value: &str) {
    if value.chars().count() < 3 {
        return;
    }
    let mut guard = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !guard.iter().any(|s| s == value) {
        guard.push(value.to_string());
        // Longest first, so a secret that contains another is masked whole.
        guard.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// True when `text` contains a registered secret.
pub fn contains_secret(text: &str) -> bool {
    let guard = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    guard.iter().any(|s| text.contains(s.as_str()))
}

/// Replaces every registered secret in `text` with [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let guard = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !guard.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in guard.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// Redacts every string inside a JSON value, keys included.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                redact_json(&mut v);
                map.insert(redact(&k).into_owned(), v);
            }
        }
        _ => {}
    }
}

/// A `tracing` writer that redacts secrets before they reach standard error.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values_everywhere() {
        register("s3cr3t-token-value");
        assert_eq!(
            redact("url=https://u:s3cr3t-token-value@h"),
            "url=https://u:***@h"
        );
        let mut v = serde_json::json!({"a": ["x s3cr3t-token-value"], "s3cr3t-token-value": 1});
        redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x ***"], "***": 1}));
        assert!(contains_secret("..s3cr3t-token-value.."));
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
