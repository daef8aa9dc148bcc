//! Import: every record of an old sasldb into the LMDB store, bytes exact,
//! in one write transaction.
//!
//! The source is read twice and never held in memory: a first pass checks
//! every page (a damaged file fails before the target is touched) and counts
//! the records; the second copies them inside the transaction. A key the
//! target already holds with another value is a conflict: then nothing is
//! written unless `replace` is set. On any failure the target is left as it
//! was, and a target this import created is removed again.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::{Format, MigrateError, Result, for_each_record};
use crate::store::{self, MAX_KEY_LEN, OpenOptions, Store, StoreError};
use crate::sys::same_file;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Overwrite keys the target holds with other values.
    pub replace: bool,
    /// Count what would change; write and create nothing.
    pub dry_run: bool,
    /// PostgreSQL: skip records a text column cannot hold (reported in
    /// [`ImportReport::skipped`]) instead of refusing the import.
    pub skip_unstorable: bool,
    pub open: OpenOptions,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub format: Option<Format>,
    pub records: usize,
    pub added: usize,
    pub unchanged: usize,
    pub replaced: usize,
    /// The target did not exist before (dry run: would be created).
    pub created: bool,
    /// Map size of the target before and after, in bytes (0 when unknown).
    pub map_before: usize,
    pub map_after: usize,
    /// PostgreSQL with `skip_unstorable`: the records left out, each as
    /// `user@realm property (why)`.
    pub skipped: Vec<String>,
}

impl ImportReport {
    /// True when the import grew an existing store's map: processes that
    /// keep it open (Postfix's smtpd, Cyrus IMAP) with a Cyrus SASL LMDB
    /// backend fail on the next transaction and must be restarted.
    pub fn map_grew(&self) -> bool {
        !self.created && self.map_after > self.map_before
    }
}

/// How many conflicting accounts a message names.
pub(super) const SHOWN: usize = 10;

/// Tally of one pass over the source against the target.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) added: usize,
    pub(super) unchanged: usize,
    pub(super) replaced: usize,
    /// Every conflicting account (the message names the first few).
    conflicts: BTreeSet<String>,
}

impl Tally {
    /// Classify one record against the target's value for its key; true
    /// when the record should be written.
    pub(super) fn classify(
        &mut self,
        key: &[u8],
        old: Option<&[u8]>,
        new: &[u8],
        replace: bool,
    ) -> bool {
        match old {
            None => {
                self.added += 1;
                true
            }
            Some(old) if old == new => {
                self.unchanged += 1;
                false
            }
            Some(_) if replace => {
                self.replaced += 1;
                true
            }
            Some(_) => {
                self.conflicts.insert(account_name(key));
                false
            }
        }
    }

    pub(super) fn conflicts(&self, target: &Path) -> Option<MigrateError> {
        if self.conflicts.is_empty() {
            return None;
        }
        let shown: Vec<&str> = self
            .conflicts
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        Some(MigrateError::Conflicts {
            target: target.to_path_buf(),
            count: self.conflicts.len(),
            shown: shown.join(", "),
        })
    }
}

/// `authid@realm` for messages (the raw key, lossily, when malformed).
pub(super) fn account_name(key: &[u8]) -> String {
    match store::key::decode(key) {
        Some(d) => format!(
            "{}@{}",
            String::from_utf8_lossy(d.authid),
            String::from_utf8_lossy(d.realm)
        ),
        None => String::from_utf8_lossy(key).replace('\0', "\\0"),
    }
}

/// First pass: check the whole source and count its records and bytes.
pub(super) fn survey(source: &Path) -> Result<(Format, usize, usize)> {
    let mut records = 0usize;
    let mut bytes = 0usize;
    let format = for_each_record(source, |k, v| {
        if k.is_empty() || k.len() > MAX_KEY_LEN {
            return Err(MigrateError::Bad {
                path: source.to_path_buf(),
                what: format!(
                    "record {} ({}): a key of {} bytes; LMDB keys hold 1 to {MAX_KEY_LEN}",
                    records + 1,
                    account_name(k),
                    k.len()
                ),
            });
        }
        records += 1;
        bytes = bytes.saturating_add(k.len() + v.len());
        Ok(())
    })?;
    Ok((format, records, bytes))
}

/// Import `source` into the LMDB store at `target`. `progress(done, total)`
/// is called as records are copied.
pub fn import(
    source: &Path,
    target: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    if same_file(source, target) {
        return Err(MigrateError::Bad {
            path: source.to_path_buf(),
            what: "is the import's target too; move the old file aside first (mv /etc/sasldb2 /etc/sasldb2.old) and import from there".into(),
        });
    }
    let (format, records, bytes) = survey(source)?;
    let mut report = ImportReport {
        format: Some(format),
        records,
        ..ImportReport::default()
    };
    let existed = fs::symlink_metadata(target).is_ok();
    report.created = !existed;
    if opts.dry_run {
        let mut tally = Tally::default();
        if existed {
            let store = Store::open_read(target, &opts.open)?;
            report.map_before = store.map_size();
            report.map_after = store.map_needed(bytes)?;
            store.read(|view| {
                let r = for_each_record(source, |k, v| {
                    tally.classify(k, view.get_raw(k)?, v, opts.replace);
                    Ok(())
                });
                Ok(r)
            })??;
        } else {
            tally.added = records;
        }
        if let Some(e) = tally.conflicts(target) {
            return Err(e);
        }
        report.added = tally.added;
        report.unchanged = tally.unchanged;
        report.replaced = tally.replaced;
        return Ok(report);
    }
    let lock = store::lock_path(target);
    let lock_existed = fs::symlink_metadata(&lock).is_ok();
    let outcome = copy(source, target, opts, records, bytes, progress, &mut report);
    if outcome.is_err() {
        // Leave nothing behind that was not there before.
        // The lock file only with a store this import made: a process that
        // opened an existing store meanwhile holds the lock file open, and
        // removing it would split its readers from the next process's.
        if !existed {
            let _ = fs::remove_file(target);
            if !lock_existed {
                let _ = fs::remove_file(&lock);
            }
        }
    }
    outcome.map(|()| report)
}

