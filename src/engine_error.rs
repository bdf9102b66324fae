//! Engine, object-store and I/O messages, said for people: what happened, and what to do.
//!
//! DataFusion, Arrow, Parquet and object_store report failures as nested text (`Object
//! Store error: Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/
//! token ... 403 Forbidden`). [`explain`] recognises the families users meet and turns them
//! into one sentence and a hint; [`polish`] does that to a diagnostic whose message carries
//! such text (where: the diagnostic's file, YAML path and position, or the data file and
//! line the message names). Text of no known family keeps its meaning, minus the engine's
//! prefixes.

use std::sync::LazyLock;

use regex::Regex;

use crate::diagnostic::Diagnostic;

/// The kinds of failure [`explain`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// No object-store credentials anywhere (the cloud metadata service was asked last).
    MissingCredentials,
    /// The store refused (HTTP 403).
    AccessDenied,
    /// The bucket or container does not exist.
    NoSuchBucket,
    /// The object or file does not exist.
    NotFound,
    /// The server could not be reached.
    Unreachable,
    /// Text that is not JSON.
    InvalidJson,
    /// A CSV row with the wrong number of fields.
    CsvFields,
    /// A value that does not fit its column's type.
    BadValue,
    /// A file that is not Parquet.
    NotParquet,
    /// Division by zero in a query.
    DivideByZero,
    /// A number too large for its type.
    Overflow,
    /// The memory limit was reached.
    OutOfMemory,
    /// The disk is full.
    DiskFull,
    /// The file system refused access.
    PermissionDenied,
    /// Anything else.
    Other,
}

/// A raw message, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// Which family it is.
    pub family: Family,
    /// What happened, in one sentence.
    pub message: String,
    /// What to do, when there is something to say.
    pub help: Option<String>,
}

/// Prefixes the engine puts before the text that matters.
const PREFIXES: &[&str] = &[
    "Arrow error: ",
    "Json error: ",
    "External error: ",
    "Execution error: ",
    "Object Store error: ",
    "ObjectStore error: ",
    "Parquet error: ",
    "Parquet argument error: ",
    "IO error: ",
    "Io error: ",
    "Error during planning: ",
    "Schema error: ",
    "SQL error: ",
    "This feature is not implemented: ",
    "Optimizer rule",
    "Resources exhausted: ",
];

/// Markers that start an engine message inside a longer one.
const MARKERS: &[&str] = &[
    "Arrow error: ",
    "Json error: ",
    "External error: ",
    "Execution error: ",
    "Object Store error: ",
    "ObjectStore error: ",
    "Parquet error: ",
    "IO error: ",
    "Resources exhausted: ",
    "Generic S3 error",
    "Generic GCS error",
    "Generic MicrosoftAzure error",
    "Generic HTTP error",
];

/// The engine's prefixes removed, repeatedly.
pub fn strip_prefixes(raw: &str) -> &str {
    let mut m = raw.trim();
    loop {
        let before = m;
        for p in PREFIXES {
            if let Some(rest) = m.strip_prefix(p) {
                m = rest.trim_start();
            }
        }
        if m == before {
            return m;
        }
    }
}

static REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:GET|PUT|HEAD|POST|DELETE|LIST) (\S+?)(?: in [0-9.]+\S*)?(?:,| -|$)")
        .expect("valid regex")
});
static LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Object at location (\S+) not found").expect("valid regex"));
static AT_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" at line \d+ column \d+$").expect("valid regex"));

/// Which object store a message is about.
fn store_of(lower: &str) -> &'static str {
    if lower.contains("gcs") || lower.contains("google") || lower.contains("metadata.google") {
        "GCS"
    } else if lower.contains("azure") || lower.contains("microsoft") {
        "Azure"
    } else {
        "S3"
    }
}

fn credentials_help(store: &str) -> String {
    match store {
        "GCS" => "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or give the source a `connection:` whose options hold `service_account_path`".into(),
        "Azure" => "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or give the source a `connection:` whose options hold `account_name` and `access_key`".into(),
        _ => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION), or give the source or sink a `connection:` whose options hold `access_key_id`, `secret_access_key` and `region`; a public bucket reads with `skip_signature: \"true\"` in the connection's options".into(),
    }
}

fn explained(family: Family, message: String, help: Option<&str>) -> Explained {
    Explained {
        family,
        message,
        help: help.map(str::to_string),
    }
}

