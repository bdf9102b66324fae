//! Loading Arrow batches into a PostgreSQL table with binary COPY, inside a transaction
//! that the run commits together with its other sinks.
//!
//! - `append` copies into the table;
//! - `overwrite` deletes the table's rows and copies the new ones in the same transaction:
//!   readers see the old rows or the new ones (MVCC), never an empty or mixed table, and the
//!   table itself (its views, grants, indexes, owner) is untouched;
//! - `upsert` copies into an unlogged staging table, refuses duplicate keys, then merges with
//!   one `INSERT ... ON CONFLICT (key) DO UPDATE` that rewrites only rows that changed.
//!
//! A missing schema or table is created (the key as primary key). Output columns the table
//! lacks are an error (`on_schema_change: fail`) or added (`add_columns`). Identifiers are
//! quoted; values only ever travel in the COPY stream, never spliced into SQL.

use bytes::BytesMut;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::SinkExt;
use tokio_postgres::types::Type;

use super::encode::{self, CopyEncoder};
use super::types::{PgType, pg_type, sql_type_for};
use super::{PgSession, PgTarget};
use crate::db::DbError;
use crate::db::sql::quote_ident;

/// How rows meet what the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Insert.
    Append,
    /// Replace every row.
    Overwrite,
    /// Insert or update by key.
    Upsert,
}

/// What to do with output columns the table does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaChange {
    /// Stop with an error naming them.
    Fail,
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumns,
}

/// A table load's settings.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The sink's name, for messages.
    pub sink: String,
    /// Schema and table.
    pub table: (String, String),
    /// Mode.
    pub mode: LoadMode,
    /// Key columns (upsert, and the primary key of a created table).
    pub key: Vec<String>,
    /// Schema drift policy.
    pub on_schema_change: SchemaChange,
    /// Indexes to create after the load (column lists).
    pub create_indexes: Vec<Vec<String>>,
}

/// A load failed; nothing it did is visible (its transaction is rolled back).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The database said no.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The output does not fit the table.
    #[error("{0}")]
    Schema(String),
    /// Rows that cannot be upserted as they are.
    #[error("{0}")]
    Keys(String),
}

/// The table's columns: name and type.
pub type Columns = Vec<(String, Type, i32)>;

/// Quoted `schema.table`.
pub fn qualified(table: &(String, String)) -> String {
    format!("{}.{}", quote_ident(&table.0), quote_ident(&table.1))
}

/// The columns of a table (`None` when it does not exist).
pub async fn table_columns(
    t: &PgTarget,
    s: &PgSession,
    table: &(String, String),
) -> Result<Option<Columns>, DbError> {
    let exists = s
        .client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&table.0, &table.1],
        )
        .await
        .map_err(|e| t.query_error(&e))?;
    if exists.is_none() {
        return Ok(None);
    }
    // Describing a query gives each column's resolved type (domains, enums, arrays).
    let stmt = s
        .client
        .prepare(&format!("SELECT * FROM {} LIMIT 0", qualified(table)))
        .await
        .map_err(|e| t.query_error(&e))?;
    Ok(Some(
        stmt.columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone(), c.type_modifier()))
            .collect(),
    ))
}

/// An open load: its transaction stays open until the run commits or aborts.
pub struct OpenLoad {
    spec: LoadSpec,
    /// Rows copied.
    pub rows: u64,
}

impl OpenLoad {
    /// Creates the schema and table when missing, checks or adds columns, and (overwrite)
    /// deletes the old rows. Runs inside the session's open transaction.
    pub async fn start(
        t: &PgTarget,
        s: &PgSession,
        spec: LoadSpec,
        input: &Schema,
    ) -> Result<(Self, Vec<(String, PgType)>), LoadError> {
        let q = |e: tokio_postgres::Error| LoadError::Db(t.query_error(&e));
        let name = qualified(&spec.table);
        let existing = table_columns(t, s, &spec.table).await?;
        let columns = match existing {
            None => {
                create_table(t, s, &spec, input).await?;
                table_columns(t, s, &spec.table)
                    .await?
                    .ok_or_else(|| LoadError::Schema(format!("table {name} was not created")))?
            }
            Some(cols) => {
                let missing: Vec<&Field> = input
                    .fields()
                    .iter()
                    .filter(|f| !cols.iter().any(|(c, _, _)| c == f.name()))
                    .map(|f| f.as_ref())
                    .collect();
                if !missing.is_empty() {
                    add_columns(t, s, &spec, &missing).await?;
                    table_columns(t, s, &spec.table).await?.unwrap_or(cols)
                } else {
                    cols
                }
            }
        };
        let targets = copy_targets(&spec, &columns, input)?;
        if spec.mode == LoadMode::Overwrite {
            s.client
                .batch_execute(&format!("DELETE FROM {name}"))
                .await
                .map_err(q)?;
        }
        if spec.mode == LoadMode::Upsert {
            check_key(&spec, &columns)?;
            s.client
                .batch_execute(&format!(
                    "CREATE UNLOGGED TABLE {} (LIKE {name} INCLUDING DEFAULTS)",
                    qualified(&staging_table(&spec))
                ))
                .await
                .map_err(q)?;
        }
        Ok((Self { spec, rows: 0 }, targets))
    }

