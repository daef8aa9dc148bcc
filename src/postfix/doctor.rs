//! `saslpasswd --doctor [--fix] [--json]`: checks of the store and of the
//! Postfix SASL setup around it; each problem is explained with a fix, and
//! `--fix` repairs what can be repaired safely.
//!
//! The work is split in two. [`gather`] collects facts at the edge: the
//! store's files and content, what `postconf` says (main.cf and the
//! master.cf `-o` overrides of every smtpd service), the SASL application
//! config Postfix's libsasl reads, libsasl's sasldb plugin, and what
//! Postfix's user (`mail_owner`) can really open, tested by running this
//! binary as that user (with its supplementary groups) in a child process.
//! [`check`] is a pure function of those facts, so unit tests drive every
//! rule without touching the machine.
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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::{Deployment, Postfix, PostfixError, perms, publish};
use crate::saslconf::security::{self, SecurityOptions};
use crate::saslconf::{self, SaslConfig};
use crate::store::{Account, OpenOptions, Store, key, lock_path};

/// Name of the JSON schema; bumped only for incompatible changes.
pub const SCHEMA: &str = "sasldb-doctor/1";
/// Hidden first argument: open a store read-only and exit (the probe run as
/// Postfix's user). Not part of the documented interface.
pub const PROBE_ARG: &str = "--doctor-probe-open";
/// Replaces libsasl's config search path after `<config_dir>/sasl`.
pub const SASL_PATH_ENV: &str = "SASLDB_DOCTOR_SASL_PATH";
/// The binary the probe runs as Postfix's user.
pub const PROBE_EXE_ENV: &str = "SASLDB_DOCTOR_PROBE_EXE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
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
    fn new(id: &'static str, level: Level, subject: &str, message: String) -> Finding {
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

    fn hint(mut self, hint: String) -> Finding {
        self.hint = Some(hint);
        self
    }

    fn with_fix(mut self, fix: Option<Fix>) -> Finding {
        if self.level != Level::Ok {
            self.fix = fix;
        }
        self
    }
}

// ---------------------------------------------------------------- facts

/// What is at a path (never following a symbolic link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Symlink,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
}

impl FileFacts {
    fn of(path: &Path) -> Option<FileFacts> {
        let m = fs::symlink_metadata(path).ok()?;
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Some(FileFacts {
            kind,
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        })
    }
}

/// Every stored key and value, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone)]
pub struct StoreFacts {
    pub path: PathBuf,
    /// None when nothing is at the path.
    pub data: Option<FileFacts>,
    pub lock: Option<FileFacts>,
    /// The content, or why it cannot be read.
    pub content: Result<Entries, String>,
    /// A foreign database format recognised by its magic number.
    pub foreign: Option<&'static str>,
}

/// What happened when Postfix's user tried to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Opened {
        keys: usize,
    },
    Refused(String),
    /// The test itself could not run (not root, binary not executable...).
    NotRun(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub path: PathBuf,
    pub user: String,
    /// The groups the user ran with, by name.
    pub groups: Vec<String>,
    pub outcome: ProbeOutcome,
}

/// One smtpd service with its effective parameters (main.cf overlaid with
/// its master.cf `-o` overrides); `main.cf` itself is one too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub chroot: bool,
    pub params: BTreeMap<String, String>,
}

impl Service {
    pub fn get(&self, key: &str) -> &str {
        self.params.get(key).map_or("", String::as_str)
    }

    fn sasl_type(&self) -> &str {
        match self.get("smtpd_sasl_type") {
            "" => "cyrus",
            t => t,
        }
    }

    fn sasl_path(&self) -> &str {
        match self.get("smtpd_sasl_path") {
            "" => "smtpd",
            p => p,
        }
    }
}

/// The parameters the checks read, fetched once through `postconf -x`.
pub const PARAMS: [&str; 16] = [
    "smtpd_sasl_auth_enable",
    "smtpd_sasl_type",
    "smtpd_sasl_path",
    "smtpd_sasl_security_options",
    "smtpd_sasl_tls_security_options",
    "smtpd_tls_auth_only",
    "smtpd_tls_security_level",
    "smtpd_use_tls",
    "smtpd_enforce_tls",
    "smtpd_tls_wrappermode",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "cyrus_sasl_config_path",
    "smtpd_sasl_local_domain",
    "myhostname",
    "queue_directory",
];

/// The SASL application config a Postfix service reads.
#[derive(Debug, Clone)]
pub struct SaslFacts {
    pub appname: String,
    pub searched: Vec<PathBuf>,
    /// Every `<appname>.conf` along the path, in search order: libsasl
    /// reads only the first.
    pub found: Vec<PathBuf>,
    pub config: Result<SaslConfig, String>,
}

/// The chroot copy.
#[derive(Debug, Clone)]
pub struct CopyFacts {
    pub path: PathBuf,
    pub data: Option<FileFacts>,
    pub lock: Option<FileFacts>,
    pub hard_link: bool,
    pub content: Result<Entries, String>,
    pub probe: Option<Probe>,
}

/// What is at a Dovecot-protocol socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    Socket,
    NotSocket,
    Missing,
    /// `inet:host:port`: not checked.
    Tcp,
}

#[derive(Debug, Clone)]
pub struct PostfixFacts {
    pub config_dir: PathBuf,
    pub mail_owner: String,
    pub group: String,
    pub ownership: perms::Ownership,
    pub realm: String,
    pub realm_source: &'static str,
    /// main.cf's values as a pseudo-service named `main.cf`.
    pub main: Service,
    pub services: Vec<Service>,
    pub copy: Option<CopyFacts>,
    /// By application name (`smtpd_sasl_path` of cyrus services).
    pub sasl: BTreeMap<String, SaslFacts>,
    /// By `smtpd_sasl_path` of dovecot services: (resolved path, state).
    pub sockets: BTreeMap<String, (PathBuf, SocketState)>,
    /// None when the store cannot be read at all (`store.file` says why).
    pub store_probe: Option<Probe>,
}

/// Database format of a sasldb plugin (or a store file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFormat {
    Lmdb,
    BerkeleyDb,
    Gdbm,
    Ndbm,
    Unknown,
}

