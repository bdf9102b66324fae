//! The fetch of one run: every request of the source (up to `concurrency` at once), each
//! through its pages, the records spooled and the bodies landed as they arrive; or, with
//! `--from-landed`, the newest complete landing read back instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use super::client::{Client, Prepared, Response};
use super::config::{HttpSourceSpec, Paginate, ResponseFormat};
use super::error::{HttpError, mask};
use super::extract::{ExtractError, Extracted, Extractor, path};
use super::land::{self, LandDir, Lander};
use super::render::{Request, Resolved};
use super::spool::{Span, Spool};
use crate::connector::{BuildCx, ReadStats};

/// Which fetch: a run, the value of the incremental parameter, and live or replayed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// The run.
    pub run_id: String,
    /// The watermark sent as `incremental.param`, as text.
    pub param: Option<String>,
    /// From the landing zone instead of the API.
    pub replay: bool,
}

/// What a fetch cost and did, for the run summary.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent (retries included).
    pub requests: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
    /// Body bytes received (or read back from the landing).
    pub bytes: AtomicU64,
    /// Pages with records.
    pub pages: AtomicU64,
    /// Records.
    pub records: AtomicU64,
    /// Things worth saying (a `max_pages` stop).
    pub notes: Mutex<Vec<String>>,
    /// Where the bodies were landed.
    pub landed: Mutex<Option<String>>,
    /// Where they were replayed from.
    pub replayed: Mutex<Option<String>>,
}

/// One page of records in the spool.
#[derive(Debug, Clone)]
pub struct Page {
    /// Where its records are.
    pub span: Span,
    /// The item (request) it belongs to.
    pub item: usize,
    /// How many records.
    pub records: usize,
    /// Where it came from (secrets masked), for messages.
    pub url: Arc<str>,
}

/// A finished fetch.
#[derive(Debug)]
pub struct Fetched {
    /// The records (none for a fetch that made no request).
    pub spool: Option<Arc<Spool>>,
    /// The pages, in order of item, then page.
    pub pages: Vec<Page>,
    /// The items, for `item_columns`.
    pub items: Option<Arc<Vec<serde_json::Value>>>,
    /// The header of CSV responses.
    pub csv_header: Option<Vec<String>>,
}

impl Fetched {
    /// Nothing fetched (the schema is declared and only the schema is needed).
    pub fn empty() -> Self {
        Self {
            spool: None,
            pages: Vec::new(),
            items: None,
            csv_header: None,
        }
    }
}

/// What every task of a fetch shares.
pub struct Shared {
    pub(super) client: Client,
    extractor: Extractor,
    spool: Arc<Spool>,
    lander: Option<Lander>,
    pub(super) paginate: Option<Paginate>,
    /// Pages of one request fetched ahead at once (page and offset pagination).
    pub(super) window: usize,
    stats: Arc<Stats>,
    source: String,
    ext: &'static str,
    incremental: Option<(String, serde_json::Value)>,
    csv_header: Mutex<Option<Vec<String>>>,
}

impl Shared {
    /// The parameters every request of the source carries (the incremental watermark).
    pub fn base_params(&self) -> Vec<(String, serde_json::Value)> {
        self.incremental.iter().cloned().collect()
    }

    /// Records something for the run summary.
    pub fn note(&self, text: String) {
        self.stats
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }

    /// Sends a request and reads its records (not yet kept). A body that cannot be read is
    /// landed anyway, so nothing the API sent is lost.
    pub async fn get(
        &self,
        prepared: Prepared,
        item: usize,
        page: u64,
    ) -> Result<(Response, Extracted), HttpError> {
        let resp = self.client.send(&prepared).await?;
        let (ex, body) = (self.extractor.clone(), resp.body.clone());
        let extracted = tokio::task::spawn_blocking(move || ex.extract(&body))
            .await
            .map_err(|e| HttpError::Task(e.to_string()))?;
        match extracted {
            Ok(x) => Ok((resp, x)),
            Err(e) => Err(self.body_error(&resp, item, page, e).await),
        }
    }

    async fn body_error(
        &self,
        resp: &Response,
        item: usize,
        page: u64,
        e: ExtractError,
    ) -> HttpError {
        let url = mask(resp.url.as_str());
        let landed = match &self.lander {
            Some(l) => l
                .land(&self.source, self.ext, item, page, &url, resp.body.clone())
                .await
                .ok(),
            None => None,
        };
        HttpError::Body {
            url,
            reason: e.to_string(),
            landed,
        }
    }

