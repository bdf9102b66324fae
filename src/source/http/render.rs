//! The requests of an HTTP source, rendered once per item of `for_each` at validation.
//!
//! The loader renders every string of the file, but a template that refers to `item` can only
//! be rendered per item: the loader leaves those alone ([`defers_rendering`]), and
//! validation renders them here with the item in the context, so a mistake in one
//! (`{{ item.latt }}`) is reported at its key and line like any other template error.

use std::sync::Arc;

use minijinja::value::Value;

use super::config::{HttpSourceSpec, Method};
use crate::connector::CheckCx;
use crate::template::{TemplateError, Templater};

/// The keys of an HTTP source whose templates may use `item`.
const PER_ITEM_KEYS: &[&str] = &["url", "params", "headers", "body"];

/// True when the loader should leave a string unrendered: a template under an HTTP source's
/// `url`, `params`, `headers` or `body` that refers to `item` (rendered per item later).
pub fn defers_rendering(yaml_path: &str, text: &str, templater: &Templater) -> bool {
    let mut parts = yaml_path.splitn(3, '.');
    let (Some("sources"), Some(_), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let key = rest.split(['.', '[']).next().unwrap_or_default();
    PER_ITEM_KEYS.contains(&key) && templater.referenced_names(text).contains("item")
}

/// Every request of a source, ready to send.
#[derive(Debug)]
pub struct Resolved {
    /// One per item (one in all without `for_each`).
    pub requests: Vec<Request>,
    /// The items (`null` without `for_each`), for `item_columns`.
    pub items: Arc<Vec<serde_json::Value>>,
    /// Where raw responses are landed: an absolute folder or a URL.
    pub land: Option<String>,
}

/// One rendered request (before pagination).
#[derive(Debug, Clone)]
pub struct Request {
    /// The item's index.
    pub item: usize,
    /// GET or POST.
    pub method: Method,
    /// The URL as written (it may hold a query).
    pub url: String,
    /// Query parameters, in order (a list value gives the key several times).
    pub params: Vec<(String, String)>,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<serde_json::Value>,
}

/// Renders the requests, reporting problems into `cx`. `None` when something is wrong.
pub fn resolve(spec: &HttpSourceSpec, cx: &mut CheckCx<'_>) -> Option<Resolved> {
    let items = match &spec.for_each {
        None => None,
        Some(v) => match items_of(v) {
            Ok(items) => Some(items),
            Err(e) => {
                cx.error("for_each", e);
                return None;
            }
        },
    };
    let templater = &cx.loaded.templater;
    let mut requests = Vec::new();
    let list = items
        .clone()
        .unwrap_or_else(|| vec![serde_json::Value::Null]);
    for (i, item) in list.iter().enumerate() {
        let with_item;
        let t = match &items {
            Some(_) => {
                with_item = templater.with_value("item", Value::from_serialize(item));
                &with_item
            }
            None => templater,
        };
        match render_request(spec, t, i, items.is_some()) {
            Ok(r) => requests.push(r),
            Err((key, e)) => {
                let msg = if items.is_some() {
                    format!("{} (item {i}: {})", e.message, short_json(item))
                } else {
                    e.message.clone()
                };
                let d = cx.error(&key, msg);
                if let Some(h) = e.help {
                    *d = d.clone().with_help(h);
                }
                return None;
            }
        }
    }
    let land = spec.land.as_ref().map(|l| {
        if crate::validate::is_url(&l.path) {
            l.path.clone()
        } else {
            crate::validate::resolve_local(&cx.loaded.base_dir, &l.path)
                .to_string_lossy()
                .into_owned()
        }
    });
    for (col, field) in &spec.item_columns {
        if let Some(items) = &items
            && !items.iter().any(|it| item_field(it, field).is_some())
        {
            cx.error(
                &format!("item_columns.{col}"),
                format!("no item of `for_each` has a field `{field}`"),
            );
            return None;
        }
    }
    Some(Resolved {
        requests,
        items: Arc::new(items.unwrap_or_else(|| vec![serde_json::Value::Null])),
        land,
    })
}

/// The value of a dotted field of an item (`name`, `geo.lat`); the item itself for `.`.
pub fn item_field<'a>(item: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    if field == "." {
        return Some(item);
    }
    field
        .split('.')
        .try_fold(item, |v, k| v.as_object().and_then(|o| o.get(k)))
}

/// The items of `for_each`: a list, or text that holds one (a var rendered into a string).
fn items_of(v: &serde_json::Value) -> Result<Vec<serde_json::Value>, String> {
    match v {
        serde_json::Value::Array(items) => Ok(items.clone()),
        serde_json::Value::String(s) => {
            let parsed = serde_json::from_str::<serde_json::Value>(s)
                .ok()
                .or_else(|| {
                    let node = crate::yaml::parse(s).ok()?;
                    crate::yaml::from_node::<serde_json::Value>(&node, "for_each").ok()
                });
            match parsed {
                Some(serde_json::Value::Array(items)) => Ok(items),
                _ => Err(format!(
                    "`for_each` is a list (of rows, or a var holding one), found `{}`",
                    short(s)
                )),
            }
        }
        other => Err(format!("`for_each` is a list, found {}", short_json(other))),
    }
}

fn render_request(
    spec: &HttpSourceSpec,
    t: &Templater,
    item: usize,
    has_items: bool,
) -> Result<Request, (String, TemplateError)> {
    let text = |key: &str, s: &str| -> Result<String, (String, TemplateError)> {
        t.render(s)
            .map_err(|e| (key.to_string(), explain(e, has_items)))
    };
    let url = text("url", &spec.url)?;
    let mut params = Vec::new();
    for (k, v) in &spec.params {
        let key = format!("params.{k}");
        let values = match v {
            serde_json::Value::Array(list) => list.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => params.push((k.clone(), text(&key, &s)?)),
                other => params.push((k.clone(), other.to_string())),
            }
        }
    }
    let mut headers = Vec::new();
    for (k, v) in &spec.headers {
        headers.push((k.clone(), text(&format!("headers.{k}"), v)?));
    }
    let body = match &spec.body {
        Some(b) => Some(render_json(b, t, "body", has_items)?),
        None => None,
    };
    Ok(Request {
        item,
        method: spec.method,
        url,
        params,
        headers,
        body,
    })
}

/// Renders the strings of a JSON body; a string that is one whole expression keeps the
/// expression's type (`"{{ item.lat }}"` → a number).
fn render_json(
    v: &serde_json::Value,
    t: &Templater,
    key: &str,
    has_items: bool,
) -> Result<serde_json::Value, (String, TemplateError)> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) if Templater::is_template(s) => {
            let value = t
                .render_value(s)
                .map_err(|e| (key.to_string(), explain(e, has_items)))?;
            serde_json::to_value(&value).unwrap_or(J::Null)
        }
        J::Array(list) => J::Array(
            list.iter()
                .enumerate()
                .map(|(i, x)| render_json(x, t, &format!("{key}[{i}]"), has_items))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, x)| {
                    Ok((
                        k.clone(),
                        render_json(x, t, &format!("{key}.{k}"), has_items)?,
                    ))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

fn explain(mut e: TemplateError, has_items: bool) -> TemplateError {
    if !has_items && e.message.contains("`item`") {
        e.message = "`item` is defined only in a source with `for_each`".into();
        e.help = Some("add `for_each:` with the list to fan out over".into());
    }
    e
}

fn short(s: &str) -> String {
    let one: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        format!("{one}…")
    } else {
        one
    }
}

fn short_json(v: &serde_json::Value) -> String {
    short(&crate::secrets::redact(&v.to_string()))
}