impl DbFormat {
    pub fn name(self) -> &'static str {
        match self {
            DbFormat::Lmdb => "LMDB",
            DbFormat::BerkeleyDb => "Berkeley DB",
            DbFormat::Gdbm => "GDBM",
            DbFormat::Ndbm => "NDBM",
            DbFormat::Unknown => "an unrecognised format",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibsaslFacts {
    /// libsasl's sasldb auxprop plugin, if installed.
    pub plugin: Option<PathBuf>,
    pub format: DbFormat,
    /// The sql auxprop plugin (libsasl2-modules-sql), if installed.
    pub sql_plugin: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum PostfixState {
    Found(Box<PostfixFacts>),
    NotInstalled,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub store: StoreFacts,
    pub postfix: PostfixState,
    pub libsasl: LibsaslFacts,
    /// gethostname(), lower-cased: Cyrus's default realm.
    pub hostname: String,
}

/// One account and the mechanisms its stored secrets serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub account: Account,
    pub mechanisms: Vec<&'static str>,
}

/// The accounts in a store's entries (malformed keys skipped).
pub fn accounts(entries: &Entries) -> Vec<AccountInfo> {
    type Props<'a> = Vec<(&'a [u8], &'a [u8])>;
    let mut map: BTreeMap<(&[u8], &[u8]), Props<'_>> = BTreeMap::new();
    for (k, v) in entries {
        if let Some(key) = key::decode(k) {
            map.entry((key.authid, key.realm))
                .or_default()
                .push((key.property, v.as_slice()));
        }
    }
    map.into_iter()
        .map(|((authid, realm), props)| AccountInfo {
            account: Account::new(authid, realm),
            mechanisms: crate::secret::mechanisms(&props),
        })
        .collect()
}

// ---------------------------------------------------------------- checks

/// Every finding for these facts.
pub fn check(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let pf = match &f.postfix {
        PostfixState::Found(p) => Some(p.as_ref()),
        _ => None,
    };
    out.extend(check_store(&f.store, pf));
    match &f.postfix {
        PostfixState::NotInstalled => out.push(Finding::warning(
            "postfix.config",
            "postconf",
            "Postfix is not installed (no postconf found): only the store was checked".into(),
            "install Postfix, or put postconf on PATH (SASLDB_POSTCONF names it)".into(),
        )),
        PostfixState::Failed(e) => out.push(Finding::error(
            "postfix.config",
            "postconf",
            format!("postconf cannot read Postfix's configuration: {e}"),
            "check the configuration with `postconf -n` (MAIL_CONFIG names its directory)".into(),
        )),
        PostfixState::Found(p) => {
            out.push(postfix_summary(p));
            if let Some(probe) = &p.store_probe {
                out.push(check_probe(
                    "store.access",
                    probe,
                    &p.group,
                    perms_fixable(&f.store.data, &f.store.lock, p),
                    Some(Fix::StorePerms),
                ));
            }
            out.extend(check_copy(&f.store, p));
            out.extend(check_postfix(f, p));
        }
    }
    out
}

fn postfix_summary(p: &PostfixFacts) -> Finding {
    let services: Vec<String> = p
        .services
        .iter()
        .map(|s| {
            if s.chroot {
                format!("{} (chrooted)", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    Finding::ok(
        "postfix.config",
        &p.config_dir.display().to_string(),
        format!(
            "Postfix configuration {}: mail_owner {}, store group {}, smtpd services: {}",
            p.config_dir.display(),
            p.mail_owner,
            p.group,
            if services.is_empty() {
                "none".to_string()
            } else {
                services.join(", ")
            }
        ),
    )
}

/// "1 key", "2 keys".
fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn check_store(s: &StoreFacts, pf: Option<&PostfixFacts>) -> Vec<Finding> {
    let subject = s.path.display().to_string();
    let mut out = Vec::new();
    let file = match (&s.data, &s.content) {
        (None, _) => Finding::error(
            "store.file",
            &subject,
            format!("{subject}: no such file"),
            format!(
                "create the first account with `saslpasswd -c -f {subject} -u REALM USER` (or point -f / sasldb_path at the store)"
            ),
        ),
        (Some(d), _) if d.kind == Kind::Symlink => Finding::error(
            "store.file",
            &subject,
            format!(
                "{subject}: is a symbolic link: LMDB keeps the lock file beside the name it is given, so two names for one data file mean two lock files"
            ),
            "replace the link by the real file (or use the real path with -f and sasldb_path)"
                .into(),
        ),
        (_, Err(e)) => {
            let hint = match s.foreign {
                Some(fmt) => format!(
                    "the file is {fmt} (a sasldb written by a libsasl built for {fmt}, e.g. Debian's saslpasswd2): this tool reads LMDB only; list it with the matching tool (db5.3_dump for Berkeley DB) and create the accounts again with saslpasswd --batch"
                ),
                None => "check that the path names a sasldb in LMDB layout and that it is readable"
                    .into(),
            };
            Finding::error("store.file", &subject, e.clone(), hint)
        }
        (_, Ok(entries)) => Finding::ok(
            "store.file",
            &subject,
            format!(
                "{subject}: LMDB sasldb, {} ({})",
                count(accounts(entries).len(), "account"),
                count(entries.len(), "key")
            ),
        ),
    };
    out.push(file);
    if let Some(d) = &s.data
        && d.kind == Kind::File
    {
        out.push(check_perms(
            "store.perms",
            &s.path,
            d,
            s.lock.as_ref(),
            pf,
            Some(Fix::StorePerms),
        ));
    }
    out
}

/// Would `--fix`'s owner/mode change apply to these files?
fn perms_fixable(data: &Option<FileFacts>, lock: &Option<FileFacts>, p: &PostfixFacts) -> bool {
    match data {
        Some(d) if d.kind == Kind::File => perms_problems(d, lock.as_ref(), Some(p)).0 != Level::Ok,
        _ => false,
    }
}

/// Problems with owner and modes: (worst level, descriptions).
fn perms_problems(
    data: &FileFacts,
    lock: Option<&FileFacts>,
    pf: Option<&PostfixFacts>,
) -> (Level, Vec<String>) {
    let mut level = Level::Ok;
    let mut problems = Vec::new();
    let mut add = |l: Level, msg: String| {
        level = level.max(l);
        problems.push(msg);
    };
    if data.mode & 0o007 != 0 {
        add(
            Level::Error,
            format!(
                "data file mode {:04o} lets every user {} it",
                data.mode,
                if data.mode & 0o004 != 0 {
                    "read"
                } else {
                    "open"
                }
            ),
        );
    }
    if let Some(l) = lock
        && l.kind == Kind::File
        && l.mode & 0o002 != 0
    {
        add(
            Level::Warning,
            format!(
                "lock file mode {:04o} lets every user write it (and disturb readers)",
                l.mode
            ),
        );
    }
    let Some(p) = pf else {
        return (level, problems);
    };
    let want = p.ownership;
    let owner = |f: &FileFacts| format!("{}:{}", user_name(f.uid), group_name(f.gid));
    let wanted_owner = format!("{}:{}", user_name(want.uid), p.group);
    if data.uid != want.uid || data.gid != want.gid {
        add(
            Level::Warning,
            format!("data file owned by {}, not {wanted_owner}", owner(data)),
        );
    }
    if data.mode & 0o040 == 0 {
        add(
            Level::Error,
            format!(
                "data file mode {:04o}: group {} cannot read it",
                data.mode, p.group
            ),
        );
    } else if data.mode != perms::DATA_MODE && data.mode & 0o007 == 0 {
        add(
            Level::Warning,
            format!("data file mode {:04o}, not 0640", data.mode),
        );
    }
    match lock {
        None => add(
            Level::Warning,
            "lock file missing: the first process to open the store creates it, and Postfix's user cannot create it in a directory it does not own".into(),
        ),
        Some(l) if l.kind != Kind::File => add(
            Level::Error,
            "lock file is not a regular file (a symbolic link?)".into(),
        ),
        Some(l) => {
            if l.uid != want.uid || l.gid != want.gid {
                add(
                    Level::Warning,
                    format!("lock file owned by {}, not {wanted_owner}", owner(l)),
                );
            }
            if l.mode & 0o060 != 0o060 {
                add(
                    Level::Error,
                    format!(
                        "lock file mode {:04o}: group {} cannot open it read-write, which every LMDB reader must",
                        l.mode, p.group
                    ),
                );
            } else if l.mode != perms::LOCK_MODE && l.mode & 0o002 == 0 {
                add(
                    Level::Warning,
                    format!("lock file mode {:04o}, not 0660", l.mode),
                );
            }
        }
    }
    (level, problems)
}

fn check_perms(
    id: &'static str,
    path: &Path,
    data: &FileFacts,
    lock: Option<&FileFacts>,
    pf: Option<&PostfixFacts>,
    fix: Option<Fix>,
) -> Finding {
    let subject = path.display().to_string();
    let (level, problems) = perms_problems(data, lock, pf);
    if level == Level::Ok {
        let msg = match pf {
            Some(p) => format!(
                "{subject}: {} 0640, lock file 0660: readable by group {} only",
                format_args!("{}:{}", user_name(data.uid), group_name(data.gid)),
                p.group
            ),
            None => format!(
                "{subject}: mode {:04o}, not accessible to other users",
                data.mode
            ),
        };
        return Finding::ok(id, &subject, msg);
    }
    let message = format!("{subject}: {}", problems.join("; "));
    match pf {
        Some(p) => Finding::new(id, level, &subject, message)
            .hint(format!(
                "--fix sets {}:{} 0640 on the data file and 0660 on {} (through O_NOFOLLOW descriptors; nothing else is touched)",
                user_name(p.ownership.uid),
                p.group,
                lock_path(path).display()
            ))
            .with_fix(fix),
        None => Finding::new(id, level, &subject, message).hint(format!(
            "chmod o-rwx {subject} {}",
            lock_path(path).display()
        )),
    }
}

fn check_probe(
    id: &'static str,
    probe: &Probe,
    group: &str,
    perms_bad: bool,
    fix: Option<Fix>,
) -> Finding {
    let subject = probe.path.display().to_string();
    let who = format!("{} (groups {})", probe.user, probe.groups.join(", "));
    match &probe.outcome {
        ProbeOutcome::Opened { keys } => Finding::ok(
            id,
            &subject,
            format!(
                "{who} opened {subject} read-only and read {}",
                count(*keys, "key")
            ),
        ),
        ProbeOutcome::Refused(why) => {
            let hint = if perms_bad {
                "--fix sets the owner and modes; the test is then run again".to_string()
            } else {
                format!(
                    "every directory above {subject} must be searchable by {user}, the data file readable and {lock} writable through group {group} (`ls -ld` each directory; `adduser {user} {group}` if it is not a member)",
                    user = probe.user,
                    lock = lock_path(&probe.path).display()
                )
            };
            Finding::error(
                id,
                &subject,
                format!("{who} cannot open {subject} read-only: {why}"),
                hint,
            )
            .with_fix(if perms_bad { fix } else { None })
        }
        ProbeOutcome::NotRun(why) => Finding::warning(
            id,
            &subject,
            format!(
                "could not test whether {} can open {subject}: {why}",
                probe.user
            ),
            format!(
                "run saslpasswd --doctor as root, from a path {} can execute",
                probe.user
            ),
        ),
    }
}

/// (keys the copy lacks, keys whose value differs, keys only in the copy).
pub fn diff(source: &Entries, copy: &Entries) -> (usize, usize, usize) {
    let (mut i, mut j) = (0, 0);
    let (mut missing, mut changed, mut extra) = (0, 0, 0);
    while i < source.len() || j < copy.len() {
        match (source.get(i), copy.get(j)) {
            (Some((sk, sv)), Some((ck, cv))) => match sk.cmp(ck) {
                std::cmp::Ordering::Less => {
                    missing += 1;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    extra += 1;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if sv != cv {
                        changed += 1;
                    }
                    i += 1;
                    j += 1;
                }
            },
            (Some(_), None) => {
                missing += 1;
                i += 1;
            }
            _ => {
                extra += 1;
                j += 1;
            }
        }
    }
    (missing, changed, extra)
}

fn check_copy(store: &StoreFacts, p: &PostfixFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let chrooted: Vec<&str> = p
        .services
        .iter()
        .filter(|s| s.chroot)
        .map(|s| s.name.as_str())
        .collect();
    if store.data.is_none() {
        return out; // store.file explains; there is nothing to copy
    }
    let Some(c) = &p.copy else {
        out.push(Finding::ok(
            "chroot.present",
            &store.path.display().to_string(),
            format!(
                "no smtpd service runs chrooted: Postfix reads {} itself, no copy is needed",
                store.path.display()
            ),
        ));
        return out;
    };
    let subject = c.path.display().to_string();
    let src = store.path.display().to_string();
    match &c.data {
        None => {
            out.push(
                Finding::error(
                    "chroot.present",
                    &subject,
                    format!(
                        "{subject}: missing: smtpd runs chrooted ({}) and can only read this copy of {src}",
                        chrooted.join(", ")
                    ),
                    "--fix (or saslpasswd --publish) creates it with the store's content; with Postfix integration on, every change keeps it current".into(),
                )
                .with_fix(Some(Fix::Publish)),
            );
            return out;
        }
        Some(d) if d.kind != Kind::File => {
            out.push(Finding::error(
                "chroot.present",
                &subject,
                format!("{subject}: not a regular file (a symbolic link or other): a chrooted smtpd cannot follow a link out of the chroot, and LMDB would keep the lock beside the link"),
                format!("remove {subject}; --fix then publishes a real copy"),
            ));
            return out;
        }
        Some(_) => out.push(Finding::ok(
            "chroot.present",
            &subject,
            format!(
                "{subject}: present for the chrooted smtpd ({})",
                chrooted.join(", ")
            ),
        )),
    }
    if c.hard_link {
        out.push(
            Finding::error(
                "chroot.hard_link",
                &subject,
                format!(
                    "{subject}: is a hard link of {src}: one data file with two lock files, so a writer using {src}-lock cannot see the smtpd readers registered in {subject}-lock and may reuse pages they are still reading"
                ),
                format!(
                    "--fix removes the link (and {subject}-lock) and publishes a real copy in its place; then run `postfix reload` so running smtpd processes drop the old inode (until they exit they keep reading {src} under the other lock file)"
                ),
            )
            .with_fix(Some(Fix::ReplaceHardLink)),
        );
        return out;
    }
    out.push(Finding::ok(
        "chroot.hard_link",
        &subject,
        format!("{subject}: a separate file, not a hard link of {src}"),
    ));
    out.push(match (&store.content, &c.content) {
        (_, Err(e)) => Finding::error(
            "chroot.content",
            &subject,
            e.clone(),
            format!("remove {subject} and its lock file; --fix then publishes a fresh copy"),
        ),
        (Err(_), Ok(_)) => Finding::warning(
            "chroot.content",
            &subject,
            format!("{subject}: not compared: the store itself cannot be read"),
            "fix store.file first".into(),
        ),
        (Ok(s), Ok(cp)) => {
            let (missing, changed, extra) = diff(s, cp);
            if missing + changed + extra == 0 {
                Finding::ok(
                    "chroot.content",
                    &subject,
                    format!("{subject}: the same {} as {src}", count(s.len(), "key")),
                )
            } else {
                Finding::error(
                    "chroot.content",
                    &subject,
                    format!(
                        "{subject}: differs from {src}: {missing} keys missing, {changed} changed, {extra} extra: Postfix authenticates against an old state"
                    ),
                    "--fix (or saslpasswd --publish) applies the difference in one LMDB transaction; with Postfix integration on (--postfix, or postfix_integration: yes) every change does".into(),
                )
                .with_fix(Some(Fix::Publish))
            }
        }
    });
    if let Some(d) = &c.data {
        out.push(check_perms(
            "chroot.perms",
            &c.path,
            d,
            c.lock.as_ref(),
            Some(p),
            Some(Fix::CopyPerms),
        ));
    }
    if let Some(probe) = &c.probe {
        let bad = perms_fixable(&c.data, &c.lock, p);
        out.push(check_probe(
            "chroot.access",
            probe,
            &p.group,
            bad,
            Some(Fix::CopyPerms),
        ));
    }
    out
}

/// Postfix's boolean: `yes` (case-insensitive) is true.
fn is_yes(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("yes")
}

/// How TLS stands on one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls {
    /// TLS can be had (STARTTLS or wrapper mode).
    pub available: bool,
    /// Every session is TLS before AUTH can happen.
    pub mandatory: bool,
    /// `smtpd_tls_auth_only = yes`.
    pub auth_only: bool,
}

pub fn tls_of(s: &Service) -> Tls {
    let level = match s.get("smtpd_tls_security_level").trim() {
        "" if is_yes(s.get("smtpd_enforce_tls")) => "encrypt",
        "" if is_yes(s.get("smtpd_use_tls")) => "may",
        "" => "none",
        l => l,
    }
    .to_ascii_lowercase();
    let wrapper = is_yes(s.get("smtpd_tls_wrappermode"));
    Tls {
        available: wrapper || level == "may" || level == "encrypt",
        mandatory: wrapper || level == "encrypt",
        auth_only: is_yes(s.get("smtpd_tls_auth_only")),
    }
}

/// Mechanisms a cyrus service offers: before TLS (None when AUTH is not
/// offered without TLS) and after STARTTLS (None without TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub plain: Option<Vec<&'static str>>,
    pub tls: Option<Vec<&'static str>>,
}

impl Offer {
    pub fn all(&self) -> BTreeSet<&'static str> {
        self.plain
            .iter()
            .chain(self.tls.iter())
            .flatten()
            .copied()
            .collect()
    }
}

pub fn offer(s: &Service, mech_list: &[String]) -> Result<Offer, String> {
    let tls = tls_of(s);
    let plain_opts = SecurityOptions::parse(s.get("smtpd_sasl_security_options"))
        .map_err(|e| format!("smtpd_sasl_security_options: {e}"))?;
    let tls_opts = SecurityOptions::parse(s.get("smtpd_sasl_tls_security_options"))
        .map_err(|e| format!("smtpd_sasl_tls_security_options: {e}"))?;
    let plain = (!tls.mandatory && !tls.auth_only)
        .then(|| security::offered(mech_list, &plain_opts, false));
    let tls = tls
        .available
        .then(|| security::offered(mech_list, &tls_opts, false));
    Ok(Offer { plain, tls })
}

const PLAINTEXT: [&str; 2] = ["PLAIN", "LOGIN"];
const NEED_CLEARTEXT: [&str; 2] = ["CRAM-MD5", "DIGEST-MD5"];
const KNOWN_VERIFIERS: [&str; 5] = [
    "auxprop",
    "saslauthd",
    "pwcheck",
    "authdaemond",
    "alwaystrue",
];

/// Does a libsasl with this config read sasldb, given the mechanisms it offers?
pub fn uses_sasldb(config: &SaslConfig, offered: &BTreeSet<&str>) -> bool {
    let auxprop = config.pwcheck_methods().contains(&"auxprop")
        || offered.iter().any(|m| !PLAINTEXT.contains(m));
    let plugins = config.auxprop_plugins();
    auxprop && (plugins.is_empty() || plugins.contains(&"sasldb"))
}

/// Where relaying is decided in one restriction list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// `permit_sasl_authenticated` comes before the first blocker.
    PermitFirst,
    /// The list never refuses relaying by itself.
    NoBlocker,
    /// The blocker comes first, with `permit_sasl_authenticated` later.
    PermitAfter(String),
    /// A blocker and no `permit_sasl_authenticated`.
    PermitMissing(String),
}

const BLOCKERS: [&str; 4] = [
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
];

pub fn restriction_order(list: &str) -> Order {
    let words: Vec<String> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let permit = words.iter().position(|w| w == "permit_sasl_authenticated");
    let block = words.iter().position(|w| BLOCKERS.contains(&w.as_str()));
    match (permit, block) {
        (_, None) => Order::NoBlocker,
        (Some(p), Some(b)) if p < b => Order::PermitFirst,
        (Some(_), Some(b)) => Order::PermitAfter(words[b].clone()),
        (None, Some(b)) => Order::PermitMissing(words[b].clone()),
    }
}

fn check_restrictions(s: &Service) -> Finding {
    let mut problems = Vec::new();
    let mut permitted = false;
    for name in ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"] {
        match restriction_order(s.get(name)) {
            Order::PermitFirst => permitted = true,
            Order::NoBlocker => {}
            Order::PermitAfter(b) => problems.push(format!(
                "{name} has {b} before permit_sasl_authenticated, so authenticated clients are refused relaying"
            )),
            Order::PermitMissing(b) => problems.push(format!(
                "{name} has {b} and no permit_sasl_authenticated before it, so authenticated clients are refused relaying"
            )),
        }
    }
    let hint = "put permit_sasl_authenticated before reject_unauth_destination, e.g. `postconf -e 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'` (or -o on the service in master.cf), then `postfix reload`";
    if !problems.is_empty() {
        return Finding::error(
            "postfix.restrictions",
            &s.name,
            format!("{}: {}", s.name, problems.join("; ")),
            hint.into(),
        );
    }
    if !permitted {
        return Finding::error(
            "postfix.restrictions",
            &s.name,
            format!(
                "{}: neither smtpd_relay_restrictions ({}) nor smtpd_recipient_restrictions ({}) has permit_sasl_authenticated before reject_unauth_destination: authentication gives no right to relay",
                s.name,
                shown(s.get("smtpd_relay_restrictions")),
                shown(s.get("smtpd_recipient_restrictions"))
            ),
            hint.into(),
        );
    }
    Finding::ok(
        "postfix.restrictions",
        &s.name,
        format!(
            "{}: permit_sasl_authenticated comes before reject_unauth_destination",
            s.name
        ),
    )
}

fn shown(v: &str) -> &str {
    if v.trim().is_empty() { "empty" } else { v }
}

fn check_tls(s: &Service, offer: Option<&Offer>) -> Finding {
    let tls = tls_of(s);
    let id = "postfix.tls_auth_only";
    if tls.auth_only && !tls.available {
        return Finding::error(
            id,
            &s.name,
            format!(
                "{}: smtpd_tls_auth_only = yes but TLS is off (smtpd_tls_security_level = {}): AUTH is never offered",
                s.name,
                shown(s.get("smtpd_tls_security_level"))
            ),
            "turn TLS on: smtpd_tls_security_level = may with smtpd_tls_chain_files (or smtpd_tls_cert_file and smtpd_tls_key_file)".into(),
        );
    }
    if tls.mandatory {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: TLS is mandatory before AUTH (wrapper mode or smtpd_tls_security_level = encrypt)",
                s.name
            ),
        );
    }
    if tls.auth_only {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: smtpd_tls_auth_only = yes: AUTH only after STARTTLS",
                s.name
            ),
        );
    }
    let plaintext: Vec<&str> = match offer {
        Some(o) => o
            .plain
            .iter()
            .flatten()
            .copied()
            .filter(|m| PLAINTEXT.contains(m))
            .collect(),
        // Dovecot-protocol servers (ours included) offer PLAIN and LOGIN.
        None => PLAINTEXT.to_vec(),
    };
    if plaintext.is_empty() {
        return Finding::ok(
            id,
            &s.name,
            format!("{}: no plaintext mechanism before STARTTLS", s.name),
        );
    }
    Finding::warning(
        id,
        &s.name,
        format!(
            "{}: {} offered without TLS (smtpd_tls_auth_only = no): passwords can cross the network in the clear",
            s.name,
            plaintext.join(" and ")
        ),
        "`postconf -e smtpd_tls_auth_only=yes` (with smtpd_tls_security_level = may and a certificate), or smtpd_sasl_security_options = noanonymous, noplaintext with smtpd_sasl_tls_security_options = noanonymous".into(),
    )
}

