//! SQL in transforms: parsing, the tables it reads, and ordering by dependency.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::{Query, Spanned, Visit, Visitor};
use indexmap::IndexMap;

use super::resolve_local;
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::load::Loaded;
use crate::model::{SqlOrigin, SqlPlaces, Transform};
use crate::yaml::{Style, TextPlaces};

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
        (Some(Statement::Statement(s)), true) if super::depth::too_deep(s.as_ref()) => {
            // Dropping a tree this deep recurses once per level; leave it to the OS.
            std::mem::forget(s);
            Err(Diagnostic::error(super::depth::too_deep_message())
                .in_file(&origin.file)
                .at(Some(origin.map(1, 1)))
                .at_path(origin.yaml_path.clone().unwrap_or_default())
                .with_help("use `IN (...)` lists, or split the query into several transforms"))
        }
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

/// The names of the CTEs (`WITH name AS (...)`) a statement defines, at any depth.
pub fn cte_names(stmt: &Statement) -> Vec<String> {
    struct Ctes(Vec<String>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                self.0
                    .extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    let mut ctes = Ctes(Vec::new());
    if let Statement::Statement(s) = stmt {
        let _ = s.visit(&mut ctes);
    }
    ctes.0
}

/// Where an SQL value sits in the pipeline file: through its template, if it was one, and
/// through the YAML scalar's style.
pub(super) fn origin_in_yaml(loaded: &Loaded, path: &str) -> SqlOrigin {
    let sql = crate::yaml::lookup(&loaded.root, path)
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    let trace = loaded.traces.get(path).cloned();
    let raw = trace.as_ref().map_or(sql, |t| t.source());
    let text = match loaded.index.get(path) {
        Some(p) => TextPlaces::of_scalar(&loaded.text, p.pos, p.style.unwrap_or(Style::Plain), raw),
        None => TextPlaces::at(raw, Pos::new(1, 1)),
    };
    SqlOrigin {
        file: loaded.file.clone(),
        yaml_path: Some(path.to_string()),
        places: Arc::new(SqlPlaces::Mapped {
            sql: sql.to_string(),
            trace,
            text,
        }),
    }
}

pub(super) fn transform(
    loaded: &Loaded,
    name: &str,
    spec: &crate::spec::TransformSpec,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Transform> {
    if loaded.template_failed(&format!("transforms.{name}.sql")) {
        return None; // its template error is reported; the unrendered text is no SQL
    }
    let (sql, origin) = transform_sql(loaded, name, spec)
        .map_err(|d| diags.push(d))
        .ok()?;
    let stmt = parse_sql(&sql, &origin).map_err(|d| diags.push(d)).ok()?;
    let mut deps = Vec::new();
    let mut ok = true;
    for (table, pos) in table_refs(&stmt) {
        if relations.contains(&table.as_str()) && table != name {
            deps.push(table);
            continue;
        }
        ok = false;
        let place = |d: Diagnostic| {
            d.in_file(&origin.file)
                .at(Some(
                    pos.map(|(l, c)| origin.map(l, c))
                        .unwrap_or_else(|| origin.map(1, 1)),
                ))
                .at_path(origin.yaml_path.clone().unwrap_or_default())
        };
        if table == name {
            diags.push(place(Diagnostic::error(format!(
                "transform `{name}` reads itself"
            ))));
            continue;
        }
        // What the query could mean: its own CTEs first, then the pipeline's relations.
        let in_scope = cte_names(&stmt);
        let candidates = in_scope
            .iter()
            .map(String::as_str)
            .chain(relations.iter().copied());
        let help = did_you_mean(&table, candidates).unwrap_or_else(|| {
            format!(
                "SQL can read the pipeline's sources and transforms: {}",
                crate::diagnostic::name_list(relations.iter().copied())
            )
        });
        diags.push(
            place(Diagnostic::error(format!(
                "unknown table `{table}` in transform `{name}`"
            )))
            .with_help(help),
        );
    }
    ok.then(|| Transform {
        name: name.to_string(),
        sql,
        origin,
        deps,
    })
}

/// A transform's rendered SQL and where it came from (`sql` in the file, or `sql_file`).
fn transform_sql(
    loaded: &Loaded,
    name: &str,
    spec: &crate::spec::TransformSpec,
) -> Result<(String, SqlOrigin), Diagnostic> {
    let yaml_path = format!("transforms.{name}");
    match (&spec.sql, &spec.sql_file) {
        (Some(sql), None) => Ok((
            sql.clone(),
            origin_in_yaml(loaded, &format!("{yaml_path}.sql")),
        )),
        (None, Some(file)) => {
            let path = resolve_local(&loaded.base_dir, file);
            let text = crate::load::read_text(&path).map_err(|e| {
                loaded.error_at(
                    &format!("{yaml_path}.sql_file"),
                    format!("cannot read SQL file {}: {e}", path.display()),
                )
            })?;
            let places = TextPlaces::of_file(&text);
            let (rendered, trace) = loaded.templater.render_traced(&text).map_err(|e| {
                let pos = match (e.offset, e.line) {
                    (Some(offset), _) => places.pos_of(offset),
                    (None, line) => Pos::new(line.unwrap_or(1), 1),
                };
                e.into_diagnostic().in_file(&path).at(Some(pos))
            })?;
            let origin = SqlOrigin {
                file: path,
                yaml_path: None,
                places: Arc::new(SqlPlaces::Mapped {
                    sql: rendered.clone(),
                    trace: trace.map(Arc::new),
                    text: places,
                }),
            };
            Ok((rendered, origin))
        }
        _ => Err(loaded.error_at_key(
            &yaml_path,
            "a transform has exactly one of `sql` or `sql_file`",
        )),
    }
}

/// Orders transforms so each comes after what it reads; reports cycles.
pub(super) fn order_transforms(
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
