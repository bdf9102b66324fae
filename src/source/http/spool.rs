//! The spool: one temporary file per fetch holding every page's records, appended as
//! responses arrive and read back by offset by every scan. The file has no name on disk
//! (it is unlinked when created), so it goes away with the process whatever happens.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

/// A place in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Where it starts.
    pub offset: u64,
    /// How long it is.
    pub len: u64,
}

/// An append-only temporary file.
#[derive(Debug)]
pub struct Spool {
    file: File,
    end: Mutex<u64>,
}

impl Spool {
    /// A new spool in `dir` (the engine's spill folder), or the system's temp folder.
    pub fn create(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(Self {
            file,
            end: Mutex::new(0),
        })
    }

    /// Appends bytes; returns where they are.
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<Span> {
        let offset = {
            let mut end = self.end.lock().unwrap_or_else(|e| e.into_inner());
            let at = *end;
            *end += bytes.len() as u64;
            at
        };
        // Positioned writes to reserved ranges: appends from several tasks do not wait for
        // each other's I/O.
        self.file.write_all_at(bytes, offset)?;
        Ok(Span {
            offset,
            len: bytes.len() as u64,
        })
    }

    /// Reads a span back.
    pub fn read(&self, span: Span) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; span.len as usize];
        self.file.read_exact_at(&mut buf, span.offset)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_back_what_was_appended() {
        let s = Spool::create(None).unwrap();
        let a = s.append(b"hello\n").unwrap();
        let b = s.append(b"world\n").unwrap();
        assert_eq!(s.read(b).unwrap(), b"world\n");
        assert_eq!(s.read(a).unwrap(), b"hello\n");
    }
}
