//! Sources and sinks: the per-entry static checks.

use super::{is_url, resolve_local};
use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::model::{Check, CheckKind, Sink, Source};
use crate::spec::{SinkSpec, SourceSpec};
use crate::types::{TYPE_NAMES, schema_from_spec};

pub(super) fn source(
    loaded: &Loaded,
    name: &str,
    spec: &SourceSpec,
    diags: &mut Diagnostics,
) -> Option<(Source, Vec<Check>)> {
    let yaml_path = format!("sources.{name}");
    let mut checks = Vec::new();
    let schema = match spec.schema().map(schema_from_spec) {
        Some(Ok(schema)) => Some(schema),
        Some(Err((col, ty))) => {
            let d = loaded.error_at(
                &format!("{yaml_path}.schema.{col}"),
                format!("unknown type `{ty}` for column `{col}`"),
            );
            diags.push(d.with_help(format!("types are: {TYPE_NAMES}")));
            return None;
        }
        None => match spec.schema_file() {
            Some(file) => {
                let key = format!("{yaml_path}.schema_file");
                let path = resolve_local(&loaded.base_dir, file);
                match crate::source::file::jsonschema::load(&path) {
                    Ok(js) => {
                        checks = enum_checks(name, &key, js.enums);
                        Some(js.schema)
                    }
                    Err(e) => {
                        diags.push(loaded.error_at(&key, e.to_string()));
                        return None;
                    }
                }
            }
            None => None,
        },
    };
    if let Some(schema) = &schema
        && !nested_fits(loaded, &yaml_path, spec, schema, diags)
    {
        return None;
    }
    let before = diags.error_count();
    spec.check(&mut crate::connector::CheckCx {
        loaded,
        yaml_path: &yaml_path,
        diags,
    });
    if diags.error_count() > before {
        return None;
    }
    let locations = match spec.path() {
        Some(p) if is_url(p) => vec![p.to_string()],
        Some(p) => vec![
            resolve_local(&loaded.base_dir, p)
                .to_string_lossy()
                .into_owned(),
        ],
        None => Vec::new(),
    };
    Some((
        Source {
            name: name.to_string(),
            spec: spec.clone(),
            schema,
            locations,
            on_bad_row: spec.on_bad_row(),
            yaml_path,
        },
        checks,
    ))
}

/// A JSON Schema `enum` on a column: an accepted-values check on the source.
fn enum_checks(
    source: &str,
    yaml_path: &str,
    enums: Vec<(String, Vec<serde_json::Value>)>,
) -> Vec<Check> {
    enums
        .into_iter()
        .map(|(column, values)| Check {
            target: source.to_string(),
            name: format!("accepted_values({column})"),
            // Given when the checks are gathered (unique in the pipeline).
            file_name: String::new(),
            kind: CheckKind::AcceptedValues { column, values },
            severity: crate::spec::CheckSeverity::Error,
            filter: None,
            store_failures: false,
            reads: Vec::new(),
            yaml_path: yaml_path.to_string(),
        })
        .collect()
}

/// Nested types (struct, array, map) only where the format can produce them: not in CSV,
/// whose fields are text.
fn nested_fits(
    loaded: &Loaded,
    yaml_path: &str,
    spec: &SourceSpec,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    diags: &mut Diagnostics,
) -> bool {
    if spec.kind() != "csv" {
        return true;
    }
    let mut fits = true;
    for f in schema.fields().iter().filter(|f| f.data_type().is_nested()) {
        let key = match spec.schema_file() {
            Some(_) => format!("{yaml_path}.schema_file"),
            None => format!("{yaml_path}.schema.{}", f.name()),
        };
        let d = loaded.error_at(
            &key,
            format!(
                "column `{}`: a csv source cannot hold `{}`: CSV fields are text",
                f.name(),
                crate::types::sql_name(f.data_type())
            ),
        );
        diags.push(d.with_help(
            "read the column as `string` and take it apart in SQL, or read the data as json or parquet",
        ));
        fits = false;
    }
    fits
}

pub(super) fn sink(
    loaded: &Loaded,
    name: &str,
    spec: &SinkSpec,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Sink> {
    let yaml_path = format!("sinks.{name}");
    let from = spec.from();
    let mut ok = true;
    if !relations.contains(&from) {
        let d = loaded.error_at(
            &format!("{yaml_path}.from"),
            format!("sink `{name}` reads `{from}`, which is neither a source nor a transform"),
        );
        diags.push(d.suggest(from, relations.iter().copied()));
        ok = false;
    }
    let before = diags.error_count();
    spec.check(&mut crate::connector::CheckCx {
        loaded,
        yaml_path: &yaml_path,
        diags,
    });
    ok &= diags.error_count() == before;
    let (location, single_file) = match spec.path() {
        Some(path) if is_url(path) => (path.to_string(), single_file_path(spec, path)),
        Some(path) => (
            resolve_local(&loaded.base_dir, path)
                .to_string_lossy()
                .into_owned(),
            single_file_path(spec, path),
        ),
        None => (String::new(), false),
    };
    let mut sink = Sink {
        name: name.to_string(),
        from: from.to_string(),
        spec: spec.clone(),
        location,
        single_file,
        partition_by: spec.partition_by().to_vec(),
        mode: spec.mode(),
        replace_existing: spec.replace_existing(),
        yaml_path,
    };
    if spec.path().is_none() {
        sink.location = spec.describe_target(&sink);
    }
    ok.then_some(sink)
}

/// True when a file sink's path names one file (the format's extension, no partitions).
fn single_file_path(spec: &SinkSpec, path: &str) -> bool {
    crate::sink::file::single_file_path(spec.kind(), path, !spec.partition_by().is_empty())
}
