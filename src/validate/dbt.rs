//! dbt's test style as checks: `columns: { id: { tests: [unique, not_null] } }`.
//!
//! dbt's four generic tests (`unique`, `not_null`, `accepted_values`, `relationships`) and
//! three of dbt_utils (`expression_is_true`, `unique_combination_of_columns`, `recency`)
//! become the native checks they mean. Their `config:` (`severity`, `where`,
//! `store_failures`) carries over.

use super::checks::Item;
use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::Loaded;
use crate::spec::check::{
    DbtColumns, DbtTable, DbtTest, DbtTestArgs, FreshnessSpec, RelationshipsSpec,
};
use crate::spec::{AcceptedValuesSpec, CheckSpec, Columns};

/// The tests this style understands.
const TESTS: &[&str] = &[
    "unique",
    "not_null",
    "accepted_values",
    "relationships",
    "dbt_utils.expression_is_true",
    "dbt_utils.unique_combination_of_columns",
    "dbt_utils.recency",
];

/// The checks of one dbt-style entry, in file order: column tests, table tests, checks.
pub(super) fn expand(
    loaded: &Loaded,
    target: &str,
    t: &DbtTable,
    diags: &mut Diagnostics,
) -> Vec<Item> {
    let base = format!("checks.{target}");
    let mut out = Vec::new();
    let columns: Vec<(Option<String>, String, &crate::spec::check::DbtColumn)> = match &t.columns {
        DbtColumns::Map(m) => m
            .iter()
            .map(|(k, c)| (Some(k.clone()), format!("{base}.columns.{k}"), c))
            .collect(),
        DbtColumns::List(l) => l
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), format!("{base}.columns[{i}]"), c))
            .collect(),
    };
    for (name, path, c) in columns {
        let Some(name) = name else {
            diags.push(loaded.error_at(&path, "a column in dbt's list style needs `name:`"));
            continue;
        };
        for (key, tests) in [("tests", &c.tests), ("data_tests", &c.data_tests)] {
            for (i, test) in tests.iter().enumerate() {
                let p = format!("{path}.{key}[{i}]");
                match test_item(loaded, &p, Some(&name), test) {
                    Ok(item) => out.push(item),
                    Err(d) => diags.push(d),
                }
            }
        }
    }
    for (key, tests) in [("tests", &t.tests), ("data_tests", &t.data_tests)] {
        for (i, test) in tests.iter().enumerate() {
            let p = format!("{base}.{key}[{i}]");
            match test_item(loaded, &p, None, test) {
                Ok(item) => out.push(item),
                Err(d) => diags.push(d),
            }
        }
    }
    for (i, c) in t.checks.iter().enumerate() {
        out.push(Item::native(format!("{base}.checks[{i}]"), c.clone()));
    }
    out
}

