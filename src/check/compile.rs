//! Planning a check: one DataFusion plan per check, built without reading data.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, JoinType};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{Expr, LogicalPlan, cast, lit, not};
use datafusion::prelude::{DataFrame, SessionContext, ident};

use crate::diagnostic::{Diagnostic, Pos};
use crate::model::{Check, CheckKind, CheckSql, Pipeline, SqlOrigin};

/// A check planned against a session's tables, ready to run.
pub struct Compiled {
    /// The check.
    pub check: Check,
    pub(super) plan: Plan,
}

/// What running a check executes.
pub(super) enum Plan {
    /// The rows (or, for `unique`, the keys) that break the check.
    Rows(DataFrame),
    /// The rows whose number is bounded.
    RowCount(DataFrame),
    /// One row with the boolean column `ok`.
    Table(DataFrame),
    /// One row with the newest value as a UTC timestamp, column `latest`.
    Freshness(DataFrame),
}

/// Plans a check. A problem (an unknown column, SQL that does not plan) comes back as a
/// diagnostic at its place in the pipeline file; nothing is read.
pub async fn compile(
    ctx: &SessionContext,
    p: &Pipeline,
    c: &Check,
) -> Result<Compiled, Diagnostic> {
    let base = base(ctx, p, c).await?;
    let engine = |e: DataFusionError| placed(p, c, crate::plan::clean_message(&e.to_string()));
    let plan = match &c.kind {
        CheckKind::NotNull(cols) => {
            has_columns(p, c, &base, &c.target, cols)?;
            let any_null = cols.iter().map(|c| ident(c).is_null()).reduce(Expr::or);
            Plan::Rows(
                base.filter(any_null.unwrap_or(lit(false)))
                    .map_err(engine)?,
            )
        }
        CheckKind::Unique(cols) => {
            has_columns(p, c, &base, &c.target, cols)?;
            let all_set = cols
                .iter()
                .map(|c| ident(c).is_not_null())
                .reduce(Expr::and);
            let keys = cols.iter().map(ident).collect();
            let dups = base
                .filter(all_set.unwrap_or(lit(true)))
                .and_then(|d| d.aggregate(keys, vec![count(lit(1)).alias("n_records")]))
                .and_then(|d| d.filter(ident("n_records").gt(lit(1))))
                .map_err(engine)?;
            Plan::Rows(dups)
        }
        CheckKind::AcceptedValues { column, values } => {
            has_columns(p, c, &base, &c.target, std::slice::from_ref(column))?;
            let list = values.iter().map(literal).collect();
            let other = ident(column)
                .is_not_null()
                .and(not(ident(column).in_list(list, false)));
            Plan::Rows(base.filter(other).map_err(engine)?)
        }
        CheckKind::Relationships { column, to, field } => {
            Plan::Rows(relationships(ctx, p, c, base, column, to, field).await?)
        }
        CheckKind::RowCount { .. } => Plan::RowCount(base),
        CheckKind::Expect(_) => Plan::Rows(base),
        CheckKind::ExpectTable(_) => {
            if !one_row(base.logical_plan()) {
                return Err(placed(p, c, "`expect_table` is an expression over aggregates (`count(*) > 0`, `sum(a) = sum(b)`); it gave one value per row".into())
                    .with_help("for a condition on every row, use `expect`"));
            }
            Plan::Table(base)
        }
        CheckKind::Freshness { column, .. } => {
            has_columns(p, c, &base, &c.target, std::slice::from_ref(column))?;
            freshness(p, c, base, column)?
        }
    };
    Ok(Compiled {
        check: c.clone(),
        plan,
    })
}

/// The rows a check looks at: its target, filtered by `where`; for `expect` the rows where
/// the expression is false, for `expect_table` the expression's one value.
async fn base(ctx: &SessionContext, p: &Pipeline, c: &Check) -> Result<DataFrame, Diagnostic> {
    let table = relation_sql(&c.target);
    let mut q = Query::default();
    match (&c.kind, &c.filter) {
        (CheckKind::Expect(e), f) => {
            q.text(&format!("SELECT * FROM {table} WHERE "));
            if let Some(f) = f {
                q.fragment("(", f, ") AND ");
            }
            q.fragment("NOT (", e, ")");
        }
        (CheckKind::ExpectTable(e), f) => {
            q.fragment("SELECT (", e, &format!(") AS ok FROM {table}"));
            if let Some(f) = f {
                q.fragment(" WHERE (", f, ")");
            }
        }
        (_, Some(f)) => q.fragment(&format!("SELECT * FROM {table} WHERE ("), f, ")"),
        (_, None) => {
            return ctx
                .table(c.target.as_str())
                .await
                .map_err(|e| placed(p, c, crate::plan::clean_message(&e.to_string())));
        }
    }
    // Positions in the generated query are its own; `place` maps them into the file.
    let identity = SqlOrigin::identity(p.file.clone());
    crate::plan::plan_sql(ctx, &q.sql, &identity)
        .await
        .map_err(|d| q.place(d, p, c))
}

/// A generated query with the user's SQL fragments, each on lines of its own.
#[derive(Default)]
struct Query {
    sql: String,
    line: usize,
    fragments: Vec<(usize, usize, SqlOrigin)>,
}

impl Query {
    fn text(&mut self, s: &str) {
        if self.line == 0 {
            self.line = 1;
        }
        self.sql.push_str(s);
        self.line += s.matches('\n').count();
    }

    /// `before`, the fragment on its own lines (a `--` comment in it ends there), `after`.
    fn fragment(&mut self, before: &str, f: &CheckSql, after: &str) {
        self.text(before);
        self.text("\n");
        let first = self.line;
        self.text(&f.text);
        self.fragments.push((first, self.line, f.origin.clone()));
        self.text("\n");
        self.text(after);
    }

