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
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::DataFrame;
use schemars::JsonSchema;
use serde::Deserialize;

mod records;
mod twophase;

pub use records::{read_commits, set_mark};
pub use twophase::{commit, gid_for, is_committed, prepare, roll_back};

use super::commit::{CommitCx, Entry};
use super::{SinkCommits, SinkError, StagedOutput};
use crate::connector::{CheckCx, SinkConnector, SinkEntry, StageCx, config_schema, parse_config};
use crate::db::pg::load::{LoadError, LoadMode, LoadSpec, OpenLoad, SchemaChange, qualified};
use crate::db::pg::{PgSession, PgTarget};
use crate::db::sql::split_table;
use crate::model::Sink;
use crate::spec::sink::SinkMode;

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
            && records::last_run(
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
        records::record_commit(
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

pub(crate) fn db_err(sink: &str, e: crate::db::DbError) -> SinkError {
    SinkError::Db {
        name: sink.to_string(),
        reason: e.to_string(),
    }
}

pub(crate) fn target_of(
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

impl PgGroup {
    /// The connection target.
    pub(crate) fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The open session, while the transaction is open.
    pub(crate) fn session(&self) -> &tokio::sync::Mutex<Option<PgSession>> {
        &self.session
    }
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
