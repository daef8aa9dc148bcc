//! Migration sources: the sasldb files that exist today, read-only.
//!
//! Debian and Ubuntu build Cyrus SASL with Berkeley DB 5.3 (hash), Fedora,
//! RHEL and Arch with GDBM; upstream moved to LMDB, the layout [`crate::store`]
//! writes. [`sniff`] tells them apart by content, never by name;
//! [`for_each_record`] walks any of them as raw `(key, value)` pairs, the
//! keys in Cyrus's `authid\0realm\0property` form, so listing and
//! [`import`] share one path whatever the source.
//!
//! The readers ([`bdb`], [`gdbm`]) are our own, read-only, and read a page
//! or a bucket at a time; every structure they follow is checked against
//! the file first, so a truncated, damaged or looping file ends in one
//! [`MigrateError`] line naming it. [`detect`] and [`advice`] are what the
//! doctor needs to recognise an old store and say how to move it.

pub mod bdb;
pub mod gdbm;
pub mod import;
pub mod import_pg;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::store::{self, OpenOptions, Store, StoreError};

/// A migration failure: one line naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{}: {}", .path.display(), crate::sys::strerror(.source))]
    Io { path: PathBuf, source: io::Error },
    /// A file that is damaged, truncated, or not what it should be.
    #[error("{}: {what}", .path.display())]
    Bad { path: PathBuf, what: String },
    /// A file of no format this crate knows.
    #[error("{}: not a sasldb file (neither Berkeley DB hash, GDBM nor LMDB)", .0.display())]
    Foreign(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Import: the target holds other values for these accounts.
    #[error(
        "{}: {} account(s) already hold different values: {}{}; nothing was written (--replace overwrites them)",
        .target.display(), .count, .shown, if *.count > 10 { ", ..." } else { "" }
    )]
    Conflicts {
        target: PathBuf,
        count: usize,
        shown: String,
    },
}

impl MigrateError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        MigrateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn bad(path: &Path, what: impl Into<String>) -> Self {
        MigrateError::Bad {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

pub type Result<T, E = MigrateError> = std::result::Result<T, E>;

/// What a file holds, by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Berkeley DB, hash access method (Debian, Ubuntu).
    BerkeleyDbHash,
    /// GDBM (Fedora, RHEL, Arch).
    Gdbm,
    /// LMDB, Cyrus's layout (this suite, upstream Cyrus).
    Lmdb,
    /// A 0-byte file: an empty store to every reader.
    Empty,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::BerkeleyDbHash => "Berkeley DB hash",
            Format::Gdbm => "GDBM",
            Format::Lmdb => "LMDB",
            Format::Empty => "empty file",
        }
    }
}

const GDBM_MAGICS: [u32; 5] = [
    0x1357_9ace, // GDBM_OMAGIC (before 1.9)
    0x1357_9acd, // GDBM_MAGIC32
    0x1357_9acf, // GDBM_MAGIC64
    0x1357_9ad0, // GDBM_NUMSYNC_MAGIC32 (1.21+)
    0x1357_9ad1, // GDBM_NUMSYNC_MAGIC64
];
const LMDB_MAGIC: u32 = 0xBEEF_C0DE;

fn either_order(b: &[u8], at: usize) -> [u32; 2] {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    [u32::from_le_bytes(a), u32::from_be_bytes(a)]
}

/// The format of the first bytes of a file (sans-I/O core of [`sniff`]).
pub fn sniff_bytes(path: &Path, head: &[u8]) -> Result<Format> {
    if head.is_empty() {
        return Ok(Format::Empty);
    }
    if head.len() >= 4
        && either_order(head, 0)
            .iter()
            .any(|m| GDBM_MAGICS.contains(m))
    {
        return Ok(Format::Gdbm);
    }
    if head.len() >= 20 {
        // LMDB writes its meta page in native order only.
        if u32::from_ne_bytes([head[16], head[17], head[18], head[19]]) == LMDB_MAGIC {
            return Ok(Format::Lmdb);
        }
        let m = either_order(head, 12);
        if m.contains(&bdb::HASH_MAGIC) {
            return Ok(Format::BerkeleyDbHash);
        }
        let other = if m.contains(&bdb::BTREE_MAGIC) {
            Some("btree or recno")
        } else if m.contains(&bdb::QUEUE_MAGIC) {
            Some("queue")
        } else if m.contains(&bdb::HEAP_MAGIC) {
            Some("heap")
        } else {
            None
        };
        if let Some(kind) = other {
            return Err(MigrateError::bad(
                path,
                format!("a Berkeley DB {kind} file; a sasldb is a hash file"),
            ));
        }
    }
    Err(MigrateError::Foreign(path.to_path_buf()))
}

/// The format of a file, by content.
pub fn sniff(path: &Path) -> Result<Format> {
    // A directory opens, and then fails to read: EISDIR names it.
    let mut file = File::open(path).map_err(|e| MigrateError::io(path, e))?;
    let mut head = Vec::with_capacity(512);
    file.by_ref()
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| MigrateError::io(path, e))?;
    sniff_bytes(path, &head)
}

