//! Sending requests: retries with exponential backoff and jitter, `Retry-After`, a rate
//! limit and a bound on requests in flight, all shared by every request of a source.
//!
//! Retried: connection errors (refused, reset, broken off mid-body), timeouts, 429 and 5xx
//! responses. Any other 4xx fails at once, naming the status, the URL (secrets masked) and
//! the start of the body.

use std::collections::VecDeque;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::config::{Method, Settings};
use super::error::{HttpError, body_start, mask};
use super::fetch::Stats;
use super::render::Request;

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// GET or POST.
    pub method: Method,
    /// The URL with its query.
    pub url: url::Url,
    /// Headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Option<Vec<u8>>,
}

impl Prepared {
    /// The request with the pagination or incremental parameters `extra` added: to the
    /// query, or to the body of a POST with an object body.
    pub fn new(req: &Request, extra: &[(String, serde_json::Value)]) -> Result<Self, HttpError> {
        let bad = |reason: String| HttpError::Request {
            url: mask(&req.url),
            reason,
        };
        let mut url = url::Url::parse(&req.url).map_err(|e| bad(e.to_string()))?;
        let mut body = req.body.clone();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &req.params {
                q.append_pair(k, v);
            }
            for (k, v) in extra {
                match &mut body {
                    Some(serde_json::Value::Object(map)) if req.method == Method::Post => {
                        map.insert(k.clone(), v.clone());
                    }
                    _ => {
                        q.append_pair(k, &param_text(v));
                    }
                }
            }
        }
        // `query_pairs_mut` leaves a bare `?` behind when nothing was added.
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("`{k}` is not a header name")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                bad(format!(
                    "the value of header `{k}` is not valid in a header"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(Self {
            method: req.method,
            url,
            headers,
            body: body.map(|b| serde_json::to_vec(&b).unwrap_or_default()),
        })
    }

    /// The same request sent to another URL (a next-page link), headers and body kept.
    pub fn at(&self, url: url::Url) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }

    /// The URL for messages, secrets masked.
    pub fn shown(&self) -> String {
        mask(self.url.as_str())
    }
}

/// A parameter value as text (strings without their quotes).
pub fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A successful response.
#[derive(Debug)]
pub struct Response {
    /// The URL it came from (after redirects).
    pub url: url::Url,
    /// The `Link: <...>; rel="next"` target, if any.
    pub link_next: Option<String>,
    /// The body as received.
    pub body: Bytes,
}

/// Why one attempt failed.
enum Failure {
    /// Try again (after `retry_after`, if the server said).
    Retry {
        error: HttpError,
        retry_after: Option<Duration>,
        status: Option<String>,
    },
    /// Do not try again.
    Fatal(HttpError),
}

/// Sends the requests of one source.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    limiter: Option<RateLimiter>,
    permits: tokio::sync::Semaphore,
    stats: Arc<Stats>,
}

impl Client {
    /// A client with these settings, counting into `stats`.
    pub fn new(settings: Settings, stats: Arc<Stats>) -> Result<Self, HttpError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("etl/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(settings.concurrency)
            .build()
            .map_err(|e| HttpError::Request {
                url: String::new(),
                reason: chain(&e),
            })?;
        Ok(Self {
            http,
            limiter: settings
                .rate
                .map(|(n, per)| RateLimiter::new(n as usize, per)),
            permits: tokio::sync::Semaphore::new(settings.concurrency),
            settings,
            stats,
        })
    }

