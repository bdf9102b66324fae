//! Option values checked against what the engine accepts: memory limits, single-character
//! CSV settings, NULL markers, folder extensions, Parquet compression, row-count bounds, and
//! declared column types against what each source format can read. Whole-number ranges are
//! checked while deserializing (`spec::range`); this is the rest, so that a value `validate`
//! accepts is a value the run can use.

use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::spec::sink::parquet_compression;
use crate::spec::{SinkSpec, SourceSpec};
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
fn one_char(value: &str) -> Result<u8, String> {
    match value.as_bytes() {
        [b'\n' | b'\r'] => Err("a line break cannot be used here".into()),
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!("expected one ASCII character, found `{value}`")),
    }
}

/// Checks the options of a source: CSV characters, NULL markers, extensions, and that its
/// declared types are ones its format can read.
pub(super) fn source(loaded: &Loaded, yaml_path: &str, spec: &SourceSpec, diags: &mut Diagnostics) {
    let at = |key: &str| format!("{yaml_path}.options.{key}");
    let extension = match spec {
        SourceSpec::Csv(c) => {
            csv_chars(loaded, yaml_path, &c.options, diags);
            let nulls = &c.options.null_values;
            if nulls.len() > MAX_NULL_VALUES {
                let msg = format!(
                    "at most {MAX_NULL_VALUES} NULL markers, found {}",
                    nulls.len()
                );
                diags.push(loaded.error_at(&at("null_values"), msg));
            }
            if let Some(i) = nulls.iter().position(|v| v.len() > MAX_NULL_VALUE_LEN) {
                let msg = format!("a NULL marker is at most {MAX_NULL_VALUE_LEN} bytes");
                diags.push(loaded.error_at(&format!("{}[{i}]", at("null_values")), msg));
            }
            c.options.extension.as_deref()
        }
        SourceSpec::Json(j) => j.options.extension.as_deref(),
        _ => None,
    };
    if let Some(ext) = extension
        && (ext.trim().is_empty() || ext.contains(['/', '\\', '*', '?', '[']))
    {
        let msg = format!(
            "`extension` is a file name ending such as `.csv` (not empty, no `/`, no wildcards), found `{ext}`"
        );
        diags.push(loaded.error_at(&at("extension"), msg));
    }
    declared_types(loaded, yaml_path, spec, diags);
}

fn csv_chars(
    loaded: &Loaded,
    yaml_path: &str,
    o: &crate::spec::source::CsvOptions,
    diags: &mut Diagnostics,
) {
    let mut chars = Vec::new();
    for (key, v) in [
        ("delimiter", &o.delimiter),
        ("quote", &o.quote),
        ("escape", &o.escape),
        ("comment", &o.comment),
    ] {
        let Some(v) = v else { continue };
        match one_char(v) {
            Ok(b) => chars.push((key, b)),
            Err(msg) => {
                let msg = format!("`{key}`: {msg}");
                diags.push(loaded.error_at(&format!("{yaml_path}.options.{key}"), msg));
            }
        }
    }
    let delimiter = chars
        .iter()
        .find(|(k, _)| *k == "delimiter")
        .map_or(b',', |c| c.1);
    for (key, b) in &chars {
        if *key != "delimiter" && *b == delimiter {
            let msg = format!("`{key}` is the same character as the delimiter");
            diags.push(loaded.error_at(&format!("{yaml_path}.options.{key}"), msg));
        }
    }
}

fn declared_types(loaded: &Loaded, yaml_path: &str, spec: &SourceSpec, diags: &mut Diagnostics) {
    if let SourceSpec::Lines(l) = spec {
        let ok = l.schema.as_ref().is_none_or(|s| {
            s.len() == 1
                && s.get("line").and_then(|t| parse_type(t))
                    == Some(datafusion::arrow::datatypes::DataType::Utf8)
        });
        if !ok {
            let msg = "a `lines` source has one column, `line: string`; parse it in a transform";
            diags.push(loaded.error_at(&format!("{yaml_path}.schema"), msg));
        }
        return;
    }
    for (col, ty) in spec.schema().into_iter().flatten() {
        let Some(reason) = parse_type(ty).and_then(|dt| format_cannot_read(spec.kind(), &dt))
        else {
            continue;
        };
        let d = loaded.error_at(
            &format!("{yaml_path}.schema.{col}"),
            format!(
                "column `{col}` is declared `{ty}`, which a {} source cannot read",
                spec.kind()
            ),
        );
        diags.push(d.with_help(reason));
    }
}

/// Checks the options of a file sink.
pub(super) fn sink(loaded: &Loaded, yaml_path: &str, spec: &SinkSpec, diags: &mut Diagnostics) {
    match spec {
        SinkSpec::Parquet(p) => {
            if let Some(c) = &p.options.compression
                && let Err(e) = parquet_compression(c)
            {
                let path = format!("{yaml_path}.options.compression");
                diags.push(loaded.error_at(&path, e.to_string()));
            }
        }
        SinkSpec::Csv(c) => {
            if let Some(Err(msg)) = c.options.delimiter.as_deref().map(one_char) {
                let path = format!("{yaml_path}.options.delimiter");
                diags.push(loaded.error_at(&path, format!("`delimiter`: {msg}")));
            }
        }
        SinkSpec::Json(_) => {}
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
