//! A bound on the work of listing a local source: before the engine walks a folder (or the
//! folder a glob starts from), count what is below it, and give up with an error past
//! [`MAX_LISTED_ENTRIES`]. A path of `/` or `/**/*.csv` then fails in a moment instead of
//! walking the whole disk. Special files (`/dev/zero`, a FIFO) are refused: reading one could
//! block or never end.

use std::path::{Path, PathBuf};

use super::SourceError;

/// The most files and folders below the folder a local source lists.
pub const MAX_LISTED_ENTRIES: usize = 100_000;

/// Checks a resolved local location (a file, a folder or a glob) before it is listed.
pub fn check_local(name: &str, location: &str) -> Result<(), SourceError> {
    let cut = location.find(['*', '?', '[']);
    let base = match cut {
        // A glob lists from the folder its first wildcard is in.
        Some(i) => Path::new(&location[..location[..i].rfind('/').map_or(0, |j| j + 1)]),
        None => Path::new(location),
    };
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    match std::fs::metadata(base) {
        Ok(m) if m.is_dir() => count_below(name, base, MAX_LISTED_ENTRIES),
        Ok(m) if cut.is_none() && !m.is_file() => Err(SourceError::NotAFile {
            name: name.to_string(),
            path: location.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Walks below `dir` (following links, as the listing does) and fails past `limit` entries.
fn count_below(name: &str, dir: &Path, limit: usize) -> Result<(), SourceError> {
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > limit {
                return Err(SourceError::TooManyFiles {
                    name: name.to_string(),
                    folder: dir.display().to_string(),
                    limit,
                });
            }
            let path = entry.path();
            if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                stack.push(path);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_folders_pass_and_special_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
        let d = dir.path().display().to_string();
        assert!(check_local("s", &d).is_ok());
        assert!(check_local("s", &format!("{d}/*.csv")).is_ok());
        assert!(check_local("s", &format!("{d}/a.csv")).is_ok());
        assert!(check_local("s", &format!("{d}/missing.csv")).is_ok());
        assert!(matches!(
            check_local("s", "/dev/zero"),
            Err(SourceError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_link_loop_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("again")).unwrap();
        let e = count_below("s", dir.path(), 10).unwrap_err();
        assert!(e.to_string().contains("more than 10 files"), "{e}");
        assert!(
            count_below("s", dir.path(), 1000).is_ok(),
            "the OS ends a loop of links"
        );
    }
}
