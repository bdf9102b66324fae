//! What an HTTP source says in the pipeline file, and its static checks.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Runtime;
use crate::connector::CheckCx;
use crate::spec::source::IncrementalSpec;

/// An HTTP API source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceSpec {
    /// The URL to call (`{{ item.x }}` allowed with `for_each`). Query parameters may be
    /// written here or in `params`.
    pub url: String,
    /// `GET` (default) or `POST` (with `body:`, sent as JSON).
    #[serde(default)]
    pub method: Method,
    /// Query parameters (with `POST` and an object `body`, pagination and incremental
    /// parameters go into the body instead). A list value repeats the parameter.
    #[serde(default)]
    pub params: IndexMap<String, serde_json::Value>,
    /// Request headers (`Authorization: "Bearer {{ env('TOKEN') }}"`); values read with
    /// `env()` are masked in every message.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The JSON body of a `POST`.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// One request per item of this list (a var, `"{{ cities }}"`, or rows written here); the
    /// item is `item` in `url`, `params`, `headers` and `body` templates.
    #[serde(default)]
    pub for_each: Option<serde_json::Value>,
    /// Columns added from the item of each request: `output column: item field` (a dotted
    /// path into the item).
    #[serde(default)]
    pub item_columns: IndexMap<String, String>,
    /// At most this many requests in flight at once, shared by the fan-out and by page
    /// fetching (default 1). With `page` or `offset` pagination, up to this many pages of
    /// one request are fetched ahead at a time.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// The response format: `json` (default), `ndjson` (one record per line) or `csv`
    /// (with a header row).
    #[serde(default)]
    pub format: ResponseFormat,
    /// Where the records are in a JSON response: a dotted path (`data.items`) to a list of
    /// objects, or to an object of parallel arrays (`hourly: {time: [...], temp: [...]}`, one
    /// row per index). The whole body when absent.
    #[serde(default)]
    pub records: Option<String>,
    /// Nested objects become columns of their own (`main: {temp: 1}` → `main_temp`) instead
    /// of struct columns (default false).
    #[serde(default)]
    pub flatten: bool,
    /// What joins the names of flattened columns (default `_`).
    #[serde(default)]
    pub flatten_separator: Option<String>,
    /// How to get every page.
    #[serde(default)]
    pub paginate: Option<Paginate>,
    /// At most this many requests per second or minute, shared by every request of the
    /// source (retries included).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Retries of connection errors, timeouts, 429 and 5xx responses, with exponential
    /// backoff and jitter; a `Retry-After` header is honoured.
    #[serde(default)]
    pub retries: Option<Retries>,
    /// How long one request may take, body included (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Column names and SQL types of the records (after flattening); inferred from the first
    /// `infer_rows` records when absent. Declared columns are the ones read.
    #[serde(default)]
    pub schema: Option<IndexMap<String, String>>,
    /// How many records schema inference looks at (default 1000).
    #[serde(default)]
    pub infer_rows: Option<usize>,
    /// Keep every response body as fetched (gzip), with a manifest, below this folder or
    /// object-store URL: one folder per run.
    #[serde(default)]
    pub land: Option<Land>,
    /// Read only records past the last committed watermark; `param` passes the watermark to
    /// the API.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// What the source holds.
    #[serde(default)]
    pub description: Option<String>,
    /// What the source keeps between the builds of a run (not part of the file).
    #[serde(skip)]
    pub(super) runtime: Arc<Runtime>,
}

/// The HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Method {
    /// `GET`.
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    /// `POST`, with a JSON body.
    #[serde(rename = "POST", alias = "post")]
    Post,
}

impl Method {
    /// As written in HTTP.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// The format of the responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    /// One JSON document per response.
    #[default]
    Json,
    /// One JSON record per line.
    #[serde(alias = "jsonl")]
    Ndjson,
    /// CSV with a header row.
    Csv,
}

