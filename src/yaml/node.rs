//! A YAML document as a tree of nodes that remember where they came from.
//!
//! The tree is built from the parser's events, so every scalar, sequence and mapping keeps
//! its line and column. Aliases are resolved to copies of their anchored node, and merge keys
//! (`<<: *defaults`) are applied, so later stages never see YAML indirection.
//!
//! Building is bounded, so no file can exhaust the stack or the memory: collections nest at
//! most [`MAX_DEPTH`] levels, and aliases copy at most [`MAX_ALIAS_NODES`] nodes in all (an
//! "alias bomb" of nested anchors stops there instead of expanding to billions of nodes).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::Pos;

/// The deepest nesting of lists and mappings a file may have (the top mapping is level 1).
pub const MAX_DEPTH: usize = 64;

/// The most nodes that aliases (`*name`) may copy into one document, in all.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// How a scalar was written, which decides how it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: typed by the YAML core schema (null, booleans, numbers, else a string).
    Plain,
    /// Quoted: always a string.
    Quoted,
    /// A `|` block: always a string; its text starts on the line after the indicator.
    Literal,
    /// A `>` block: always a string.
    Folded,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar with its text and style.
    Scalar(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order. Keys are nodes too, so they keep their place.
    Map(Vec<(Node, Node)>),
}

/// A YAML node and its place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it holds.
    pub kind: Kind,
    /// Where it starts (1-based).
    pub pos: Pos,
    /// For scalars: where its text starts. Differs from `pos` for quoted and block scalars.
    pub text_pos: Pos,
    /// For block scalars: the indentation of the content, in columns.
    pub indent: usize,
}

impl Node {
    /// A plain scalar node at a position; used for values that did not come from the file.
    pub fn scalar(text: impl Into<String>, style: Style, pos: Pos) -> Self {
        Self {
            kind: Kind::Scalar(text.into(), style),
            pos,
            text_pos: pos,
            indent: 0,
        }
    }

    /// True for a plain scalar that the core schema reads as null (`~`, `null`, empty).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, Style::Plain) if is_null_text(s))
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping node.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks up a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node (not the value) for `key` in a mapping.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// A short name of the node's type for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(_, _) if self.is_null() => "null",
            Kind::Scalar(_, _) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// Finds the first key named `name` anywhere below this node (depth first).
    pub fn find_key(&self, name: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find_map(|(k, v)| {
                if k.as_str() == Some(name) {
                    Some(k)
                } else {
                    v.find_key(name)
                }
            }),
            Kind::Seq(items) => items.iter().find_map(|i| i.find_key(name)),
            Kind::Scalar(..) => None,
        }
    }
}

/// True for the texts the YAML core schema reads as null.
pub fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// A YAML syntax problem.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// What the parser said.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
}

