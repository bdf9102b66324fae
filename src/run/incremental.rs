//! Incremental reading: which rows a run reads from each incremental source, and the
//! watermarks it commits.
//!
//! For each incremental source, every sink that reads it has a watermark: the largest cursor
//! value it committed (from a Postgres sink's own commit records, else from the state
//! backend). When the run starts it fixes its upper bound, the largest cursor value present
//! then, so rows arriving during the run wait for the next one, and every consumer of the
//! source sees the same rows. It reads `watermark < cursor <= upper bound` (minus
//! `lookback`), pushed into the source (SQL `WHERE`, Parquet row-group pruning). Rows whose
//! cursor is NULL are counted; `on_null_cursor` says whether that fails the run, skips them or
//! includes them. Sinks whose watermarks differ (after a `--select` run, say) are run in
//! separate groups, each reading from its own watermark, and committed together.

use std::collections::{BTreeMap, HashMap};

use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::lit;
use datafusion::prelude::{SessionContext, ident};
use datafusion::scalar::ScalarValue;

use crate::diagnostic::Diagnostic;
use crate::model::Pipeline;
pub use crate::plan::Bounds;
use crate::spec::source::OnNullCursor;
use crate::state::store::StateStore;
use crate::state::watermark::{Mark, Watermark, Watermarks, cursor_type_supported};

/// Sinks that read the same rows.
#[derive(Debug, Clone)]
pub struct Group {
    /// The sinks.
    pub sinks: Vec<String>,
    /// Source → the rows read.
    pub bounds: HashMap<String, Bounds>,
}

/// What a run reads and commits incrementally.
#[derive(Debug, Default)]
pub struct Plan {
    /// Groups of sinks; one group when nothing is incremental.
    pub groups: Vec<Group>,
    /// Sink → source → watermark committed with the sink's rows.
    pub marks: HashMap<String, BTreeMap<String, Watermark>>,
    /// The watermarks to save once every sink committed (`None`: nothing incremental).
    pub state: Option<Watermarks>,
    /// Things to tell the user (NULL cursors, a full refresh of an append sink).
    pub notes: Vec<String>,
}

/// Decides what each sink reads from each incremental source.
pub async fn plan(
    ctx: &SessionContext,
    p: &Pipeline,
    sinks: &[String],
    sink_marks: &HashMap<String, BTreeMap<String, Watermark>>,
    full_refresh: bool,
    run_id: &str,
) -> Result<Plan, Diagnostic> {
    let mut out = Plan::default();
    let incremental: Vec<&String> = p
        .sources
        .iter()
        .filter(|(n, s)| {
            s.spec.incremental().is_some() && sinks.iter().any(|k| p.upstream(k).contains(n))
        })
        .map(|(n, _)| n)
        .collect();
    if incremental.is_empty() {
        out.groups.push(Group {
            sinks: sinks.to_vec(),
            bounds: HashMap::new(),
        });
        return Ok(out);
    }
    let store = StateStore::new(&p.state_dir, p.state_url.as_deref())
        .map_err(|e| Diagnostic::error(e.to_string()).in_file(&p.file))?;
    let key = crate::state::key(&p.name);
    let mut state = store
        .load(ctx, &key)
        .await
        .map_err(|e| Diagnostic::error(e.to_string()).in_file(&p.file))?;
    // Per sink, per source: the watermark it starts from.
    let mut starts: HashMap<String, BTreeMap<String, Option<Watermark>>> = HashMap::new();
    let mut uppers: HashMap<String, (Bounds, Option<Watermark>)> = HashMap::new();
    for name in &incremental {
        let src = &p.sources[name.as_str()];
        let inc = src.spec.incremental().expect("incremental");
        let readers: Vec<&String> = sinks.iter().filter(|k| p.reads(k, name)).collect();
        let mut lowest: Option<Watermark> = None;
        let mut first = true;
        for k in &readers {
            let w = if full_refresh {
                None
            } else {
                sink_marks
                    .get(k.as_str())
                    .and_then(|m| m.get(name.as_str()))
                    .cloned()
                    .or_else(|| state.get(name, k).map(|m| m.value.clone()))
            };
            starts
                .entry((*k).clone())
                .or_default()
                .insert((*name).clone(), w.clone());
            if first
                || w.is_none()
                || lowest
                    .as_ref()
                    .zip(w.as_ref())
                    .is_some_and(|(l, w)| cmp(w, l).is_lt())
            {
                lowest = w;
            }
            first = false;
        }
        let bounds = upper_bound(
            ctx,
            p,
            name,
            &inc.cursor,
            lowest.as_ref(),
            inc.on_null_cursor,
            &mut out.notes,
        )
        .await?;
        let upper = bounds.upper.as_ref().and_then(Watermark::from_scalar);
        uppers.insert((*name).clone(), (bounds, upper));
    }
    if full_refresh {
        for k in sinks {
            if p.sinks[k].mode == crate::spec::sink::SinkMode::Append {
                out.notes.push(format!(
                    "--full-refresh: sink `{k}` appends, so it adds every row of its incremental sources again; use `overwrite` or `upsert` to replace them"
                ));
            }
        }
    }
    // Group the sinks by where they start.
    type Start = BTreeMap<String, Option<Watermark>>;
    let mut groups: Vec<(Start, Vec<String>)> = Vec::new();
    for k in sinks {
        let start = starts.get(k).cloned().unwrap_or_default();
        match groups.iter_mut().find(|(s, _)| *s == start) {
            Some((_, members)) => members.push(k.clone()),
            None => groups.push((start, vec![k.clone()])),
        }
    }
    for (start, members) in groups {
        let mut bounds = HashMap::new();
        for (source, w) in &start {
            let (b, upper) = &uppers[source];
            let src = &p.sources[source.as_str()];
            let inc = src.spec.incremental().expect("incremental");
            let lower = match w {
                None => None,
                Some(w) => {
                    Some(lower_bound(p, source, w, inc.lookback.as_ref(), &b.cursor, ctx).await?)
                }
            };
            bounds.insert(source.clone(), Bounds { lower, ..b.clone() });
            for k in &members {
                // The new watermark: the upper bound, or the old one when nothing was new.
                if let Some(m) = upper.clone().or_else(|| w.clone()) {
                    out.marks
                        .entry(k.clone())
                        .or_default()
                        .insert(source.clone(), m.clone());
                    state.set(
                        source,
                        k,
                        Mark {
                            value: m,
                            run_id: run_id.to_string(),
                            updated_at: chrono::Utc::now().to_rfc3339(),
                        },
                    );
                }
            }
        }
        out.groups.push(Group {
            sinks: members,
            bounds,
        });
    }
    out.state = Some(state);
    Ok(out)
}

