//! The commands behind the CLI: validated arguments in, an exit code out.
//!
//! Exit codes are a contract: 0 success, 1 the run failed (I/O, data, a failed check),
//! 2 the pipeline or the command line is invalid, 3 another run of the pipeline holds its lock.
//!
//! Commands print only through [`Output`] and [`crate::out`], which mask secrets.

mod init;
mod inspect;
mod run;
mod state;
mod test;

use std::path::Path;
use std::process::ExitCode;

use chrono::NaiveDate;

use crate::cli::{Cli, ColorChoice, Command, LogFormat, VarArgs};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::load::LoadOptions;
use crate::model::Pipeline;
use crate::template::{EnvMode, parse_ds};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The run failed.
pub const EXIT_FAILED: u8 = 1;
/// The pipeline or the command line is invalid.
pub const EXIT_INVALID: u8 = 2;
/// Another run of the pipeline holds its lock.
pub const EXIT_LOCKED: u8 = 3;

/// How output is written.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Text or JSON.
    pub format: LogFormat,
    /// Colour in diagnostics.
    pub color: bool,
    /// Standard error is a terminal.
    pub tty: bool,
}

impl Output {
    fn new(cli: &Cli) -> Self {
        let tty = crate::out::stderr_is_terminal();
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
        };
        Self {
            format: cli.log_format,
            color,
            tty,
        }
    }

    /// Prints diagnostics to standard error (or as JSON lines).
    pub fn diagnostics(&self, diags: &Diagnostics) {
        for d in &diags.0 {
            self.diagnostic(d);
        }
        if self.format == LogFormat::Text && diags.error_count() > 1 {
            crate::out::err_line(&format!("{} errors", diags.error_count()));
        }
    }

    /// Prints one diagnostic (engine messages explained, see [`crate::engine_error`]).
    pub fn diagnostic(&self, d: &Diagnostic) {
        let d = &crate::engine_error::polish(d.clone());
        match self.format {
            LogFormat::Text => crate::out::err_text(&d.render(self.color)),
            LogFormat::Json => crate::out::err_json_line(d.to_json()),
        }
    }

    /// Prints a JSON event line to standard output.
    pub fn json(&self, value: serde_json::Value) {
        crate::out::json_line(value);
    }

    /// Prints a line of text to standard output.
    pub fn line(&self, text: &str) {
        crate::out::line(text);
    }

    /// Prints a line of text to standard error.
    pub fn err_line(&self, text: &str) {
        crate::out::err_line(text);
    }
}

/// Runs the command line; returns the process exit code.
pub fn execute(cli: Cli) -> ExitCode {
    crate::out::mask_panic_messages();
    let out = Output::new(&cli);
    init_tracing(out);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            crate::out::err_line(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => run::run(args, out).await,
            Command::Validate(args) => inspect::validate(args, out).await,
            Command::Explain(args) => inspect::explain(args, out).await,
            Command::Graph(args) => inspect::graph(args, out),
            Command::Preview(args) => inspect::preview(args, out).await,
            Command::Test(args) => test::test(args, out).await,
            Command::State(args) => state::state(args, out).await,
            Command::Schema => {
                out.line(
                    &serde_json::to_string_pretty(&crate::spec::json_schema()).unwrap_or_default(),
                );
                EXIT_OK
            }
            Command::Init(args) => init::init(args, out),
        }
    });
    ExitCode::from(code)
}

fn init_tracing(out: Output) {
    let default = match out.format {
        LogFormat::Json => "etl=info",
        LogFormat::Text => "etl=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::out::LogWriter);
    let _ = match out.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(out.color).without_time().try_init(),
    };
}

/// Parses `--var k=v` arguments; `v` must be a valid YAML value.
pub fn parse_vars(vars: &[String]) -> Result<Vec<(String, String)>, Diagnostic> {
    vars.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => match crate::load::var_value(v) {
                Ok(_) => Ok((k.trim().to_string(), v.to_string())),
                Err(e) => Err(Diagnostic::error(format!("--var `{kv}`: {e}")).with_help(
                    "the value is read as YAML (`--var n=3`, `--var 'methods=[a, b]'`); quote text that starts with `[` or `{`: `--var \"k='[text'\"`",
                )),
            },
            _ => Err(
                Diagnostic::error(format!("--var `{kv}` is not of the form name=value"))
                    .with_help("write `--var data_dir=/tmp/data`"),
            ),
        })
        .collect()
}

/// Parses a date argument.
pub fn parse_date_arg(flag: &str, value: &str) -> Result<NaiveDate, Diagnostic> {
    parse_ds(value).ok_or_else(|| {
        Diagnostic::error(format!("{flag} `{value}` is not a date"))
            .with_help("dates are written YYYY-MM-DD")
    })
}

/// Builds load options from the shared arguments.
pub fn load_options(
    args: &VarArgs,
    ds: Option<NaiveDate>,
    env_mode: EnvMode,
    run_id: &str,
) -> Result<LoadOptions, Diagnostic> {
    let ds = match (ds, &args.date) {
        (Some(d), _) => d,
        (None, Some(d)) => parse_date_arg("--date", d)?,
        (None, None) => chrono::Utc::now().date_naive(),
    };
    Ok(LoadOptions {
        vars: parse_vars(&args.vars)?,
        vars_file: args.vars_file.clone(),
        extra_vars: Default::default(),
        ds,
        run_id: run_id.to_string(),
        env_mode,
    })
}

/// Parses `--wait [DURATION]`: `None` means do not wait.
pub fn parse_wait(wait: &Option<String>) -> Result<Option<std::time::Duration>, Diagnostic> {
    match wait.as_deref() {
        None => Ok(None),
        Some("forever") => Ok(Some(std::time::Duration::MAX)),
        Some(text) => humantime::parse_duration(text).map(Some).map_err(|e| {
            Diagnostic::error(format!("--wait `{text}` is not a duration: {e}"))
                .with_help("write e.g. `--wait 10m`, `--wait 90s`, or `--wait` to wait for ever")
        }),
    }
}

/// Takes a pipeline's run lock, or reports who holds it (exit 3).
pub fn lock_pipeline(
    p: &Pipeline,
    run_id: &str,
    wait: Option<std::time::Duration>,
    out: Output,
) -> Result<crate::state::PipelineLock, u8> {
    crate::state::PipelineLock::acquire(&p.state_dir, &p.name, run_id, wait).map_err(|e| {
        let code = match e {
            crate::state::LockError::Held { .. } => EXIT_LOCKED,
            crate::state::LockError::Io { .. } => EXIT_FAILED,
        };
        out.diagnostic(&Diagnostic::error(e.to_string()).in_file(&p.file));
        code
    })
}

/// A new run id.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Loads and validates a pipeline; prints diagnostics (warnings too) on the way. Every
/// problem of every stage is reported before giving up.
pub fn load_pipeline(file: &Path, opts: &LoadOptions, out: Output) -> Result<Pipeline, u8> {
    let mut loaded = match crate::load::load_lenient(file, opts) {
        Ok(l) => l,
        Err(mut d) => {
            d.sort();
            out.diagnostics(&d);
            return Err(EXIT_INVALID);
        }
    };
    let mut diags = std::mem::take(&mut loaded.warnings);
    let result = crate::validate::validate(&loaded);
    if let Err(more) = &result {
        diags.extend(more.clone());
    }
    diags.sort();
    out.diagnostics(&diags);
    match result {
        Ok(p) if !diags.has_errors() => Ok(p),
        _ => Err(EXIT_INVALID),
    }
}
