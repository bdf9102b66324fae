//! Sources, checks and sinks: the per-entry static checks.

use super::{has_glob, is_url, resolve_local};
use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::model::{Check, CheckKind, Sink, Source};
use crate::spec::source::OnBadRow;
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
    check_connection(loaded, &yaml_path, spec.connection(), diags);
    check_options(loaded, &yaml_path, spec, schema.is_some(), diags);
    let locations = match spec.path() {
        Some(p) if p.trim().is_empty() => {
            diags.push(loaded.error_at(&format!("{yaml_path}.path"), "`path` is empty"));
            return None;
        }
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

/// Settings that only make sense for some source types, or need a particular shape.
fn check_options(
    loaded: &Loaded,
    yaml_path: &str,
    spec: &SourceSpec,
    has_schema: bool,
    diags: &mut Diagnostics,
) {
    if spec.on_bad_row() != OnBadRow::Fail
        && !matches!(spec, SourceSpec::Csv(_) | SourceSpec::Json(_))
    {
        let msg = format!(
            "`on_bad_row` applies to csv and json sources; a {} source either reads or fails",
            spec.kind()
        );
        diags.push(loaded.error_at(&format!("{yaml_path}.on_bad_row"), msg));
    }
    super::options::source(loaded, yaml_path, spec, diags);
    if let SourceSpec::Inline(i) = spec
        && i.rows.is_empty()
        && !has_schema
    {
        diags.push(loaded.error_at(
            &format!("{yaml_path}.rows"),
            "an inline source without rows needs a `schema`",
        ));
    }
}

fn check_connection(
    loaded: &Loaded,
    yaml_path: &str,
    connection: Option<&str>,
    diags: &mut Diagnostics,
) {
    if let Some(c) = connection
        && !loaded.spec.connections.contains_key(c)
    {
        let d = loaded.error_at(
            &format!("{yaml_path}.connection"),
            format!("unknown connection `{c}`"),
        );
        diags.push(d.suggest(c, loaded.spec.connections.keys().map(String::as_str)));
    }
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
        if let (Some(min), Some(max)) = (r.min, r.max)
            && min > max
        {
            return Err(format!(
                "`row_count` has `min` {min} above `max` {max}: no table can pass"
            ));
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
    check_size(c)?;
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

/// A check whose SQL would nest too deeply: a very deep `expect`, or so many `not_null`
/// columns that their OR chain is.
fn check_size(c: &CheckSpec) -> Result<(), String> {
    if c.expect
        .as_deref()
        .is_some_and(super::depth::expression_too_deep)
    {
        return Err(super::depth::too_deep_message());
    }
    for cols in [&c.not_null, &c.unique].into_iter().flatten() {
        let n = cols.to_vec().len();
        if n > super::depth::MAX_SQL_DEPTH {
            return Err(format!(
                "a check lists {n} columns; at most {}",
                super::depth::MAX_SQL_DEPTH
            ));
        }
    }
    Ok(())
}

pub(super) fn sink(
    loaded: &Loaded,
    name: &str,
    spec: &SinkSpec,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Sink> {
    let yaml_path = format!("sinks.{name}");
    let (path, partition_by, mode) = (spec.path(), spec.partition_by(), spec.mode());
    let ext = format!(".{}", spec.kind());
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
    check_connection(loaded, &yaml_path, spec.connection(), diags);
    super::options::sink(loaded, &yaml_path, spec, diags);
    let lower = path.to_ascii_lowercase();
    let single_file = partition_by.is_empty()
        && (lower.ends_with(&ext)
            || (ext == ".json" && (lower.ends_with(".jsonl") || lower.ends_with(".ndjson"))));
    if single_file && mode == crate::spec::sink::SinkMode::Append {
        diags.push(
            loaded
                .error_at(
                    &format!("{yaml_path}.mode"),
                    "`append` adds part files to a folder, but this path names one file",
                )
                .with_help(format!(
                    "drop the `{ext}` extension from `path` to write a folder of parts"
                )),
        );
        ok = false;
    }
    if path.trim().is_empty() || has_glob(path) {
        diags.push(loaded.error_at(
            &format!("{yaml_path}.path"),
            "a sink path is a folder or a file name, without wildcards",
        ));
        ok = false;
    }
    let location = if is_url(path) {
        path.to_string()
    } else {
        resolve_local(&loaded.base_dir, path)
            .to_string_lossy()
            .into_owned()
    };
    ok.then(|| Sink {
        name: name.to_string(),
        from: from.to_string(),
        spec: spec.clone(),
        location,
        single_file,
        partition_by: partition_by.to_vec(),
        mode,
        yaml_path,
    })
}
