//! `saslpasswd --doctor [--fix] [--json]`: checks of the store and of the
//! Postfix SASL setup around it; each problem is explained with a fix, and
//! `--fix` repairs what can be repaired safely.
//!
//! The work is split in three, one module each:
//! - [`gather()`] collects [`facts`] at the edge: the store's files and
//!   content, what `postconf` says (main.cf and the master.cf `-o`
//!   overrides of every smtpd service), the SASL application config
//!   Postfix's libsasl reads, libsasl's sasldb plugin, and what Postfix's
//!   user (`mail_owner`) can really open, tested by [`probe`]: this binary
//!   run as that user (with its supplementary groups) in a child process.
//! - [`check`] is a pure function of those facts, so unit tests drive every
//!   rule without touching the machine; its rules live in [`checks`], one
//!   module per area (the first part of a finding's id), each a
//!   `check(&Facts) -> Vec<Finding>` with its unit tests beside it.
//! - [`fix`] applies the repairs findings ask for; [`report`] counts the
//!   findings and renders them as text or JSON. Printing and the exit
//!   status are the command line's (`cli::doctor`).
//!
//! # Checks
//! Each check yields one finding per subject (a file, a service, an
//! application config), `ok` when nothing is wrong. Ids are stable:
//!
//! | id | what | `--fix` |
//! |----|------|---------|
//! | `store.file` | the store exists, is a regular file and opens as an LMDB sasldb | |
//! | `store.perms` | never accessible to other users; with Postfix: data `root:<group>` 0640, lock 0660 | owner and modes (the store's two paths only) |
//! | `store.access` | Postfix's user really opens the store read-only | through `store.perms` |
//! | `migrate.import` | (only when the store is a Berkeley DB or GDBM sasldb) its accounts, the `saslpasswd --import` command and the Postfix change | |
//! | `postfix.config` | `postconf` answers for the configuration directory | |
//! | `chroot.present` | the copy at `<queue_directory>/etc/<name>` exists when smtpd runs chrooted | publish |
//! | `chroot.hard_link` | the copy is not a hard link of the store | remove the link, publish a real copy |
//! | `chroot.content` | the copy holds exactly the store's keys and values | publish |
//! | `chroot.perms` | as `store.perms`, for the copy (its lock file group-writable) | owner and modes |
//! | `chroot.access` | Postfix's user really opens the copy read-only | through the above |
//! | `sasl.config` | which `<smtpd_sasl_path>.conf` libsasl reads; syntax; files it ignores | |
//! | `sasl.pwcheck_method` | known verifiers; `alwaystrue` | |
//! | `sasl.auxprop_plugin` | sasldb queried; the sql plugin's `sql_select option missing` | |
//! | `sasl.mech_list` | mechanisms left after `smtpd_sasl_security_options` (per service) | |
//! | `sasl.cram_digest` | CRAM-MD5/DIGEST-MD5 offered while accounts lack `userPassword` | |
//! | `libsasl.db_format` | the database format of the installed sasldb plugin vs this LMDB store | |
//! | `realm.postfix` | accounts in the realm Postfix looks up (`smtpd_sasl_local_domain`, else `myhostname`) | |
//! | `postfix.sasl_auth_enable` | some smtpd service has `smtpd_sasl_auth_enable = yes` | |
//! | `postfix.restrictions` | `permit_sasl_authenticated` before `reject_unauth_destination` (per service) | |
//! | `postfix.tls_auth_only` | plaintext mechanisms only after STARTTLS (per service) | |
//! | `postfix.auth_socket` | with `smtpd_sasl_type = dovecot`: the socket exists | |
//! | `postfix.sasl_type` | `smtpd_sasl_type` is cyrus or dovecot | |
//!
//! # Output
//! Text (default): findings grouped under `ok:`, `warning:` and `error:`,
//! each `[id] message`, problems followed by `fix: hint`, then a count line.
//! `--json` prints one object, schema `sasldb-doctor/1`:
//!
//! ```json
//! {
//!   "schema": "sasldb-doctor/1",
//!   "store": "/etc/sasldb2",
//!   "findings": [
//!     {"id": "store.perms", "level": "ok", "subject": "/etc/sasldb2",
//!      "message": "...", "hint": null, "fixed": true, "was": "..."}
//!   ],
//!   "errors": 0,
//!   "warnings": 0,
//!   "fixed": 1
//! }
//! ```
//!
//! `level` is `ok`, `warning` or `error`; `subject` names what the finding
//! is about (a path, `service/type`, or a program); `hint` is null or how to
//! fix it; `fixed` is true when `--fix` repaired it in this run, and then
//! `was` holds the message before the repair (null otherwise). Fields are
//! only ever added under this schema name. The exit status is 0 when no
//! error remains (warnings allowed), 1 otherwise.
//!
//! # Test hooks
//! `SASLDB_DOCTOR_SASL_PATH` (colon-separated directories) replaces
//! libsasl's own search path after `<config_dir>/sasl`, so tests never read
//! the machine's `/etc/sasl2`; `SASLDB_DOCTOR_PROBE_EXE` names the binary run
//! as Postfix's user (default: this one).

