//! Data-quality checks, compiled to DataFusion DataFrame queries.
//!
//! Every check counts the rows that break it and keeps a few of them as a sample for the
//! report. Values from the pipeline file become literals in expressions, never SQL text.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, lit, not};
use datafusion::prelude::{DataFrame, SessionContext, ident};

use crate::diagnostic::Diagnostic;
use crate::model::{Check, CheckKind, Pipeline};
use crate::spec::CheckSeverity;

/// How many failing rows a report shows.
const SAMPLE_ROWS: usize = 5;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check.
    pub check: Check,
    /// Rows (or groups) breaking it; 0 when it holds.
    pub failures: u64,
    /// What was found, for the report.
    pub detail: String,
    /// A few failing rows, as a table.
    pub sample: Option<String>,
}

impl CheckOutcome {
    /// True when the check holds.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }

    /// True when it failed with severity error.
    pub fn is_fatal(&self) -> bool {
        !self.passed() && self.check.severity == CheckSeverity::Error
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

/// The failing rows of a row-level check, as a lazy DataFrame (also used by `validate` to
/// plan checks without running them).
pub fn failing_rows(df: DataFrame, kind: &CheckKind) -> Result<Option<DataFrame>, DataFusionError> {
    Ok(Some(match kind {
        CheckKind::NotNull(cols) => {
            let cond = cols
                .iter()
                .map(|c| ident(c).is_null())
                .reduce(Expr::or)
                .unwrap_or(lit(false));
            df.filter(cond)?
        }
        CheckKind::AcceptedValues { column, values } => {
            let list = values.iter().map(literal).collect();
            df.filter(
                ident(column)
                    .is_not_null()
                    .and(not(ident(column).in_list(list, false))),
            )?
        }
        CheckKind::Expect(expr) => {
            let e = df.parse_sql_expr(expr)?;
            df.filter(not(e))?
        }
        CheckKind::Unique(cols) => {
            let groups = cols.iter().map(ident).collect();
            df.aggregate(groups, vec![count(lit(1)).alias("duplicates")])?
                .filter(ident("duplicates").gt(lit(1)))?
        }
        CheckKind::RowCount { .. } => return Ok(None),
    }))
}

/// Plans a check without running it. A problem (an unknown column, an expression that does
/// not plan) comes back as a diagnostic at the check's place in the pipeline file.
pub async fn plan_check(
    ctx: &SessionContext,
    p: &Pipeline,
    check: &Check,
) -> Result<(), Diagnostic> {
    let planned = match ctx.table(check.target.as_str()).await {
        Ok(df) => failing_rows(df, &check.kind).map(|_| ()),
        Err(e) => Err(e),
    };
    planned.map_err(|e| {
        Diagnostic::error(format!(
            "check `{}`: {}",
            check.name,
            crate::plan::clean_message(&e.to_string())
        ))
        .in_file(&p.file)
        .at_path(check.yaml_path.clone())
        .at(p.pos(&check.yaml_path))
    })
}

/// Runs one check against its target table.
pub async fn run_check(
    ctx: &SessionContext,
    check: &Check,
) -> Result<CheckOutcome, DataFusionError> {
    let df = ctx.table(check.target.as_str()).await?;
    if let CheckKind::RowCount { min, max } = &check.kind {
        let n = df.count().await? as u64;
        let low = min.is_some_and(|m| n < m);
        let high = max.is_some_and(|m| n > m);
        let bound = match (min, max) {
            (Some(a), Some(b)) => format!("between {a} and {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => String::new(),
        };
        return Ok(CheckOutcome {
            check: check.clone(),
            failures: u64::from(low || high),
            detail: format!("{n} rows, expected {bound}"),
            sample: None,
        });
    }
    let failing = failing_rows(df, &check.kind)?.expect("row-level check");
    let n = failing.clone().count().await? as u64;
    let sample = if n > 0 {
        let batches: Vec<RecordBatch> = failing.limit(0, Some(SAMPLE_ROWS))?.collect().await?;
        pretty_format_batches(&batches).ok().map(|t| t.to_string())
    } else {
        None
    };
    let detail = match (&check.kind, n) {
        (_, 0) => "ok".to_string(),
        (CheckKind::Unique(_), n) => format!("{n} duplicated keys"),
        (CheckKind::NotNull(_), n) => format!("{n} rows with NULL"),
        (CheckKind::AcceptedValues { .. }, n) => format!("{n} rows with other values"),
        (_, n) => format!("{n} failing rows"),
    };
    Ok(CheckOutcome {
        check: check.clone(),
        failures: n,
        detail,
        sample,
    })
}
