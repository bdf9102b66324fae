//! Records out of a response body, as newline-delimited JSON (or the CSV as it came) ready
//! for the Arrow decoder, plus what pagination needs (a next cursor, a next URL).
//!
//! A JSON body is read in one pass that builds no tree (`json_scan`): it is checked as it
//! is walked, and each record is copied as it is written, unless it has to be flattened or
//! assembled from parallel arrays (`{"time": [...], "temp": [...]}` → one record per index).

use std::fmt;

use serde::de::IgnoredAny;

use super::config::ResponseFormat;
use super::json_scan::{self, Cursor, Invalid, Key, Scan};

/// How to read bodies.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The response format.
    pub format: ResponseFormat,
    /// The path to the records (empty: the whole body).
    pub records: Vec<String>,
    /// Join nested keys with this (flattening), or keep nested objects.
    pub flatten: Option<String>,
    /// Where the next cursor is.
    pub cursor_path: Option<Vec<String>>,
    /// Where the next URL is.
    pub next_url_path: Option<Vec<String>>,
}

/// What a body held.
#[derive(Debug, Default)]
pub struct Extracted {
    /// Records found.
    pub records: usize,
    /// The records, one JSON object per line (or the CSV body).
    pub out: Vec<u8>,
    /// The next cursor (`None`: missing, null or empty).
    pub cursor: Option<serde_json::Value>,
    /// The next URL (`None`: missing, null or empty).
    pub next_url: Option<String>,
    /// A CSV body's header.
    pub csv_header: Option<Vec<String>>,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtractError {
    /// Not valid JSON: where and why.
    Json {
        /// Byte offset (0-based) of the problem.
        offset: usize,
        /// Line and column (1-based).
        line: usize,
        /// Column.
        column: usize,
        /// The parser's reason.
        reason: String,
    },
    /// Valid, but not where or what `records` says.
    Shape(String),
    /// CSV that does not parse.
    Csv(String),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json {
                offset,
                line,
                column,
                reason,
            } => write!(
                f,
                "malformed JSON at byte {offset} (line {line}, column {column}): {reason}"
            ),
            Self::Shape(s) => f.write_str(s),
            Self::Csv(s) => write!(f, "malformed CSV: {s}"),
        }
    }
}

