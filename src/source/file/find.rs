//! Which files a source reads: a file, a folder (its files and its Hive-style `col=value/`
//! folders, as DataFusion lists them), a file-name glob (`data/*.csv`), or a glob with
//! wildcards in folder names (`raw/*/*.json`, `raw/**/*.csv`), expanded here with the
//! shell's rules because DataFusion matches wildcards in file names only.

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectMeta;

use super::listing::{is_local_dir, store_for};
use crate::model::Source;
use crate::source::SourceError;

/// A file a source reads.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Where it is, usable as a source location: a local path or a URL.
    pub location: String,
    /// Its path below the folder the source names (the glob's base for a glob), as the file
    /// system or URL names it: the part Hive-style `col=value/` folders are read from.
    pub relative: String,
    /// What the store says about it.
    pub meta: ObjectMeta,
}

/// True when a glob has a wildcard in a folder name (`raw/*/x.json`, `raw/**/*.csv`).
/// DataFusion's listing matches wildcards in the file name only, so these are expanded
/// here, with the shell's rules: `*` and `?` stay within one folder, `**` spans any number.
pub fn is_folder_glob(location: &str) -> bool {
    match location.find(['*', '?', '[']) {
        Some(cut) => location[cut..].contains('/'),
        None => false,
    }
}

/// Lists the files a source reads, in a stable order; errors when none match.
pub async fn list_files(
    ctx: &SessionContext,
    src: &Source,
    extension: &str,
) -> Result<Vec<ObjectMeta>, SourceError> {
    Ok(list_located(ctx, src, extension)
        .await?
        .into_iter()
        .map(|l| l.meta)
        .collect())
}

/// Like [`list_files`], with each file's location and path below the source's folder.
pub async fn list_located(
    ctx: &SessionContext,
    src: &Source,
    extension: &str,
) -> Result<Vec<Listed>, SourceError> {
    let mut all = Vec::new();
    for loc in &src.locations {
        let found = if is_folder_glob(loc) {
            expand_folder_glob(ctx, src, loc).await?
        } else {
            list_location(ctx, src, loc, extension).await?
        };
        if found.is_empty() {
            let what = if is_local_dir(loc) || loc.ends_with('/') {
                format!("{loc} (files ending in {extension})")
            } else {
                loc.clone()
            };
            return Err(SourceError::NoFiles {
                name: src.name.clone(),
                pattern: what,
            });
        }
        all.extend(found);
    }
    all.sort_by(|a, b| a.meta.location.cmp(&b.meta.location));
    Ok(all)
}

/// The files of one location without folder wildcards (a file, a folder, a file-name glob).
async fn list_location(
    ctx: &SessionContext,
    src: &Source,
    loc: &str,
    extension: &str,
) -> Result<Vec<Listed>, SourceError> {
    if !crate::validate::is_url(loc)
        && !loc.contains(['*', '?', '['])
        && !std::path::Path::new(loc).exists()
    {
        return Err(SourceError::NotFound {
            name: src.name.clone(),
            path: loc.to_string(),
        });
    }
    if !crate::validate::is_url(loc) {
        super::bounded::check_local(&src.name, loc)?;
    }
    let (url, store) = store_for(ctx, src, loc)?;
    let ext = if is_local_dir(loc) || loc.ends_with('/') {
        extension
    } else {
        ""
    };
    let engine = |error| SourceError::Engine {
        name: src.name.clone(),
        error,
    };
    let state = ctx.state();
    let files: Vec<ObjectMeta> = url
        .list_all_files(&state, store.as_ref(), ext)
        .await
        .map_err(engine)?
        .try_collect()
        .await
        .map_err(engine)?;
    let prefix = url.prefix().as_ref().to_string();
    Ok(files
        .into_iter()
        .map(|meta| located(loc, &prefix, meta))
        .collect())
}

/// Lists everything below a folder glob's base and keeps what the pattern matches.
async fn expand_folder_glob(
    ctx: &SessionContext,
    src: &Source,
    loc: &str,
) -> Result<Vec<Listed>, SourceError> {
    let cut = loc.find(['*', '?', '[']).unwrap_or(loc.len());
    let base_end = loc[..cut].rfind('/').map(|i| i + 1).unwrap_or(0);
    let (base, pattern) = loc.split_at(base_end);
    let bad = |reason: String| SourceError::Read {
        name: src.name.clone(),
        file: loc.to_string(),
        reason,
    };
    let pattern = glob::Pattern::new(pattern).map_err(|e| bad(format!("bad glob: {e}")))?;
    if !crate::validate::is_url(base) {
        if !std::path::Path::new(base).is_dir() {
            return Ok(Vec::new());
        }
        super::bounded::check_local(&src.name, base)?;
    }
    let (url, store) = store_for(ctx, src, base)?;
    let prefix = url.prefix().clone();
    let metas: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| bad(e.to_string()))?;
    let shell = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let prefix = prefix.as_ref().to_string();
    Ok(metas
        .into_iter()
        .map(|meta| located(loc, &prefix, meta))
        .filter(|l| pattern.matches_with(&l.relative, shell))
        .collect())
}

/// A listed object as a location like the source's own (a local path or a URL).
fn located(source_location: &str, prefix: &str, meta: ObjectMeta) -> Listed {
    let full = meta.location.as_ref();
    let relative = full
        .strip_prefix(prefix)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(full)
        .to_string();
    let location =
        if crate::validate::is_url(source_location) && !source_location.starts_with("file://") {
            match url::Url::parse(source_location) {
                Ok(u) => format!("{}://{}/{full}", u.scheme(), u.authority()),
                Err(_) => full.to_string(),
            }
        } else {
            // A local store's paths are the file system's names (not percent-encoded).
            format!("/{full}")
        };
    Listed {
        location,
        relative,
        meta,
    }
}

/// Undoes percent-encoding (`%3A` → `:`); text that is not valid UTF-8 afterwards is kept.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}