    /// Sends a request, retrying what is worth retrying.
    pub async fn send(&self, req: &Prepared) -> Result<Response, HttpError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = {
                let _permit = self.permits.acquire().await;
                if let Some(l) = &self.limiter {
                    l.acquire().await;
                }
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.once(req, attempt).await
            };
            let (error, retry_after, status) = match outcome {
                Ok(r) => return Ok(r),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry {
                    error,
                    retry_after,
                    status,
                }) => (error, retry_after, status),
            };
            if attempt > self.settings.max_retries {
                return Err(error);
            }
            let mut wait = self.backoff(attempt);
            if let Some(ra) = retry_after {
                if ra > self.settings.max_backoff {
                    return Err(HttpError::RetryAfterTooLong {
                        method: req.method.as_str(),
                        url: req.shown(),
                        status: status.unwrap_or_default(),
                        wait_secs: ra.as_secs(),
                        max_secs: self.settings.max_backoff.as_secs(),
                    });
                }
                wait = wait.max(ra);
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(url = %req.shown(), attempt, wait_ms = wait.as_millis() as u64, error = %error, "request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt.
    async fn once(&self, req: &Prepared, attempt: u32) -> Result<Response, Failure> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self
            .http
            .request(method, req.url.clone())
            .headers(req.headers.clone());
        if let Some(b) = &req.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone());
        }
        let transport = |e: reqwest::Error| {
            let error = HttpError::Transport {
                method: req.method.as_str(),
                url: req.shown(),
                reason: describe(&e, self.settings.timeout),
                attempts: attempt,
            };
            if e.is_builder() {
                Failure::Fatal(error)
            } else {
                Failure::Retry {
                    error,
                    retry_after: None,
                    status: None,
                }
            }
        };
        let resp = builder.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let link_next = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let url = resp.url().clone();
        let body = resp.bytes().await.map_err(transport)?;
        self.stats
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        if status.is_success() {
            return Ok(Response {
                url,
                link_next,
                body,
            });
        }
        let shown = status.to_string();
        let error = HttpError::Status {
            method: req.method.as_str(),
            url: req.shown(),
            status: shown.clone(),
            attempts: attempt,
            body: body_start(&body, 300),
        };
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(Failure::Retry {
                error,
                retry_after,
                status: Some(shown),
            })
        } else {
            Err(Failure::Fatal(error))
        }
    }

    /// The wait before retry `attempt` (1-based): the initial backoff doubling up to the
    /// longest, then between half of it and all of it (jitter, so clients that failed
    /// together do not retry together).
    fn backoff(&self, attempt: u32) -> Duration {
        let s = &self.settings;
        let base = s
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(s.max_backoff);
        let half = base / 2;
        half + half.mul_f64(random_unit())
    }
}

/// A uniform random number in [0, 1).
fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// A request error's reason, without its URL (the caller shows it, masked).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response broke off"
    } else {
        "the request failed"
    };
    let detail = chain(e);
    if detail.is_empty() {
        what.to_string()
    } else {
        mask(&format!("{what}: {detail}"))
    }
}

/// The causes of an error, innermost last, without the URL reqwest adds to its own text.
fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// The `rel="next"` target of a `Link` header value.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        is_next.then(|| target.to_string())
    })
}

/// At most `n` requests in any window of `per`: a request waits until the oldest of the
/// last `n` is older than the window.
struct RateLimiter {
    n: usize,
    per: Duration,
    sent: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    fn new(n: usize, per: Duration) -> Self {
        Self {
            n: n.max(1),
            // A little slack, so requests that reach the server a moment apart from when
            // they left still fall in separate windows there.
            per: per + per / 50,
            sent: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }

    async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.per)
            {
                sent.pop_front();
            }
            if sent.len() < self.n {
                sent.push_back(now);
                return;
            }
            let oldest = sent[0];
            tokio::time::sleep(self.per.saturating_sub(now.duration_since(oldest))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_retry_after() {
        let h =
            r#"<https://api.x/items?page=1>; rel="prev", <https://api.x/items?page=3>; rel="next""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api.x/items?page=3"));
        assert_eq!(next_link(r#"<https://a/>; rel="last""#), None);
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn extra_parameters_go_to_the_query_or_a_post_body() {
        let req = Request {
            item: 0,
            method: Method::Get,
            url: "http://h/p?a=1".into(),
            params: vec![("b".into(), "x y".into())],
            headers: vec![],
            body: None,
        };
        let p = Prepared::new(&req, &[("page".into(), serde_json::json!(2))]).unwrap();
        assert_eq!(p.url.as_str(), "http://h/p?a=1&b=x+y&page=2");
        let post = Request {
            method: Method::Post,
            body: Some(serde_json::json!({"q": "s"})),
            ..req
        };
        let p = Prepared::new(&post, &[("page".into(), serde_json::json!(2))]).unwrap();
        assert_eq!(p.body.unwrap(), br#"{"q":"s","page":2}"#.to_vec());
    }

    #[tokio::test]
    async fn the_rate_limiter_spaces_requests_into_windows() {
        let l = RateLimiter::new(2, Duration::from_millis(100));
        let t = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        // 5 requests, 2 per window: the fifth waits for two windows to pass.
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }
}
