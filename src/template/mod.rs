//! Templating of pipeline values with minijinja.
//!
//! Strings are rendered after the YAML is parsed, one scalar at a time, so an error points at
//! its key and line. The context holds the vars (bare and under `vars.`), `ds` and friends,
//! `run_id` and `pipeline.name`; `env(name, default?)` reads the environment and marks what it
//! returns as a secret. Undefined names are errors (strict undefined). Rendering is bounded
//! (see [`limits`]): a template that loops too long, renders too much or builds a huge value
//! is an error that names the limit, never a hang.

mod dates;
mod error;
mod functions;
pub mod limits;
mod scope;
mod trace;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

pub use dates::{DS_YEARS, parse_ds};
pub use error::TemplateError;
use limits::{BoundedWriter, Budget, MAX_FUEL, MAX_OUTPUT, size_text};
use scope::{RESERVED, Scope};
pub use trace::{Trace, offset_of};

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
    globals: Arc<BTreeMap<String, Value>>,
    vars: Arc<BTreeMap<String, Value>>,
    unset_env: Arc<Mutex<Vec<String>>>,
    budget: Budget,
}

/// The name a lone expression's value is kept under while it is evaluated.
const VALUE_SLOT: &str = "__etl_value";

impl Templater {
    /// Builds the environment and the base context (no vars yet).
    pub fn new(globals: &Globals, mode: EnvMode) -> Self {
        let unset_env = Arc::new(Mutex::new(Vec::new()));
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(MAX_FUEL));
        limits::guard_filters(&mut env);
        limits::guard_output(&mut env);
        functions::register(&mut env, mode, unset_env.clone());

