//! Planning: a validated pipeline becomes a DataFusion session where every source is a table
//! and every transform a view (lazy, so DataFusion optimises across them).
//!
//! Planning every transform's SQL against real schemas is the last step of `etl validate`;
//! its errors are turned into diagnostics that point into the pipeline file.

pub mod counting;
pub mod graph;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{DataFrame, SessionContext, ident};
use datafusion::scalar::ScalarValue;
use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Pipeline, Source, SqlOrigin};
use crate::source::{self, SourceError};

/// How planning treats sources that cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// Running: a source that cannot be opened fails the run.
    Strict,
    /// Validating: a missing input is a warning; what depends on it is not planned.
    Lenient,
}

/// A pipeline registered in a session.
pub struct Planned {
    /// The session holding the tables and views.
    pub ctx: SessionContext,
    /// Output schemas of sources and transforms that could be planned.
    pub schemas: IndexMap<String, SchemaRef>,
    /// Warnings (lenient mode).
    pub warnings: Diagnostics,
    /// Bad-row logs of sources that skip or quarantine bad rows.
    pub bad_rows: Vec<Arc<source::BadRowLog>>,
    /// The rows read from each source, counted as they are scanned.
    pub reads: IndexMap<String, Arc<counting::ReadCount>>,
}

/// Why planning failed.
#[derive(Debug)]
pub enum PlanError {
    /// A source could not be opened (a run failure: exit 1).
    Source(Box<SourceError>, Diagnostic),
    /// SQL that does not plan, or other invalid pipeline content (exit 2).
    Invalid(Diagnostics),
}

/// The rows of one incremental source a group of sinks reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    /// The cursor column.
    pub cursor: String,
    /// Read rows with a cursor greater than this (none: from the start).
    pub lower: Option<ScalarValue>,
    /// And at most this (none: the source had no rows with a cursor).
    pub upper: Option<ScalarValue>,
    /// Read rows whose cursor is NULL too.
    pub include_nulls: bool,
}

impl Bounds {
    /// The filter selecting these rows.
    pub fn filter(&self) -> Expr {
        let c = ident(&self.cursor);
        let mut e = match (&self.lower, &self.upper) {
            (_, None) => lit(false),
            (None, Some(u)) => c.clone().lt_eq(lit(u.clone())),
            (Some(l), Some(u)) => c
                .clone()
                .gt(lit(l.clone()))
                .and(c.clone().lt_eq(lit(u.clone()))),
        };
        if self.include_nulls {
            e = e.or(c.is_null());
        }
        e
    }
}

/// What a run asks of planning besides the pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions<'a> {
    /// Only these sources and transforms (all when `None`).
    pub only: Option<&'a [String]>,
    /// Incremental sources limited to these rows.
    pub bounds: Option<&'a HashMap<String, Bounds>>,
    /// HTTP sources read what they landed (`etl run --from-landed`).
    pub from_landed: bool,
    /// Only schemas are needed (dry runs; always so in lenient mode).
    pub probe: bool,
    /// The run ignores watermarks (`--full-refresh`).
    pub full_refresh: bool,
}

/// Registers every source and transform of `pipeline` (limited to `only`, when given).
pub async fn plan(
    ctx: SessionContext,
    pipeline: &Pipeline,
    mode: SourceMode,
    only: Option<&[String]>,
) -> Result<Planned, PlanError> {
    let opts = PlanOptions {
        only,
        ..Default::default()
    };
    plan_with(ctx, pipeline, mode, &opts).await
}

/// Like [`plan`], with incremental sources limited to the rows in `bounds`.
pub async fn plan_bounded(
    ctx: SessionContext,
    pipeline: &Pipeline,
    mode: SourceMode,
    only: Option<&[String]>,
    bounds: &HashMap<String, Bounds>,
) -> Result<Planned, PlanError> {
    let opts = PlanOptions {
        only,
        bounds: Some(bounds),
        ..Default::default()
    };
    plan_with(ctx, pipeline, mode, &opts).await
}

