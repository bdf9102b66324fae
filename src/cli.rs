//! The command line, as clap types. Raw arguments only: `commands` turns them into actions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::graph::GraphFormat;

/// Declarative data pipelines: YAML in, DataFusion plans over Arrow out.
#[derive(Debug, Parser)]
#[command(name = "etl", version, about, long_about = None)]
pub struct Cli {
    /// Log and summary format: `text` for people, `json` (one object per line) for CI.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ETL_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Colour in messages: auto (on a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Template inputs shared by the commands that load a pipeline.
#[derive(Debug, Clone, Args, Default)]
pub struct VarArgs {
    /// Set a var: `--var name=value` (repeatable; wins over `--vars-file` and the file).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// A YAML file of vars (wins over the pipeline's defaults).
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// The logical date `ds` (YYYY-MM-DD); default: today, UTC.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pipelines.
    Run(RunArgs),
    /// Check pipelines without moving data: YAML, keys, templates, references, cycles, SQL.
    Validate(ValidateArgs),
    /// Show the optimised logical and physical plans.
    Explain(ExplainArgs),
    /// Print the dependency graph.
    Graph(GraphArgs),
    /// Show the first rows of a source or transform.
    Preview(PreviewArgs),
    /// Run the pipelines' tests (fixtures in, expected rows out).
    Test(TestArgs),
    /// Print the JSON Schema of the pipeline format.
    Schema,
    /// Show a pipeline's state (last commit), finishing an interrupted commit first.
    State(StateArgs),
    /// Scaffold a pipeline repository.
    Init(InitArgs),
}

/// `etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline files.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Vars and date.
    #[command(flatten)]
    pub vars: VarArgs,
    /// Backfill: first logical date (with --to); runs once per date.
    #[arg(
        long,
        value_name = "YYYY-MM-DD",
        requires = "to",
        conflicts_with = "date"
    )]
    pub from: Option<String>,
    /// Backfill: last logical date, included.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
    pub to: Option<String>,
    /// Run only these sinks and what they need (repeatable). A source or transform name
    /// selects the sinks that read it.
    #[arg(long, value_name = "NAME")]
    pub select: Vec<String>,
    /// Plan everything and run no query: nothing is read or written.
    #[arg(long)]
    pub dry_run: bool,
    /// Memory limit for queries (`2GiB`, `512MB`), from 1 MiB to 1 PiB; past it, operators
    /// spill to disk.
    #[arg(long, value_name = "SIZE", env = "ETL_MEMORY_LIMIT", value_parser = crate::engine::check_memory_limit)]
    pub memory_limit: Option<String>,
    /// Folder for spill files (default: the system temp folder).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Partitions per query, 1 to 1024 (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = crate::engine::parse_threads)]
    pub threads: Option<usize>,
    /// When another run of the pipeline holds its lock, wait for it (for at most DURATION,
    /// e.g. `10m`, or for ever without a value) instead of exiting with code 3.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "forever")]
    pub wait: Option<String>,
    /// Ignore the watermarks of incremental sources and read every row (the watermarks are
    /// then set from what this run read).
    #[arg(long)]
    pub full_refresh: bool,
    /// Read HTTP sources from what their `land:` kept (the newest complete landing for the
    /// run's date) instead of calling their APIs: replays a run, e.g. after a fix to the SQL.
    #[arg(long)]
    pub from_landed: bool,
}

/// `etl state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Vars and date (they can decide the pipeline's name and state folder).
    #[command(flatten)]
    pub vars: VarArgs,
    /// Wait for a running run's lock (for at most DURATION, or for ever without a value).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "forever")]
    pub wait: Option<String>,
    /// Forget the watermarks of SOURCE (every incremental source without a value), in the
    /// state and in the sinks' commit records: the next run reads from the start.
    #[arg(long, value_name = "SOURCE", num_args = 0..=1, default_missing_value = "")]
    pub reset: Option<String>,
    /// Set the watermark of a source (`--set sales=1000`, typed as its cursor column) for
    /// every sink that reads it, wherever it is kept: the next run reads rows past VALUE.
    #[arg(long = "set", value_name = "SOURCE=VALUE")]
    pub set: Vec<String>,
}

/// `etl validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline files.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Vars and date.
    #[command(flatten)]
    pub vars: VarArgs,
    /// Treat an unset `env()` variable without default as an error, not a warning.
    #[arg(long)]
    pub strict: bool,
    /// Check a `--select` as `etl run` would take it, and name the checks it leaves out.
    #[arg(long, value_name = "NAME")]
    pub select: Vec<String>,
}

/// `etl explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// A transform, source or sink; every sink when absent.
    pub name: Option<String>,
    /// Vars and date.
    #[command(flatten)]
    pub vars: VarArgs,
}

/// `etl graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Vars and date.
    #[command(flatten)]
    pub vars: VarArgs,
}

/// `etl preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// A source or transform.
    pub name: String,
    /// How many rows.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Vars and date.
    #[command(flatten)]
    pub vars: VarArgs,
}

/// `etl test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Pipeline files, or folders: every pipeline below a folder.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Run only the tests with these names (`NAME` or `PIPELINE::NAME`; repeatable). A name
    /// that matches no test is an error.
    #[arg(long = "name", value_name = "TEST")]
    pub names: Vec<String>,
}

/// `etl init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to scaffold (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}