fn list_or_all(v: &[&str]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn check_mechs(s: &Service, config: &SaslConfig, offer: &Result<Offer, String>) -> Finding {
    let id = "sasl.mech_list";
    let listed = match config.get("mech_list") {
        Some(v) => format!("mech_list {v}"),
        None => "mech_list unset (every mechanism)".to_string(),
    };
    let o = match offer {
        Ok(o) => o,
        Err(e) => {
            return Finding::error(
                id,
                &s.name,
                format!("{}: {e}", s.name),
                "valid words: noanonymous, noplaintext, noactive, nodictionary, mutual_auth, forward_secrecy".into(),
            );
        }
    };
    let contexts: Vec<(&str, &Vec<&'static str>)> =
        [("without TLS", &o.plain), ("after STARTTLS", &o.tls)]
            .into_iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
            .collect();
    if contexts.is_empty() {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: AUTH is never offered (see postfix.tls_auth_only)",
                s.name
            ),
        );
    }
    if contexts.iter().all(|(_, v)| v.is_empty()) {
        return Finding::error(
            id,
            &s.name,
            format!(
                "{}: no mechanism left: {listed} minus what smtpd_sasl_security_options ({}) and smtpd_sasl_tls_security_options ({}) forbid is nothing, so Postfix offers no AUTH",
                s.name,
                s.get("smtpd_sasl_security_options"),
                s.get("smtpd_sasl_tls_security_options")
            ),
            "allow plaintext mechanisms once TLS is on (smtpd_sasl_security_options = noanonymous, noplaintext; smtpd_sasl_tls_security_options = noanonymous), or add a mechanism the options allow (e.g. SCRAM-SHA-256) to mech_list".into(),
        );
    }
    let shown: Vec<String> = contexts
        .iter()
        .map(|(n, v)| format!("{} {n}", list_or_all(v)))
        .collect();
    Finding::ok(
        id,
        &s.name,
        format!("{}: offers {} ({listed})", s.name, shown.join("; ")),
    )
}

