//! The context templates see: the fixed values (`ds`, `run_id`, `pipeline`, ...) and the vars,
//! bare and under `vars.`.
//!
//! Both are shared maps looked up on demand, so adding a var or rendering a value costs the
//! same however many vars a pipeline has (copying a map of 100,000 vars into each render's
//! context would make loading such a file quadratic).

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};

use super::{Globals, dates};

/// Names that always mean the fixed value, never a var of the same name.
pub(super) const RESERVED: &[&str] = &["vars", "ds", "run_id", "pipeline", "env"];

/// The values every template sees besides the vars: `ds`, `ds_nodash`, `prev_ds`,
/// `next_ds`, `run_id` and `pipeline.name`.
pub(super) fn fixed_values(globals: &Globals) -> BTreeMap<String, Value> {
    let ds = globals.ds;
    let mut context = BTreeMap::new();
    context.insert("ds".into(), Value::from(ds.to_string()));
    context.insert(
        "ds_nodash".into(),
        Value::from(ds.format("%Y%m%d").to_string()),
    );
    context.insert(
        "prev_ds".into(),
        Value::from(dates::prev_day(ds).to_string()),
    );
    context.insert(
        "next_ds".into(),
        Value::from(dates::next_day(ds).to_string()),
    );
    context.insert("run_id".into(), Value::from(globals.run_id.clone()));
    context.insert(
        "pipeline".into(),
        Value::from_serialize(serde_json::json!({ "name": globals.pipeline_name })),
    );
    context
}

/// A render's root context.
#[derive(Debug)]
pub(super) struct Scope {
    pub(super) globals: Arc<BTreeMap<String, Value>>,
    pub(super) vars: Arc<BTreeMap<String, Value>>,
}

impl Scope {
    /// The value of a bare name, if it has one.
    pub(super) fn lookup(&self, name: &str) -> Option<Value> {
        match name {
            "vars" => Some(Value::from_dyn_object(self.vars.clone())),
            n if RESERVED.contains(&n) => self.globals.get(n).cloned(),
            n => self.vars.get(n).or_else(|| self.globals.get(n)).cloned(),
        }
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}
