//! Ownership and modes Postfix's processes can read through, and nobody
//! else: data file `root:<group>` 0640, lock file `root:<group>` 0660 (LMDB
//! readers must open the lock file read-write).
//!
//! Files are changed through descriptors opened with `O_NOFOLLOW`, so a
//! symbolic link planted at either path is refused rather than followed,
//! and nothing but the store's own two paths is ever touched.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::store::lock_path;

pub const DATA_MODE: u32 = 0o640;
pub const LOCK_MODE: u32 = 0o660;

/// Who should own the store's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PermsError {
    #[error("no group {0:?} on this system")]
    NoGroup(String),
    #[error("no user {0:?} on this system")]
    NoUser(String),
    #[error("{}: {}", .path.display(), crate::sys::strerror(.source))]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: is a symbolic link; refusing to change it", .0.display())]
    Symlink(PathBuf),
    #[error("{}: not a regular file", .0.display())]
    NotRegular(PathBuf),
}

/// The group Postfix reads the store through: `configured` if given; else
/// `sasl` when the mail owner is a member (Debian's convention); else the
/// mail owner's primary group.
pub fn postfix_group(
    mail_owner: &str,
    configured: Option<&str>,
) -> Result<(String, u32), PermsError> {
    use nix::unistd::{Group, User};
    if let Some(name) = configured {
        let g = Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| PermsError::NoGroup(name.to_string()))?;
        return Ok((g.name, g.gid.as_raw()));
    }
    let user = User::from_name(mail_owner)
        .ok()
        .flatten()
        .ok_or_else(|| PermsError::NoUser(mail_owner.to_string()))?;
    if let Some(sasl) = Group::from_name("sasl").ok().flatten()
        && sasl.mem.iter().any(|m| m == mail_owner)
    {
        return Ok((sasl.name, sasl.gid.as_raw()));
    }
    let primary = Group::from_gid(user.gid)
        .ok()
        .flatten()
        .ok_or_else(|| PermsError::NoGroup(user.gid.to_string()))?;
    Ok((primary.name, primary.gid.as_raw()))
}

/// What [`apply`] changed, for messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub files: Vec<String>,
}

fn fix_one(
    path: &Path,
    own: Ownership,
    mode: u32,
    changed: &mut Changed,
) -> Result<(), PermsError> {
    let io_err = |source| PermsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(PermsError::Symlink(path.to_path_buf()));
        }
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(PermsError::NotRegular(path.to_path_buf()));
    }
    let fd = file.as_raw_fd();
    if meta.uid() != own.uid || meta.gid() != own.gid {
        // SAFETY: fd is an open descriptor owned by `file`.
        if unsafe { libc::fchown(fd, own.uid, own.gid) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        changed.files.push(format!("{}: owner", path.display()));
    }
    if meta.mode() & 0o7777 != mode {
        // SAFETY: as above.
        if unsafe { libc::fchmod(fd, mode) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        changed
            .files
            .push(format!("{}: mode {:o}", path.display(), mode));
    }
    Ok(())
}

/// Set owner and modes of a store's data and lock files. A missing lock
/// file is not an error (LMDB creates it on the next open).
pub fn apply(store: &Path, own: Ownership) -> Result<Changed, PermsError> {
    let mut changed = Changed::default();
    fix_one(store, own, DATA_MODE, &mut changed)?;
    let lock = lock_path(store);
    match fix_one(&lock, own, LOCK_MODE, &mut changed) {
        Err(PermsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    Ok(changed)
}

/// Can this process's real user open `path` for `mode` (`libc::R_OK`...)?
pub fn access(path: &Path, mode: i32) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}
