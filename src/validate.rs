//! Static validation: from a loaded spec to a [`Pipeline`], or every problem at once.
//!
//! Checks names (unique across sources, transforms and sinks), references (SQL tables,
//! `from:`, check targets, connections), cycles, paths, schema types and sink settings. SQL is
//! parsed here to find dependencies; planning it against real schemas is `plan`'s job.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::Spanned;
use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::load::Loaded;
use crate::model::{Check, CheckKind, Pipeline, Sink, Source, SqlOrigin, Transform};
use crate::spec::source::OnBadRow;
use crate::spec::{CheckSpec, SinkSpec, SourceSpec};
use crate::types::{TYPE_NAMES, schema_from_spec};
use crate::yaml::{self, Kind, Style};

/// Validates a loaded pipeline.
pub fn validate(loaded: &Loaded) -> Result<Pipeline, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spec = &loaded.spec;
    check_unique_names(loaded, &mut diags);
    let sources: IndexMap<String, Source> = spec
        .sources
        .iter()
        .filter_map(|(name, s)| source(loaded, name, s, &mut diags).map(|s| (name.clone(), s)))
        .collect();
    let relations: Vec<&str> = spec
        .sources
        .keys()
        .chain(spec.transforms.keys())
        .map(String::as_str)
        .collect();
    let mut transforms = IndexMap::new();
    for (name, t) in &spec.transforms {
        if let Some(tr) = transform(loaded, name, t, &relations, &mut diags) {
            transforms.insert(name.clone(), tr);
        }
    }
    let transforms = order_transforms(loaded, transforms, &mut diags);
    let checks = checks(loaded, &relations, &mut diags);
    let sinks: IndexMap<String, Sink> = spec
        .sinks
        .iter()
        .filter_map(|(name, s)| {
            sink(loaded, name, s, &relations, &mut diags).map(|s| (name.clone(), s))
        })
        .collect();
    for (name, c) in &spec.connections {
        if !["postgres", "mysql", "s3", "gcs", "azure", "http"].contains(&c.kind.as_str()) {
            diags.push(loaded.error_at(
                &format!("connections.{name}.type"),
                format!("unknown connection type `{}`", c.kind),
            ));
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let state_dir = std::env::var_os("ETL_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            spec.state
                .as_ref()
                .and_then(|s| s.dir.as_deref())
                .map(|d| resolve_local(&loaded.base_dir, d))
        })
        .unwrap_or_else(|| loaded.base_dir.join(".etl"));
    Ok(Pipeline {
        name: loaded.name.clone(),
        description: spec.description.clone(),
        file: loaded.file.clone(),
        base_dir: loaded.base_dir.clone(),
        state_dir,
        vars: loaded.vars.clone(),
        connections: spec.connections.clone(),
        sources,
        transforms,
        checks,
        sinks,
        tests: spec.tests.clone(),
        engine: spec.engine.clone().unwrap_or_default(),
        places: places(&loaded.root),
    })
}

fn check_unique_names(loaded: &Loaded, diags: &mut Diagnostics) {
    let spec = &loaded.spec;
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let all = spec
        .sources
        .keys()
        .map(|k| ("sources", k))
        .chain(spec.transforms.keys().map(|k| ("transforms", k)))
        .chain(spec.sinks.keys().map(|k| ("sinks", k)));
    for (section, name) in all {
        if let Some(first) = seen.insert(name, section) {
            diags.push(
                loaded
                    .error_at_key(
                        &format!("{section}.{name}"),
                        format!(
                            "the name `{name}` is used twice (in `{first}` and in `{section}`)"
                        ),
                    )
                    .with_help(
                        "sources, transforms and sinks share one namespace; rename one of them",
                    ),
            );
        }
    }
}

