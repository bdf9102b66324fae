//! One run of a pipeline at a time: an OS file lock in the pipeline's state folder.
//!
//! The lock is `flock`-style (`File::try_lock`): the operating system releases it when the
//! process ends, however it ends, so a killed run never leaves a stale lock behind. The file
//! also holds who has it (pid, start time, run id) so a second run can say who is in the way.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held pipeline lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct PipelineLock {
    file: std::fs::File,
    path: PathBuf,
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another run of pipeline `{pipeline}` is in progress (pid {holder}); {waited}")]
    Held {
        /// The pipeline.
        pipeline: String,
        /// What the holder wrote: pid, start time and run id.
        holder: String,
        /// What was tried.
        waited: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock pipeline `{pipeline}` at {path}: {error}")]
    Io {
        /// The pipeline.
        pipeline: String,
        /// The lock file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

impl PipelineLock {
    /// Takes the lock of `pipeline` in `state_dir`. With `wait`, retries until it is free or
    /// the time is up (`Duration::MAX` waits for ever); without, fails at once when held.
    pub fn acquire(
        state_dir: &Path,
        pipeline: &str,
        run_id: &str,
        wait: Option<Duration>,
    ) -> Result<Self, LockError> {
        let path = super::pipeline_dir(state_dir, pipeline).join("lock");
        let io = |error| LockError::Io {
            pipeline: pipeline.to_string(),
            path: path.display().to_string(),
            error,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(25);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            let waited = started.elapsed();
            match wait {
                Some(limit) if waited < limit => {
                    std::thread::sleep(delay.min(limit - waited));
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                _ => {
                    let waited = match wait {
                        None => "wait for it to finish, or pass `--wait` to wait for the lock"
                            .to_string(),
                        Some(_) => format!(
                            "gave up after waiting {}",
                            humantime::format_duration(Duration::from_secs(waited.as_secs()))
                        ),
                    };
                    return Err(LockError::Held {
                        pipeline: pipeline.to_string(),
                        holder: holder(&mut file),
                        waited,
                    });
                }
            }
        }
        let info = format!(
            "{}, started {}, run {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            run_id
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(info.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(io)?;
        Ok(Self { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// What the holder wrote into the lock file.
fn holder(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.take(512).read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "unknown".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_named_then_lock_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = PipelineLock::acquire(dir.path(), "p", "run1", None).unwrap();
        let err = PipelineLock::acquire(dir.path(), "p", "run2", None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains("run run1"), "{msg}");
        let waited =
            PipelineLock::acquire(dir.path(), "p", "run2", Some(Duration::from_millis(100)));
        assert!(matches!(waited, Err(LockError::Held { .. })));
        // Another pipeline in the same state folder is not in the way.
        PipelineLock::acquire(dir.path(), "q", "run3", None).unwrap();
        drop(first);
        PipelineLock::acquire(dir.path(), "p", "run4", None).unwrap();
    }
}
