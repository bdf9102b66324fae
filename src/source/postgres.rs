//! `type: postgres`: a table or a query of a PostgreSQL database, as a DataFusion table.
//!
//! The columns DataFusion needs, the filters that can be pushed exactly (see
//! [`crate::db::sql`]) and a limit go into the SQL sent to the server, which `etl explain`
//! shows. Rows stream with binary COPY into Arrow batches, so memory stays flat whatever the
//! table's size.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::project_schema;
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
use schemars::JsonSchema;
use serde::Deserialize;

use super::SourceError;
use crate::connector::{
    BuildCx, Built, CheckCx, SourceConnector, SourceEntry, config_schema, parse_config,
};
use crate::db::pg::PgTarget;
use crate::db::pg::read::{Described, Relation, copy_out, describe};
use crate::db::pg::types::PgType;
use crate::db::sql::{Dialect, Pushdown, quote_ident, split_table};
use crate::spec::source::IncrementalSpec;

/// A PostgreSQL source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceSpec {
    /// The named connection (`type: postgres`) to read from.
    pub connection: String,
    /// The table to read: `schema.table`, or `table` in `public`.
    #[serde(default)]
    pub table: Option<String>,
    /// A query to read instead of a table (one `SELECT`; pushed filters wrap it).
    #[serde(default)]
    pub query: Option<String>,
    /// Read only rows past the last committed value of a cursor column.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
}

impl PostgresSourceSpec {
    fn relation(&self) -> Result<Relation, String> {
        match (&self.table, &self.query) {
            (Some(t), None) => split_table(t).map(|(s, t)| Relation::Table(s, t)),
            (None, Some(q)) if !q.trim().is_empty() => Ok(Relation::Query(q.clone())),
            _ => Err("a postgres source has exactly one of `table` or `query`".into()),
        }
    }
}

#[async_trait]
impl SourceConnector for PostgresSourceSpec {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn connection(&self) -> Option<&str> {
        Some(&self.connection)
    }
    fn incremental(&self) -> Option<&IncrementalSpec> {
        self.incremental.as_ref()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require_connection(&self.connection, &["postgres"]);
        if let Err(e) = self.relation() {
            let key = if self.table.is_some() { "table" } else { "" };
            cx.error(key, e);
        }
    }

    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        let name = cx.source.name.clone();
        let db = |error| SourceError::Db {
            name: name.clone(),
            error,
        };
        let relation = self.relation().map_err(|reason| SourceError::Read {
            name: name.clone(),
            file: String::new(),
            reason,
        })?;
        let conn = crate::db::connection(cx.pipeline, &self.connection).map_err(db)?;
        let target = PgTarget::new(conn).map_err(db)?;
        let session = target.connect().await.map_err(db)?;
        let described = describe(&target, &session, &relation).await.map_err(db)?;
        Ok(Built {
            table: Arc::new(PgTable {
                target,
                relation,
                described,
            }),
            bad_rows: None,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `type: postgres`.
pub const ENTRY: SourceEntry = SourceEntry {
    name: "postgres",
    aliases: &["postgresql"],
    parse: |node, path| Ok(Arc::new(parse_config::<PostgresSourceSpec>(node, path)?)),
    schema: config_schema::<PostgresSourceSpec>,
};

/// A PostgreSQL relation as a DataFusion table.
#[derive(Debug)]
struct PgTable {
    target: PgTarget,
    relation: Relation,
    described: Described,
}

impl PgTable {
    fn pushdown(&self) -> Pushdown<'_> {
        Pushdown {
            dialect: Dialect::Postgres,
            columns: &self.described.columns,
        }
    }
}

#[async_trait]
impl TableProvider for PgTable {
    fn schema(&self) -> SchemaRef {
        self.described.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let p = self.pushdown();
        Ok(filters.iter().map(|f| p.classify(f).0).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = project_schema(&self.described.schema, projection)?;
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.described.types.len()).collect(),
        };
        let types: Vec<PgType> = indices
            .iter()
            .map(|i| self.described.types[*i].clone())
            .collect();
        let cols = schema
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {cols} FROM {}", self.relation.from_sql());
        let p = self.pushdown();
        let conditions: Vec<String> = filters.iter().filter_map(|f| p.classify(f).1).collect();
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(Arc::new(PgScanExec::new(
            self.target.clone(),
            schema,
            types,
            sql,
        )))
    }
}

/// Streams one SQL query's rows from PostgreSQL.
#[derive(Debug)]
struct PgScanExec {
    target: PgTarget,
    schema: SchemaRef,
    types: Vec<PgType>,
    sql: String,
    props: Arc<PlanProperties>,
}

impl PgScanExec {
    fn new(target: PgTarget, schema: SchemaRef, types: Vec<PgType>, sql: String) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            target,
            schema,
            types,
            sql,
            props: Arc::new(props),
        }
    }
}

impl DisplayAs for PgScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let conn = &self.target.conn.name;
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "PostgresScan: connection={conn}, sql={}", self.sql)
            }
            DisplayFormatType::TreeRender => write!(f, "connection={conn}\nsql={}", self.sql),
        }
    }
}

impl ExecutionPlan for PgScanExec {
    fn name(&self) -> &str {
        "PostgresScan"
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
        let (target, sql, schema, types) = (
            self.target.clone(),
            self.sql.clone(),
            self.schema.clone(),
            self.types.clone(),
        );
        let batch_size = ctx.session_config().batch_size();
        let task = tokio::spawn(async move {
            if let Err(e) = copy_out(&target, &sql, schema, &types, batch_size, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            crate::db::abort_on_drop(rx, task),
        )))
    }
}