/// Makes a local path absolute against the pipeline's folder.
pub fn resolve_local(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// True for object-store and HTTP URLs.
pub fn is_url(p: &str) -> bool {
    [
        "s3://",
        "s3a://",
        "gs://",
        "gcs://",
        "az://",
        "abfs://",
        "abfss://",
        "azure://",
        "http://",
        "https://",
        "file://",
        "memory://",
    ]
    .iter()
    .any(|s| p.starts_with(s))
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

fn source(
    loaded: &Loaded,
    name: &str,
    spec: &SourceSpec,
    diags: &mut Diagnostics,
) -> Option<Source> {
    let yaml_path = format!("sources.{name}");
    let schema = match spec.schema() {
        Some(s) => match schema_from_spec(s) {
            Ok(schema) => Some(schema),
            Err((col, ty)) => {
                diags.push(
                    loaded
                        .error_at(
                            &format!("{yaml_path}.schema.{col}"),
                            format!("unknown type `{ty}` for column `{col}`"),
                        )
                        .with_help(format!("types are: {TYPE_NAMES}")),
                );
                return None;
            }
        },
        None => None,
    };
    let (path, on_bad_row, connection) = match spec {
        SourceSpec::Csv(s) => (Some(&s.path), s.on_bad_row, &s.connection),
        SourceSpec::Json(s) => (Some(&s.path), s.on_bad_row, &s.connection),
        SourceSpec::Parquet(s) => (Some(&s.path), s.on_bad_row, &s.connection),
        SourceSpec::Avro(s) => (Some(&s.path), s.on_bad_row, &s.connection),
        SourceSpec::Lines(s) => (Some(&s.path), s.on_bad_row, &s.connection),
        SourceSpec::Inline(_) => (None, OnBadRow::Fail, &None),
    };
    if on_bad_row != OnBadRow::Fail {
        diags.push(loaded.error_at(
            &format!("{yaml_path}.on_bad_row"),
            format!(
                "`on_bad_row: {}` is not available in this version of etl; bad rows stop the run",
                match on_bad_row {
                    OnBadRow::Skip => "skip",
                    _ => "quarantine",
                }
            ),
        ));
    }
    check_connection(loaded, &yaml_path, connection.as_deref(), diags);
    if let SourceSpec::Csv(c) = spec {
        for (key, v) in [
            ("delimiter", &c.options.delimiter),
            ("quote", &c.options.quote),
            ("escape", &c.options.escape),
            ("comment", &c.options.comment),
        ] {
            if let Some(v) = v
                && v.len() != 1
            {
                diags.push(loaded.error_at(
                    &format!("{yaml_path}.options.{key}"),
                    format!("`{key}` is one ASCII character, found `{v}`"),
                ));
            }
        }
    }
    if let SourceSpec::Inline(i) = spec
        && i.rows.is_empty()
        && schema.is_none()
    {
        diags.push(loaded.error_at(
            &format!("{yaml_path}.rows"),
            "an inline source without rows needs a `schema`",
        ));
    }
    let locations = match path {
        Some(p) if p.trim().is_empty() => {
            diags.push(loaded.error_at(&format!("{yaml_path}.path"), "`path` is empty"));
            return None;
        }
        Some(p) if is_url(p) => vec![p.clone()],
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
        on_bad_row,
        yaml_path,
    })
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
        let mut d = loaded.error_at(
            &format!("{yaml_path}.connection"),
            format!("unknown connection `{c}`"),
        );
        if let Some(h) = did_you_mean(c, loaded.spec.connections.keys().map(String::as_str)) {
            d = d.with_help(h);
        }
        diags.push(d);
    }
}

/// Parses one SQL statement; on failure, a diagnostic placed in the file.
pub fn parse_sql(sql: &str, origin: &SqlOrigin) -> Result<Statement, Diagnostic> {
    let placed = |msg: String| {
        let pos = sql_error_pos(&msg).map(|(l, c)| origin.map(l, c));
        let msg = msg
            .trim_start_matches("SQL error: ")
            .trim_start_matches("ParserError(\"")
            .trim_end_matches("\")")
            .to_string();
        let msg = strip_sql_pos(&msg);
        Diagnostic::error(format!("SQL syntax error: {msg}"))
            .in_file(&origin.file)
            .at(pos.or(Some(origin.map(1, 1))))
            .at_path(origin.yaml_path.clone().unwrap_or_default())
    };
    let mut parser = DFParserBuilder::new(sql)
        .build()
        .map_err(|e| placed(e.to_string()))?;
    let mut statements = parser
        .parse_statements()
        .map_err(|e| placed(e.to_string()))?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(s), true) => Ok(s),
        (None, _) => Err(Diagnostic::error("the SQL is empty")
            .in_file(&origin.file)
            .at(Some(origin.map(1, 1)))
            .at_path(origin.yaml_path.clone().unwrap_or_default())),
        (Some(_), false) => Err(Diagnostic::error(
            "a transform holds exactly one SQL statement (a query); found several",
        )
        .in_file(&origin.file)
        .at(Some(origin.map(1, 1)))
        .at_path(origin.yaml_path.clone().unwrap_or_default())),
    }
}

