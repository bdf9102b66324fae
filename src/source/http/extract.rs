//! Records out of a response body, as newline-delimited JSON (or the CSV as it came) ready
//! for the Arrow decoder, plus what pagination needs (a next cursor, a next URL).
//!
//! JSON bodies are checked in one pass that builds nothing (`IgnoredAny`), then walked
//! without building a tree: objects are split into their entries' text, so a record is
//! copied as it is unless it has to be flattened or assembled from parallel arrays
//! (`{"time": [...], "temp": [...]}` → one record per index).

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;

/// The text of one JSON value inside a checked body (no surrounding whitespace).
type RawValue = str;

use super::config::ResponseFormat;

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

    fn json(&self, body: &[u8]) -> Result<Extracted, ExtractError> {
        let text = utf8(body)?;
        serde_json::from_str::<IgnoredAny>(text).map_err(|e| json_error(text, 0, &e))?;
        let root: &RawValue = text.trim();
        let mut out = Extracted::default();
        if let Some(path) = &self.cursor_path {
            out.cursor = find(root, path)?
                .map(|raw| serde_json::from_str::<serde_json::Value>(raw).unwrap_or_default())
                .filter(|v| !v.is_null() && v.as_str() != Some(""));
        }
        if let Some(path) = &self.next_url_path {
            out.next_url = find(root, path)?
                .and_then(|raw| serde_json::from_str::<Option<String>>(raw).ok().flatten())
                .filter(|s| !s.is_empty());
        }
        // A missing path is a mistake (a typo, usually); a null one holds no records.
        let records = match lookup(root, &self.records)? {
            Some(r) => r,
            None => return Err(missing(root, &self.records)),
        };
        out.records = self.write_records(records, &mut out.out)?;
        Ok(out)
    }

    fn ndjson(&self, body: &[u8]) -> Result<Extracted, ExtractError> {
        let text = utf8(body)?;
        let mut out = Extracted::default();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                serde_json::from_str::<IgnoredAny>(trimmed).map_err(|e| {
                    json_error(text, offset + (line.len() - line.trim_start().len()), &e)
                })?;
                self.write_record(trimmed, &mut out.out)?;
                out.records += 1;
            }
            offset += line.len();
        }
        Ok(out)
    }

    /// Writes the records at `raw`: a list, an object of parallel arrays, one object, or
    /// nothing for `null`. Returns how many.
    fn write_records(&self, raw: &RawValue, out: &mut Vec<u8>) -> Result<usize, ExtractError> {
        match first_byte(raw) {
            b'[' => {
                let items = elements(raw);
                for item in &items {
                    self.write_record(item, out)?;
                }
                Ok(items.len())
            }
            b'{' => {
                let entries = entries(raw);
                let arrays =
                    !entries.is_empty() && entries.iter().all(|(_, v)| first_byte(v) == b'[');
                if arrays {
                    self.write_parallel(&entries, out)
                } else {
                    self.write_record(raw, out)?;
                    Ok(1)
                }
            }
            b'n' => Ok(0),
            _ => Err(ExtractError::Shape(format!(
                "the records are a {}, not a list or an object",
                kind_of(raw)
            ))),
        }
    }

    /// `{"a": [1, 2], "b": [3, 4]}` → `{"a":1,"b":3}` and `{"a":2,"b":4}`.
    fn write_parallel(&self, e: &Entries<'_>, out: &mut Vec<u8>) -> Result<usize, ExtractError> {
        let columns: Vec<(&str, Vec<&RawValue>)> =
            e.iter().map(|(k, v)| (k.as_ref(), elements(v))).collect();
        let n = columns[0].1.len();
        if let Some((k, v)) = columns.iter().find(|(_, v)| v.len() != n) {
            return Err(ExtractError::Shape(format!(
                "parallel arrays of different lengths: `{}` has {n} values, `{k}` has {}",
                columns[0].0,
                v.len()
            )));
        }
        for i in 0..n {
            out.push(b'{');
            let mut first = true;
            for (k, values) in &columns {
                self.write_field(k, values[i], &mut first, out)?;
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(n)
    }

    /// One record: an object (flattened if asked), or `{"value": x}` for anything else.
    fn write_record(&self, raw: &RawValue, out: &mut Vec<u8>) -> Result<(), ExtractError> {
        if first_byte(raw) != b'{' {
            out.extend_from_slice(b"{\"value\":");
            out.extend_from_slice(raw.as_bytes());
            out.extend_from_slice(b"}\n");
            return Ok(());
        }
        if self.flatten.is_none() {
            out.extend_from_slice(raw.as_bytes());
            out.push(b'\n');
            return Ok(());
        }
        out.push(b'{');
        let mut first = true;
        for (k, v) in entries(raw) {
            self.write_field(&k, v, &mut first, out)?;
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// `"key":value`, or the nested object's fields under `key_` when flattening.
    fn write_field(
        &self,
        key: &str,
        v: &RawValue,
        first: &mut bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ExtractError> {
        if let Some(sep) = &self.flatten
            && first_byte(v) == b'{'
        {
            for (k, inner) in entries(v) {
                self.write_field(&format!("{key}{sep}{k}"), inner, first, out)?;
            }
            return Ok(());
        }
        if !*first {
            out.push(b',');
        }
        *first = false;
        serde_json::to_writer(&mut *out, key).map_err(|e| ExtractError::Shape(e.to_string()))?;
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
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

fn first_byte(raw: &RawValue) -> u8 {
    raw.bytes().next().unwrap_or(b'n')
}

fn kind_of(raw: &RawValue) -> &'static str {
    match first_byte(raw) {
        b'"' => "string",
        b't' | b'f' => "boolean",
        b'n' => "null",
        b'[' => "list",
        b'{' => "object",
        _ => "number",
    }
}

/// The value at a dotted path (`None`: a key is missing).
fn lookup<'a>(root: &'a RawValue, path: &[String]) -> Result<Option<&'a RawValue>, ExtractError> {
    let mut at = root;
    for key in path {
        if first_byte(at) != b'{' {
            return Ok(None);
        }
        match entries(at).into_iter().find(|(k, _)| k == key) {
            Some((_, v)) => at = v,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The value at a dotted path (`None`: a key is missing, or the value is null).
fn find<'a>(root: &'a RawValue, path: &[String]) -> Result<Option<&'a RawValue>, ExtractError> {
    Ok(lookup(root, path)?.filter(|v| first_byte(v) != b'n'))
}

/// Explains a `records` path that is not in a body (a typo, usually).
fn missing(root: &RawValue, path: &[String]) -> ExtractError {
    let mut at = root;
    let mut walked = Vec::new();
    for key in path {
        let keys: Vec<String> = entries(at).iter().map(|(k, _)| k.to_string()).collect();
        match entries(at).into_iter().find(|(k, _)| k == key) {
            Some((_, v)) => at = v,
            None => {
                let place = if walked.is_empty() {
                    "the body".to_string()
                } else {
                    format!("`{}`", walked.join("."))
                };
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

/// An object's entries, as the text of their values, in order.
type Entries<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// The entries of an object (none for anything else). The text was checked already.
fn entries(raw: &RawValue) -> Entries<'_> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    if b.first() != Some(&b'{') {
        return out;
    }
    let mut i = skip_ws(b, 1);
    while i < b.len() && b[i] == b'"' {
        let key_end = value_end(b, i);
        let key_text = &raw[i..key_end];
        let key = if key_text.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(key_text).unwrap_or_default())
        } else {
            Cow::Borrowed(&key_text[1..key_text.len() - 1])
        };
        i = skip_ws(b, key_end);
        i = skip_ws(b, i + 1); // the colon
        let end = value_end(b, i);
        out.push((key, &raw[i..end]));
        i = skip_ws(b, end);
        if i < b.len() && b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
    }
    out
}

/// The elements of a list (none for anything else). The text was checked already.
fn elements(raw: &RawValue) -> Vec<&RawValue> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    if b.first() != Some(&b'[') {
        return out;
    }
    let mut i = skip_ws(b, 1);
    while i < b.len() && b[i] != b']' {
        let end = value_end(b, i);
        out.push(&raw[i..end]);
        i = skip_ws(b, end);
        if i < b.len() && b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
    }
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Where the value starting at `i` ends (exclusive).
fn value_end(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => {
            let mut j = i + 1;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'"' => return j + 1,
                    _ => j += 1,
                }
            }
            b.len()
        }
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = value_end(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            b.len()
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
    }
}

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
    fn a_missing_records_path_lists_what_is_there() {
        let err = ex("data.itmes", false)
            .extract(br#"{"data": {"items": []}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("`data` has items"), "{err}");
        let empty = ex("data", false).extract(br#"{"data": null}"#).unwrap();
        assert_eq!(empty.records, 0);
    }
}
