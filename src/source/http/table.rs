//! An HTTP source's records as a DataFusion table: each scan decodes the spooled pages into
//! Arrow batches, in parallel partitions, reading only the columns the query needs.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::project_schema;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::config::{HttpSourceSpec, ResponseFormat};
use super::error::HttpError;
use super::fetch::{Fetched, Page};
use super::render::Resolved;
use super::schema::{Columns, columns, finish_column};
use crate::connector::BuildCx;

/// The records of one fetch.
#[derive(Debug)]
pub struct HttpTable {
    fetched: Arc<Fetched>,
    cols: Arc<Columns>,
    format: ResponseFormat,
    source: String,
}

impl HttpTable {
    /// The table over a fetch, with the declared or inferred columns.
    pub fn new(
        cx: &BuildCx<'_>,
        spec: &HttpSourceSpec,
        resolved: &Resolved,
        fetched: Arc<Fetched>,
    ) -> Result<Self, HttpError> {
        let items = fetched
            .items
            .clone()
            .unwrap_or_else(|| resolved.items.clone());
        let cols = columns(spec, cx.source.schema.as_ref(), &fetched, &items)?;
        Ok(Self {
            fetched,
            cols: Arc::new(cols),
            format: spec.format,
            source: cx.source.name.clone(),
        })
    }
}

#[async_trait]
impl TableProvider for HttpTable {
    fn schema(&self) -> SchemaRef {
        self.cols.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = project_schema(&self.cols.schema, projection)?;
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.cols.schema.fields().len()).collect(),
        };
        let wanted = state.config().target_partitions().max(1);
        let parts = split(&self.fetched.pages, wanted);
        Ok(Arc::new(HttpScanExec::new(
            Scan {
                fetched: self.fetched.clone(),
                cols: self.cols.clone(),
                format: self.format,
                projection,
                schema: schema.clone(),
                batch_size: state.config().batch_size(),
                limit,
            },
            parts,
            &self.source,
        )))
    }
}

/// Splits the pages into up to `n` runs of consecutive pages with about as many records
/// each (consecutive, so pages of one item stay together and batches stay full).
fn split(pages: &[Page], n: usize) -> Vec<Vec<usize>> {
    let total: usize = pages.iter().map(|p| p.records).sum();
    let per = total.div_ceil(n.max(1)).max(1);
    let mut parts: Vec<Vec<usize>> = vec![Vec::new()];
    let mut in_part = 0;
    for (i, p) in pages.iter().enumerate() {
        if in_part >= per && parts.len() < n {
            parts.push(Vec::new());
            in_part = 0;
        }
        parts.last_mut().expect("one part").push(i);
        in_part += p.records;
    }
    parts
}

/// What decoding a partition needs.
#[derive(Debug, Clone)]
struct Scan {
    fetched: Arc<Fetched>,
    cols: Arc<Columns>,
    format: ResponseFormat,
    projection: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    limit: Option<usize>,
}

/// Decodes spooled pages.
struct HttpScanExec {
    scan: Scan,
    parts: Vec<Vec<usize>>,
    source: String,
    props: Arc<PlanProperties>,
}

impl fmt::Debug for HttpScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HttpScanExec({}, {} partitions)",
            self.source,
            self.parts.len()
        )
    }
}

impl HttpScanExec {
    fn new(scan: Scan, parts: Vec<Vec<usize>>, source: &str) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(scan.schema.clone()),
            Partitioning::UnknownPartitioning(parts.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            scan,
            parts,
            source: source.to_string(),
            props: Arc::new(props),
        }
    }
}

impl DisplayAs for HttpScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let pages = self.scan.fetched.pages.len();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "HttpScan: source={}, pages={pages}, partitions={}",
                self.source,
                self.parts.len()
            ),
            DisplayFormatType::TreeRender => {
                write!(f, "source={}\npages={pages}", self.source)
            }
        }
    }
}

