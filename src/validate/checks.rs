//! Checks: from the file's two styles (a list, or dbt's per-column tests) to typed checks.
//!
//! Everything that can be known without schemas is checked here: exactly one kind per
//! check, durations, the tables a check reads (`relationships.to`, subqueries in `expect`,
//! `expect_table` and `where`) and the SQL syntax of its expressions. Columns are checked
//! when the check is planned against real schemas (`crate::check::compile`).

use std::collections::HashSet;

use datafusion::sql::parser::DFParser;

use super::sql::{origin_in_yaml, parse_sql, sql_error_pos, table_refs};
use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::Loaded;
use crate::model::{Check, CheckKind, CheckSql, SqlOrigin};
use crate::spec::{CheckSpec, TableChecks};

/// One check as written, with the YAML paths its parts are reported at.
pub(super) struct Item {
    /// The check's entry.
    pub path: String,
    /// The check, in the native style.
    pub spec: CheckSpec,
    /// Where `where` is.
    pub where_path: String,
    /// Where `expect` or `expect_table` is.
    pub expr_path: String,
    /// Where `relationships.to` is.
    pub to_path: String,
    /// Where `freshness.max_age` is.
    pub max_age_path: String,
}

impl Item {
    /// A check of the native list style.
    pub fn native(path: String, spec: CheckSpec) -> Self {
        let expr_key = if spec.expect_table.is_some() {
            "expect_table"
        } else {
            "expect"
        };
        Self {
            where_path: format!("{path}.where"),
            expr_path: format!("{path}.{expr_key}"),
            to_path: format!("{path}.relationships.to"),
            max_age_path: format!("{path}.freshness.max_age"),
            path,
            spec,
        }
    }
}

const KINDS: &str = "`not_null`, `unique`, `accepted_values`, `relationships`, `row_count`, `expect`, `expect_table`, `freshness`";

/// Every check of the file, typed; problems go to `diags`.
pub(super) fn checks(loaded: &Loaded, relations: &[&str], diags: &mut Diagnostics) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    let mut file_names: HashSet<String> = HashSet::new();
    for (target, entry) in &loaded.spec.checks {
        if !relations.contains(&target.as_str()) {
            let d = loaded.error_at_key(
                &format!("checks.{target}"),
                format!("checks on `{target}`, which is neither a source nor a transform"),
            );
            diags.push(d.suggest(target, relations.iter().copied()));
            continue;
        }
        let items: Vec<Item> = match entry {
            TableChecks::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, c)| Item::native(format!("checks.{target}[{i}]"), c.clone()))
                .collect(),
            TableChecks::Dbt(t) => super::dbt::expand(loaded, target, t, diags),
        };
        for (i, item) in items.into_iter().enumerate() {
            if let Some(mut c) = check(loaded, target, i, item, relations, diags) {
                c.file_name = unique_name(&c.file_name, &mut file_names);
                out.push(c);
            }
        }
    }
    out
}

/// Adds checks that come from elsewhere than `checks:` (a JSON Schema's `enum`s), giving
/// each a file name unique among all the pipeline's checks.
pub(super) fn add_derived(out: &mut Vec<Check>, derived: Vec<Check>) {
    let mut used: HashSet<String> = out.iter().map(|c| c.file_name.clone()).collect();
    for (i, mut c) in derived.into_iter().enumerate() {
        c.file_name = unique_name(&file_name(&c.target, &c.kind, None, i), &mut used);
        out.push(c);
    }
}

