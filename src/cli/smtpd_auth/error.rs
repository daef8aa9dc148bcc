//! Why the daemon cannot start, or a reload is refused: one typed error,
//! printed in one place (`smtpd-auth: fatal: ...`, as Postfix words it).
//! The messages are those the tests and admins already know.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::logging::LogError;
use crate::maincf;
use crate::net::NetError;
use crate::saslconf::{self, security::UnknownOption};
use crate::secret::SecretError;
use crate::smtp::policy::RelayOpen;
use crate::store::StoreError;
use crate::sysd::SysdError;

#[derive(Debug, Error)]
pub enum Fatal {
    #[error(transparent)]
    Config(#[from] maincf::ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sasl(#[from] saslconf::ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sysd(#[from] SysdError),
    #[error(transparent)]
    RelayOpen(#[from] RelayOpen),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("{key}: {source}")]
    Net { key: String, source: NetError },
    #[error("{key}: unknown restriction {name:?}")]
    Restriction { key: String, name: String },
    #[error("{key}: {source}")]
    SecurityOptions { key: String, source: UnknownOption },
    #[error(
        "{key}: {value:?} is not supported (use sasldb, or empty to accept every local recipient)"
    )]
    LocalRecipientMaps { key: String, value: String },
    #[error("{key}: no user {name:?}")]
    NoUser { key: String, name: String },
    #[error("{key}: no group {name:?}")]
    NoGroup { key: String, name: String },
    /// The store cannot be opened at start.
    #[error("{0} (create a user with saslpasswd first)")]
    NoStore(StoreError),
    #[error("no SASL mechanism left after mech_list and smtpd_sasl_security_options")]
    NoMechanism,
    /// A file or socket path.
    #[error("{}: {source}", .path.display())]
    Path { path: PathBuf, source: io::Error },
    /// A system call on a path or of a name (`setuid`).
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    #[error("could not give up root for {0}")]
    StillRoot(String),
    #[error("listen {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("implicit TLS on {0}: TLS is off (smtpd_tls_security_level = none)")]
    ImplicitTlsOff(String),
    #[error("inherited socket {name}: {source}")]
    Inherited { name: String, source: io::Error },
    /// Threads, the runtime: errors of the process itself.
    #[error(transparent)]
    Os(#[from] io::Error),
    #[error(transparent)]
    Signals(nix::errno::Errno),
}

impl Fatal {
    pub fn path(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Fatal {
        let path = path.into();
        move |source| Fatal::Path { path, source }
    }

    pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Fatal {
        let what = what.into();
        move |source| Fatal::Sys { what, source }
    }
}

/// The one printer: the message on stderr; the exit code.
pub fn report(e: &Fatal) -> i32 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "smtpd-auth: fatal: {e}");
    1
}
