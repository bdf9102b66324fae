//! Rows read per source, for the run summary.
//!
//! Every source table is wrapped so that each scan of it counts the rows it yields. A source
//! read by several sinks or checks is scanned several times; the summary shows the largest
//! scan (the rows of the source, or all of them that pass a filter pushed into the scan).
//! The wrapper is transparent to the optimiser: projections, limits, filters, sort orders
//! and file-scan repartitioning pass through to the scan it wraps.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraints, Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{CardinalityEffect, replace_children_if_necessary};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    SortOrderPushdownResult, StatisticsArgs,
};
use futures::StreamExt;

/// The rows of one scan.
#[derive(Debug)]
struct Scan {
    source: Arc<str>,
    rows: AtomicU64,
    ran: AtomicBool,
}

/// The scans of one source.
#[derive(Debug)]
pub struct ReadCount {
    source: Arc<str>,
    scans: Mutex<Vec<Arc<Scan>>>,
}

impl ReadCount {
    /// No scan yet of the source `source`.
    pub fn new(source: &str) -> Self {
        Self {
            source: source.into(),
            scans: Mutex::default(),
        }
    }

    /// The rows of the largest scan that ran; `None` when none ran (nothing was read, or a
    /// count came from statistics).
    pub fn rows(&self) -> Option<u64> {
        let scans = self.scans.lock().ok()?;
        scans
            .iter()
            .filter(|s| s.ran.load(Ordering::Relaxed))
            .map(|s| s.rows.load(Ordering::Relaxed))
            .max()
    }

    fn new_scan(&self) -> Arc<Scan> {
        let scan = Arc::new(Scan {
            source: self.source.clone(),
            rows: AtomicU64::new(0),
            ran: AtomicBool::new(false),
        });
        if let Ok(mut scans) = self.scans.lock() {
            scans.push(scan.clone());
        }
        scan
    }
}

/// A source table whose scans are counted.
#[derive(Debug)]
pub struct CountedTable {
    inner: Arc<dyn TableProvider>,
    count: Arc<ReadCount>,
}

impl CountedTable {
    /// Wraps `inner`; its scans are counted in `count`.
    pub fn new(inner: Arc<dyn TableProvider>, count: Arc<ReadCount>) -> Self {
        Self { inner, count }
    }
}

#[async_trait]
impl TableProvider for CountedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }
    fn table_type(&self) -> TableType {
        // Scanned, never inlined, so that every read passes the counter.
        TableType::Base
    }
    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }
    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        Ok(Arc::new(CountingExec::new(plan, self.count.new_scan())))
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// Counts the rows its input yields; otherwise its input.
#[derive(Debug, Clone)]
struct CountingExec {
    input: Arc<dyn ExecutionPlan>,
    scan: Arc<Scan>,
}

impl CountingExec {
    fn new(input: Arc<dyn ExecutionPlan>, scan: Arc<Scan>) -> Self {
        Self { input, scan }
    }

    fn around(&self, input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(Self::new(input, self.scan.clone()))
    }
}

impl DisplayAs for CountingExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CountingExec: rows read from source `{}`",
            self.scan.source
        )
    }
}

impl ExecutionPlan for CountingExec {
    fn name(&self) -> &str {
        "CountingExec"
    }
    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self.around(children.swap_remove(0)))
    }
    fn repartitioned(
        &self,
        target_partitions: usize,
        config: &ConfigOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(self
            .input
            .repartitioned(target_partitions, config)?
            .map(|p| self.around(p)))
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.scan.ran.store(true, Ordering::Relaxed);
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let scan = self.scan.clone();
        let counted = stream.inspect(move |b| {
            if let Ok(b) = b {
                scan.rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }
    fn supports_limit_pushdown(&self) -> bool {
        true
    }
    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        self.input.with_fetch(limit).map(|p| self.around(p))
    }
    fn fetch(&self) -> Option<usize> {
        self.input.fetch()
    }
    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        match self.input.try_swapping_with_projection(projection)? {
            Some(p) => Ok(Some(replace_children_if_necessary(
                Arc::new(self.clone()),
                vec![p],
            )?)),
            None => Ok(None),
        }
    }
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> Result<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        Ok(match self.input.try_pushdown_sort(order)? {
            SortOrderPushdownResult::Exact { inner } => SortOrderPushdownResult::Exact {
                inner: replace_children_if_necessary(Arc::new(self.clone()), vec![inner])?,
            },
            SortOrderPushdownResult::Inexact { inner } => SortOrderPushdownResult::Inexact {
                inner: replace_children_if_necessary(Arc::new(self.clone()), vec![inner])?,
            },
            SortOrderPushdownResult::Unsupported => SortOrderPushdownResult::Unsupported,
        })
    }
}
