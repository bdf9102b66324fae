//! A validating JSON scanner over text that builds nothing: it walks a body once, checking
//! the grammar as it goes (RFC 8259: literals, numbers, strings with their escapes, nesting
//! up to [`MAX_DEPTH`] levels, as serde_json allows) and hands out the text of values, so
//! that records can be copied (or flattened) in the same pass that checks them.
//!
//! It only says *where* a body stops being JSON; the message a user reads comes from
//! serde_json, run over the body again only when the scanner has refused it (see
//! `extract::invalid`).

use std::borrow::Cow;

/// How deep values may nest (serde_json's limit when it builds values; it is what keeps the
/// scanner's recursion off the end of the stack).
pub const MAX_DEPTH: usize = 128;

/// Where a body stops being JSON (a byte offset), and what the scanner expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// Byte offset (0-based).
    pub at: usize,
    /// What was expected.
    pub expected: &'static str,
}

/// A result of the scanner.
pub type Scan<T> = Result<T, Invalid>;

/// A position in a text being scanned.
#[derive(Debug)]
pub struct Cursor<'a> {
    text: &'a str,
    b: &'a [u8],
    /// The next byte to read.
    pub i: usize,
    depth: usize,
}

/// An object key: its text between the quotes, and whether that text has escapes (then it
/// must be decoded before use).
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// The text between the quotes, as written.
    pub raw: &'a str,
    /// Whether `raw` holds a backslash escape.
    pub escaped: bool,
}

impl<'a> Key<'a> {
    /// The key's value.
    pub fn decoded(&self) -> Cow<'a, str> {
        if self.escaped {
            let quoted = format!("\"{}\"", self.raw);
            // The escapes were checked while scanning, so this cannot fail.
            Cow::Owned(serde_json::from_str::<String>(&quoted).unwrap_or_default())
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
        }
    }

    fn invalid<T>(&self, expected: &'static str) -> Scan<T> {
        Err(Invalid {
            at: self.i.min(self.b.len()),
            expected,
        })
    }

    /// Skips whitespace; returns the next byte (0 at the end).
    pub fn ws(&mut self) -> u8 {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return c;
            }
            self.i += 1;
        }
        0
    }

    /// Checks that only whitespace is left.
    pub fn end(&mut self) -> Scan<()> {
        if self.ws() == 0 {
            Ok(())
        } else {
            self.invalid("the end of the text")
        }
    }

    /// Expects `c` (after whitespace) and steps over it.
    pub fn expect(&mut self, c: u8, what: &'static str) -> Scan<()> {
        if self.ws() == c {
            self.i += 1;
            Ok(())
        } else {
            self.invalid(what)
        }
    }

    /// Skips one value (after whitespace), checking it; returns its text.
    pub fn value(&mut self) -> Scan<&'a str> {
        let c = self.ws();
        let start = self.i;
        match c {
            b'"' => {
                self.string()?;
            }
            b'{' => self.object(|cur, _| cur.value().map(drop))?,
            b'[' => self.array(|cur| cur.value().map(drop))?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return self.invalid("a value"),
        }
        Ok(&self.text[start..self.i])
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        for &w in word {
            if self.b.get(self.i) != Some(&w) {
                return self.invalid("a value");
            }
            self.i += 1;
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Scan<()> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.invalid("a digit"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.invalid("a digit");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.invalid("a digit");
            }
        }
        Ok(())
    }

    /// Scans a string at the cursor (which is on its opening quote); returns its text
    /// between the quotes and whether it holds escapes.
    pub fn string(&mut self) -> Scan<Key<'a>> {
        /// Bytes looked at one by one before memchr takes over (most strings are short).
        const SHORT: usize = 16;
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = &self.b[self.i..];
            let stop = |c: &u8| matches!(*c, b'"' | b'\\') || *c < 0x20;
            let n = match rest.iter().take(SHORT).position(stop) {
                Some(n) => n,
                None => match memchr::memchr2(b'"', b'\\', &rest[SHORT.min(rest.len())..]) {
                    Some(m) => SHORT + m,
                    None => {
                        self.i = self.b.len();
                        return self.invalid("a closing quote");
                    }
                },
            };
            if let Some(p) = rest[..n].iter().position(|c| *c < 0x20) {
                self.i += p;
                return self.invalid("no control character in a string");
            }
            self.i += n;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(Key {
                        raw: &self.text[start..self.i - 1],
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return self.invalid("no control character in a string"),
            }
        }
    }

    /// Steps over one escape (the cursor is on its backslash).
    fn escape(&mut self) -> Scan<()> {
        self.i += 1;
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
            Some(b'u') => {
                self.i += 1;
                for _ in 0..4 {
                    if !self.b.get(self.i).is_some_and(u8::is_ascii_hexdigit) {
                        return self.invalid("a hex digit");
                    }
                    self.i += 1;
                }
            }
            _ => return self.invalid("an escape"),
        }
        Ok(())
    }

    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.invalid("at most 128 levels of nesting");
        }
        self.i += 1;
        Ok(())
    }

    /// Walks an object (the cursor is on its `{`): calls `entry` with the cursor after each
    /// key's colon; `entry` must consume the value.
    pub fn object(&mut self, mut entry: impl FnMut(&mut Self, Key<'a>) -> Scan<()>) -> Scan<()> {
        self.enter()?;
        if self.ws() == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.ws() != b'"' {
                return self.invalid("a key");
            }
            let key = self.string()?;
            self.expect(b':', "a colon")?;
            entry(self, key)?;
            match self.ws() {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.invalid("a comma or the end of the object"),
            }
        }
    }

    /// Walks a list (the cursor is on its `[`): calls `element` with the cursor before each
    /// element; `element` must consume it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.enter()?;
        if self.ws() == b']' {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.ws() {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.invalid("a comma or the end of the list"),
            }
        }
    }
}

