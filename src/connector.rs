//! Connectors as plug-ins: the traits every source and sink implements, and the one explicit
//! registry list of them.
//!
//! A connector is one module (a folder past ~500 lines) holding its config struct (what the
//! pipeline file says, with `deny_unknown_fields` and a `///` doc on every field, so `etl
//! schema` stays complete), its static checks, its build (a source gives a DataFusion
//! `TableProvider`; a sink gives a two-phase writer: stage now, commit or abort with the
//! rest of the run) and its unit tests. Adding a connector is adding its module and one
//! entry to [`SOURCES`] or [`SINKS`]; nothing else matches on connector types.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::prelude::{DataFrame, SessionContext};
use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::load::Loaded;
use crate::model::{Pipeline, Sink, Source};
use crate::sink::{SinkError, StagedOutput};
use crate::source::{BadRow, BadRowLog, SourceError};
use crate::spec::sink::SinkMode;
use crate::spec::source::{IncrementalSpec, OnBadRow};
use crate::yaml::{DeError, Node, from_node_skipping};

/// What a source connector's static checks can see and report into.
pub struct CheckCx<'a> {
    /// The loaded file (positions, connections, the pipeline's folder).
    pub loaded: &'a Loaded,
    /// The YAML path of the entry (`sources.sales`).
    pub yaml_path: &'a str,
    /// Where problems go.
    pub diags: &'a mut Diagnostics,
}