/// The end of a walk inside a store transaction: conflicts fail it too; a
/// store error goes up as it is (LMDB's `write` grows a full map and runs
/// the walk again), any other failure is kept in `failed` and abandons the
/// transaction.
pub(super) fn finish_walk(
    walked: Result<super::Format>,
    tally: Tally,
    target: &Path,
    failed: &mut Option<MigrateError>,
) -> std::result::Result<Tally, StoreError> {
    match walked.and_then(|_| tally.conflicts(target).map_or(Ok(()), Err)) {
        Ok(()) => Ok(tally),
        Err(MigrateError::Store(e)) => Err(e),
        Err(e) => {
            *failed = Some(e);
            Err(StoreError::Abandoned(target.to_path_buf()))
        }
    }
}

/// The transaction's outcome, the kept failure first.
pub(super) fn after_txn(
    tally: std::result::Result<Tally, StoreError>,
    failed: Option<MigrateError>,
) -> Result<Tally> {
    match failed {
        Some(e) => Err(e),
        None => Ok(tally?),
    }
}

fn copy(
    source: &Path,
    target: &Path,
    opts: &ImportOptions,
    records: usize,
    bytes: usize,
    progress: &mut dyn FnMut(usize, usize),
    report: &mut ImportReport,
) -> Result<()> {
    if !report.created {
        report.map_before = Store::open_read(target, &opts.open)?.map_size();
    }
    // The map grows (in one large step, see `store::GENEROUS_MAP`) only
    // when the data needs it; a new store starts generous anyway.
    let store = Store::open_write(target, &opts.open)?;
    store.reserve(bytes)?;
    let mut failed: Option<MigrateError> = None;
    let tally = store.write(|view| {
        let mut tally = Tally::default();
        let mut done = 0;
        let walked = for_each_record(source, |k, v| {
            if tally.classify(k, view.get_raw(k)?, v, opts.replace) {
                view.put_raw(k, v)?;
            }
            done += 1;
            if done % 4096 == 0 {
                progress(done, records);
            }
            Ok(())
        });
        finish_walk(walked, tally, target, &mut failed)
    });
    let tally = after_txn(tally, failed)?;
    progress(records, records);
    report.added = tally.added;
    report.unchanged = tally.unchanged;
    report.replaced = tally.replaced;
    // An import that wrote nothing committed nothing: the recorded map is
    // what it was, whatever this process mapped.
    report.map_after = if tally.added + tally.replaced > 0 {
        store.map_size()
    } else {
        report.map_before
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_accounts_once_and_count_the_rest() {
        let mut t = Tally::default();
        for i in 0..25 {
            let key = format!("user{i:02}\0realm\0userPassword");
            assert!(!t.classify(key.as_bytes(), Some(b"old"), b"new", false));
            let key = format!("user{i:02}\0realm\0cmusaslsecretPLAIN");
            t.classify(key.as_bytes(), Some(b"old"), b"new", false);
        }
        let msg = t
            .conflicts(Path::new("/t"))
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.starts_with("/t: "), "{msg}");
        assert!(msg.contains("user00@realm, user01@realm"), "{msg}");
        assert!(!msg.contains("user10@realm"), "{msg}");
        assert!(msg.contains("nothing was written"), "{msg}");
    }

    #[test]
    fn lmdb_to_lmdb_with_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let src = Store::open_write(&old, &OpenOptions::default()).expect("open");
        src.write(|w| {
            for i in 0..5000 {
                w.put_raw(format!("u{i}\0r\0userPassword").as_bytes(), b"pw")?;
            }
            w.put_raw(b"odd key", b"kept as is")
        })
        .expect("write");
        drop(src);
        let mut calls = Vec::new();
        let report = import(&old, &new, &ImportOptions::default(), &mut |d, t| {
            calls.push((d, t))
        })
        .expect("import");
        assert_eq!(
            (report.records, report.added, report.created),
            (5001, 5001, true)
        );
        assert_eq!(calls, vec![(4096, 5001), (5001, 5001)]);
        let copy = Store::open_read(&new, &OpenOptions::default()).expect("open");
        let got = copy.read(|v| v.raw_entries()).expect("read");
        let want = Store::open_read(&old, &OpenOptions::default())
            .and_then(|s| s.read(|v| v.raw_entries()))
            .expect("read");
        assert_eq!(got, want);
        assert!(copy.map_size() >= store::GENEROUS_MAP);
    }

    #[test]
    fn classify_counts() {
        let mut t = Tally::default();
        assert!(t.classify(b"a\0r\0p", None, b"v", false));
        assert!(!t.classify(b"a\0r\0q", Some(b"v"), b"v", false));
        assert!(t.classify(b"a\0r\0s", Some(b"w"), b"v", true));
        assert_eq!((t.added, t.unchanged, t.replaced), (1, 1, 1));
        assert!(t.conflicts(Path::new("/t")).is_none());
    }
}
