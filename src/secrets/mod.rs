//! Secret tracking and redaction.
//!
//! Every value a template reads through `env()` is registered here. Anything the program
//! prints or stores (diagnostics, logs, plans, run records, summaries, quarantined rows)
//! passes through [`redact`], which replaces each registered value with `***`, in whatever
//! encoding it appears: as it is, percent-encoded by a URL, JSON- or Debug-escaped, or
//! several of these at once (see [`decode`]). The registry is process-wide on purpose: a
//! secret must stay hidden whichever component ends up printing it.
//!
//! Printing itself goes through [`crate::out`], which redacts on the way out.

mod decode;

use std::borrow::Cow;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a redacted secret is shown as.
pub const MASK: &str = "***";

/// Values shorter than this are not registered: masking every `1` or `ab` in the output
/// would make it unreadable and hide nothing worth hiding.
const MIN_CHARS: usize = 3;

struct Secret {
    chars: Vec<char>,
    /// The bytes a written form of this secret can start with.
    starts: [bool; 256],
}

struct Registry {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<Secret>,
    /// The union of the secrets' `starts`: text without any of these bytes holds no secret.
    starts: [bool; 256],
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    secrets: Vec::new(),
    starts: [false; 256],
});

/// True once a secret is registered: until then, redaction is free.
static ANY: AtomicBool = AtomicBool::new(false);

/// Registers a secret value (shorter values than three characters are ignored).
pub fn register(value: &str) {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < MIN_CHARS {
        return;
    }
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if reg.secrets.iter().any(|s| s.chars == chars) {
        return;
    }
    let mut starts = [false; 256];
    starts[value.as_bytes()[0] as usize] = true;
    for b in decode::INTRODUCERS {
        starts[b as usize] = true;
    }
    for (i, on) in starts.iter().enumerate() {
        reg.starts[i] |= *on;
    }
    reg.secrets.push(Secret { chars, starts });
    reg.secrets
        .sort_by_key(|s| std::cmp::Reverse(s.chars.len()));
    ANY.store(true, Ordering::Release);
}

impl Registry {
    /// The end of the longest secret written at `start`, if any.
    fn match_at(&self, text: &str, start: usize) -> Option<usize> {
        let byte = text.as_bytes()[start] as usize;
        self.secrets
            .iter()
            .filter(|s| s.starts[byte])
            .filter_map(|s| decode::match_end(text, start, &s.chars))
            .max()
    }

    /// Every secret in `text` as byte ranges, leftmost first, longest at each place.
    fn find(&self, text: &str, first_only: bool) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            // Only ASCII bytes and lead bytes are ever marked, so `i` is a char boundary
            // whenever a match is tried.
            if self.starts[bytes[i] as usize]
                && let Some(end) = self.match_at(text, i)
            {
                found.push((i, end));
                if first_only {
                    break;
                }
                i = end;
                continue;
            }
            i += 1;
        }
        found
    }
}

fn registry() -> Option<std::sync::RwLockReadGuard<'static, Registry>> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    Some(REGISTRY.read().unwrap_or_else(|e| e.into_inner()))
}

/// True when `text` holds a registered secret, in any encoding.
pub fn contains_secret(text: &str) -> bool {
    registry().is_some_and(|reg| !reg.find(text, true).is_empty())
}

/// Replaces every registered secret in `text`, in any encoding, with [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(reg) = registry() else {
        return Cow::Borrowed(text);
    };
    let found = reg.find(text, false);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in found {
        out.push_str(&text[copied..start]);
        out.push_str(MASK);
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Redacts every string inside a JSON value, keys included. A number or boolean whose text
/// holds a secret (a var read with `env()` that parsed as a number) becomes the string
/// [`MASK`].
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        Value::Number(_) | Value::Bool(_) => {
            if contains_secret(&value.to_string()) {
                *value = Value::String(MASK.into());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                redact_json(&mut v);
                map.insert(redact(&k).into_owned(), v);
            }
        }
        Value::Null => {}
    }
}

/// A JSON value as one line of text, every secret masked: in the values, and in the text
/// as written (so a secret that only appears once escaped is caught too).
pub fn json_line(mut value: serde_json::Value) -> String {
    redact_json(&mut value);
    redact(&value.to_string()).into_owned()
}

/// A JSON value as pretty text, every secret masked (see [`json_line`]).
pub fn json_pretty(mut value: serde_json::Value) -> String {
    redact_json(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    redact(&text).into_owned()
}

#[cfg(test)]
mod tests;
