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
use crate::db::pg::read::{Described, Relation, Snapshot, copy_out, describe, export_snapshot};
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
        state: &dyn Session,
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
        let base = format!("SELECT {cols} FROM {}", self.relation.from_sql());
        let p = self.pushdown();
        let conditions: Vec<String> = filters.iter().filter_map(|f| p.classify(f).1).collect();
        let with = |extra: Option<String>| {
            let all: Vec<String> = extra
                .into_iter()
                .chain(conditions.iter().cloned())
                .collect();
            let mut sql = base.clone();
            if !all.is_empty() {
                sql.push_str(&format!(" WHERE {}", all.join(" AND ")));
            }
            if let Some(n) = limit {
                sql.push_str(&format!(" LIMIT {n}"));
            }
            sql
        };
        // A big table without a limit is read in parallel: one range of pages (by `ctid`)
        // per partition, all under one exported snapshot, so together they read exactly the
        // table as it was at one moment.
        let parts = match (self.described.pages, limit) {
            (Some(pages), None) => {
                let wanted = state.config().target_partitions().max(1) as u64;
                (pages / PAGES_PER_PARTITION).clamp(1, wanted)
            }
            _ => 1,
        };
        let sqls: Vec<String> = if parts <= 1 {
            vec![with(None)]
        } else {
            let pages = self.described.pages.unwrap_or(0);
            let step = pages.div_ceil(parts);
            (0..parts)
                .map(|i| {
                    let (lo, hi) = (i * step, (i + 1) * step);
                    // The last range is open: the table may have grown since it was sized.
                    let range = if i + 1 == parts {
                        format!("ctid >= '({lo},0)'::tid")
                    } else {
                        format!("ctid >= '({lo},0)'::tid AND ctid < '({hi},0)'::tid")
                    };
                    with(Some(range))
                })
                .collect()
        };
        Ok(Arc::new(PgScanExec::new(
            self.target.clone(),
            schema,
            types,
            sqls,
        )))
    }
}

/// Pages per parallel partition of a table scan (8 MB of 8 kB pages).
const PAGES_PER_PARTITION: u64 = 1000;

/// Streams SQL queries' rows from PostgreSQL: one query per partition.
struct PgScanExec {
    target: PgTarget,
    schema: SchemaRef,
    types: Vec<PgType>,
    sql: Vec<String>,
    /// The snapshot several partitions share, exported by the first one to start.
    snapshot: Arc<tokio::sync::OnceCell<Option<Arc<Snapshot>>>>,
    props: Arc<PlanProperties>,
}

impl fmt::Debug for PgScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PgScanExec({:?}, {} queries)",
            self.target,
            self.sql.len()
        )
    }
}

impl PgScanExec {
    fn new(target: PgTarget, schema: SchemaRef, types: Vec<PgType>, sql: Vec<String>) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(sql.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            target,
            schema,
            types,
            sql,
            snapshot: Arc::new(tokio::sync::OnceCell::new()),
            props: Arc::new(props),
        }
    }
}

impl DisplayAs for PgScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let conn = &self.target.conn.name;
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "PostgresScan: connection={conn}, partitions={}, sql={}",
                self.sql.len(),
                self.sql[0]
            ),
            DisplayFormatType::TreeRender => write!(
                f,
                "connection={conn}\npartitions={}\nsql={}",
                self.sql.len(),
                self.sql[0]
            ),
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
        let sql = self
            .sql
            .get(partition)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("no partition {partition}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let (target, schema, types) =
            (self.target.clone(), self.schema.clone(), self.types.clone());
        let (shared, parallel) = (self.snapshot.clone(), self.sql.len() > 1);
        let batch_size = ctx.session_config().batch_size();
        let task = tokio::spawn(async move {
            let snapshot = if parallel {
                match shared
                    .get_or_try_init(|| async {
                        export_snapshot(&target).await.map(|s| Some(Arc::new(s)))
                    })
                    .await
                {
                    Ok(s) => s.clone(),
                    Err(e) => {
                        let _ = tx.send(Err(DataFusionError::External(Box::new(e)))).await;
                        return;
                    }
                }
            } else {
                None
            };
            let id = snapshot.as_ref().map(|s| s.id.as_str());
            if let Err(e) = copy_out(&target, &sql, id, schema, &types, batch_size, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            crate::db::abort_on_drop(rx, task),
        )))
    }
}
