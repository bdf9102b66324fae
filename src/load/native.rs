//! Template values as YAML nodes: a string value that is one whole expression
//! (`values: "{{ payment_methods }}"`) takes the expression's type.
//!
//! Strings become quoted scalars (always strings, so a value read by `env()` stays a
//! string), numbers and booleans plain scalars,
//! `none` a null, lists and mappings nodes of their own. Every node made here sits at the
//! place of the value it replaces, so errors inside it point at that key.

use minijinja::value::{Value, ValueKind};

use crate::yaml::{Kind, Node, Style};

/// The node for a rendered value, placed where `at` is.
pub(super) fn value_node(value: &Value, at: &Node) -> Node {
    let kind = match value.kind() {
        ValueKind::Undefined | ValueKind::None => Kind::Scalar(String::new(), Style::Plain),
        ValueKind::Bool => Kind::Scalar(value.is_true().to_string(), Style::Plain),
        ValueKind::Number => Kind::Scalar(value.to_string(), Style::Plain),
        ValueKind::Seq | ValueKind::Iterable => Kind::Seq(
            value
                .try_iter()
                .map(|items| items.map(|v| value_node(&v, at)).collect())
                .unwrap_or_default(),
        ),
        ValueKind::Map => Kind::Map(
            value
                .try_iter()
                .map(|keys| {
                    keys.map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        (scalar(key_text(&k), Style::Plain, at), value_node(&v, at))
                    })
                    .collect()
                })
                .unwrap_or_default(),
        ),
        _ => Kind::Scalar(text(value), Style::Quoted),
    };
    Node {
        kind,
        pos: at.pos,
        text_pos: at.text_pos,
        indent: at.indent,
    }
}

/// A string as it reads: its own text, or the value written out.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

fn key_text(key: &Value) -> String {
    text(key)
}

fn scalar(text: String, style: Style, at: &Node) -> Node {
    Node {
        kind: Kind::Scalar(text, style),
        pos: at.pos,
        text_pos: at.text_pos,
        indent: at.indent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Pos;

    #[test]
    fn values_keep_their_type_and_place() {
        let at = Node::scalar("{{ x }}", Style::Quoted, Pos::new(3, 9));
        let v = Value::from_serialize(serde_json::json!({"a": [1, "2", true, null], "b": 1.5}));
        let node = value_node(&v, &at);
        assert_eq!(node.pos, Pos::new(3, 9));
        let a = node.get("a").unwrap();
        let Kind::Seq(items) = &a.kind else {
            panic!("{a:?}")
        };
        let kinds: Vec<&Kind> = items.iter().map(|n| &n.kind).collect();
        assert_eq!(
            kinds,
            [
                &Kind::Scalar("1".into(), Style::Plain),
                &Kind::Scalar("2".into(), Style::Quoted),
                &Kind::Scalar("true".into(), Style::Plain),
                &Kind::Scalar(String::new(), Style::Plain),
            ]
        );
        assert!(items[3].is_null());
        assert_eq!(node.get("b").unwrap().as_str(), Some("1.5"));
        assert_eq!(items[1].pos, Pos::new(3, 9));
    }
}
