//! `type: postgres`: rows loaded into a PostgreSQL table with binary COPY.
//!
//! The sinks of a run that use the same connection share one transaction, left open until
//! the run commits (see [`super::commit`]): their tables change together with the run's
//! other sinks, or not at all. In that transaction each sink also records its commit in
//! `etl_state.commits` (pipeline, sink, run, and the watermark of each incremental source
//! it read), so the next run knows exactly what every table holds, even if the process died
//! between the database's commit and the local state write. Recording is a compare-and-set
//! on the run that committed before: a concurrent run of the same pipeline that read the
//! same rows is refused instead of loading them twice.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::DataFrame;
use schemars::JsonSchema;
use serde::Deserialize;

use super::commit::{CommitCx, Entry};
use super::{SinkCommits, SinkError, StagedOutput};
use crate::connector::{CheckCx, SinkConnector, SinkEntry, StageCx, config_schema, parse_config};
use crate::db::pg::load::{LoadError, LoadMode, LoadSpec, OpenLoad, SchemaChange, qualified};
use crate::db::pg::{PgSession, PgTarget};
use crate::db::sql::split_table;
use crate::model::Sink;
use crate::spec::sink::SinkMode;
use crate::state::store::PG_STATE_SCHEMA;
use crate::state::watermark::Watermark;

/// What to do when the output has columns the table does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnSchemaChange {
    /// Stop, naming the new columns (default).
    #[default]
    Fail,
    /// Add them to the table.
    AddColumns,
}

/// A PostgreSQL sink.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkSpec {
    /// The source or transform to write.
    pub from: String,
    /// The named connection (`type: postgres`).
    pub connection: String,
    /// The table: `schema.table`, or `table` in `public`. Created (with its schema) when
    /// missing, with `key` as its primary key.
    pub table: String,
    /// `overwrite` (default: the table's rows are replaced atomically), `append`, `upsert`
    /// (insert or update by `key`), or `error_if_exists` (fail if the table has rows).
    #[serde(default)]
    pub mode: SinkMode,
    /// Key columns: required for `upsert`; the primary key of a table etl creates.
    #[serde(default)]
    pub key: Vec<String>,
    /// Output columns the table lacks: `fail` (default) or `add_columns`.
    #[serde(default)]
    pub on_schema_change: OnSchemaChange,
    /// Indexes to create after loading, one list of columns each (`[[day], [country, day]]`).
    #[serde(default)]
    pub create_indexes: Vec<Vec<String>>,
    /// Let `overwrite` replace the rows of a table that etl did not load for this sink.
    #[serde(default)]
    pub replace_existing: bool,
    /// What the table holds.
    #[serde(default)]
    pub description: Option<String>,
}

impl PostgresSinkSpec {
    fn load_spec(&self, sink: &str) -> Result<LoadSpec, String> {
        let table = split_table(&self.table)?;
        let mode = match self.mode {
            SinkMode::Append => LoadMode::Append,
            SinkMode::Upsert => LoadMode::Upsert,
            SinkMode::Overwrite | SinkMode::ErrorIfExists => LoadMode::Overwrite,
        };
        Ok(LoadSpec {
            sink: sink.to_string(),
            table,
            mode,
            key: self.key.clone(),
            on_schema_change: match self.on_schema_change {
                OnSchemaChange::Fail => SchemaChange::Fail,
                OnSchemaChange::AddColumns => SchemaChange::AddColumns,
            },
            create_indexes: self.create_indexes.clone(),
        })
    }
}

