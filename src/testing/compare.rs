//! Expected rows against actual rows, and the diff a person reads when they differ.
//!
//! Only the columns named in the expected rows are compared, as a multiset unless
//! `ordered: true`. Values compare by meaning and by the actual column's type: floats within
//! a relative tolerance (1e-9 unless `tolerance:` says otherwise), integers and decimals
//! exactly (`7.50` is `7.5`), timestamps with or without `T`, NULL only with NULL. Every
//! expected row names every compared column: a missing key is an error, not NULL.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Table};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use indexmap::IndexMap;
use serde_json::Value;

use crate::model::Pipeline;
use crate::spec::ExpectSpec;

/// The relative tolerance for floating-point columns when a test does not set one.
pub const DEFAULT_TOLERANCE: f64 = 1e-9;

/// How many differing rows of each side a diff shows.
const MAX_SHOWN: usize = 20;

/// Why a comparison could not say "equal".
#[derive(Debug)]
pub enum Problem {
    /// The test is written wrong (an expected row without a column the others have).
    Invalid(String),
    /// The output is not what was expected (a column is missing, the query failed).
    Failed(String),
}

/// How values of a column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Exact,
    Bool,
    Time,
    Text,
}

fn kind_of(dt: &DataType) -> Kind {
    match dt {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
        d if d.is_integer() => Kind::Exact,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Kind::Exact,
        DataType::Boolean => Kind::Bool,
        DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(..)
        | DataType::Time32(_)
        | DataType::Time64(_) => Kind::Time,
        DataType::Dictionary(_, v) => kind_of(v),
        _ => Kind::Text,
    }
}

/// A row as compared: one cell per compared column, `None` for NULL.
type Row = Vec<Option<String>>;

/// Compares a target's rows with the expected ones. `Ok(None)` when they match, `Ok(Some)`
/// with a readable diff when they do not.
pub async fn table(
    ctx: &SessionContext,
    p: &Pipeline,
    target: &str,
    expect: &ExpectSpec,
    tolerance: f64,
) -> Result<Option<String>, Problem> {
    let expected_rows = match (&expect.rows, &expect.path) {
        (Some(r), None) => r.clone(),
        (None, Some(path)) => read_expected_file(ctx, p, path).await?,
        _ => {
            return Err(Problem::Invalid(format!(
                "expected `{target}` needs exactly one of `rows` or `path`"
            )));
        }
    };
    let columns = expected_columns(target, &expected_rows)?;
    let batches: Vec<RecordBatch> = async { ctx.table(target).await?.collect().await }
        .await
        .map_err(|e| {
            Problem::Failed(format!(
                "`{target}` could not be computed: {}",
                crate::plan::clean_message(&e.to_string())
            ))
        })?;
    let (actual, kinds) = actual_rows(target, ctx, &batches, &columns).await?;
    let expected: Vec<Row> = expected_rows
        .iter()
        .map(|r| columns.iter().map(|c| json_cell(&r[c])).collect())
        .collect();
    let eq = |e: &Row, a: &Row| {
        e.iter()
            .zip(a)
            .zip(&kinds)
            .all(|((x, y), k)| same(*k, x.as_deref(), y.as_deref(), tolerance))
    };
    let (missing, unexpected) = diff(&expected, &actual, expect.ordered, eq);
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(None);
    }
    Ok(Some(render(
        target,
        &columns,
        &kinds,
        (expected.len(), actual.len()),
        &missing,
        &unexpected,
        expect.ordered,
        tolerance,
    )))
}

/// The compared columns, in first-seen order; every row must name each of them.
fn expected_columns(
    target: &str,
    rows: &[IndexMap<String, Value>],
) -> Result<Vec<String>, Problem> {
    let mut columns: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if let Some(c) = columns.iter().find(|c| !r.contains_key(*c)) {
            return Err(Problem::Invalid(format!(
                "expected row {} of `{target}` has no `{c}`, which other rows have: write `{c}: null` to expect NULL",
                i + 1
            )));
        }
    }
    Ok(columns)
}

