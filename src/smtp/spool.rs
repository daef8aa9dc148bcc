//! Message bodies beyond a small in-memory buffer live in a spool file
//! (`<smtpd_auth_state_dir>/spool`), so many clients in DATA cost disk, not
//! memory. A spool file is created with O_EXCL and mode 0600, and unlinked
//! when dropped: after the final reply, and on every error or disconnect
//! path (dropping the session future drops it). Files left by a crash are
//! removed at start.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Spool {
        Spool { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the directory (mode 0700) if missing.
    pub fn ensure_dir(&self) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    /// Remove files left by an earlier run; returns how many. A missing
    /// directory is not an error (it is made at the first spill).
    pub fn remove_stale(&self) -> io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// A new, empty spool file named after the queue id.
    pub fn create(&self, qid: &str) -> io::Result<SpoolFile> {
        self.ensure_dir()?;
        let path = self.dir.join(qid);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(SpoolFile { path, file, len: 0 })
    }
}

/// One message body on disk; unlinked on drop.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl SpoolFile {
    /// Local-disk writes of at most a spill buffer: brief enough to do in
    /// place, as Postfix's smtpd writes its queue file.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A message body: in memory when small, else in a spool file.
#[derive(Debug)]
pub enum Body {
    Memory(Vec<u8>),
    Spooled(SpoolFile),
}

/// What delivery reads: our Received header, then the body. Shared by the
/// deliveries of one message (Maildir copies run on blocking threads).
#[derive(Debug)]
pub struct Message {
    pub header: Vec<u8>,
    pub body: Body,
}

/// Bytes per read when a message is copied out.
pub const CHUNK: usize = 64 * 1024;

impl Message {
    pub fn new(header: Vec<u8>, body: Body) -> Arc<Message> {
        Arc::new(Message { header, body })
    }

    pub fn len(&self) -> u64 {
        self.header.len() as u64
            + match &self.body {
                Body::Memory(v) => v.len() as u64,
                Body::Spooled(f) => f.len,
            }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` bytes from `offset` (empty at the end). Spooled bodies
    /// are read with pread, so copies for several recipients do not share
    /// a file position.
    pub fn read_at(&self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let h = self.header.len() as u64;
        if offset < h {
            let start = offset as usize;
            let end = self.header.len().min(start + max);
            return Ok(self.header[start..end].to_vec());
        }
        let off = offset - h;
        match &self.body {
            Body::Memory(v) => {
                let start = usize::try_from(off).unwrap_or(usize::MAX).min(v.len());
                let end = v.len().min(start.saturating_add(max));
                Ok(v[start..end].to_vec())
            }
            Body::Spooled(f) => {
                let want = usize::try_from(f.len.saturating_sub(off))
                    .unwrap_or(usize::MAX)
                    .min(max);
                let mut buf = vec![0u8; want];
                f.file.read_exact_at(&mut buf, off)?;
                Ok(buf)
            }
        }
    }

    /// Copy the whole message to `w`, a chunk at a time.
    pub fn copy_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut offset = 0;
        loop {
            let chunk = self.read_at(offset, CHUNK)?;
            if chunk.is_empty() {
                return Ok(());
            }
            w.write_all(&chunk)?;
            offset += chunk.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_files_are_private_exclusive_and_unlinked_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path().join("spool"));
        let mut f = spool.create("ABC").unwrap();
        let path = f.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(spool.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(spool.create("ABC").is_err(), "O_EXCL");
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        let m = Message::new(b"H: 1\r\n".to_vec(), Body::Spooled(f));
        assert_eq!(m.len(), 17);
        let mut out = Vec::new();
        m.copy_to(&mut out).unwrap();
        assert_eq!(out, b"H: 1\r\nhello world");
        assert_eq!(m.read_at(8, 3).unwrap(), b"llo");
        drop(m);
        assert!(!path.exists());
    }

    #[test]
    fn stale_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path().join("spool"));
        assert_eq!(spool.remove_stale().unwrap(), 0);
        spool.ensure_dir().unwrap();
        std::fs::write(spool.dir().join("OLD1"), b"x").unwrap();
        std::fs::write(spool.dir().join("OLD2"), b"x").unwrap();
        assert_eq!(spool.remove_stale().unwrap(), 2);
        assert_eq!(std::fs::read_dir(spool.dir()).unwrap().count(), 0);
    }

    #[test]
    fn memory_bodies_read_in_chunks() {
        let m = Message::new(b"AB".to_vec(), Body::Memory(b"cdef".to_vec()));
        let mut got = Vec::new();
        let mut off = 0;
        loop {
            let c = m.read_at(off, 3).unwrap();
            if c.is_empty() {
                break;
            }
            off += c.len() as u64;
            got.extend(c);
        }
        assert_eq!(got, b"ABcdef");
    }
}