/// Pagination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Paginate {
    /// `page` (a page number, from 1), `offset` (a record offset, from 0, with `size`),
    /// `cursor` (a cursor from the body), `link_header` (`Link: <...>; rel="next"`) or
    /// `next_url` (the next page's URL in the body).
    #[serde(rename = "type")]
    pub kind: PaginateKind,
    /// The parameter carrying the page number (default `page`) or the offset (default
    /// `offset`).
    #[serde(default)]
    pub param: Option<String>,
    /// The parameter carrying the page size (`per_page`, `limit`; default `limit` for offset
    /// pagination), sent with `size`.
    #[serde(default)]
    pub size_param: Option<String>,
    /// Records per page (required for `offset`).
    #[serde(default)]
    pub size: Option<u64>,
    /// Cursor pagination: the dotted path of the next cursor in the body.
    #[serde(default)]
    pub cursor_path: Option<String>,
    /// Cursor pagination: the parameter the cursor is sent as (default `cursor`).
    #[serde(default)]
    pub cursor_param: Option<String>,
    /// `next_url` pagination: the dotted path of the next page's URL in the body.
    #[serde(default)]
    pub next_url_path: Option<String>,
    /// At most this many pages per request (a guard against endless pagination); the run
    /// summary says when it stopped there.
    #[serde(default)]
    pub max_pages: Option<u64>,
}

/// The pagination styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaginateKind {
    /// Page numbers from 1.
    Page,
    /// Record offsets from 0, in steps of `size`.
    Offset,
    /// A cursor taken from each body.
    Cursor,
    /// The `Link` header's `rel="next"` URL.
    LinkHeader,
    /// The next page's URL, taken from each body.
    NextUrl,
}

/// A request rate limit.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// How many requests.
    pub requests: u32,
    /// Per `second` (default), `minute` or `hour`.
    #[serde(default)]
    pub per: Per,
}

/// The window of a rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// A second.
    #[default]
    Second,
    /// A minute.
    Minute,
    /// An hour.
    Hour,
}

impl Per {
    /// The window's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        })
    }
}

/// Retry settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Retries after the first attempt (default 5; 0 turns retrying off).
    #[serde(default)]
    pub max: Option<u32>,
    /// The first wait (default `200ms`); each later one doubles, with jitter.
    #[serde(default)]
    pub initial_backoff: Option<String>,
    /// The longest wait (default `30s`). A `Retry-After` longer than this fails the request.
    #[serde(default)]
    pub max_backoff: Option<String>,
}

/// Where raw responses are kept.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Land {
    /// A folder (relative to the pipeline file) or an object-store URL; each run writes a
    /// folder below it.
    pub path: String,
    /// The connection holding object-store credentials, if not from the environment.
    #[serde(default)]
    pub connection: Option<String>,
}

/// Settings with their defaults applied, durations parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Per request.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// Requests per window, and the window.
    pub rate: Option<(u32, Duration)>,
}

/// Parses `30s`, `200ms`, `1m`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("`{t}` is not a duration (e.g. 30s, 200ms, 2m)"))
}

impl HttpSourceSpec {
    /// The settings, defaults applied (durations that do not parse fall back to their
    /// default; `check` reports them).
    pub fn settings(&self) -> Settings {
        let dur = |v: &Option<String>, d: Duration| {
            v.as_deref()
                .and_then(|t| parse_duration(t).ok())
                .unwrap_or(d)
        };
        let r = self.retries.as_ref();
        Settings {
            concurrency: self.concurrency.unwrap_or(1).max(1),
            timeout: dur(&self.timeout, Duration::from_secs(30)),
            max_retries: r.and_then(|r| r.max).unwrap_or(5),
            initial_backoff: dur(
                &r.and_then(|r| r.initial_backoff.clone()),
                Duration::from_millis(200),
            ),
            max_backoff: dur(
                &r.and_then(|r| r.max_backoff.clone()),
                Duration::from_secs(30),
            ),
            rate: self
                .rate_limit
                .as_ref()
                .map(|r| (r.requests.max(1), r.per.duration())),
        }
    }

    /// The flatten separator, when flattening.
    pub fn separator(&self) -> Option<String> {
        self.flatten.then(|| {
            self.flatten_separator
                .clone()
                .unwrap_or_else(|| "_".to_string())
        })
    }
}