    /// Where a fragment mentions the column a "No field named" message is about.
    fn unknown_column(&self, message: &str) -> Option<(&SqlOrigin, Pos)> {
        let rest = message.split("No field named ").nth(1)?;
        let named = rest.split(". ").next()?.trim_end_matches('.');
        let name = named.rsplit('.').next()?.trim_matches('"').to_string();
        if name.is_empty() {
            return None;
        }
        let lines: Vec<&str> = self.sql.lines().collect();
        self.fragments.iter().find_map(|(first, last, origin)| {
            (*first..=*last).find_map(|l| {
                let text = lines.get(l - 1)?;
                let col = text.find(&name)?;
                let col = text[..col].chars().count() + 1;
                Some((origin, origin.map(l - first + 1, col)))
            })
        })
    }

    /// Moves a diagnostic about the generated query to the fragment it points into, or to
    /// the check.
    fn place(&self, mut d: Diagnostic, p: &Pipeline, c: &Check) -> Diagnostic {
        let hit = d
            .pos
            .and_then(|pos| {
                self.fragments
                    .iter()
                    .find(|(first, last, _)| (*first..=*last).contains(&pos.line))
                    .map(|(first, _, origin)| (origin, origin.map(pos.line - first + 1, pos.col)))
            })
            .or_else(|| self.unknown_column(&d.message));
        match hit {
            Some((origin, pos)) => {
                d.pos = Some(pos);
                d.file = Some(origin.file.clone());
                d.yaml_path = origin.yaml_path.clone();
            }
            None => {
                d.pos = p.pos(&c.yaml_path);
                d.file = Some(p.file.clone());
                d.yaml_path = Some(c.yaml_path.clone());
            }
        }
        d.message = format!("check `{}` on `{}`: {}", c.name, c.target, d.message);
        d
    }
}

/// A table name in generated SQL, resolving to what `register_table(name)` registered.
fn relation_sql(name: &str) -> String {
    if name == name.to_lowercase() {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        // Registration lowercased it, as the unquoted name is in SQL.
        name.to_string()
    }
}

fn placed(p: &Pipeline, c: &Check, msg: String) -> Diagnostic {
    Diagnostic::error(format!("check `{}` on `{}`: {msg}", c.name, c.target))
        .in_file(&p.file)
        .at_path(c.yaml_path.clone())
        .at(p.pos(&c.yaml_path))
}

fn has_columns(
    p: &Pipeline,
    c: &Check,
    df: &DataFrame,
    table: &str,
    cols: &[String],
) -> Result<(), Diagnostic> {
    let names: Vec<&str> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    for col in cols {
        if names.contains(&col.as_str()) {
            continue;
        }
        let help = crate::diagnostic::column_hint(col, &names)
            .unwrap_or_else(|| format!("columns of `{table}`: {}", names.join(", ")));
        return Err(placed(p, c, format!("`{col}` is not a column of `{table}`")).with_help(help));
    }
    Ok(())
}

async fn relationships(
    ctx: &SessionContext,
    p: &Pipeline,
    c: &Check,
    base: DataFrame,
    column: &str,
    to: &str,
    field: &str,
) -> Result<DataFrame, Diagnostic> {
    let engine = |e: DataFusionError| placed(p, c, crate::plan::clean_message(&e.to_string()));
    has_columns(p, c, &base, &c.target, &[column.to_string()])?;
    let parent = ctx.table(to).await.map_err(engine)?;
    has_columns(p, c, &parent, to, &[field.to_string()])?;
    let (left, right) = ("__etl_checked", "__etl_parent");
    let on = Expr::Column(Column::new(Some(left), column))
        .eq(Expr::Column(Column::new(Some(right), field)));
    let parent = parent
        .select(vec![ident(field)])
        .and_then(|d| d.alias(right))
        .map_err(engine)?;
    base.filter(ident(column).is_not_null())
        .and_then(|d| d.alias(left))
        .and_then(|d| d.join_on(parent, JoinType::LeftAnti, [on]))
        .map_err(engine)
}

fn freshness(p: &Pipeline, c: &Check, base: DataFrame, column: &str) -> Result<Plan, Diagnostic> {
    let field = base
        .schema()
        .field_with_unqualified_name(column)
        .map_err(|e| placed(p, c, e.to_string()))?;
    let dt = field.data_type();
    if !matches!(
        dt,
        DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    ) {
        return Err(placed(
            p,
            c,
            format!(
                "freshness needs a timestamp or date column; `{column}` is a {}",
                crate::types::sql_name(dt)
            ),
        ));
    }
    // Text is read as timestamps (ISO 8601), each value, so the newest is found by time.
    let latest = max(cast(
        ident(column),
        DataType::Timestamp(TimeUnit::Microsecond, None),
    ));
    base.aggregate(vec![], vec![latest.alias("latest")])
        .map(Plan::Freshness)
        .map_err(|e| placed(p, c, crate::plan::clean_message(&e.to_string())))
}

/// True when a query gives one row: a projection over an aggregate without groups.
fn one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => {
            matches!(p.input.as_ref(), LogicalPlan::Aggregate(a) if a.group_expr.is_empty())
        }
        _ => false,
    }
}

fn literal(v: &serde_json::Value) -> Expr {
    match v {
        serde_json::Value::Bool(b) => lit(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => lit(i),
            (None, Some(f)) => lit(f),
            _ => lit(n.to_string()),
        },
        serde_json::Value::String(s) => lit(s.clone()),
        serde_json::Value::Null => lit(datafusion::scalar::ScalarValue::Null),
        other => lit(other.to_string()),
    }
}