    /// The table the COPY goes into.
    pub fn copy_table(&self) -> (String, String) {
        if self.spec.mode == LoadMode::Upsert {
            staging_table(&self.spec)
        } else {
            self.spec.table.clone()
        }
    }

    /// Copies a stream of batches in with binary COPY.
    pub async fn copy<S>(
        &mut self,
        t: &PgTarget,
        s: &PgSession,
        targets: &[(String, PgType)],
        input: SchemaRef,
        mut batches: S,
    ) -> Result<(), LoadError>
    where
        S: futures::Stream<Item = Result<RecordBatch, datafusion::error::DataFusionError>> + Unpin,
    {
        use futures::StreamExt;
        let encoder = CopyEncoder::new(targets, &input)
            .map_err(|e| LoadError::Schema(schema_msg(&self.spec, &e.to_string())))?;
        let cols = targets
            .iter()
            .map(|(c, _)| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "COPY {} ({cols}) FROM STDIN (FORMAT binary)",
            qualified(&self.copy_table())
        );
        let sink = s
            .client
            .copy_in::<_, bytes::Bytes>(&sql)
            .await
            .map_err(|e| LoadError::Db(t.query_error(&e)))?;
        futures::pin_mut!(sink);
        let mut buf = BytesMut::with_capacity(1 << 20);
        encode::header(&mut buf);
        while let Some(batch) = batches.next().await {
            let batch =
                batch.map_err(|e| LoadError::Schema(format!("sink `{}`: {e}", self.spec.sink)))?;
            encoder
                .encode(&batch, &mut buf)
                .map_err(|e| LoadError::Schema(schema_msg(&self.spec, &e.to_string())))?;
            self.rows += batch.num_rows() as u64;
            if buf.len() >= 1 << 20 {
                sink.send(buf.split().freeze())
                    .await
                    .map_err(|e| LoadError::Db(t.query_error(&e)))?;
                crate::fault::point("copy");
            }
        }
        encode::trailer(&mut buf);
        sink.send(buf.split().freeze())
            .await
            .map_err(|e| LoadError::Db(t.query_error(&e)))?;
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| LoadError::Db(t.query_error(&e)))?;
        Ok(())
    }

    /// After the COPY: merges an upsert, creates indexes.
    pub async fn finish(
        &self,
        t: &PgTarget,
        s: &PgSession,
        targets: &[(String, PgType)],
    ) -> Result<(), LoadError> {
        let q = |e: tokio_postgres::Error| LoadError::Db(t.query_error(&e));
        if self.spec.mode == LoadMode::Upsert {
            self.merge(t, s, targets).await?;
        }
        for cols in &self.spec.create_indexes {
            let idx = format!("{}_{}_idx", self.spec.table.1, cols.join("_"));
            let idx: String = idx.chars().take(63).collect();
            let list = cols
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            s.client
                .batch_execute(&format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ({list})",
                    quote_ident(&idx),
                    qualified(&self.spec.table)
                ))
                .await
                .map_err(q)?;
        }
        Ok(())
    }

    async fn merge(
        &self,
        t: &PgTarget,
        s: &PgSession,
        targets: &[(String, PgType)],
    ) -> Result<(), LoadError> {
        let q = |e: tokio_postgres::Error| LoadError::Db(t.query_error(&e));
        let stage = qualified(&staging_table(&self.spec));
        let key = self
            .spec
            .key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        let dups = s
            .client
            .query(
                &format!("SELECT {key} FROM {stage} GROUP BY {key} HAVING count(*) > 1 LIMIT 3"),
                &[],
            )
            .await
            .map_err(q)?;
        if !dups.is_empty() {
            return Err(LoadError::Keys(format!(
                "sink `{}`: the output has {} rows with the same key ({}), so an upsert cannot tell which one wins; deduplicate them in a transform (for example with row_number() over the key)",
                self.spec.sink,
                if dups.len() >= 3 {
                    "several".to_string()
                } else {
                    dups.len().to_string()
                },
                self.spec.key.join(", ")
            )));
        }
        let cols: Vec<String> = targets.iter().map(|(c, _)| quote_ident(c)).collect();
        let updates: Vec<&String> = cols
            .iter()
            .filter(|c| !self.spec.key.iter().any(|k| &quote_ident(k) == *c))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            let set = updates
                .iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let old = updates
                .iter()
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let new = updates
                .iter()
                .map(|c| format!("EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            // Rows that did not change are left alone: a rerun changes nothing.
            format!("DO UPDATE SET {set} WHERE ({old}) IS DISTINCT FROM ({new})")
        };
        let list = cols.join(", ");
        s.client
            .batch_execute(&format!(
                "INSERT INTO {} AS t ({list}) SELECT {list} FROM {stage} ON CONFLICT ({key}) {action}; DROP TABLE {stage}",
                qualified(&self.spec.table)
            ))
            .await
            .map_err(|e| {
                let msg = super::error_text(&e);
                if msg.contains("no unique or exclusion constraint") {
                    LoadError::Keys(format!(
                        "sink `{}`: table {} has no unique index or primary key on ({}), which an upsert needs; add one (CREATE UNIQUE INDEX ... ON ... ({}))",
                        self.spec.sink,
                        qualified(&self.spec.table),
                        self.spec.key.join(", "),
                        self.spec.key.join(", ")
                    ))
                } else {
                    q(e)
                }
            })
    }
}

