//! `after_commit` on file sources: once every sink of a run has committed, move the files
//! the run read (`move_to`) or delete them (`delete: true`).
//!
//! Exactly the files the run read are touched. When a source says `after_commit`, its files
//! are listed once per run and the listing is pinned: every read of the source in that run
//! (all sinks, checks, incremental planning) reads exactly those files, named one by one,
//! and the commit moves exactly those, after checking each is still the file that was read
//! (same size and modification time, or the same ETag in an object store). A file that
//! arrives during the run is not read and not touched; one that changed is left in place.
//! The moves are an entry of the run's commit journal, after the sinks' entries, so a crash
//! between the sinks' commit and the moves is finished by the next run; a failed run has no
//! commit, so it moves nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use object_store::ObjectMeta;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Format;
use super::moves::{FileMove, Moves};
use crate::connector::{BuildCx, CheckCx};
use crate::model::Source;
use crate::source::SourceError;
use crate::spec::source::Compression;
use crate::validate::{has_glob, is_url, resolve_local};

/// What happens to the files a source read once every sink committed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterCommit {
    /// Move the files read into this folder, keeping their path below the source's folder.
    /// Relative to the pipeline file for local sources; for object-store sources a key
    /// prefix in the same bucket, or a URL. A file already there keeps its name and the moved
    /// one gets the run's id added to its name.
    #[serde(default)]
    pub move_to: Option<String>,
    /// Delete the files read.
    #[serde(default)]
    pub delete: bool,
}

/// The files a source read, per run.
#[derive(Default)]
pub struct Pinned(Mutex<HashMap<String, Arc<Vec<ObjectMeta>>>>);

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pinned")
    }
}

/// Static checks: one action, and a destination that the source does not read.
pub fn check(ac: &AfterCommit, path: &str, cx: &mut CheckCx<'_>) {
    let Some(to) = &ac.move_to else {
        if !ac.delete {
            cx.error(
                "after_commit",
                "say what to do with the files read: `move_to: <folder>` or `delete: true`",
            );
        }
        return;
    };
    if ac.delete {
        cx.error(
            "after_commit",
            "`move_to` and `delete` exclude each other: move the files, or delete them",
        );
        return;
    }
    if to.trim().is_empty() {
        cx.error("after_commit.move_to", "`move_to` is empty");
        return;
    }
    if is_url(to) && (!is_url(path) || root_of(to) != root_of(path)) {
        cx.error(
            "after_commit.move_to",
            "files move within their own store: a local folder for local files, the same bucket for an object store's",
        );
        return;
    }
    let base = cx.loaded.base_dir.clone();
    let source = absolute(&base, path);
    let read_from = folder_of(&source);
    let dest = destination(&base, path, to);
    let one_file = !has_glob(path) && !path.ends_with('/') && !Path::new(&source).is_dir();
    if !one_file && inside(&dest, &read_from) {
        cx.error(
            "after_commit.move_to",
            format!("`{to}` is inside the folder the source reads ({read_from}), so the moved files would be read again"),
        )
        .help = Some("move them next to that folder instead (`archived/...` beside `raw/`)".into());
    }
}

fn absolute(base: &Path, p: &str) -> String {
    if is_url(p) {
        p.to_string()
    } else {
        resolve_local(base, p).to_string_lossy().into_owned()
    }
}

/// The folder a location reads from: a glob's fixed part, a folder, or a file's folder.
pub fn folder_of(location: &str) -> String {
    let trimmed = location.trim_end_matches('/');
    if has_glob(location) {
        let cut = location.find(['*', '?', '[']).unwrap_or(location.len());
        return location[..cut]
            .rfind('/')
            .map(|i| location[..i].to_string())
            .unwrap_or_default();
    }
    let is_dir = location.ends_with('/') || (!is_url(location) && Path::new(location).is_dir());
    if is_dir {
        return trimmed.to_string();
    }
    trimmed
        .rfind('/')
        .map(|i| trimmed[..i].to_string())
        .unwrap_or_default()
}

/// Where `move_to` points, as an absolute path or a URL.
fn destination(base: &Path, source_path: &str, to: &str) -> String {
    if is_url(to) || !is_url(source_path) {
        return absolute(base, to).trim_end_matches('/').to_string();
    }
    // A key prefix in the source's bucket.
    format!("{}/{}", root_of(source_path), to.trim_matches('/'))
}

/// `scheme://authority` of a URL.
fn root_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| format!("{}://{}", u.scheme(), u.authority()))
        .unwrap_or_default()
}

fn inside(path: &str, folder: &str) -> bool {
    let folder = folder.trim_end_matches('/');
    path == folder || path.starts_with(&format!("{folder}/"))
}

