//! Reading from PostgreSQL: describing a table or query as an Arrow schema, and streaming
//! a query's rows with binary COPY into record batches (memory stays flat: the server is
//! read only as fast as batches are consumed).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use futures::StreamExt;
use tokio_postgres::types::Type;

use super::decode::CopyDecoder;
use super::load::qualified;
use super::types::{PgScalar, PgType, arrow_field, pg_type};
use super::{PgSession, PgTarget};
use crate::db::DbError;
use crate::db::sql::{ColKind, RemoteColumn};

/// What a source reads: a table, or a query.
#[derive(Debug, Clone)]
pub enum Relation {
    /// `schema.table`.
    Table(String, String),
    /// A query, used as a subquery.
    Query(String),
}

impl Relation {
    /// The relation as SQL after `FROM`.
    pub fn from_sql(&self) -> String {
        match self {
            Relation::Table(s, t) => qualified(&(s.clone(), t.clone())),
            Relation::Query(q) => format!("({}) AS \"_etl_query\"", q.trim().trim_end_matches(';')),
        }
    }
}

/// A described relation.
#[derive(Debug, Clone)]
pub struct Described {
    /// The Arrow schema of every column.
    pub schema: SchemaRef,
    /// The codec type of every column.
    pub types: Vec<PgType>,
    /// What the pushdown rules know about every column.
    pub columns: Vec<RemoteColumn>,
    /// For a plain table on PostgreSQL 14 or later: its size in pages, so it can be read in
    /// parallel by ranges of row addresses (`ctid`) under one snapshot.
    pub pages: Option<u64>,
}

/// Describes a relation without reading its rows. A column etl cannot read faithfully is an
/// error naming it.
pub async fn describe(t: &PgTarget, s: &PgSession, rel: &Relation) -> Result<Described, DbError> {
    let stmt = s
        .client
        .prepare(&format!("SELECT * FROM {} LIMIT 0", rel.from_sql()))
        .await
        .map_err(|e| t.query_error(&e))?;
    let deterministic = match rel {
        Relation::Table(schema, table) => deterministic_columns(t, s, schema, table).await?,
        Relation::Query(_) => Vec::new(),
    };
    let mut fields = Vec::new();
    let mut types = Vec::new();
    let mut columns = Vec::new();
    for c in stmt.columns() {
        let ty = pg_type(c.name(), c.type_(), c.type_modifier(), "read").map_err(|e| {
            DbError::Query {
                connection: t.conn.name.clone(),
                reason: e.to_string(),
            }
        })?;
        fields.push(arrow_field(c.name(), &ty));
        let base = base_type(c.type_());
        let kind = match (ty.array, ty.scalar) {
            (true, _) => ColKind::Other,
            (_, PgScalar::Text)
                if *base == Type::TEXT || *base == Type::VARCHAR || *base == Type::BPCHAR =>
            {
                ColKind::Text
            }
            (
                _,
                PgScalar::Int2
                | PgScalar::Int4
                | PgScalar::Int8
                | PgScalar::Numeric { .. }
                | PgScalar::Bool
                | PgScalar::Date
                | PgScalar::Timestamp
                | PgScalar::Timestamptz,
            ) => ColKind::Exact,
            (_, PgScalar::Float4 | PgScalar::Float8) => ColKind::Float,
            _ => ColKind::Other,
        };
        columns.push(RemoteColumn {
            name: c.name().to_string(),
            kind,
            exact_text_eq: deterministic.iter().any(|d| d == c.name()),
            padded: *base == Type::BPCHAR,
        });
        types.push(ty);
    }
    let pages = match rel {
        Relation::Table(schema, table) => table_pages(t, s, schema, table).await?,
        Relation::Query(_) => None,
    };
    Ok(Described {
        schema: Arc::new(Schema::new(fields)),
        types,
        columns,
        pages,
    })
}

/// The size of a plain table in pages, when the server can scan `ctid` ranges (14+).
async fn table_pages(
    t: &PgTarget,
    s: &PgSession,
    schema: &str,
    table: &str,
) -> Result<Option<u64>, DbError> {
    let row = s
        .client
        .query_opt(
            "SELECT current_setting('server_version_num')::int >= 140000, \
                    (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'",
            &[&schema, &table],
        )
        .await
        .map_err(|e| t.query_error(&e))?;
    Ok(row.and_then(|r| {
        r.get::<_, bool>(0)
            .then(|| r.get::<_, i64>(1).max(0) as u64)
    }))
}

/// A snapshot exported by a transaction kept open, so several connections read the same
/// state of the database.
pub struct Snapshot {
    /// The exporting session (its transaction stays open while this lives).
    _session: PgSession,
    /// The snapshot's id.
    pub id: String,
}

/// Opens a read-only repeatable-read transaction and exports its snapshot.
pub async fn export_snapshot(t: &PgTarget) -> Result<Snapshot, DbError> {
    let s = t.connect().await?;
    s.client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| t.query_error(&e))?;
    let id: String = s
        .client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| t.query_error(&e))?
        .get(0);
    Ok(Snapshot { _session: s, id })
}

fn base_type(t: &Type) -> &Type {
    match t.kind() {
        tokio_postgres::types::Kind::Domain(b) => base_type(b),
        _ => t,
    }
}

/// Text columns of a table whose collation compares bytes (so `=` is exact).
async fn deterministic_columns(
    t: &PgTarget,
    s: &PgSession,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, DbError> {
    let rows = s
        .client
        .query(
            "SELECT a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attcollation <> 0 AND coalesce(co.collisdeterministic, true)",
            &[&schema, &table],
        )
        .await
        .map_err(|e| t.query_error(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Streams `sql`'s rows as batches into `tx` (decoded as `types`), until the receiver goes
/// away or the rows end.
pub async fn copy_out(
    t: &PgTarget,
    sql: &str,
    snapshot: Option<&str>,
    schema: SchemaRef,
    types: &[PgType],
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
) -> Result<(), DataFusionError> {
    let ext = |e: DbError| DataFusionError::External(Box::new(e));
    let s = t.connect().await.map_err(ext)?;
    if let Some(id) = snapshot {
        s.client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                id.replace('\'', "")
            ))
            .await
            .map_err(|e| ext(t.query_error(&e)))?;
    }
    let stream = s
        .client
        .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
        .await
        .map_err(|e| ext(t.query_error(&e)))?;
    futures::pin_mut!(stream);
    let mut dec = CopyDecoder::new(schema, types, batch_size);
    let decode_err = |e: super::decode::DecodeError| {
        DataFusionError::External(Box::new(DbError::Query {
            connection: t.conn.name.clone(),
            reason: e.to_string(),
        }))
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ext(t.query_error(&e)))?;
        for batch in dec.push(&chunk).map_err(decode_err)? {
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(batch) = dec.finish().map_err(decode_err)? {
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}
