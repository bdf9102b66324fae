//! `type: mysql`: a table or a query of a MySQL or MariaDB database, as a DataFusion table.
//!
//! Like the PostgreSQL source: projection, exact filters and a limit go into the SQL sent
//! (shown by `etl explain`), and rows stream into Arrow batches with flat memory. Types are
//! faithful: unsigned integers stay unsigned, decimals keep their precision and scale, `ENUM`
//! and `SET` read as text, and zero dates are an error or NULL (`zero_dates`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use schemars::JsonSchema;
use serde::Deserialize;

use super::SourceError;
use crate::connector::{
    BuildCx, Built, CheckCx, SourceConnector, SourceEntry, config_schema, parse_config,
};
use crate::db::mysql::{
    RowDecoder, ZeroDates, connect, query_error, quote_ident, quote_table, schema_of,
};
use crate::db::sql::{ColKind, Dialect, Pushdown, RemoteColumn};
use crate::db::{DbConnection, DbError};
use crate::spec::source::IncrementalSpec;

/// What to do with a zero or partial date (`0000-00-00`, `2024-05-00`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZeroDatesOption {
    /// Stop with an error naming the column (default).
    #[default]
    Error,
    /// Read it as NULL.
    Null,
}

/// A MySQL or MariaDB source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlSourceSpec {
    /// The named connection (`type: mysql`) to read from.
    pub connection: String,
    /// The table to read: `table`, or `database.table`.
    #[serde(default)]
    pub table: Option<String>,
    /// A query to read instead of a table (one `SELECT`; pushed filters wrap it).
    #[serde(default)]
    pub query: Option<String>,
    /// Read only rows past the last committed value of a cursor column.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// Zero or partial dates: `error` (default) or `null`.
    #[serde(default)]
    pub zero_dates: ZeroDatesOption,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
}

impl MySqlSourceSpec {
    fn relation_sql(&self) -> Result<String, String> {
        match (&self.table, &self.query) {
            (Some(t), None) if !t.trim().is_empty() => Ok(quote_table(t)),
            (None, Some(q)) if !q.trim().is_empty() => Ok(format!(
                "({}) AS `_etl_query`",
                q.trim().trim_end_matches(';')
            )),
            _ => Err("a mysql source has exactly one of `table` or `query`".into()),
        }
    }
}

#[async_trait]
impl SourceConnector for MySqlSourceSpec {
    fn kind(&self) -> &'static str {
        "mysql"
    }
    fn connection(&self) -> Option<&str> {
        Some(&self.connection)
    }
    fn incremental(&self) -> Option<&IncrementalSpec> {
        self.incremental.as_ref()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require_connection(&self.connection, &["mysql"]);
        if let Err(e) = self.relation_sql() {
            cx.error("", e);
        }
    }

    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        let name = cx.source.name.clone();
        let db = |error| SourceError::Db {
            name: name.clone(),
            error,
        };
        let from = self.relation_sql().map_err(|reason| SourceError::Read {
            name: name.clone(),
            file: String::new(),
            reason,
        })?;
        let conn = crate::db::connection(cx.pipeline, &self.connection).map_err(db)?;
        let mut c = connect(&conn).await.map_err(db)?;
        let stmt = c
            .prep(format!("SELECT * FROM {from} LIMIT 0"))
            .await
            .map_err(|e| db(query_error(&conn, &e)))?;
        let (schema, _) = schema_of(&stmt.columns()).map_err(|reason| {
            db(DbError::Query {
                connection: conn.name.clone(),
                reason,
            })
        })?;
        let _ = c.disconnect().await;
        let columns = schema
            .fields()
            .iter()
            .map(|f| RemoteColumn {
                name: f.name().clone(),
                kind: match f.data_type() {
                    DataType::Utf8 => ColKind::Text,
                    DataType::Float32 | DataType::Float64 => ColKind::Float,
                    DataType::Binary | DataType::Time64(_) => ColKind::Other,
                    _ => ColKind::Exact,
                },
                // Default collations ignore case and trailing blanks: `=` is a superset.
                exact_text_eq: false,
                padded: false,
            })
            .collect();
        let zero_dates = match self.zero_dates {
            ZeroDatesOption::Error => ZeroDates::Error,
            ZeroDatesOption::Null => ZeroDates::Null,
        };
        Ok(Built {
            table: Arc::new(MySqlTable {
                conn,
                from,
                schema,
                columns,
                zero_dates,
            }),
            bad_rows: None,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `type: mysql` (MySQL and MariaDB).
pub const ENTRY: SourceEntry = SourceEntry {
    name: "mysql",
    aliases: &["mariadb"],
    parse: |node, path| Ok(Arc::new(parse_config::<MySqlSourceSpec>(node, path)?)),
    schema: config_schema::<MySqlSourceSpec>,
};

#[derive(Debug)]
struct MySqlTable {
    conn: DbConnection,
    from: String,
    schema: SchemaRef,
    columns: Vec<RemoteColumn>,
    zero_dates: ZeroDates,
}

#[async_trait]
impl TableProvider for MySqlTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let p = Pushdown {
            dialect: Dialect::MySql,
            columns: &self.columns,
        };
        Ok(filters.iter().map(|f| p.classify(f).0).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = datafusion::common::project_schema(&self.schema, projection)?;
        let cols = if schema.fields().is_empty() {
            // `SELECT FROM t` is not MySQL: count rows with a constant column, dropped below.
            "1".to_string()
        } else {
            schema
                .fields()
                .iter()
                .map(|f| quote_ident(f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {cols} FROM {}", self.from);
        let p = Pushdown {
            dialect: Dialect::MySql,
            columns: &self.columns,
        };
        let conditions: Vec<String> = filters.iter().filter_map(|f| p.classify(f).1).collect();
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(Arc::new(MySqlScanExec {
            conn: self.conn.clone(),
            sql,
            props: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema,
            zero_dates: self.zero_dates,
        }))
    }
}

#[derive(Debug)]
struct MySqlScanExec {
    conn: DbConnection,
    sql: String,
    schema: SchemaRef,
    zero_dates: ZeroDates,
    props: Arc<PlanProperties>,
}

impl DisplayAs for MySqlScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let conn = &self.conn.name;
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "MySqlScan: connection={conn}, sql={}", self.sql)
            }
            DisplayFormatType::TreeRender => write!(f, "connection={conn}\nsql={}", self.sql),
        }
    }
}

