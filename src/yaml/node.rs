//! A YAML document as a tree of nodes that remember where they came from.
//!
//! The tree is built from the parser's events, so every scalar, sequence and mapping keeps
//! its line and column. Aliases are resolved to copies of their anchored node, and merge keys
//! (`<<: *defaults`) are applied, so later stages never see YAML indirection.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::Pos;

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
        anchors: Vec::new(),
        lines: text.lines().collect(),
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: Vec<(usize, Node)>,
    lines: Vec<&'a str>,
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
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                (self.scalar(text.into_owned(), style, &span), anchor)
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| SyntaxError {
                        message: "alias to an unknown anchor".into(),
                        pos,
                    })?;
                return Ok(node);
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span)?);
                }
                (self.with_pos(Kind::Seq(items), pos), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping(pos)?, anchor),
            other => {
                return Err(SyntaxError {
                    message: format!("unexpected YAML event {other:?}"),
                    pos,
                });
            }
        };
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }

    fn mapping(&mut self, pos: Pos) -> Result<Node, SyntaxError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let key = self.node(ev, span)?;
            let (ev, span) = self.next()?;
            let value = self.node(ev, span)?;
            if key.as_str() == Some("<<") && matches!(key.kind, Kind::Scalar(_, Style::Plain)) {
                merge_into(&mut merged, &value, key.pos)?;
                continue;
            }
            if let Some(first) = entries.iter().find(|(k, _)| k.kind == key.kind) {
                return Err(SyntaxError {
                    message: format!(
                        "duplicate key `{}` (first defined at line {})",
                        key.as_str().unwrap_or("?"),
                        first.0.pos.line
                    ),
                    pos: key.pos,
                });
            }
            entries.push((key, value));
        }
        for (k, v) in merged {
            if !entries.iter().any(|(ek, _)| ek.kind == k.kind) {
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

fn merge_into(merged: &mut Vec<(Node, Node)>, value: &Node, pos: Pos) -> Result<(), SyntaxError> {
    match &value.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                if !merged.iter().any(|(mk, _)| mk.kind == k.kind) {
                    merged.push((k.clone(), v.clone()));
                }
            }
            Ok(())
        }
        Kind::Seq(items) => items.iter().try_for_each(|i| merge_into(merged, i, pos)),
        Kind::Scalar(..) => Err(SyntaxError {
            message: "`<<` merges a mapping or a list of mappings".into(),
            pos,
        }),
    }
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
    fn resolves_aliases_and_merge_keys() {
        let doc = "base: &b { x: 1, y: 2 }\nother:\n  <<: *b\n  y: 3\n";
        let root = parse(doc).unwrap();
        let other = root.get("other").unwrap();
        assert_eq!(other.get("x").unwrap().as_str(), Some("1"));
        assert_eq!(other.get("y").unwrap().as_str(), Some("3"));
    }
}
