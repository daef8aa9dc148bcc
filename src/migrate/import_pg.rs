//! Import into PostgreSQL: every record of an old sasldb into table
//! sasldb, in one transaction (`saslpasswd --import OLD -f postgresql://...`).
//!
//! As for LMDB, the source is checked in full first (a damaged file fails
//! before the database is touched), a key the table holds with another value
//! is a conflict unless `replace`, and a dry run counts without writing.
//!
//! What a text column cannot hold is never altered: a record whose name or
//! value is not UTF-8 text (or holds NUL; old Cyrus wrote binary
//! `cmusaslsecret*` secrets), whose key is not `user\0realm\0property`, or
//! whose value is empty (Cyrus's sql plugin would then accept an empty
//! password) stops the import, naming the accounts, unless
//! `skip_unstorable`: then those records are left out and listed in the
//! report, and everything else goes in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::import::{
    ImportOptions, ImportReport, SHOWN, Tally, account_name, after_txn, finish_walk,
};
use super::{MigrateError, Result, for_each_record};
use crate::store::pg::PgStore;
use crate::store::{Account, key};

/// One record as the table would hold it, or why it cannot be.
fn storable(k: &[u8], v: &[u8]) -> std::result::Result<(Account, String), &'static str> {
    let d = key::decode(k).ok_or("not a user\\0realm\\0property key")?;
    let text = |b: &[u8]| std::str::from_utf8(b).is_ok_and(|s| !s.contains('\0'));
    if ![d.authid, d.realm, d.property, v].into_iter().all(text) {
        return Err("not UTF-8 text");
    }
    if v.is_empty() {
        return Err("an empty value");
    }
    let property = String::from_utf8_lossy(d.property).into_owned();
    Ok((Account::new(d.authid, d.realm), property))
}

fn describe(k: &[u8], why: &str) -> String {
    let property = key::decode(k).map_or_else(String::new, |d| {
        format!(" {}", String::from_utf8_lossy(d.property).escape_debug())
    });
    format!("{}{property} ({why})", account_name(k).escape_debug())
}

/// Import `source` into the table behind `pg`. `progress(done, total)` is
/// called as records are compared.
pub fn import_pg(
    source: &Path,
    pg: &PgStore,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    // First pass: every page checked, the accounts and the unstorable records found.
    let mut accounts = BTreeSet::new();
    let mut unstorable = Vec::new();
    let mut records = 0usize;
    let format = for_each_record(source, |k, v| {
        records += 1;
        match storable(k, v) {
            Ok((a, _)) => {
                accounts.insert(a);
            }
            Err(why) => unstorable.push(describe(k, why)),
        }
        Ok(())
    })?;
    let target = PathBuf::from(pg.target());
    if !unstorable.is_empty() && !opts.skip_unstorable {
        let shown: Vec<&str> = unstorable.iter().take(SHOWN).map(String::as_str).collect();
        return Err(MigrateError::Bad {
            path: source.to_path_buf(),
            what: format!(
                "{} record(s) a PostgreSQL text column cannot hold: {}{}; nothing was written (--skip-unstorable imports the rest and lists these)",
                unstorable.len(),
                shown.join(", "),
                if unstorable.len() > SHOWN {
                    ", ..."
                } else {
                    ""
                }
            ),
        });
    }
    let accounts: Vec<&Account> = accounts.iter().collect();
    let mut failed = None;
    let tally = pg.write(&accounts, !opts.dry_run, |w| {
        let mut tally = Tally::default();
        let mut done = 0;
        let walked = for_each_record(source, |k, v| {
            done += 1;
            if done % 4096 == 0 {
                progress(done, records);
            }
            let Ok((account, property)) = storable(k, v) else {
                return Ok(());
            };
            if tally.classify(k, w.get(&account, &property), v, opts.replace) {
                w.put(&account, &property, v)?;
            }
            Ok(())
        });
        finish_walk(walked, tally, &target, &mut failed)
    });
    let tally = after_txn(tally, failed)?;
    progress(records, records);
    Ok(ImportReport {
        format: Some(format),
        records,
        added: tally.added,
        unchanged: tally.unchanged,
        replaced: tally.replaced,
        skipped: unstorable,
        ..ImportReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_with_a_value_is_storable() {
        let (a, p) =
            storable(b"alice\0example.org\0userPassword", "pässword".as_bytes()).expect("storable");
        assert_eq!(
            (a, p.as_str()),
            (Account::new("alice", "example.org"), "userPassword")
        );
        assert_eq!(
            storable(b"bob\0r\0cmusaslsecretCRAM-MD5", b"\x8f\x00\xff"),
            Err("not UTF-8 text")
        );
        assert_eq!(
            storable(b"b\xffb\0r\0userPassword", b"x"),
            Err("not UTF-8 text")
        );
        assert_eq!(
            storable(b"bob\0r\0userPassword", b""),
            Err("an empty value")
        );
        assert_eq!(
            storable(b"odd key", b"v"),
            Err("not a user\\0realm\\0property key")
        );
        assert_eq!(
            describe(b"bob\0r\0cmusaslsecretCRAM-MD5", "not UTF-8 text"),
            "bob@r cmusaslsecretCRAM-MD5 (not UTF-8 text)"
        );
    }
}
