//! Staging and committing sink output.
//!
//! Local paths: the staging folder or file sits beside the final path, on the same file
//! system, so moving it into place is a rename. `overwrite` swaps folders (old aside, new in,
//! old removed); `append` renames each new part file into the existing folder.
//! Object stores have no rename: objects are copied from the staging prefix and the staging
//! prefix is deleted; `overwrite` deletes the old objects first.

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::SinkError;
use crate::model::Sink;
use crate::spec::sink::SinkMode;

/// Output written to a staging place, waiting for commit.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The sink.
    pub sink: Sink,
    /// Staging path or URL.
    pub staging: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: usize,
}

/// Where a sink stages its output.
pub fn staging_location(sink: &Sink, run_id: &str) -> String {
    let loc = sink.location.trim_end_matches('/');
    let (parent, name) = match loc.rfind('/') {
        Some(i) => (&loc[..i], &loc[i + 1..]),
        None => (".", loc),
    };
    let short: String = run_id.chars().take(8).collect();
    if sink.single_file {
        let ext = name.rfind('.').map(|i| &name[i..]).unwrap_or("");
        format!("{parent}/.{name}.etl-tmp-{short}{ext}")
    } else {
        format!("{parent}/.{name}.etl-tmp-{short}")
    }
}

fn local_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn store_of(
    ctx: &SessionContext,
    location: &str,
) -> Option<(std::sync::Arc<dyn ObjectStore>, ObjPath)> {
    let url = url::Url::parse(location).ok()?;
    let base = url::Url::parse(&format!("{}://{}", url.scheme(), url.authority())).ok()?;
    let store = ctx
        .runtime_env()
        .object_store(
            datafusion::execution::object_store::ObjectStoreUrl::parse(base.as_str()).ok()?,
        )
        .ok()?;
    let path = ObjPath::from_url_path(url.path()).ok()?;
    Some((store, path))
}

async fn list(store: &dyn ObjectStore, prefix: &ObjPath) -> Vec<object_store::ObjectMeta> {
    store
        .list(Some(prefix))
        .try_collect()
        .await
        .unwrap_or_default()
}

/// True when the path holds a file, or a folder with at least one file.
pub async fn exists_non_empty(ctx: &SessionContext, location: &str) -> bool {
    if crate::validate::is_url(location) {
        match store_of(ctx, location) {
            Some((store, path)) => {
                !list(store.as_ref(), &path).await.is_empty() || store.head(&path).await.is_ok()
            }
            None => false,
        }
    } else {
        any_local_file(Path::new(location))
    }
}

/// True when there is a file at or below `root`. Stops at the first file, and gives up
/// (answering yes) after [`crate::source::MAX_LISTED_ENTRIES`] entries, so asking about a
/// folder like `/` costs a moment, not a walk of the whole disk.
fn any_local_file(root: &Path) -> bool {
    if root.is_file() {
        return true;
    }
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            seen += 1;
            if seen > crate::source::MAX_LISTED_ENTRIES {
                return true;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => return true,
                Err(_) => {}
            }
        }
    }
    false
}

impl Staged {
    /// A staged output.
    pub fn new(sink: &Sink, staging: String, rows: u64) -> Self {
        Self {
            sink: sink.clone(),
            staging,
            rows,
            bytes: 0,
            files: 0,
        }
    }

    /// Fills in bytes and files from what is in the staging place.
    pub async fn measure(&mut self, ctx: &SessionContext) {
        if crate::validate::is_url(&self.staging) {
            if let Some((store, path)) = store_of(ctx, &self.staging) {
                let objs = list(store.as_ref(), &path).await;
                self.files = objs.len();
                self.bytes = objs.iter().map(|o| o.size).sum();
            }
        } else {
            let files = local_files(Path::new(&self.staging));
            self.files = files.len();
            self.bytes = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
        }
    }
}