async fn actual_rows(
    target: &str,
    ctx: &SessionContext,
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<(Vec<Row>, Vec<Kind>), Problem> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => ctx
            .table(target)
            .await
            .map(|df| std::sync::Arc::new(df.schema().as_arrow().clone()))
            .map_err(|e| Problem::Failed(e.to_string()))?,
    };
    let mut kinds = Vec::new();
    let mut indices = Vec::new();
    for c in columns {
        let Ok(i) = schema.index_of(c) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let hint = crate::diagnostic::did_you_mean(c, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Err(Problem::Failed(format!(
                "`{target}` has no column `{c}` (its columns: {}){hint}",
                names.join(", ")
            )));
        };
        indices.push(i);
        kinds.push(kind_of(schema.field(i).data_type()));
    }
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let arrays: Vec<&dyn Array> = indices.iter().map(|i| b.column(*i).as_ref()).collect();
        let fmts = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(*a, &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Problem::Failed(e.to_string()))?;
        for row in 0..b.num_rows() {
            out.push(
                arrays
                    .iter()
                    .zip(&fmts)
                    .map(|(a, f)| (!a.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok((out, kinds))
}

fn json_cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// True when an expected and an actual cell mean the same value in a column of `kind`.
fn same(kind: Kind, expected: Option<&str>, actual: Option<&str>, tolerance: f64) -> bool {
    let (e, a) = match (expected, actual) {
        (None, None) => return true,
        (Some(e), Some(a)) => (e.trim(), a.trim()),
        _ => return false,
    };
    if e == a {
        return true;
    }
    match kind {
        Kind::Float => match (e.parse::<f64>(), a.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                x == y
                    || (x.is_nan() && y.is_nan())
                    || (x - y).abs() <= tolerance * x.abs().max(y.abs())
            }
            _ => false,
        },
        Kind::Exact => match (decimal_text(e), decimal_text(a)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Kind::Bool => e.eq_ignore_ascii_case(a),
        Kind::Time => normalize_time(e) == normalize_time(a),
        Kind::Text => false,
    }
}

/// A number's canonical text: no `+`, no trailing fractional zeros (`7.50` → `7.5`,
/// `1000.0` → `1000`). `None` when it is not a plain decimal number.
fn decimal_text(s: &str) -> Option<String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    Some(if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    })
}

fn normalize_time(s: &str) -> String {
    let mut t = s.trim().replacen('T', " ", 1);
    for suffix in ["Z", "+00:00"] {
        if let Some(x) = t.strip_suffix(suffix) {
            t = x.to_string();
        }
    }
    if let Some(dot) = t.rfind('.')
        && t[dot + 1..].chars().all(|c| c == '0')
        && t.contains(':')
    {
        t.truncate(dot);
    }
    t
}

/// Expected rows not found, and actual rows not expected.
fn diff(
    expected: &[Row],
    actual: &[Row],
    ordered: bool,
    eq: impl Fn(&Row, &Row) -> bool,
) -> (Vec<Row>, Vec<Row>) {
    if ordered {
        let (mut missing, mut unexpected) = (Vec::new(), Vec::new());
        for i in 0..expected.len().max(actual.len()) {
            match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) if eq(e, a) => {}
                (e, a) => {
                    missing.extend(e.cloned());
                    unexpected.extend(a.cloned());
                }
            }
        }
        return (missing, unexpected);
    }
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for e in expected {
        match (0..actual.len()).find(|i| !used[*i] && eq(e, &actual[*i])) {
            Some(i) => used[i] = true,
            None => missing.push(e.clone()),
        }
    }
    let unexpected = actual
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a.clone())
        .collect();
    (missing, unexpected)
}

/// The diff: a summary line, the compared columns, and a table of the rows that differ
/// (`-` expected but not found, `+` found but not expected).
#[allow(clippy::too_many_arguments)]
fn render(
    target: &str,
    columns: &[String],
    kinds: &[Kind],
    (n_expected, n_actual): (usize, usize),
    missing: &[Row],
    unexpected: &[Row],
    ordered: bool,
    tolerance: f64,
) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut out = format!(
        "`{target}`: {} not found, {} ({} expected, {} actual)",
        plural(missing.len(), "expected row"),
        plural(unexpected.len(), "unexpected row"),
        n_expected,
        n_actual
    );
    let floats = kinds.contains(&Kind::Float);
    out.push_str(&format!(
        "\n  compared columns: {} ({}{})",
        columns.join(", "),
        if ordered { "in order" } else { "order ignored" },
        if floats {
            format!(", floats within a relative {tolerance:e}")
        } else {
            String::new()
        }
    ));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("")];
    header.extend(columns.iter().map(Cell::new));
    t.set_header(header);
    let shown = |rows: &[Row], mark: &str, t: &mut Table| {
        for r in rows.iter().take(MAX_SHOWN) {
            let mut cells = vec![Cell::new(mark)];
            cells.extend(r.iter().map(|v| Cell::new(v.as_deref().unwrap_or("NULL"))));
            t.add_row(cells);
        }
    };
    shown(missing, "-", &mut t);
    shown(unexpected, "+", &mut t);
    for line in t.to_string().lines() {
        out.push_str(&format!("\n  {line}"));
    }
    out.push_str("\n  - expected, not in the output   + in the output, not expected");
    let hidden =
        missing.len().saturating_sub(MAX_SHOWN) + unexpected.len().saturating_sub(MAX_SHOWN);
    if hidden > 0 {
        out.push_str(&format!("\n  ({hidden} more differing rows not shown)"));
    }
    out
}

