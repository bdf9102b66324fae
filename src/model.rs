//! The validated pipeline: what the planner and the executor work from.
//!
//! Built by `validate` from a loaded spec. Paths are resolved, SQL is rendered and its
//! dependencies are known, checks are typed. Nothing here refers to YAML.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::Pos;
use std::path::PathBuf;

use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use crate::spec::sink::SinkMode;
use crate::spec::source::OnBadRow;
use crate::spec::{CheckSeverity, ConnectionSpec, EngineSpec, SinkSpec, SourceSpec, TestSpec};

/// Where an SQL text came from, to turn SQL positions into file positions.
#[derive(Debug, Clone)]
pub struct SqlOrigin {
    /// The file holding the SQL (the pipeline file, or an `sql_file`).
    pub file: PathBuf,
    /// The YAML path of the SQL value, when it is in the pipeline file.
    pub yaml_path: Option<String>,
    /// File line of the SQL's first line.
    pub line: usize,
    /// File column of the SQL's first character on its first line.
    pub col: usize,
    /// Column added to positions on later lines (a block's indentation).
    pub indent: usize,
}

impl SqlOrigin {
    /// Maps a 1-based (line, column) inside the SQL to the file.
    pub fn map(&self, line: usize, col: usize) -> crate::diagnostic::Pos {
        if line <= 1 {
            crate::diagnostic::Pos::new(self.line, self.col + col.saturating_sub(1))
        } else {
            crate::diagnostic::Pos::new(self.line + line - 1, self.indent + col)
        }
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name (the table name in SQL).
    pub name: String,
    /// The spec it came from.
    pub spec: SourceSpec,
    /// The declared schema, parsed.
    pub schema: Option<SchemaRef>,
    /// Resolved locations (absolute paths or URLs); empty for inline sources.
    pub locations: Vec<String>,
    /// What to do with bad rows.
    pub on_bad_row: OnBadRow,
    /// The YAML path of the entry.
    pub yaml_path: String,
}

/// A validated transform.
#[derive(Debug, Clone)]
pub struct Transform {
    /// Its name (the view name in SQL).
    pub name: String,
    /// The rendered SQL.
    pub sql: String,
    /// Where the SQL came from.
    pub origin: SqlOrigin,
    /// The sources and transforms it reads.
    pub deps: Vec<String>,
}

/// A typed check.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Columns without NULLs.
    NotNull(Vec<String>),
    /// Columns without duplicates.
    Unique(Vec<String>),
    /// A column within a set of values.
    AcceptedValues {
        /// The column.
        column: String,
        /// The allowed values.
        values: Vec<serde_json::Value>,
    },
    /// Row count bounds.
    RowCount {
        /// Least rows.
        min: Option<u64>,
        /// Most rows.
        max: Option<u64>,
    },
    /// An SQL boolean that must hold on each row.
    Expect(String),
}

/// A validated check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The source or transform checked.
    pub target: String,
    /// A readable name (`not_null(day, country)`).
    pub name: String,
    /// What is checked.
    pub kind: CheckKind,
    /// Error or warning.
    pub severity: CheckSeverity,
    /// The YAML path of the check.
    pub yaml_path: String,
}

/// A validated sink.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Its name.
    pub name: String,
    /// What it writes.
    pub from: String,
    /// The spec it came from.
    pub spec: SinkSpec,
    /// Absolute path or URL of the output.
    pub location: String,
    /// True when the output is one file rather than a folder of parts.
    pub single_file: bool,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Overwrite, append or error_if_exists.
    pub mode: SinkMode,
    /// May remove files at the path that etl did not write.
    pub replace_existing: bool,
    /// The YAML path of the entry.
    pub yaml_path: String,
}

/// A pipeline ready to plan.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The pipeline file.
    pub file: PathBuf,
    /// The folder relative paths were resolved against.
    pub base_dir: PathBuf,
    /// Where run records go.
    pub state_dir: PathBuf,
    /// Where watermarks are kept, when not in `state_dir` (a Postgres or object-store URL).
    pub state_url: Option<String>,
    /// This run's id.
    pub run_id: String,
    /// Resolved vars (may hold secrets; redact before printing).
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Named connections.
    pub connections: IndexMap<String, ConnectionSpec>,
    /// Sources by name.
    pub sources: IndexMap<String, Source>,
    /// Transforms by name, in dependency order.
    pub transforms: IndexMap<String, Transform>,
    /// Checks, in file order.
    pub checks: Vec<Check>,
    /// Sinks by name.
    pub sinks: IndexMap<String, Sink>,
    /// Tests by name (raw; rendered per test).
    pub tests: IndexMap<String, TestSpec>,
    /// Engine settings from the file.
    pub engine: EngineSpec,
    /// Line and column of every YAML path in the file, for messages.
    pub places: HashMap<String, Pos>,
    /// This run's bad rows, by source (shared by every plan of the run).
    pub bad_rows: crate::source::BadRowLogs,
}

impl Pipeline {
    /// The place of a YAML path in the pipeline file.
    pub fn pos(&self, yaml_path: &str) -> Option<Pos> {
        self.places.get(yaml_path).copied()
    }

    /// The direct dependencies of a node (a source has none; a sink reads its `from`).
    pub fn deps_of(&self, name: &str) -> Vec<String> {
        if let Some(t) = self.transforms.get(name) {
            t.deps.clone()
        } else if let Some(s) = self.sinks.get(name) {
            vec![s.from.clone()]
        } else {
            Vec::new()
        }
    }

    /// The node and everything it needs, transitively.
    pub fn upstream(&self, name: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            if seen.contains(&n) {
                continue;
            }
            stack.extend(self.deps_of(&n));
            seen.push(n);
        }
        seen
    }

    /// True when `name` is a source or a transform (something SQL can read).
    pub fn is_relation(&self, name: &str) -> bool {
        self.sources.contains_key(name) || self.transforms.contains_key(name)
    }
}
