//! The pipeline file as typed, raw (rendered but unchecked) values.
//!
//! These structs mirror the YAML one to one. Every struct rejects unknown keys, and every
//! field's `///` doc becomes its description in `etl schema`. Nothing here is interpreted:
//! paths are not resolved and SQL is not parsed; that is the validator's job.

pub mod check;
pub mod range;
pub mod sink;
pub mod source;
pub mod test;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

pub use check::{
    AcceptedValuesSpec, CheckSeverity, CheckSpec, Columns, RelativeTo, RowCountSpec, TableChecks,
};
pub use sink::SinkSpec;
pub use source::SourceSpec;

/// A pipeline file.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(title = "etl pipeline", deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name; defaults to the file name without its extension.
    #[serde(default)]
    pub name: Option<String>,
    /// What the pipeline is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Template variables with their defaults. Overridden by `--vars-file`, then `--var k=v`.
    /// Values may refer to other vars and to `env()`.
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Named connections (databases, object stores), reusable by sources and sinks.
    #[serde(default)]
    pub connections: IndexMap<String, ConnectionSpec>,
    /// Where data comes from; each source becomes a table that SQL can read by its name.
    #[serde(default)]
    pub sources: IndexMap<String, SourceSpec>,
    /// SQL transforms; each becomes a view named after its key.
    #[serde(default)]
    pub transforms: IndexMap<String, TransformSpec>,
    /// Data-quality checks, keyed by the source or transform they look at: a list of
    /// checks, or dbt's per-column style (`columns: { id: { tests: [unique, not_null] } }`).
    #[serde(default)]
    pub checks: IndexMap<String, TableChecks>,
    /// Where results go.
    #[serde(default)]
    pub sinks: IndexMap<String, SinkSpec>,
    /// Pipeline tests: fixtures in, expected rows out (`etl test`). A `defaults` entry holds
    /// `given` fixtures and `vars` shared by every test; tests may also live in
    /// `NAME.test.yaml` beside `NAME.yaml`.
    #[serde(default)]
    pub tests: IndexMap<String, TestSpec>,
    /// Where run records, quarantined rows and watermarks are kept.
    #[serde(default)]
    pub state: Option<StateSpec>,
    /// Engine settings for this pipeline.
    #[serde(default)]
    pub engine: Option<EngineSpec>,
}

/// A named connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// The kind of system: `postgres`, `mysql`, `s3`, `gcs`, `azure`, `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Connection URL; use `env()` for credentials.
    #[serde(default)]
    pub url: Option<String>,
    /// Extra settings passed to the connector (for object stores: `region`, `endpoint`,
    /// `access_key_id`, `secret_access_key`, `allow_http`, ...).
    #[serde(default)]
    pub options: IndexMap<String, String>,
    /// Databases: how many times a failed connection attempt is retried, with backoff
    /// (default 3; 0 to 10).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<u32>,
}

/// An SQL transform.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// The query. Refer to sources and other transforms by name.
    #[serde(default)]
    pub sql: Option<String>,
    /// A file holding the query, relative to the pipeline file; rendered like `sql`.
    #[serde(default)]
    pub sql_file: Option<String>,
    /// What the transform computes.
    #[serde(default)]
    pub description: Option<String>,
}

/// A pipeline test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the test shows.
    #[serde(default)]
    pub description: Option<String>,
    /// Var overrides for this test.
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
    /// Fixture data, keyed by source name; replaces the real source.
    #[serde(default)]
    pub given: IndexMap<String, FixtureSpec>,
    /// Expected rows, keyed by source or transform name; `checks: { fail: [...] }` names
    /// checks that must fail on the fixtures (and `pass: [...]` checks that must pass).
    #[serde(default)]
    pub expect: test::Expectations,
    /// Pins the logical date `ds` (YYYY-MM-DD) the pipeline is rendered with; default:
    /// today, UTC.
    #[serde(default)]
    pub ds: Option<String>,
    /// Pins `run_id` for templates; default: a fixed `test` id.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Relative tolerance for floating-point columns of every expected table of this test
    /// (default 1e-9); an expected table's own `tolerance` wins.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub tolerance: Option<f64>,
}

/// Rows given to a test in place of a source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixtureSpec {
    /// Inline rows.
    #[serde(default)]
    pub rows: Option<Vec<IndexMap<String, serde_json::Value>>>,
    /// A file, relative to the pipeline file; its format is taken from the extension unless
    /// `format` says otherwise.
    #[serde(default)]
    pub path: Option<String>,
    /// `csv`, `json` or `parquet`, when the extension does not tell.
    #[serde(default)]
    pub format: Option<String>,
}

/// Rows a test expects.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Expected rows; only the columns listed are compared, order does not matter.
    #[serde(default)]
    pub rows: Option<Vec<IndexMap<String, serde_json::Value>>>,
    /// A file of expected rows instead (csv, json or parquet by extension).
    #[serde(default)]
    pub path: Option<String>,
    /// Compare in order instead of as a multiset.
    #[serde(default)]
    pub ordered: bool,
    /// Relative tolerance for floating-point columns (default 1e-9): `|a - b| <=
    /// tolerance * max(|a|, |b|)`. Other types compare exactly.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub tolerance: Option<f64>,
}

/// Where state lives.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// A local folder, relative to the pipeline file. Default `.etl`.
    #[serde(default)]
    pub dir: Option<String>,
    /// Where watermarks are kept instead of the local folder, because CI runners lose their
    /// disks: a PostgreSQL URL (`postgres://...`, table `etl_state.watermarks`; runs also hold
    /// an advisory lock there) or an object-store URL (`s3://bucket/prefix`). The lock, the
    /// commit journal and run records stay in the local folder.
    #[serde(default)]
    pub url: Option<String>,
}

/// Engine settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// Memory limit for query execution (`2GiB`, `512MB`), from 1 MiB to 1 PiB; past it,
    /// sorts, joins and aggregations spill to disk. `--memory-limit` overrides it.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Number of partitions DataFusion plans for, 1 to 1024; defaults to the number of
    /// cores. `--threads` overrides it.
    #[serde(
        default,
        deserialize_with = "range::bounded::<_, 1, { crate::engine::MAX_PARTITIONS }>"
    )]
    #[schemars(range(min = 1, max = crate::engine::MAX_PARTITIONS))]
    pub target_partitions: Option<usize>,
    /// Rows per batch, 1 to 1048576 (default 8192).
    #[serde(
        default,
        deserialize_with = "range::bounded::<_, 1, { crate::engine::MAX_BATCH_SIZE }>"
    )]
    #[schemars(range(min = 1, max = crate::engine::MAX_BATCH_SIZE))]
    pub batch_size: Option<usize>,
}

/// The JSON Schema of the pipeline format.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PipelineSpec);
    serde_json::to_value(&schema).unwrap_or_default()
}
