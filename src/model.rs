//! The validated pipeline: what the planner and the executor work from.
//!
//! Built by `validate` from a loaded spec. Paths are resolved, SQL is rendered and its
//! dependencies are known, checks are typed. Nothing here refers to YAML.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::Pos;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use crate::spec::sink::SinkMode;
use crate::spec::source::OnBadRow;
use crate::spec::{
    CheckSeverity, ConnectionSpec, EngineSpec, RelativeTo, SinkSpec, SourceSpec, TestSpec,
};
use crate::template::{Trace, offset_of};
use crate::yaml::TextPlaces;

/// Where an SQL text came from, to turn SQL positions into file positions.
#[derive(Debug, Clone)]
pub struct SqlOrigin {
    /// The file holding the SQL (the pipeline file, or an `sql_file`).
    pub file: PathBuf,
    /// The YAML path of the SQL value, when it is in the pipeline file.
    pub yaml_path: Option<String>,
    /// How positions in the SQL map to the file.
    pub places: Arc<SqlPlaces>,
}

/// How a position in (rendered) SQL maps to the file it was written in.
#[derive(Debug)]
pub enum SqlPlaces {
    /// The SQL's positions are the file's own (SQL the program generated).
    Identity,
    /// Through the template that rendered the SQL, if it was one, then through the text's
    /// places in the file (a YAML scalar's style, or an SQL file's own lines).
    Mapped {
        /// The SQL as rendered.
        sql: String,
        /// Where each part of the rendered SQL came from in the template.
        trace: Option<Arc<Trace>>,
        /// Where each character of the template (or of the SQL, without one) is in the file.
        text: TextPlaces,
    },
}

impl SqlOrigin {
    /// SQL whose positions are the file's own.
    pub fn identity(file: PathBuf) -> Self {
        Self {
            file,
            yaml_path: None,
            places: Arc::new(SqlPlaces::Identity),
        }
    }

    /// Maps a 1-based (line, column) inside the SQL to the file. A position inside text an
    /// expression (`{{ ... }}`) wrote maps to that expression: its line is right, and its
    /// column is the expression's, since the text has no place of its own in the file.
    pub fn map(&self, line: usize, col: usize) -> Pos {
        match &*self.places {
            SqlPlaces::Identity => Pos::new(line.max(1), col.max(1)),
            SqlPlaces::Mapped { sql, trace, text } => {
                let out = offset_of(sql, line, col);
                let src = trace.as_ref().map_or(out, |t| t.source_offset(out));
                text.pos_of(src)
            }
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

/// An SQL expression of a check (`expect`, `expect_table`, `where`) and where it came from.
#[derive(Debug, Clone)]
pub struct CheckSql {
    /// The rendered expression.
    pub text: String,
    /// Its place in the pipeline file.
    pub origin: SqlOrigin,
}

/// A typed check.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Columns without NULLs.
    NotNull(Vec<String>),
    /// Columns without duplicates (rows with a NULL in them are not compared).
    Unique(Vec<String>),
    /// A column within a set of values.
    AcceptedValues {
        /// The column.
        column: String,
        /// The allowed values.
        values: Vec<serde_json::Value>,
    },
    /// Every non-NULL value of `column` exists in `to.field`.
    Relationships {
        /// The referring column.
        column: String,
        /// The source or transform referred to.
        to: String,
        /// Its column.
        field: String,
    },
    /// Row count bounds.
    RowCount {
        /// Least rows.
        min: Option<u64>,
        /// Most rows.
        max: Option<u64>,
    },
    /// An SQL boolean that must hold on each row.
    Expect(CheckSql),
    /// An SQL boolean over aggregates that must hold for the table.
    ExpectTable(CheckSql),
    /// The newest value of a timestamp or date column is recent enough.
    Freshness {
        /// The column.
        column: String,
        /// The greatest age allowed.
        max_age: std::time::Duration,
        /// What the age is measured against.
        relative_to: RelativeTo,
    },
}

/// A validated check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The source or transform checked.
    pub target: String,
    /// A readable name (`not_null(day, country)`), or the one given.
    pub name: String,
    /// A name safe in a file path, unique in the pipeline (`not_null_orders_id`): the
    /// folder of its stored failures.
    pub file_name: String,
    /// What is checked.
    pub kind: CheckKind,
    /// Error or warning.
    pub severity: CheckSeverity,
    /// The rows the check looks at (`where:`); all when absent.
    pub filter: Option<CheckSql>,
    /// Keep failing rows under the state folder.
    pub store_failures: bool,
    /// Other sources and transforms it reads (`relationships`, subqueries).
    pub reads: Vec<String>,
    /// The YAML path of the check.
    pub yaml_path: String,
}

impl Check {
    /// Every source or transform the check reads: its target first.
    pub fn relations(&self) -> Vec<String> {
        let mut out = vec![self.target.clone()];
        for r in &self.reads {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
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

    /// True when `node` (a transform or a sink) reads `name`, directly or through
    /// transforms.
    pub fn reads(&self, node: &str, name: &str) -> bool {
        node != name && self.upstream(node).iter().any(|n| n == name)
    }

    /// The sinks that read `name`, directly or through transforms.
    pub fn sinks_reading<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.sinks.keys().filter(move |k| self.reads(k, name))
    }

    /// True when `name` is a source or a transform (something SQL can read).
    pub fn is_relation(&self, name: &str) -> bool {
        self.sources.contains_key(name) || self.transforms.contains_key(name)
    }
}
