//! Reading text back through the encodings a value takes on its way out.
//!
//! A secret rarely leaves the program as it was read. URLs percent-encode it (`%40` for `@`,
//! `%20` or `+` for a space, either case of hex, some characters left as they are), JSON and
//! Rust's `{:?}` escape it (`\"`, `\\`, `\/`, `\u0022`, `\u{22}`), HTML escapes it
//! (`&quot;`, `&#34;`), and these stack: a percent-encoded URL inside a JSON log line inside
//! another JSON string. Listing every form up front does not scale (each character may or may
//! not be encoded, so a secret with six special characters has hundreds of percent forms
//! alone), so instead the matcher decodes the text one character at a time, in every way it
//! can be read, and compares the decoded characters with the secret's.
//!
//! [`units`] gives each character a piece of text can stand for, with where that piece ends.
//! Every encoded form starts with one of [`INTRODUCERS`], so text without them costs one
//! table look-up per byte.

/// How many encodings may be stacked on one character: a JSON string holding a JSON string
/// holding a percent-encoded URL is three.
pub const MAX_LAYERS: u8 = 3;

/// The bytes every encoded form of a character starts with.
pub const INTRODUCERS: [u8; 4] = [b'%', b'+', b'\\', b'&'];

/// One decoded character and the byte offset where its encoded form ends.
pub type Unit = (char, usize);

/// Every character that `text[pos..]` can stand for, through at most `layers` stacked
/// encodings, pushed onto `out` (without duplicates).
pub fn units(text: &str, pos: usize, layers: u8, out: &mut Vec<Unit>) {
    let Some(c) = text.get(pos..).and_then(|s| s.chars().next()) else {
        return;
    };
    push(out, (c, pos + c.len_utf8()));
    if layers == 0 || !INTRODUCERS.contains(&text.as_bytes()[pos]) {
        return;
    }
    // The introducer itself may be encoded (`%25` for `%`, `\\` for `\`), hence one layer
    // less for it and for what follows it.
    let mut firsts = Vec::new();
    units(text, pos, layers - 1, &mut firsts);
    for (c, end) in firsts {
        push(out, (c, end));
        match c {
            '%' => percent(text, end, out),
            '+' => push(out, (' ', end)),
            '\\' => backslash(text, end, layers - 1, out),
            '&' => entity(text, end, out),
            _ => {}
        }
    }
}

fn push(out: &mut Vec<Unit>, u: Unit) {
    if !out.contains(&u) {
        out.push(u);
    }
}

/// A number written in hex digits only (`from_str_radix` would also take a sign).
fn hex(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Two hex digits at `pos`, as a byte.
fn hex_byte(text: &str, pos: usize) -> Option<u8> {
    hex(text.get(pos..pos + 2)?).map(|n| n as u8)
}

/// After a `%`: one byte, or the bytes of one UTF-8 character as `%XX%XX...`.
fn percent(text: &str, pos: usize, out: &mut Vec<Unit>) {
    let Some(lead) = hex_byte(text, pos) else {
        return;
    };
    let len = match lead {
        0x00..=0x7f => return push(out, (lead as char, pos + 2)),
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return,
    };
    let mut bytes = vec![lead];
    let mut end = pos + 2;
    for _ in 1..len {
        if text.as_bytes().get(end) != Some(&b'%') {
            return;
        }
        let Some(b) = hex_byte(text, end + 1) else {
            return;
        };
        bytes.push(b);
        end += 3;
    }
    if let Some(c) = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.chars().next())
    {
        push(out, (c, end));
    }
}

/// After a `\`: JSON and Rust escapes. The escaped character may itself be escaped once more
/// (`\\\"` is `\"` inside a JSON string).
fn backslash(text: &str, pos: usize, layers: u8, out: &mut Vec<Unit>) {
    let mut seconds = Vec::new();
    units(text, pos, layers, &mut seconds);
    for (c, end) in seconds {
        let simple = match c {
            '"' | '\\' | '/' | '\'' => Some(c),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            '0' => Some('\0'),
            _ => None,
        };
        if let Some(s) = simple {
            push(out, (s, end));
        } else if c == 'x' {
            if let Some(b) = hex_byte(text, end).filter(u8::is_ascii) {
                push(out, (b as char, end + 2));
            }
        } else if c == 'u' {
            unicode_escape(text, end, out);
        }
    }
}