fn check_sasl_config(sf: &SaslFacts, queue: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let searched: Vec<String> = sf
        .searched
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let Some(first) = sf.found.first() else {
        out.push(Finding::warning(
            "sasl.config",
            &sf.appname,
            format!(
                "no {}.conf in {}: libsasl's defaults apply (pwcheck_method auxprop, every installed mechanism and auxprop plugin)",
                sf.appname,
                searched.join(", ")
            ),
            format!(
                "create {}/{}.conf with pwcheck_method: auxprop, auxprop_plugin: sasldb and mech_list: PLAIN LOGIN (and CRAM-MD5 DIGEST-MD5 only if needed)",
                searched.first().map_or("/etc/postfix/sasl", String::as_str),
                sf.appname
            ),
        ));
        return out;
    };
    let subject = first.display().to_string();
    let config = match &sf.config {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::error(
                "sasl.config",
                &subject,
                format!("{e}: libsasl refuses the whole file and Postfix's SASL setup fails"),
                "each line is `key: value` (key of letters, digits, - and _; the colon right after it; a non-empty value) or a # comment".into(),
            ));
            return out;
        }
    };
    if sf.found.len() > 1 {
        let ignored: Vec<String> = sf.found[1..]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        out.push(Finding::warning(
            "sasl.config",
            &subject,
            format!(
                "libsasl reads {subject} only; {} also exist and are ignored",
                ignored.join(", ")
            ),
            format!(
                "keep one {}.conf: merge the settings into {subject} and remove the others",
                sf.appname
            ),
        ));
    } else {
        out.push(Finding::ok(
            "sasl.config",
            &subject,
            format!("Postfix's libsasl reads {subject}"),
        ));
    }
    // pwcheck_method
    let methods = config.pwcheck_methods();
    let unknown: Vec<&str> = methods
        .iter()
        .copied()
        .filter(|m| !KNOWN_VERIFIERS.contains(m))
        .collect();
    out.push(if methods.contains(&"alwaystrue") {
        Finding::error(
            "sasl.pwcheck_method",
            &subject,
            format!("{subject}: pwcheck_method includes alwaystrue: any password is accepted for PLAIN and LOGIN"),
            "pwcheck_method: auxprop".into(),
        )
    } else if !unknown.is_empty() {
        Finding::error(
            "sasl.pwcheck_method",
            &subject,
            format!(
                "{subject}: pwcheck_method {}: unknown verifier {} (libsasl logs \"unknown password verifier\" and PLAIN/LOGIN fail)",
                methods.join(" "),
                unknown.join(" ")
            ),
            "pwcheck_method: auxprop (the sasldb store) or saslauthd".into(),
        )
    } else if methods.contains(&"saslauthd") {
        let sock = config
            .get("saslauthd_path")
            .unwrap_or("/var/run/saslauthd/mux");
        Finding::ok(
            "sasl.pwcheck_method",
            &subject,
            format!(
                "{subject}: pwcheck_method {}: PLAIN and LOGIN are checked by saslauthd at {sock} (for a chrooted smtpd: {}), other mechanisms read sasldb",
                methods.join(" "),
                queue.join(sock.trim_start_matches('/')).display()
            ),
        )
    } else {
        Finding::ok(
            "sasl.pwcheck_method",
            &subject,
            format!(
                "{subject}: pwcheck_method {}{}",
                methods.join(" "),
                if config.get("pwcheck_method").is_none() {
                    " (libsasl's default)"
                } else {
                    ""
                }
            ),
        )
    });
    out
}

fn check_auxprop(subject: &str, config: &SaslConfig, libsasl: &LibsaslFacts) -> Finding {
    let id = "sasl.auxprop_plugin";
    let plugins = config.auxprop_plugins();
    let sql_options = config.entries().any(|(k, _)| k.starts_with("sql_"));
    let has_select = config.get("sql_select").is_some();
    if plugins.contains(&"sql") && !has_select {
        return Finding::error(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin {} names sql but sql_select is not set: the sql plugin refuses to load (the log line \"sql_select option missing\"){}",
                plugins.join(" "),
                if plugins.contains(&"sasldb") {
                    ""
                } else {
                    ", and no other plugin is named, so no password is found"
                }
            ),
            "auxprop_plugin: sasldb (this store); use sql only with sql_engine, sql_hostnames, sql_user, sql_passwd, sql_database and sql_select set".into(),
        );
    }
    if plugins.is_empty() {
        if let Some(sql) = &libsasl.sql_plugin
            && !has_select
        {
            return Finding::warning(
                id,
                subject,
                format!(
                    "{subject}: auxprop_plugin unset: libsasl loads every auxprop plugin, including sql ({}) which has no sql_* options{}: it logs \"sql_select option missing\" and stays out; sasldb still works",
                    sql.display(),
                    if sql_options { " but no sql_select" } else { "" }
                ),
                "set auxprop_plugin: sasldb to say which store is meant; the log line goes away when libsasl2-modules-sql is removed (or given sql_select)".into(),
            );
        }
        return Finding::ok(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin unset: every installed auxprop plugin is queried (sasldb among them)"
            ),
        );
    }
    if !plugins.contains(&"sasldb") {
        return Finding::warning(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin {} does not name sasldb: Postfix does not look accounts up in this store",
                plugins.join(" ")
            ),
            "auxprop_plugin: sasldb".into(),
        );
    }
    Finding::ok(
        id,
        subject,
        format!("{subject}: auxprop_plugin {}", plugins.join(" ")),
    )
}

fn socket_alternative() -> &'static str {
    "serve Postfix from this store through an auth socket instead: run smtpd-auth with dovecot_auth_socket = /var/spool/postfix/private/auth (under queue_directory) and set smtpd_sasl_type = dovecot and smtpd_sasl_path = private/auth in main.cf (or its saslauthd_socket with pwcheck_method: saslauthd and mech_list: PLAIN LOGIN); Postfix then never opens the store"
}

fn check_libsasl(libsasl: &LibsaslFacts, readers: &[String], any_cyrus: bool) -> Finding {
    let id = "libsasl.db_format";
    let subject = libsasl
        .plugin
        .as_ref()
        .map_or_else(|| "libsasldb".to_string(), |p| p.display().to_string());
    if readers.is_empty() {
        let why = if any_cyrus {
            "no Postfix service reads sasldb through libsasl (pwcheck_method saslauthd with PLAIN/LOGIN only, or auxprop_plugin without sasldb)"
        } else {
            "Postfix uses smtpd_sasl_type = dovecot: it asks an auth socket and never opens sasldb"
        };
        return Finding::ok(
            id,
            &subject,
            format!("{why}, so libsasl's sasldb format does not matter"),
        );
    }
    let Some(plugin) = &libsasl.plugin else {
        return Finding::error(
            id,
            &subject,
            format!(
                "{} read sasldb through libsasl, but no sasldb plugin (libsasldb.so) is installed",
                readers.join(", ")
            ),
            format!(
                "install the sasldb plugin (Debian: libsasl2-modules-db) if it reads LMDB; otherwise {}",
                socket_alternative()
            ),
        );
    };
    match libsasl.format {
        DbFormat::Lmdb => Finding::ok(
            id,
            &subject,
            format!(
                "{}: libsasl's sasldb plugin reads LMDB, the format of this store",
                plugin.display()
            ),
        ),
        DbFormat::Unknown => Finding::warning(
            id,
            &subject,
            format!(
                "{}: cannot tell which database library the sasldb plugin uses",
                plugin.display()
            ),
            format!(
                "check with `ldd {}`: LMDB (liblmdb) reads this store; Berkeley DB or GDBM does not",
                plugin.display()
            ),
        ),
        fmt => Finding::error(
            id,
            &subject,
            format!(
                "{}: libsasl's sasldb plugin reads {}{}, but this store is LMDB: {} (smtpd_sasl_type = cyrus) cannot read it",
                plugin.display(),
                fmt.name(),
                if fmt == DbFormat::BerkeleyDb {
                    " (as Debian 12's libsasl2-modules-db does: it links libdb-5.3)"
                } else {
                    ""
                },
                readers.join(", ")
            ),
            socket_alternative().to_string(),
        ),
    }
}

/// A realm that looks like a container id: 12 or more hex digits.
pub fn container_like(realm: &[u8]) -> bool {
    realm.len() >= 12 && realm.iter().all(|b| b.is_ascii_hexdigit())
}