impl Extractor {
    /// Reads one body.
    pub fn extract(&self, body: &[u8]) -> Result<Extracted, ExtractError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        match self.format {
            ResponseFormat::Json => self.json(body),
            ResponseFormat::Ndjson => self.ndjson(body),
            ResponseFormat::Csv => csv_body(body),
        }
    }

    /// One pass over the body checks it and writes the records; the other paths' values
    /// (cursor, next URL) are picked up on the way.
    fn json(&self, body: &[u8]) -> Result<Extracted, ExtractError> {
        let text = utf8(body)?;
        let mut out = Extracted::default();
        let mut walk = Walk {
            ex: self,
            paths: [
                Some(self.records.as_slice()),
                self.cursor_path.as_deref(),
                self.next_url_path.as_deref(),
            ],
            found: [None; 3],
            streamed: None,
            out: &mut out.out,
        };
        let mut cur = Cursor::new(text);
        walk.node(&mut cur, 0, 0b111)
            .and_then(|()| cur.end())
            .map_err(|e| invalid(text, 0, e))?;
        let [records, cursor, next_url] = walk.found;
        let streamed = walk.streamed;
        out.cursor = cursor
            .filter(|raw| first_byte(raw) != b'n')
            .map(|raw| serde_json::from_str::<serde_json::Value>(raw).unwrap_or_default())
            .filter(|v| !v.is_null() && v.as_str() != Some(""));
        out.next_url = next_url
            .and_then(|raw| serde_json::from_str::<Option<String>>(raw).ok().flatten())
            .filter(|s| !s.is_empty());
        out.records = match (streamed, records) {
            (Some(n), _) => n,
            (None, Some(raw)) => self.write_records(raw, &mut out.out)?,
            // A missing path is a mistake (a typo, usually); a null one holds no records.
            (None, None) => return Err(missing(text.trim(), &self.records)),
        };
        Ok(out)
    }

    fn ndjson(&self, body: &[u8]) -> Result<Extracted, ExtractError> {
        let text = utf8(body)?;
        let mut out = Extracted::default();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                let mut cur = Cursor::new(trimmed);
                self.record(&mut cur, &mut out.out)
                    .and_then(|()| cur.end())
                    .map_err(|e| {
                        let lead = line.len() - line.trim_start().len();
                        invalid(&text[..offset + lead + trimmed.len()], offset + lead, e)
                    })?;
                out.records += 1;
            }
            offset += line.len();
        }
        Ok(out)
    }

    /// Writes the records at `raw` (checked already): a list, an object of parallel arrays,
    /// one object, or nothing for `null`. Returns how many.
    fn write_records(&self, raw: &str, out: &mut Vec<u8>) -> Result<usize, ExtractError> {
        let checked = |r: Scan<usize>| r.map_err(|e| invalid(raw, 0, e));
        match first_byte(raw) {
            b'[' => checked(self.records_at(&mut Cursor::new(raw), out)),
            b'{' => {
                let entries = json_scan::entries(raw);
                let arrays =
                    !entries.is_empty() && entries.iter().all(|(_, v)| first_byte(v) == b'[');
                if arrays {
                    self.write_parallel(&entries, out)
                } else {
                    checked(self.record(&mut Cursor::new(raw), out).map(|()| 1))
                }
            }
            b'n' => Ok(0),
            _ => Err(ExtractError::Shape(format!(
                "the records are a {}, not a list or an object",
                kind_of(raw)
            ))),
        }
    }

    /// Writes the records of the list at the cursor; returns how many.
    fn records_at(&self, cur: &mut Cursor<'_>, out: &mut Vec<u8>) -> Scan<usize> {
        let mut n = 0;
        cur.array(|cur| {
            n += 1;
            self.record(cur, out)
        })?;
        Ok(n)
    }

    /// `{"a": [1, 2], "b": [3, 4]}` → `{"a":1,"b":3}` and `{"a":2,"b":4}`.
    fn write_parallel(&self, e: &Entries<'_>, out: &mut Vec<u8>) -> Result<usize, ExtractError> {
        let columns: Vec<(&Key<'_>, Vec<&str>)> =
            e.iter().map(|(k, v)| (k, json_scan::elements(v))).collect();
        let n = columns[0].1.len();
        if let Some((k, v)) = columns.iter().find(|(_, v)| v.len() != n) {
            return Err(ExtractError::Shape(format!(
                "parallel arrays of different lengths: `{}` has {n} values, `{}` has {}",
                columns[0].0.decoded(),
                k.decoded(),
                v.len()
            )));
        }
        let mut prefix = String::new();
        for i in 0..n {
            out.push(b'{');
            let mut first = true;
            for (k, values) in &columns {
                let mut cur = Cursor::new(values[i]);
                self.field(&mut cur, &mut prefix, k.raw, &mut first, out)
                    .map_err(|e| invalid(values[i], 0, e))?;
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(n)
    }

    /// One record at the cursor, written as one line: an object as it is (or flattened),
    /// anything else as `{"value": x}`.
    fn record(&self, cur: &mut Cursor<'_>, out: &mut Vec<u8>) -> Scan<()> {
        if cur.ws() != b'{' {
            out.extend_from_slice(b"{\"value\":");
            out.extend_from_slice(cur.value()?.as_bytes());
            out.extend_from_slice(b"}\n");
            return Ok(());
        }
        if self.flatten.is_none() {
            out.extend_from_slice(cur.value()?.as_bytes());
            out.push(b'\n');
            return Ok(());
        }
        out.push(b'{');
        let mut first = true;
        let mut prefix = String::new();
        cur.object(|cur, key| self.field(cur, &mut prefix, key.raw, &mut first, out))?;
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// `"key":value` for the value at the cursor, or a nested object's fields under
    /// `key_` when flattening. `prefix` and `key` are JSON string contents (escapes as
    /// written), so names are copied, never decoded and re-encoded.
    fn field(
        &self,
        cur: &mut Cursor<'_>,
        prefix: &mut String,
        key: &str,
        first: &mut bool,
        out: &mut Vec<u8>,
    ) -> Scan<()> {
        if let Some(sep) = &self.flatten
            && cur.ws() == b'{'
        {
            let len = prefix.len();
            prefix.push_str(key);
            push_escaped(prefix, sep);
            cur.object(|cur, k| self.field(cur, prefix, k.raw, first, out))?;
            prefix.truncate(len);
            return Ok(());
        }
        let value = cur.value()?;
        if !*first {
            out.push(b',');
        }
        *first = false;
        out.push(b'"');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
}

/// Appends `s` as JSON string content (escaped, without quotes).
fn push_escaped(to: &mut String, s: &str) {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    to.push_str(&quoted[1..quoted.len() - 1]);
}

/// The paths a body is walked for: the records, the next cursor, the next URL.
const RECORDS: usize = 0;

/// One walk over a JSON body: finds the values at the paths, and streams the records out
/// when they are a list.
struct Walk<'e, 'a> {
    ex: &'e Extractor,
    /// The records', cursor's and next URL's paths (`None`: not asked for).
    paths: [Option<&'e [String]>; 3],
    /// The text of the value found at each path (the first, if keys repeat).
    found: [Option<&'a str>; 3],
    /// How many records were written as the list was walked.
    streamed: Option<usize>,
    out: &'e mut Vec<u8>,
}

impl<'a> Walk<'_, 'a> {
    /// Walks the value at the cursor, `depth` keys down, for the paths in `mask` (bits).
    fn node(&mut self, cur: &mut Cursor<'a>, depth: usize, mask: u8) -> Scan<()> {
        let (mut here, mut below) = (0u8, 0u8);
        for (t, path) in self.paths.iter().enumerate() {
            let open = self.found[t].is_none() && (t != RECORDS || self.streamed.is_none());
            match path {
                Some(p) if open && mask & (1 << t) != 0 => {
                    if p.len() == depth {
                        here |= 1 << t;
                    } else {
                        below |= 1 << t;
                    }
                }
                _ => {}
            }
        }
        if here == 1 << RECORDS && below == 0 && cur.ws() == b'[' {
            self.streamed = Some(self.ex.records_at(cur, self.out)?);
        } else if here != 0 {
            // Asked for itself (and perhaps for what is inside: looked up in its text).
            let raw = cur.value()?;
            for (t, path) in self.paths.iter().enumerate() {
                if here & (1 << t) != 0 {
                    self.found[t] = Some(raw);
                } else if below & (1 << t) != 0 {
                    self.found[t] = path.and_then(|p| lookup(raw, &p[depth..]));
                }
            }
        } else if below != 0 && cur.ws() == b'{' {
            cur.object(|cur, key| {
                let name = key.decoded();
                let mut sub = 0u8;
                for (t, path) in self.paths.iter().enumerate() {
                    if below & (1 << t) != 0 && path.is_some_and(|p| p[depth] == name) {
                        sub |= 1 << t;
                    }
                }
                if sub == 0 {
                    cur.value().map(drop)
                } else {
                    self.node(cur, depth + 1, sub)
                }
            })?;
        } else {
            cur.value()?;
        }
        Ok(())
    }
}

fn csv_body(body: &[u8]) -> Result<Extracted, ExtractError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ExtractError::Csv(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut records = 0;
    let mut row = csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut row)
        .map_err(|e| ExtractError::Csv(e.to_string()))?
    {
        records += 1;
    }
    Ok(Extracted {
        records,
        out: body.to_vec(),
        csv_header: (!header.is_empty()).then_some(header),
        ..Default::default()
    })
}

fn utf8(body: &[u8]) -> Result<&str, ExtractError> {
    std::str::from_utf8(body).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &body[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        ExtractError::Json {
            offset,
            line,
            column,
            reason: "not UTF-8 text".into(),
        }
    })
}

/// Why a text the scanner refused is not JSON: serde_json's reason and place when it finds
/// one (it reads the text again), else the scanner's. `base`: where the text starts in `body`.
fn invalid(body: &str, base: usize, e: Invalid) -> ExtractError {
    match serde_json::from_str::<IgnoredAny>(&body[base..]) {
        Err(serde) => json_error(body, base, &serde),
        Ok(_) => {
            let offset = base + e.at;
            let line = body[..offset].matches('\n').count() + 1;
            let column = offset - body[..offset].rfind('\n').map_or(0, |p| p + 1) + 1;
            ExtractError::Json {
                offset,
                line,
                column,
                reason: format!("expected {}", e.expected),
            }
        }
    }
}

/// A parse error at a byte offset of the whole body (`base`: where the parsed text starts).
fn json_error(body: &str, base: usize, e: &serde_json::Error) -> ExtractError {
    // serde_json counts lines and columns (1-based, in bytes) from the start of what it read.
    let mut offset = base;
    let mut line_no = 1;
    for (i, line) in body[base..].split_inclusive('\n').enumerate() {
        if i + 1 == e.line() {
            offset += e.column().saturating_sub(1).min(line.len());
            break;
        }
        offset += line.len();
        line_no += 1;
    }
    let line = body[..base].matches('\n').count() + line_no;
    let column = offset - body[..offset].rfind('\n').map_or(0, |p| p + 1) + 1;
    let reason = e.to_string();
    let reason = reason
        .split(" at line ")
        .next()
        .unwrap_or(&reason)
        .to_string();
    ExtractError::Json {
        offset,
        line,
        column,
        reason,
    }
}

fn first_byte(raw: &str) -> u8 {
    raw.bytes().next().unwrap_or(b'n')
}

fn kind_of(raw: &str) -> &'static str {
    match first_byte(raw) {
        b'"' => "string",
        b't' | b'f' => "boolean",
        b'n' => "null",
        b'[' => "list",
        b'{' => "object",
        _ => "number",
    }
}

/// The value at a dotted path inside checked text (`None`: a key is missing).
fn lookup<'a>(root: &'a str, path: &[String]) -> Option<&'a str> {
    let mut at = root;
    for key in path {
        at = json_scan::entries(at)
            .into_iter()
            .find(|(k, _)| k.decoded() == key.as_str())?
            .1;
    }
    Some(at)
}

