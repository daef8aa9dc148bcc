//! The auth protocols on UNIX sockets: a thread per connection (Postfix
//! keeps one connection per smtpd process, so they are few and long-lived),
//! bounded in number, with read and write timeouts so a client that sends
//! garbage or hangs is cut off without affecting the others.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dovecot::{self, DovecotConfig, Session};
use super::limit::FailureLimiter;
use super::saslauthd;
use crate::mech::{Credentials, ServerConfig};
use crate::store::Store;

/// A line started but not finished must be completed within this time.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A Dovecot-protocol connection may sit idle between logins this long
/// (Postfix's smtpd processes keep theirs open until they exit).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(900);
/// A saslauthd request must arrive whole within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per socket; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Where and how to create a socket.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    pub path: PathBuf,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
}

/// Bind a UNIX socket. A stale socket file (nothing listening) is removed;
/// a live one or any other kind of file at the path is an error. Owner and
/// mode are set before anyone can connect with the wrong ones... almost:
/// the socket is created under a umask of 0177, then opened up.
pub fn bind(spec: &SocketSpec) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(&spec.path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(&spec.path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another server is listening", spec.path.display()),
                ));
            }
            Err(_) => std::fs::remove_file(&spec.path)?,
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", spec.path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(&spec.path);
    // SAFETY: as above, restoring it.
    unsafe { libc::umask(old) };
    let listener = listener?;
    if spec.uid.is_some() || spec.gid.is_some() {
        std::os::unix::fs::lchown(&spec.path, spec.uid, spec.gid)?;
    }
    std::fs::set_permissions(&spec.path, std::fs::Permissions::from_mode(spec.mode))?;
    Ok(listener)
}

/// One line of log output in Postfix's format (`maillog_file` style).
pub type LogFn = dyn Fn(&str) + Send + Sync;

/// What every connection of the server shares.
pub struct Shared {
    pub store: Store,
    pub server: ServerConfig,
    pub dovecot: DovecotConfig,
    pub limiter: Mutex<FailureLimiter>,
    pub log: Box<LogFn>,
    pub stop: AtomicBool,
    connections: AtomicUsize,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        store: Store,
        server: ServerConfig,
        dovecot: DovecotConfig,
        limiter: FailureLimiter,
        log: Box<LogFn>,
    ) -> Shared {
        Shared {
            store,
            server,
            dovecot,
            limiter: Mutex::new(limiter),
            log,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        }
    }
}

/// Counts a live connection; frees its slot when dropped.
struct Slot<'a>(&'a AtomicUsize);
impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accept connections until `shared.stop` is set, handling each on its own
/// thread with `handle`.
pub fn serve(listener: UnixListener, shared: Arc<Shared>, handle: fn(UnixStream, &Shared)) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            (shared.log)("warning: too many auth socket connections; closing one");
            continue;
        }
        let mine = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("auth-conn".into())
            .spawn(move || {
                let _slot = Slot(&mine.connections);
                handle(conn, &mine);
            });
        if spawned.is_err() {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            (shared.log)("warning: cannot start a connection thread");
        }
    }
}

/// Postfix's failure line: fail2ban's postfix filter matches it.
fn log_attempt(shared: &Shared, a: &dovecot::Attempt) {
    let client = a.client.as_deref().unwrap_or("unknown");
    match &a.result {
        Ok(()) => {}
        Err(e) => {
            let user = a
                .user
                .as_deref()
                .map(|u| format!(", sasl_username={u}"))
                .unwrap_or_default();
            (shared.log)(&format!(
                "warning: unknown[{client}]: SASL {} authentication failed: {e}{user}",
                a.mechanism
            ));
        }
    }
}

/// Serve one Dovecot-protocol connection.
pub fn handle_dovecot(mut conn: UnixStream, shared: &Shared) {
    let mut cfg = shared.dovecot.clone();
    cfg.connection_id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let mut session = Session::new(cfg, shared.server.clone());
    let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
    let hello = session.handshake().join("\n") + "\n";
    if conn.write_all(hello.as_bytes()).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut current_timeout = None;
    loop {
        let timeout = if buf.is_empty() {
            IDLE_TIMEOUT
        } else {
            PARTIAL_TIMEOUT
        };
        // One setsockopt per change of state, not per line.
        if current_timeout != Some(timeout) {
            let _ = conn.set_read_timeout(Some(timeout));
            current_timeout = Some(timeout);
        }
        let n = match conn.read(&mut chunk) {
            // A signal handler ran (glibc's setuid() signals every thread
            // when the daemon drops privileges): not the client's doing.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let creds: &dyn Credentials = &shared.store;
            let out = {
                let mut limiter = shared.limiter.lock().unwrap_or_else(|p| p.into_inner());
                session.feed(&line[..line.len() - 1], creds, &mut *limiter)
            };
            for a in &out.attempts {
                log_attempt(shared, a);
            }
            if !out.lines.is_empty() {
                let text = out.lines.join("\n") + "\n";
                if conn.write_all(text.as_bytes()).is_err() {
                    return;
                }
            }
            if out.close {
                return;
            }
        }
        if buf.len() > dovecot::MAX_LINE {
            (shared.log)("warning: auth socket: line too long; connection closed");
            return;
        }
    }
}

/// Serve one saslauthd request.
pub fn handle_saslauthd(mut conn: UnixStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let request = loop {
        match saslauthd::parse(&buf) {
            saslauthd::Parse::Done(r) => break r,
            saslauthd::Parse::TooLong => {
                let _ = conn.write_all(&saslauthd::encode_reply("NO "));
                return;
            }
            saslauthd::Parse::Incomplete => {}
        }
        match conn.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => return, // short read: close without reply
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 4 * (saslauthd::MAX_FIELD + 2) {
            return;
        }
    };
    let (reply, account) = saslauthd::answer(&request, &shared.server, &shared.store);
    let _ = conn.write_all(&saslauthd::encode_reply(reply));
    if reply != "OK" {
        let user = account
            .map(|a| format!(", sasl_username={a}"))
            .unwrap_or_default();
        (shared.log)(&format!(
            "warning: saslauthd request for service {}: authentication failed{user}",
            String::from_utf8_lossy(&request.service)
        ));
    }
}
