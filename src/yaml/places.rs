//! Where each character of a scalar's value sits in the file, through the scalar's style.
//!
//! A value's text is not the file's text: a `|` block drops the indentation, a `>` block
//! and multi-line plain or quoted scalars fold line breaks into spaces, quoted scalars
//! have escapes (`\n`, `''`), and a block may start with blank lines or give its
//! indentation explicitly (`|2`). To map a position inside the value (an SQL error's
//! line:col) back to the file, the value is walked beside the file's lines by the style's
//! rules, recording where each run of characters came from. The walk checks every
//! character against the value the parser produced; if anything does not agree, the map
//! gives up and places everything at the value's start rather than at a wrong line.

use crate::diagnostic::Pos;

use super::Style;

/// A file's text with its lines found once, so that mapping many values costs no rescans.
#[derive(Debug, Clone, Default)]
pub struct FileText {
    text: String,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl FileText {
    /// Indexes a file's text.
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|s| *s < text.len())
            .collect();
        Self {
            text: text.to_string(),
            starts,
        }
    }

    /// The 0-based line `i`, without its line break.
    pub fn line(&self, i: usize) -> Option<&str> {
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).map_or(self.text.len(), |e| e - 1);
        let line = &self.text[start..end.max(start)];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// How many lines the text has.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// The file positions of a text's characters: runs of characters on consecutive columns
/// of one file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPlaces {
    /// (byte offset in the text where a run starts, file position of its first character).
    runs: Vec<(usize, Pos)>,
    /// The text.
    text: String,
    /// False when the walk failed: every position is the value's start.
    exact: bool,
}

impl TextPlaces {
    /// A whole file's text (an SQL file): line and column are the text's own.
    pub fn of_file(text: &str) -> Self {
        let mut runs = vec![(0, Pos::new(1, 1))];
        runs.extend(
            text.match_indices('\n')
                .enumerate()
                .map(|(i, (o, _))| (o + 1, Pos::new(i + 2, 1))),
        );
        Self {
            runs,
            text: text.to_string(),
            exact: true,
        }
    }

    /// Everything at one place (a value whose text could not be traced in the file).
    pub fn at(text: &str, pos: Pos) -> Self {
        Self {
            runs: vec![(0, pos)],
            text: text.to_string(),
            exact: false,
        }
    }

    /// The places of a scalar's `value`, written in `style` at `pos` (the node's start:
    /// its first character, opening quote or block indicator) among the file's `lines`.
    pub fn of_scalar(lines: &FileText, pos: Pos, style: Style, value: &str) -> Self {
        let line = lines.line(pos.line.wrapping_sub(1)).unwrap_or("");
        let first = line.chars().nth(pos.col.saturating_sub(1));
        let walked = match (style, first) {
            (Style::Literal | Style::Folded, Some('|' | '>')) => {
                block(lines, pos.line, style == Style::Folded, value)
            }
            (Style::Literal | Style::Folded, _) => {
                // The parser places a block at its first line with text; the indicator is
                // on the nearest line above that is not blank.
                (0..pos.line.saturating_sub(1))
                    .rev()
                    .find(|i| lines.line(*i).is_some_and(|l| !l.trim().is_empty()))
                    .and_then(|h| block(lines, h + 1, style == Style::Folded, value))
            }
            (Style::Quoted, Some(q @ ('"' | '\''))) => {
                let kind = if q == '"' { Flow::Double } else { Flow::Single };
                Walk::new(lines, value, kind, 0).run(pos.line - 1, pos.col)
            }
            (Style::Plain, _) => {
                Walk::new(lines, value, Flow::Plain, 0).run(pos.line - 1, pos.col - 1)
            }
            _ => None,
        };
        match walked {
            Some(runs) => Self {
                runs,
                text: value.to_string(),
                exact: true,
            },
            None => Self::at(value, pos),
        }
    }

    /// The file position of the character at byte `offset` of the text (the end of the
    /// text maps just past its last character).
    pub fn pos_of(&self, offset: usize) -> Pos {
        let i = self.runs.partition_point(|(start, _)| *start <= offset);
        let (start, pos) = self.runs[i.saturating_sub(1)];
        if !self.exact {
            return pos;
        }
        let offset = offset.min(self.text.len());
        let chars = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        Pos::new(pos.line, pos.col + chars)
    }
}

