//! Commit records: what each sink committed (its run, and the watermark of each incremental
//! source it read), kept in `etl_state.commits` beside the data and written in the same
//! transaction as the rows.

use std::collections::BTreeMap;

use super::{db_err, target_of};
use crate::db::pg::{PgSession, PgTarget};
use crate::sink::{SinkCommits, SinkError};
use crate::state::store::PG_STATE_SCHEMA;
use crate::state::watermark::Watermark;

const COMMITS_TABLE: &str = "commits";

pub(super) async fn ensure_commits_table(t: &PgTarget, s: &PgSession) -> Result<(), SinkError> {
    s.client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {PG_STATE_SCHEMA}; \
             CREATE TABLE IF NOT EXISTS {PG_STATE_SCHEMA}.{COMMITS_TABLE} ( \
               pipeline text NOT NULL, sink text NOT NULL, source text NOT NULL DEFAULT '', \
               mark jsonb, run_id text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
               PRIMARY KEY (pipeline, sink, source))"
        ))
        .await
        .map_err(|e| SinkError::Db {
            name: String::new(),
            reason: t.query_error(&e).to_string(),
        })
}

/// The run that last committed a sink (`None`: never, or no commits table).
pub(super) async fn last_run(
    t: &PgTarget,
    s: &PgSession,
    pipeline: &str,
    sink: &str,
) -> Result<Option<String>, SinkError> {
    let rows = s
        .client
        .query(
            &format!(
                "SELECT run_id FROM {PG_STATE_SCHEMA}.{COMMITS_TABLE} WHERE pipeline = $1 AND sink = $2 AND source = '' \
                 AND to_regclass('{PG_STATE_SCHEMA}.{COMMITS_TABLE}') IS NOT NULL"
            ),
            &[&pipeline, &sink],
        )
        .await;
    match rows {
        Ok(rows) => Ok(rows.first().map(|r| r.get(0))),
        // No commits table yet: nothing was ever committed here.
        Err(e) if e.code().map(|c| c.code()) == Some("42P01") => Ok(None),
        Err(e) => Err(db_err(sink, t.query_error(&e))),
    }
}

/// Reads a Postgres sink's commit records (for the next run's watermarks and fencing).
pub async fn read_commits(
    p: &crate::model::Pipeline,
    connection: &str,
    sink: &str,
) -> Result<SinkCommits, SinkError> {
    let t = target_of(p, connection, sink)?;
    let s = t.connect().await.map_err(|e| db_err(sink, e))?;
    let rows = s
        .client
        .query(
            &format!("SELECT source, mark::text, run_id FROM {PG_STATE_SCHEMA}.{COMMITS_TABLE} WHERE pipeline = $1 AND sink = $2"),
            &[&crate::state::key(&p.name), &sink],
        )
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) if e.code().map(|c| c.code()) == Some("42P01") => return Ok(SinkCommits::default()),
        Err(e) => return Err(db_err(sink, t.query_error(&e))),
    };
    let mut out = SinkCommits::default();
    for r in rows {
        let source: String = r.get(0);
        if source.is_empty() {
            out.run_id = Some(r.get(2));
        } else if let Some(text) = r.get::<_, Option<&str>>(1)
            && let Ok(w) = serde_json::from_str(text)
        {
            out.marks.insert(source, w);
        }
    }
    Ok(out)
}

/// Records a sink's commit in its transaction: a compare-and-set on the last run, then the
/// watermarks.
pub(super) async fn record_commit(
    t: &PgTarget,
    s: &PgSession,
    pipeline: &str,
    sink: &str,
    run_id: &str,
    prev: Option<String>,
    marks: &BTreeMap<String, Watermark>,
) -> Result<(), SinkError> {
    ensure_commits_table(t, s).await?;
    let q = |e: tokio_postgres::Error| db_err(sink, t.query_error(&e));
    let table = format!("{PG_STATE_SCHEMA}.{COMMITS_TABLE}");
    let n = match &prev {
        Some(prev) => s
            .client
            .execute(
                &format!("UPDATE {table} SET run_id = $3, committed_at = now() WHERE pipeline = $1 AND sink = $2 AND source = '' AND run_id = $4"),
                &[&pipeline, &sink, &run_id, prev],
            )
            .await
            .map_err(q)?,
        None => s
            .client
            .execute(
                &format!("INSERT INTO {table} (pipeline, sink, source, run_id) VALUES ($1, $2, '', $3) ON CONFLICT DO NOTHING"),
                &[&pipeline, &sink, &run_id],
            )
            .await
            .map_err(q)?,
    };
    if n != 1 {
        let other = s
            .client
            .query_opt(
                &format!(
                    "SELECT run_id FROM {table} WHERE pipeline = $1 AND sink = $2 AND source = ''"
                ),
                &[&pipeline, &sink],
            )
            .await
            .map_err(q)?
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|| "a run that has since been reset".into());
        return Err(SinkError::Fenced {
            name: sink.to_string(),
            other,
        });
    }
    for (source, mark) in marks {
        let json = serde_json::to_string(mark).unwrap_or_default();
        s.client
            .execute(
                &format!(
                    "INSERT INTO {table} (pipeline, sink, source, mark, run_id) VALUES ($1, $2, $3, $4::text::jsonb, $5) \
                     ON CONFLICT (pipeline, sink, source) DO UPDATE SET mark = EXCLUDED.mark, run_id = EXCLUDED.run_id, committed_at = now()"
                ),
                &[&pipeline, &sink, source, &json, &run_id],
            )
            .await
            .map_err(q)?;
    }
    Ok(())
}

/// Sets or forgets a sink's recorded watermark for a source (`etl state --set/--reset`).
pub async fn set_mark(
    p: &crate::model::Pipeline,
    connection: &str,
    sink: &str,
    source: &str,
    mark: Option<&Watermark>,
) -> Result<(), SinkError> {
    let t = target_of(p, connection, sink)?;
    let s = t.connect().await.map_err(|e| db_err(sink, e))?;
    ensure_commits_table(&t, &s).await?;
    let q = |e: tokio_postgres::Error| db_err(sink, t.query_error(&e));
    let table = format!("{PG_STATE_SCHEMA}.{COMMITS_TABLE}");
    let key = crate::state::key(&p.name);
    match mark {
        None => s
            .client
            .execute(
                &format!("DELETE FROM {table} WHERE pipeline = $1 AND sink = $2 AND source = $3"),
                &[&key, &sink, &source],
            )
            .await
            .map_err(q)?,
        Some(m) => {
            let json = serde_json::to_string(m).unwrap_or_default();
            s.client
                .execute(
                    &format!(
                        "INSERT INTO {table} (pipeline, sink, source, mark, run_id) VALUES ($1, $2, $3, $4::text::jsonb, 'set') \
                         ON CONFLICT (pipeline, sink, source) DO UPDATE SET mark = EXCLUDED.mark, committed_at = now()"
                    ),
                    &[&key, &sink, &source, &json],
                )
                .await
                .map_err(q)?
        }
    };
    Ok(())
}
