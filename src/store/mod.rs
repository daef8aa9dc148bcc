//! The credential store: a sasldb file in Cyrus SASL's LMDB layout.
//!
//! Layout (what makes a Cyrus SASL built with LMDB read our file and us read
//! its): the environment is opened with `MDB_NOSUBDIR`, so the data file sits
//! at the path and LMDB's lock file at `<path>-lock`; one unnamed database;
//! keys `authid\0realm\0property` (see [`key`]); raw values. Files are created
//! `0660 & ~umask`, exactly as Cyrus creates them.
//!
//! What this module adds over Cyrus: every change runs in one write
//! transaction ([`Store::write`]), so a command's properties commit together or
//! not at all; the map grows by itself when LMDB reports it full and the new
//! size is persisted by that commit; readers that outlive another process's
//! growth re-adopt the map size instead of failing. Nothing outside this module
//! sees LMDB. [`pg`] is the other backend (a PostgreSQL table Cyrus's `sql`
//! plugin reads); [`backend`] is what the tools use to treat both alike.

mod account;
pub mod backend;
mod error;
pub mod key;
pub mod pg;
pub mod pg_pool;
pub mod pg_tls;

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use lmdb::{Cursor, Database, Environment, EnvironmentFlags, Transaction, WriteFlags};

pub use account::Account;
pub use backend::{Records, RecordsMut};
pub use error::StoreError;
pub use key::MAX_KEY_LEN;

/// Cyrus's default sasldb path (also what `saslpasswd -f ''` means).
pub const DEFAULT_SASLDB: &str = "/etc/sasldb2";

/// Cyrus's creation mode for both files (the umask still applies).
pub const CREATE_MODE: u32 = 0o660;

/// The map never grows past this: 1 TiB of address space, far beyond any
/// user table, but a bound so a runaway writer cannot map without limit.
pub const MAX_MAP_SIZE: usize = 1 << 40;

/// The map a new store records, and the least a growing one jumps to: 1 GiB
/// of address space (not disk: LMDB's file only grows with its data), room
/// for millions of accounts. A process that keeps the store open with a
/// smaller map (Cyrus's LMDB backend in Postfix's smtpd or Cyrus IMAP) fails
/// with `MDB_MAP_RESIZED` once the map grows under it, and Cyrus then
/// crashes; so the map starts large and, when it must grow, grows once in a
/// large step rather than doubling from LMDB's 1 MiB default.
pub const GENEROUS_MAP: usize = 1 << 30;

/// How often a transaction start re-adopts a map another process grew
/// before giving up. Growth only goes up and stops once every writer has
/// room, so this converges; the bound only stops a pathological loop (many
/// writers each doubling the map in turn needed more than a handful).
const MAX_RESIZE_RETRIES: usize = 1000;

/// LMDB data-file magic, found in the meta page right after the 16-byte page
/// header. Checked before opening so a foreign file is refused without LMDB
/// leaving a `-lock` file beside it.
const LMDB_MAGIC: u32 = 0xBEEF_C0DE;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tuning that Cyrus reads from `sasldb_mapsize` (KiB) and `sasldb_maxreaders`.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Initial map size in bytes; the file's recorded size wins when larger.
    pub map_size: Option<usize>,
    pub max_readers: Option<u32>,
}

/// An open sasldb file.
pub struct Store {
    path: PathBuf,
    /// `None` for a read-only open of a 0-byte file: LMDB would treat it as a
    /// new environment and try to write its meta pages.
    env: Option<(Environment, Database)>,
    writable: bool,
    /// LMDB forbids resizing the map while this process has a transaction
    /// open: transactions hold this shared, a resize holds it exclusively.
    resize: RwLock<()>,
    /// The map size before this process first grew it (0: never grew it).
    grown_from: AtomicUsize,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish()
    }
}

/// The lock file LMDB keeps beside a `MDB_NOSUBDIR` data file.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push("-lock");
    PathBuf::from(p)
}

