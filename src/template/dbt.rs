//! dbt's functions, so a dbt model's SQL runs unchanged: `ref('x')`, `source('s', 'x')`,
//! `var('x', default?)` and `config(...)`.
//!
//! `ref` and `source` render to the name of a source or transform as SQL reads it (quoted
//! when it would not read back as itself), so the dependency graph, built from the rendered
//! SQL, sees them as the tables they are. dbt's source name (the first argument of
//! `source`) is accepted and not checked: a pipeline's sources are not grouped.
//! `config(...)` renders to nothing: materializations are sinks here.

use std::sync::{Arc, RwLock};

use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use minijinja::value::{Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use crate::diagnostic::did_you_mean;

/// The names `ref` and `source` resolve against.
#[derive(Debug, Default, Clone)]
pub struct Relations {
    /// The pipeline's sources.
    pub sources: Vec<String>,
    /// The pipeline's transforms.
    pub transforms: Vec<String>,
}

/// The shared, settable relations of one templater.
pub(super) type SharedRelations = Arc<RwLock<Relations>>;

/// Adds `ref`, `source`, `var` and `config` to an environment.
pub(super) fn register(env: &mut Environment<'static>, relations: SharedRelations) {
    let rels = relations.clone();
    // `ref('x')`, or dbt's `ref('package', 'x')`: the package is not checked.
    env.add_function(
        "ref",
        move |first: &str, second: Option<&str>| -> Result<String, Error> {
            let name = second.unwrap_or(first);
            let r = rels.read().unwrap_or_else(|e| e.into_inner());
            let mut all = r.sources.iter().chain(&r.transforms);
            if all.any(|n| n == name) {
                return Ok(sql_name(name));
            }
            let all = r.sources.iter().chain(&r.transforms);
            Err(unknown(
                &format!("ref('{name}')"),
                "source or transform",
                name,
                all,
            ))
        },
    );
    env.add_function(
        "source",
        move |_group: &str, name: &str| -> Result<String, Error> {
            let r = relations.read().unwrap_or_else(|e| e.into_inner());
            if r.sources.iter().any(|n| n == name) {
                return Ok(sql_name(name));
            }
            Err(unknown(
                &format!("source(…, '{name}')"),
                "source",
                name,
                r.sources.iter(),
            ))
        },
    );
    env.add_function("var", var);
    env.add_function("config", |_args: Rest<Value>| String::new());
}

/// `var('x', default?)`: the var `x`, or the default; without a default, a missing var is
/// an error.
fn var(state: &State, name: &str, default: Option<Value>) -> Result<Value, Error> {
    let vars = state.lookup("vars").unwrap_or_default();
    let value = vars.get_attr(name).unwrap_or_default();
    if !value.is_undefined() {
        return Ok(value);
    }
    if let Some(d) = default {
        return Ok(d);
    }
    let names: Vec<String> = vars
        .try_iter()
        .map(|it| it.filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let hint = did_you_mean(name, names.iter().map(String::as_str))
        .map(|h| format!("; {h}"))
        .unwrap_or_else(|| "; define it under `vars:`, pass `--var`, or give a default".into());
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("var('{name}'): no var is named `{name}`{hint}"),
    ))
}

/// The error of a `ref`/`source` naming nothing.
fn unknown<'a>(
    call: &str,
    what: &str,
    name: &str,
    candidates: impl Iterator<Item = &'a String>,
) -> Error {
    let names: Vec<&str> = candidates.map(String::as_str).collect();
    let hint = did_you_mean(name, names.iter().copied())
        .map(|h| format!("; {h}"))
        .unwrap_or_else(|| {
            format!(
                "; the pipeline has: {}",
                crate::diagnostic::name_list(names.iter().copied())
            )
        });
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{call}: no {what} is named `{name}`{hint}"),
    )
}

/// A relation's name as SQL reads it back: bare when it is a plain lower-case identifier
/// (or one with capitals, which SQL and the registration both fold to lower case), else
/// double-quoted.
pub fn sql_name(name: &str) -> String {
    let mut chars = name.chars();
    let simple = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let keyword = ALL_KEYWORDS
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok();
    let lower = name == name.to_ascii_lowercase();
    if simple && (!keyword || !lower) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use minijinja::value::Value;

    use super::sql_name;
    use crate::template::Relations;
    use crate::template::tests::templater;

    #[test]
    fn dbt_functions_resolve_names_and_vars() {
        let mut t = templater();
        t.set_relations(Relations {
            sources: vec!["raw_orders".into(), "order".into()],
            transforms: vec!["stg_orders".into()],
        });
        t.set_var("n", Value::from(2));
        let sql = "{{ config(materialized='table') }}select * from {{ ref('stg_orders') }}, \
                   {{ source('shop', 'raw_orders') }}, {{ ref('order') }} \
                   where n = {{ var('n') }} and d = {{ var('d', 'x') }}";
        assert_eq!(
            t.render(sql).unwrap(),
            "select * from stg_orders, raw_orders, \"order\" where n = 2 and d = x"
        );
        assert_eq!(
            t.render("{{ ref('pkg', 'stg_orders') }}").unwrap(),
            "stg_orders"
        );
        let e = t.render("{{ ref('stg_order') }}").unwrap_err();
        assert!(
            e.message.contains("did you mean `stg_orders`?"),
            "{}",
            e.message
        );
        let e = t.render("{{ source('s', 'stg_orders') }}").unwrap_err();
        assert!(e.message.contains("no source is named"), "{}", e.message);
        let e = t.render("{{ var('m') }}").unwrap_err();
        assert!(e.message.contains("no var is named `m`"), "{}", e.message);
    }

    #[test]
    fn names_are_quoted_when_sql_would_not_read_them_back() {
        assert_eq!(sql_name("stg_orders"), "stg_orders");
        assert_eq!(sql_name("order"), "\"order\"");
        assert_eq!(sql_name("raw-orders"), "\"raw-orders\"");
        assert_eq!(sql_name("2024_sales"), "\"2024_sales\"");
        assert_eq!(sql_name("Orders"), "Orders");
    }
}
