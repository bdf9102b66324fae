//! Sink paths that would destroy what the run reads or owns.
//!
//! A sink replaces everything at its path, so a sink path may not equal, contain or lie
//! inside a source's file or the folder a source's glob reads from, an SQL file, the
//! pipeline file, the state folder or another sink's path, and may not equal or contain the
//! working directory or the pipeline file's folder. Paths are compared after making them
//! absolute and resolving `..` and symlinks (of the part that exists), component by
//! component; URLs by scheme, bucket and path segments.

use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;

use super::{has_glob, is_url};
use crate::diagnostic::Diagnostics;
use crate::load::Loaded;
use crate::model::{Sink, Source, Transform};

/// How two paths relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    Same,
    Contains,
    Inside,
}

/// Something a sink must not overwrite.
struct Protected {
    what: String,
    key: Key,
    /// Whether a sink inside it is also refused (folders we read or own), or only a sink
    /// that equals or contains it (the working directory, the pipeline's folder).
    inside_too: bool,
}

/// A comparable location: a canonical local path, or URL segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Local(PathBuf),
    Url(Vec<String>),
}

/// Reports every sink whose path overlaps something it must not touch.
pub(super) fn check(
    loaded: &Loaded,
    sources: &IndexMap<String, Source>,
    transforms: &IndexMap<String, crate::model::Transform>,
    sinks: &IndexMap<String, Sink>,
    state_dir: &Path,
    diags: &mut Diagnostics,
) {
    let mut protected = inputs(loaded, sources, transforms, state_dir);
    for (i, sink) in sinks.values().enumerate() {
        let key = key_of(&sink.location);
        for p in &protected {
            let Some(overlap) = relate(&key, &p.key) else {
                continue;
            };
            if overlap == Overlap::Inside && !p.inside_too {
                continue;
            }
            let relation = match overlap {
                Overlap::Same => "is",
                Overlap::Contains => "contains",
                Overlap::Inside => "lies inside",
            };
            let d = loaded
                .error_at(
                    &format!("{}.path", sink.yaml_path),
                    format!(
                        "sink `{}` writes to {}, which {relation} {}",
                        sink.name,
                        shown(&key, &sink.location),
                        p.what
                    ),
                )
                .with_help(
                    "a sink replaces everything at its path: give it a folder or file of its own (for example `out/<name>`)",
                );
            diags.push(d);
            break;
        }
        if i + 1 < sinks.len() {
            protected.push(Protected {
                what: format!("the path of sink `{}` ({})", sink.name, sink.location),
                key,
                inside_too: true,
            });
        }
    }
}

fn shown(key: &Key, location: &str) -> String {
    match key {
        Key::Local(p) => p.display().to_string(),
        Key::Url(_) => location.to_string(),
    }
}

/// What the pipeline reads or owns.
fn inputs(
    loaded: &Loaded,
    sources: &IndexMap<String, Source>,
    transforms: &IndexMap<String, Transform>,
    state_dir: &Path,
) -> Vec<Protected> {
    let mut out = Vec::new();
    for src in sources.values() {
        for loc in &src.locations {
            let (base, what) = if has_glob(loc) {
                (glob_base(loc), "the folder read by the glob of source")
            } else {
                (loc.clone(), "the input of source")
            };
            out.push(Protected {
                what: format!("{what} `{}` ({loc})", src.name),
                key: key_of(&base),
                inside_too: true,
            });
        }
    }
    for t in transforms.values() {
        if t.origin.yaml_path.is_none() {
            out.push(Protected {
                what: format!(
                    "the SQL file of transform `{}` ({})",
                    t.name,
                    t.origin.file.display()
                ),
                key: Key::Local(canonical(&t.origin.file)),
                inside_too: true,
            });
        }
    }
    out.push(Protected {
        what: format!("the pipeline file ({})", loaded.file.display()),
        key: Key::Local(canonical(&absolute(&loaded.file))),
        inside_too: true,
    });
    out.push(Protected {
        what: format!("the state folder ({})", state_dir.display()),
        key: Key::Local(canonical(state_dir)),
        inside_too: true,
    });
    out.push(Protected {
        what: format!("the pipeline's folder ({})", loaded.base_dir.display()),
        key: Key::Local(canonical(&absolute(&loaded.base_dir))),
        inside_too: false,
    });
    if let Ok(cwd) = std::env::current_dir() {
        out.push(Protected {
            what: format!("the working directory ({})", cwd.display()),
            key: Key::Local(canonical(&cwd)),
            inside_too: false,
        });
    }
    out
}

/// The folder a glob starts from: everything before the first component with a wildcard.
fn glob_base(location: &str) -> String {
    let cut = location.find(['*', '?', '[']).unwrap_or(location.len());
    match location[..cut].rfind('/') {
        Some(i) if i > 0 => location[..i].to_string(),
        Some(_) => "/".to_string(),
        None => ".".to_string(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn key_of(location: &str) -> Key {
    if is_url(location) && !location.starts_with("file://") {
        match url::Url::parse(location) {
            Ok(u) => {
                let mut parts = vec![u.scheme().to_string(), u.authority().to_string()];
                parts.extend(
                    u.path()
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                Key::Url(parts)
            }
            Err(_) => Key::Url(vec![location.to_string()]),
        }
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        Key::Local(canonical(&absolute(Path::new(path))))
    }
}

/// Resolves symlinks in the longest existing prefix of an absolute path, then `.` and `..`
/// in the rest.
pub fn canonical(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => {
                // `..` at the end, or nothing exists: normalise lexically.
                let mut out = PathBuf::new();
                for c in path.components() {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::CurDir => {}
                        other => out.push(other),
                    }
                }
                return out;
            }
        }
    }
}

fn relate(sink: &Key, other: &Key) -> Option<Overlap> {
    let (a, b): (Vec<String>, Vec<String>) = match (sink, other) {
        (Key::Local(a), Key::Local(b)) => (components(a), components(b)),
        (Key::Url(a), Key::Url(b)) => (a.clone(), b.clone()),
        _ => return None,
    };
    if a == b {
        Some(Overlap::Same)
    } else if b.starts_with(&a) {
        Some(Overlap::Contains)
    } else if a.starts_with(&b) {
        Some(Overlap::Inside)
    } else {
        None
    }
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_are_by_component() {
        let k = |s: &str| Key::Local(PathBuf::from(s));
        assert_eq!(relate(&k("/a/b"), &k("/a/b")), Some(Overlap::Same));
        assert_eq!(relate(&k("/a"), &k("/a/b/c.csv")), Some(Overlap::Contains));
        assert_eq!(relate(&k("/a/b/out"), &k("/a/b")), Some(Overlap::Inside));
        assert_eq!(relate(&k("/a/bc"), &k("/a/b")), None);
        let u = |s: &str| key_of(s);
        assert_eq!(
            relate(&u("s3://bk/out"), &u("s3://bk/out/x.csv")),
            Some(Overlap::Contains)
        );
        assert_eq!(relate(&u("s3://bk/out"), &u("s3://other/out")), None);
    }

    #[test]
    fn glob_bases_and_canonical_paths() {
        assert_eq!(glob_base("/d/sales/*.csv"), "/d/sales");
        assert_eq!(glob_base("/d/*/x/*.csv"), "/d");
        assert_eq!(glob_base("s3://b/raw/*.json"), "s3://b/raw");
        let dir = tempfile::tempdir().unwrap();
        let real = canonical(dir.path());
        assert_eq!(canonical(&dir.path().join("x/../y")), real.join("y"));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        assert_eq!(
            canonical(&dir.path().join("link/new/z")),
            real.join("new/z")
        );
    }
}