/// What a map of `current` bytes grows to when `needed` bytes must fit: in
/// one large step (see [`GENEROUS_MAP`]), at least double, page-aligned,
/// never past [`MAX_MAP_SIZE`].
fn grown_map(current: usize, needed: usize, page: usize) -> usize {
    let page = page.max(1);
    let wanted = current
        .saturating_mul(2)
        .max(needed)
        .clamp(GENEROUS_MAP, MAX_MAP_SIZE);
    wanted
        .div_ceil(page)
        .saturating_mul(page)
        .min(MAX_MAP_SIZE)
        .max(current)
}

/// What is at the path before we open it.
enum Existing {
    Missing,
    Empty,
    Lmdb,
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse_symlink(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(StoreError::Symlink {
            path: path.to_path_buf(),
            target: fs::read_link(path).unwrap_or_default(),
        }),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn inspect(path: &Path) -> Result<Existing> {
    // A PostgreSQL URL reaching the file backend (a program that reads LMDB
    // only): refuse it by name, without the password it may carry.
    if pg::is_url(path.as_os_str().as_encoded_bytes()) {
        return Err(StoreError::Pg {
            target: pg::redacted_url(&path.to_string_lossy()),
            message: "this program reads LMDB sasldb files only; PostgreSQL stores work with saslpasswd and sasldblistusers".into(),
        });
    }
    let lock = lock_path(path);
    if let Some(m) = refuse_symlink(&lock)?
        && m.is_dir()
    {
        return Err(StoreError::IsDirectory(lock));
    }
    let Some(meta) = refuse_symlink(path)? else {
        return Ok(Existing::Missing);
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(StoreError::IsDirectory(path.to_path_buf()));
    }
    if !ft.is_file() || ft.is_fifo() {
        return Err(StoreError::NotRegular(path.to_path_buf()));
    }
    if meta.len() == 0 {
        return Ok(Existing::Empty);
    }
    let mut head = [0u8; 24];
    let mut f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    f.read_exact(&mut head)
        .map_err(|_| StoreError::NotLmdb(path.to_path_buf()))?;
    let magic = u32::from_ne_bytes([head[16], head[17], head[18], head[19]]);
    if magic != LMDB_MAGIC {
        return Err(StoreError::NotLmdb(path.to_path_buf()));
    }
    Ok(Existing::Lmdb)
}

impl Store {
    /// Open for reading. Never creates anything but LMDB's own lock file
    /// beside an existing store (as every LMDB reader does).
    pub fn open_read(path: &Path, opts: &OpenOptions) -> Result<Store> {
        match inspect(path)? {
            Existing::Missing => Err(StoreError::NotFound(path.to_path_buf())),
            Existing::Empty => Ok(Store {
                path: path.to_path_buf(),
                env: None,
                writable: false,
                resize: RwLock::new(()),
                grown_from: AtomicUsize::new(0),
            }),
            Existing::Lmdb => Self::open_env(path, opts, false, false),
        }
    }

    /// Open for writing, creating the store (`0660 & ~umask`) if missing. A
    /// 0-byte file is adopted as a new store, as Cyrus does.
    pub fn open_write(path: &Path, opts: &OpenOptions) -> Result<Store> {
        let existing = inspect(path)?;
        let existed = !matches!(existing, Existing::Missing);
        let lock = lock_path(path);
        let lock_existed = lock.exists();
        let r = Self::open_env(path, opts, true, !matches!(existing, Existing::Lmdb));
        if r.is_err() {
            // Leave nothing behind that was not there before.
            if !lock_existed {
                let _ = fs::remove_file(&lock);
            }
            if !existed
                && let Ok(m) = fs::symlink_metadata(path)
                && m.is_file()
                && m.len() == 0
            {
                let _ = fs::remove_file(path);
            }
        }
        r
    }

    /// `new`: the store is being created, so its first map is recorded now.
    fn open_env(path: &Path, opts: &OpenOptions, writable: bool, new: bool) -> Result<Store> {
        let mut builder = Environment::new();
        let mut flags = EnvironmentFlags::NO_SUB_DIR;
        if !writable {
            flags |= EnvironmentFlags::READ_ONLY;
        }
        builder.set_flags(flags);
        // A new store records the admin's `sasldb_mapsize` or a generous
        // map. An existing one keeps the map it records and only grows: a
        // map set before opening would replace the recorded one (LMDB takes
        // it as long as the data fits), shrinking it, and a consumer that
        // opens in between would meet the next growth.
        if new {
            builder.set_map_size(opts.map_size.unwrap_or(GENEROUS_MAP));
        }
        if let Some(n) = opts.max_readers {
            builder.set_max_readers(n);
        }
        let env = builder
            .open_with_permissions(path, CREATE_MODE)
            .map_err(|e| StoreError::open(path, writable, e))?;
        // Opening the database takes a transaction, which meets another
        // process's map growth like any other.
        let mut tries = 0;
        let db = loop {
            match env.open_db(None) {
                Err(lmdb::Error::MapResized) if tries < MAX_RESIZE_RETRIES => {
                    tries += 1;
                    env.set_map_size(0).map_err(|e| StoreError::lmdb(path, e))?;
                }
                other => break other.map_err(|e| StoreError::lmdb(path, e))?,
            }
        };
        if !new
            && let Some(size) = opts.map_size
            && env.info().is_ok_and(|i| i.map_size() < size)
        {
            env.set_map_size(size)
                .map_err(|e| StoreError::lmdb(path, e))?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            env: Some((env, db)),
            writable,
            resize: RwLock::new(()),
            grown_from: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes with every committed write, by this process or another
    /// (LMDB's last transaction id): a cache built from the store is stale
    /// when this moved. 0 for an empty read-only store.
    pub fn generation(&self) -> u64 {
        self.env
            .as_ref()
            .and_then(|(env, _)| env.info().ok())
            .map_or(0, |i| i.last_txnid() as u64)
    }

    /// Current map size in bytes (0 for an empty read-only store).
    pub fn map_size(&self) -> usize {
        self.env
            .as_ref()
            .and_then(|(env, _)| env.info().ok())
            .map(|i| i.map_size())
            .unwrap_or(0)
    }

    /// Run `f` in one read transaction. A map grown by another process since
    /// we opened (`MDB_MAP_RESIZED`) is adopted and the transaction retried.
    pub fn read<T>(&self, f: impl FnOnce(&ReadView<'_>) -> Result<T>) -> Result<T> {
        let Some((env, db)) = &self.env else {
            return f(&ReadView { txn: None });
        };
        for _ in 0..MAX_RESIZE_RETRIES {
            let _shared = self.resize.read().unwrap_or_else(|p| p.into_inner());
            match env.begin_ro_txn() {
                Ok(txn) => {
                    let view = ReadView {
                        txn: Some((Box::new(txn), *db, &self.path)),
                    };
                    return f(&view);
                }
                Err(lmdb::Error::MapResized) => {
                    drop(_shared);
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(StoreError::lmdb(&self.path, e)),
            }
        }
        Err(StoreError::lmdb(&self.path, lmdb::Error::MapResized))
    }

    fn adopt_map_size(&self) -> Result<()> {
        let Some((env, _)) = &self.env else {
            return Ok(());
        };
        let _excl = self.resize.write().unwrap_or_else(|p| p.into_inner());
        env.set_map_size(0)
            .map_err(|e| StoreError::lmdb(&self.path, e))
    }

    /// Grow the map by at least `hint` bytes (a full map: `hint` 0).
    fn grow(&self, hint: usize) -> Result<()> {
        let Some((env, _)) = &self.env else {
            return Ok(());
        };
        let _excl = self.resize.write().unwrap_or_else(|p| p.into_inner());
        let info = env.info().map_err(|e| StoreError::lmdb(&self.path, e))?;
        let current = info.map_size();
        if current >= MAX_MAP_SIZE {
            return Err(StoreError::MapLimit(self.path.clone()));
        }
        let wanted = grown_map(current, current.saturating_add(hint), self.page_size());
        env.set_map_size(wanted)
            .map_err(|e| StoreError::lmdb(&self.path, e))?;
        let _ = self
            .grown_from
            .compare_exchange(0, current, Ordering::SeqCst, Ordering::SeqCst);
        Ok(())
    }

    fn page_size(&self) -> usize {
        self.env
            .as_ref()
            .and_then(|(env, _)| env.stat().ok())
            .map_or(4096, |s| s.page_size() as usize)
    }

    /// `(before, now)` when this process grew the map: processes that keep
    /// the store open with a smaller map (Postfix's smtpd, Cyrus IMAP) fail
    /// their next lookup once the grown map is committed, and must be
    /// restarted, which the caller should say.
    pub fn map_growth(&self) -> Option<(usize, usize)> {
        match self.grown_from.load(Ordering::SeqCst) {
            0 => None,
            from => Some((from, self.map_size())),
        }
    }

    /// The map a write of about `bytes` new data needs: the current one when
    /// it has room, else what [`Store::reserve`] grows it to. Works on a
    /// read-only open too, so a dry run can say what a write would do.
    pub fn map_needed(&self, bytes: usize) -> Result<usize> {
        let Some((env, _)) = &self.env else {
            return Ok(GENEROUS_MAP);
        };
        let info = env.info().map_err(|e| StoreError::lmdb(&self.path, e))?;
        let page = self.page_size();
        let used = (info.last_pgno() + 1).saturating_mul(page);
        // B-tree pages run half full after random inserts, and LMDB needs
        // room for copy-on-write of the pages a transaction touches.
        let needed = used.saturating_add(bytes.saturating_mul(3));
        let current = info.map_size();
        Ok(if needed <= current {
            current
        } else {
            grown_map(current, needed, page)
        })
    }

    /// Make room for about `bytes` of new data before a large write, so a big
    /// batch does not have to be replayed once per doubling of the map.
    pub fn reserve(&self, bytes: usize) -> Result<()> {
        let current = self.map_size();
        let needed = self.map_needed(bytes)?;
        if needed > current {
            self.grow(needed - current)?;
        }
        Ok(())
    }

    /// Run `f` in one write transaction and commit it: everything `f` does
    /// lands together or not at all. When the map is full the transaction is
    /// aborted, the map grown and `f` run again from the start, so `f` must
    /// only act through the view.
    pub fn write<T>(&self, mut f: impl FnMut(&mut WriteView<'_>) -> Result<T>) -> Result<T> {
        if !self.writable {
            return Err(StoreError::ReadOnly(self.path.clone()));
        }
        let Some((env, db)) = &self.env else {
            return Err(StoreError::ReadOnly(self.path.clone()));
        };
        let mut resized = 0;
        loop {
            let shared = self.resize.read().unwrap_or_else(|p| p.into_inner());
            let txn = match env.begin_rw_txn() {
                Ok(t) => t,
                Err(lmdb::Error::MapResized) if resized < MAX_RESIZE_RETRIES => {
                    resized += 1;
                    drop(shared);
                    self.adopt_map_size()?;
                    continue;
                }
                Err(e) => return Err(StoreError::lmdb(&self.path, e)),
            };
            let mut view = WriteView {
                txn,
                db: *db,
                path: &self.path,
            };
            let outcome = f(&mut view).and_then(|v| {
                view.txn
                    .commit()
                    .map(|()| v)
                    .map_err(|e| StoreError::lmdb(&self.path, e))
            });
            drop(shared);
            match outcome {
                Err(e) if e.is_map_full() => self.grow(0)?,
                other => return other,
            }
        }
    }
}

/// One stored entry, as a listing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub authid: &'a [u8],
    pub realm: &'a [u8],
    pub property: &'a [u8],
    pub value: &'a [u8],
}

/// What a scan meets: an entry, or a key Cyrus could not parse.
pub enum Scanned<'a> {
    Entry(Entry<'a>),
    Malformed(&'a [u8]),
}

impl<'a> Scanned<'a> {
    /// A raw record as a scan sees it (also for records of other files).
    pub fn from_raw(key: &'a [u8], value: &'a [u8]) -> Self {
        match key::decode(key) {
            Some(d) => Scanned::Entry(Entry {
                authid: d.authid,
                realm: d.realm,
                property: d.property,
                value,
            }),
            None => Scanned::Malformed(key),
        }
    }
}

type RoTxnParts<'s> = (Box<lmdb::RoTransaction<'s>>, Database, &'s Path);

/// Reads inside one transaction: a consistent snapshot.
pub struct ReadView<'s> {
    txn: Option<RoTxnParts<'s>>,
}

fn get_in<'t>(
    txn: &'t impl Transaction,
    db: Database,
    path: &Path,
    key: &[u8],
) -> Result<Option<&'t [u8]>> {
    match txn.get(db, &key) {
        Ok(v) => Ok(Some(v)),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(StoreError::lmdb(path, e)),
    }
}

fn scan_in<'t>(
    txn: &'t impl Transaction,
    db: Database,
    path: &Path,
    from: &[u8],
    mut f: impl FnMut(Scanned<'t>) -> bool,
) -> Result<()> {
    let mut cursor = txn
        .open_ro_cursor(db)
        .map_err(|e| StoreError::lmdb(path, e))?;
    let iter = if from.is_empty() {
        cursor.iter_start()
    } else {
        cursor.iter_from(from)
    };
    for item in iter {
        let (k, v) = item.map_err(|e| StoreError::lmdb(path, e))?;
        if !f(Scanned::from_raw(k, v)) {
            break;
        }
    }
    Ok(())
}

fn properties_in<'t>(
    txn: &'t impl Transaction,
    db: Database,
    path: &Path,
    account: &Account,
) -> Result<Vec<(&'t [u8], &'t [u8])>> {
    let prefix = key::account_prefix(&account.authid, &account.realm);
    let mut out = Vec::new();
    if prefix.len() >= MAX_KEY_LEN {
        return Ok(out); // no key of this account fits in LMDB
    }
    scan_in(txn, db, path, &prefix, |s| match s {
        Scanned::Entry(e) if e.authid == account.authid && e.realm == account.realm => {
            out.push((e.property, e.value));
            true
        }
        Scanned::Malformed(k) if k.starts_with(&prefix) => true,
        _ => false,
    })?;
    Ok(out)
}

impl<'s> ReadView<'s> {
    /// One property's value.
    pub fn get(&self, account: &Account, property: &str) -> Result<Option<&[u8]>> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(None);
        };
        let Ok(k) = account.key(property) else {
            return Ok(None); // a key LMDB cannot hold is not stored
        };
        get_in(txn.as_ref(), *db, path, &k)
    }

    /// All properties of one account, in key order.
    pub fn properties(&self, account: &Account) -> Result<Vec<(&[u8], &[u8])>> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(Vec::new());
        };
        properties_in(txn.as_ref(), *db, path, account)
    }

    /// Walk every key in LMDB key order (what `sasldblistusers2` prints);
    /// `f` returns false to stop.
    pub fn scan(&self, f: impl FnMut(Scanned<'_>) -> bool) -> Result<()> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(());
        };
        scan_in(txn.as_ref(), *db, path, b"", f)
    }

    /// Every stored (key, value) exactly as stored, malformed keys included:
    /// what a byte-exact copy of the store needs.
    pub fn raw_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(Vec::new());
        };
        raw_in(txn.as_ref(), *db, path)
    }

    /// One value by its raw key.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(None);
        };
        get_in(txn.as_ref(), *db, path, key)
    }

    /// Every stored (key, value) as stored, without collecting them: for
    /// copies of stores too big to hold in memory. `f` returns false to stop.
    pub fn raw_each(&self, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let Some((txn, db, path)) = &self.txn else {
            return Ok(());
        };
        let mut cursor = txn
            .open_ro_cursor(*db)
            .map_err(|e| StoreError::lmdb(path, e))?;
        for item in cursor.iter_start() {
            let (k, v) = item.map_err(|e| StoreError::lmdb(path, e))?;
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}

fn raw_in(txn: &impl Transaction, db: Database, path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut cursor = txn
        .open_ro_cursor(db)
        .map_err(|e| StoreError::lmdb(path, e))?;
    let mut out = Vec::new();
    for item in cursor.iter_start() {
        let (k, v) = item.map_err(|e| StoreError::lmdb(path, e))?;
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// Reads and writes inside the one write transaction of [`Store::write`].
pub struct WriteView<'s> {
    txn: lmdb::RwTransaction<'s>,
    db: Database,
    path: &'s Path,
}

impl WriteView<'_> {
    pub fn get(&self, account: &Account, property: &str) -> Result<Option<&[u8]>> {
        let Ok(k) = account.key(property) else {
            return Ok(None);
        };
        get_in(&self.txn, self.db, self.path, &k)
    }

    pub fn properties(&self, account: &Account) -> Result<Vec<(&[u8], &[u8])>> {
        properties_in(&self.txn, self.db, self.path, account)
    }

    pub fn put(&mut self, account: &Account, property: &str, value: &[u8]) -> Result<()> {
        let k = account.key(property)?;
        self.txn
            .put(self.db, &k, &value, WriteFlags::empty())
            .map_err(|e| StoreError::lmdb(self.path, e))
    }

    /// Delete one property; false when it was not there (not an error, as in
    /// Cyrus). A key too long to exist cannot be there either.
    pub fn delete(&mut self, account: &Account, property: &str) -> Result<bool> {
        let k = match account.key(property) {
            Ok(k) => k,
            Err(StoreError::KeyTooLong { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.txn.del(self.db, &k, None) {
            Ok(()) => Ok(true),
            Err(lmdb::Error::NotFound) => Ok(false),
            Err(e) => Err(StoreError::lmdb(self.path, e)),
        }
    }

    pub fn scan(&self, f: impl FnMut(Scanned<'_>) -> bool) -> Result<()> {
        scan_in(&self.txn, self.db, self.path, b"", f)
    }

    /// See [`ReadView::raw_entries`].
    pub fn raw_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        raw_in(&self.txn, self.db, self.path)
    }

    /// One value by its raw key.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        get_in(&self.txn, self.db, self.path, key)
    }

    /// Store a raw key as given (copying another store byte for byte).
    pub fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.txn
            .put(self.db, &key, &value, WriteFlags::empty())
            .map_err(|e| StoreError::lmdb(self.path, e))
    }

    /// Delete a raw key; false when it was not there.
    pub fn delete_raw(&mut self, key: &[u8]) -> Result<bool> {
        match self.txn.del(self.db, &key, None) {
            Ok(()) => Ok(true),
            Err(lmdb::Error::NotFound) => Ok(false),
            Err(e) => Err(StoreError::lmdb(self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_grow_once_in_large_steps() {
        // LMDB's 1 MiB default jumps straight to the generous map.
        assert_eq!(grown_map(1 << 20, (1 << 20) + 4096, 4096), GENEROUS_MAP);
        // Past it: at least double, and at least what is needed.
        assert_eq!(
            grown_map(GENEROUS_MAP, GENEROUS_MAP + 1, 4096),
            2 * GENEROUS_MAP
        );
        assert_eq!(
            grown_map(GENEROUS_MAP, 3 * GENEROUS_MAP + 1, 4096),
            3 * GENEROUS_MAP + 4096
        );
        // Never beyond the limit, never smaller than the map is.
        assert_eq!(grown_map(1 << 39, usize::MAX, 4096), MAX_MAP_SIZE);
        assert_eq!(grown_map(1 << 41, 1 << 41, 4096), 1 << 41);
    }

    #[test]
    fn a_new_store_records_a_generous_map_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new");
        let s = Store::open_write(&new, &OpenOptions::default()).expect("open");
        s.write(|w| w.put_raw(b"a\0r\0userPassword", b"pw"))
            .expect("write");
        assert_eq!(s.map_size(), GENEROUS_MAP);
        assert_eq!(s.map_growth(), None);
        drop(s);
        // A smaller configured map neither shrinks it...
        let small = OpenOptions {
            map_size: Some(1 << 20),
            max_readers: None,
        };
        let s = Store::open_write(&new, &small).expect("open");
        assert_eq!(s.map_size(), GENEROUS_MAP);
        drop(s);
        // A new store gets the configured map when there is one.
        let old = dir.path().join("old");
        let s = Store::open_write(&old, &small).expect("open");
        s.write(|w| w.put_raw(b"a\0r\0userPassword", b"pw"))
            .expect("write");
        assert_eq!(s.map_size(), 1 << 20);
        // Room for 10 MiB more: one step to the generous map, reported.
        s.reserve(10 << 20).expect("reserve");
        assert_eq!(s.map_growth(), Some((1 << 20, GENEROUS_MAP)));
        assert_eq!(s.map_needed(10 << 20).expect("needed"), GENEROUS_MAP);
    }
}
