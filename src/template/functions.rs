//! The functions and filters templates can call besides minijinja's own: `env()`, the date
//! helpers, `sql_quote` and `sql_ident`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};

use super::limits::{self, MAX_OUTPUT};
use super::{EnvMode, dates};
use crate::secrets;

/// Adds the functions and filters to an environment. `unset` collects the names of unset
/// environment variables met in placeholder mode.
pub(super) fn register(
    env: &mut Environment<'static>,
    mode: EnvMode,
    unset: Arc<Mutex<Vec<String>>>,
) {
    env.add_function(
        "env",
        move |name: &str,
              default: Option<Value>,
              kwargs: Kwargs|
              -> Result<Value, minijinja::Error> {
            // `secret=false` reads a value that is not a secret (a target name, a region):
            // it is printed as it is. Everything else read here is masked wherever it shows.
            let secret = kwargs.get::<Option<bool>>("secret")?.unwrap_or(true);
            kwargs.assert_all_used()?;
            match std::env::var(name) {
                Ok(v) => {
                    if secret {
                        secrets::register(&v);
                    }
                    Ok(Value::from(v))
                }
                Err(_) => match default {
                    Some(d) => Ok(d),
                    None if mode == EnvMode::Placeholder => {
                        unset
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(name.to_string());
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
    env.add_filter("date_add", dates::date_add);
    env.add_filter("date_format", dates::date_format);
    env.add_filter("month_start", dates::month_start);
    env.add_filter("month_end", dates::month_end);
    env.add_filter(
        "sql_quote",
        |v: Value| -> Result<String, minijinja::Error> {
            Ok(format!("'{}'", text_of(&v)?.replace('\'', "''")))
        },
    );
    env.add_filter(
        "sql_ident",
        |v: Value| -> Result<String, minijinja::Error> {
            Ok(format!("\"{}\"", text_of(&v)?.replace('"', "\"\"")))
        },
    );
}

/// The text of a filter's input: strings as they are, other values written out, within the
/// output limit.
fn text_of(v: &Value) -> Result<Cow<'_, str>, minijinja::Error> {
    if let Some(s) = v.as_str() {
        return Ok(Cow::Borrowed(s));
    }
    limits::measure(v, MAX_OUTPUT).map_err(|e| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("the value is {e}"))
    })?;
    Ok(Cow::Owned(v.to_string()))
}