#[async_trait]
impl SinkConnector for PostgresSinkSpec {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn from(&self) -> &str {
        &self.from
    }
    fn mode(&self) -> SinkMode {
        self.mode
    }
    fn connection(&self) -> Option<&str> {
        Some(&self.connection)
    }
    fn replace_existing(&self) -> bool {
        self.replace_existing
    }
    fn describe_target(&self, _sink: &Sink) -> String {
        format!("{}:{}", self.connection, self.table)
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require_connection(&self.connection, &["postgres"]);
        if let Err(e) = split_table(&self.table) {
            cx.error("table", e);
        }
        if self.mode == SinkMode::Upsert && self.key.is_empty() {
            cx.error(
                "mode",
                "`upsert` needs `key:` (the columns that identify a row)",
            );
        }
        for (i, cols) in self.create_indexes.iter().enumerate() {
            if cols.is_empty() {
                cx.error(
                    &format!("create_indexes[{i}]"),
                    "an index needs at least one column",
                );
            }
        }
    }

    async fn committed(
        &self,
        cx: &StageCx<'_>,
        sink: &Sink,
    ) -> Result<Option<SinkCommits>, SinkError> {
        read_commits(cx.pipeline, &self.connection, &sink.name)
            .await
            .map(Some)
    }

    async fn check_ownership(&self, cx: &StageCx<'_>, sink: &Sink) -> Result<(), SinkError> {
        if self.replace_existing
            || !matches!(self.mode, SinkMode::Overwrite | SinkMode::ErrorIfExists)
        {
            return Ok(());
        }
        let target = target_of(cx.pipeline, &self.connection, &sink.name)?;
        let s = target.connect().await.map_err(|e| db_err(&sink.name, e))?;
        let table = split_table(&self.table).map_err(|reason| SinkError::Db {
            name: sink.name.clone(),
            reason,
        })?;
        let has_rows = s
            .client
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                &[&table.0, &table.1],
            )
            .await
            .map_err(|e| db_err(&sink.name, target.query_error(&e)))?
            .is_some();
        if !has_rows {
            return Ok(());
        }
        let any_row = s
            .client
            .query_opt(&format!("SELECT 1 FROM {} LIMIT 1", qualified(&table)), &[])
            .await
            .map_err(|e| db_err(&sink.name, target.query_error(&e)))?
            .is_some();
        if any_row && self.mode == SinkMode::ErrorIfExists {
            return Err(SinkError::Exists {
                name: sink.name.clone(),
                path: self.table.clone(),
            });
        }
        if any_row
            && last_run(
                &target,
                &s,
                &crate::state::key(&cx.pipeline.name),
                &sink.name,
            )
            .await?
            .is_none()
        {
            return Err(SinkError::Foreign {
                name: sink.name.clone(),
                path: format!("table {} (connection `{}`)", self.table, self.connection),
                file: "rows that no run of this sink loaded".into(),
            });
        }
        Ok(())
    }

    async fn stage(
        &self,
        cx: &StageCx<'_>,
        sink: &Sink,
        df: DataFrame,
    ) -> Result<Box<dyn StagedOutput>, SinkError> {
        let spec = self.load_spec(&sink.name).map_err(|reason| SinkError::Db {
            name: sink.name.clone(),
            reason,
        })?;
        let target = target_of(cx.pipeline, &self.connection, &sink.name)?;
        let key = format!("postgres:{}", self.connection);
        let group: Arc<PgGroup> = cx
            .shared
            .get_or_try_insert(&key, async {
                let s = target.connect().await.map_err(|e| db_err(&sink.name, e))?;
                s.client
                    .batch_execute("BEGIN")
                    .await
                    .map_err(|e| db_err(&sink.name, target.query_error(&e)))?;
                Ok::<_, SinkError>(PgGroup {
                    target: target.clone(),
                    session: tokio::sync::Mutex::new(Some(s)),
                })
            })
            .await?;
        let guard = group.session.lock().await;
        let Some(s) = guard.as_ref() else {
            return Err(SinkError::Db {
                name: sink.name.clone(),
                reason: "the transaction is closed".into(),
            });
        };
        let input = Arc::new(df.schema().as_arrow().clone());
        let load_err = |e: LoadError| SinkError::Db {
            name: sink.name.clone(),
            reason: e.to_string(),
        };
        let (mut load, targets) = OpenLoad::start(&target, s, spec, &input)
            .await
            .map_err(load_err)?;
        let stream = df
            .execute_stream()
            .await
            .map_err(|error| SinkError::Write {
                name: sink.name.clone(),
                error,
            })?;
        load.copy(&target, s, &targets, input, stream)
            .await
            .map_err(load_err)?;
        load.finish(&target, s, &targets).await.map_err(load_err)?;
        let marks = cx.marks.get(&sink.name).cloned().unwrap_or_default();
        record_commit(
            &target,
            s,
            &crate::state::key(&cx.pipeline.name),
            &sink.name,
            cx.run_id,
            cx.prev_runs.get(&sink.name).cloned().flatten(),
            &marks,
        )
        .await?;
        let rows = load.rows;
        drop(guard);
        Ok(Box::new(PgStaged {
            sink: sink.clone(),
            connection: self.connection.clone(),
            group,
            rows,
        }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `type: postgres`.
pub const ENTRY: SinkEntry = SinkEntry {
    name: "postgres",
    aliases: &["postgresql"],
    parse: |node, path| Ok(Arc::new(parse_config::<PostgresSinkSpec>(node, path)?)),
    schema: config_schema::<PostgresSinkSpec>,
};

fn db_err(sink: &str, e: crate::db::DbError) -> SinkError {
    SinkError::Db {
        name: sink.to_string(),
        reason: e.to_string(),
    }
}

fn target_of(
    p: &crate::model::Pipeline,
    connection: &str,
    sink: &str,
) -> Result<PgTarget, SinkError> {
    let conn = crate::db::connection(p, connection).map_err(|e| db_err(sink, e))?;
    PgTarget::new(conn).map_err(|e| db_err(sink, e))
}

/// One connection's open transaction, shared by the run's sinks on that connection.
pub struct PgGroup {
    target: PgTarget,
    session: tokio::sync::Mutex<Option<PgSession>>,
}

/// A sink's rows, loaded into its connection's open transaction.
struct PgStaged {
    sink: Sink,
    connection: String,
    group: Arc<PgGroup>,
    rows: u64,
}

#[async_trait]
impl StagedOutput for PgStaged {
    fn sink(&self) -> &Sink {
        &self.sink
    }
    fn rows(&self) -> u64 {
        self.rows
    }
    fn bytes(&self) -> Option<u64> {
        None
    }
    fn detail(&self) -> String {
        format!("→ {}", self.sink.location)
    }
    async fn prepare(&mut self, _cx: &CommitCx<'_>) -> Result<Entry, SinkError> {
        Ok(Entry::Postgres {
            connection: self.connection.clone(),
            sinks: vec![(self.sink.name.clone(), self.rows)],
            gid: None,
        })
    }
    async fn abort(&mut self, _cx: &CommitCx<'_>) {
        let mut guard = self.group.session.lock().await;
        if let Some(s) = guard.take() {
            let _ = s.client.batch_execute("ROLLBACK").await;
        }
    }
}

const COMMITS_TABLE: &str = "commits";

async fn ensure_commits_table(t: &PgTarget, s: &PgSession) -> Result<(), SinkError> {
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
async fn last_run(
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
async fn record_commit(
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

/// The id of a connection's prepared transaction in a run.
pub fn gid_for(cx: &CommitCx<'_>, connection: &str) -> String {
    let key = crate::state::key(&cx.pipeline.name);
    format!(
        "etl_{}_{}",
        crate::state::short_hash(&format!("{key}/{connection}")),
        cx.run_id
    )
}

/// `PREPARE TRANSACTION` of a connection's open transaction (two-phase commit).
pub async fn prepare(cx: &CommitCx<'_>, connection: &str, gid: &str) -> Result<(), SinkError> {
    let group: Arc<PgGroup> = cx
        .shared
        .get(&format!("postgres:{connection}"))
        .await
        .ok_or_else(|| SinkError::Db {
            name: connection.to_string(),
            reason: "no open transaction to prepare".into(),
        })?;
    let guard = group.session.lock().await;
    let Some(s) = guard.as_ref() else {
        return Err(SinkError::Db {
            name: connection.to_string(),
            reason: "the transaction is closed".into(),
        });
    };
    s.client
        .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .await
        .map_err(|e| {
            let mut reason = group.target.query_error(&e).to_string();
            if e.code().map(|c| c.code()) == Some("55000") {
                reason = format!(
                    "{reason}: sinks on more than one PostgreSQL connection commit together with two-phase commit, which this server has disabled (set max_prepared_transactions > 0), or write them from separate pipelines"
                );
            }
            SinkError::Db { name: connection.to_string(), reason }
        })?;
    Ok(())
}

async fn session_for(
    cx: &CommitCx<'_>,
    connection: &str,
) -> Result<(PgTarget, PgSession), SinkError> {
    let t = target_of(cx.pipeline, connection, connection)?;
    let s = t.connect().await.map_err(|e| db_err(connection, e))?;
    Ok((t, s))
}

async fn prepared_exists(t: &PgTarget, s: &PgSession, gid: &str) -> Result<bool, SinkError> {
    Ok(s.client
        .query_opt("SELECT 1 FROM pg_prepared_xacts WHERE gid = $1", &[&gid])
        .await
        .map_err(|e| db_err(gid, t.query_error(&e)))?
        .is_some())
}

/// Commits a connection's transaction: the open one (the commit point), or a prepared one.
pub async fn commit(
    cx: &CommitCx<'_>,
    connection: &str,
    gid: Option<&str>,
) -> Result<(), SinkError> {
    let live: Option<Arc<PgGroup>> = cx.shared.get(&format!("postgres:{connection}")).await;
    match gid {
        None => {
            let Some(group) = live else {
                return Err(SinkError::Db {
                    name: connection.to_string(),
                    reason: "the transaction of an interrupted run cannot be finished (it was not prepared); roll the run back".into(),
                });
            };
            let mut guard = group.session.lock().await;
            let s = guard.take().ok_or_else(|| SinkError::Db {
                name: connection.to_string(),
                reason: "the transaction is closed".into(),
            })?;
            s.client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| db_err(connection, group.target.query_error(&e)))
        }
        Some(gid) => {
            let (t, s) = session_for(cx, connection).await?;
            if prepared_exists(&t, &s, gid).await? {
                s.client
                    .batch_execute(&format!("COMMIT PREPARED '{gid}'"))
                    .await
                    .map_err(|e| db_err(connection, t.query_error(&e)))?;
            }
            Ok(())
        }
    }
}

/// Rolls a connection's transaction back.
pub async fn roll_back(
    cx: &CommitCx<'_>,
    connection: &str,
    gid: Option<&str>,
) -> Result<(), SinkError> {
    if let Some(group) = cx
        .shared
        .get::<PgGroup>(&format!("postgres:{connection}"))
        .await
    {
        let mut guard = group.session.lock().await;
        if let Some(s) = guard.take() {
            let _ = s.client.batch_execute("ROLLBACK").await;
        }
    }
    if let Some(gid) = gid {
        let (t, s) = session_for(cx, connection).await?;
        if prepared_exists(&t, &s, gid).await? {
            s.client
                .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
                .await
                .map_err(|e| db_err(connection, t.query_error(&e)))?;
        }
    }
    Ok(())
}

/// True when the run of `cx` committed `sink` on this connection.
pub async fn is_committed(
    cx: &CommitCx<'_>,
    connection: &str,
    sink: &str,
) -> Result<bool, SinkError> {
    let (t, s) = session_for(cx, connection).await?;
    Ok(
        last_run(&t, &s, &crate::state::key(&cx.pipeline.name), sink)
            .await?
            .as_deref()
            == Some(cx.run_id),
    )
}
