//! What can go wrong with a store, named with the path, account and
//! property involved.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Account, MAX_KEY_LEN, MAX_MAP_SIZE, lock_path};
use crate::sys::strerror;

/// Errors carry the path, account and property involved; never a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: no such file", .0.display())]
    NotFound(PathBuf),
    #[error(
        "{}: is a symbolic link (to {}); LMDB would keep the lock file beside the link, not beside the data file, so processes opening the data file by another name could corrupt it; use the real path",
        .path.display(), .target.display()
    )]
    Symlink { path: PathBuf, target: PathBuf },
    #[error("{}: is a directory", .0.display())]
    IsDirectory(PathBuf),
    #[error("{}: not a regular file", .0.display())]
    NotRegular(PathBuf),
    #[error("{}: not an LMDB sasldb file (wrong magic number); left untouched", .0.display())]
    NotLmdb(PathBuf),
    #[error("{}: {}", .path.display(), strerror(.source))]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{}: {}; every LMDB reader and writer must be able to open the lock file read-write (or create it)",
        .lock.display(), strerror(.source)
    )]
    LockAccess { lock: PathBuf, source: io::Error },
    #[error("{}: LMDB: {source}", .path.display())]
    Lmdb { path: PathBuf, source: lmdb::Error },
    #[error("user {:?} in realm {:?}: key for property {property} would be {len} bytes; LMDB keys are limited to {MAX_KEY_LEN}",
        String::from_utf8_lossy(&.account.authid), String::from_utf8_lossy(&.account.realm))]
    KeyTooLong {
        account: Account,
        property: String,
        len: usize,
    },
    #[error("user {:?} in realm {:?}: contains a NUL byte",
        String::from_utf8_lossy(&.account.authid), String::from_utf8_lossy(&.account.realm))]
    Nul { account: Account },
    #[error("{}: map size would exceed {MAX_MAP_SIZE} bytes", .0.display())]
    MapLimit(PathBuf),
    #[error("{}: opened read-only", .0.display())]
    ReadOnly(PathBuf),
    /// A PostgreSQL store: `target` is its URL without the password.
    #[error("{target}: {message}")]
    Pg { target: String, message: String },
    #[error("user {:?} in realm {:?}: {what} is not valid UTF-8 text (or holds NUL); a PostgreSQL store holds text only, so it is refused, not altered",
        String::from_utf8_lossy(&.account.authid), String::from_utf8_lossy(&.account.realm))]
    NotText { account: Account, what: String },
    /// Returned by a [`super::Store::write`] closure to abandon the
    /// transaction for a reason of its own (which it keeps and reports).
    #[error("{}: transaction abandoned", .0.display())]
    Abandoned(PathBuf),
}

impl StoreError {
    /// A failed environment open. LMDB opens `<path>-lock` read-write first,
    /// even for readers, and reports a refused lock file as a failure of the
    /// data file: name the lock file when the data file itself is accessible.
    pub(super) fn open(path: &Path, writable: bool, source: lmdb::Error) -> Self {
        if source == lmdb::Error::Other(libc::EACCES)
            && fs::OpenOptions::new()
                .read(true)
                .write(writable)
                .open(path)
                .is_ok()
        {
            return StoreError::LockAccess {
                lock: lock_path(path),
                source: io::Error::from_raw_os_error(libc::EACCES),
            };
        }
        StoreError::lmdb(path, source)
    }

    pub(super) fn lmdb(path: &Path, source: lmdb::Error) -> Self {
        match source {
            // LMDB passes errno values through; show them as the OS does.
            lmdb::Error::Other(code) if code > 0 => StoreError::Io {
                path: path.to_path_buf(),
                source: io::Error::from_raw_os_error(code),
            },
            lmdb::Error::Invalid => StoreError::NotLmdb(path.to_path_buf()),
            source => StoreError::Lmdb {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    pub(super) fn is_map_full(&self) -> bool {
        matches!(
            self,
            StoreError::Lmdb {
                source: lmdb::Error::MapFull,
                ..
            }
        )
    }

    /// True when the store does not exist (read-only open of a missing file).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound(_))
    }
}