/// A block scalar: the content starts on the line after the indicator; its indentation is
/// what the first line with text has beyond the text's own leading spaces (which covers
/// both a detected indentation and an explicit one, `|2`).
fn block(lines: &FileText, header: usize, folded: bool, value: &str) -> Option<Vec<(usize, Pos)>> {
    let blank_lead = value.chars().take_while(|c| *c == '\n').count();
    let indent = match value[blank_lead..]
        .split('\n')
        .next()
        .filter(|l| !l.is_empty())
    {
        Some(first) => {
            let file_line = lines.line(header + blank_lead)?;
            let spaces = |s: &str| s.chars().take_while(|c| *c == ' ').count();
            spaces(file_line).checked_sub(spaces(first))?
        }
        None => 0,
    };
    let kind = if folded { Flow::Folded } else { Flow::Literal };
    Walk::new(lines, value, kind, indent).run(header, indent)
}

/// How a style turns the file's lines into the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

impl Flow {
    fn is_block(self) -> bool {
        matches!(self, Flow::Literal | Flow::Folded)
    }
}

struct Walk<'a> {
    lines: &'a FileText,
    value: &'a str,
    kind: Flow,
    indent: usize,
    runs: Vec<(usize, Pos)>,
    /// The next character starts a run of its own.
    fresh: bool,
}

impl<'a> Walk<'a> {
    fn new(lines: &'a FileText, value: &'a str, kind: Flow, indent: usize) -> Self {
        Self {
            lines,
            value,
            kind,
            indent,
            runs: Vec::new(),
            fresh: true,
        }
    }

    fn chars(&self, line: usize) -> Vec<char> {
        self.lines
            .line(line)
            .map_or_else(Vec::new, |l| l.chars().collect())
    }

    /// Where the text of a line ends: flow scalars drop trailing spaces before a break.
    fn content_end(&self, chars: &[char]) -> usize {
        if self.kind.is_block() {
            chars.len()
        } else {
            chars
                .iter()
                .rposition(|c| !c.is_whitespace())
                .map_or(0, |i| i + 1)
        }
    }

    fn is_blank(&self, line: usize) -> bool {
        let chars = self.chars(line);
        if self.kind.is_block() {
            chars.len() <= self.indent && chars.iter().all(|c| *c == ' ')
        } else {
            chars.iter().all(|c| c.is_whitespace())
        }
    }

    fn mark(&mut self, v: usize, line: usize, col: usize) {
        self.runs.push((v, Pos::new(line + 1, col + 1)));
    }

    /// Walks from 0-based `line`, char column `col`; `None` when the value does not agree.
    fn run(mut self, mut line: usize, mut col: usize) -> Option<Vec<(usize, Pos)>> {
        let mut v = 0;
        let mut chars = self.chars(line);
        while v < self.value.len() {
            let ch = self.value[v..].chars().next()?;
            if col < self.content_end(&chars) {
                let (want, used) = self.decode(&chars, col)?;
                match want {
                    Some(w) if w == ch => {}
                    None => {
                        // An escaped line break joins the next line with nothing between.
                        line += 1;
                        chars = self.chars(line);
                        col = chars.iter().position(|c| !c.is_whitespace())?;
                        self.fresh = true;
                        continue;
                    }
                    Some(_) => return None,
                }
                if self.fresh || used > 1 {
                    self.mark(v, line, col);
                }
                self.fresh = used > 1;
                v += ch.len_utf8();
                col += used;
                continue;
            }
            let end = col;
            let (next, taken) = self.line_break(line, v)?;
            for i in 0..taken.max(1) {
                // A break maps to the end of the line it ends.
                let at = if i == 0 { (line, end) } else { (line + i, 0) };
                self.mark(v + i, at.0, at.1);
            }
            v += taken;
            let Some(next) = next else { break };
            line = next;
            chars = self.chars(line);
            col = if self.kind.is_block() {
                self.indent
            } else {
                chars.iter().position(|c| !c.is_whitespace())?
            };
            self.fresh = true;
        }
        (v >= self.value.len()).then_some(self.runs)
    }

