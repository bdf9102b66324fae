//! Which part of a template produced each byte of its output, so that a position in
//! rendered SQL (an error's line:col) can be mapped back to the template's own text.
//!
//! How: minijinja writes the template's literal text (what lies between tags, after
//! whitespace control) straight from the template source: the bytes it hands to the output
//! writer are a slice of the source string itself. The writer ([`super::limits::BoundedWriter`])
//! compares each slice's address with the source's range and records, per write, where in
//! the output it starts and where in the source it came from. Text written by expressions and
//! filters (`{{ col }}`) comes from elsewhere in memory and is recorded with no source.
//!
//! This maps exactly whatever the loops, conditions and comments did: the body of a
//! `{% for %}` maps to the body's lines on every iteration, and a `{#- ... #}` comment simply
//! produces no output. The rendered text itself is never changed (no markers are inserted),
//! so the mapping cannot alter what a template means. Output written by an expression maps
//! to the `{{` that follows the literal text written before it: the expression's own place.
//! A unit test below pins the engine behaviour this relies on.

/// Where the pieces of a rendered text came from in the template's source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Per write: the output byte offset where it starts, and the source byte offset it was
    /// copied from (`None` for text an expression produced).
    chunks: Vec<(usize, Option<usize>)>,
    /// The template source.
    source: String,
}

impl Trace {
    /// The template source the output was rendered from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The byte offset in the source that produced byte `out` of the output.
    pub fn source_offset(&self, out: usize) -> usize {
        let i = self.chunks.partition_point(|(start, _)| *start <= out);
        let Some(i) = i.checked_sub(1) else {
            return self.next_expression(0);
        };
        match self.chunks[i] {
            (start, Some(src)) => (src + (out - start)).min(self.source.len()),
            (_, None) => {
                // The literal text written last before this expression ends where the
                // expression's tag (or the statement holding it) begins.
                let before = self.chunks[..i]
                    .iter()
                    .enumerate()
                    .rev()
                    .find_map(|(j, c)| {
                        let src = c.1?;
                        let end = self.chunks.get(j + 1).map_or(src, |n| src + (n.0 - c.0));
                        Some(end)
                    });
                self.next_expression(before.unwrap_or(0))
            }
        }
    }

    /// The first `{{` at or after `from`, else `from` itself.
    fn next_expression(&self, from: usize) -> usize {
        let from = from.min(self.source.len());
        self.source
            .get(from..)
            .and_then(|rest| rest.find("{{"))
            .map_or(from, |i| from + i)
    }
}

/// Records the writes of one render (used by the output writer).
#[derive(Debug, Default)]
pub(super) struct Recorder {
    /// Address and length of the template source.
    base: usize,
    len: usize,
    chunks: Vec<(usize, Option<usize>)>,
}

impl Recorder {
    /// A recorder for a render of `source`.
    pub(super) fn new(source: &str) -> Self {
        Self {
            base: source.as_ptr() as usize,
            len: source.len(),
            chunks: Vec::new(),
        }
    }

    /// Notes that `data` is written at output offset `at`.
    pub(super) fn write(&mut self, at: usize, data: &[u8]) {
        let p = data.as_ptr() as usize;
        let src = (p >= self.base && p + data.len() <= self.base + self.len).then(|| p - self.base);
        if let Some((last_at, last_src)) = self.chunks.last()
            && let (Some(a), Some(b)) = (last_src, src)
            && b == a + (at - last_at)
        {
            return; // continues the previous piece
        }
        self.chunks.push((at, src));
    }

    /// The trace of the finished render.
    pub(super) fn finish(self, source: &str) -> Trace {
        Trace {
            chunks: self.chunks,
            source: source.to_string(),
        }
    }
}

/// The byte offset of a 1-based (line, column in characters) position in a text; a column
/// past a line's end is that line's end, and a line past the end is the text's end.
pub fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    text[start..end]
        .char_indices()
        .nth(col.max(1) - 1)
        .map_or(end, |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::templater;

    fn line_of(source: &str, offset: usize) -> usize {
        source[..offset].matches('\n').count() + 1
    }

    /// Maps the line of each output line's first character back to the source.
    fn lines(source: &str) -> (String, Vec<usize>) {
        let t = templater();
        let (out, trace) = t.render_traced(source).unwrap();
        let trace = trace.expect("a template has a trace");
        let map = out
            .lines()
            .enumerate()
            .map(|(i, _)| line_of(source, trace.source_offset(offset_of(&out, i + 1, 1))))
            .collect();
        (out, map)
    }

    #[test]
    fn literal_text_maps_to_its_own_line_through_comments_and_loops() {
        let src = "{#- a comment\n   over lines #}\nselect a\n{% for c in ['x', 'y'] %}\n  , {{ c }}\n{% endfor %}\nfrom t\n";
        let (out, map) = lines(src);
        assert_eq!(out, "\nselect a\n\n  , x\n\n  , y\n\nfrom t\n");
        // An empty output line is the line break that ends it: the second pass of the loop
        // starts with the break after `{% for %}` (line 4).
        assert_eq!(map, vec![2, 3, 4, 5, 4, 5, 6, 7]);
    }

    #[test]
    fn expression_output_maps_to_its_expression() {
        let t = templater();
        let src = "select\n  {{ 'a\\nb' }} x";
        let (out, trace) = t.render_traced(src).unwrap();
        let trace = trace.unwrap();
        assert_eq!(out, "select\n  a\nb x");
        let expr = src.find("{{").unwrap();
        assert_eq!(trace.source_offset(offset_of(&out, 3, 1)), expr);
        // The literal text after it maps exactly.
        let x = offset_of(&out, 3, 3);
        assert_eq!(&src[trace.source_offset(x)..], "x");
    }

    #[test]
    fn offsets_of_positions() {
        let text = "ab\ncé\nd";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(offset_of(text, 2, 2), 4);
        assert_eq!(offset_of(text, 3, 1), 7);
        assert_eq!(offset_of(text, 2, 9), 6);
        assert_eq!(offset_of(text, 9, 1), text.len());
    }
}
