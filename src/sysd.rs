//! The two systemd protocols a daemon speaks, by hand (they are a few
//! environment variables and datagrams; no library needed):
//!
//! - socket activation: listening sockets inherited from the service
//!   manager (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), so the daemon
//!   binds nothing itself and needs neither root nor `CAP_NET_BIND_SERVICE`;
//! - readiness notification (`Type=notify`): `READY=1`, `RELOADING=1`,
//!   `STOPPING=1` datagrams to `NOTIFY_SOCKET`.
//!
//! The parsing is pure functions over the variables' values; the I/O is
//! in [`take_listen_fds`] and [`Notifier`]. Without systemd (no variables)
//! nothing changes.
//!
//! # Socket names
//!
//! Each inherited socket's `FileDescriptorName=` (one per `.socket` unit,
//! or `--fdname` of `systemd-socket-activate`) says what it serves:
//!
//! | name | socket | served as |
//! |------|--------|-----------|
//! | `smtp`, `submission` | TCP | SMTP, STARTTLS offered (ports 25, 587) |
//! | `smtps`, `submissions` | TCP | SMTP with implicit TLS (port 465) |
//! | `dovecot` | UNIX | Dovecot auth protocol for Postfix |
//! | `saslauthd` | UNIX | saslauthd protocol |

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;
/// More inherited sockets than this is a broken environment, not a setup.
const MAX_LISTEN_FDS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysdError {
    #[error("{var}: not a number: {value:?}")]
    NotANumber { var: &'static str, value: String },
    #[error("LISTEN_FDS: {0} sockets is more than {MAX_LISTEN_FDS}")]
    TooMany(usize),
    #[error("LISTEN_FDNAMES names {names} sockets but LISTEN_FDS is {fds}")]
    NameCount { names: usize, fds: usize },
    #[error(
        "inherited socket {fd} is named {name:?}; FileDescriptorName= must be one of smtp, submission, smtps, submissions, dovecot, saslauthd"
    )]
    UnknownName { fd: RawFd, name: String },
    #[error("inherited socket {fd} ({name}): {what}")]
    WrongKind {
        fd: RawFd,
        name: String,
        what: NotListening,
    },
    #[error("NOTIFY_SOCKET: {0:?} is not a UNIX socket path or @abstract name")]
    NotifyAddress(String),
}

/// What an inherited descriptor is instead of the listening socket its
/// role needs (OS errors in strerror's words).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NotListening {
    #[error("not an open descriptor: {0}")]
    Closed(String),
    #[error("not a socket: {0}")]
    NotSocket(String),
    #[error("not a stream socket")]
    NotStream,
    #[error("not listening")]
    NotListening,
    #[error("a TCP socket is needed for SMTP")]
    NeedTcp,
    #[error("a UNIX socket is needed for an auth socket")]
    NeedUnix,
}

/// What an inherited socket serves, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// SMTP, STARTTLS offered.
    Smtp,
    /// SMTP with implicit TLS.
    Smtps,
    Dovecot,
    Saslauthd,
}

impl Role {
    pub fn from_name(name: &str) -> Option<Role> {
        Some(match name {
            "smtp" | "submission" => Role::Smtp,
            "smtps" | "submissions" => Role::Smtps,
            "dovecot" => Role::Dovecot,
            "saslauthd" => Role::Saslauthd,
            _ => return None,
        })
    }

    fn is_tcp(self) -> bool {
        matches!(self, Role::Smtp | Role::Smtps)
    }
}

/// The inherited descriptors and their names, from the variables' values
/// (`None` where unset) and our pid. `Ok(None)`: not socket-activated (no
/// `LISTEN_FDS`, or `LISTEN_PID` names another process, which means the
/// variables were inherited from a parent they were meant for).
pub fn parse_listen_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    my_pid: u32,
) -> Result<Option<Vec<(RawFd, String)>>, SysdError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    let number = |var: &'static str, value: &str| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| SysdError::NotANumber {
                var,
                value: value.to_string(),
            })
    };
    if number("LISTEN_PID", pid)? != u64::from(my_pid) {
        return Ok(None);
    }
    let n = number("LISTEN_FDS", fds)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LISTEN_FDS)
        .ok_or(SysdError::TooMany(usize::try_from(n).unwrap_or(usize::MAX)))?;
    // systemd names unnamed sockets "unknown"; so do we.
    let names: Vec<String> = match listen_fdnames {
        Some(s) if n > 0 => s.split(':').map(str::to_string).collect(),
        _ => vec!["unknown".to_string(); n],
    };
    if names.len() != n {
        return Err(SysdError::NameCount {
            names: names.len(),
            fds: n,
        });
    }
    Ok(Some(
        (LISTEN_FDS_START..).zip(names).take(n).collect::<Vec<_>>(),
    ))
}

/// Inherited listening sockets, by what they serve.
#[derive(Debug, Default)]
pub struct Inherited {
    pub smtp: Vec<std::net::TcpListener>,
    pub smtps: Vec<std::net::TcpListener>,
    pub dovecot: Vec<UnixListener>,
    pub saslauthd: Vec<UnixListener>,
}

impl Inherited {
    pub fn is_empty(&self) -> bool {
        self.smtp.is_empty()
            && self.smtps.is_empty()
            && self.dovecot.is_empty()
            && self.saslauthd.is_empty()
    }
}