impl CheckCx<'_> {
    /// Reports an error at a key of the entry (`""` for the entry itself).
    pub fn error(&mut self, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        let path = if key.is_empty() {
            self.yaml_path.to_string()
        } else {
            format!("{}.{key}", self.yaml_path)
        };
        let d = self.loaded.error_at(&path, message);
        self.diags.push(d);
        self.diags.0.last_mut().expect("just pushed")
    }

    /// The type of a named connection, when it exists.
    pub fn connection_kind(&self, name: &str) -> Option<&str> {
        self.loaded
            .spec
            .connections
            .get(name)
            .map(|c| c.kind.as_str())
    }

    /// Checks that `connection` names a connection of one of `kinds`.
    pub fn require_connection(&mut self, connection: &str, kinds: &[&str]) {
        match self.connection_kind(connection).map(str::to_string) {
            None => {
                let names: Vec<String> = self.loaded.spec.connections.keys().cloned().collect();
                let d = self.error("connection", format!("unknown connection `{connection}`"));
                *d = d
                    .clone()
                    .suggest(connection, names.iter().map(String::as_str));
            }
            Some(k) if !kinds.contains(&k.as_str()) => {
                self.error(
                    "connection",
                    format!(
                        "connection `{connection}` is a {k} connection; this needs {}",
                        kinds.join(" or ")
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

/// What building a source can use.
pub struct BuildCx<'a> {
    /// The session the table is registered in.
    pub ctx: &'a SessionContext,
    /// The pipeline (connections, state folder, run id).
    pub pipeline: &'a Pipeline,
    /// The source being built.
    pub source: &'a Source,
    /// How this command builds sources.
    pub options: BuildOptions<'a>,
}

/// How a command builds its sources (the defaults suit every command but `etl run`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions<'a> {
    /// The rows of an incremental source the run reads, once the run has planned them.
    pub bounds: Option<&'a crate::plan::Bounds>,
    /// Read what `land:` kept instead of calling the API (`etl run --from-landed`).
    pub from_landed: bool,
    /// Only the schema is needed (`etl validate`, dry runs, `etl state --set`): make no
    /// more requests than knowing the columns takes.
    pub probe: bool,
    /// The run ignores watermarks (`--full-refresh`).
    pub full_refresh: bool,
}

/// What reading a source cost, for the run summary (an API's requests, retries, bytes).
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    /// Bytes received.
    pub bytes: u64,
    /// A line for the summary (`12 requests, 1 retry, 10 pages`).
    pub detail: String,
}

/// A built source.
pub struct Built {
    /// The table SQL reads.
    pub table: Arc<dyn TableProvider>,
    /// The log of skipped or quarantined rows, for sources that tolerate bad rows.
    pub bad_rows: Option<Arc<BadRowLog>>,
}

/// A source connector: where rows come from.
#[async_trait]
pub trait SourceConnector: std::fmt::Debug + Send + Sync + 'static {
    /// The connector's `type`.
    fn kind(&self) -> &'static str;
    /// The file, folder, glob or URL read, for file sources.
    fn path(&self) -> Option<&str> {
        None
    }
    /// The named connection used, if any.
    fn connection(&self) -> Option<&str> {
        None
    }
    /// The declared schema (`column: type`), if any.
    fn schema(&self) -> Option<&IndexMap<String, String>> {
        None
    }
    /// The JSON Schema file giving the schema, if any (relative to the pipeline file).
    fn schema_file(&self) -> Option<&str> {
        None
    }
    /// What to do with rows that do not parse.
    fn on_bad_row(&self) -> OnBadRow {
        OnBadRow::Fail
    }
    /// Incremental reading, if asked for.
    fn incremental(&self) -> Option<&IncrementalSpec> {
        None
    }
    /// Static checks of the entry, reported into `cx`.
    fn check(&self, _cx: &mut CheckCx<'_>) {}
    /// Builds the table.
    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError>;
    /// After a read failed, the first row that does not parse (found by a serial re-read),
    /// for sources that can say where.
    async fn locate_bad_row(&self, _cx: &BuildCx<'_>, _schema: SchemaRef) -> Option<BadRow> {
        None
    }
    /// Whether `etl run --from-landed` can read this source (`Err`: why not). Sources that
    /// land nothing are read as usual.
    fn check_replay(&self) -> Result<(), String> {
        Ok(())
    }
    /// What reading the source cost in run `run_id`, for the run summary.
    fn read_stats(&self, _run_id: &str) -> Option<ReadStats> {
        None
    }
    /// Once every sink committed: what to do with the input this run read (a file source's
    /// `after_commit`), as a commit-journal entry rolled forward after the sinks.
    async fn after_commit(
        &self,
        _cx: &BuildCx<'_>,
    ) -> Result<Option<crate::sink::commit::Entry>, SourceError> {
        Ok(None)
    }
    /// For downcasting in the connector's own module.
    fn as_any(&self) -> &dyn Any;
}

/// What staging a sink can use.
pub struct StageCx<'a> {
    /// The session holding the tables and views.
    pub ctx: &'a SessionContext,
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// This run's id.
    pub run_id: &'a str,
    /// Resources shared by the sinks of a run (one database transaction per connection).
    pub shared: &'a crate::sink::RunResources,
    /// The watermarks each sink commits with its rows: sink → source → value.
    pub marks: &'a std::collections::HashMap<
        String,
        std::collections::BTreeMap<String, crate::state::watermark::Watermark>,
    >,
    /// The run that last committed each database sink, as read when this run started.
    pub prev_runs: &'a std::collections::HashMap<String, Option<String>>,
}

/// A sink connector: where a source's or transform's rows go.
#[async_trait]
pub trait SinkConnector: std::fmt::Debug + Send + Sync + 'static {
    /// The connector's `type`.
    fn kind(&self) -> &'static str;
    /// The source or transform written.
    fn from(&self) -> &str;
    /// What happens to what is already there.
    fn mode(&self) -> SinkMode;
    /// The output path or URL, for file sinks.
    fn path(&self) -> Option<&str> {
        None
    }
    /// The named connection used, if any.
    fn connection(&self) -> Option<&str> {
        None
    }
    /// Partition columns.
    fn partition_by(&self) -> &[String] {
        &[]
    }
    /// Whether the sink may remove what etl did not write at its target.
    fn replace_existing(&self) -> bool {
        false
    }
    /// Where the output goes, for messages (`out/daily`, `postgres warehouse: analytics.daily`).
    fn describe_target(&self, sink: &Sink) -> String {
        sink.location.clone()
    }
    /// Static checks of the entry, reported into `cx`.
    fn check(&self, _cx: &mut CheckCx<'_>) {}
    /// What the sink's own commit records say, for sinks that keep them with their data
    /// (read after any interrupted commit was finished).
    async fn committed(
        &self,
        _cx: &StageCx<'_>,
        _sink: &Sink,
    ) -> Result<Option<crate::sink::SinkCommits>, SinkError> {
        Ok(None)
    }
    /// Before any data is read: refuses to replace what etl did not write.
    async fn check_ownership(&self, cx: &StageCx<'_>, sink: &Sink) -> Result<(), SinkError>;
    /// Writes the rows to a staging place (a temporary path, an open transaction).
    async fn stage(
        &self,
        cx: &StageCx<'_>,
        sink: &Sink,
        df: DataFrame,
    ) -> Result<Box<dyn StagedOutput>, SinkError>;
    /// For downcasting in the connector's own module.
    fn as_any(&self) -> &dyn Any;
}

/// Reads a source entry of the pipeline file into its connector.
pub type ParseSource = fn(&Node, &str) -> Result<Arc<dyn SourceConnector>, DeError>;

/// Reads a sink entry of the pipeline file into its connector.
pub type ParseSink = fn(&Node, &str) -> Result<Arc<dyn SinkConnector>, DeError>;

/// One source connector in the registry.
pub struct SourceEntry {
    /// Its `type`.
    pub name: &'static str,
    /// Other accepted spellings of the `type`.
    pub aliases: &'static [&'static str],
    /// Reads an entry of the pipeline file.
    pub parse: ParseSource,
    /// The JSON Schema of the entry (without `type`).
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

/// One sink connector in the registry.
pub struct SinkEntry {
    /// Its `type`.
    pub name: &'static str,
    /// Other accepted spellings of the `type`.
    pub aliases: &'static [&'static str],
    /// Reads an entry of the pipeline file.
    pub parse: ParseSink,
    /// The JSON Schema of the entry (without `type`).
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

/// Deserializes a connector config from a node, skipping its `type` key.
pub fn parse_config<T>(node: &Node, path: &str) -> Result<T, DeError>
where
    T: for<'de> serde::Deserialize<'de>,
{
    from_node_skipping(node, path, "type")
}

/// The JSON Schema of a config struct, inline.
pub fn config_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// Every source connector, by `type`.
pub static SOURCES: &[SourceEntry] = &[
    crate::source::file::CSV,
    crate::source::file::JSON,
    crate::source::file::PARQUET,
    crate::source::file::AVRO,
    crate::source::file::LINES,
    crate::source::inline::ENTRY,
    crate::source::postgres::ENTRY,
    crate::source::mysql::ENTRY,
    crate::source::http::ENTRY,
];

/// Source types of the format that this version does not read yet.
pub const PLANNED_SOURCES: &[&str] = &["sqlite", "kafka"];

/// Every sink connector, by `type`.
pub static SINKS: &[SinkEntry] = &[
    crate::sink::file::PARQUET,
    crate::sink::file::CSV,
    crate::sink::file::JSON,
    crate::sink::postgres::ENTRY,
];

/// Sink types of the format that this version does not write yet.
pub const PLANNED_SINKS: &[&str] = &["mysql"];

/// The registry entry of a source `type`.
pub fn source_entry(kind: &str) -> Option<&'static SourceEntry> {
    SOURCES
        .iter()
        .find(|e| e.name == kind || e.aliases.contains(&kind))
}

/// The registry entry of a sink `type`.
pub fn sink_entry(kind: &str) -> Option<&'static SinkEntry> {
    SINKS
        .iter()
        .find(|e| e.name == kind || e.aliases.contains(&kind))
}

/// A `oneOf` schema over connector entries, each with its `type` required.
pub fn tagged_union(
    generator: &mut SchemaGenerator,
    entries: impl Iterator<Item = (&'static str, fn(&mut SchemaGenerator) -> Schema)>,
) -> Schema {
    let variants: Vec<serde_json::Value> = entries
        .map(|(name, schema)| {
            let mut s = schema(generator).to_value();
            if let Some(obj) = s.as_object_mut() {
                let props = obj
                    .entry("properties")
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(p) = props.as_object_mut() {
                    p.insert("type".into(), serde_json::json!({ "const": name }));
                }
                let req = obj
                    .entry("required")
                    .or_insert_with(|| serde_json::json!([]));
                if let Some(r) = req.as_array_mut() {
                    r.insert(0, serde_json::json!("type"));
                }
            }
            s
        })
        .collect();
    Schema::try_from(serde_json::json!({ "oneOf": variants })).unwrap_or_default()
}

/// Downcasts a connector to its concrete config.
pub fn downcast<T: 'static>(c: &dyn Any) -> Option<&T> {
    c.downcast_ref::<T>()
}
