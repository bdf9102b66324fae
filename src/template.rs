//! Templating of pipeline values with minijinja.
//!
//! Strings are rendered after the YAML is parsed, one scalar at a time, so an error points at
//! its key and line. The context holds the vars (bare and under `vars.`), `ds` and friends,
//! `run_id` and `pipeline.name`; `env(name, default?)` reads the environment and marks what it
//! returns as a secret. Undefined names are errors (strict undefined).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{Datelike, Duration, NaiveDate};
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::secrets;

/// How `env()` treats a variable that is unset and has no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvMode {
    /// An error (running).
    Strict,
    /// A warning, rendered as a placeholder (`etl validate` without `--strict`).
    Placeholder,
}

/// The values every template can see, besides the vars.
#[derive(Debug, Clone)]
pub struct Globals {
    /// The logical date.
    pub ds: NaiveDate,
    /// This run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline_name: String,
}

/// A template renderer bound to one run's context.
pub struct Templater {
    env: Environment<'static>,
    context: BTreeMap<String, Value>,
    vars: BTreeMap<String, Value>,
    unset_env: Arc<Mutex<Vec<String>>>,
}

/// A template failure, before it is placed in the file.
#[derive(Debug, Clone)]
pub struct TemplateError {
    /// The reason, in the user's words.
    pub message: String,
    /// 1-based line inside the template text, if known.
    pub line: Option<usize>,
    /// A hint.
    pub help: Option<String>,
}

impl Templater {
    /// Builds the environment and the base context (no vars yet).
    pub fn new(globals: &Globals, mode: EnvMode) -> Self {
        let unset_env = Arc::new(Mutex::new(Vec::new()));
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let unset = unset_env.clone();
        env.add_function(
            "env",
            move |name: String, default: Option<Value>| -> Result<Value, minijinja::Error> {
                match std::env::var(&name) {
                    Ok(v) => {
                        secrets::register(&v);
                        Ok(Value::from(v))
                    }
                    Err(_) => match default {
                        Some(d) => Ok(d),
                        None if mode == EnvMode::Placeholder => {
                            unset
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(name.clone());
                            Ok(Value::from(format!("<unset:{name}>")))
                        }
                        None => Err(minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            format!("environment variable `{name}` is not set and has no default"),
                        )),
                    },
                }
            },
        );
        env.add_filter("date_add", date_add);
        env.add_filter("date_format", date_format);
        env.add_filter(
            "month_start",
            |d: String| -> Result<String, minijinja::Error> {
                Ok(parse_date(&d)?.with_day(1).unwrap_or_default().to_string())
            },
        );
        env.add_filter(
            "month_end",
            |d: String| -> Result<String, minijinja::Error> {
                let first = parse_date(&d)?.with_day(1).unwrap_or_default();
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(first);
                Ok((next - Duration::days(1)).to_string())
            },
        );
        env.add_filter("sql_quote", |s: String| {
            format!("'{}'", s.replace('\'', "''"))
        });
        env.add_filter("sql_ident", |s: String| {
            format!("\"{}\"", s.replace('"', "\"\""))
        });

