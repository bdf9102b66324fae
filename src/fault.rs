//! Fault points for crash tests (debug builds only).
//!
//! A commit that must survive `kill -9` at any step is tested by killing it at each step, not
//! by sleeping and hoping. Code calls [`point`] at the places a crash matters; in a debug
//! build the environment variable `ETL_FAULT` picks one hit of one point and what happens
//! there:
//!
//! - `ETL_FAULT=commit:3` — the process kills itself with SIGKILL at the third `commit` hit;
//! - `ETL_FAULT=staged:1:wait=/tmp/go` — at the first `staged` hit it waits until the file
//!   `/tmp/go` exists (so a test can start a second run while the first holds its lock).
//!
//! Release builds compile every point to nothing.

#[cfg(debug_assertions)]
use std::sync::Mutex;

#[cfg(debug_assertions)]
static HITS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Marks a fault point named `name`.
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    hit(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
fn hit(name: &str) {
    let Ok(spec) = std::env::var("ETL_FAULT") else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(target), Some(k)) = (parts.next(), parts.next()) else {
        return;
    };
    if target != name {
        return;
    }
    let Ok(k) = k.parse::<u64>() else { return };
    let n = {
        let mut hits = HITS.lock().unwrap_or_else(|e| e.into_inner());
        match hits.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                hits.push((name.to_string(), 1));
                1
            }
        }
    };
    if n != k {
        return;
    }
    match parts.next() {
        Some(action) if action.starts_with("wait=") => {
            let file = std::path::PathBuf::from(&action["wait=".len()..]);
            while !file.exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        _ => {
            crate::out::err_line(&format!("fault point {name}:{k}: killing the process"));
            // SAFETY: sending a signal to our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