/// Take the sockets the service manager passed, once, at start-up: each
/// is checked (a listening stream socket of the family its name calls
/// for), marked close-on-exec, and the `LISTEN_*` variables are removed so
/// no child mistakes them for its own. `Ok(None)`: not socket-activated.
///
/// Call before any thread is started (it changes the environment).
pub fn take_listen_fds() -> Result<Option<Inherited>, SysdError> {
    let var = |k: &str| std::env::var(k).ok();
    let parsed = parse_listen_env(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called at start-up before any thread exists (the
        // function's contract), so nothing reads the environment meanwhile.
        unsafe { std::env::remove_var(k) };
    }
    let Some(fds) = parsed? else {
        return Ok(None);
    };
    let mut out = Inherited::default();
    for (fd, name) in fds {
        let role = Role::from_name(&name).ok_or_else(|| SysdError::UnknownName {
            fd,
            name: name.clone(),
        })?;
        let wrong = |what: NotListening| SysdError::WrongKind {
            fd,
            name: name.clone(),
            what,
        };
        check_listening(fd, role).map_err(wrong)?;
        // SAFETY: systemd hands descriptors LISTEN_FDS_START.. to this
        // process; each is taken exactly once here and owned from now on.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match role {
            Role::Smtp => out.smtp.push(owned.into()),
            Role::Smtps => out.smtps.push(owned.into()),
            Role::Dovecot => out.dovecot.push(owned.into()),
            Role::Saslauthd => out.saslauthd.push(owned.into()),
        }
    }
    Ok(Some(out))
}

/// The descriptor is a listening stream socket of the family `role` needs;
/// set close-on-exec on it. The error says what it is instead.
fn check_listening(fd: RawFd, role: Role) -> Result<(), NotListening> {
    let os = || crate::sys::strerror(&io::Error::last_os_error());
    // SAFETY: fcntl on a descriptor number; a closed one is EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(NotListening::Closed(os()));
    }
    let opt = |level, name| -> Result<libc::c_int, NotListening> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are valid for getsockopt to write an int.
        let r = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        if r < 0 {
            return Err(NotListening::NotSocket(os()));
        }
        Ok(v)
    };
    if opt(libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(NotListening::NotStream);
    }
    if opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(NotListening::NotListening);
    }
    let family = opt(libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let tcp = family == libc::AF_INET || family == libc::AF_INET6;
    match (role.is_tcp(), tcp, family == libc::AF_UNIX) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, ..) => Err(NotListening::NeedTcp),
        (false, ..) => Err(NotListening::NeedUnix),
    }
}

/// Where `NOTIFY_SOCKET` points: a path, or an abstract name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAddr {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

pub fn parse_notify_socket(value: &str) -> Result<NotifyAddr, SysdError> {
    if let Some(name) = value.strip_prefix('@').filter(|n| !n.is_empty()) {
        return Ok(NotifyAddr::Abstract(name.as_bytes().to_vec()));
    }
    if value.starts_with('/') {
        return Ok(NotifyAddr::Path(value.into()));
    }
    // vsock: and the like are for virtual machines, not a mail daemon.
    Err(SysdError::NotifyAddress(value.to_string()))
}

/// The state changes a daemon reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Listeners are up: clients can be served.
    Ready,
    /// Reading the configuration again; `READY` follows.
    Reloading,
    Stopping,
}

/// The datagram for `state`. `monotonic_usec` is CLOCK_MONOTONIC now:
/// systemd 253+ wants it with `RELOADING=1` to match the reload to the
/// request that caused it.
pub fn message(state: State, status: &str, monotonic_usec: u64) -> String {
    let mut m = match state {
        State::Ready => "READY=1\n".to_string(),
        State::Reloading => format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\n"),
        State::Stopping => "STOPPING=1\n".to_string(),
    };
    if !status.is_empty() {
        // One line: a newline would start another assignment.
        m.push_str("STATUS=");
        m.extend(status.chars().map(|c| if c == '\n' { ' ' } else { c }));
        m.push('\n');
    }
    m
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is valid for clock_gettime to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let sec = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nsec = u64::try_from(ts.tv_nsec).unwrap_or(0);
    sec * 1_000_000 + nsec / 1_000
}

/// Sends state changes to the service manager; does nothing when the
/// daemon was not started with `NOTIFY_SOCKET`.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Read `NOTIFY_SOCKET` once and remove it from the environment, so
    /// no child process reports on our behalf. Call before any thread is
    /// started.
    pub fn from_env() -> Result<Notifier, SysdError> {
        let value = std::env::var("NOTIFY_SOCKET").ok();
        // SAFETY: at start-up, before any thread (the function's contract).
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let Some(value) = value else {
            return Ok(Notifier::default());
        };
        Notifier::to(&parse_notify_socket(&value)?)
            .map_err(|_| SysdError::NotifyAddress(value.clone()))
    }

    /// A notifier sending to `addr`.
    pub fn to(addr: &NotifyAddr) -> io::Result<Notifier> {
        let addr = match addr {
            NotifyAddr::Path(p) => SocketAddr::from_pathname(p)?,
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
        };
        Ok(Notifier {
            target: Some((UnixDatagram::unbound()?, addr)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Report `state`. The manager being gone is not the daemon's
    /// problem: the error is returned for a log line, nothing more.
    pub fn notify(&self, state: State, status: &str) -> io::Result<()> {
        let Some((sock, addr)) = &self.target else {
            return Ok(());
        };
        let m = message(state, status, monotonic_usec());
        sock.send_to_addr(m.as_bytes(), addr).map(|_| ())
    }
}

#[cfg(test)]
#[path = "sysd_tests.rs"]
mod tests;