/// Explains a `records` path that is not in a body (a typo, usually).
fn missing(root: &str, path: &[String]) -> ExtractError {
    let mut at = root;
    let mut walked = Vec::new();
    for key in path {
        let entries = json_scan::entries(at);
        match entries.iter().find(|(k, _)| k.decoded() == key.as_str()) {
            Some((_, v)) => at = v,
            None => {
                let place = if walked.is_empty() {
                    "the body".to_string()
                } else {
                    format!("`{}`", walked.join("."))
                };
                let keys: Vec<String> = entries.iter().map(|(k, _)| k.decoded().into()).collect();
                let found = if keys.is_empty() {
                    format!("{place} is a {}", kind_of(at))
                } else {
                    format!("{place} has {}", keys.join(", "))
                };
                return ExtractError::Shape(format!(
                    "the records path `{}` is not in the response: {found}",
                    path.join(".")
                ));
            }
        }
        walked.push(key.clone());
    }
    ExtractError::Shape(format!(
        "the records path `{}` is not in the response",
        path.join(".")
    ))
}

/// An object's entries: keys as written, and the text of their values, in order.
type Entries<'a> = Vec<(Key<'a>, &'a str)>;

/// Splits a dotted path (`data.items`); empty for none.
pub fn path(p: Option<&str>) -> Vec<String> {
    p.map(|p| {
        p.split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(records: &str, flatten: bool) -> Extractor {
        Extractor {
            format: ResponseFormat::Json,
            records: path(Some(records)),
            flatten: flatten.then(|| "_".to_string()),
            cursor_path: Some(path(Some("meta.next"))),
            next_url_path: None,
        }
    }

    fn lines(e: &Extracted) -> Vec<String> {
        String::from_utf8(e.out.clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn lists_objects_and_cursors() {
        let body = br#"{"data": {"items": [{"a": 1, "b": {"c": "x"}}, {"a": 2}]}, "meta": {"next": "k2"}}"#;
        let e = ex("data.items", false).extract(body).unwrap();
        assert_eq!(e.records, 2);
        assert_eq!(lines(&e), [r#"{"a": 1, "b": {"c": "x"}}"#, r#"{"a": 2}"#]);
        assert_eq!(e.cursor, Some(serde_json::json!("k2")));
        let e = ex("data.items", true).extract(body).unwrap();
        assert_eq!(lines(&e), [r#"{"a":1,"b_c":"x"}"#, r#"{"a":2}"#]);
    }

    #[test]
    fn parallel_arrays_become_rows() {
        let body = br#"{"hourly": {"time": ["t1", "t2"], "temp": [1.5, null]}}"#;
        let e = ex("hourly", false).extract(body).unwrap();
        assert_eq!(
            lines(&e),
            [
                r#"{"time":"t1","temp":1.5}"#,
                r#"{"time":"t2","temp":null}"#
            ]
        );
        let bad = br#"{"hourly": {"time": ["t1", "t2"], "temp": [1.5]}}"#;
        let err = ex("hourly", false).extract(bad).unwrap_err();
        assert!(err.to_string().contains("different lengths"), "{err}");
    }

    #[test]
    fn malformed_json_names_the_byte_offset() {
        let body = b"{\"data\": {\"items\": [\n  {\"a\": 1},\n  {\"a\": tru}\n]}}";
        let err = ex("data.items", false).extract(body).unwrap_err();
        let ExtractError::Json { offset, line, .. } = &err else {
            panic!("{err:?}")
        };
        // Where the parser found what it did not expect: the `}` after `tru`.
        assert_eq!(*line, 3, "{err}");
        assert_eq!(&body[*offset - 3..*offset + 1], b"tru}", "{err}");
    }

    #[test]
    fn paths_are_found_in_any_order_and_the_first_of_repeated_keys_wins() {
        let mut e = ex("items", true);
        e.cursor_path = None;
        e.next_url_path = Some(path(Some("links.next")));
        let body = br#"{"links": {"next": "http://x/2"}, "items": [{"a\"b": {"c": 1}}, 7], "items": [{"z": 0}]}"#;
        let got = e.extract(body).unwrap();
        assert_eq!(got.next_url.as_deref(), Some("http://x/2"));
        assert_eq!(got.records, 2);
        assert_eq!(lines(&got), [r#"{"a\"b_c":1}"#, r#"{"value":7}"#]);
        let row: serde_json::Value = serde_json::from_str(&lines(&got)[0]).unwrap();
        assert_eq!(row["a\"b_c"], 1);
        // The records and the cursor in one object: both are looked up in its text.
        let mut e = ex("data", false);
        e.cursor_path = Some(path(Some("data.next")));
        let got = e.extract(br#"{"data": {"id": 1, "next": "k"}}"#).unwrap();
        assert_eq!((got.records, got.cursor), (1, Some(serde_json::json!("k"))));
    }

    #[test]
    fn ndjson_errors_name_the_line_and_a_separator_is_escaped() {
        let e = Extractor {
            format: ResponseFormat::Ndjson,
            records: vec![],
            flatten: Some("\"".into()),
            cursor_path: None,
            next_url_path: None,
        };
        let got = e.extract(b"{\"a\": {\"b\": 1}}\n\n[2]\n").unwrap();
        assert_eq!(lines(&got), [r#"{"a\"b":1}"#, r#"{"value":[2]}"#]);
        let err = e.extract(b"{\"a\": 1}\n{\"a\": 2,}\n").unwrap_err();
        let ExtractError::Json { line, column, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((*line, *column), (2, 9), "{err}");
    }

    #[test]
    fn a_missing_records_path_lists_what_is_there() {
        let err = ex("data.itmes", false)
            .extract(br#"{"data": {"items": []}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("`data` has items"), "{err}");
        let empty = ex("data", false).extract(br#"{"data": null}"#).unwrap();
        assert_eq!(empty.records, 0);
    }
}
