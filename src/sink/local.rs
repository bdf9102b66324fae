//! Committing sink output on a local file system.
//!
//! Output is staged beside its target, on the same file system, so moving it into place is
//! a rename. A single file replaces its target with one `rename`. A folder replaces its
//! target with one atomic exchange of the two paths (Linux `renameat2(RENAME_EXCHANGE)`,
//! macOS `renamex_np(RENAME_SWAP)`): readers see the old folder or the new one, and the
//! target is never missing, not even if the process dies between two steps. The old folder
//! ends up at the staging path and is removed afterwards. Where the platform has no exchange,
//! the old folder is first renamed aside; between the two renames the target is briefly
//! missing, and a crash there is put right by the next run (the journal names both paths).
//! `append` stages hard links to the existing files next to the new ones and exchanges the
//! folders too, so an append is as atomic as an overwrite.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::manifest::{MANIFEST, Manifest, file_manifest_path, local_files, read_local};

/// Atomically exchanges two existing paths.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    exchange_impl(a, b)
}

#[cfg(target_os = "linux")]
fn exchange_impl(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "macos")]
fn exchange_impl(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn exchange_impl(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// True when an exchange failed because the platform or file system cannot do it.
fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
        )
}

/// Makes a staged output ready to commit: the folder exists (a write of no rows creates
/// nothing), the manifest is in it (or beside a single file), `append` links the existing
/// files in, and everything is flushed to disk.
pub fn prepare(
    staging: &Path,
    target: &Path,
    single_file: bool,
    append: bool,
    owner: (&str, &str, &str),
) -> io::Result<()> {
    let (pipeline, sink, run_id) = owner;
    if single_file {
        if !staging.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the writer produced no file at {}", staging.display()),
            ));
        }
        sync_file(staging)?;
        let manifest = Manifest::new(pipeline, sink, run_id, Vec::new());
        return crate::state::write_atomic(&file_manifest_path(target), &manifest.to_bytes());
    }
    std::fs::create_dir_all(staging)?;
    let mut files = local_files(staging);
    for f in &files {
        sync_file(&staging.join(f))?;
    }
    if append && target.is_dir() {
        let kept = read_local(&target.join(MANIFEST))
            .map(|m| m.files)
            .unwrap_or_default();
        for rel in local_files(target) {
            link_or_copy(&target.join(&rel), &staging.join(&rel))?;
            if kept.contains(&rel) && !files.contains(&rel) {
                files.push(rel);
            }
        }
        files.sort();
    }
    let manifest = Manifest::new(pipeline, sink, run_id, files);
    std::fs::write(staging.join(MANIFEST), manifest.to_bytes())?;
    sync_file(&staging.join(MANIFEST))?;
    sync_tree(staging);
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

fn sync_file(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn sync_tree(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        crate::state::sync_dir(&d);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// True when a staged output is already in place (for recovery): a single file's staging
/// file is gone (only the rename removes it), a folder's target carries this run's manifest.
pub fn is_done(staging: &Path, target: &Path, single_file: bool, run_id: &str) -> bool {
    if single_file {
        !staging.exists()
    } else {
        read_local(&target.join(MANIFEST)).is_some_and(|m| m.run_id == run_id)
    }
}

/// Moves a prepared output into place: a rename, or an exchange with the old folder (which
/// then sits at the staging path); without an exchange, the old folder is renamed `aside`.
pub fn swap(staging: &Path, target: &Path, single_file: bool, aside: &Path) -> io::Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    if single_file || std::fs::symlink_metadata(target).is_err() {
        std::fs::rename(staging, target)?;
    } else {
        match exchange(staging, target) {
            Ok(()) => {}
            Err(e) if unsupported(&e) => {
                std::fs::rename(target, aside)?;
                crate::fault::point("commit");
                std::fs::rename(staging, target)?;
            }
            Err(e) => return Err(e),
        }
    }
    crate::state::sync_dir(parent);
    Ok(())
}

/// Removes what a committed output left behind: the old folder (now at the staging path, or
/// aside).
pub fn cleanup(staging: &Path, aside: &Path) -> io::Result<()> {
    remove_path(staging)?;
    remove_path(aside)
}

/// Undoes a commit that moved nothing: puts an old folder back if it was set aside, and
/// removes the staged output.
pub fn roll_back(staging: &Path, target: &Path, aside: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(target).is_err() && aside.exists() {
        std::fs::rename(aside, target)?;
    }
    remove_path(staging)
}

/// The folders this process created to stage output in, so that a run that fails takes
/// them back (a failed first run leaves no empty `out/` behind).
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Creates `dir` and its missing parents, remembering the ones it created.
pub fn create_parents(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    CREATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(missing);
    Ok(())
}

/// Removes the folders above `staging` that this process created, deepest first, as long
/// as they are empty (a folder holding anything, another sink's output included, stays).
pub fn remove_created_parents(staging: &Path) {
    let created = CREATED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut at = staging.parent();
    while let Some(d) = at.filter(|d| created.iter().any(|c| c == d)) {
        match std::fs::remove_dir(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return,
            _ => at = d.parent(),
        }
    }
}

/// Removes a file or folder if it exists.
pub fn remove_path(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_empty_folders_this_process_created_are_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        std::fs::create_dir(&kept).unwrap();
        let staging = kept.join("a/b/.o.csv.etl-tmp");
        create_parents(staging.parent().unwrap()).unwrap();
        std::fs::write(kept.join("a/other.txt"), b"x").unwrap();
        remove_created_parents(&staging);
        assert!(!kept.join("a/b").exists(), "created and empty: removed");
        assert!(
            kept.join("a/other.txt").exists(),
            "a folder holding a file stays"
        );
        std::fs::remove_file(kept.join("a/other.txt")).unwrap();
        remove_created_parents(&staging);
        assert!(!kept.join("a").exists());
        assert!(kept.exists(), "a folder that was there before stays");
    }

    #[test]
    fn exchange_swaps_two_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), b"new").unwrap();
        std::fs::write(b.join("x"), b"old").unwrap();
        exchange(&a, &b).unwrap();
        assert_eq!(std::fs::read_to_string(b.join("x")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(a.join("x")).unwrap(), "old");
    }

    #[test]
    fn append_links_existing_files_and_lists_only_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, target) = (dir.path().join(".t.tmp"), dir.path().join("t"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("old.parquet"), b"1").unwrap();
        std::fs::write(target.join("theirs.txt"), b"2").unwrap();
        let m = Manifest::new("p", "s", "r0", vec!["old.parquet".into()]);
        std::fs::write(target.join(MANIFEST), m.to_bytes()).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("new.parquet"), b"3").unwrap();
        prepare(&staging, &target, false, true, ("p", "s", "r1")).unwrap();
        let staged = read_local(&staging.join(MANIFEST)).unwrap();
        assert_eq!(staged.files, vec!["new.parquet", "old.parquet"]);
        assert!(
            staging.join("theirs.txt").exists(),
            "append keeps other files"
        );
        swap(&staging, &target, false, &dir.path().join(".aside")).unwrap();
        assert!(is_done(&staging, &target, false, "r1"));
        cleanup(&staging, &dir.path().join(".aside")).unwrap();
        assert_eq!(
            local_files(&target),
            vec!["new.parquet", "old.parquet", "theirs.txt"]
        );
    }
}
