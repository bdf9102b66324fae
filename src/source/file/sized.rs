//! A file format wrapper that reports each file's size as its (inexact) byte size, and
//! keeps a byte-order mark out of inferred column names.
//!
//! Text formats carry no statistics, so DataFusion cannot tell a 5 GB fact file from a
//! 100 KB dimension file and may build a join's hash table on the big side. Reporting the
//! file size lets the join planner put the small side in the hash table and broadcast it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::physical_plan::{FileScanConfig, FileSinkConfig, FileSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::LexRequirement;
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore};

/// Wraps a format; everything but statistics is the inner format's.
#[derive(Debug)]
pub struct SizedFormat {
    inner: Arc<dyn FileFormat>,
}

impl SizedFormat {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn FileFormat>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl FileFormat for SizedFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        let schema = self.inner.infer_schema(state, store, objects).await?;
        // A UTF-8 byte-order mark is not part of the first column's name.
        let fields: Vec<datafusion::arrow::datatypes::FieldRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().strip_prefix('\u{feff}') {
                Some(name) => Arc::new(f.as_ref().clone().with_name(name)),
                None => f.clone(),
            })
            .collect();
        Ok(Arc::new(
            datafusion::arrow::datatypes::Schema::new_with_metadata(
                fields,
                schema.metadata().clone(),
            ),
        ))
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        let mut stats = self
            .inner
            .infer_stats(state, store, table_schema, object)
            .await?;
        if stats.total_byte_size.get_value().is_none() {
            stats.total_byte_size = Precision::Inexact(object.size as usize);
        }
        Ok(stats)
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_physical_plan(state, conf).await
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}