pub fn check_realm(entries: &Entries, p: &PostfixFacts, hostname: &str) -> Finding {
    let id = "realm.postfix";
    let realm = p.realm.as_bytes();
    let accts = accounts(entries);
    let subject = p.realm.as_str();
    if accts.is_empty() {
        return Finding::ok(
            id,
            subject,
            format!(
                "no accounts yet; Postfix looks logins without @ up in realm {subject} ({})",
                p.realm_source
            ),
        );
    }
    let mut by_realm: BTreeMap<&[u8], usize> = BTreeMap::new();
    for a in &accts {
        *by_realm.entry(a.account.realm.as_slice()).or_default() += 1;
    }
    if let Some(n) = by_realm.get(realm) {
        return Finding::ok(
            id,
            subject,
            format!(
                "{n} of {} accounts are in realm {subject}, the one Postfix looks up for logins without @ ({})",
                accts.len(),
                p.realm_source
            ),
        );
    }
    let suspicious: Vec<(String, usize, &str)> = by_realm
        .iter()
        .filter_map(|(r, n)| {
            let why = if !hostname.is_empty() && r.eq_ignore_ascii_case(hostname.as_bytes()) {
                "the host name"
            } else if container_like(r) {
                "looks like a container id"
            } else {
                return None;
            };
            Some((String::from_utf8_lossy(r).into_owned(), *n, why))
        })
        .collect();
    let realms: Vec<String> = by_realm
        .keys()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    if suspicious.is_empty() {
        return Finding::ok(
            id,
            subject,
            format!(
                "no account is in realm {subject} ({}): users log in as user@realm (realms: {})",
                p.realm_source,
                realms.join(", ")
            ),
        );
    }
    let named: Vec<String> = suspicious
        .iter()
        .map(|(r, n, why)| format!("{n} in {r} ({why})"))
        .collect();
    let first = &suspicious[0].0;
    Finding::warning(
        id,
        subject,
        format!(
            "no account is in realm {subject}, the one Postfix looks up for logins without @ ({}); accounts: {}",
            p.realm_source,
            named.join(", ")
        ),
        format!(
            "create the users again in Postfix's realm: `saslpasswd -c -u {subject} USER` (and `saslpasswd -d -u {first} USER` for the old ones), or set `smtpd_sasl_local_domain = {first}` in main.cf if that is the realm you mean"
        ),
    )
}

fn check_cram_digest(entries: &Entries, offered: &BTreeSet<&str>, who: &str) -> Finding {
    let id = "sasl.cram_digest";
    let needing: Vec<&str> = NEED_CLEARTEXT
        .iter()
        .copied()
        .filter(|m| offered.contains(m))
        .collect();
    let accts = accounts(entries);
    if needing.is_empty() {
        return Finding::ok(
            id,
            who,
            "CRAM-MD5 and DIGEST-MD5 are not offered".to_string(),
        );
    }
    let lacking: Vec<String> = accts
        .iter()
        .filter(|a| !a.mechanisms.contains(&"CRAM-MD5"))
        .map(|a| a.account.to_string())
        .collect();
    if lacking.is_empty() {
        return Finding::ok(
            id,
            who,
            format!(
                "{} offered; all {} accounts have the userPassword these mechanisms need",
                needing.join(" and "),
                accts.len()
            ),
        );
    }
    const SHOWN: usize = 10;
    let mut names = lacking
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if lacking.len() > SHOWN {
        names.push_str(&format!(" and {} more", lacking.len() - SHOWN));
    }
    Finding::warning(
        id,
        who,
        format!(
            "{} offered, but {} of {} accounts have no userPassword and cannot use them (clients that pick them fail): {names}",
            needing.join(" and "),
            lacking.len(),
            accts.len()
        ),
        "set those passwords again without -n (these mechanisms need the cleartext userPassword), or drop CRAM-MD5 and DIGEST-MD5 from mech_list".into(),
    )
}

fn check_postfix(f: &Facts, p: &PostfixFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let auth: Vec<&Service> = p
        .services
        .iter()
        .filter(|s| is_yes(s.get("smtpd_sasl_auth_enable")))
        .collect();
    let hint_enable = "`postconf -e smtpd_sasl_auth_enable=yes` (or `-o smtpd_sasl_auth_enable=yes` on the submission service in master.cf), then `postfix reload`";
    out.push(if p.services.is_empty() {
        Finding::error(
            "postfix.sasl_auth_enable",
            "master.cf",
            "master.cf has no smtpd service: nothing offers SMTP AUTH".into(),
            "add the smtp (and submission) services of Postfix's stock master.cf".into(),
        )
    } else if auth.is_empty() {
        Finding::error(
            "postfix.sasl_auth_enable",
            "main.cf",
            format!(
                "smtpd_sasl_auth_enable is not yes on any smtpd service ({}): Postfix offers no SMTP AUTH",
                p.services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint_enable.into(),
        )
    } else {
        Finding::ok(
            "postfix.sasl_auth_enable",
            "main.cf",
            format!(
                "SMTP AUTH is on for {}",
                auth.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    });
    // With AUTH on nowhere, still explain what main.cf's settings would give.
    let relevant: Vec<&Service> = if auth.is_empty() {
        vec![&p.main]
    } else {
        auth.clone()
    };
    let content = f.store.content.as_ref().ok();
    let mut readers = Vec::new();
    let mut offered_all: BTreeSet<&'static str> = BTreeSet::new();
    let mut any_cyrus = false;
    let mut apps_done = BTreeSet::new();
    let mut config_broken = false;
    for s in &relevant {
        if !auth.is_empty() {
            out.push(check_restrictions(s));
        }
        if s.sasl_type() != "cyrus" {
            if !auth.is_empty() {
                out.push(check_tls(s, None));
            }
            if s.sasl_type() == "dovecot" {
                out.push(check_socket(s, p));
            } else {
                out.push(Finding::error(
                    "postfix.sasl_type",
                    &s.name,
                    format!(
                        "{}: smtpd_sasl_type = {}: Postfix knows cyrus and dovecot",
                        s.name,
                        s.sasl_type()
                    ),
                    "smtpd_sasl_type = cyrus or dovecot".into(),
                ));
            }
            continue;
        }
        any_cyrus = true;
        let app = s.sasl_path().to_string();
        let Some(sf) = p.sasl.get(&app) else {
            continue;
        };
        let new_app = apps_done.insert(app.clone());
        if new_app {
            out.extend(check_sasl_config(
                sf,
                Path::new(p.main.get("queue_directory")),
            ));
        }
        let Ok(config) = &sf.config else {
            // sasl.config explains; what libsasl would do is unknown.
            config_broken = true;
            if !auth.is_empty() {
                out.push(check_tls(s, None));
            }
            continue;
        };
        let o = offer(s, &config.mech_list());
        out.push(check_mechs(s, config, &o));
        if !auth.is_empty() {
            out.push(check_tls(s, o.as_ref().ok()));
        }
        let offered = o.as_ref().map(Offer::all).unwrap_or_default();
        if new_app && (uses_sasldb(config, &offered) || config.auxprop_plugins().contains(&"sql")) {
            let subject = sf
                .found
                .first()
                .map_or_else(|| format!("{app}.conf"), |p| p.display().to_string());
            out.push(check_auxprop(&subject, config, &f.libsasl));
        }
        if uses_sasldb(config, &offered) {
            readers.push(s.name.clone());
        }
        offered_all.extend(offered);
    }
    if !config_broken || !readers.is_empty() {
        out.push(check_libsasl(&f.libsasl, &readers, any_cyrus));
    }
    if let Some(entries) = content {
        if any_cyrus {
            out.push(check_cram_digest(
                entries,
                &offered_all,
                &f.store.path.display().to_string(),
            ));
        }
        out.push(check_realm(entries, p, &f.hostname));
    }
    out
}

fn check_socket(s: &Service, p: &PostfixFacts) -> Finding {
    let id = "postfix.auth_socket";
    let Some((path, state)) = p.sockets.get(s.sasl_path()) else {
        return Finding::ok(
            id,
            &s.name,
            format!("{}: smtpd_sasl_path {}", s.name, s.sasl_path()),
        );
    };
    let shown = path.display().to_string();
    match state {
        SocketState::Socket => Finding::ok(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot, socket {shown} exists", s.name),
        ),
        SocketState::Tcp => Finding::ok(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot over TCP ({})", s.name, s.sasl_path()),
        ),
        SocketState::Missing => Finding::error(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot but nothing listens at {shown}: every AUTH fails", s.name),
            "start the auth server with its socket there (smtpd-auth's dovecot_auth_socket, or Dovecot's auth service); a relative smtpd_sasl_path is relative to queue_directory".into(),
        ),
        SocketState::NotSocket => Finding::error(
            id,
            &shown,
            format!("{}: {shown} is not a socket", s.name),
            "remove it and start the auth server so it creates its socket there".into(),
        ),
    }
}

// ---------------------------------------------------------------- gathering

/// Magic numbers of the other sasldb formats, for a better message.
pub fn foreign_format(head: &[u8]) -> Option<&'static str> {
    let word = |at: usize| -> Option<[u8; 4]> { head.get(at..at + 4)?.try_into().ok() };
    let is = |w: Option<[u8; 4]>, magic: u32| {
        w.is_some_and(|w| u32::from_le_bytes(w) == magic || u32::from_be_bytes(w) == magic)
    };
    if is(word(12), 0x0006_1561) || is(word(12), 0x0005_3162) {
        return Some("Berkeley DB");
    }
    if [0x1357_9ace, 0x1357_9acd, 0x1357_9acf]
        .iter()
        .any(|&m| is(word(0), m))
    {
        return Some("GDBM");
    }
    None
}

fn read_content(path: &Path, opts: &OpenOptions) -> Result<Entries, String> {
    Store::open_read(path, opts)
        .and_then(|s| s.read(|v| v.raw_entries()))
        .map_err(|e| e.to_string())
}

fn gather_store(path: &Path, opts: &OpenOptions) -> StoreFacts {
    let data = FileFacts::of(path);
    let mut head = [0u8; 32];
    let foreign = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()
        .and_then(|n| foreign_format(&head[..n]));
    let content = match data {
        Some(d) if d.kind == Kind::Symlink => {
            Err(format!("{}: is a symbolic link", path.display()))
        }
        _ => read_content(path, opts),
    };
    StoreFacts {
        path: path.to_path_buf(),
        data,
        // Read after the open: a read-only open creates a missing lock file.
        lock: FileFacts::of(&lock_path(path)),
        content,
        foreign,
    }
}

/// `postconf -x KEY...` as a map.
fn postconf_values(pf: &Postfix, keys: &[&str]) -> Result<BTreeMap<String, String>, PostfixError> {
    let mut args = vec!["-x"];
    args.extend_from_slice(keys);
    let text = pf.run(&args)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" =")?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect())
}