async fn read_expected_file(
    ctx: &SessionContext,
    p: &Pipeline,
    path: &str,
) -> Result<Vec<IndexMap<String, Value>>, Problem> {
    let full = crate::validate::resolve_local(&p.base_dir, path);
    let full_s = full.to_string_lossy().into_owned();
    let invalid =
        |e: String| Problem::Invalid(format!("expected rows file {}: {e}", full.display()));
    let df = if full_s.ends_with(".csv") {
        ctx.read_csv(
            full_s.as_str(),
            datafusion::prelude::CsvReadOptions::new().schema_infer_max_records(0),
        )
        .await
    } else if full_s.ends_with(".parquet") {
        ctx.read_parquet(full_s.as_str(), Default::default()).await
    } else {
        ctx.read_json(full_s.as_str(), Default::default()).await
    }
    .map_err(|e| invalid(e.to_string()))?;
    let batches = df.collect().await.map_err(|e| invalid(e.to_string()))?;
    let opts = FormatOptions::default();
    let mut rows = Vec::new();
    for b in &batches {
        let schema = b.schema();
        let fmts = b
            .columns()
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        for row in 0..b.num_rows() {
            let mut r = IndexMap::new();
            for (i, f) in schema.fields().iter().enumerate() {
                let v = if b.column(i).is_null(row) {
                    Value::Null
                } else {
                    Value::String(fmts[i].value(row).to_string())
                };
                r.insert(f.name().clone(), v);
            }
            rows.push(r);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_within_a_relative_tolerance() {
        assert!(same(
            Kind::Float,
            Some("0.1"),
            Some("0.1000000000001"),
            1e-9
        ));
        assert!(!same(
            Kind::Float,
            Some("0.3333"),
            Some("0.333333333"),
            1e-9
        ));
        assert!(same(Kind::Float, Some("0.3333"), Some("0.333333333"), 1e-3));
        assert!(!same(Kind::Float, Some("1e-12"), Some("2e-12"), 1e-9));
        assert!(same(Kind::Float, Some("0"), Some("0.0"), 1e-9));
    }

    #[test]
    fn exact_numbers_ignore_trailing_zeros_only() {
        assert!(same(Kind::Exact, Some("7.50"), Some("7.5"), 1e-9));
        assert!(same(Kind::Exact, Some("1000.0"), Some("1000"), 1e-9));
        assert!(!same(Kind::Exact, Some("1000.01"), Some("1000"), 1e-9));
        assert!(!same(
            Kind::Exact,
            Some("9007199254740993"),
            Some("9007199254740992"),
            1e-9
        ));
        assert!(same(Kind::Exact, Some("-0.0"), Some("0"), 1e-9));
    }

    #[test]
    fn null_is_only_null_and_times_ignore_the_t() {
        assert!(same(Kind::Text, None, None, 1e-9));
        assert!(!same(Kind::Text, None, Some("NULL"), 1e-9));
        assert!(same(
            Kind::Time,
            Some("2024-01-01 10:00:00"),
            Some("2024-01-01T10:00:00.000"),
            1e-9
        ));
        assert!(!same(Kind::Text, Some("a"), Some("b"), 1e-9));
    }

    #[test]
    fn a_missing_key_in_an_expected_row_is_an_error() {
        let rows: Vec<IndexMap<String, Value>> = vec![
            [
                ("a".to_string(), Value::from(1)),
                ("b".to_string(), Value::from(2)),
            ]
            .into_iter()
            .collect(),
            [("a".to_string(), Value::from(1))].into_iter().collect(),
        ];
        match expected_columns("t", &rows) {
            Err(Problem::Invalid(m)) => assert!(m.contains("row 2") && m.contains("`b`"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multiset_diff_reports_both_sides() {
        let row = |v: &str| vec![Some(v.to_string())];
        let (m, u) = diff(
            &[row("1"), row("2")],
            &[row("2"), row("3")],
            false,
            |a, b| a == b,
        );
        assert_eq!((m, u), (vec![row("1")], vec![row("3")]));
    }
}