pub mod checks;
pub mod facts;
pub mod fix;
pub mod gather;
pub mod pg;
pub mod probe;
pub mod report;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::Deployment;
use crate::store::OpenOptions;

pub use facts::Facts;
pub use fix::{apply_fixes, mark_fixed};
pub use gather::gather;
pub use probe::{PROBE_ARG, probe_main};
pub use report::{Report, SCHEMA};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Ok,
    Warning,
    Error,
}

/// A repair `--fix` may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fix {
    /// `root:<group>` 0640/0660 on the store's two paths.
    StorePerms,
    /// Remove a hard-linked copy (and its lock file), then publish.
    ReplaceHardLink,
    /// Bring the chroot copy up to date in one LMDB transaction.
    Publish,
    /// `root:<group>` 0640/0660 on the copy's two paths.
    CopyPerms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub level: Level,
    pub subject: String,
    pub message: String,
    pub hint: Option<String>,
    pub fixed: bool,
    /// The message before `--fix` repaired it.
    pub was: Option<String>,
    #[serde(skip)]
    pub fix: Option<Fix>,
}

impl Finding {
    pub(crate) fn new(id: &'static str, level: Level, subject: &str, message: String) -> Finding {
        Finding {
            id,
            level,
            subject: subject.to_string(),
            message,
            hint: None,
            fixed: false,
            was: None,
            fix: None,
        }
    }

    pub fn ok(id: &'static str, subject: &str, message: String) -> Finding {
        Finding::new(id, Level::Ok, subject, message)
    }

    pub fn warning(id: &'static str, subject: &str, message: String, hint: String) -> Finding {
        Finding::new(id, Level::Warning, subject, message).hint(hint)
    }

    pub fn error(id: &'static str, subject: &str, message: String, hint: String) -> Finding {
        Finding::new(id, Level::Error, subject, message).hint(hint)
    }

    pub(crate) fn hint(mut self, hint: String) -> Finding {
        self.hint = Some(hint);
        self
    }

    pub(crate) fn with_fix(mut self, fix: Option<Fix>) -> Finding {
        if self.level != Level::Ok {
            self.fix = fix;
        }
        self
    }
}

/// Every finding for these facts, area by area.
pub fn check(f: &Facts) -> Vec<Finding> {
    [
        checks::store::check,
        checks::migrate::check,
        checks::chroot::check,
        checks::sasl::check,
        checks::libsasl::check,
        checks::realm::check,
        checks::postfix::check,
    ]
    .iter()
    .flat_map(|area| area(f))
    .collect()
}

/// Gather, check and, with `fix` and a deployment, repair what can be
/// repaired and check again: the findings as they stand at the end.
pub fn diagnose(
    store: &Path,
    opts: &OpenOptions,
    deploy: Option<&Deployment>,
    fix: bool,
) -> Report {
    let mut findings = check(&gather(store, opts, deploy));
    if fix && let Some(d) = deploy {
        let wanted: BTreeSet<Fix> = findings
            .iter()
            .filter(|f| f.level != Level::Ok)
            .filter_map(|f| f.fix)
            .collect();
        if !wanted.is_empty() {
            let failed = apply_fixes(&wanted, d, opts);
            let before = findings;
            findings = check(&gather(store, opts, deploy));
            mark_fixed(&before, &mut findings, &failed);
        }
    }
    Report::new(store, findings)
}

/// "1 key", "2 keys".
pub(crate) fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// A user's name, or its number when it has none.
pub(crate) fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// A group's name, or its number when it has none.
pub(crate) fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}