/// One dbt test on `column` (a column test) or on the table (`column: None`).
fn test_item(
    loaded: &Loaded,
    path: &str,
    column: Option<&str>,
    test: &DbtTest,
) -> Result<Item, Diagnostic> {
    let a = &test.args;
    // A dotted name (`dbt_utils.recency`) cannot be a step of a YAML path.
    let args_path = if test.name.contains('.') || !test.with_args {
        path.to_string()
    } else {
        format!("{path}.{}", test.name)
    };
    let arg = |key: &str| format!("{args_path}.{key}");
    let missing = |key: &str| {
        loaded.error_at(
            &args_path,
            format!("the `{}` test needs `{key}`", test.name),
        )
    };
    let column = match (column, &a.column_name) {
        (Some(_), Some(_)) => {
            return Err(loaded.error_at(
                &arg("column_name"),
                "`column_name` is for tests on the table; this test is under a column",
            ));
        }
        (Some(c), None) => Some(c.to_string()),
        (None, c) => c.clone(),
    };
    let need_column = || column.clone().ok_or_else(|| missing("column_name"));
    let config = a.config.clone().unwrap_or_default();
    let mut spec = CheckSpec {
        name: a.name.clone(),
        severity: config.severity.or(a.severity).unwrap_or_default(),
        filter: config.filter.clone().or(a.filter.clone()),
        store_failures: config.store_failures.or(a.store_failures).unwrap_or(false),
        ..CheckSpec::default()
    };
    let allowed: &[&str] = match test.name.as_str() {
        "unique" => {
            spec.unique = Some(Columns::One(need_column()?));
            &[]
        }
        "not_null" => {
            spec.not_null = Some(Columns::One(need_column()?));
            &[]
        }
        "accepted_values" => {
            spec.accepted_values = Some(AcceptedValuesSpec {
                column: need_column()?,
                values: a.values.clone().ok_or_else(|| missing("values"))?,
            });
            &["values", "quote"]
        }
        "relationships" => {
            spec.relationships = Some(RelationshipsSpec {
                column: need_column()?,
                to: a.to.clone().ok_or_else(|| missing("to"))?,
                field: a.field.clone().ok_or_else(|| missing("field"))?,
            });
            &["to", "field"]
        }
        "dbt_utils.expression_is_true" => {
            let e = a.expression.clone().ok_or_else(|| missing("expression"))?;
            spec.expect = Some(match &column {
                Some(c) => format!("\"{}\" {e}", c.replace('"', "\"\"")),
                None => e,
            });
            &["expression"]
        }
        "dbt_utils.unique_combination_of_columns" => {
            let cols = a.combination_of_columns.clone();
            spec.unique = Some(Columns::Many(
                cols.ok_or_else(|| missing("combination_of_columns"))?,
            ));
            &["combination_of_columns"]
        }
        "dbt_utils.recency" => {
            spec.freshness = Some(recency(a, column.as_deref(), &missing, loaded, &arg)?);
            &["field", "datepart", "interval"]
        }
        other => {
            let d = loaded.error_at(path, format!("unknown test `{other}`"));
            let help = did_you_mean(other, TESTS.iter().copied()).unwrap_or_else(|| {
                format!(
                    "tests here: {}; other checks go under `checks:` in this entry",
                    TESTS.join(", ")
                )
            });
            return Err(d.with_help(help));
        }
    };
    if let Some(extra) = args_given(a).into_iter().find(|k| !allowed.contains(k)) {
        return Err(loaded.error_at(
            &arg(extra),
            format!("`{extra}` does not apply to the `{}` test", test.name),
        ));
    }
    let where_path = if config.filter.is_some() {
        arg("config.where")
    } else {
        arg("where")
    };
    let mut item = Item::native(path.to_string(), spec);
    item.where_path = where_path;
    item.to_path = arg("to");
    item.expr_path = args_path.clone();
    item.max_age_path = args_path;
    Ok(item)
}

/// `dbt_utils.recency: { field, datepart, interval }` as a freshness check.
fn recency(
    a: &DbtTestArgs,
    column: Option<&str>,
    missing: &dyn Fn(&str) -> Diagnostic,
    loaded: &Loaded,
    arg: &dyn Fn(&str) -> String,
) -> Result<FreshnessSpec, Diagnostic> {
    let field = a
        .field
        .clone()
        .or(column.map(str::to_string))
        .ok_or_else(|| missing("field"))?;
    let part = a.datepart.as_deref().ok_or_else(|| missing("datepart"))?;
    let n = a.interval.ok_or_else(|| missing("interval"))?;
    let unit = match part.to_ascii_lowercase().as_str() {
        "second" | "seconds" => "s",
        "minute" | "minutes" => "m",
        "hour" | "hours" => "h",
        "day" | "days" => "d",
        "week" | "weeks" => "w",
        _ => {
            return Err(loaded.error_at(
                &arg("datepart"),
                format!("`datepart` `{part}`: write second, minute, hour, day or week"),
            ));
        }
    };
    Ok(FreshnessSpec {
        column: field,
        max_age: format!("{n}{unit}"),
        relative_to: crate::spec::RelativeTo::Now,
    })
}

/// The arguments given, by key (`config`, `name`, `severity`, `where`, `store_failures` and
/// `column_name` apply to every test and are not listed).
fn args_given(a: &DbtTestArgs) -> Vec<&'static str> {
    let given = [
        ("values", a.values.is_some()),
        ("quote", a.quote.is_some()),
        ("to", a.to.is_some()),
        ("field", a.field.is_some()),
        ("expression", a.expression.is_some()),
        ("combination_of_columns", a.combination_of_columns.is_some()),
        ("datepart", a.datepart.is_some()),
        ("interval", a.interval.is_some()),
    ];
    given
        .into_iter()
        .filter(|(_, g)| *g)
        .map(|(k, _)| k)
        .collect()
}