/// Orders two watermarks of the same cursor.
fn cmp(a: &Watermark, b: &Watermark) -> std::cmp::Ordering {
    let (x, y) = (a.to_scalar_natural(), b.to_scalar_natural());
    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
}

/// The largest cursor value present now (rows above `lowest`), and the NULL-cursor rule.
async fn upper_bound(
    ctx: &SessionContext,
    p: &Pipeline,
    source: &str,
    cursor: &str,
    lowest: Option<&Watermark>,
    on_null: OnNullCursor,
    notes: &mut Vec<String>,
) -> Result<Bounds, Diagnostic> {
    let place = |msg: String| {
        Diagnostic::error(msg)
            .in_file(&p.file)
            .at_path(format!("sources.{source}.incremental.cursor"))
            .at(p.pos(&format!("sources.{source}.incremental.cursor")))
    };
    let df = ctx.table(source).await.map_err(|e| place(e.to_string()))?;
    let field = df
        .schema()
        .field_with_unqualified_name(cursor)
        .map_err(|_| {
            let names: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            place(format!(
                "the cursor column `{cursor}` is not a column of source `{source}`"
            ))
            .suggest(cursor, names.iter().map(String::as_str))
        })?;
    let dt = field.data_type().clone();
    if !cursor_type_supported(&dt) {
        return Err(place(format!(
            "the cursor column `{cursor}` is a {}; a cursor is an integer, date, timestamp or string column",
            crate::types::sql_name(&dt)
        )));
    }
    let c = ident(cursor);
    let above = match lowest.and_then(|w| w.to_scalar(&dt)) {
        Some(l) => df.clone().filter(c.clone().gt(lit(l))),
        None => Ok(df.clone()),
    };
    let read_err = |e: datafusion::error::DataFusionError| {
        place(format!(
            "cannot read the cursor of source `{source}`: {}",
            crate::plan::clean_message(&e.to_string())
        ))
    };
    let batches = above
        .and_then(|d| d.aggregate(vec![], vec![max(c.clone()).alias("upper")]))
        .map_err(read_err)?
        .collect()
        .await
        .map_err(read_err)?;
    let upper = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| ScalarValue::try_from_array(b.column(0), 0).ok())
        .filter(|v| !v.is_null());
    let nulls = df
        .filter(c.clone().is_null())
        .and_then(|d| d.aggregate(vec![], vec![count(lit(1)).alias("n")]))
        .map_err(read_err)?
        .collect()
        .await
        .map_err(read_err)?;
    let null_rows = nulls
        .first()
        .and_then(|b| ScalarValue::try_from_array(b.column(0), 0).ok())
        .and_then(|v| match v {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        })
        .unwrap_or(0);
    if null_rows > 0 {
        match on_null {
            OnNullCursor::Fail => {
                return Err(place(format!(
                    "source `{source}` has {null_rows} rows whose cursor `{cursor}` is NULL, which no watermark can place"
                ))
                .with_help("say what to do with them: `on_null_cursor: skip` (leave them out) or `include` (read them on every run, with an upsert sink)"));
            }
            OnNullCursor::Skip => notes.push(format!(
                "source `{source}`: {null_rows} rows with a NULL cursor `{cursor}` were skipped"
            )),
            OnNullCursor::Include => notes.push(format!(
                "source `{source}`: {null_rows} rows with a NULL cursor `{cursor}` were read again"
            )),
        }
    }
    Ok(Bounds {
        cursor: cursor.to_string(),
        lower: None,
        upper,
        include_nulls: on_null == OnNullCursor::Include,
    })
}

/// The lower bound for a watermark, moved back by `lookback`.
async fn lower_bound(
    p: &Pipeline,
    source: &str,
    w: &Watermark,
    lookback: Option<&serde_json::Value>,
    cursor: &str,
    ctx: &SessionContext,
) -> Result<ScalarValue, Diagnostic> {
    let place = |msg: String| {
        Diagnostic::error(msg)
            .in_file(&p.file)
            .at_path(format!("sources.{source}.incremental"))
            .at(p.pos(&format!("sources.{source}.incremental")))
    };
    let df = ctx.table(source).await.map_err(|e| place(e.to_string()))?;
    let dt = df
        .schema()
        .field_with_unqualified_name(cursor)
        .map(|f| f.data_type().clone())
        .map_err(|e| place(e.to_string()))?;
    let value = w.to_scalar(&dt).ok_or_else(|| {
        place(format!(
            "the saved watermark of source `{source}` ({}) does not fit the cursor column's type ({}); set it again with `etl state --set {source}=VALUE` or `--reset {source}`",
            w.display(),
            crate::types::sql_name(&dt)
        ))
    })?;
    let Some(lb) = lookback else {
        return Ok(value);
    };
    crate::state::watermark::step_back(&value, lb).map_err(place)
}