/// Parses a YAML text into a node tree. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        lines: text.lines().collect(),
        depth: 0,
        nodes: 0,
        alias_nodes: 0,
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored nodes by anchor id, with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    lines: Vec<&'a str>,
    /// How many collections enclose the node being built.
    depth: usize,
    /// Nodes built so far, alias copies included.
    nodes: usize,
    /// Nodes copied by aliases so far.
    alias_nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(SyntaxError {
                message: e.info().to_string(),
                pos: Pos::new(e.marker().line(), e.marker().col() + 1),
            }),
            None => Err(SyntaxError {
                message: "unexpected end of YAML".into(),
                pos: Pos::new(self.lines.len().max(1), 1),
            }),
        }
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        let empty = Node {
            kind: Kind::Map(Vec::new()),
            pos: Pos::new(1, 1),
            text_pos: Pos::new(1, 1),
            indent: 0,
        };
        let mut root = None;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(SyntaxError {
                            message:
                                "a pipeline file holds one YAML document; found a second `---`"
                                    .into(),
                            pos: pos_of(&span),
                        });
                    }
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::DocumentEnd) {
                        root = Some(empty.clone());
                    } else {
                        root = Some(self.node(ev, span)?);
                    }
                }
                Event::StreamEnd => return Ok(root.unwrap_or(empty)),
                other => root = Some(self.node(other, span)?),
            }
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let pos = pos_of(&span);
        let first = self.nodes;
        self.nodes += 1;
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                (self.scalar(text.into_owned(), style, &span), anchor)
            }
            Event::Alias(id) => return self.alias(id, pos),
            Event::SequenceStart(anchor, _) => {
                self.enter(pos)?;
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span)?);
                }
                self.depth -= 1;
                (self.with_pos(Kind::Seq(items), pos), anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.enter(pos)?;
                let map = self.mapping(pos)?;
                self.depth -= 1;
                (map, anchor)
            }
            other => {
                return Err(SyntaxError {
                    message: format!("unexpected YAML event {other:?}"),
                    pos,
                });
            }
        };
        if anchor > 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - first));
        }
        Ok(node)
    }

    /// Opens a collection, refusing to nest deeper than [`MAX_DEPTH`].
    fn enter(&mut self, pos: Pos) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                message: format!(
                    "lists and mappings are nested more than {MAX_DEPTH} levels deep here"
                ),
                pos,
            });
        }
        Ok(())
    }

    /// A copy of an anchored node, within the alias budget.
    fn alias(&mut self, id: usize, pos: Pos) -> Result<Node, SyntaxError> {
        let (node, size) = self.anchors.get(&id).ok_or_else(|| SyntaxError {
            message: "alias to an unknown anchor".into(),
            pos,
        })?;
        self.alias_nodes += size;
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(SyntaxError {
                message: format!(
                    "aliases expand to more than {MAX_ALIAS_NODES} nodes in all (nested anchors that repeat each other?)"
                ),
                pos,
            });
        }
        self.nodes += size;
        Ok(node.clone())
    }

    fn mapping(&mut self, pos: Pos) -> Result<Node, SyntaxError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        // Key text → line of its first definition, for the duplicate check.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let key = self.node(ev, span)?;
            let (ev, span) = self.next()?;
            let value = self.node(ev, span)?;
            let Some(text) = key.as_str() else {
                return Err(SyntaxError {
                    message: format!("a mapping key is a plain value, found {}", key.type_name()),
                    pos: key.pos,
                });
            };
            if text == "<<" && matches!(key.kind, Kind::Scalar(_, Style::Plain)) {
                merge_into(&mut merged, &value, key.pos)?;
                continue;
            }
            if let Some(line) = seen.get(text) {
                return Err(SyntaxError {
                    message: format!("duplicate key `{text}` (first defined at line {line})"),
                    pos: key.pos,
                });
            }
            seen.insert(text.to_string(), key.pos.line);
            entries.push((key, value));
        }
        for (k, v) in merged {
            if let Some(text) = k.as_str()
                && !seen.contains_key(text)
            {
                seen.insert(text.to_string(), k.pos.line);
                entries.push((k, v));
            }
        }
        Ok(self.with_pos(Kind::Map(entries), pos))
    }

    fn with_pos(&self, kind: Kind, pos: Pos) -> Node {
        Node {
            kind,
            pos,
            text_pos: pos,
            indent: 0,
        }
    }

    fn scalar(&self, text: String, style: ScalarStyle, span: &Span) -> Node {
        let pos = pos_of(span);
        let (style, text_pos, indent) = match style {
            ScalarStyle::Plain => (Style::Plain, pos, 0),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                (Style::Quoted, Pos::new(pos.line, pos.col + 1), 0)
            }
            ScalarStyle::Literal | ScalarStyle::Folded => {
                // The text starts on the first non-blank line after the indicator.
                let s = if style == ScalarStyle::Literal {
                    Style::Literal
                } else {
                    Style::Folded
                };
                let at_indicator = self
                    .lines
                    .get(pos.line.saturating_sub(1))
                    .and_then(|l| l.chars().nth(pos.col.saturating_sub(1)))
                    .is_some_and(|c| c == '|' || c == '>');
                if at_indicator {
                    let (line, indent) = self.block_start(pos.line);
                    (s, Pos::new(line, indent + 1), indent)
                } else {
                    let line = self
                        .lines
                        .get(pos.line.saturating_sub(1))
                        .copied()
                        .unwrap_or("");
                    let indent = line.len() - line.trim_start().len();
                    (s, Pos::new(pos.line, indent + 1), indent)
                }
            }
        };
        Node {
            kind: Kind::Scalar(text, style),
            pos,
            text_pos,
            indent,
        }
    }

    /// Finds where a block scalar's content starts: the first non-empty line after the
    /// indicator's line, and that line's indentation.
    fn block_start(&self, indicator_line: usize) -> (usize, usize) {
        for (i, l) in self.lines.iter().enumerate().skip(indicator_line) {
            if !l.trim().is_empty() {
                return (i + 1, l.len() - l.trim_start().len());
            }
        }
        (indicator_line + 1, 0)
    }
}