/// After `\u`: `{X..}` (Rust) or `XXXX` (JSON, with surrogate pairs).
fn unicode_escape(text: &str, pos: usize, out: &mut Vec<Unit>) {
    let rest = &text[pos..];
    if let Some(inner) = rest.strip_prefix('{') {
        let Some(close) = inner.find('}').filter(|&n| (1..=6).contains(&n)) else {
            return;
        };
        let c = hex(&inner[..close]).and_then(char::from_u32);
        if let Some(c) = c {
            push(out, (c, pos + close + 2));
        }
        return;
    }
    let Some(hi) = rest.get(..4).and_then(hex).map(|n| n as u16) else {
        return;
    };
    let mut end = pos + 4;
    let mut code = vec![hi];
    if (0xd800..0xdc00).contains(&hi) {
        let lo = text
            .get(end..end + 6)
            .and_then(|s| s.strip_prefix("\\u"))
            .and_then(hex)
            .map(|n| n as u16);
        match lo {
            Some(lo) => {
                code.push(lo);
                end += 6;
            }
            None => return,
        }
    }
    if let Some(Ok(c)) = char::decode_utf16(code).next() {
        push(out, (c, end));
    }
}

/// After `&`: the HTML entities for the characters that need them, and numeric references.
fn entity(text: &str, pos: usize, out: &mut Vec<Unit>) {
    let rest = &text[pos..];
    for (name, c) in [
        ("quot;", '"'),
        ("amp;", '&'),
        ("lt;", '<'),
        ("gt;", '>'),
        ("apos;", '\''),
    ] {
        if rest.starts_with(name) {
            return push(out, (c, pos + name.len()));
        }
    }
    let Some(num) = rest.strip_prefix('#') else {
        return;
    };
    let Some(semi) = num.find(';').filter(|&n| (1..=8).contains(&n)) else {
        return;
    };
    let digits = &num[..semi];
    let code = match digits.strip_prefix(['x', 'X']) {
        Some(h) => hex(h),
        None if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok(),
        None => None,
    };
    if let Some(c) = code.and_then(char::from_u32) {
        push(out, (c, pos + semi + 2));
    }
}

/// Where the longest reading of `secret` that starts at `start` ends, if there is one.
pub fn match_end(text: &str, start: usize, secret: &[char]) -> Option<usize> {
    let mut frontier = vec![start];
    let mut buf = Vec::new();
    for &want in secret {
        let mut next = Vec::new();
        for &p in &frontier {
            buf.clear();
            units(text, p, MAX_LAYERS, &mut buf);
            for &(c, end) in &buf {
                if c == want && !next.contains(&end) {
                    next.push(end);
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        frontier = next;
    }
    frontier.into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<char> {
        let mut out = Vec::new();
        units(text, 0, MAX_LAYERS, &mut out);
        out.into_iter()
            .filter(|&(_, end)| end == text.len())
            .map(|(c, _)| c)
            .collect()
    }

    #[test]
    fn one_character_in_every_encoding() {
        for form in [
            "@", "%40", "\\u0040", "\\u{40}", "&#64;", "&#x40;", "%2540", "\\x40",
        ] {
            assert!(read(form).contains(&'@'), "{form}");
        }
        for form in [
            "\"", "\\\"", "\\\\\\\"", "%22", "\\u0022", "&quot;", "%5C%22",
        ] {
            assert!(read(form).contains(&'"'), "{form}");
        }
        for form in [" ", "+", "%20", "\\u0020"] {
            assert!(read(form).contains(&' '), "{form}");
        }
        assert!(read("%2f").contains(&'/') && read("%2F").contains(&'/'));
        assert!(read("\\/").contains(&'/'));
        assert!(read("%C3%A9").contains(&'é') && read("\\u00e9").contains(&'é'));
        assert!(read("\\ud83d\\ude00").contains(&'😀'));
        assert!(read("%4").is_empty() && read("\\q").is_empty());
    }

    #[test]
    fn matches_end_at_the_longest_reading() {
        let secret: Vec<char> = "a b".chars().collect();
        assert_eq!(match_end("a b!", 0, &secret), Some(3));
        assert_eq!(match_end("a%20b!", 0, &secret), Some(5));
        assert_eq!(match_end("a+b", 0, &secret), Some(3));
        assert_eq!(match_end("a_b", 0, &secret), None);
        assert_eq!(match_end("xa b", 0, &secret), None);
    }
}
