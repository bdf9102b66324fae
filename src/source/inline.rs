//! `inline`: rows written in the pipeline file, decoded with the Arrow JSON reader.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::SourceError;
use crate::connector::{
    BuildCx, Built, CheckCx, SourceConnector, SourceEntry, config_schema, parse_config,
};
use crate::model::Source;

/// Rows in the pipeline file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineSourceSpec {
    /// The rows, one mapping per row.
    pub rows: Vec<IndexMap<String, serde_json::Value>>,
    /// Column types; inferred from the values when absent.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// What the rows are.
    #[serde(default)]
    pub description: Option<String>,
}

#[async_trait]
impl SourceConnector for InlineSourceSpec {
    fn kind(&self) -> &'static str {
        "inline"
    }
    fn schema(&self) -> Option<&IndexMap<String, String>> {
        self.schema.as_ref()
    }
    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.rows.is_empty() && self.schema.is_none() {
            cx.error("rows", "an inline source without rows needs a `schema`");
        }
    }
    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        Ok(Built {
            table: build(cx.source, self)?,
            bad_rows: None,
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `type: inline`.
pub const ENTRY: SourceEntry = SourceEntry {
    name: "inline",
    aliases: &[],
    parse: |node, path| Ok(Arc::new(parse_config::<InlineSourceSpec>(node, path)?)),
    schema: config_schema::<InlineSourceSpec>,
};

/// Builds an in-memory table from inline rows (used for test fixtures too).
pub fn build(src: &Source, spec: &InlineSourceSpec) -> Result<Arc<dyn TableProvider>, SourceError> {
    let err = |reason: String| SourceError::Inline {
        name: src.name.clone(),
        reason,
    };
    let (schema, batches) = rows_to_batches(&spec.rows, src.schema.clone()).map_err(err)?;
    let table = MemTable::try_new(schema, vec![batches]).map_err(|error| SourceError::Engine {
        name: src.name.clone(),
        error,
    })?;
    Ok(Arc::new(table))
}

/// In a declared text column, a number or a boolean (`gen: 1`, or a template that renders
/// one: `gen: "{{ n }}"`) is taken as its text.
fn numbers_as_text(rows: &mut [serde_json::Value], schema: &SchemaRef) {
    use datafusion::arrow::datatypes::DataType;
    let text_columns: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        })
        .map(|f| f.name().as_str())
        .collect();
    if text_columns.is_empty() {
        return;
    }
    for row in rows.iter_mut().filter_map(serde_json::Value::as_object_mut) {
        for column in &text_columns {
            if let Some(v) = row.get_mut(*column)
                && (v.is_number() || v.is_boolean())
            {
                *v = serde_json::Value::String(v.to_string());
            }
        }
    }
}

/// Decodes rows (JSON values) into record batches with the given or inferred schema.
pub fn rows_to_batches(
    rows: &[IndexMap<String, serde_json::Value>],
    schema: Option<SchemaRef>,
) -> Result<(SchemaRef, Vec<datafusion::arrow::record_batch::RecordBatch>), String> {
    let mut values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .collect();
    if let Some(s) = &schema {
        numbers_as_text(&mut values, s);
    }
    let schema = match schema {
        Some(s) => s,
        None => Arc::new(
            infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone())))
                .map_err(|e| format!("cannot infer column types: {e}"))?,
        ),
    };
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for (i, chunk) in values.chunks(4096).enumerate() {
        decoder
            .serialize(chunk)
            .map_err(|e| format!("row {}: {e}", i * 4096 + 1))?;
        if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
            batches.push(b);
        }
    }
    Ok((schema, batches))
}
