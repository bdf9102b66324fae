//! Following one request through its pages.
//!
//! Page-number and offset pagination know every page's parameters in advance, so a source
//! with a single request fetches up to `concurrency` pages at a time, keeping them in order:
//! pages after the first empty one are dropped, unread. Cursor, `Link` header and next-URL
//! pagination learn the next page from the last one, so they go one page at a time (a fan-out
//! over `for_each` items runs its requests concurrently instead). Every style stops at an
//! empty page, a missing cursor or link, or `max_pages`; a cursor or link seen twice is an
//! error rather than an endless loop.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde_json::json;

use super::client::{Prepared, Response};
use super::config::{Paginate, PaginateKind};
use super::error::{HttpError, mask};
use super::extract::Extracted;
use super::fetch::{Page, Shared};
use super::render::Request;

/// Every page of one request, in order.
pub async fn chain(sh: Arc<Shared>, req: Request) -> Result<Vec<Page>, HttpError> {
    match sh.paginate.clone() {
        None => {
            let prepared = Prepared::new(&req, &sh.base_params())?;
            let (resp, ex) = sh.get(prepared, req.item, 1).await?;
            let mut out = Vec::new();
            if ex.records > 0 {
                out.push(sh.publish(req.item, 1, &resp, ex).await?);
            }
            Ok(out)
        }
        Some(p) if matches!(p.kind, PaginateKind::Page | PaginateKind::Offset) => {
            numbered(sh, &req, &p).await
        }
        Some(p) => linked(sh, &req, &p).await,
    }
}

/// The parameters of page `k` (0-based) for page-number and offset pagination.
fn numbered_params(p: &Paginate, k: u64) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    match p.kind {
        PaginateKind::Offset => {
            let size = p.size.unwrap_or(1);
            out.push((
                p.param.clone().unwrap_or_else(|| "offset".into()),
                json!(k * size),
            ));
            out.push((
                p.size_param.clone().unwrap_or_else(|| "limit".into()),
                json!(size),
            ));
        }
        _ => {
            out.push((
                p.param.clone().unwrap_or_else(|| "page".into()),
                json!(k + 1),
            ));
            if let (Some(sp), Some(size)) = (&p.size_param, p.size) {
                out.push((sp.clone(), json!(size)));
            }
        }
    }
    out
}

/// A page's response and records, or why there are none.
type Fetched = Result<(Response, Extracted), HttpError>;

/// Aborts a spawned task when dropped (a failed page stops the pages fetched ahead).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn numbered(sh: Arc<Shared>, req: &Request, p: &Paginate) -> Result<Vec<Page>, HttpError> {
    let max = p.max_pages.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    // A sliding window: as soon as the oldest page is kept, the next one is asked for, so
    // `window` requests are in flight all the time (not in rounds that wait for the slowest).
    let mut in_flight: VecDeque<(u64, Task<Fetched>)> = VecDeque::new();
    let mut next = 0u64;
    loop {
        while in_flight.len() < sh.window && next < max {
            let mut extra = sh.base_params();
            extra.extend(numbered_params(p, next));
            let prepared = Prepared::new(req, &extra)?;
            let (sh2, item, number) = (sh.clone(), req.item, next + 1);
            in_flight.push_back((
                number,
                Task(tokio::spawn(async move {
                    sh2.get(prepared, item, number).await
                })),
            ));
            next += 1;
        }
        let Some((number, mut task)) = in_flight.pop_front() else {
            sh.note(format!(
                "request {}: stopped at max_pages ({max}); there may be more pages",
                req.item
            ));
            return Ok(out);
        };
        let (resp, ex) = (&mut task.0)
            .await
            .map_err(|e| HttpError::Task(e.to_string()))??;
        if ex.records == 0 {
            // The end; pages fetched ahead of it are dropped (their tasks abort).
            return Ok(out);
        }
        out.push(sh.publish(req.item, number, &resp, ex).await?);
    }
}

async fn linked(sh: Arc<Shared>, req: &Request, p: &Paginate) -> Result<Vec<Page>, HttpError> {
    let max = p.max_pages.unwrap_or(u64::MAX);
    let mut size = Vec::new();
    if let (Some(sp), Some(s)) = (&p.size_param, p.size) {
        size.push((sp.clone(), json!(s)));
    }
    let first: Vec<_> = sh.base_params().into_iter().chain(size.clone()).collect();
    let mut prepared = Prepared::new(req, &first)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for n in 1..=max {
        let (resp, ex) = sh.get(prepared.clone(), req.item, n).await?;
        if ex.records == 0 {
            return Ok(out);
        }
        let next = next_request(req, p, &prepared, &resp, &ex, &first)?;
        out.push(sh.publish(req.item, n, &resp, ex).await?);
        let Some((next, marker)) = next else {
            return Ok(out);
        };
        if !seen.insert(marker.clone()) {
            return Err(HttpError::Pagination {
                url: mask(resp.url.as_str()),
                reason: format!(
                    "the API gave the same next page twice ({}); stopping instead of looping",
                    mask(&marker)
                ),
            });
        }
        prepared = next;
    }
    sh.note(format!(
        "request {}: stopped at max_pages ({max}); there may be more pages",
        req.item
    ));
    Ok(out)
}

/// The next page's request and what identifies it (the cursor or URL), if there is one.
fn next_request(
    req: &Request,
    p: &Paginate,
    current: &Prepared,
    resp: &Response,
    ex: &Extracted,
    first: &[(String, serde_json::Value)],
) -> Result<Option<(Prepared, String)>, HttpError> {
    let link = match p.kind {
        PaginateKind::Cursor => {
            let Some(cursor) = ex.cursor.clone() else {
                return Ok(None);
            };
            let marker = super::client::param_text(&cursor);
            let mut extra = first.to_vec();
            extra.push((
                p.cursor_param.clone().unwrap_or_else(|| "cursor".into()),
                cursor,
            ));
            return Ok(Some((Prepared::new(req, &extra)?, marker)));
        }
        PaginateKind::LinkHeader => resp.link_next.clone(),
        _ => ex.next_url.clone(),
    };
    let Some(link) = link else {
        return Ok(None);
    };
    // Relative links are relative to the page they came from.
    let url = resp.url.join(&link).map_err(|e| HttpError::Pagination {
        url: mask(resp.url.as_str()),
        reason: format!("the next page's URL `{}` does not parse: {e}", mask(&link)),
    })?;
    Ok(Some((current.at(url.clone()), url.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: PaginateKind) -> Paginate {
        Paginate {
            kind,
            param: None,
            size_param: Some("per_page".into()),
            size: Some(50),
            cursor_path: None,
            cursor_param: None,
            next_url_path: None,
            max_pages: None,
        }
    }

    #[test]
    fn page_and_offset_parameters() {
        assert_eq!(
            numbered_params(&p(PaginateKind::Page), 0),
            vec![("page".into(), json!(1)), ("per_page".into(), json!(50))]
        );
        assert_eq!(
            numbered_params(&p(PaginateKind::Offset), 2),
            vec![
                ("offset".into(), json!(100)),
                ("per_page".into(), json!(50))
            ]
        );
    }
}