        let mut context = BTreeMap::new();
        let ds = globals.ds;
        context.insert("ds".into(), Value::from(ds.to_string()));
        context.insert(
            "ds_nodash".into(),
            Value::from(ds.format("%Y%m%d").to_string()),
        );
        context.insert(
            "prev_ds".into(),
            Value::from((ds - Duration::days(1)).to_string()),
        );
        context.insert(
            "next_ds".into(),
            Value::from((ds + Duration::days(1)).to_string()),
        );
        context.insert("run_id".into(), Value::from(globals.run_id.clone()));
        context.insert(
            "pipeline".into(),
            Value::from_serialize(serde_json::json!({ "name": globals.pipeline_name })),
        );
        context.insert("vars".into(), Value::from_serialize(serde_json::json!({})));
        Self {
            env,
            context,
            vars: BTreeMap::new(),
            unset_env,
        }
    }

    /// Names visible to templates (for "did you mean").
    fn known_names(&self) -> Vec<String> {
        self.context.keys().cloned().collect()
    }

    /// Adds a resolved var (bare and under `vars.`).
    pub fn set_var(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_string(), value.clone());
        self.context
            .insert("vars".into(), Value::from(self.vars.clone()));
        if !matches!(name, "vars" | "ds" | "run_id" | "pipeline" | "env") {
            self.context.insert(name.to_string(), value);
        }
    }

    /// A copy of this renderer with one more name in the context (an HTTP source's `item`,
    /// rendered once per item of its `for_each`).
    pub fn with_value(&self, name: &str, value: Value) -> Templater {
        let mut context = self.context.clone();
        context.insert(name.to_string(), value);
        Templater {
            env: self.env.clone(),
            context,
            vars: self.vars.clone(),
            unset_env: self.unset_env.clone(),
        }
    }

    /// True when the text holds template syntax.
    pub fn is_template(text: &str) -> bool {
        text.contains("{{") || text.contains("{%") || text.contains("{#")
    }

    /// The names a template refers to that are not defined yet (bare and `vars.x` alike).
    pub fn referenced_names(&self, text: &str) -> HashSet<String> {
        let Ok(t) = self.env.template_from_str(text) else {
            return HashSet::new();
        };
        t.undeclared_variables(true)
            .into_iter()
            .map(|n| n.strip_prefix("vars.").map(str::to_string).unwrap_or(n))
            .map(|n| n.split('.').next().unwrap_or_default().to_string())
            .collect()
    }

    /// Renders one string. Text without template syntax is returned as it is.
    pub fn render(&self, text: &str) -> Result<String, TemplateError> {
        if !Self::is_template(text) {
            return Ok(text.to_string());
        }
        let tmpl = self
            .env
            .template_from_str(text)
            .map_err(|e| self.convert(e, text))?;
        tmpl.render(&self.context)
            .map_err(|e| self.convert(e, text))
    }

    /// Renders a string that should produce a value (a var): a template that is exactly one
    /// expression keeps the expression's type, so `{{ 2 * n }}` is a number.
    pub fn render_value(&self, text: &str) -> Result<Value, TemplateError> {
        let trimmed = text.trim();
        if let Some(expr) = trimmed
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .filter(|e| !e.contains("{{") && !e.contains("}}"))
        {
            let compiled = self
                .env
                .compile_expression(expr.trim())
                .map_err(|e| self.convert(e, text))?;
            return compiled
                .eval(&self.context)
                .map_err(|e| self.convert(e, text));
        }
        self.render(text).map(Value::from)
    }

    /// Takes the names of unset environment variables met so far (placeholder mode).
    pub fn take_unset_env(&self) -> Vec<String> {
        std::mem::take(&mut *self.unset_env.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn convert(&self, err: minijinja::Error, text: &str) -> TemplateError {
        let mut help = None;
        let message = match err.kind() {
            ErrorKind::UndefinedError => {
                let known = self.known_names();
                let unknown: Vec<String> = self
                    .referenced_names(text)
                    .into_iter()
                    .filter(|n| !self.context.contains_key(n))
                    .collect();
                match unknown.first() {
                    Some(name) => {
                        help = did_you_mean(name, known.iter().map(String::as_str)).or_else(|| {
                            Some("define it under `vars:` or pass `--var name=value`".into())
                        });
                        format!("undefined variable `{name}` in template")
                    }
                    None => format!(
                        "undefined value in template: {}",
                        err.detail().unwrap_or("an attribute or item is missing")
                    ),
                }
            }
            ErrorKind::SyntaxError => {
                format!(
                    "template syntax error: {}",
                    err.detail().unwrap_or("invalid syntax")
                )
            }
            ErrorKind::UnknownFilter | ErrorKind::UnknownFunction => {
                help = Some(
                    "available: env(), date_add, date_format, month_start, month_end, sql_quote, sql_ident"
                        .into(),
                );
                format!(
                    "template error: {}",
                    err.detail().unwrap_or("unknown filter or function")
                )
            }
            _ => format!(
                "template error: {}",
                err.detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.to_string())
            ),
        };
        TemplateError {
            message,
            line: err.line(),
            help,
        }
    }
}

impl TemplateError {
    /// Turns the error into a diagnostic.
    pub fn into_diagnostic(self) -> Diagnostic {
        let d = Diagnostic::error(self.message);
        match self.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, minijinja::Error> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("`{s}` is not a date (YYYY-MM-DD)"),
        )
    })
}

fn date_add(d: String, days: i64) -> Result<String, minijinja::Error> {
    Ok((parse_date(&d)? + Duration::days(days)).to_string())
}

fn date_format(d: String, fmt: String) -> Result<String, minijinja::Error> {
    let date = parse_date(&d)?;
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", date.format(&fmt)).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("bad date format `{fmt}`"),
        )
    })?;
    Ok(out)
}

/// Parses a logical date given on the command line.
pub fn parse_ds(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templater() -> Templater {
        Templater::new(
            &Globals {
                ds: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                run_id: "r1".into(),
                pipeline_name: "p".into(),
            },
            EnvMode::Strict,
        )
    }

    #[test]
    fn renders_vars_dates_and_names() {
        let mut t = templater();
        t.set_var("dir", Value::from("data"));
        assert_eq!(t.render("{{ dir }}/{{ vars.dir }}").unwrap(), "data/data");
        assert_eq!(t.render("{{ ds | date_add(-1) }}").unwrap(), "2024-02-29");
        assert_eq!(
            t.render("{{ ds | date_format('%Y%m') }}").unwrap(),
            "202403"
        );
        assert_eq!(t.render("{{ ds | month_end }}").unwrap(), "2024-03-31");
        assert_eq!(
            t.render("{{ pipeline.name }}-{{ run_id }}").unwrap(),
            "p-r1"
        );
        assert_eq!(t.render_value("{{ 2 * 3 }}").unwrap(), Value::from(6));
    }

    #[test]
    fn undefined_names_are_errors_with_a_hint() {
        let mut t = templater();
        t.set_var("data_dir", Value::from("d"));
        let e = t.render("{{ data_dri }}/x").unwrap_err();
        assert_eq!(e.message, "undefined variable `data_dri` in template");
        assert_eq!(e.help.as_deref(), Some("did you mean `data_dir`?"));
    }

    #[test]
    fn env_reads_marks_secret_and_defaults() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("ETL_TEST_TEMPLATE_SECRET", "hunter2-secret") };
        let t = templater();
        assert_eq!(
            t.render("{{ env('ETL_TEST_TEMPLATE_SECRET') }}").unwrap(),
            "hunter2-secret"
        );
        assert!(secrets::contains_secret("x hunter2-secret"));
        assert_eq!(
            t.render("{{ env('ETL_TEST_UNSET_X', 'dflt') }}").unwrap(),
            "dflt"
        );
        let e = t.render("{{ env('ETL_TEST_UNSET_X') }}").unwrap_err();
        assert!(e.message.contains("ETL_TEST_UNSET_X"), "{}", e.message);
    }
}