impl ExecutionPlan for MySqlScanExec {
    fn name(&self) -> &str {
        "MySqlScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "no partition {partition}"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let (conn, sql, schema, zero_dates) = (
            self.conn.clone(),
            self.sql.clone(),
            self.schema.clone(),
            self.zero_dates,
        );
        let batch_size = ctx.session_config().batch_size().max(1);
        let task = tokio::spawn(async move {
            if let Err(e) = read(&conn, &sql, schema, zero_dates, batch_size, &tx).await {
                let _ = tx.send(Err(DataFusionError::External(Box::new(e)))).await;
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            crate::db::abort_on_drop(rx, task),
        )))
    }
}

async fn read(
    conn: &DbConnection,
    sql: &str,
    schema: SchemaRef,
    zero_dates: ZeroDates,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<datafusion::arrow::record_batch::RecordBatch>>,
) -> Result<(), DbError> {
    let q = |e: mysql_async::Error| query_error(conn, &e);
    let bad = |reason: String| DbError::Query {
        connection: conn.name.clone(),
        reason,
    };
    let mut c = connect(conn).await?;
    let stmt = c.prep(sql).await.map_err(q)?;
    let count_only = schema.fields().is_empty();
    let mut decoder = RowDecoder::new(&stmt.columns(), zero_dates).map_err(bad)?;
    let mut rows = c
        .exec_stream::<mysql_async::Row, _, _>(&stmt, ())
        .await
        .map_err(q)?;
    let mut counted = 0usize;
    let emit = |decoder: &mut RowDecoder, counted: &mut usize| -> Result<_, DbError> {
        if count_only {
            let n = std::mem::take(counted);
            let opts = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
            datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
                schema.clone(),
                vec![],
                &opts,
            )
            .map_err(|e| bad(e.to_string()))
        } else {
            decoder.flush().map_err(bad)
        }
    };
    while let Some(row) = rows.next().await {
        let row = row.map_err(q)?;
        if count_only {
            counted += 1;
        } else {
            decoder.push(row.unwrap_raw()).map_err(bad)?;
        }
        if decoder.rows().max(counted) >= batch_size {
            let batch = emit(&mut decoder, &mut counted)?;
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
    }
    if decoder.rows().max(counted) > 0 {
        let batch = emit(&mut decoder, &mut counted)?;
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}