/// Moves a staged output into place.
pub async fn commit(ctx: &SessionContext, staged: &Staged, run_id: &str) -> Result<(), SinkError> {
    let sink = &staged.sink;
    let err = |reason: String| SinkError::Commit {
        name: sink.name.clone(),
        path: sink.location.clone(),
        reason,
    };
    if sink.mode == SinkMode::ErrorIfExists && exists_non_empty(ctx, &sink.location).await {
        return Err(SinkError::Exists {
            name: sink.name.clone(),
            path: sink.location.clone(),
        });
    }
    if crate::validate::is_url(&sink.location) {
        return commit_object_store(ctx, staged).await.map_err(err);
    }
    let staging = Path::new(&staged.staging);
    let target = Path::new(&sink.location);
    if !staging.exists() {
        // A partitioned write of zero rows creates nothing: commit an empty folder.
        std::fs::create_dir_all(staging).map_err(|e| err(e.to_string()))?;
    }
    match (sink.mode, sink.single_file) {
        (SinkMode::Append, false) if target.exists() => {
            for f in local_files(staging) {
                let rel = f.strip_prefix(staging).map_err(|e| err(e.to_string()))?;
                let dest = target.join(rel);
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).map_err(|e| err(e.to_string()))?;
                }
                std::fs::rename(&f, &dest).map_err(|e| err(e.to_string()))?;
            }
            std::fs::remove_dir_all(staging).map_err(|e| err(e.to_string()))
        }
        (_, true) => std::fs::rename(staging, target).map_err(|e| err(e.to_string())),
        (_, false) => {
            let short: String = run_id.chars().take(8).collect();
            let aside = target.with_file_name(format!(
                ".{}.etl-old-{short}",
                target
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            let had_old = target.exists();
            if had_old {
                std::fs::rename(target, &aside).map_err(|e| err(e.to_string()))?;
            }
            if let Err(e) = std::fs::rename(staging, target) {
                if had_old {
                    let _ = std::fs::rename(&aside, target);
                }
                return Err(err(e.to_string()));
            }
            if had_old {
                if aside.is_dir() {
                    std::fs::remove_dir_all(&aside).map_err(|e| err(e.to_string()))?;
                } else {
                    std::fs::remove_file(&aside).map_err(|e| err(e.to_string()))?;
                }
            }
            Ok(())
        }
    }
}

async fn commit_object_store(ctx: &SessionContext, staged: &Staged) -> Result<(), String> {
    let sink = &staged.sink;
    let (store, staging) =
        store_of(ctx, &staged.staging).ok_or("no object store for the staging path")?;
    let (_, target) = store_of(ctx, &sink.location).ok_or("no object store for the sink path")?;
    let staged_objs = if sink.single_file {
        vec![staging.clone()]
    } else {
        list(store.as_ref(), &staging)
            .await
            .into_iter()
            .map(|o| o.location)
            .collect()
    };
    if sink.mode == SinkMode::Overwrite {
        for old in list(store.as_ref(), &target).await {
            store
                .delete(&old.location)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    for obj in staged_objs {
        let dest = if sink.single_file {
            target.clone()
        } else {
            let rel = obj
                .as_ref()
                .strip_prefix(staging.as_ref())
                .unwrap_or(obj.as_ref())
                .trim_start_matches('/');
            ObjPath::from(format!("{}/{rel}", target.as_ref()))
        };
        store.copy(&obj, &dest).await.map_err(|e| e.to_string())?;
        store.delete(&obj).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Tidies what killed runs left beside a local sink path. A staging place
/// (`.NAME.etl-tmp-*`) was never moved into place, so it goes. A set-aside previous output
/// (`.NAME.etl-old-*`) goes too, unless the run died between setting it aside and moving the
/// new output in: then the final path is empty and the previous output is put back.
pub fn remove_stale_staging(sink: &Sink) {
    if crate::validate::is_url(&sink.location) {
        return;
    }
    let target = Path::new(sink.location.trim_end_matches('/'));
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let (tmp, old) = (format!(".{name}.etl-tmp-"), format!(".{name}.etl-old-"));
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if file_name.starts_with(&old) && !target.exists() {
            tracing::warn!(path = %path.display(), "restoring the output an interrupted run had set aside");
            let _ = std::fs::rename(&path, target);
        } else if file_name.starts_with(&tmp) || file_name.starts_with(&old) {
            tracing::info!(path = %path.display(), "removing output left by an interrupted run");
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Removes a staged output (after a failure elsewhere in the run).
pub async fn abort(ctx: &SessionContext, staged: &Staged) {
    remove_staging(ctx, &staged.staging).await;
}

/// Removes whatever is at a staging place.
pub async fn remove_staging(ctx: &SessionContext, staging: &str) {
    if crate::validate::is_url(staging) {
        if let Some((store, path)) = store_of(ctx, staging) {
            for o in list(store.as_ref(), &path).await {
                let _ = store.delete(&o.location).await;
            }
            let _ = store.delete(&path).await;
        }
    } else {
        let p = Path::new(staging);
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        } else if p.exists() {
            let _ = std::fs::remove_file(p);
        }
    }
}