/// Explains a raw engine, object-store or I/O message.
pub fn explain(raw: &str) -> Explained {
    let text = strip_prefixes(raw);
    let lower = text.to_ascii_lowercase();
    let url = REQUEST.captures(text).map(|c| c[1].to_string());
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&[
        "169.254.169.254",
        "/latest/api/token",
        "/latest/meta-data",
        "metadata.google.internal",
        "computemetadata",
        "no credentials",
        "missing credentials",
        "could not find credentials",
    ]) {
        let store = store_of(&lower);
        return Explained {
            family: Family::MissingCredentials,
            message: format!(
                "no {store} credentials: none are set in the environment or in a connection, and the cloud metadata service (asked last) gave none"
            ),
            help: Some(credentials_help(store)),
        };
    }
    if has(&["nosuchbucket", "bucket does not exist", "containernotfound"]) {
        return explained(
            Family::NoSuchBucket,
            format!("the {} bucket does not exist{}", store_of(&lower), on(&url)),
            Some(
                "check the bucket name in the path, and the region or `endpoint` of the connection",
            ),
        );
    }
    if has(&[
        "403 forbidden",
        "accessdenied",
        "access denied",
        "authorizationfailure",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
    ]) {
        return explained(
            Family::AccessDenied,
            format!("the store refused access (HTTP 403){}", on(&url)),
            Some(
                "check that the credentials are valid and may read (or write) this bucket and prefix",
            ),
        );
    }
    if let Some(c) = LOCATION.captures(text) {
        return explained(
            Family::NotFound,
            format!("no such object: {}", &c[1]),
            Some("check the path; relative paths are relative to the pipeline file's folder"),
        );
    }
    if has(&["404 not found", "notfound", "no such file or directory"]) {
        return explained(
            Family::NotFound,
            format!("no such file or object{}", on(&url)),
            Some("check the path; relative paths are relative to the pipeline file's folder"),
        );
    }
    if has(&[
        "error sending request",
        "connection refused",
        "dns error",
        "tcp connect error",
        "timed out",
        "connection reset",
        "failed to lookup address",
    ]) {
        return explained(
            Family::Unreachable,
            format!("cannot reach the server{}", on(&url)),
            Some(
                "check the URL or the connection's `endpoint`, that the server is up, and the network (proxy, firewall)",
            ),
        );
    }
    if has(&["incorrect number of fields", "unequal lengths"]) {
        return explained(
            Family::CsvFields,
            format!("a row has the wrong number of fields ({text})"),
            Some(
                "check `options: { delimiter, quote }`, or set `on_bad_row: skip` (or `quarantine`) to set such rows aside",
            ),
        );
    }
    if has(&["whilst decoding field"]) {
        return explained(
            Family::BadValue,
            format!(
                "a value does not fit its column's type: {}",
                text.rsplit("Json error: ").next().unwrap_or(text)
            ),
            Some(
                "declare the column with a type that fits in `schema:`, or set `on_bad_row: skip` (or `quarantine`)",
            ),
        );
    }
    if has(&[
        "json error",
        "not valid json",
        "whilst parsing",
        "encountered unexpected",
        "while parsing a",
        "expected value at",
        "trailing characters",
    ]) {
        let detail = AT_LINE.replace(text.rsplit("Not valid JSON: ").next().unwrap_or(text), "");
        return explained(
            Family::InvalidJson,
            format!("invalid JSON: {detail}"),
            Some(
                "fix the line, or set `on_bad_row: skip` (or `quarantine`) on the source to set such rows aside",
            ),
        );
    }
    if has(&[
        "cast error",
        "cannot cast",
        "parser error",
        "error parsing",
        "error while parsing value",
    ]) {
        return explained(
            Family::BadValue,
            format!("a value does not fit its column's type: {text}"),
            Some(
                "declare the column as `string` in `schema:` and convert it in SQL (TRY_CAST gives NULL where it cannot), or set `on_bad_row: skip` (or `quarantine`)",
            ),
        );
    }
    if has(&[
        "invalid parquet file",
        "corrupt footer",
        "parquet magic",
        "par1",
    ]) {
        return explained(
            Family::NotParquet,
            "not a Parquet file (its footer is missing or damaged)".into(),
            Some(
                "check that the file is Parquet and was written completely, or change the source's `type`",
            ),
        );
    }
    if has(&["divide by zero", "division by zero"]) {
        return explained(
            Family::DivideByZero,
            "division by zero".into(),
            Some("write `x / NULLIF(y, 0)` to get NULL where the divisor is 0"),
        );
    }
    if has(&["overflow"]) {
        return explained(
            Family::Overflow,
            format!("a number is too large for its type ({text})"),
            Some(
                "cast to a wider type before the arithmetic, e.g. `CAST(x AS BIGINT)` or a decimal",
            ),
        );
    }
    if has(&["resources exhausted", "failed to allocate additional"])
        || raw.contains("Resources exhausted")
    {
        return explained(
            Family::OutOfMemory,
            format!("out of memory: {text}"),
            Some(
                "raise `--memory-limit` (or `engine.memory_limit`), or give spilling room with `--spill-dir`",
            ),
        );
    }
    if has(&["no space left on device"]) {
        return explained(
            Family::DiskFull,
            "the disk is full (no space left on device)".into(),
            Some("free space, or point `--spill-dir`, the state dir or the sink at another disk"),
        );
    }
    if has(&["permission denied"]) {
        return explained(
            Family::PermissionDenied,
            format!("permission denied ({text})"),
            Some("check the permissions of the file or folder, and who runs etl"),
        );
    }
    explained(Family::Other, text.to_string(), None)
}

fn on(url: &Option<String>) -> String {
    url.as_ref().map(|u| format!(" at {u}")).unwrap_or_default()
}