    /// What the value holds for the line break after `line`, starting at byte `v`: the next
    /// line with text (or `None` when the value ends there) and how many bytes it took.
    fn line_break(&self, line: usize, v: usize) -> Option<(Option<usize>, usize)> {
        let rest = &self.value[v..];
        let newlines = rest.chars().take_while(|c| *c == '\n').count();
        if newlines == rest.len() {
            return Some((None, newlines)); // trailing line breaks (chomping)
        }
        let mut next = line + 1;
        while next < self.lines.len() && self.is_blank(next) {
            next += 1;
        }
        let blanks = next - line - 1;
        let ok = match (self.kind, rest.starts_with(' ')) {
            (Flow::Literal, _) => newlines == blanks + 1,
            (_, true) => blanks == 0,
            (Flow::Folded, false) => newlines == blanks + 1 || (blanks > 0 && newlines == blanks),
            (_, false) => blanks > 0 && newlines == blanks,
        };
        ok.then_some((Some(next), newlines.max(usize::from(rest.starts_with(' ')))))
    }

    /// The value character at `chars[col]` and how many file characters it takes;
    /// `Some(None)` for an escaped line break.
    fn decode(&self, chars: &[char], col: usize) -> Option<(Option<char>, usize)> {
        let c = chars[col];
        match self.kind {
            Flow::Single if c == '\'' => {
                (chars.get(col + 1) == Some(&'\'')).then_some((Some('\''), 2))
            }
            Flow::Double if c == '\\' => {
                let Some(&e) = chars.get(col + 1) else {
                    return Some((None, 1));
                };
                let hex = |n: usize| -> Option<(Option<char>, usize)> {
                    let digits: String = chars.get(col + 2..col + 2 + n)?.iter().collect();
                    let ch = char::from_u32(u32::from_str_radix(&digits, 16).ok()?)?;
                    Some((Some(ch), 2 + n))
                };
                let simple = match e {
                    '0' => '\0',
                    'a' => '\x07',
                    'b' => '\x08',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\x0b',
                    'f' => '\x0c',
                    'r' => '\r',
                    'e' => '\x1b',
                    ' ' | '"' | '/' | '\\' => e,
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => return hex(2),
                    'u' => return hex(4),
                    'U' => return hex(8),
                    _ => return None,
                };
                Some((Some(simple), 2))
            }
            _ => Some((Some(c), 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{lookup, parse};

    /// Maps the position of `needle` in the value of `key` (a top-level key) to the file.
    fn place(doc: &str, key: &str, needle: &str) -> Pos {
        let root = parse(doc).unwrap();
        let node = lookup(&root, key).unwrap();
        let crate::yaml::Kind::Scalar(value, style) = &node.kind else {
            panic!("not a scalar")
        };
        let lines = FileText::new(doc);
        let places = TextPlaces::of_scalar(&lines, node.pos, *style, value);
        assert!(places.exact, "{key}: {value:?}");
        let offset = value
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {value:?}"));
        places.pos_of(offset)
    }

    #[test]
    fn every_style_maps_to_the_file() {
        let doc = "\
lit: |

  select a
    , b
  from t
fold: >
  select a
  from t

  where x
ind: |2
      select a
    from t
dq: \"select\\n  a\\tb\\\"c\\\" from t\"
sq: 'it''s
  from t'
plain: select a
  from t
dq2: \"a \\
  b\"
";
        assert_eq!(place(doc, "lit", "select"), Pos::new(3, 3));
        assert_eq!(place(doc, "lit", "b"), Pos::new(4, 7));
        assert_eq!(place(doc, "lit", "from"), Pos::new(5, 3));
        assert_eq!(place(doc, "fold", "from"), Pos::new(8, 3));
        assert_eq!(place(doc, "fold", "where"), Pos::new(10, 3));
        assert_eq!(place(doc, "ind", "select"), Pos::new(12, 7));
        assert_eq!(place(doc, "ind", "from"), Pos::new(13, 5));
        assert_eq!(place(doc, "dq", "a"), Pos::new(14, 16));
        assert_eq!(place(doc, "dq", "from"), Pos::new(14, 26));
        assert_eq!(place(doc, "sq", "s"), Pos::new(15, 10));
        assert_eq!(place(doc, "sq", "from"), Pos::new(16, 3));
        assert_eq!(place(doc, "plain", "from"), Pos::new(18, 3));
        assert_eq!(place(doc, "dq2", "b"), Pos::new(20, 3));
    }

    #[test]
    fn a_value_that_does_not_agree_maps_to_its_start() {
        let lines = FileText::new("k: |\n  abc\n");
        let places = TextPlaces::of_scalar(&lines, Pos::new(1, 4), Style::Literal, "xyz\n");
        assert_eq!(places.pos_of(2), Pos::new(1, 4));
        let file = TextPlaces::of_file("a\nbc\n");
        assert_eq!(file.pos_of(3), Pos::new(2, 2));
    }
}
