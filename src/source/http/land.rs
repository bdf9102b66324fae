//! The landing zone: every response body as fetched (gzip), in one folder per run below
//! `land.path`, with a manifest written last; and reading the newest complete one back for
//! `etl run --from-landed`.
//!
//! ```text
//! raw/weather/2024-06-01/                  land.path
//!   20240601T101500Z-1a2b3c4d/             one folder per run: start time (UTC), run id
//!     weather-00000-00001.json.gz          item 0, page 1, as the API sent it
//!     weather.manifest.json                items, pages, URLs (secrets masked), complete?
//! ```

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::prelude::SessionContext;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::error::{HttpError, mask};

/// What a landing folder holds for one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The source.
    pub source: String,
    /// The run that fetched it.
    pub run_id: String,
    /// When fetching started, UTC.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// Every page was fetched (a failed fetch lands what it got, and says so here).
    pub complete: bool,
    /// Why it stopped, when it failed (secrets masked).
    #[serde(default)]
    pub error: Option<String>,
    /// `json`, `ndjson` or `csv`.
    pub format: String,
    /// The items of `for_each` (`null` without it), for `item_columns` on replay.
    pub items: Vec<serde_json::Value>,
    /// The pages with records, in order.
    pub pages: Vec<LandedPage>,
}

/// One landed response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandedPage {
    /// The file, in the run's folder.
    pub file: String,
    /// The item's index.
    pub item: usize,
    /// The page number (1-based).
    pub page: u64,
    /// The URL it came from (secrets masked).
    pub url: String,
    /// Bytes as received.
    pub bytes: u64,
}

/// A run's landing folder, local or in an object store.
#[derive(Debug, Clone)]
pub enum LandDir {
    /// A local folder.
    Local(PathBuf),
    /// A prefix in an object store.
    Store {
        /// The store.
        store: Arc<dyn ObjectStore>,
        /// The prefix.
        prefix: ObjPath,
        /// The URL, for messages.
        url: String,
    },
}

impl LandDir {
    /// The folder `name` below `base` (a local folder or a URL whose store is registered).
    pub fn open(ctx: &SessionContext, base: &str, name: &str) -> Result<Self, String> {
        if crate::validate::is_url(base) {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            let (store, prefix) = crate::sink::objstore::store_of(ctx, &url)
                .ok_or_else(|| format!("no object store for {url}"))?;
            Ok(Self::Store { store, prefix, url })
        } else {
            Ok(Self::Local(PathBuf::from(base).join(name)))
        }
    }

    /// Where it is, for messages.
    pub fn shown(&self) -> String {
        match self {
            Self::Local(p) => p.display().to_string(),
            Self::Store { url, .. } => url.clone(),
        }
    }

    /// Writes a file into the folder.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Self::Local(dir) => {
                let (dir, name) = (dir.clone(), name.to_string());
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    let tmp = dir.join(format!(".{name}.tmp"));
                    std::fs::write(&tmp, &bytes)?;
                    std::fs::rename(&tmp, dir.join(&name))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            Self::Store { store, prefix, .. } => store
                .put(&prefix.clone().join(name), bytes.into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Reads a file of the folder.
    pub async fn get(&self, name: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Local(dir) => std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}")),
            Self::Store { store, prefix, .. } => {
                let r = store
                    .get(&prefix.clone().join(name))
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(r.bytes().await.map_err(|e| e.to_string())?.to_vec())
            }
        }
    }
}

/// The folder name of a run: its start time (so names sort by time) and its id.
pub fn run_folder(run_id: &str, started: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%SZ"),
        run_id.chars().take(8).collect::<String>()
    )
}

/// The file name of a page.
pub fn page_file(source: &str, item: usize, page: u64, ext: &str) -> String {
    format!("{source}-{item:05}-{page:05}.{ext}.gz")
}

/// The manifest's file name.
pub fn manifest_file(source: &str) -> String {
    format!("{source}.manifest.json")
}