/// The extension the source's reader keeps when listing a folder.
fn read_extension(src: &Source, format: Format<'_>) -> String {
    let ext = |c: Option<Compression>| {
        let first = src.locations.first().map(String::as_str).unwrap_or("");
        match c.unwrap_or_else(|| super::listing::compression_of(src, first)) {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
        }
    };
    if src.on_bad_row != crate::spec::source::OnBadRow::Fail {
        return String::new();
    }
    match format {
        Format::Csv(o) => super::listing::csv_format(src, o).1,
        Format::Json(o) => o
            .extension
            .clone()
            .unwrap_or_else(|| format!(".json{}", ext(o.compression))),
        Format::Parquet => ".parquet".into(),
        Format::Avro => ".avro".into(),
        Format::Lines(_) => String::new(),
    }
}

/// The location string of a listed file (an absolute path, or a URL).
fn file_location(src: &Source, meta: &ObjectMeta) -> String {
    let key = meta.location.as_ref();
    match src.locations.first().filter(|l| is_url(l)) {
        Some(url) => format!("{}/{key}", root_of(url)),
        None => format!("/{}", percent_decode(key)),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The source with its listing pinned for this run: its locations are the files, named one
/// by one. `None` when nothing matched and the schema is declared (an empty read).
pub async fn pin(
    cx: &BuildCx<'_>,
    format: Format<'_>,
    pinned: &Pinned,
) -> Result<Option<Source>, SourceError> {
    let src = cx.source;
    let run = cx.pipeline.run_id.clone();
    let known = pinned
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&run)
        .cloned();
    let files = match known {
        Some(f) => f,
        None => {
            let listed = match super::list_files(cx.ctx, src, &read_extension(src, format)).await {
                Ok(f) => f,
                Err(SourceError::NoFiles { .. }) if src.schema.is_some() => Vec::new(),
                Err(e) => return Err(e),
            };
            let listed = Arc::new(listed);
            let mut all = pinned.0.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|k, _| k == &run);
            all.entry(run).or_insert(listed).clone()
        }
    };
    if files.is_empty() {
        return Ok(None);
    }
    let mut pinned_src = src.clone();
    pinned_src.locations = files.iter().map(|m| file_location(src, m)).collect();
    Ok(Some(pinned_src))
}

/// The commit-journal entry moving or deleting the files this run read (`None` when the
/// source was not read in this run, or read no file).
pub async fn entry(
    cx: &BuildCx<'_>,
    ac: &AfterCommit,
    pinned: &Pinned,
    path: &str,
    connection: Option<&str>,
) -> Result<Option<crate::sink::commit::Entry>, SourceError> {
    let src = cx.source;
    let files = pinned
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cx.pipeline.run_id)
        .cloned();
    let Some(files) = files.filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let base_dir = &cx.pipeline.base_dir;
    let read_from = folder_of(src.locations.first().map(String::as_str).unwrap_or(""));
    let dest = ac
        .move_to
        .as_ref()
        .map(|to| destination(base_dir, path, to));
    let run8: String = cx.pipeline.run_id.chars().take(8).collect();
    if let Some(first) = src.locations.first().filter(|l| is_url(l)) {
        let conn = connection.and_then(|c| crate::source::pipeline_connection(cx.pipeline, c));
        crate::store::ensure_store(cx.ctx, first, conn).map_err(|error| SourceError::Store {
            name: src.name.clone(),
            error,
        })?;
    }
    let mut moves = Vec::new();
    for meta in files.iter() {
        let from = file_location(src, meta);
        let to = match &dest {
            None => None,
            Some(d) => {
                let rel = from
                    .strip_prefix(&format!("{read_from}/"))
                    .unwrap_or_else(|| from.rsplit('/').next().unwrap_or(&from));
                let target = format!("{d}/{rel}");
                Some(super::moves::free_name(cx.ctx, &target, &run8).await)
            }
        };
        moves.push(FileMove {
            from,
            to,
            size: meta.size,
            modified: meta
                .last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            e_tag: meta.e_tag.clone(),
        });
    }
    Ok(Some(crate::sink::commit::Entry::AfterCommit(Moves::new(
        &src.name, connection, moves,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_a_location_reads() {
        assert_eq!(folder_of("/d/raw/*.csv"), "/d/raw");
        assert_eq!(folder_of("s3://b/raw/**/x*.csv"), "s3://b/raw");
        assert_eq!(folder_of("s3://b/raw/"), "s3://b/raw");
        assert_eq!(folder_of("/d/raw/a.csv"), "/d/raw");
        assert!(inside("/d/raw/archived", "/d/raw"));
        assert!(!inside("/d/rawer", "/d/raw"));
        assert_eq!(
            destination(Path::new("/p"), "s3://b/raw/*.csv", "archived/2024"),
            "s3://b/archived/2024"
        );
        assert_eq!(percent_decode("a%20b.csv"), "a b.csv");
    }
}