    /// Keeps a page: its records into the spool, its body into the landing zone.
    pub async fn publish(
        &self,
        item: usize,
        page: u64,
        resp: &Response,
        ex: Extracted,
    ) -> Result<Page, HttpError> {
        let url = mask(resp.url.as_str());
        if let Some(h) = &ex.csv_header {
            let mut first = self.csv_header.lock().unwrap_or_else(|e| e.into_inner());
            match first.as_ref() {
                None => *first = Some(h.clone()),
                Some(f) if f != h => {
                    return Err(HttpError::Body {
                        url,
                        reason: format!(
                            "the CSV header ({}) differs from the first page's ({})",
                            h.join(","),
                            f.join(",")
                        ),
                        landed: None,
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(l) = &self.lander {
            l.land(&self.source, self.ext, item, page, &url, resp.body.clone())
                .await?;
        }
        let span = self.spool.append(&ex.out).map_err(HttpError::Spool)?;
        self.stats.pages.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records
            .fetch_add(ex.records as u64, Ordering::Relaxed);
        Ok(Page {
            span,
            item,
            records: ex.records,
            url: url.into(),
        })
    }
}

fn format_name(f: ResponseFormat) -> &'static str {
    match f {
        ResponseFormat::Json => "json",
        ResponseFormat::Ndjson => "ndjson",
        ResponseFormat::Csv => "csv",
    }
}

fn extractor(spec: &HttpSourceSpec) -> Extractor {
    let p = spec.paginate.as_ref();
    Extractor {
        format: spec.format,
        records: path(spec.records.as_deref()),
        flatten: spec.separator(),
        cursor_path: p
            .and_then(|p| p.cursor_path.as_deref())
            .map(|c| path(Some(c))),
        next_url_path: p
            .and_then(|p| p.next_url_path.as_deref())
            .map(|c| path(Some(c))),
    }
}

/// Fetches (or replays) everything a source reads in a run.
pub async fn run(
    cx: &BuildCx<'_>,
    spec: &HttpSourceSpec,
    resolved: &Resolved,
    key: &FetchKey,
    stats: Arc<Stats>,
) -> Result<Fetched, HttpError> {
    let spill = cx
        .ctx
        .runtime_env()
        .disk_manager
        .temp_dir_paths()
        .first()
        .cloned();
    let spool = Arc::new(Spool::create(spill.as_deref()).map_err(HttpError::Spool)?);
    if key.replay {
        return replay(cx, spec, resolved, spool, stats).await;
    }
    let settings = spec.settings();
    let client = Client::new(settings.clone(), stats.clone())?;
    let probe = cx.options.probe;
    let lander = match (&resolved.land, probe) {
        (Some(base), false) => Some(open_lander(cx, spec, base)?),
        _ => None,
    };
    let requests: Vec<Request> = if probe {
        resolved.requests.iter().take(1).cloned().collect()
    } else {
        resolved.requests.clone()
    };
    let sh = Arc::new(Shared {
        client,
        extractor: extractor(spec),
        spool: spool.clone(),
        lander,
        // A probe reads one page: enough to learn the columns.
        paginate: if probe { None } else { spec.paginate.clone() },
        window: if requests.len() == 1 {
            settings.concurrency
        } else {
            1
        },
        stats: stats.clone(),
        source: cx.source.name.clone(),
        ext: format_name(spec.format),
        incremental: spec
            .incremental
            .as_ref()
            .and_then(|i| i.param.clone())
            .zip(key.param.clone().map(serde_json::Value::String)),
        csv_header: Mutex::new(None),
    });
    let result = fan_out(&sh, &requests, settings.concurrency).await;
    if let Some(l) = &sh.lander {
        l.finish(&sh.source, sh.ext, &resolved.items, result.as_ref().err())
            .await?;
        *stats.landed.lock().unwrap_or_else(|e| e.into_inner()) = Some(l.dir.shown());
    }
    let pages = result?;
    let csv_header = sh
        .csv_header
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Fetched {
        spool: Some(spool),
        pages,
        items: Some(resolved.items.clone()),
        csv_header,
    })
}

fn open_lander(cx: &BuildCx<'_>, spec: &HttpSourceSpec, base: &str) -> Result<Lander, HttpError> {
    let conn = spec
        .land
        .as_ref()
        .and_then(|l| l.connection.as_deref())
        .and_then(|c| crate::source::pipeline_connection(cx.pipeline, c));
    crate::store::ensure_store(cx.ctx, base, conn).map_err(|e| HttpError::Land {
        path: base.to_string(),
        reason: e.to_string(),
    })?;
    let started = chrono::Utc::now();
    let run_id = cx.pipeline.run_id.clone();
    let dir =
        LandDir::open(cx.ctx, base, &land::run_folder(&run_id, started)).map_err(|reason| {
            HttpError::Land {
                path: base.to_string(),
                reason,
            }
        })?;
    Ok(Lander {
        dir,
        run_id,
        started,
        pages: Mutex::new(Vec::new()),
    })
}

/// Runs every request's pagination, at most `concurrency` requests at once; the pages come
/// back in item order. The first failure stops the others.
async fn fan_out(
    sh: &Arc<Shared>,
    requests: &[Request],
    concurrency: usize,
) -> Result<Vec<Page>, HttpError> {
    let mut results: Vec<Option<Vec<Page>>> = vec![None; requests.len()];
    let mut set = JoinSet::new();
    let mut next = 0;
    while next < requests.len() || !set.is_empty() {
        while next < requests.len() && set.len() < concurrency {
            let (sh, req, i) = (sh.clone(), requests[next].clone(), next);
            set.spawn(async move { (i, super::paginate::chain(sh, req).await) });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok((i, Ok(pages)))) => results[i] = Some(pages),
            Some(Ok((_, Err(e)))) => return Err(e),
            Some(Err(e)) => return Err(HttpError::Task(e.to_string())),
            None => break,
        }
    }
    Ok(results.into_iter().flatten().flatten().collect())
}

/// Reads the newest complete landing back, as if the API had sent it again.
async fn replay(
    cx: &BuildCx<'_>,
    spec: &HttpSourceSpec,
    resolved: &Resolved,
    spool: Arc<Spool>,
    stats: Arc<Stats>,
) -> Result<Fetched, HttpError> {
    let base = resolved.land.clone().ok_or_else(|| HttpError::Replay {
        path: String::new(),
        reason: "the source has no `land:`".into(),
    })?;
    let err = |reason: String| HttpError::Replay {
        path: base.clone(),
        reason,
    };
    let conn = spec
        .land
        .as_ref()
        .and_then(|l| l.connection.as_deref())
        .and_then(|c| crate::source::pipeline_connection(cx.pipeline, c));
    crate::store::ensure_store(cx.ctx, &base, conn).map_err(|e| err(e.to_string()))?;
    let (dir, manifest) = land::latest(cx.ctx, &base, &cx.source.name)
        .await
        .map_err(err)?;
    let extractor = extractor(spec);
    let mut pages = Vec::new();
    let mut csv_header = None;
    for lp in &manifest.pages {
        let raw = land::gunzip(&dir.get(&lp.file).await.map_err(err)?).map_err(err)?;
        stats.bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
        let ex = extractor.extract(&raw).map_err(|e| HttpError::Body {
            url: lp.url.clone(),
            reason: e.to_string(),
            landed: Some(format!("{}/{}", dir.shown(), lp.file)),
        })?;
        if csv_header.is_none() {
            csv_header = ex.csv_header.clone();
        }
        let span = spool.append(&ex.out).map_err(HttpError::Spool)?;
        stats.pages.fetch_add(1, Ordering::Relaxed);
        pages.push(Page {
            span,
            item: lp.item,
            records: ex.records,
            url: lp.url.as_str().into(),
        });
    }
    *stats.replayed.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.shown());
    Ok(Fetched {
        spool: Some(spool),
        pages,
        items: Some(Arc::new(manifest.items)),
        csv_header,
    })
}

/// The fetch key of a build: the run, and the watermark the request carries.
pub async fn key(cx: &BuildCx<'_>, spec: &HttpSourceSpec) -> FetchKey {
    let param = match spec.incremental.as_ref() {
        Some(inc) if inc.param.is_some() && !cx.options.probe => {
            super::watermark::param(cx, inc).await
        }
        _ => None,
    };
    FetchKey {
        run_id: cx.pipeline.run_id.clone(),
        param,
        replay: cx.options.from_landed,
    }
}

/// The run summary's line for a source: requests, retries, bytes, and notes.
pub fn summarize(all: &[Arc<Stats>]) -> Option<ReadStats> {
    if all.is_empty() {
        return None;
    }
    let sum = |f: fn(&Stats) -> &AtomicU64| -> u64 {
        all.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
    };
    let (requests, retries, pages) = (sum(|s| &s.requests), sum(|s| &s.retries), sum(|s| &s.pages));
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    let replayed: Vec<String> = all
        .iter()
        .filter_map(|s| s.replayed.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    if let Some(from) = replayed.first() {
        parts.push(format!(
            "replayed {} from {from}",
            plural(pages, "page", "pages")
        ));
    } else {
        parts.push(format!(
            "{}, {}, {}",
            plural(requests, "request", "requests"),
            plural(retries, "retry", "retries"),
            plural(pages, "page", "pages")
        ));
    }
    for s in all {
        if let Some(l) = s.landed.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            parts.push(format!("landed at {l}"));
        }
        parts.extend(
            s.notes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
    }
    Some(ReadStats {
        bytes: sum(|s| &s.bytes),
        detail: parts.join("; "),
    })
}