/// An object's entries (keys, value texts), in order; none for anything else. The text
/// must have been checked already.
pub fn entries(raw: &str) -> Vec<(Key<'_>, &str)> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(raw);
    if cur.ws() == b'{' {
        let _ = cur.object(|cur, key| {
            let v = cur.value()?;
            out.push((key, v));
            Ok(())
        });
    }
    out
}

/// A list's elements' texts; none for anything else. The text must have been checked.
pub fn elements(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(raw);
    if cur.ws() == b'[' {
        let _ = cur.array(|cur| {
            out.push(cur.value()?);
            Ok(())
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    /// Checks a whole text is one JSON value.
    fn whole(text: &str) -> Scan<&str> {
        let mut cur = Cursor::new(text);
        let v = cur.value()?;
        cur.end()?;
        Ok(v)
    }

    fn serde_ok(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok()
    }

    /// A tiny deterministic generator (xorshift), so the cases are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const SEEDS: &[&str] = &[
        r#"{"data": [{"a": 1, "b": {"c": "x\"y", "d": [1, 2.5e-3, -0, true, false, null]}}], "next": "k\u00e9"}"#,
        r#"[1, -2.0, 3E+7, "\\/\b\f\n\r\t", {}, [], [[]], {"": ""}]"#,
        r#"  "text with \"quotes\" and é"  "#,
        r#"{"a":{"b":{"c":{"d":[{"e":0.5}]}}}}"#,
    ];

    #[test]
    fn agrees_with_serde_json_on_mutated_texts() {
        let alphabet = b"{}[],:\"\\ \t\n0123456789.-+eEtrufalsn\x01abcu";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for seed in SEEDS {
            assert!(whole(seed).is_ok(), "{seed}");
            for _ in 0..4000 {
                let mut b = seed.as_bytes().to_vec();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(b.len() + 1);
                    match rng.below(3) {
                        0 if at < b.len() => {
                            b.remove(at);
                        }
                        1 if at < b.len() => b[at] = alphabet[rng.below(alphabet.len())],
                        _ => b.insert(at, alphabet[rng.below(alphabet.len())]),
                    }
                }
                let Ok(text) = std::str::from_utf8(&b) else {
                    continue;
                };
                assert_eq!(whole(text).is_ok(), serde_ok(text), "{text:?}");
            }
        }
    }

    #[test]
    fn nesting_is_limited_without_running_out_of_stack() {
        for depth in [1, 128] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(whole(&text).is_ok(), "depth {depth}");
        }
        for depth in [129, 1_000_000] {
            let text = format!(
                "{}1{}",
                "[{\"a\":".repeat(depth / 2 + 1),
                "}]".repeat(depth / 2 + 1)
            );
            let err = whole(&text).unwrap_err();
            assert_eq!(err.expected, "at most 128 levels of nesting");
        }
    }

    #[test]
    fn entries_and_elements_decode_keys() {
        let e = entries(r#"{"a\"b": [1, 2], "c": {"d": null}}"#);
        assert_eq!(e[0].0.decoded(), "a\"b");
        assert_eq!(e[0].0.raw, r#"a\"b"#);
        assert_eq!(e[0].1, "[1, 2]");
        assert_eq!(e[1].1, r#"{"d": null}"#);
        assert_eq!(elements(" [1, \"x\", {}] "), ["1", "\"x\"", "{}"]);
        assert!(entries("[1]").is_empty());
    }
}