/// Call `f` with every `(key, value)` of a sasldb in any readable format, in
/// the order its own tools list them. Stops at the first error.
pub fn for_each_record(
    path: &Path,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<Format> {
    let format = sniff(path)?;
    // Another program's database of the same format has records, but none
    // of them a sasldb key: refused once the walk has seen them all.
    let (mut records, mut sasldb) = (0usize, 0usize);
    let mut f = |k: &[u8], v: &[u8]| {
        records += 1;
        sasldb += usize::from(store::key::decode(k).is_some());
        f(k, v)
    };
    match format {
        Format::Empty => {}
        Format::BerkeleyDbHash => bdb::HashFile::open(path)?.for_each(&mut f)?,
        Format::Gdbm => gdbm::GdbmFile::open(path)?.for_each(&mut f)?,
        Format::Lmdb => {
            let store = Store::open_read(path, &OpenOptions::default())?;
            let mut failed = None;
            store.read(|view| {
                view.raw_each(|k, v| match f(k, v) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                })
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    if records > 0 && sasldb == 0 {
        return Err(MigrateError::bad(
            path,
            format!(
                "a {} database of another program: none of its {records} keys is a sasldb key (user\\0realm\\0property)",
                format.name()
            ),
        ));
    }
    Ok(format)
}

/// What [`detect`] found: for the doctor and the import's preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub format: Format,
    /// Distinct `authid@realm` pairs.
    pub accounts: usize,
    /// Every key, well-formed or not.
    pub records: usize,
}

/// Read a whole file (checking every page) and count what it holds.
pub fn detect(path: &Path) -> Result<Detected> {
    let mut records = 0;
    // Hash order groups nothing, so distinct accounts need a set.
    let mut accounts = std::collections::HashSet::new();
    let format = for_each_record(path, |k, _| {
        records += 1;
        if let Some(d) = store::key::decode(k) {
            accounts.insert(store::key::account_prefix(d.authid, d.realm));
        }
        Ok(())
    })?;
    Ok(Detected {
        format,
        accounts: accounts.len(),
        records,
    })
}

/// What the doctor says about a store in an old format ([`detect`]): the
/// finding, the exact import command, and the Postfix change that follows.
/// `queue_directory` is Postfix's (for the socket path).
pub fn advice(path: &Path, found: &Detected, queue_directory: &Path) -> Vec<String> {
    let old = {
        let mut p = path.as_os_str().to_os_string();
        p.push(match found.format {
            Format::Gdbm => ".gdbm",
            _ => ".bdb",
        });
        PathBuf::from(p)
    };
    let (store, old) = (shell_quote(path), shell_quote(&old));
    vec![
        format!(
            "{} is a {} sasldb with {} account(s) ({} records); this suite serves LMDB stores",
            path.display(),
            found.format.name(),
            found.accounts,
            found.records
        ),
        format!("import it: mv {store} {old} && saslpasswd --import {old} -f {store}"),
        format!(
            "then serve Postfix from the socket: smtpd-auth -o sasldb_path={store} -o dovecot_auth_socket={}",
            shell_quote(&queue_directory.join("private/auth"))
        ),
        "and in main.cf: smtpd_sasl_type = dovecot, smtpd_sasl_path = private/auth; then postfix reload".into(),
    ]
}

/// A path as a shell word: as is when safe, else single-quoted.
fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
pub(crate) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Every record a reader's walk yields, or its error's text (unit tests).
#[cfg(test)]
pub(crate) fn collect(
    walk: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()>,
) -> Result<Records, String> {
    let mut out = Vec::new();
    walk(&mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(head: &[u8]) -> Result<Format> {
        sniff_bytes(Path::new("f"), head)
    }

    #[test]
    fn formats_by_content() {
        let mut b = vec![0u8; 512];
        b[12..16].copy_from_slice(&bdb::HASH_MAGIC.to_le_bytes());
        assert_eq!(sniffed(&b).ok(), Some(Format::BerkeleyDbHash));
        b[12..16].copy_from_slice(&bdb::HASH_MAGIC.to_be_bytes());
        assert_eq!(sniffed(&b).ok(), Some(Format::BerkeleyDbHash));
        for m in GDBM_MAGICS {
            assert_eq!(sniffed(&m.to_le_bytes()).ok(), Some(Format::Gdbm));
            assert_eq!(sniffed(&m.to_be_bytes()).ok(), Some(Format::Gdbm));
        }
        let mut l = vec![0u8; 64];
        l[16..20].copy_from_slice(&LMDB_MAGIC.to_ne_bytes());
        assert_eq!(sniffed(&l).ok(), Some(Format::Lmdb));
        assert_eq!(sniffed(b"").ok(), Some(Format::Empty));
    }

    #[test]
    fn advice_names_the_exact_commands() {
        let found = Detected {
            format: Format::BerkeleyDbHash,
            accounts: 3,
            records: 5,
        };
        let a = advice(
            Path::new("/etc/sasldb2"),
            &found,
            Path::new("/var/spool/postfix"),
        );
        assert!(
            a[0].contains("Berkeley DB hash sasldb with 3 account(s) (5 records)"),
            "{a:?}"
        );
        assert_eq!(
            a[1],
            "import it: mv /etc/sasldb2 /etc/sasldb2.bdb && saslpasswd --import /etc/sasldb2.bdb -f /etc/sasldb2"
        );
        assert!(
            a[2].ends_with("dovecot_auth_socket=/var/spool/postfix/private/auth"),
            "{a:?}"
        );
        let a = advice(Path::new("/srv/it's here"), &found, Path::new("/q"));
        assert!(a[1].contains("-f '/srv/it'\\''s here'"), "{a:?}");
    }

    #[test]
    fn other_berkeley_db_files_are_named() {
        for (magic, word) in [
            (bdb::BTREE_MAGIC, "btree"),
            (bdb::QUEUE_MAGIC, "queue"),
            (bdb::HEAP_MAGIC, "heap"),
        ] {
            let mut b = vec![0u8; 512];
            b[12..16].copy_from_slice(&magic.to_be_bytes());
            let e = sniffed(&b).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                e.starts_with("f: a Berkeley DB ") && e.contains(word),
                "{e}"
            );
        }
        let e = sniffed(b"hello, this is not a database at all")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a sasldb file"), "{e}");
    }
}
