//! Test fixtures: inline rows or a file, put in place of a pipeline's source.

use std::sync::Arc;

use indexmap::IndexMap;

use crate::model::{Pipeline, Source};
use crate::source::file::{CsvOptions, FileSourceSpec, JsonOptions, LinesOptions, ParquetOptions};
use crate::source::inline::InlineSourceSpec;
use crate::spec::source::OnBadRow;
use crate::spec::{FixtureSpec, SourceSpec};

/// The pipeline with the given sources replaced by their fixtures. Problems (a fixture for
/// something that is not a source, a needed source without a fixture) go to `problems`.
pub(super) fn apply(
    p: &Pipeline,
    test: &str,
    given: &IndexMap<String, FixtureSpec>,
    needed: &[String],
    problems: &mut Vec<String>,
) -> Pipeline {
    let mut fixture = p.clone();
    for (src, f) in given {
        if !p.sources.contains_key(src) {
            let mut msg = format!("test `{test}` gives `{src}`, which is not a source");
            if let Some(h) =
                crate::diagnostic::did_you_mean(src, p.sources.keys().map(String::as_str))
            {
                msg.push_str(&format!(" ({h})"));
            }
            problems.push(msg);
            continue;
        }
        match source(p, src, f) {
            Ok(s) => {
                fixture.sources.insert(src.clone(), s);
            }
            Err(e) => problems.push(e),
        }
    }
    for n in needed.iter().filter(|n| p.sources.contains_key(*n)) {
        if !given.contains_key(n) {
            problems.push(format!(
                "test `{test}` needs source `{n}` but does not give it (add it under `given:`, or under `defaults: {{ given: ... }}` for every test)"
            ));
        }
    }
    fixture
}

/// The fixture as a source, with the original's declared schema.
fn source(p: &Pipeline, name: &str, f: &FixtureSpec) -> Result<Source, String> {
    let orig = &p.sources[name];
    let schema_spec = orig.spec.schema().cloned();
    let spec = match (&f.rows, &f.path) {
        (Some(rows), None) => SourceSpec(Arc::new(InlineSourceSpec {
            rows: rows.clone(),
            schema: schema_spec,
            description: None,
        })),
        (None, Some(path)) => {
            let format = f.format.clone().unwrap_or_else(|| format_of_path(path));
            match format.as_str() {
                "csv" => SourceSpec(Arc::new(FileSourceSpec::<CsvOptions>::at(
                    path,
                    schema_spec,
                ))),
                "json" | "jsonl" | "ndjson" => SourceSpec(Arc::new(
                    FileSourceSpec::<JsonOptions>::at(path, schema_spec),
                )),
                "parquet" => SourceSpec(Arc::new(FileSourceSpec::<ParquetOptions>::at(
                    path,
                    schema_spec,
                ))),
                "lines" | "txt" | "log" => {
                    SourceSpec(Arc::new(FileSourceSpec::<LinesOptions>::at(path, None)))
                }
                other => {
                    return Err(format!(
                        "fixture for `{name}`: unknown format `{other}` (csv, json, parquet, lines); set `format:`"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "fixture for `{name}` needs exactly one of `rows` or `path`"
            ));
        }
    };
    let locations = f
        .path
        .iter()
        .map(|pth| {
            crate::validate::resolve_local(&p.base_dir, pth)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    Ok(Source {
        name: name.to_string(),
        spec,
        schema: orig.schema.clone(),
        locations,
        on_bad_row: OnBadRow::Fail,
        yaml_path: orig.yaml_path.clone(),
    })
}

/// A fixture file's format from its extension (a compression suffix is looked through).
fn format_of_path(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    let base = [".gz", ".zst", ".bz2", ".xz"]
        .iter()
        .find_map(|c| lower.strip_suffix(c))
        .unwrap_or(&lower);
    base.rsplit('.').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        assert_eq!(format_of_path("fixtures/a.csv"), "csv");
        assert_eq!(format_of_path("fixtures/a.JSONL.gz"), "jsonl");
        assert_eq!(format_of_path("fixtures/a.parquet"), "parquet");
    }
}