/// master.cf `-o` overrides (`postconf -P -x`): (service/type, name, value).
fn service_overrides(pf: &Postfix) -> Result<Vec<(String, String, String)>, PostfixError> {
    let text = pf.run(&["-P", "-x"])?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" =")?;
            let (service, name) = k.trim().rsplit_once('/')?;
            Some((service.to_string(), name.to_string(), v.trim().to_string()))
        })
        .collect())
}

/// Where libsasl (as Postfix sets it up) looks for `<appname>.conf`:
/// Debian's `<config_dir>/sasl` first, then `cyrus_sasl_config_path` when
/// set, else libsasl's own path (`SASLDB_DOCTOR_SASL_PATH` replaces it).
pub fn sasl_search_dirs(
    config_dir: &Path,
    cyrus_path: &str,
    override_path: Option<&str>,
) -> Vec<PathBuf> {
    let rest = if !cyrus_path.trim().is_empty() {
        cyrus_path
    } else {
        override_path.unwrap_or(saslconf::DEFAULT_CONF_PATH)
    };
    let mut dirs = vec![config_dir.join("sasl")];
    for d in rest.split(':').filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn gather_sasl(appname: &str, dirs: Vec<PathBuf>) -> SaslFacts {
    let found: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.join(format!("{appname}.conf")))
        .filter(|p| p.is_file())
        .collect();
    let config = match found.first() {
        None => Ok(SaslConfig::default()),
        Some(p) => fs::read(p)
            .map_err(|e| format!("{}: {}", p.display(), crate::cli::strerror(&e)))
            .and_then(|text| saslconf::parse(&text, p).map_err(|e| e.to_string())),
    };
    SaslFacts {
        appname: appname.to_string(),
        searched: dirs,
        found,
        config,
    }
}

/// Directories libsasl may load plugins from.
fn plugin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
                .map(|e| e.path().join("sasl2"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.extend(["/usr/lib/sasl2", "/usr/lib64/sasl2", "/usr/local/lib/sasl2"].map(PathBuf::from));
    dirs
}

fn find_plugin(dirs: &[PathBuf], stem: &str) -> Option<PathBuf> {
    dirs.iter().find_map(|d| {
        let mut names: Vec<PathBuf> = fs::read_dir(d)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(stem))
            .map(|e| e.path())
            .collect();
        names.sort();
        names.into_iter().find(|p| p.is_file())
    })
}

/// Which database library a sasldb plugin uses, from the library names and
/// symbols in the file (what `ldd` and `nm -D` would show).
pub fn classify_plugin(bytes: &[u8]) -> DbFormat {
    let has = |n: &[u8]| bytes.windows(n.len()).any(|w| w == n);
    if has(b"liblmdb.so") || has(b"mdb_env_open") {
        DbFormat::Lmdb
    } else if has(b"libgdbm") || has(b"gdbm_open") {
        DbFormat::Gdbm
    } else if has(b"libdb-") || has(b"libdb.so") || has(b"db_create") {
        DbFormat::BerkeleyDb
    } else if has(b"dbm_open") {
        DbFormat::Ndbm
    } else {
        DbFormat::Unknown
    }
}

fn gather_libsasl() -> LibsaslFacts {
    let dirs = plugin_dirs();
    let plugin = find_plugin(&dirs, "libsasldb.so");
    let format = plugin
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .map_or(DbFormat::Unknown, |b| classify_plugin(&b));
    LibsaslFacts {
        plugin,
        format,
        sql_plugin: find_plugin(&dirs, "libsql.so"),
    }
}

/// Run this binary as `user` (its uid, primary group and supplementary
/// groups) to open `path` read-only, as Postfix's processes would.
pub fn probe(path: &Path, user: &str) -> Probe {
    use nix::unistd::{User, geteuid, getgrouplist};
    let mut out = Probe {
        path: path.to_path_buf(),
        user: user.to_string(),
        groups: Vec::new(),
        outcome: ProbeOutcome::NotRun(String::new()),
    };
    let Some(u) = User::from_name(user).ok().flatten() else {
        out.outcome = ProbeOutcome::NotRun(format!("no user {user:?}"));
        return out;
    };
    let gids: Vec<libc::gid_t> = CString::new(user)
        .ok()
        .and_then(|c| getgrouplist(&c, u.gid).ok())
        .unwrap_or_else(|| vec![u.gid])
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    out.groups = gids.iter().map(|&g| group_name(g)).collect();
    if !geteuid().is_root() {
        out.outcome = ProbeOutcome::NotRun("switching users needs root".into());
        return out;
    }
    let exe = match std::env::var_os(PROBE_EXE_ENV) {
        Some(e) if !e.is_empty() => PathBuf::from(e),
        _ => match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                out.outcome = ProbeOutcome::NotRun(format!("cannot find this program: {e}"));
                return out;
            }
        },
    };
    let (uid, gid) = (u.uid.as_raw(), u.gid.as_raw());
    let mut cmd = Command::new(&exe);
    cmd.arg(PROBE_ARG)
        .arg(path)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe system calls run between fork and
    // exec; the group list was built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(gids.len() as _, gids.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    out.outcome = match cmd.output() {
        Err(e) => ProbeOutcome::NotRun(format!(
            "cannot run {} as {user}: {}",
            exe.display(),
            crate::cli::strerror(&e)
        )),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() {
                ProbeOutcome::Opened {
                    keys: text.parse().unwrap_or(0),
                }
            } else if o.status.code() == Some(1) && !text.is_empty() {
                ProbeOutcome::Refused(text)
            } else {
                ProbeOutcome::NotRun(format!(
                    "{} as {user} failed ({}): {}",
                    exe.display(),
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        }
    };
    out
}

/// The probe's child side: open `path` read-only, read every key in one
/// transaction, print how many (exit 0) or why not (exit 1).
pub fn probe_main(args: &[OsString]) -> i32 {
    let [path] = args else {
        return 2;
    };
    let path = Path::new(path);
    let r = Store::open_read(path, &OpenOptions::default())
        .and_then(|s| s.read(|v| v.raw_entries().map(|e| e.len())));
    let (line, code) = match r {
        Ok(n) => (n.to_string(), 0),
        Err(e) => (e.to_string(), 1),
    };
    let _ = writeln!(io::stdout(), "{line}");
    code
}

fn gather_postfix(
    d: &Deployment,
    store: &Path,
    opts: &OpenOptions,
    store_readable: bool,
) -> Result<PostfixFacts, String> {
    let pf = &d.postfix;
    let err = |e: PostfixError| e.to_string();
    let main_values = postconf_values(pf, &PARAMS).map_err(err)?;
    let overrides = service_overrides(pf).map_err(err)?;
    let main = Service {
        name: "main.cf".into(),
        chroot: false,
        params: main_values.clone(),
    };
    let services: Vec<Service> = pf
        .smtpd_services()
        .map_err(err)?
        .into_iter()
        .map(|(name, chroot)| {
            let mut params = main_values.clone();
            for (svc, k, v) in &overrides {
                if *svc == name {
                    params.insert(k.clone(), v.clone());
                }
            }
            Service {
                name,
                chroot,
                params,
            }
        })
        .collect();
    let mail_owner = pf.mail_owner().map_err(err)?;
    let (realm, realm_source) = pf.sasl_realm().map_err(err)?;
    let config_dir = pf.config_dir();
    let queue = PathBuf::from(main.get("queue_directory"));
    let override_path = std::env::var(SASL_PATH_ENV).ok();
    let mut sasl = BTreeMap::new();
    let mut sockets = BTreeMap::new();
    for s in services.iter().chain([&main]) {
        match s.sasl_type() {
            "cyrus" => {
                let app = s.sasl_path().to_string();
                if !sasl.contains_key(&app) {
                    let dirs = sasl_search_dirs(
                        &config_dir,
                        s.get("cyrus_sasl_config_path"),
                        override_path.as_deref(),
                    );
                    sasl.insert(app.clone(), gather_sasl(&app, dirs));
                }
            }
            "dovecot" => {
                let sp = s.sasl_path().to_string();
                let state = if sp.starts_with("inet:") {
                    (PathBuf::from(&sp), SocketState::Tcp)
                } else {
                    let path = queue.join(&sp);
                    let st = match fs::symlink_metadata(&path) {
                        Ok(m) if m.file_type().is_socket() => SocketState::Socket,
                        Ok(_) => SocketState::NotSocket,
                        Err(_) => SocketState::Missing,
                    };
                    (path, st)
                };
                sockets.insert(sp, state);
            }
            _ => {}
        }
    }
    let copy = d.copy.as_ref().map(|c| {
        let data = FileFacts::of(c);
        let present = data.is_some_and(|x| x.kind == Kind::File);
        let content = if present {
            read_content(c, opts)
        } else {
            Err(format!("{}: no such file", c.display()))
        };
        CopyFacts {
            path: c.clone(),
            data,
            lock: FileFacts::of(&lock_path(c)),
            hard_link: present && publish::same_file(store, c),
            content,
            probe: present.then(|| probe(c, &mail_owner)),
        }
    });
    let store_probe = store_readable.then(|| probe(store, &mail_owner));
    Ok(PostfixFacts {
        config_dir,
        group: d.group.clone(),
        ownership: d.ownership,
        realm,
        realm_source,
        main,
        services,
        copy,
        sasl,
        sockets,
        store_probe,
        mail_owner,
    })
}