fn schema_msg(spec: &LoadSpec, e: &str) -> String {
    format!(
        "sink `{}` (table {}): {e}",
        spec.sink,
        qualified(&spec.table)
    )
}

fn staging_table(spec: &LoadSpec) -> (String, String) {
    let name = format!("_etl_stage_{}", spec.sink);
    (spec.table.0.clone(), name.chars().take(63).collect())
}

fn check_key(spec: &LoadSpec, columns: &Columns) -> Result<(), LoadError> {
    if spec.key.is_empty() {
        return Err(LoadError::Schema(format!(
            "sink `{}`: `upsert` needs `key:`",
            spec.sink
        )));
    }
    for k in &spec.key {
        if !columns.iter().any(|(c, _, _)| c == k) {
            return Err(LoadError::Schema(format!(
                "sink `{}`: key column `{k}` is not a column of table {}",
                spec.sink,
                qualified(&spec.table)
            )));
        }
    }
    Ok(())
}

/// The COPY column list: every output column, typed as its table column.
fn copy_targets(
    spec: &LoadSpec,
    columns: &Columns,
    input: &Schema,
) -> Result<Vec<(String, PgType)>, LoadError> {
    input
        .fields()
        .iter()
        .map(|f| {
            let (_, ty, typmod) =
                columns
                    .iter()
                    .find(|(c, _, _)| c == f.name())
                    .ok_or_else(|| {
                        LoadError::Schema(schema_msg(
                            spec,
                            &format!("column `{}` is not in the table", f.name()),
                        ))
                    })?;
            let t = pg_type(f.name(), ty, *typmod, "write")
                .map_err(|e| LoadError::Schema(schema_msg(spec, &e.to_string())))?;
            Ok((f.name().clone(), t))
        })
        .collect()
}

async fn create_table(
    t: &PgTarget,
    s: &PgSession,
    spec: &LoadSpec,
    input: &Schema,
) -> Result<(), LoadError> {
    let mut defs = Vec::new();
    for f in input.fields() {
        let ty =
            sql_type_for(f).map_err(|e| LoadError::Schema(schema_msg(spec, &e.to_string())))?;
        let not_null = if spec.key.contains(f.name()) {
            " NOT NULL"
        } else {
            ""
        };
        defs.push(format!("{} {ty}{not_null}", quote_ident(f.name())));
    }
    for k in &spec.key {
        if input.field_with_name(k).is_err() {
            return Err(LoadError::Schema(schema_msg(
                spec,
                &format!("key column `{k}` is not in the output"),
            )));
        }
    }
    if !spec.key.is_empty() {
        let key = spec
            .key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        defs.push(format!("PRIMARY KEY ({key})"));
    }
    s.client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {} ({})",
            quote_ident(&spec.table.0),
            qualified(&spec.table),
            defs.join(", ")
        ))
        .await
        .map_err(|e| LoadError::Db(t.query_error(&e)))
}

async fn add_columns(
    t: &PgTarget,
    s: &PgSession,
    spec: &LoadSpec,
    missing: &[&Field],
) -> Result<(), LoadError> {
    let names = missing
        .iter()
        .map(|f| format!("`{}`", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    if spec.on_schema_change == SchemaChange::Fail {
        return Err(LoadError::Schema(format!(
            "sink `{}`: the output has columns that table {} does not: {names} (on_schema_change: fail)",
            spec.sink,
            qualified(&spec.table)
        )));
    }
    for f in missing {
        let ty =
            sql_type_for(f).map_err(|e| LoadError::Schema(schema_msg(spec, &e.to_string())))?;
        s.client
            .batch_execute(&format!(
                "ALTER TABLE {} ADD COLUMN {} {ty}",
                qualified(&spec.table),
                quote_ident(f.name())
            ))
            .await
            .map_err(|e| LoadError::Db(t.query_error(&e)))?;
    }
    Ok(())
}
