//! Sink manifests: what a sink wrote, so that a later run replaces only that.
//!
//! A folder sink keeps a hidden `.etl-manifest` file at the root of its output, listing every
//! file it wrote (relative paths), the pipeline and sink that wrote them and the run. The
//! manifest is written into the staging folder with the data, so the atomic exchange that
//! commits the folder moves both together. A single-file sink keeps
//! `.<file name>.etl-manifest` beside its file. The name carries no extension, so readers
//! that select files by extension (`*.parquet`, DataFusion listing tables) never see it, and
//! Spark, Hive and Arrow datasets skip hidden files.
//!
//! Before any data is read, a run checks each sink's target: a non-empty target holding a
//! file that no earlier run of the same pipeline's sink of the same name wrote is refused,
//! unless the sink says `replace_existing: true`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's file name inside a folder output.
pub const MANIFEST: &str = ".etl-manifest";

/// What a sink wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The pipeline, as its state key (a hash when the name holds a secret).
    pub pipeline: String,
    /// The sink's name.
    pub sink: String,
    /// The run that wrote the current content.
    pub run_id: String,
    /// When, UTC.
    pub written_at: String,
    /// The files, relative to the output folder with `/` separators (empty for one file).
    #[serde(default)]
    pub files: Vec<String>,
}

impl Manifest {
    /// A manifest for a run of a sink.
    pub fn new(pipeline_key: &str, sink: &str, run_id: &str, files: Vec<String>) -> Self {
        Self {
            pipeline: pipeline_key.to_string(),
            sink: sink.to_string(),
            run_id: run_id.to_string(),
            written_at: chrono::Utc::now().to_rfc3339(),
            files,
        }
    }

    /// True when the same pipeline's sink of the same name wrote it.
    pub fn same_owner(&self, pipeline_key: &str, sink: &str) -> bool {
        self.pipeline == pipeline_key && self.sink == sink
    }

    /// Parses a manifest; `None` when the bytes are not one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The manifest as JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// What is at a sink's target before a run replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Nothing, or an empty folder.
    Empty,
    /// Only files an earlier run of this sink wrote.
    Ours,
    /// At least one file etl did not write for this sink (one is named).
    Foreign(String),
}

/// The manifest beside a single-file output.
pub fn file_manifest_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.etl-manifest"))
}

/// Reads a local manifest file.
pub fn read_local(path: &Path) -> Option<Manifest> {
    std::fs::read(path).ok().and_then(|b| Manifest::parse(&b))
}

/// Every file below a local folder, as sorted relative `/`-separated paths, without the
/// manifest.
pub fn local_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // Symlinks are listed, not followed: a link to elsewhere is a file of this folder.
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if rel != MANIFEST {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

/// Who owns what is at a local target.
pub fn local_ownership(
    target: &Path,
    single_file: bool,
    pipeline_key: &str,
    sink: &str,
) -> Ownership {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ownership::Empty;
    };
    if !meta.is_dir() {
        if single_file
            && read_local(&file_manifest_path(target))
                .is_some_and(|m| m.same_owner(pipeline_key, sink))
        {
            return Ownership::Ours;
        }
        return Ownership::Foreign(target.display().to_string());
    }
    let files = local_files(target);
    let Some(first) = files.first() else {
        return Ownership::Empty;
    };
    let foreign = |rel: &str| Ownership::Foreign(target.join(rel).display().to_string());
    if single_file {
        return foreign(first);
    }
    match read_local(&target.join(MANIFEST)) {
        Some(m) if m.same_owner(pipeline_key, sink) => {
            match files.iter().find(|f| !m.files.contains(f)) {
                Some(f) => foreign(f),
                None => Ownership::Ours,
            }
        }
        _ => foreign(first),
    }
}

/// Ownership of an object-store prefix (a folder sink) or object (a single-file sink), from
/// its listing and manifest.
pub fn store_ownership(
    objects: &[String],
    manifest: Option<Manifest>,
    single_file_exists: Option<bool>,
    pipeline_key: &str,
    sink: &str,
    target: &str,
) -> Ownership {
    let owned = manifest
        .as_ref()
        .filter(|m| m.same_owner(pipeline_key, sink));
    if let Some(exists) = single_file_exists {
        return match (exists, owned) {
            (false, _) => Ownership::Empty,
            (true, Some(_)) => Ownership::Ours,
            (true, None) => Ownership::Foreign(target.to_string()),
        };
    }
    let files: Vec<&String> = objects.iter().filter(|o| o.as_str() != MANIFEST).collect();
    let Some(first) = files.first() else {
        return Ownership::Empty;
    };
    let join = |rel: &str| format!("{}/{rel}", target.trim_end_matches('/'));
    match owned {
        Some(m) => match files.iter().find(|f| !m.files.contains(f)) {
            Some(f) => Ownership::Foreign(join(f)),
            None => Ownership::Ours,
        },
        None => Ownership::Foreign(join(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_ownership_follows_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("out");
        assert_eq!(local_ownership(&t, false, "p", "s"), Ownership::Empty);
        std::fs::create_dir_all(t.join("k=1")).unwrap();
        assert_eq!(local_ownership(&t, false, "p", "s"), Ownership::Empty);
        std::fs::write(t.join("k=1/a.parquet"), b"x").unwrap();
        assert!(
            matches!(local_ownership(&t, false, "p", "s"), Ownership::Foreign(f) if f.ends_with("a.parquet"))
        );
        let m = Manifest::new("p", "s", "r1", vec!["k=1/a.parquet".into()]);
        std::fs::write(t.join(MANIFEST), m.to_bytes()).unwrap();
        assert_eq!(local_ownership(&t, false, "p", "s"), Ownership::Ours);
        assert!(matches!(
            local_ownership(&t, false, "p", "other"),
            Ownership::Foreign(_)
        ));
        std::fs::write(t.join("notes.txt"), b"mine").unwrap();
        assert!(
            matches!(local_ownership(&t, false, "p", "s"), Ownership::Foreign(f) if f.ends_with("notes.txt"))
        );
    }

    #[test]
    fn single_file_ownership_uses_the_manifest_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("report.csv");
        std::fs::write(&t, b"a\n1\n").unwrap();
        assert!(matches!(
            local_ownership(&t, true, "p", "s"),
            Ownership::Foreign(_)
        ));
        let m = Manifest::new("p", "s", "r1", vec![]);
        std::fs::write(file_manifest_path(&t), m.to_bytes()).unwrap();
        assert_eq!(local_ownership(&t, true, "p", "s"), Ownership::Ours);
    }
}