/// Collect every fact the checks need.
pub fn gather(store: &Path, opts: &OpenOptions, deploy: Option<&Deployment>) -> Facts {
    let store_facts = gather_store(store, opts);
    let postfix = match deploy {
        Some(d) => match gather_postfix(d, store, opts, store_facts.content.is_ok()) {
            Ok(p) => PostfixState::Found(Box::new(p)),
            Err(e) => PostfixState::Failed(e),
        },
        None => match Postfix::detect(None).and_then(|pf| pf.get("mail_owner")) {
            Err(PostfixError::NoPostconf) => PostfixState::NotInstalled,
            Err(e) => PostfixState::Failed(e.to_string()),
            Ok(_) => PostfixState::Failed(
                "Postfix integration could not be set up for this store".into(),
            ),
        },
    };
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Facts {
        store: store_facts,
        postfix,
        libsasl: gather_libsasl(),
        hostname,
    }
}

// ---------------------------------------------------------------- fixing

fn fix_perms(path: &Path, own: perms::Ownership, opts: &OpenOptions) -> Result<(), String> {
    if !lock_path(path).exists() {
        // A read-only open creates LMDB's lock file, so it can get its modes.
        Store::open_read(path, opts).map_err(|e| e.to_string())?;
    }
    perms::apply(path, own)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn publish_copy(
    store: &Path,
    copy: &Path,
    own: perms::Ownership,
    opts: &OpenOptions,
) -> Result<(), String> {
    let source = Store::open_read(store, opts).map_err(|e| e.to_string())?;
    publish::publish(&source, copy, opts).map_err(|e| e.to_string())?;
    perms::apply(copy, own)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Apply the repairs; returns the ones that failed, with why.
pub fn apply_fixes(
    wanted: &BTreeSet<Fix>,
    d: &Deployment,
    opts: &OpenOptions,
) -> Vec<(Fix, String)> {
    let mut failed = Vec::new();
    if wanted.contains(&Fix::StorePerms)
        && let Err(e) = fix_perms(&d.store, d.ownership, opts)
    {
        failed.push((Fix::StorePerms, e));
    }
    let Some(copy) = &d.copy else {
        return failed;
    };
    let mut published = false;
    if wanted.contains(&Fix::ReplaceHardLink) && publish::same_file(&d.store, copy) {
        // The copy's own two paths, and only while the copy is still a
        // second name of the store.
        let lock = lock_path(copy);
        let r = fs::remove_file(copy)
            .and_then(|()| match fs::remove_file(&lock) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .map_err(|e| format!("{}: {}", copy.display(), crate::cli::strerror(&e)))
            .and_then(|()| publish_copy(&d.store, copy, d.ownership, opts));
        match r {
            Ok(()) => published = true,
            Err(e) => failed.push((Fix::ReplaceHardLink, e)),
        }
    }
    if wanted.contains(&Fix::Publish) && !published {
        match publish_copy(&d.store, copy, d.ownership, opts) {
            Ok(()) => published = true,
            Err(e) => failed.push((Fix::Publish, e)),
        }
    }
    if wanted.contains(&Fix::CopyPerms)
        && !published
        && let Err(e) = fix_perms(copy, d.ownership, opts)
    {
        failed.push((Fix::CopyPerms, e));
    }
    failed
}

/// Mark findings repaired since `before`, and say which repairs failed.
pub fn mark_fixed(before: &[Finding], after: &mut [Finding], failed: &[(Fix, String)]) {
    for f in after.iter_mut() {
        let prior = before
            .iter()
            .find(|b| b.id == f.id && b.subject == f.subject && b.level != Level::Ok);
        match prior {
            Some(b) if f.level == Level::Ok => {
                f.fixed = true;
                f.was = Some(b.message.clone());
            }
            _ => {
                if let Some(fix) = f.fix
                    && let Some((_, why)) = failed.iter().find(|(x, _)| *x == fix)
                {
                    f.message.push_str(&format!(" (--fix failed: {why})"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- output

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub store: String,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
    pub fixed: usize,
}

impl Report {
    pub fn new(store: &Path, findings: Vec<Finding>) -> Report {
        let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
        Report {
            schema: SCHEMA,
            store: store.display().to_string(),
            errors: count(Level::Error),
            warnings: count(Level::Warning),
            fixed: findings.iter().filter(|f| f.fixed).count(),
            findings,
        }
    }

    pub fn text(&self, prog: &str) -> String {
        let mut s = format!("{prog} --doctor: {}\n", self.store);
        for (level, title) in [
            (Level::Ok, "ok"),
            (Level::Warning, "warning"),
            (Level::Error, "error"),
        ] {
            let group: Vec<&Finding> = self.findings.iter().filter(|f| f.level == level).collect();
            if group.is_empty() {
                continue;
            }
            s.push_str(&format!("{title}:\n"));
            for f in group {
                s.push_str(&format!("  [{}] {}\n", f.id, f.message));
                if let Some(was) = &f.was {
                    s.push_str(&format!("      fixed, was: {was}\n"));
                }
                if level != Level::Ok
                    && let Some(h) = &f.hint
                {
                    s.push_str(&format!("      fix: {h}\n"));
                }
            }
        }
        s.push_str(&format!(
            "{}, {}{}\n",
            count(self.errors, "error"),
            count(self.warnings, "warning"),
            if self.fixed > 0 {
                format!(", {} fixed", self.fixed)
            } else {
                String::new()
            }
        ));
        s
    }
}

/// Run the doctor from the command line; returns the exit code (0 when no
/// error remains).
pub fn cli(
    prog: &str,
    store: &Path,
    config: &SaslConfig,
    deploy: Option<&Deployment>,
    fix: bool,
    json: bool,
) -> i32 {
    let opts = OpenOptions {
        map_size: config.sasldb_mapsize(),
        max_readers: config.sasldb_maxreaders(),
    };
    let facts = gather(store, &opts, deploy);
    let mut findings = check(&facts);
    if fix && let Some(d) = deploy {
        let wanted: BTreeSet<Fix> = findings
            .iter()
            .filter(|f| f.level != Level::Ok)
            .filter_map(|f| f.fix)
            .collect();
        if !wanted.is_empty() {
            let failed = apply_fixes(&wanted, d, &opts);
            let before = findings;
            findings = check(&gather(store, &opts, deploy));
            mark_fixed(&before, &mut findings, &failed);
        }
    }
    let report = Report::new(store, findings);
    let text = if json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => j + "\n",
            Err(e) => {
                crate::cli::stderr(&format!("{prog}: --doctor: {e}\n"));
                return 1;
            }
        }
    } else {
        report.text(prog)
    };
    let _ = io::stdout().write_all(text.as_bytes());
    if report.errors > 0 { 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(pairs: &[(&str, &str)]) -> Service {
        let mut params: BTreeMap<String, String> = [
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_type", "cyrus"),
            ("smtpd_sasl_path", "smtpd"),
            ("smtpd_sasl_security_options", "noanonymous"),
            ("smtpd_sasl_tls_security_options", "noanonymous"),
            ("smtpd_tls_auth_only", "no"),
            ("smtpd_tls_security_level", "may"),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
            ),
            ("queue_directory", "/var/spool/postfix"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            params.insert(k.to_string(), v.to_string());
        }
        Service {
            name: "smtp/inet".into(),
            chroot: true,
            params,
        }
    }

    fn conf(text: &str) -> SaslConfig {
        saslconf::parse(text.as_bytes(), Path::new("/x/smtpd.conf")).unwrap()
    }

    fn entries(accounts: &[(&str, &str, &str)]) -> Entries {
        let mut e: Entries = accounts
            .iter()
            .map(|(u, r, p)| (format!("{u}\0{r}\0{p}").into_bytes(), b"secret".to_vec()))
            .collect();
        e.sort();
        e
    }

    fn pf(realm: &str) -> PostfixFacts {
        PostfixFacts {
            config_dir: "/etc/postfix".into(),
            mail_owner: "postfix".into(),
            group: "postfix".into(),
            ownership: perms::Ownership { uid: 0, gid: 105 },
            realm: realm.into(),
            realm_source: "myhostname",
            main: svc(&[]),
            services: vec![svc(&[])],
            copy: None,
            sasl: BTreeMap::new(),
            sockets: BTreeMap::new(),
            store_probe: None,
        }
    }

    #[test]
    fn restriction_order_cases() {
        assert_eq!(
            restriction_order(
                "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
            ),
            Order::PermitFirst
        );
        assert_eq!(
            restriction_order(
                "permit_mynetworks reject_unauth_destination permit_sasl_authenticated"
            ),
            Order::PermitAfter("reject_unauth_destination".into())
        );
        assert_eq!(
            restriction_order("permit_mynetworks, defer_unauth_destination"),
            Order::PermitMissing("defer_unauth_destination".into())
        );
        assert_eq!(restriction_order(""), Order::NoBlocker);
        assert_eq!(
            restriction_order("check_client_access hash:/x, PERMIT_SASL_AUTHENTICATED, reject"),
            Order::PermitFirst
        );
        let s = svc(&[
            ("smtpd_relay_restrictions", ""),
            (
                "smtpd_recipient_restrictions",
                "permit_mynetworks, reject_unauth_destination",
            ),
        ]);
        assert_eq!(check_restrictions(&s).level, Level::Error);
        let s = svc(&[
            ("smtpd_relay_restrictions", ""),
            ("smtpd_recipient_restrictions", ""),
        ]);
        assert_eq!(check_restrictions(&s).level, Level::Error);
        assert_eq!(check_restrictions(&svc(&[])).level, Level::Ok);
    }

    #[test]
    fn noplaintext_with_plain_login_only_leaves_nothing() {
        let s = svc(&[
            ("smtpd_sasl_security_options", "noanonymous, noplaintext"),
            (
                "smtpd_sasl_tls_security_options",
                "noanonymous, noplaintext",
            ),
        ]);
        let c = conf("mech_list: plain login\n");
        let o = offer(&s, &c.mech_list());
        assert_eq!(check_mechs(&s, &c, &o).level, Level::Error);
        // The recommended split: no plaintext before TLS, plaintext after.
        let s = svc(&[("smtpd_sasl_security_options", "noanonymous, noplaintext")]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(o.plain, Some(vec![]));
        assert_eq!(o.tls, Some(vec!["PLAIN", "LOGIN"]));
        assert_eq!(check_mechs(&s, &c, &Ok(o.clone())).level, Level::Ok);
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Ok);
        let bad = svc(&[("smtpd_sasl_security_options", "noanonymous, bogus")]);
        assert_eq!(check_mechs(&bad, &c, &offer(&bad, &[])).level, Level::Error);
    }

    #[test]
    fn tls_auth_only_cases() {
        let c = conf("mech_list: PLAIN LOGIN CRAM-MD5\n");
        let s = svc(&[]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Warning);
        let s = svc(&[("smtpd_tls_auth_only", "yes")]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(o.plain, None);
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Ok);
        let s = svc(&[
            ("smtpd_tls_auth_only", "yes"),
            ("smtpd_tls_security_level", ""),
        ]);
        assert_eq!(check_tls(&s, None).level, Level::Error);
        let s = svc(&[("smtpd_tls_wrappermode", "yes")]);
        assert_eq!(check_tls(&s, None).level, Level::Ok);
        let s = svc(&[("smtpd_tls_security_level", ""), ("smtpd_use_tls", "yes")]);
        assert!(tls_of(&s).available);
        let c = conf("mech_list: CRAM-MD5\n");
        let s = svc(&[]);
        assert_eq!(
            check_tls(&s, offer(&s, &c.mech_list()).ok().as_ref()).level,
            Level::Ok
        );
    }

    #[test]
    fn auxprop_and_sql() {
        let none = LibsaslFacts {
            plugin: None,
            format: DbFormat::Unknown,
            sql_plugin: None,
        };
        let sql = LibsaslFacts {
            sql_plugin: Some("/usr/lib/sasl2/libsql.so.2".into()),
            ..none.clone()
        };
        let f = check_auxprop("s", &conf("auxprop_plugin: sql\n"), &none);
        assert_eq!(f.level, Level::Error);
        assert!(
            f.message.contains("sql_select option missing"),
            "{}",
            f.message
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: sql\nsql_select: x\n"), &none).level,
            Level::Warning
        );
        let f = check_auxprop("s", &conf("pwcheck_method: auxprop\n"), &sql);
        assert_eq!(f.level, Level::Warning);
        assert!(f.message.contains("sql_select option missing"));
        assert_eq!(
            check_auxprop("s", &conf("pwcheck_method: auxprop\n"), &none).level,
            Level::Ok
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: sasldb\n"), &sql).level,
            Level::Ok
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: ldapdb\n"), &none).level,
            Level::Warning
        );
    }

    #[test]
    fn sasldb_use_and_format() {
        let all: BTreeSet<&str> = ["PLAIN", "LOGIN", "CRAM-MD5"].into();
        let plain: BTreeSet<&str> = ["PLAIN", "LOGIN"].into();
        assert!(uses_sasldb(&conf("pwcheck_method: auxprop\n"), &plain));
        assert!(!uses_sasldb(&conf("pwcheck_method: saslauthd\n"), &plain));
        assert!(uses_sasldb(&conf("pwcheck_method: saslauthd\n"), &all));
        assert!(!uses_sasldb(&conf("auxprop_plugin: sql\n"), &all));
        assert_eq!(
            classify_plugin(b"\x7fELF...libdb-5.3.so\0db_create"),
            DbFormat::BerkeleyDb
        );
        assert_eq!(
            classify_plugin(b"liblmdb.so.0\0mdb_env_open"),
            DbFormat::Lmdb
        );
        assert_eq!(classify_plugin(b"libgdbm.so.6\0gdbm_open"), DbFormat::Gdbm);
        assert_eq!(classify_plugin(b"nothing"), DbFormat::Unknown);
        let bdb = LibsaslFacts {
            plugin: Some("/usr/lib/x86_64-linux-gnu/sasl2/libsasldb.so.2".into()),
            format: DbFormat::BerkeleyDb,
            sql_plugin: None,
        };
        let f = check_libsasl(&bdb, &["smtp/inet".into()], true);
        assert_eq!(f.level, Level::Error);
        assert!(
            f.hint
                .as_deref()
                .unwrap_or("")
                .contains("smtpd_sasl_type = dovecot")
        );
        assert_eq!(check_libsasl(&bdb, &[], true).level, Level::Ok);
        let lmdb = LibsaslFacts {
            format: DbFormat::Lmdb,
            ..bdb.clone()
        };
        assert_eq!(
            check_libsasl(&lmdb, &["smtp/inet".into()], true).level,
            Level::Ok
        );
        let missing = LibsaslFacts {
            plugin: None,
            ..bdb
        };
        assert_eq!(
            check_libsasl(&missing, &["smtp/inet".into()], true).level,
            Level::Error
        );
    }

    #[test]
    fn realms() {
        assert!(container_like(b"3f2a9c1b7d4e"));
        assert!(container_like(
            b"3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e1234"
        ));
        assert!(!container_like(b"3f2a9c1b7d4"));
        assert!(!container_like(b"mx.example.org"));
        let p = pf("mx.example.org");
        let e = entries(&[
            ("alice", "mx.example.org", "userPassword"),
            ("bob", "box", "userPassword"),
        ]);
        assert_eq!(check_realm(&e, &p, "box").level, Level::Ok);
        let e = entries(&[
            ("alice", "box", "userPassword"),
            ("bob", "3f2a9c1b7d4e", "userPassword"),
        ]);
        let f = check_realm(&e, &p, "box");
        assert_eq!(f.level, Level::Warning);
        assert!(
            f.message.contains("1 in box (the host name)"),
            "{}",
            f.message
        );
        assert!(f.message.contains("container id"), "{}", f.message);
        assert!(
            f.hint
                .as_deref()
                .unwrap_or("")
                .contains("-u mx.example.org")
        );
        let e = entries(&[("alice", "example.org", "userPassword")]);
        assert_eq!(check_realm(&e, &p, "box").level, Level::Ok);
        assert_eq!(check_realm(&Vec::new(), &p, "box").level, Level::Ok);
    }

    #[test]
    fn cram_digest_needs_user_password() {
        let e = entries(&[("alice", "r", "userPassword"), ("bob", "r", "authPassword")]);
        let offered: BTreeSet<&str> = ["PLAIN", "CRAM-MD5"].into();
        let f = check_cram_digest(&e, &offered, "s");
        assert_eq!(f.level, Level::Warning);
        assert!(f.message.contains("1 of 2 accounts"), "{}", f.message);
        assert!(f.message.contains("bob@r"), "{}", f.message);
        let plain: BTreeSet<&str> = ["PLAIN"].into();
        assert_eq!(check_cram_digest(&e, &plain, "s").level, Level::Ok);
    }

    #[test]
    fn perms_rules() {
        let p = pf("r");
        let file = |uid, gid, mode| FileFacts {
            kind: Kind::File,
            uid,
            gid,
            mode,
        };
        let good = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 105, 0o640),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            Some(Fix::StorePerms),
        );
        assert_eq!(good.level, Level::Ok);
        assert_eq!(good.fix, None);
        let world = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 105, 0o644),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            Some(Fix::StorePerms),
        );
        assert_eq!(world.level, Level::Error);
        assert_eq!(world.fix, Some(Fix::StorePerms));
        let lock = check_perms(
            "chroot.perms",
            Path::new("/s"),
            &file(0, 105, 0o640),
            Some(&file(0, 105, 0o640)),
            Some(&p),
            Some(Fix::CopyPerms),
        );
        assert_eq!(lock.level, Level::Error);
        assert!(lock.message.contains("read-write"), "{}", lock.message);
        let owner = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 0, 0o640),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            None,
        );
        assert_eq!(owner.level, Level::Warning);
        // Without Postfix only other users' access counts.
        let alone = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 0, 0o600),
            None,
            None,
            None,
        );
        assert_eq!(alone.level, Level::Ok);
    }

    #[test]
    fn diff_counts() {
        let a = entries(&[("a", "r", "p"), ("b", "r", "p"), ("c", "r", "p")]);
        let mut b = entries(&[("b", "r", "p"), ("c", "r", "p"), ("d", "r", "p")]);
        b[0].1 = b"other".to_vec();
        assert_eq!(diff(&a, &b), (1, 1, 1));
        assert_eq!(diff(&a, &a), (0, 0, 0));
    }

    #[test]
    fn search_dirs_and_foreign_magic() {
        let d = sasl_search_dirs(Path::new("/etc/postfix"), "", Some("/a:/b"));
        assert_eq!(
            d,
            vec![PathBuf::from("/etc/postfix/sasl"), "/a".into(), "/b".into()]
        );
        let d = sasl_search_dirs(Path::new("/etc/postfix"), "/etc/postfix/sasl:/c", None);
        assert_eq!(d, vec![PathBuf::from("/etc/postfix/sasl"), "/c".into()]);
        let mut head = [0u8; 32];
        head[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
        assert_eq!(foreign_format(&head), Some("Berkeley DB"));
        assert_eq!(foreign_format(&[0u8; 32]), None);
    }

    #[test]
    fn fixed_findings_are_marked() {
        let before = vec![
            Finding::error("store.perms", "/s", "bad".into(), "h".into())
                .with_fix(Some(Fix::StorePerms)),
        ];
        let mut after = vec![Finding::ok("store.perms", "/s", "good".into())];
        mark_fixed(&before, &mut after, &[]);
        assert!(after[0].fixed);
        assert_eq!(after[0].was.as_deref(), Some("bad"));
        let r = Report::new(Path::new("/s"), after);
        assert_eq!((r.errors, r.warnings, r.fixed), (0, 0, 1));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["schema"], SCHEMA);
        assert_eq!(j["findings"][0]["level"], "ok");
        assert_eq!(j["findings"][0]["fixed"], true);
        assert!(j["findings"][0].get("fix").is_none());
        let mut after = vec![before[0].clone()];
        mark_fixed(&before, &mut after, &[(Fix::StorePerms, "EPERM".into())]);
        assert!(after[0].message.contains("--fix failed: EPERM"));
    }
}
