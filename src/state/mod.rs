//! A pipeline's state on disk: its run lock, its commit journal and its last commit.
//!
//! Several pipelines may share one state folder (the default `.etl/` beside the pipeline
//! files), so everything that belongs to one pipeline lives under
//! `<state dir>/pipelines/<key>/`, where the key is the pipeline's name made safe for a file
//! name (or a hash of it, when the name holds a secret: secrets never reach file names).
//!
//! ```text
//! <state dir>/pipelines/<key>/lock          one run at a time (an OS file lock)
//! <state dir>/pipelines/<key>/journal.json  a commit in progress (see `sink::commit`)
//! <state dir>/pipelines/<key>/last_commit.json
//! <state dir>/runs/                         run records
//! <state dir>/quarantine/<source>/          bad rows
//! ```

pub mod lock;
pub mod store;
pub mod watermark;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use lock::{LockError, PipelineLock};

/// The folder holding one pipeline's lock, journal and commit record.
pub fn pipeline_dir(state_dir: &Path, pipeline: &str) -> PathBuf {
    pipeline_dir_for_key(state_dir, &key(pipeline))
}

/// The same, from a pipeline's key.
pub fn pipeline_dir_for_key(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join("pipelines").join(key)
}

/// A file-name-safe key for a pipeline name. Names that hold a secret, or that would not
/// make a readable file name, become a hash.
pub fn key(pipeline: &str) -> String {
    let readable = !pipeline.is_empty()
        && pipeline.len() <= 100
        && pipeline
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !pipeline.starts_with('.');
    if readable && !crate::secrets::contains_secret(pipeline) {
        pipeline.to_string()
    } else {
        format!("p-{}", short_hash(pipeline))
    }
}

/// The first 16 hex digits of the SHA-256 of a text.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

/// Writes a file so that readers see the old content or the new, never a part: a temporary
/// file beside it is written, flushed to disk, and renamed over it; the folder is synced so
/// the rename itself survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir);
    Ok(())
}

/// Flushes a folder's entries (renames, new files) to disk; best effort.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_safe_file_names() {
        assert_eq!(key("daily_sales"), "daily_sales");
        assert!(key("a/b").starts_with("p-"));
        assert!(key("..").starts_with("p-"));
        assert!(key("").starts_with("p-"));
        assert_eq!(key("x y"), key("x y"));
        assert_ne!(key("x y"), key("x z"));
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/state.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }
}