/// A diagnostic with its engine text explained: the raw part of the message rewritten, and
/// a hint added when it has none.
pub fn polish(mut d: Diagnostic) -> Diagnostic {
    let start = MARKERS.iter().filter_map(|m| d.message.find(m)).min();
    // Without engine text, only an operating-system error is looked at (for a hint).
    if start.is_none() && !d.message.contains("(os error ") {
        return d;
    }
    let (head, raw) = match start {
        Some(i) => d.message.split_at(i),
        None => ("", d.message.as_str()),
    };
    let e = explain(raw);
    if start.is_some() {
        d.message = format!("{head}{}", e.message);
    }
    if d.help.is_none() && e.family != Family::Other {
        d.help = e.help;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(raw: &str) -> Family {
        explain(raw).family
    }

    #[test]
    fn s3_without_credentials() {
        let raw = "Object Store error: Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 1.7ms - Server returned non-2xx status code: 403 Forbidden: resolve_deny";
        let e = explain(raw);
        assert_eq!(e.family, Family::MissingCredentials);
        assert!(e.message.starts_with("no S3 credentials"), "{}", e.message);
        assert!(e.help.unwrap().contains("AWS_ACCESS_KEY_ID"));
        assert_eq!(
            family(
                "Generic GCS error: Error performing GET http://metadata.google.internal/computeMetadata/v1/..."
            ),
            Family::MissingCredentials
        );
    }

    #[test]
    fn store_refusals_and_missing_things() {
        let e = explain(
            "Object Store error: Generic S3 error: Error performing GET https://b.s3.amazonaws.com/x in 20ms - Server returned non-2xx status code: 403 Forbidden: <Code>AccessDenied</Code>",
        );
        assert_eq!(e.family, Family::AccessDenied);
        assert!(
            e.message.contains("at https://b.s3.amazonaws.com/x"),
            "{}",
            e.message
        );
        assert_eq!(
            family("Generic S3 error: ... <Code>NoSuchBucket</Code>"),
            Family::NoSuchBucket
        );
        let e = explain(
            "Object Store error: Object at location data/x.csv not found: No such file or directory (os error 2)",
        );
        assert_eq!(
            (e.family, e.message.as_str()),
            (Family::NotFound, "no such object: data/x.csv")
        );
    }

    #[test]
    fn unreachable_servers() {
        let e = explain(
            "Object Store error: Generic HTTP error: Error performing HEAD http://127.0.0.1:9/x.csv in 2.1s, after 10 retries, max_retries: 10, retry_timeout: 180s  - HTTP error: error sending request",
        );
        assert_eq!(e.family, Family::Unreachable);
        assert_eq!(
            e.message,
            "cannot reach the server at http://127.0.0.1:9/x.csv"
        );
    }

    #[test]
    fn data_errors() {
        let e = explain(
            "Arrow error: Json error: Not valid JSON: EOF while parsing a string at line 1 column 12",
        );
        assert_eq!(e.family, Family::InvalidJson);
        assert_eq!(e.message, "invalid JSON: EOF while parsing a string");
        assert_eq!(
            family(
                "Arrow error: Csv error: incorrect number of fields for line 3, expected 2 got 3"
            ),
            Family::CsvFields
        );
        assert_eq!(
            family("Arrow error: Cast error: Cannot cast string 'abc' to value of Int64 type"),
            Family::BadValue
        );
        let e = explain("Parquet error: Parquet error: Invalid Parquet file. Corrupt footer");
        assert_eq!(
            (e.family, e.message.as_str()),
            (
                Family::NotParquet,
                "not a Parquet file (its footer is missing or damaged)"
            )
        );
    }

    #[test]
    fn query_and_machine_limits() {
        assert_eq!(
            family("Arrow error: Divide by zero error"),
            Family::DivideByZero
        );
        assert_eq!(
            family(
                "Arrow error: Arithmetic overflow: Overflow happened on: 9223372036854775807 + 1"
            ),
            Family::Overflow
        );
        assert_eq!(
            family("Resources exhausted: Failed to allocate additional 1.0 MB for HashJoinInput"),
            Family::OutOfMemory
        );
        assert_eq!(
            family("IO error: No space left on device (os error 28)"),
            Family::DiskFull
        );
        assert_eq!(
            family("IO error: Permission denied (os error 13)"),
            Family::PermissionDenied
        );
        let e = explain("Error during planning: table 'x' not found");
        assert_eq!(
            (e.family, e.message.as_str()),
            (Family::Other, "table 'x' not found")
        );
    }

    #[test]
    fn polish_rewrites_the_raw_part_and_adds_help() {
        let d = polish(Diagnostic::error(
            "sink `o4`: Arrow error: Divide by zero error",
        ));
        assert_eq!(d.message, "sink `o4`: division by zero");
        assert!(d.help.unwrap().contains("NULLIF"));
        let kept = polish(
            Diagnostic::error("sink `o4`: Arrow error: Divide by zero error").with_help("own"),
        );
        assert_eq!(kept.help.as_deref(), Some("own"));
        let plain = polish(Diagnostic::error("something else"));
        assert_eq!(
            (plain.message.as_str(), plain.help),
            ("something else", None)
        );
    }
}
