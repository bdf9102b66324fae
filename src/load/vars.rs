//! Vars: gathered in override order and resolved in dependency order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use indexmap::IndexMap;
use minijinja::value::Value;

use super::{Cx, LoadOptions};
use crate::diagnostic::{Diagnostic, Diagnostics, Pos};
use crate::template::Templater;
use crate::yaml::{self, Kind, Node, Style, from_node, join};

/// Var definitions in override order: file defaults, then the vars file, then `--var`.
pub(super) fn collect_var_nodes(
    root: &Node,
    opts: &LoadOptions,
    cx: &Cx,
    diags: &mut Diagnostics,
) -> IndexMap<String, (Node, String)> {
    let mut out: IndexMap<String, (Node, String)> = IndexMap::new();
    match root.get("vars").map(|v| &v.kind) {
        Some(Kind::Map(entries)) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default().to_string();
                out.insert(key.clone(), (v.clone(), format!("vars.{key}")));
            }
        }
        Some(_) if !root.get("vars").is_some_and(Node::is_null) => diags.push(
            Diagnostic::error("`vars` is a mapping of names to values")
                .in_file(cx.file)
                .at_path("vars")
                .at(root.get("vars").map(|n| n.pos)),
        ),
        _ => {}
    }
    if let Some(vf) = &opts.vars_file {
        match super::read_text(vf)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                yaml::parse(&t).map_err(|e| format!("invalid YAML at {}: {}", e.pos, e.message))
            }) {
            Ok(node) => match &node.kind {
                Kind::Map(entries) => {
                    for (k, v) in entries {
                        let key = k.as_str().unwrap_or_default().to_string();
                        out.insert(key.clone(), (v.clone(), format!("(--vars-file) {key}")));
                    }
                }
                _ => diags.push(
                    Diagnostic::error("a vars file is a mapping of names to values").in_file(vf),
                ),
            },
            Err(e) => {
                diags.push(Diagnostic::error(format!("cannot read the vars file: {e}")).in_file(vf))
            }
        }
    }
    for (k, v) in &opts.extra_vars {
        out.insert(k.clone(), (json_to_node(v), format!("(test vars) {k}")));
    }
    for (k, v) in &opts.vars {
        // A `--var` value is typed like a plain YAML scalar: `--var n=2` is a number.
        let node = Node::scalar(v.clone(), Style::Plain, Pos::new(0, 0));
        out.insert(k.clone(), (node, format!("(--var) {k}")));
    }
    out
}

fn json_to_node(v: &serde_json::Value) -> Node {
    let pos = Pos::new(0, 0);
    match v {
        serde_json::Value::Null => Node::scalar("null", Style::Plain, pos),
        serde_json::Value::String(s) => Node::scalar(s.clone(), Style::Quoted, pos),
        serde_json::Value::Array(items) => Node {
            kind: Kind::Seq(items.iter().map(json_to_node).collect()),
            pos,
            text_pos: pos,
            indent: 0,
        },
        serde_json::Value::Object(map) => Node {
            kind: Kind::Map(
                map.iter()
                    .map(|(k, v)| (Node::scalar(k.clone(), Style::Plain, pos), json_to_node(v)))
                    .collect(),
            ),
            pos,
            text_pos: pos,
            indent: 0,
        },
        other => Node::scalar(other.to_string(), Style::Plain, pos),
    }
}

fn string_leaves<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
    match &node.kind {
        Kind::Scalar(s, _) => out.push(s),
        Kind::Seq(items) => items.iter().for_each(|i| string_leaves(i, out)),
        Kind::Map(entries) => entries.iter().for_each(|(_, v)| string_leaves(v, out)),
    }
}

/// For each var, how many other vars it refers to; for each var, the vars that refer to it.
fn dependencies<'a>(
    var_nodes: &'a IndexMap<String, (Node, String)>,
    templater: &Templater,
) -> (HashMap<&'a str, usize>, HashMap<&'a str, Vec<&'a str>>) {
    let names: HashSet<&str> = var_nodes.keys().map(String::as_str).collect();
    let mut waiting_on: HashMap<&str, usize> = HashMap::new();
    let mut readers: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, (node, _)) in var_nodes {
        let mut leaves = Vec::new();
        string_leaves(node, &mut leaves);
        let refs: HashSet<String> = leaves
            .iter()
            .filter(|s| Templater::is_template(s))
            .flat_map(|s| templater.referenced_names(s))
            .filter(|r| names.contains(r.as_str()) && r != name)
            .collect();
        waiting_on.insert(name, refs.len());
        for r in refs {
            if let Some((key, _)) = var_nodes.get_key_value(r.as_str()) {
                readers.entry(key.as_str()).or_default().push(name);
            }
        }
    }
    (waiting_on, readers)
}

/// Resolves vars in dependency order and adds them to the templater.
pub(super) fn resolve_vars(
    var_nodes: &IndexMap<String, (Node, String)>,
    templater: &mut Templater,
    cx: &Cx,
    diags: &mut Diagnostics,
) -> BTreeMap<String, serde_json::Value> {
    // Kahn's algorithm: a var is resolved once every var it refers to is.
    let (mut waiting_on, readers) = dependencies(var_nodes, templater);
    let mut ready: VecDeque<&str> = var_nodes
        .keys()
        .map(String::as_str)
        .filter(|n| waiting_on[n] == 0)
        .collect();
    let mut resolved = BTreeMap::new();
    while let Some(name) = ready.pop_front() {
        let (node, path) = &var_nodes[name];
        let value = render_value(node, templater, cx, path, diags);
        let json: serde_json::Value = serde_json::to_value(&value).unwrap_or_default();
        templater.set_var(name, value);
        resolved.insert(name.to_string(), json);
        for reader in readers.get(name).into_iter().flatten() {
            if let Some(n) = waiting_on.get_mut(reader) {
                *n -= 1;
                if *n == 0 {
                    ready.push_back(reader);
                }
            }
        }
    }
    let blocked: Vec<&str> = var_nodes
        .keys()
        .map(String::as_str)
        .filter(|n| waiting_on[n] > 0)
        .collect();
    if let Some(first) = blocked.first() {
        let (node, path) = &var_nodes[*first];
        diags.push(
            Diagnostic::error(format!(
                "vars refer to each other in a cycle: {}",
                blocked.join(" → ")
            ))
            .in_file(cx.file)
            .at_path(path.clone())
            .at(Some(node.pos).filter(|p| p.line > 0)),
        );
    }
    resolved
}

/// A var's value: scalars typed by the YAML core schema, templates rendered (a lone
/// expression keeps its type), lists and maps rendered leaf by leaf.
fn render_value(node: &Node, t: &Templater, cx: &Cx, path: &str, diags: &mut Diagnostics) -> Value {
    match &node.kind {
        Kind::Scalar(s, _) if Templater::is_template(s) => match t.render_value(s) {
            Ok(v) => v,
            Err(e) => {
                if let Some(d) = cx.template_error(e, node, path) {
                    diags.push(d);
                }
                Value::UNDEFINED
            }
        },
        Kind::Scalar(..) => {
            let json: serde_json::Value = from_node(node, path).unwrap_or_default();
            Value::from_serialize(&json)
        }
        Kind::Seq(items) => Value::from(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| render_value(n, t, cx, &format!("{path}[{i}]"), diags))
                .collect::<Vec<_>>(),
        ),
        Kind::Map(entries) => Value::from(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = k.as_str().unwrap_or_default().to_string();
                    let val = render_value(v, t, cx, &join(path, &key), diags);
                    (key, val)
                })
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}