        Self {
            env,
            globals: Arc::new(scope::fixed_values(globals)),
            vars: Arc::new(BTreeMap::new()),
            unset_env,
            budget: Budget::default(),
        }
    }

    fn scope(&self) -> Value {
        Value::from_object(Scope {
            globals: self.globals.clone(),
            vars: self.vars.clone(),
        })
    }

    /// True when a bare name means something in templates.
    fn has_name(&self, name: &str) -> bool {
        name == "vars"
            || self.globals.contains_key(name)
            || (!RESERVED.contains(&name) && self.vars.contains_key(name))
    }

    /// Names visible to templates (for "did you mean").
    fn known_names(&self) -> Vec<String> {
        let vars = self.vars.keys().filter(|k| !RESERVED.contains(&k.as_str()));
        self.globals
            .keys()
            .chain(vars)
            .cloned()
            .chain(["vars".to_string()])
            .collect()
    }

    /// Adds a resolved var (bare and under `vars.`).
    pub fn set_var(&mut self, name: &str, value: Value) {
        Arc::make_mut(&mut self.vars).insert(name.to_string(), value);
    }

    /// A copy of this renderer with one more name in the context (an HTTP source's `item`,
    /// rendered once per item of its `for_each`). The copy has a budget of its own: each
    /// render is still bounded by the per-template fuel and output limits.
    pub fn with_value(&self, name: &str, value: Value) -> Templater {
        let mut globals = (*self.globals).clone();
        globals.insert(name.to_string(), value);
        Templater {
            env: self.env.clone(),
            globals: Arc::new(globals),
            vars: self.vars.clone(),
            unset_env: self.unset_env.clone(),
            budget: Budget::default(),
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
        self.render_traced(text).map(|(out, _)| out)
    }

    /// Renders one string, with the [`Trace`] of where each part of the output came from
    /// (`None` for text without template syntax, returned as it is).
    pub fn render_traced(&self, text: &str) -> Result<(String, Option<Trace>), TemplateError> {
        if !Self::is_template(text) {
            return Ok((text.to_string(), None));
        }
        let (out, _, trace) = self.run(text)?;
        let out = String::from_utf8(out).map_err(|_| {
            self.budget.fail();
            TemplateError::limit("the template rendered text that is not UTF-8".into())
        })?;
        Ok((out, Some(trace)))
    }

    /// Renders a string that should produce a value (a var): a template that is exactly one
    /// expression keeps the expression's type, so `{{ 2 * n }}` is a number. The value is
    /// measured: one larger than [`limits::MAX_OUTPUT`] or nested deeper than
    /// [`limits::MAX_VALUE_DEPTH`] is an error.
    pub fn render_value(&self, text: &str) -> Result<Value, TemplateError> {
        let trimmed = text.trim();
        let Some(expr) = trimmed
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .filter(|e| !e.contains("{{") && !e.contains("}}") && !e.contains("%}"))
        else {
            return self.render(text).map(Value::from);
        };
        let source = format!("{{% set {VALUE_SLOT} = {} %}}", expr.trim());
        let (_, value, _) = self.run(&source).map_err(|mut e| {
            // A place in the wrapped source is no place in the value's text.
            e.offset = None;
            if e.message.starts_with("template syntax error") {
                e.message = e.message.replace(VALUE_SLOT, "value");
            }
            e
        })?;
        let value = value.unwrap_or_default();
        match limits::measure(&value, MAX_OUTPUT) {
            Ok(size) => match self.budget.spend(0, size) {
                Some(reason) => Err(TemplateError::exhausted(reason)),
                None => Ok(value),
            },
            Err(too_big) => {
                self.budget.fail();
                Err(TemplateError::limit(format!(
                    "the template's value is {too_big} (the limit for one value)"
                )))
            }
        }
    }

    /// Runs a template within the limits; returns its output, the value it set in
    /// [`VALUE_SLOT`], if any, and where the output came from.
    fn run(&self, text: &str) -> Result<(Vec<u8>, Option<Value>, Trace), TemplateError> {
        if let Some(reason) = self.budget.exhausted() {
            return Err(TemplateError::exhausted(reason));
        }
        let mut out = BoundedWriter::new(MAX_OUTPUT, text);
        let rendered = limits::no_panic(|| {
            let tmpl = self.env.template_from_str(text)?;
            let captured = tmpl.render_captured_to(self.scope(), &mut out)?;
            let state = captured.state();
            let fuel = state.fuel_levels().map_or(0, |(used, _)| used);
            Ok::<_, minijinja::Error>((fuel, state.lookup(VALUE_SLOT)))
        });
        let failure = match rendered {
            Ok(Ok((fuel, value))) => {
                return match self.budget.spend(fuel, out.buf.len()) {
                    Some(reason) => Err(TemplateError::exhausted(reason)),
                    None => Ok((out.buf, value, out.recorder.finish(text))),
                };
            }
            Ok(Err(_)) if out.exceeded => TemplateError::limit(format!(
                "the template renders more than {} (the limit for one value)",
                size_text(MAX_OUTPUT)
            )),
            Ok(Err(e)) if e.kind() == ErrorKind::OutOfFuel => TemplateError::limit(format!(
                "the template runs more than {MAX_FUEL} instructions (the limit for one value); is a loop too long?"
            )),
            Ok(Err(e)) => self.convert(e, text),
            Err(panic) => TemplateError::limit(format!(
                "the template engine failed on this template: {panic}"
            )),
        };
        self.budget.fail();
        Err(failure)
    }

    /// Takes the names of unset environment variables met so far (placeholder mode).
    pub fn take_unset_env(&self) -> Vec<String> {
        std::mem::take(&mut *self.unset_env.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets;

    pub(super) fn templater() -> Templater {
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
    fn vars_are_bare_and_under_vars_but_never_shadow_fixed_names() {
        let mut t = templater();
        t.set_var("ds", Value::from("not the date"));
        t.set_var("n", Value::from(2));
        assert_eq!(
            t.render("{{ ds }} {{ vars.ds }}").unwrap(),
            "2024-03-01 not the date"
        );
        assert_eq!(t.render_value("{{ n * 3 }}").unwrap(), Value::from(6));
        assert_eq!(t.render("{{ vars | length }}").unwrap(), "2");
        let snapshot = t.render_value("{{ vars }}").unwrap();
        t.set_var("later", Value::from(1));
        assert_eq!(snapshot.len(), Some(2), "a value keeps the vars it saw");
        assert_eq!(t.render("{{ later + n }}").unwrap(), "3");
    }

    #[test]
    fn loops_run_on_fuel() {
        let t = templater();
        let e = t
            .render(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            )
            .unwrap_err();
        assert!(e.message.contains("1000000 instructions"), "{}", e.message);
        assert!(!e.exhausted);
        assert_eq!(
            t.render("{% for i in range(3) %}{{ i }}{% endfor %}")
                .unwrap(),
            "012"
        );
    }

    #[test]
    fn big_outputs_and_values_are_errors() {
        let t = templater();
        let e = t.render("{{ ([1] * 1000) * 1000000 }}").unwrap_err();
        assert!(
            e.message.contains("written here is larger than 4 MiB"),
            "{}",
            e.message
        );
        let e = t
            .render("{% for i in range(5000) %}{{ 'x' * 1000 }}{% endfor %}")
            .unwrap_err();
        assert!(
            e.message.contains("renders more than 4 MiB"),
            "{}",
            e.message
        );
        let e = t.render_value("{{ ([1] * 1000) * 1000000 }}").unwrap_err();
        assert!(e.message.contains("larger than 4 MiB"), "{}", e.message);
        for filter in [
            "sum",
            "join(',')",
            "list",
            "sort",
            "unique",
            "max",
            "string",
        ] {
            let e = t
                .render(&format!("{{{{ (([1] * 1000) * 1000000) | {filter} }}}}"))
                .unwrap_err();
            assert!(
                e.message.contains("is larger than 4 MiB"),
                "{filter}: {}",
                e.message
            );
        }
        let e = t.render("{{ 'x' * 100000000 }}").unwrap_err();
        assert!(
            e.message.contains("renders more than 4 MiB"),
            "{}",
            e.message
        );
        // The guarded filters still work, keyword arguments included.
        assert_eq!(t.render("{{ [1, 2, 3] | sum }}").unwrap(), "6");
        assert_eq!(t.render("{{ [3, 1] | sort | join('-') }}").unwrap(), "1-3");
        assert_eq!(t.render("{{ 'a b' | upper }}").unwrap(), "A B");
        assert_eq!(
            t.render(
                "{{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | join(',') }}"
            )
            .unwrap(),
            "1,2"
        );
        assert_eq!(t.render("{{ 5 | sql_quote }}").unwrap(), "'5'");
    }

    #[test]
    fn deep_values_are_errors() {
        let mut t = templater();
        t.set_var("v", Value::from(0));
        for _ in 0..70 {
            match t.render_value("{{ [v] }}") {
                Ok(v) => t.set_var("v", v),
                Err(e) => {
                    assert!(e.message.contains("nested more than 64"), "{}", e.message);
                    return;
                }
            }
        }
        panic!("a value nested 70 deep was accepted");
    }

    #[test]
    fn engine_panics_become_errors() {
        let t = templater();
        // Overflows inside the engine in debug builds; either way nothing escapes.
        if let Err(e) = t.render("{{ ([1, 2, 3] * 9223372036854775807) | length }}") {
            assert!(e.message.contains("template"), "{}", e.message);
        }
    }

    #[test]
    fn the_pipeline_total_is_shared() {
        let t = templater();
        let heavy = "{% for i in range(100000) %}{% endfor %}";
        let e = (0..200)
            .find_map(|_| t.render(heavy).err())
            .expect("the total budget runs out");
        assert!(e.exhausted, "{}", e.message);
        assert!(e.message.contains("20000000 instructions"), "{}", e.message);
        assert!(t.render("{{ 1 }}").unwrap_err().exhausted);
        assert_eq!(t.render("no template").unwrap(), "no template");

        let t = templater();
        let errors: Vec<TemplateError> = (0..60)
            .filter_map(|_| t.render("{{ nope }}").err())
            .collect();
        assert!(
            !errors[49].exhausted && errors[50].exhausted,
            "{:?}",
            errors[50]
        );
        assert!(
            errors[59].message.contains("50 template errors"),
            "{}",
            errors[59].message
        );
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

    #[test]
    fn env_with_secret_false_is_not_masked() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("ETL_TEST_TEMPLATE_PLAIN", "plain-target-name") };
        let t = templater();
        assert_eq!(
            t.render("{{ env('ETL_TEST_TEMPLATE_PLAIN', secret=false) }}")
                .unwrap(),
            "plain-target-name"
        );
        assert!(!secrets::contains_secret("x plain-target-name"));
        assert_eq!(
            t.render("{{ env('ETL_TEST_UNSET_Y', 'd', secret=false) }}")
                .unwrap(),
            "d"
        );
        let e = t
            .render("{{ env('ETL_TEST_TEMPLATE_PLAIN', secrets=false) }}")
            .unwrap_err();
        assert!(e.message.contains("secrets"), "{}", e.message);
    }
}
