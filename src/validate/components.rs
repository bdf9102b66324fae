//! Sources, checks and sinks: the per-entry static checks.

use super::{is_url, resolve_local};
use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::model::{Check, CheckKind, Sink, Source};
use crate::spec::{CheckSpec, SinkSpec, SourceSpec};
use crate::types::{TYPE_NAMES, schema_from_spec};

pub(super) fn source(
    loaded: &Loaded,
    name: &str,
    spec: &SourceSpec,
    diags: &mut Diagnostics,
) -> Option<Source> {
    let yaml_path = format!("sources.{name}");
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
        None => None,
    };
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
    Some(Source {
        name: name.to_string(),
        spec: spec.clone(),
        schema,
        locations,
        on_bad_row: spec.on_bad_row(),
        yaml_path,
    })
}

pub(super) fn checks(loaded: &Loaded, relations: &[&str], diags: &mut Diagnostics) -> Vec<Check> {
    let mut out = Vec::new();
    for (target, list) in &loaded.spec.checks {
        if !relations.contains(&target.as_str()) {
            let d = loaded.error_at_key(
                &format!("checks.{target}"),
                format!("checks on `{target}`, which is neither a source nor a transform"),
            );
            diags.push(d.suggest(target, relations.iter().copied()));
            continue;
        }
        for (i, c) in list.iter().enumerate() {
            let yaml_path = format!("checks.{target}[{i}]");
            match check_kind(c) {
                Ok((kind, default_name)) => out.push(Check {
                    target: target.clone(),
                    name: c.name.clone().unwrap_or(default_name),
                    kind,
                    severity: c.severity,
                    yaml_path,
                }),
                Err(msg) => diags.push(loaded.error_at(&yaml_path, msg)),
            }
        }
    }
    out
}

fn check_kind(c: &CheckSpec) -> Result<(CheckKind, String), String> {
    let mut kinds = Vec::new();
    if let Some(cols) = &c.not_null {
        let cols = cols.to_vec();
        kinds.push((
            CheckKind::NotNull(cols.clone()),
            format!("not_null({})", cols.join(", ")),
        ));
    }
    if let Some(cols) = &c.unique {
        let cols = cols.to_vec();
        kinds.push((
            CheckKind::Unique(cols.clone()),
            format!("unique({})", cols.join(", ")),
        ));
    }
    if let Some(a) = &c.accepted_values {
        kinds.push((
            CheckKind::AcceptedValues {
                column: a.column.clone(),
                values: a.values.clone(),
            },
            format!("accepted_values({})", a.column),
        ));
    }
    if let Some(r) = &c.row_count {
        if r.min.is_none() && r.max.is_none() {
            return Err("`row_count` needs `min`, `max` or both".into());
        }
        let name = format!(
            "row_count({}..{})",
            r.min.map(|m| m.to_string()).unwrap_or_default(),
            r.max.map(|m| m.to_string()).unwrap_or_default()
        );
        kinds.push((
            CheckKind::RowCount {
                min: r.min,
                max: r.max,
            },
            name,
        ));
    }
    if let Some(e) = &c.expect {
        kinds.push((
            CheckKind::Expect(e.clone()),
            format!("expect({})", e.trim()),
        ));
    }
    match kinds.len() {
        1 => Ok(kinds.remove(0)),
        0 => Err("a check needs one of `not_null`, `unique`, `accepted_values`, `row_count`, `expect`".into()),
        _ => Err("a check holds exactly one of `not_null`, `unique`, `accepted_values`, `row_count`, `expect`; write several list items".into()),
    }
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