/// Static checks of an HTTP source entry.
pub fn check(spec: &HttpSourceSpec, cx: &mut CheckCx<'_>) {
    if spec.url.trim().is_empty() {
        cx.error("url", "`url` is empty");
    }
    if spec.body.is_some() && spec.method == Method::Get {
        cx.error("body", "a `body` is sent with `method: POST`");
    }
    for (key, value) in [
        ("timeout", &spec.timeout),
        (
            "retries.initial_backoff",
            &spec
                .retries
                .as_ref()
                .and_then(|r| r.initial_backoff.clone()),
        ),
        (
            "retries.max_backoff",
            &spec.retries.as_ref().and_then(|r| r.max_backoff.clone()),
        ),
    ] {
        if let Some(Err(e)) = value.as_deref().map(parse_duration) {
            cx.error(key, e);
        }
    }
    if spec.concurrency == Some(0) {
        cx.error("concurrency", "`concurrency` is at least 1");
    }
    if spec.rate_limit.as_ref().is_some_and(|r| r.requests == 0) {
        cx.error("rate_limit.requests", "`requests` is at least 1");
    }
    if spec.format != ResponseFormat::Json && spec.records.is_some() {
        cx.error(
            "records",
            "`records` is a path into a JSON body; ndjson and csv responses are records already",
        );
    }
    if spec.format == ResponseFormat::Csv && spec.flatten {
        cx.error("flatten", "CSV records have no nested objects to flatten");
    }
    if !spec.item_columns.is_empty() && spec.for_each.is_none() {
        cx.error(
            "item_columns",
            "`item_columns` come from the items of `for_each`",
        );
    }
    if let Some(c) = spec.land.as_ref().and_then(|l| l.connection.as_ref()) {
        cx.require_connection(c, &["s3", "gcs", "azure"]);
    }
    if let Some(p) = &spec.paginate {
        check_paginate(p, spec.format, cx);
    }
    if let Some(inc) = &spec.incremental
        && inc.param.as_deref().is_some_and(|p| p.trim().is_empty())
    {
        cx.error("incremental.param", "`param` is empty");
    }
}

fn check_paginate(p: &Paginate, format: ResponseFormat, cx: &mut CheckCx<'_>) {
    let needs_body = matches!(p.kind, PaginateKind::Cursor | PaginateKind::NextUrl);
    if needs_body && format != ResponseFormat::Json {
        cx.error(
            "paginate.type",
            "cursor and next_url pagination read the JSON body; use page, offset or link_header with ndjson or csv",
        );
    }
    let unused = |key: &str, set: bool, cx: &mut CheckCx<'_>| {
        if set {
            cx.error(
                &format!("paginate.{key}"),
                format!("`{key}` does not apply to this pagination type"),
            );
        }
    };
    match p.kind {
        PaginateKind::Page => {
            if p.size_param.is_some() != p.size.is_some() {
                cx.error(
                    "paginate",
                    "`size_param` and `size` go together: the parameter and its value",
                );
            }
        }
        PaginateKind::Offset => {
            if p.size.is_none_or(|s| s == 0) {
                cx.error(
                    "paginate",
                    "offset pagination needs `size`: the offset grows by it from page to page",
                );
            }
        }
        PaginateKind::Cursor => {
            if p.cursor_path.is_none() {
                cx.error(
                    "paginate",
                    "cursor pagination needs `cursor_path`: where the next cursor is in the body",
                );
            }
        }
        PaginateKind::NextUrl => {
            if p.next_url_path.is_none() {
                cx.error(
                    "paginate",
                    "next_url pagination needs `next_url_path`: where the next page's URL is in the body",
                );
            }
        }
        PaginateKind::LinkHeader => {}
    }
    let counted = matches!(p.kind, PaginateKind::Page | PaginateKind::Offset);
    unused("param", p.param.is_some() && !counted, cx);
    unused(
        "size_param",
        p.size_param.is_some() && !counted && p.kind != PaginateKind::Cursor,
        cx,
    );
    unused(
        "cursor_path",
        p.cursor_path.is_some() && p.kind != PaginateKind::Cursor,
        cx,
    );
    unused(
        "cursor_param",
        p.cursor_param.is_some() && p.kind != PaginateKind::Cursor,
        cx,
    );
    unused(
        "next_url_path",
        p.next_url_path.is_some() && p.kind != PaginateKind::NextUrl,
        cx,
    );
    if p.max_pages == Some(0) {
        cx.error("paginate.max_pages", "`max_pages` is at least 1");
    }
}
