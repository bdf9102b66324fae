//! A node tree indexed by YAML path, so that finding the place of `sources.x.path` costs the
//! same in a file of ten entries as in one of a hundred thousand (a lookup by walking the
//! mappings would make reporting many problems quadratic).

use std::collections::HashMap;

use super::de::join;
use super::node::{Kind, Node, Style};
use crate::diagnostic::Pos;

/// Where one node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The node's position.
    pub pos: Pos,
    /// Where a scalar's text starts (after a quote, on the line after a block indicator).
    pub text_pos: Pos,
    /// For block scalars: the content's indentation.
    pub indent: usize,
    /// The scalar style, for scalars.
    pub style: Option<Style>,
    /// The position of the mapping key the node is the value of, if any.
    pub key_pos: Option<Pos>,
}

/// Every node of a tree by dotted YAML path (`checks.daily[1].expect`).
#[derive(Debug, Clone, Default)]
pub struct Index {
    places: HashMap<String, Place>,
}

impl Index {
    /// Indexes a tree.
    pub fn new(root: &Node) -> Self {
        let mut index = Self::default();
        index.walk(root, String::new(), None);
        index
    }

    /// The place of a path, if the tree has it.
    pub fn get(&self, path: &str) -> Option<&Place> {
        self.places.get(path)
    }

    fn walk(&mut self, node: &Node, path: String, key_pos: Option<Pos>) {
        let style = match &node.kind {
            Kind::Scalar(_, style) => Some(*style),
            _ => None,
        };
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let child = join(&path, k.as_str().unwrap_or_default());
                    self.walk(v, child, Some(k.pos));
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, format!("{path}[{i}]"), None);
                }
            }
            Kind::Scalar(..) => {}
        }
        // The first node to claim a path keeps it, as a walk from the root would find it.
        self.places.entry(path).or_insert(Place {
            pos: node.pos,
            text_pos: node.text_pos,
            indent: node.indent,
            style,
            key_pos,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{lookup, parse};

    #[test]
    fn agrees_with_a_walk_from_the_root() {
        let root = parse("a:\n  b: [1, {c: x}]\n  d: |\n    text\n").unwrap();
        let index = Index::new(&root);
        for path in ["a", "a.b", "a.b[1]", "a.b[1].c", "a.d"] {
            let node = lookup(&root, path).unwrap();
            let place = index.get(path).unwrap();
            assert_eq!(
                (place.pos, place.text_pos),
                (node.pos, node.text_pos),
                "{path}"
            );
        }
        assert_eq!(index.get("a.b").unwrap().key_pos, Some(Pos::new(2, 3)));
        assert_eq!(index.get("a.d").unwrap().style, Some(Style::Literal));
        assert!(index.get("a.x").is_none());
    }
}
