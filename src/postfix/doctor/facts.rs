//! What the doctor knows about the machine: plain data, gathered once by
//! [`super::gather()`] and read by every check. Unit tests build these by
//! hand.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::migrate;
use crate::postfix::{PostfixError, perms};
use crate::saslconf::{ConfigError, SaslConfig};
use crate::store::{Account, StoreError, key};

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

/// Every stored key and value, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug)]
pub struct StoreFacts {
    pub path: PathBuf,
    /// None when nothing is at the path.
    pub data: Option<FileFacts>,
    pub lock: Option<FileFacts>,
    /// The content, or why it cannot be read.
    pub content: Result<Entries, StoreError>,
    /// A sasldb of another libsasl build (Berkeley DB hash, GDBM): what
    /// [`crate::migrate::detect`] counted in it, or why it could not.
    pub foreign: Option<Foreign>,
    pub maps: MapUsers,
}

/// Processes that map a store with less than the map it records: a writer
/// grew the map under them, and their next lookup fails (`MDB_MAP_RESIZED`,
/// after which Cyrus's LMDB backend crashes).
#[derive(Debug, Default)]
pub struct MapUsers {
    /// The map the store records, in bytes (0: unknown).
    pub map_size: usize,
    pub short: Vec<crate::sys::Mapping>,
}

/// A store in an old format, to be imported.
#[derive(Debug)]
pub struct Foreign {
    pub format: migrate::Format,
    pub detected: Result<migrate::Detected, migrate::MigrateError>,
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

    /// `smtpd_sasl_type`, Postfix's default when empty.
    pub fn sasl_type(&self) -> &str {
        match self.get("smtpd_sasl_type") {
            "" => "cyrus",
            t => t,
        }
    }

    /// `smtpd_sasl_path`, Postfix's default when empty.
    pub fn sasl_path(&self) -> &str {
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
#[derive(Debug)]
pub struct SaslFacts {
    pub appname: String,
    pub searched: Vec<PathBuf>,
    /// Every `<appname>.conf` along the path, in search order: libsasl
    /// reads only the first.
    pub found: Vec<PathBuf>,
    pub config: Result<SaslConfig, ConfigError>,
}

/// The chroot copy.
#[derive(Debug)]
pub struct CopyFacts {
    pub path: PathBuf,
    pub data: Option<FileFacts>,
    pub lock: Option<FileFacts>,
    pub hard_link: bool,
    pub content: Result<Entries, StoreError>,
    pub probe: Option<Probe>,
    pub maps: MapUsers,
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

#[derive(Debug)]
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

#[derive(Debug)]
pub enum PostfixState {
    Found(Box<PostfixFacts>),
    NotInstalled,
    Failed(PostfixError),
}

#[derive(Debug)]
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
