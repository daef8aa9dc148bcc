//! The copy of the store inside Postfix's chroot, kept current through
//! LMDB's own transactions.
//!
//! Postfix's smtpd processes keep the copy open between logins, so it is
//! never replaced by renaming a new file over it (they would keep reading
//! the old inode until they exit) and never hard-linked to the source (one
//! data file with two lock files: a writer using one lock file cannot see
//! readers registered in the other and may reuse pages they still read).
//! Instead each publication compares the two stores and applies the
//! difference in one write transaction on the copy: a reader sees the old
//! state or the new one, never a mix.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::store::{OpenOptions, Store, StoreError};
pub use crate::sys::same_file;

/// What a publication changed in the copy.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// The copy's map grew from, to (bytes): Postfix's smtpd processes that
    /// have it open fail their next lookup until restarted.
    pub map_grew: Option<(usize, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{dest}: is a hard link of {src}: one data file with two lock files lets a writer reuse pages readers still use; run saslpasswd --doctor --fix"
    )]
    HardLink { dest: String, src: String },
    #[error("{path}: {}", crate::sys::strerror(.err))]
    Io { path: String, err: io::Error },
}

/// Make `dest` hold exactly what `source` holds, in one transaction.
pub fn publish(source: &Store, dest: &Path, opts: &OpenOptions) -> Result<Published, PublishError> {
    if same_file(source.path(), dest) {
        return Err(PublishError::HardLink {
            dest: dest.display().to_string(),
            src: source.path().display().to_string(),
        });
    }
    if let Some(dir) = dest.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|err| PublishError::Io {
                path: dir.display().to_string(),
                err,
            })?;
    }
    let wanted = source.read(|v| v.raw_entries())?;
    let copy = Store::open_write(dest, opts)?;
    copy.reserve(wanted.iter().map(|(k, v)| k.len() + v.len() + 16).sum())?;
    let stats = copy.write(|w| {
        let have = w.raw_entries()?;
        let mut stats = Published::default();
        let (mut i, mut j) = (0, 0);
        // Both lists are in LMDB key order: one merge pass finds the difference.
        while i < wanted.len() || j < have.len() {
            let order = match (wanted.get(i), have.get(j)) {
                (Some((wk, _)), Some((hk, _))) => wk.cmp(hk),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    w.put_raw(&wanted[i].0, &wanted[i].1)?;
                    stats.added += 1;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    w.delete_raw(&have[j].0)?;
                    stats.removed += 1;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if wanted[i].1 != have[j].1 {
                        w.put_raw(&wanted[i].0, &wanted[i].1)?;
                        stats.changed += 1;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(stats)
    })?;
    let changed = stats.added + stats.changed + stats.removed > 0;
    Ok(Published {
        map_grew: copy.map_growth().filter(|_| changed),
        ..stats
    })
}