fn check(
    loaded: &Loaded,
    target: &str,
    index: usize,
    item: Item,
    relations: &[&str],
    diags: &mut Diagnostics,
) -> Option<Check> {
    let (kind, default_name) = match kind_of(loaded, &item, relations) {
        Ok(k) => k,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let name = item.spec.name.clone().unwrap_or(default_name);
    let filter = item.spec.filter.as_ref().map(|text| CheckSql {
        text: text.clone(),
        origin: origin_in_yaml(loaded, &item.where_path),
    });
    let mut reads: Vec<String> = Vec::new();
    if let CheckKind::Relationships { to, .. } = &kind {
        reads.push(to.clone());
    }
    let exprs = match &kind {
        CheckKind::Expect(e) | CheckKind::ExpectTable(e) => Some(e),
        _ => None,
    };
    let mut ok = true;
    for sql in filter.iter().chain(exprs) {
        if loaded.template_failed(sql.origin.yaml_path.as_deref().unwrap_or_default()) {
            ok = false; // the template error is the one to report
            continue;
        }
        match expr_reads(sql, &name, relations) {
            Ok(tables) => {
                for t in tables {
                    if t != target && !reads.contains(&t) {
                        reads.push(t);
                    }
                }
            }
            Err(d) => {
                diags.push(d);
                ok = false;
            }
        }
    }
    ok.then(|| Check {
        target: target.to_string(),
        file_name: file_name(target, &kind, item.spec.name.as_deref(), index),
        name,
        kind,
        severity: item.spec.severity,
        filter,
        store_failures: item.spec.store_failures,
        reads,
        yaml_path: item.path,
    })
}

/// The kind of a check and its generated name.
fn kind_of(
    loaded: &Loaded,
    item: &Item,
    relations: &[&str],
) -> Result<(CheckKind, String), Diagnostic> {
    let c = &item.spec;
    check_size(c).map_err(|msg| loaded.error_at(&item.path, msg))?;
    let mut kinds = Vec::new();
    if let Some(cols) = &c.not_null {
        let cols = cols.to_vec();
        let name = format!("not_null({})", cols.join(", "));
        kinds.push((CheckKind::NotNull(cols), name));
    }
    if let Some(cols) = &c.unique {
        let cols = cols.to_vec();
        let name = format!("unique({})", cols.join(", "));
        kinds.push((CheckKind::Unique(cols), name));
    }
    if let Some(a) = &c.accepted_values {
        let kind = CheckKind::AcceptedValues {
            column: a.column.clone(),
            values: a.values.clone(),
        };
        kinds.push((kind, format!("accepted_values({})", a.column)));
    }
    if let Some(r) = &c.relationships {
        let to = relation_name(&r.to);
        if !relations.contains(&to.as_str()) {
            let d = loaded.error_at(
                &item.to_path,
                format!("`relationships.to`: `{to}` is neither a source nor a transform"),
            );
            return Err(d.suggest(&to, relations.iter().copied()));
        }
        let name = format!("relationships({} → {to}.{})", r.column, r.field);
        let kind = CheckKind::Relationships {
            column: r.column.clone(),
            to,
            field: r.field.clone(),
        };
        kinds.push((kind, name));
    }
    if let Some(r) = &c.row_count {
        if r.min.is_none() && r.max.is_none() {
            return Err(loaded.error_at(&item.path, "`row_count` needs `min`, `max` or both"));
        }
        if let (Some(min), Some(max)) = (r.min, r.max)
            && min > max
        {
            return Err(loaded.error_at(
                &item.path,
                format!("`row_count` has `min` {min} above `max` {max}: no table can pass"),
            ));
        }
        let name = format!(
            "row_count({}..{})",
            r.min.map(|m| m.to_string()).unwrap_or_default(),
            r.max.map(|m| m.to_string()).unwrap_or_default()
        );
        let kind = CheckKind::RowCount {
            min: r.min,
            max: r.max,
        };
        kinds.push((kind, name));
    }
    let sql = |text: &String| CheckSql {
        text: text.clone(),
        origin: origin_in_yaml(loaded, &item.expr_path),
    };
    if let Some(e) = &c.expect {
        kinds.push((
            CheckKind::Expect(sql(e)),
            format!("expect({})", one_line(e)),
        ));
    }
    if let Some(e) = &c.expect_table {
        let name = format!("expect_table({})", one_line(e));
        kinds.push((CheckKind::ExpectTable(sql(e)), name));
    }
    if let Some(f) = &c.freshness {
        let max_age = humantime::parse_duration(f.max_age.trim()).map_err(|e| {
            loaded
                .error_at(
                    &item.max_age_path,
                    format!("`max_age` `{}` is not a duration: {e}", f.max_age),
                )
                .with_help("write e.g. `30m`, `2h`, `1d` or `1h 30m`")
        })?;
        let name = format!("freshness({}, {})", f.column, f.max_age.trim());
        let kind = CheckKind::Freshness {
            column: f.column.clone(),
            max_age,
            relative_to: f.relative_to,
        };
        kinds.push((kind, name));
    }
    match kinds.len() {
        1 => Ok(kinds.remove(0)),
        0 => Err(loaded.error_at(&item.path, format!("a check needs one of {KINDS}"))),
        _ => Err(loaded.error_at(
            &item.path,
            format!("a check holds exactly one of {KINDS}; write several list items"),
        )),
    }
}

/// A check whose SQL would nest too deeply: a very deep `expect`, `expect_table` or
/// `where`, or so many `not_null` columns that their OR chain is.
fn check_size(c: &CheckSpec) -> Result<(), String> {
    let exprs = [&c.expect, &c.expect_table, &c.filter];
    if exprs
        .into_iter()
        .flatten()
        .any(|e| super::depth::expression_too_deep(e))
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

/// An expression as one line, for a generated name.
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `ref('x')`, `source('s', 'x')` (as dbt writes them) or a bare name.
pub(super) fn relation_name(text: &str) -> String {
    let t = text.trim();
    let inner = t
        .strip_prefix("ref(")
        .or_else(|| t.strip_prefix("source("))
        .and_then(|r| r.strip_suffix(')'));
    let name = match inner {
        Some(args) => args.rsplit(',').next().unwrap_or(args),
        None => t,
    };
    name.trim().trim_matches(['\'', '"']).trim().to_string()
}

/// Parses a check's SQL expression and returns the tables it reads (in subqueries).
fn expr_reads(sql: &CheckSql, check: &str, relations: &[&str]) -> Result<Vec<String>, Diagnostic> {
    if let Err(e) = DFParser::parse_sql_into_expr(&sql.text) {
        return Err(syntax_error(&e.to_string(), &sql.origin));
    }
    // As a statement, so CTEs inside subqueries are told apart from tables.
    let stmt = parse_sql(&format!("SELECT 1 WHERE\n{}", sql.text), &sql.origin)
        .map_err(|d| d.at(Some(sql.origin.map(1, 1))))?;
    let mut out = Vec::new();
    for (table, pos) in table_refs(&stmt) {
        if relations.contains(&table.as_str()) {
            out.push(table);
            continue;
        }
        let pos = pos
            .filter(|(l, _)| *l > 1)
            .map(|(l, c)| sql.origin.map(l - 1, c))
            .unwrap_or_else(|| sql.origin.map(1, 1));
        let ctes = super::sql::cte_names(&stmt);
        let candidates = ctes
            .iter()
            .map(String::as_str)
            .chain(relations.iter().copied());
        let help = did_you_mean(&table, candidates).unwrap_or_else(|| {
            format!(
                "checks can read the pipeline's sources and transforms: {}",
                relations.join(", ")
            )
        });
        return Err(
            Diagnostic::error(format!("unknown table `{table}` in check `{check}`"))
                .in_file(&sql.origin.file)
                .at_path(sql.origin.yaml_path.clone().unwrap_or_default())
                .at(Some(pos))
                .with_help(help),
        );
    }
    Ok(out)
}

fn syntax_error(msg: &str, origin: &SqlOrigin) -> Diagnostic {
    let pos = sql_error_pos(msg).map(|(l, c)| origin.map(l, c));
    let mut text = msg
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_end_matches("\")")
        .to_string();
    if let Some(i) = text.find(" at Line: ") {
        text.truncate(i);
    }
    Diagnostic::error(format!("SQL syntax error: {text}"))
        .in_file(&origin.file)
        .at_path(origin.yaml_path.clone().unwrap_or_default())
        .at(pos.or(Some(origin.map(1, 1))))
        .with_help("a check's SQL is one expression, as in a WHERE clause")
}

/// A file-safe name for the check's stored failures, in dbt's style (`not_null_orders_id`).
/// Never the SQL text: an expression may hold a templated value.
fn file_name(target: &str, kind: &CheckKind, given: Option<&str>, index: usize) -> String {
    let raw = match (given, kind) {
        (Some(n), _) => n.to_string(),
        (None, CheckKind::NotNull(cols)) => format!("not_null_{target}_{}", cols.join("_")),
        (None, CheckKind::Unique(cols)) => format!("unique_{target}_{}", cols.join("_")),
        (None, CheckKind::AcceptedValues { column, .. }) => {
            format!("accepted_values_{target}_{column}")
        }
        (None, CheckKind::Relationships { column, to, field }) => {
            format!("relationships_{target}_{column}__{to}_{field}")
        }
        (None, CheckKind::RowCount { .. }) => format!("row_count_{target}"),
        (None, CheckKind::Expect(_)) => format!("expect_{target}_{index}"),
        (None, CheckKind::ExpectTable(_)) => format!("expect_table_{target}_{index}"),
        (None, CheckKind::Freshness { column, .. }) => format!("freshness_{target}_{column}"),
    };
    let masked = crate::secrets::redact(&raw).into_owned();
    let mut safe: String = masked
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if safe.starts_with('.') || safe.is_empty() {
        safe.insert(0, '_');
    }
    safe
}

fn unique_name(name: &str, used: &mut HashSet<String>) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_names_as_dbt_writes_them() {
        assert_eq!(relation_name("customers"), "customers");
        assert_eq!(relation_name("ref('customers')"), "customers");
        assert_eq!(relation_name(" ref(\"customers\") "), "customers");
        assert_eq!(relation_name("source('shop', 'customers')"), "customers");
    }

    #[test]
    fn file_names_are_safe_and_unique() {
        let kind = CheckKind::NotNull(vec!["a b".into(), "c/d".into()]);
        assert_eq!(file_name("t", &kind, None, 0), "not_null_t_a_b_c_d");
        assert_eq!(file_name("t", &kind, Some("../x"), 0), "_.._x");
        let mut used = HashSet::new();
        assert_eq!(unique_name("a", &mut used), "a");
        assert_eq!(unique_name("a", &mut used), "a_2");
    }
}
