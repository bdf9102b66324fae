//! Option values checked against what the engine accepts: memory limits, single-character
//! CSV settings, NULL markers, folder extensions, and declared column types against what
//! each source format can read. Whole-number ranges are checked while deserializing
//! (`spec::range`); connectors call these helpers from their `check`, so that a value
//! `validate` accepts is a value the run can use.

use indexmap::IndexMap;

use crate::connector::CheckCx;
use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::types::{format_cannot_read, parse_type};

/// The most NULL markers a CSV source may list, and the longest one.
const MAX_NULL_VALUES: usize = 1000;
const MAX_NULL_VALUE_LEN: usize = 1000;

/// `engine:` settings that are text.
pub(super) fn engine(loaded: &Loaded, diags: &mut Diagnostics) {
    let Some(limit) = loaded
        .spec
        .engine
        .as_ref()
        .and_then(|e| e.memory_limit.as_deref())
    else {
        return;
    };
    if let Err(e) = crate::engine::parse_memory_limit(limit) {
        diags.push(loaded.error_at("engine.memory_limit", e.to_string()));
    }
}

/// A one-character CSV setting: one ASCII character, not a line break.
pub fn one_char(value: &str) -> Result<u8, String> {
    match value.as_bytes() {
        [b'\n' | b'\r'] => Err("a line break cannot be used here".into()),
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!("expected one ASCII character, found `{value}`")),
    }
}

/// Checks CSV's one-character options (`("delimiter", value)`, ...): each one ASCII
/// character, and none but the delimiter equal to the delimiter.
pub fn csv_characters(cx: &mut CheckCx<'_>, options: &[(&str, Option<&String>)]) {
    let mut chars = Vec::new();
    for (key, v) in options {
        let Some(v) = v else { continue };
        match one_char(v) {
            Ok(b) => chars.push((*key, b)),
            Err(msg) => {
                cx.error(&format!("options.{key}"), format!("`{key}`: {msg}"));
            }
        }
    }
    let delimiter = chars
        .iter()
        .find(|(k, _)| *k == "delimiter")
        .map_or(b',', |c| c.1);
    for (key, b) in &chars {
        if *key != "delimiter" && *b == delimiter {
            cx.error(
                &format!("options.{key}"),
                format!("`{key}` is the same character as the delimiter"),
            );
        }
    }
}

/// Checks a CSV source's NULL markers: at most 1000, each at most 1000 bytes.
pub fn null_values(cx: &mut CheckCx<'_>, values: &[String]) {
    if values.len() > MAX_NULL_VALUES {
        let msg = format!(
            "at most {MAX_NULL_VALUES} NULL markers, found {}",
            values.len()
        );
        cx.error("options.null_values", msg);
    }
    if let Some(i) = values.iter().position(|v| v.len() > MAX_NULL_VALUE_LEN) {
        let msg = format!("a NULL marker is at most {MAX_NULL_VALUE_LEN} bytes");
        cx.error(&format!("options.null_values[{i}]"), msg);
    }
}

/// Checks a folder source's `extension`: not empty, no `/`, no wildcards.
pub fn extension(cx: &mut CheckCx<'_>, extension: Option<&str>) {
    if let Some(ext) = extension
        && (ext.trim().is_empty() || ext.contains(['/', '\\', '*', '?', '[']))
    {
        let msg = format!(
            "`extension` is a file name ending such as `.csv` (not empty, no `/`, no wildcards), found `{ext}`"
        );
        cx.error("options.extension", msg);
    }
}

/// Checks declared types against what a source of `kind` can read; a `lines` source has
/// exactly `line: string`.
pub fn declared_types(cx: &mut CheckCx<'_>, kind: &str, schema: Option<&IndexMap<String, String>>) {
    if kind == "lines" {
        let ok = schema.is_none_or(|s| {
            s.len() == 1
                && s.get("line").and_then(|t| parse_type(t))
                    == Some(datafusion::arrow::datatypes::DataType::Utf8)
        });
        if !ok {
            cx.error(
                "schema",
                "a `lines` source has one column, `line: string`; parse it in a transform",
            );
        }
        return;
    }
    for (col, ty) in schema.into_iter().flatten() {
        let Some(reason) = parse_type(ty).and_then(|dt| format_cannot_read(kind, &dt)) else {
            continue;
        };
        let d = cx.error(
            &format!("schema.{col}"),
            format!("column `{col}` is declared `{ty}`, which a {kind} source cannot read"),
        );
        *d = d.clone().with_help(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::one_char;

    #[test]
    fn one_character_settings() {
        assert_eq!(one_char(";"), Ok(b';'));
        assert_eq!(one_char("\t"), Ok(b'\t'));
        for bad in ["", "ab", "é", "\n", "\r"] {
            assert!(one_char(bad).is_err(), "{bad:?}");
        }
    }
}