/// The newest complete landing of `source` below `base`.
pub async fn latest(
    ctx: &SessionContext,
    base: &str,
    source: &str,
) -> Result<(LandDir, Manifest), String> {
    let mut folders = list_folders(ctx, base).await?;
    folders.sort();
    let mut incomplete = 0;
    for name in folders.iter().rev() {
        let dir = LandDir::open(ctx, base, name)?;
        let Ok(bytes) = dir.get(&manifest_file(source)).await else {
            continue;
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: a manifest that does not parse: {e}", dir.shown()))?;
        if m.complete {
            return Ok((dir, m));
        }
        incomplete += 1;
    }
    Err(if incomplete > 0 {
        format!(
            "no complete landing of source `{source}` ({incomplete} incomplete ones: their fetch failed)"
        )
    } else {
        format!("no landing of source `{source}` (run without --from-landed first)")
    })
}

async fn list_folders(ctx: &SessionContext, base: &str) -> Result<Vec<String>, String> {
    if !crate::validate::is_url(base) {
        let entries = match std::fs::read_dir(base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        return Ok(entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect());
    }
    let (store, prefix) =
        crate::sink::objstore::store_of(ctx, &format!("{}/", base.trim_end_matches('/')))
            .ok_or_else(|| format!("no object store for {base}"))?;
    let listed = store
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(|e| e.to_string())?;
    Ok(listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
}

/// Compresses a body for landing.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decompresses a landed body.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("damaged gzip: {e}"))?;
    Ok(out)
}

/// Writes bodies and the manifest into a run's landing folder.
pub struct Lander {
    pub(super) dir: LandDir,
    pub(super) run_id: String,
    pub(super) started: chrono::DateTime<chrono::Utc>,
    pub(super) pages: Mutex<Vec<LandedPage>>,
}

impl Lander {
    /// Lands one body; returns where it went.
    pub async fn land(
        &self,
        source: &str,
        ext: &str,
        item: usize,
        page: u64,
        url: &str,
        body: Bytes,
    ) -> Result<String, HttpError> {
        let file = page_file(source, item, page, ext);
        let bytes = body.len() as u64;
        let gz = tokio::task::spawn_blocking(move || gzip(&body))
            .await
            .map_err(|e| HttpError::Task(e.to_string()))?;
        self.dir
            .put(&file, gz)
            .await
            .map_err(|reason| HttpError::Land {
                path: self.dir.shown(),
                reason,
            })?;
        self.pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(LandedPage {
                file: file.clone(),
                item,
                page,
                url: url.to_string(),
                bytes,
            });
        Ok(format!("{}/{file}", self.dir.shown()))
    }

    /// Writes the manifest (last: a landing is complete once it is there).
    pub async fn finish(
        &self,
        source: &str,
        format: &str,
        items: &[serde_json::Value],
        error: Option<&HttpError>,
    ) -> Result<(), HttpError> {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner()).clone();
        pages.sort_by_key(|p| (p.item, p.page));
        let m = Manifest {
            source: source.to_string(),
            run_id: self.run_id.clone(),
            started_at: self.started.to_rfc3339(),
            finished_at: chrono::Utc::now().to_rfc3339(),
            complete: error.is_none(),
            error: error.map(|e| mask(&e.to_string())),
            format: format.to_string(),
            items: items.to_vec(),
            pages,
        };
        let json = crate::secrets::redact(&serde_json::to_string_pretty(&m).unwrap_or_default())
            .into_owned();
        self.dir
            .put(&manifest_file(source), json.into_bytes())
            .await
            .map_err(|reason| HttpError::Land {
                path: self.dir.shown(),
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_names_sort_by_time() {
        let body = br#"{"a": [1, 2, 3]}"#;
        assert_eq!(gunzip(&gzip(body)).unwrap(), body);
        let t = chrono::DateTime::parse_from_rfc3339("2024-06-01T10:15:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(run_folder("1a2b3c4d-xyz", t), "20240601T101500Z-1a2b3c4d");
        assert_eq!(page_file("w", 2, 13, "json"), "w-00002-00013.json.gz");
    }
}