impl ExecutionPlan for HttpScanExec {
    fn name(&self) -> &str {
        "HttpScan"
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
        _ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let pages = self
            .parts
            .get(partition)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("no partition {partition}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let scan = self.scan.clone();
        let task = tokio::task::spawn_blocking(move || {
            if let Err(e) = decode_pages(&scan, &pages, &tx) {
                let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.scan.schema.clone(),
            crate::db::abort_on_drop(rx, task),
        )))
    }
}

type Sender = tokio::sync::mpsc::Sender<Result<RecordBatch>>;

/// Decodes a partition's pages and sends their batches; stops when the receiver is gone or
/// the limit is reached.
fn decode_pages(scan: &Scan, pages: &[usize], tx: &Sender) -> Result<(), HttpError> {
    let Some(spool) = &scan.fetched.spool else {
        return Ok(());
    };
    let data_len = scan.cols.data_len();
    let wanted: Vec<usize> = scan
        .projection
        .iter()
        .copied()
        .filter(|i| *i < data_len)
        .collect();
    let decode_fields: Vec<_> = wanted
        .iter()
        .map(|i| scan.cols.decode[*i].clone())
        .collect();
    let decode_schema = Arc::new(Schema::new(decode_fields));
    let mut sent = 0usize;
    let mut out = Out {
        scan,
        tx,
        sent: &mut sent,
        wanted: &wanted,
    };
    for &i in pages {
        let page = &scan.fetched.pages[i];
        let bytes = spool.read(page.span).map_err(HttpError::Spool)?;
        let decode_err = |e: String| HttpError::Decode {
            url: page.url.to_string(),
            reason: e,
        };
        let batches = if wanted.is_empty() {
            // Only item columns, or only a count: the page says how many records it has.
            vec![
                RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(page.records)),
                )
                .map_err(|e| decode_err(e.to_string()))?,
            ]
        } else if scan.format == ResponseFormat::Csv {
            decode_csv(scan, &bytes, &wanted).map_err(decode_err)?
        } else {
            decode_json(&decode_schema, scan.batch_size, &bytes).map_err(decode_err)?
        };
        for b in batches {
            if !out.send(b, page.item).map_err(decode_err)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn decode_json(
    schema: &SchemaRef,
    batch_size: usize,
    bytes: &[u8],
) -> Result<Vec<RecordBatch>, String> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(batch_size)
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buf = bytes;
    while !buf.is_empty() {
        let n = decoder.decode(buf).map_err(|e| e.to_string())?;
        buf = &buf[n..];
        if n == 0 || decoder.len() >= batch_size {
            match decoder.flush().map_err(|e| e.to_string())? {
                Some(b) => out.push(b),
                None if n == 0 => break,
                None => {}
            }
        }
    }
    if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
        out.push(b);
    }
    Ok(out)
}

/// Decodes a CSV page, matching columns to the header by name (a declared schema may list
/// them in another order, or leave some out).
fn decode_csv(scan: &Scan, bytes: &[u8], wanted: &[usize]) -> Result<Vec<RecordBatch>, String> {
    let decode = &scan.cols.decode;
    let header: Vec<String> = match &scan.fetched.csv_header {
        Some(h) => h.clone(),
        None => decode.iter().map(|f| f.name().clone()).collect(),
    };
    let fields: Vec<_> = header
        .iter()
        .map(|h| match decode.iter().find(|f| f.name() == h) {
            Some(f) => f.clone(),
            None => datafusion::arrow::datatypes::Field::new(
                h,
                datafusion::arrow::datatypes::DataType::Utf8,
                true,
            ),
        })
        .collect();
    let projection = wanted
        .iter()
        .map(|i| {
            let name = decode[*i].name();
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("the CSV has no column `{name}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reader = datafusion::arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_header(true)
        .with_batch_size(scan.batch_size)
        .with_projection(projection)
        .build(bytes)
        .map_err(|e| e.to_string())?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Finishes decoded batches (types, item columns, column order) and sends them.
struct Out<'a> {
    scan: &'a Scan,
    tx: &'a Sender,
    sent: &'a mut usize,
    wanted: &'a [usize],
}

impl Out<'_> {
    /// Returns false when no more batches are wanted.
    fn send(&mut self, decoded: RecordBatch, item: usize) -> Result<bool, String> {
        let n = decoded.num_rows();
        let cols = &self.scan.cols;
        let data_len = cols.data_len();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for &i in &self.scan.projection {
            let target = cols.schema.field(i).data_type();
            if i < data_len {
                let pos = self.wanted.iter().position(|w| *w == i).unwrap_or(0);
                arrays.push(finish_column(decoded.column(pos), target)?);
            } else {
                let value = cols
                    .item_values
                    .get(item)
                    .and_then(|v| v.get(i - data_len))
                    .cloned()
                    .ok_or_else(|| {
                        format!("no value of item column {} for item {item}", i - data_len)
                    })?;
                arrays.push(value.to_array_of_size(n).map_err(|e| e.to_string())?);
            }
        }
        let mut batch = RecordBatch::try_new_with_options(
            self.scan.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| e.to_string())?;
        if let Some(limit) = self.scan.limit {
            let left = limit.saturating_sub(*self.sent);
            if left == 0 {
                return Ok(false);
            }
            if batch.num_rows() > left {
                batch = batch.slice(0, left);
            }
        }
        *self.sent += batch.num_rows();
        Ok(self.tx.blocking_send(Ok(batch)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::http::spool::Span;

    fn page(records: usize) -> Page {
        Page {
            span: Span { offset: 0, len: 0 },
            item: 0,
            records,
            url: "u".into(),
        }
    }

    #[test]
    fn partitions_balance_records_and_keep_pages_in_order() {
        let pages: Vec<Page> = [10, 10, 10, 10, 5].iter().map(|r| page(*r)).collect();
        assert_eq!(split(&pages, 2), vec![vec![0, 1, 2], vec![3, 4]]);
        assert_eq!(split(&pages, 8).len(), 5);
        assert_eq!(split(&[], 4), vec![Vec::<usize>::new()]);
    }
}
