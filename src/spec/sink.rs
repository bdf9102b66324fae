//! Sink entries of a pipeline file: the wrapper the registry builds, and what every sink
//! connector shares. The config structs live with their connectors (`crate::sink::*`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::connector::{SINKS, SinkConnector, tagged_union};

/// A sink: where a source's or transform's rows are written. `type` picks the connector
/// (see [`crate::connector::SINKS`]).
#[derive(Debug, Clone)]
pub struct SinkSpec(pub Arc<dyn SinkConnector>);

impl std::ops::Deref for SinkSpec {
    type Target = dyn SinkConnector;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl JsonSchema for SinkSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sink".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        tagged_union(generator, SINKS.iter().map(|e| (e.name, e.schema)))
    }
}

/// How a sink treats what is already at its path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    /// Replace it, atomically on success.
    #[default]
    Overwrite,
    /// Add new part files beside the existing ones (folder paths only).
    Append,
    /// Fail if anything is there.
    ErrorIfExists,
    /// Insert new rows and update existing ones by `key` (database sinks).
    Upsert,
}
