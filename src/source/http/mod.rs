//! `type: http`: records from a REST API, as a DataFusion table.
//!
//! A source is one request, or one per item of `for_each` (the item's fields are in the
//! templates as `item`), each followed through its pages. The fetch happens once per run and
//! parameter set, whatever reads the table and however often: every response's records are
//! extracted (`records:` path, parallel arrays, flattening) into a spool file on disk as the
//! response arrives, so memory stays flat in the number of pages, and every scan of the
//! table decodes the spool into Arrow batches in parallel. With `land:`, each response body
//! is also kept as fetched (gzip), with a manifest, so a run can be replayed without the API
//! (`etl run --from-landed`).
//!
//! Modules: [`config`] (what the pipeline file says), `render` (per-item templates),
//! `client` (retries, backoff, `Retry-After`, rate limit, concurrency), `paginate`,
//! `extract` (records out of a body), `spool`, `land`, `fetch` (the whole fetch of a run),
//! `schema` (inference, declared types), `watermark` (the incremental parameter) and
//! `table` (the DataFusion table).

mod client;
pub mod config;
mod error;
mod extract;
mod fetch;
mod json_scan;
mod land;
mod paginate;
mod render;
mod schema;
mod spool;
mod table;
mod watermark;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use indexmap::IndexMap;

pub use config::HttpSourceSpec;
pub use error::HttpError;
pub use render::defers_rendering;

use super::SourceError;
use crate::connector::{
    BuildCx, Built, CheckCx, ReadStats, SourceConnector, SourceEntry, config_schema, parse_config,
};
use crate::spec::source::IncrementalSpec;
use fetch::{FetchKey, Fetched};

/// What a source keeps between the builds of one run: the requests rendered at validation,
/// and each fetch (by run and parameters), so the API is called once per run.
#[derive(Default)]
pub struct Runtime {
    resolved: Mutex<Option<Arc<render::Resolved>>>,
    fetches: Mutex<HashMap<FetchKey, Arc<Slot>>>,
}

/// One fetch of a run: its result once done, and its counters from the first request on
/// (a failed fetch still shows what it cost).
#[derive(Default)]
struct Slot {
    done: tokio::sync::OnceCell<Arc<Fetched>>,
    stats: Arc<fetch::Stats>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl HttpSourceSpec {
    fn resolved(&self, name: &str) -> Result<Arc<render::Resolved>, SourceError> {
        self.runtime
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| SourceError::Http {
                name: name.to_string(),
                error: HttpError::NotValidated,
            })
    }

    /// The fetch of this run with these parameters, made the first time it is asked for.
    async fn fetched(
        &self,
        cx: &BuildCx<'_>,
        resolved: &Arc<render::Resolved>,
        key: FetchKey,
    ) -> Result<Arc<Fetched>, SourceError> {
        let slot = {
            let mut all = self
                .runtime
                .fetches
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Fetches of earlier runs (a backfill runs the same pipeline several times).
            all.retain(|k, _| k.run_id == key.run_id);
            all.entry(key.clone()).or_default().clone()
        };
        let name = cx.source.name.clone();
        slot.done
            .get_or_try_init(|| async {
                fetch::run(cx, self, resolved, &key, slot.stats.clone())
                    .await
                    .map(Arc::new)
                    .map_err(|error| SourceError::Http {
                        name: name.clone(),
                        error,
                    })
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl SourceConnector for HttpSourceSpec {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn schema(&self) -> Option<&IndexMap<String, String>> {
        self.schema.as_ref()
    }
    fn incremental(&self) -> Option<&IncrementalSpec> {
        self.incremental.as_ref()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        config::check(self, cx);
        if let Some(resolved) = render::resolve(self, cx) {
            *self
                .runtime
                .resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(resolved));
        }
    }

    async fn build(&self, cx: &BuildCx<'_>) -> Result<Built, SourceError> {
        let resolved = self.resolved(&cx.source.name)?;
        let key = fetch::key(cx, self).await;
        let fetched = if cx.options.probe && (self.schema.is_some() || cx.options.from_landed) {
            // Only the schema is needed, and it is declared: call nothing.
            Arc::new(Fetched::empty())
        } else {
            self.fetched(cx, &resolved, key).await?
        };
        let table = table::HttpTable::new(cx, self, &resolved, fetched).map_err(|error| {
            SourceError::Http {
                name: cx.source.name.clone(),
                error,
            }
        })?;
        Ok(Built {
            table: Arc::new(table),
            bad_rows: None,
        })
    }

    fn check_replay(&self) -> Result<(), String> {
        if self.land.is_some() {
            Ok(())
        } else {
            Err("this source has no `land:`, so there is nothing to replay".into())
        }
    }

    fn read_stats(&self, run_id: &str) -> Option<ReadStats> {
        let all = self
            .runtime
            .fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let stats: Vec<Arc<fetch::Stats>> = all
            .iter()
            .filter(|(k, _)| k.run_id == run_id)
            .map(|(_, slot)| slot.stats.clone())
            .collect();
        fetch::summarize(&stats)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `type: http`.
pub const ENTRY: SourceEntry = SourceEntry {
    name: "http",
    aliases: &["rest"],
    parse: |node, path| Ok(Arc::new(parse_config::<HttpSourceSpec>(node, path)?)),
    schema: config_schema::<HttpSourceSpec>,
};
