//! What can go wrong reading an HTTP source. Every URL in a message has its secrets
//! masked when the error is made, not only when it is printed.

/// An HTTP source failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A response status that is not retried (a 4xx other than 429), or a retried one after
    /// the last retry.
    #[error("{method} {url} → {status}{}{}", attempts_text(*attempts), body_text(body))]
    Status {
        /// GET or POST.
        method: &'static str,
        /// The URL, secrets masked.
        url: String,
        /// The status line (`404 Not Found`).
        status: String,
        /// How many attempts were made.
        attempts: u32,
        /// The start of the body, secrets masked.
        body: String,
    },
    /// A request that could not be made or finished (connection refused or reset, timeout),
    /// after the last retry.
    #[error("{method} {url}: {reason}{}", attempts_text(*attempts))]
    Transport {
        /// GET or POST.
        method: &'static str,
        /// The URL, secrets masked.
        url: String,
        /// Why.
        reason: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The API asked to wait longer than `retries.max_backoff`.
    #[error(
        "{method} {url} → {status}: the API asks to retry after {wait_secs}s (Retry-After), longer than `retries.max_backoff` ({max_secs}s)"
    )]
    RetryAfterTooLong {
        /// GET or POST.
        method: &'static str,
        /// The URL, secrets masked.
        url: String,
        /// The status line.
        status: String,
        /// The wait asked for, in seconds.
        wait_secs: u64,
        /// The longest wait allowed, in seconds.
        max_secs: u64,
    },
    /// A request that cannot be built (a bad URL, header or parameter).
    #[error("cannot build the request {url}: {reason}")]
    Request {
        /// The URL, secrets masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// A body that is not the format it should be.
    #[error("{url}: {reason}{}", landed_text(landed))]
    Body {
        /// The URL of the response, secrets masked.
        url: String,
        /// Why, with the byte offset for malformed JSON.
        reason: String,
        /// Where the body was landed, if it was.
        landed: Option<String>,
    },
    /// Pagination that would not end (the same cursor or next URL twice).
    #[error("{url}: {reason}")]
    Pagination {
        /// The URL of the response, secrets masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The spool file could not be written or read.
    #[error("cannot use a temporary file for the responses: {0}")]
    Spool(#[source] std::io::Error),
    /// The landing place could not be written.
    #[error("cannot land the responses at {path}: {reason}")]
    Land {
        /// The landing folder or URL.
        path: String,
        /// Why.
        reason: String,
    },
    /// Nothing to replay, or a landing that cannot be read.
    #[error("cannot replay from {path}: {reason}")]
    Replay {
        /// The landing folder or URL.
        path: String,
        /// Why.
        reason: String,
    },
    /// The columns cannot be made (no records to infer them from, a name used twice).
    #[error("{0}")]
    Schema(String),
    /// Records that do not fit the schema.
    #[error("{url}: {reason}")]
    Decode {
        /// The URL of the response, secrets masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// A fetching task died (a panic).
    #[error("a fetching task failed: {0}")]
    Task(String),
    /// A build before validation (a bug: validation renders the requests).
    #[error("the source was not validated before it was built")]
    NotValidated,
}

fn attempts_text(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

fn body_text(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

fn landed_text(landed: &Option<String>) -> String {
    landed
        .as_ref()
        .map(|l| format!(" (the body is kept at {l})"))
        .unwrap_or_default()
}

/// A URL with its secrets masked.
pub fn mask(url: &str) -> String {
    crate::secrets::redact(url).into_owned()
}

/// The first `max` characters of a body as text, secrets masked.
pub fn body_start(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max * 4)]);
    let mut start: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        start.push('…');
    }
    let one_line: String = start
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    mask(&one_line)
}