/// Collects the entries a `<<` merge brings in (a mapping, or a list of mappings); the
/// first definition of a key wins, and the mapping's own keys win over all (the caller's job).
fn merge_into(merged: &mut Vec<(Node, Node)>, value: &Node, pos: Pos) -> Result<(), SyntaxError> {
    let maps: Vec<&Node> = match &value.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![value],
    };
    let mut seen: std::collections::HashSet<String> = merged
        .iter()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    for map in maps {
        let Kind::Map(entries) = &map.kind else {
            return Err(SyntaxError {
                message: "`<<` merges a mapping or a list of mappings".into(),
                pos,
            });
        };
        for (k, v) in entries {
            if let Some(text) = k.as_str()
                && seen.insert(text.to_string())
            {
                merged.push((k.clone(), v.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_values_and_blocks() {
        let doc = "a: 1\nb:\n  c: 'x'\n  sql: |\n    SELECT 1\n    FROM t\n";
        let root = parse(doc).unwrap();
        assert_eq!(root.key_node("b").unwrap().pos, Pos::new(2, 1));
        let b = root.get("b").unwrap();
        assert_eq!(b.get("c").unwrap().pos, Pos::new(3, 6));
        assert_eq!(b.get("c").unwrap().text_pos, Pos::new(3, 7));
        let sql = b.get("sql").unwrap();
        assert_eq!(sql.as_str(), Some("SELECT 1\nFROM t\n"));
        assert_eq!(sql.text_pos, Pos::new(5, 5));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_positions() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos::new(3, 1));
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }

    #[test]
    fn nesting_is_limited_with_a_place() {
        let deep = format!("v:\n  {}x\n", "- ".repeat(8000));
        let err = parse(&deep).unwrap_err();
        assert!(
            err.message.contains("nested more than 64"),
            "{}",
            err.message
        );
        assert_eq!(err.pos.line, 2);
        let flow = format!("v: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(parse(&flow).is_err());
        let ok = format!(
            "v: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn alias_expansion_is_limited() {
        let mut doc = String::from("l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("l{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&doc).unwrap_err();
        assert!(
            err.message.contains("aliases expand to more than"),
            "{}",
            err.message
        );
        assert!(err.pos.line >= 5, "{:?}", err.pos);
        // Ordinary reuse stays fine.
        let root = parse("a: &x {k: 1}\nb: *x\nc: *x\n").unwrap();
        assert_eq!(root.get("c").unwrap().get("k").unwrap().as_str(), Some("1"));
    }

    #[test]
    fn big_mappings_and_key_checks() {
        let mut doc = String::from("vars:\n");
        for i in 0..100_000 {
            doc.push_str(&format!("  key_{i}: value_{i}\n"));
        }
        let root = parse(&doc).unwrap();
        assert_eq!(root.get("vars").unwrap().as_map().unwrap().len(), 100_000);
        let err = parse("a: 1\n'a': 2\n").unwrap_err();
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
        let err = parse("? [a]\n: 1\n").unwrap_err();
        assert!(
            err.message.contains("a mapping key is a plain value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn resolves_aliases_and_merge_keys() {
        let doc = "base: &b { x: 1, y: 2 }\nother:\n  <<: *b\n  y: 3\n";
        let root = parse(doc).unwrap();
        let other = root.get("other").unwrap();
        assert_eq!(other.get("x").unwrap().as_str(), Some("1"));
        assert_eq!(other.get("y").unwrap().as_str(), Some("3"));
    }
}
