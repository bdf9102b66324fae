//! YAML with positions: a node tree that remembers line and column, and a serde
//! deserializer over it that places every error.

mod de;
mod index;
mod node;
mod places;

pub use de::{DeError, NodeDe, from_node, from_node_skipping, join};
pub use index::{Index, Place};
pub use node::{Kind, MAX_ALIAS_NODES, MAX_DEPTH, Node, Style, SyntaxError, is_null_text, parse};
pub use places::{FileText, TextPlaces};

/// Follows a dotted path (`sources.sales.path`, `checks.daily[1].expect`) down a node tree.
pub fn lookup<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            node = node.get(key)?;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx.trim_end_matches(']').parse().ok()?;
            match &node.kind {
                Kind::Seq(items) => node = items.get(i)?,
                _ => return None,
            }
        }
    }
    Some(node)
}

/// The key node for the last segment of a dotted path: where a "this entry" error points.
pub fn lookup_key<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    match path.rsplit_once('.') {
        Some((parent, key)) => lookup(root, parent)?.key_node(key),
        None => root.key_node(path),
    }
}