/// Finds `Line: L, Column: C` in an SQL parser message.
pub fn sql_error_pos(msg: &str) -> Option<(usize, usize)> {
    let i = msg.find("Line: ")?;
    let rest = &msg[i + 6..];
    let (line, rest) = rest.split_once(',')?;
    let col_start = rest.find("Column: ")? + 8;
    let col: String = rest[col_start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

fn strip_sql_pos(msg: &str) -> String {
    match msg.find(" at Line: ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Tables an SQL statement reads, with the place of each mention (CTE names excluded).
pub fn table_refs(stmt: &Statement) -> Vec<(String, Option<(usize, usize)>)> {
    let (refs, _) = match datafusion::sql::resolve::resolve_table_references(stmt, true) {
        Ok(r) => r,
        Err(_) => return Vec::new(),
    };
    let names: Vec<String> = refs.iter().map(|r| r.table().to_string()).collect();
    let mut spans: HashMap<String, (usize, usize)> = HashMap::new();
    if let Statement::Statement(s) = stmt {
        let _ = datafusion::sql::sqlparser::ast::visit_relations(s.as_ref(), |obj| {
            let span = obj.span();
            if let Some(last) = obj.0.last() {
                let key = match last.as_ident() {
                    Some(id) if id.quote_style.is_some() => id.value.clone(),
                    Some(id) => id.value.to_lowercase(),
                    None => last.to_string(),
                };
                spans
                    .entry(key)
                    .or_insert((span.start.line as usize, span.start.column as usize));
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let mut out: Vec<(String, Option<(usize, usize)>)> = Vec::new();
    for n in names {
        if !out.iter().any(|(o, _)| o == &n) {
            let pos = spans.get(&n).copied();
            out.push((n, pos));
        }
    }
    out
}

/// Where an SQL value sits in the pipeline file.
fn origin_in_yaml(loaded: &Loaded, path: &str) -> SqlOrigin {
    let node = yaml::lookup(&loaded.root, path);
    let (line, col, indent) = match node {
        Some(n) => match &n.kind {
            Kind::Scalar(_, Style::Literal | Style::Folded) => {
                (n.text_pos.line, n.text_pos.col, n.indent)
            }
            _ => (n.text_pos.line, n.text_pos.col, 0),
        },
        None => (1, 1, 0),
    };
    SqlOrigin {
        file: loaded.file.clone(),
        yaml_path: Some(path.to_string()),
        line,
        col,
        indent,
    }
}

fn transform(
    loaded: &Loaded,
    name: &str,
    spec: &crate::spec::TransformSpec,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Transform> {
    let yaml_path = format!("transforms.{name}");
    let (sql, origin) = match (&spec.sql, &spec.sql_file) {
        (Some(sql), None) => (
            sql.clone(),
            origin_in_yaml(loaded, &format!("{yaml_path}.sql")),
        ),
        (None, Some(file)) => {
            let path = resolve_local(&loaded.base_dir, file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(loaded.error_at(
                        &format!("{yaml_path}.sql_file"),
                        format!("cannot read SQL file {}: {e}", path.display()),
                    ));
                    return None;
                }
            };
            let rendered = match loaded.templater.render(&text) {
                Ok(r) => r,
                Err(e) => {
                    let line = e.line.unwrap_or(1);
                    diags.push(
                        e.into_diagnostic()
                            .in_file(&path)
                            .at(Some(Pos::new(line, 1))),
                    );
                    return None;
                }
            };
            (
                rendered,
                SqlOrigin {
                    file: path,
                    yaml_path: None,
                    line: 1,
                    col: 1,
                    indent: 0,
                },
            )
        }
        _ => {
            diags.push(loaded.error_at_key(
                &yaml_path,
                "a transform has exactly one of `sql` or `sql_file`",
            ));
            return None;
        }
    };
    let stmt = match parse_sql(&sql, &origin) {
        Ok(s) => s,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let mut deps = Vec::new();
    let mut ok = true;
    for (table, pos) in table_refs(&stmt) {
        if table == name {
            diags.push(
                Diagnostic::error(format!("transform `{name}` reads itself"))
                    .in_file(&origin.file)
                    .at(pos.map(|(l, c)| origin.map(l, c)))
                    .at_path(origin.yaml_path.clone().unwrap_or_default()),
            );
            ok = false;
        } else if relations.contains(&table.as_str()) {
            deps.push(table);
        } else {
            let mut d = Diagnostic::error(format!("unknown table `{table}` in transform `{name}`"))
                .in_file(&origin.file)
                .at(pos
                    .map(|(l, c)| origin.map(l, c))
                    .or(Some(origin.map(1, 1))))
                .at_path(origin.yaml_path.clone().unwrap_or_default());
            d = d.with_help(
                did_you_mean(&table, relations.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "SQL can read the pipeline's sources and transforms: {}",
                        relations.join(", ")
                    )
                }),
            );
            diags.push(d);
            ok = false;
        }
    }
    ok.then(|| Transform {
        name: name.to_string(),
        sql,
        origin,
        deps,
    })
}

/// Orders transforms so each comes after what it reads; reports cycles.
fn order_transforms(
    loaded: &Loaded,
    transforms: IndexMap<String, Transform>,
    diags: &mut Diagnostics,
) -> IndexMap<String, Transform> {
    let mut ordered: IndexMap<String, Transform> = IndexMap::new();
    let mut pending: Vec<&Transform> = transforms.values().collect();
    while !pending.is_empty() {
        let (ready, blocked): (Vec<&Transform>, Vec<&Transform>) =
            pending.into_iter().partition(|t| {
                t.deps
                    .iter()
                    .all(|d| ordered.contains_key(d) || !transforms.contains_key(d))
            });
        if ready.is_empty() {
            let cycle = find_cycle(&blocked);
            let first = &cycle[0];
            diags.push(
                loaded
                    .error_at_key(
                        &format!("transforms.{first}"),
                        format!(
                            "transforms depend on each other in a cycle: {}",
                            cycle.join(" → ")
                        ),
                    )
                    .with_help(
                        "a transform cannot read, directly or not, a transform that reads it",
                    ),
            );
            break;
        }
        for t in ready {
            ordered.insert(t.name.clone(), t.clone());
        }
        pending = blocked;
    }
    ordered
}

fn find_cycle(blocked: &[&Transform]) -> Vec<String> {
    let by_name: HashMap<&str, &Transform> =
        blocked.iter().map(|t| (t.name.as_str(), *t)).collect();
    let mut path: Vec<String> = vec![blocked[0].name.clone()];
    let mut seen = HashSet::new();
    loop {
        let cur = by_name[path.last().map(String::as_str).unwrap_or_default()];
        let Some(next) = cur.deps.iter().find(|d| by_name.contains_key(d.as_str())) else {
            return path;
        };
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut cycle = path[i..].to_vec();
            cycle.push(next.clone());
            return cycle;
        }
        if !seen.insert(next.clone()) {
            return path;
        }
        path.push(next.clone());
    }
}

fn checks(loaded: &Loaded, relations: &[&str], diags: &mut Diagnostics) -> Vec<Check> {
    let mut out = Vec::new();
    for (target, list) in &loaded.spec.checks {
        if !relations.contains(&target.as_str()) {
            let mut d = loaded.error_at_key(
                &format!("checks.{target}"),
                format!("checks on `{target}`, which is neither a source nor a transform"),
            );
            if let Some(h) = did_you_mean(target, relations.iter().copied()) {
                d = d.with_help(h);
            }
            diags.push(d);
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

fn sink(
    loaded: &Loaded,
    name: &str,
    spec: &SinkSpec,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Sink> {
    let yaml_path = format!("sinks.{name}");
    let (path, partition_by, mode, connection, ext) = match spec {
        SinkSpec::Parquet(s) => (&s.path, &s.partition_by, s.mode, &s.connection, ".parquet"),
        SinkSpec::Csv(s) => (&s.path, &s.partition_by, s.mode, &s.connection, ".csv"),
        SinkSpec::Json(s) => (&s.path, &s.partition_by, s.mode, &s.connection, ".json"),
    };
    let from = spec.from();
    let mut ok = true;
    if !relations.contains(&from) {
        let mut d = loaded.error_at(
            &format!("{yaml_path}.from"),
            format!("sink `{name}` reads `{from}`, which is neither a source nor a transform"),
        );
        if let Some(h) = did_you_mean(from, relations.iter().copied()) {
            d = d.with_help(h);
        }
        diags.push(d);
        ok = false;
    }
    check_connection(loaded, &yaml_path, connection.as_deref(), diags);
    let lower = path.to_ascii_lowercase();
    let single_file = partition_by.is_empty()
        && (lower.ends_with(ext)
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
        path.clone()
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
        partition_by: partition_by.clone(),
        mode,
        yaml_path,
    })
}

/// Every YAML path of the tree with its position (entries point at their key).
fn places(root: &yaml::Node) -> HashMap<String, Pos> {
    fn walk(node: &yaml::Node, path: &str, out: &mut HashMap<String, Pos>) {
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let p = yaml::join(path, k.as_str().unwrap_or_default());
                    out.insert(
                        p.clone(),
                        if matches!(v.kind, Kind::Map(_)) {
                            k.pos
                        } else {
                            v.pos
                        },
                    );
                    walk(v, &p, out);
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    out.insert(p.clone(), item.pos);
                    walk(item, &p, out);
                }
            }
            Kind::Scalar(..) => {}
        }
    }
    let mut out = HashMap::new();
    walk(root, "", &mut out);
    out
}