/// Registers every source and transform of `pipeline`, as `opts` say.
pub async fn plan_with(
    ctx: SessionContext,
    pipeline: &Pipeline,
    mode: SourceMode,
    opts: &PlanOptions<'_>,
) -> Result<Planned, PlanError> {
    let only = opts.only;
    let wanted = |n: &str| only.is_none_or(|o| o.iter().any(|x| x == n));
    let mut planned = Planned {
        ctx,
        schemas: IndexMap::new(),
        warnings: Diagnostics::default(),
        bad_rows: Vec::new(),
        reads: IndexMap::new(),
    };
    let mut unavailable: Vec<String> = Vec::new();
    for (name, src) in pipeline.sources.iter().filter(|(n, _)| wanted(n)) {
        let build = crate::connector::BuildOptions {
            bounds: opts.bounds.and_then(|b| b.get(name)),
            from_landed: opts.from_landed,
            probe: opts.probe || mode == SourceMode::Lenient,
            full_refresh: opts.full_refresh,
        };
        if !register_source(&mut planned, pipeline, src, mode, build).await? {
            unavailable.push(name.clone());
        }
    }
    let mut errors = Diagnostics::default();
    for (name, t) in pipeline.transforms.iter().filter(|(n, _)| wanted(n)) {
        if t.deps.iter().any(|d| unavailable.contains(d)) {
            unavailable.push(name.clone());
            continue;
        }
        match plan_sql(&planned.ctx, &t.sql, &t.origin).await {
            Ok(df) => {
                planned
                    .schemas
                    .insert(name.clone(), Arc::new(df.schema().as_arrow().clone()));
                planned
                    .ctx
                    .register_table(name.as_str(), df.into_view())
                    .map_err(|e| {
                        PlanError::Invalid(one(engine_diag(
                            pipeline,
                            &format!("transforms.{name}"),
                            &e,
                        )))
                    })?;
            }
            Err(d) => {
                errors.push(d);
                unavailable.push(name.clone());
            }
        }
    }
    if errors.has_errors() {
        return Err(PlanError::Invalid(errors));
    }
    Ok(planned)
}

/// Opens one source and registers it. Returns false when it could not be opened in lenient
/// mode (a warning was recorded); in strict mode that is an error.
async fn register_source(
    planned: &mut Planned,
    pipeline: &Pipeline,
    src: &Source,
    mode: SourceMode,
    build: crate::connector::BuildOptions<'_>,
) -> Result<bool, PlanError> {
    let bounds = build.bounds;
    let built = source::build_with(&planned.ctx, pipeline, src, build).await;
    match built {
        Ok(crate::connector::Built { table, bad_rows }) => {
            planned.bad_rows.extend(bad_rows);
            let reads = Arc::new(counting::ReadCount::new(&src.name));
            planned.reads.insert(src.name.clone(), reads.clone());
            let table: Arc<dyn datafusion::catalog::TableProvider> =
                Arc::new(counting::CountedTable::new(table, reads));
            let engine = |e: DataFusionError| {
                PlanError::Invalid(one(engine_diag(pipeline, &src.yaml_path, &e)))
            };
            let table = match bounds {
                // Only the rows past the watermark: the filter reaches the source's scan.
                Some(b) => planned
                    .ctx
                    .read_table(table)
                    .and_then(|df| df.filter(b.filter()))
                    .map_err(engine)?
                    .into_view(),
                None => table,
            };
            planned.schemas.insert(src.name.clone(), table.schema());
            planned
                .ctx
                .register_table(src.name.as_str(), table)
                .map_err(|e| PlanError::Invalid(one(engine_diag(pipeline, &src.yaml_path, &e))))?;
            Ok(true)
        }
        Err(e) => {
            let path_key = match e.yaml_key() {
                Some(key) if pipeline.pos(&format!("{}.{key}", src.yaml_path)).is_some() => {
                    format!("{}.{key}", src.yaml_path)
                }
                _ if src.locations.is_empty() => src.yaml_path.clone(),
                _ => format!("{}.path", src.yaml_path),
            };
            let mut d = source_diag(pipeline, &path_key, &e);
            if mode == SourceMode::Strict {
                return Err(PlanError::Source(Box::new(e), d));
            }
            d.severity = crate::diagnostic::Severity::Warning;
            d.help = Some(not_planned(pipeline, &src.name));
            planned.warnings.push(d);
            Ok(false)
        }
    }
}

/// What a source that could not be planned leaves unplanned: the transforms, sinks and
/// checks that read it, directly or through other transforms.
fn not_planned(p: &Pipeline, source: &str) -> String {
    let mut parts = Vec::new();
    let transforms: Vec<&str> = p
        .transforms
        .keys()
        .map(|k| k.as_str())
        .filter(|k| p.reads(k, source))
        .collect();
    let sinks: Vec<&str> = p.sinks_reading(source).map(|k| k.as_str()).collect();
    let checks: Vec<&str> = p
        .checks
        .iter()
        .filter(|c| {
            c.relations()
                .iter()
                .any(|r| r == source || p.reads(r, source))
        })
        .map(|c| c.name.as_str())
        .collect();
    for (what, names) in [
        ("transforms", transforms),
        ("sinks", sinks),
        ("checks", checks),
    ] {
        if !names.is_empty() {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "nothing reads this source".into()
    } else {
        format!(
            "not planned, since they read it: {} (an error under --strict)",
            parts.join("; ")
        )
    }
}

fn one(d: Diagnostic) -> Diagnostics {
    let mut ds = Diagnostics::default();
    ds.push(d);
    ds
}

/// Plans one SQL query; errors point into the file the SQL came from.
pub async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
    origin: &SqlOrigin,
) -> Result<DataFrame, Diagnostic> {
    let state = ctx.state();
    let stmt = crate::validate::parse_sql(sql, origin)?;
    let plan = state
        .statement_to_plan(stmt)
        .await
        .map_err(|e| sql_diagnostic(&e, origin, sql))?;
    Ok(DataFrame::new(state, plan))
}

