//! Moving or deleting a run's input files: the commit-journal entry and its roll-forward.
//!
//! Every step can be repeated: a file still at its place and unchanged is moved (a rename
//! locally, falling back to copy and delete across file systems; copy then delete in an
//! object store), one that is gone was moved already, one that changed since the run read it
//! is left where it is and reported.

use std::path::Path;

use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::model::Pipeline;
use crate::validate::is_url;

/// The files of one source to move or delete after the commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moves {
    /// The source.
    pub source: String,
    /// The connection with object-store credentials, if any.
    #[serde(default)]
    pub connection: Option<String>,
    /// The files.
    pub files: Vec<FileMove>,
    /// What applying did (not journaled).
    #[serde(skip)]
    outcome: Outcome,
}

/// One file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileMove {
    /// Where it is (an absolute path or a URL).
    pub from: String,
    /// Where it goes; `None`: deleted.
    pub to: Option<String>,
    /// Its size when the run listed it.
    pub size: u64,
    /// Its modification time then (RFC 3339).
    pub modified: String,
    /// Its ETag then, in an object store.
    #[serde(default)]
    pub e_tag: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Outcome {
    done: usize,
    gone: usize,
    changed: Vec<String>,
}

/// Where a file is relative to what the run read.
enum State {
    /// Unchanged, still there.
    Same,
    /// Something else is there now.
    Changed,
    /// Nothing is there (moved or deleted already).
    Gone,
}

impl Moves {
    /// The entry for a source's files.
    pub fn new(source: &str, connection: Option<&str>, files: Vec<FileMove>) -> Self {
        Self {
            source: source.to_string(),
            connection: connection.map(str::to_string),
            files,
            outcome: Outcome::default(),
        }
    }

    fn store(
        &self,
        ctx: &SessionContext,
        p: &Pipeline,
        location: &str,
    ) -> Result<
        (
            std::sync::Arc<dyn object_store::ObjectStore>,
            object_store::path::Path,
        ),
        String,
    > {
        let conn = self
            .connection
            .as_deref()
            .and_then(|c| crate::source::pipeline_connection(p, c));
        crate::store::ensure_store(ctx, location, conn).map_err(|e| e.to_string())?;
        crate::sink::objstore::store_of(ctx, location)
            .ok_or_else(|| format!("no object store for {location}"))
    }

    async fn state(
        &self,
        ctx: &SessionContext,
        p: &Pipeline,
        f: &FileMove,
    ) -> Result<State, String> {
        if !is_url(&f.from) {
            return Ok(match std::fs::metadata(&f.from) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::Gone,
                Err(e) => return Err(format!("{}: {e}", f.from)),
                Ok(md) => {
                    let modified = md
                        .modified()
                        .map(|t| {
                            chrono::DateTime::<chrono::Utc>::from(t)
                                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                        })
                        .unwrap_or_default();
                    if md.len() == f.size && modified == f.modified {
                        State::Same
                    } else {
                        State::Changed
                    }
                }
            });
        }
        let (store, path) = self.store(ctx, p, &f.from)?;
        Ok(match store.head(&path).await {
            Err(object_store::Error::NotFound { .. }) => State::Gone,
            Err(e) => return Err(format!("{}: {e}", f.from)),
            Ok(meta) => {
                let same = match (&f.e_tag, &meta.e_tag) {
                    (Some(a), Some(b)) => a == b,
                    _ => {
                        meta.size == f.size
                            && meta
                                .last_modified
                                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                                == f.modified
                    }
                };
                if same { State::Same } else { State::Changed }
            }
        })
    }

    /// True when no file is left to move (every one moved, gone or changed).
    pub async fn is_done(&self, ctx: &SessionContext, p: &Pipeline) -> Result<bool, String> {
        for f in &self.files {
            if matches!(self.state(ctx, p, f).await?, State::Same) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Moves or deletes every file still there as the run read it.
    pub async fn apply(&mut self, ctx: &SessionContext, p: &Pipeline) -> Result<(), String> {
        let mut outcome = Outcome::default();
        for f in &self.files {
            match self.state(ctx, p, f).await? {
                State::Gone => outcome.gone += 1,
                State::Changed => outcome
                    .changed
                    .push(crate::secrets::redact(&f.from).into_owned()),
                State::Same => {
                    self.one(ctx, p, f).await?;
                    outcome.done += 1;
                    crate::fault::point("after_commit");
                }
            }
        }
        if let Some(f) = self.files.first().filter(|f| !is_url(&f.from)) {
            for dir in [Some(&f.from), f.to.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|x| Path::new(x).parent())
            {
                crate::state::sync_dir(dir);
            }
        }
        self.outcome = outcome;
        Ok(())
    }

    async fn one(&self, ctx: &SessionContext, p: &Pipeline, f: &FileMove) -> Result<(), String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", f.from);
        if !is_url(&f.from) {
            return match &f.to {
                None => std::fs::remove_file(&f.from).map_err(|e| fail(&e)),
                Some(to) => move_local(Path::new(&f.from), Path::new(to)).map_err(|e| fail(&e)),
            };
        }
        let (store, from) = self.store(ctx, p, &f.from)?;
        if let Some(to) = &f.to {
            let (_, to_path) = self.store(ctx, p, to)?;
            store.copy(&from, &to_path).await.map_err(|e| fail(&e))?;
        }
        store.delete(&from).await.map_err(|e| fail(&e))
    }

    /// What applying did, for the run summary.
    pub fn summary(&self) -> String {
        let o = &self.outcome;
        let files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
        let mut s = match self.files.first().and_then(|f| f.to.as_ref()) {
            Some(to) => format!(
                "after commit: moved {} to {}",
                files(o.done),
                to.rsplit_once('/').map(|x| x.0).unwrap_or(to)
            ),
            None => format!("after commit: deleted {}", files(o.done)),
        };
        if o.gone > 0 {
            s.push_str(&format!("; {} already gone", files(o.gone)));
        }
        if !o.changed.is_empty() {
            s.push_str(&format!(
                "; {} changed after the run read them, left in place ({})",
                files(o.changed.len()),
                o.changed.join(", ")
            ));
        }
        s
    }
}

/// Renames a file into place, creating its folder; copies and deletes across file systems.
fn move_local(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let tmp = to.with_extension("etl-moving");
            std::fs::copy(from, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// `target`, or when something is there already, the name with the run's id added
/// (`a.csv` → `a-1a2b3c4d.csv`), so an archived file is never replaced.
pub async fn free_name(ctx: &SessionContext, target: &str, run8: &str) -> String {
    let exists = if is_url(target) {
        match crate::sink::objstore::store_of(ctx, target) {
            Some((store, path)) => store.head(&path).await.is_ok(),
            None => false,
        }
    } else {
        Path::new(target).exists()
    };
    if !exists {
        return target.to_string();
    }
    let (dir, name) = target.rsplit_once('/').unwrap_or(("", target));
    let (stem, ext) = match name.split_once('.') {
        Some((s, e)) => (s, format!(".{e}")),
        None => (name, String::new()),
    };
    format!("{dir}/{stem}-{run8}{ext}")
}