/// Turns a DataFusion planning error into a placed diagnostic.
pub fn sql_diagnostic(err: &DataFusionError, origin: &SqlOrigin, sql: &str) -> Diagnostic {
    let (message, span) = match err.diagnostic() {
        Some(d) => (
            d.message.clone(),
            d.span
                .map(|s| (s.start.line as usize, s.start.column as usize)),
        ),
        None => (clean_message(&err.to_string()), None),
    };
    let span = span
        .filter(|(l, _)| *l > 0)
        .or_else(|| guess_position(&message, sql));
    let mut d = Diagnostic::error(format!("SQL error: {message}"))
        .in_file(&origin.file)
        .at(Some(
            span.map(|(l, c)| origin.map(l, c))
                .unwrap_or_else(|| origin.map(1, 1)),
        ))
        .at_path(origin.yaml_path.clone().unwrap_or_default());
    if let Some(help) = err.diagnostic().and_then(|d| d.helps.first()) {
        d = d.with_help(help.message.clone());
    } else if let Some((column, names)) = field_not_found(err) {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let help = crate::diagnostic::column_hint(&column, &names).unwrap_or_else(|| {
            format!(
                "columns here: {}",
                crate::diagnostic::name_list(names.iter().copied())
            )
        });
        if let Some(valid) = message.split_once("Valid fields are ") {
            d.message = format!("SQL error: {}", valid.0.trim().trim_end_matches('.'));
        }
        d = d.with_help(help);
    } else if let Some(valid) = message.split_once("Valid fields are ") {
        d.message = format!("SQL error: {}", valid.0.trim().trim_end_matches('.'));
        d = d.with_help(format!("columns here: {}", valid.1.trim_end_matches('.')));
    }
    d
}

/// The column an error says is not there, and the columns in scope (unqualified, each once).
fn field_not_found(err: &DataFusionError) -> Option<(String, Vec<String>)> {
    let mut e: &dyn std::error::Error = err;
    loop {
        if let Some(datafusion::common::SchemaError::FieldNotFound {
            field,
            valid_fields,
        }) = e.downcast_ref::<datafusion::common::SchemaError>()
        {
            let mut names: Vec<String> = Vec::new();
            for c in valid_fields {
                if !names.contains(&c.name) {
                    names.push(c.name.clone());
                }
            }
            return Some((field.name.clone(), names));
        }
        e = e.source()?;
    }
}

/// Strips DataFusion's error prefixes, and says engine and object-store failures the way
/// [`crate::engine_error`] explains them.
pub fn clean_message(msg: &str) -> String {
    crate::engine_error::explain(msg).message
}

/// Finds the first mention of a quoted name from the message in the SQL (1-based).
fn guess_position(message: &str, sql: &str) -> Option<(usize, usize)> {
    let name = message
        .split('\'')
        .nth(1)
        .or_else(|| message.split('`').nth(1))?;
    let bare = name.rsplit('.').next()?.trim_matches('"');
    if bare.is_empty() {
        return None;
    }
    for (i, line) in sql.lines().enumerate() {
        if let Some(c) = line.find(bare) {
            return Some((i + 1, line[..c].chars().count() + 1));
        }
    }
    None
}

/// A source failure as a diagnostic at its YAML entry.
pub fn source_diag(pipeline: &Pipeline, yaml_path: &str, e: &SourceError) -> Diagnostic {
    let mut d = Diagnostic::error(e.to_string())
        .in_file(&pipeline.file)
        .at_path(yaml_path);
    d.pos = pipeline.pos(yaml_path);
    if let Some(help) = e.help() {
        d = d.with_help(help);
    }
    crate::engine_error::polish(d)
}

fn engine_diag(pipeline: &Pipeline, yaml_path: &str, e: &DataFusionError) -> Diagnostic {
    let explained = crate::engine_error::explain(&e.to_string());
    let mut d = Diagnostic::error(explained.message)
        .in_file(&pipeline.file)
        .at_path(yaml_path);
    d.pos = pipeline.pos(yaml_path);
    match explained.help {
        Some(help) => d.with_help(help),
        None => d,
    }
}
