//! The auth protocols on UNIX sockets: one epoll loop per socket serves
//! every connection (Postfix keeps one connection per smtpd process, so
//! they are few and long-lived), bounded in number, with read and write
//! deadlines so a client that sends garbage or hangs is cut off without
//! affecting the others.
//!
//! Why a loop and not a thread per connection: a request costs little
//! next to the scheduler's work around it. A thread blocked in `recv` is
//! woken again when the peer merely reads our reply (the kernel signals
//! "writable" on the same wait queue), a wasted switch per request;
//! epoll interest in readability alone filters that out, and one loop
//! picks up requests that arrive together in one wake-up.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::dovecot::{self, DovecotConfig, Session};
use super::saslauthd;
use crate::logging;
use crate::mech::{Credentials, ServerConfig};
use crate::net::FailureLimiter;

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
/// Replies a client has not read yet; more and it is cut off (Postfix
/// reads each reply before its next request).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// How often deadlines are checked: the timeouts are seconds long.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Where and how to create a socket.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    pub path: PathBuf,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
}

/// Bind a UNIX socket. A stale socket file (nothing listening) is
/// replaced; a live one or any other kind of file at the path is an error.
///
/// The socket's directory may be writable by others (Postfix's `private/`
/// belongs to postfix), so no path there is trusted between calls: a
/// chmod by path could be sent through a symlink swapped in after bind.
/// The socket is made in a fresh 0700 directory beside the target, given
/// its owner and mode there through that directory's descriptor, and
/// renamed into place whole: clients never see it with other modes.
pub fn bind(spec: &SocketSpec) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(&spec.path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(&spec.path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another server is listening", spec.path.display()),
                ));
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", spec.path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let name = spec.path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", spec.path.display()),
        )
    })?;
    let parent = match spec.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut template = std::ffi::OsString::from(".");
    template.push(name);
    template.push(".XXXXXX");
    let private = nix::unistd::mkdtemp(&parent.join(template))?;
    let result = bind_in(spec, &private, name);
    // Empty by now (renamed or unlinked); whatever is at this name after
    // a swap is not ours to remove beyond an empty directory.
    let _ = std::fs::remove_dir(&private);
    result
}

/// Bind `name` inside the private directory `dir` (just made by mkdtemp),
/// set its owner and mode and rename it to `spec.path`.
fn bind_in(spec: &SocketSpec, dir: &Path, name: &std::ffi::OsStr) -> io::Result<UnixListener> {
    use nix::fcntl::{AT_FDCWD, OFlag};
    use nix::sys::stat::{FchmodatFlags, Mode};
    use nix::unistd::{Gid, Uid, UnlinkatFlags};
    use std::os::fd::AsRawFd;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dfd = nix::fcntl::open(dir, flags, Mode::empty())?;
    // Someone who can write the parent could have put another directory
    // at the name between mkdtemp and open: only ours is root's and 0700.
    let st = nix::sys::stat::fstat(&dfd)?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o777 != 0o700 {
        return Err(io::Error::other(format!(
            "{}: replaced while the socket was being made",
            dir.display()
        )));
    }
    // Through the descriptor: the directory may be renamed meanwhile.
    let at = PathBuf::from(format!("/proc/self/fd/{}", dfd.as_raw_fd())).join(name);
    // SAFETY: umask only changes this process's file creation mask; the
    // socket is private to its directory until renamed anyway.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(&at);
    // SAFETY: as above, restoring it.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(|e| match Path::new("/proc/self/fd").is_dir() {
        true => e,
        false => io::Error::other("sockets are made through /proc/self/fd: mount /proc"),
    })?;
    let placed = (|| -> nix::Result<()> {
        if spec.uid.is_some() || spec.gid.is_some() {
            nix::unistd::fchownat(
                &dfd,
                name,
                spec.uid.map(Uid::from_raw),
                spec.gid.map(Gid::from_raw),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        // Following is safe: nobody else can write this directory.
        let mode = Mode::from_bits_truncate(spec.mode as libc::mode_t);
        nix::sys::stat::fchmodat(&dfd, name, mode, FchmodatFlags::FollowSymlink)?;
        nix::fcntl::renameat(&dfd, name, AT_FDCWD, &spec.path)
    })();
    if let Err(e) = placed {
        let _ = nix::unistd::unlinkat(&dfd, name, UnlinkatFlags::NoRemoveDir);
        return Err(e.into());
    }
    Ok(listener)
}

pub use crate::logging::LogFn;

/// What every connection of the server shares.
pub struct Shared {
    pub creds: Arc<dyn Credentials + Send + Sync>,
    pub server: ServerConfig,
    pub dovecot: DovecotConfig,
    pub limiter: Mutex<FailureLimiter>,
    pub log: Box<LogFn>,
    pub stop: AtomicBool,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        creds: Arc<dyn Credentials + Send + Sync>,
        server: ServerConfig,
        dovecot: DovecotConfig,
        limiter: FailureLimiter,
        log: Box<LogFn>,
    ) -> Shared {
        Shared {
            creds,
            server,
            dovecot,
            limiter: Mutex::new(limiter),
            log,
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        }
    }
}

/// Which protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Dovecot,
    Saslauthd,
}

const LISTENER: Token = Token(0);

/// One client connection and its protocol state.
struct Conn {
    stream: mio::net::UnixStream,
    input: Vec<u8>,
    /// Replies not yet written, from `written` on.
    output: Vec<u8>,
    written: usize,
    /// Cut the connection off when this passes with no complete request
    /// (or, while output is pending, with no progress writing it).
    deadline: Instant,
    /// Writability is in the epoll interest set.
    want_write: bool,
    /// Close once `output` is written.
    closing: bool,
    proto: Proto,
}

enum Proto {
    Dovecot(Box<Session>),
    Saslauthd,
}

/// Accept and serve connections until `shared.stop` is set.
pub fn serve(listener: UnixListener, shared: Arc<Shared>, protocol: Protocol) {
    if let Err(e) = run(listener, &shared, protocol) {
        (shared.log)(&format!("warning: auth socket stopped: {e}"));
    }
}

/// One socket's event loop: its connections by token.
struct Loop<'a> {
    shared: &'a Shared,
    protocol: Protocol,
    poll: Poll,
    conns: HashMap<usize, Conn>,
    next_token: usize,
}

fn run(listener: UnixListener, shared: &Shared, protocol: Protocol) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::UnixListener::from_std(listener);
    let mut l = Loop {
        shared,
        protocol,
        poll: Poll::new()?,
        conns: HashMap::new(),
        next_token: 0,
    };
    l.poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(256);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut last_sweep = Instant::now();
    // An accept that failed for want of descriptors leaves the connection
    // queued with no new edge to report it: retry on every round.
    let mut accept_again = false;
    while !shared.stop.load(Ordering::SeqCst) {
        match l.poll.poll(&mut events, Some(SWEEP_EVERY)) {
            // glibc's setuid() signals every thread when the daemon drops
            // privileges: not an error.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let now = Instant::now();
        for ev in events.iter().filter(|ev| ev.token() != LISTENER) {
            let t = ev.token().0;
            let Some(conn) = l.conns.get_mut(&t) else {
                continue;
            };
            if !conn.ready(shared, &mut chunk, now) || !conn.interest(&l.poll, t) {
                l.close(t);
            }
        }
        if now.duration_since(last_sweep) >= SWEEP_EVERY {
            last_sweep = now;
            let expired: Vec<usize> = l
                .conns
                .iter()
                .filter(|(_, c)| now >= c.deadline)
                .map(|(t, _)| *t)
                .collect();
            for t in expired {
                l.close(t);
            }
        }
        // Accept last: descriptors the closes above freed serve a client
        // left queued by an earlier failure in this same round, not one
        // poll timeout later.
        if accept_again || events.iter().any(|ev| ev.token() == LISTENER) {
            let failed = l.accept_all(&listener, now);
            if let (Some(e), false) = (&failed, accept_again) {
                (shared.log)(&format!(
                    "warning: auth socket: cannot accept a connection: {e}"
                ));
            }
            accept_again = failed.is_some();
        }
    }
    Ok(())
}

impl Loop<'_> {
    fn close(&mut self, token: usize) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            c.abandon(self.shared);
        }
    }

    /// Accept every queued connection; the error when some cannot be now.
    fn accept_all(&mut self, listener: &mio::net::UnixListener, now: Instant) -> Option<io::Error> {
        loop {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors and the like: try again next round.
                Err(e) => return Some(e),
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                (self.shared.log)("warning: too many auth socket connections; closing one");
                continue;
            }
            self.next_token = self.next_token.wrapping_add(1).max(1);
            let token = self.next_token;
            let mut conn = Conn::new(stream, self.shared, self.protocol, now);
            if self
                .poll
                .registry()
                .register(&mut conn.stream, Token(token), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            self.conns.insert(token, conn);
            // The Dovecot handshake goes out at once.
            let ok = self
                .conns
                .get_mut(&token)
                .is_some_and(|c| c.flush(now) && c.interest(&self.poll, token));
            if !ok {
                self.close(token);
            }
        }
    }
}

impl Conn {
    fn new(
        stream: mio::net::UnixStream,
        shared: &Shared,
        protocol: Protocol,
        now: Instant,
    ) -> Conn {
        let (proto, output, timeout) = match protocol {
            Protocol::Dovecot => {
                let mut cfg = shared.dovecot.clone();
                cfg.connection_id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let session = Session::new(cfg, shared.server.clone());
                let hello = session.handshake().join("\n") + "\n";
                (
                    Proto::Dovecot(Box::new(session)),
                    hello.into_bytes(),
                    IDLE_TIMEOUT,
                )
            }
            Protocol::Saslauthd => (Proto::Saslauthd, Vec::new(), REQUEST_TIMEOUT),
        };
        Conn {
            stream,
            input: Vec::new(),
            output,
            written: 0,
            deadline: now + timeout,
            want_write: false,
            closing: false,
            proto,
        }
    }

    /// Handle readiness: read everything there is, answer every complete
    /// request, write what can be written. False: close the connection.
    fn ready(&mut self, shared: &Shared, chunk: &mut [u8], now: Instant) -> bool {
        loop {
            if self.closing {
                break;
            }
            match self.stream.read(chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    if !self.consume(shared, now) {
                        return false;
                    }
                    // A short read emptied the socket; more data raises a
                    // new edge. Saves the EAGAIN read on every request.
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.flush(now) && !(self.closing && self.written == self.output.len())
    }

    /// Exchanges left unfinished at close count and log as failures.
    fn abandon(&mut self, shared: &Shared) {
        if let Proto::Dovecot(session) = &mut self.proto {
            let out = {
                let mut limiter = shared.limiter.lock().unwrap_or_else(|p| p.into_inner());
                session.disconnect(&mut *limiter)
            };
            for a in &out.attempts {
                log_attempt(shared, a);
            }
        }
    }

    /// Answer the complete requests in `input`. False: close at once.
    fn consume(&mut self, shared: &Shared, now: Instant) -> bool {
        match &mut self.proto {
            Proto::Dovecot(session) => {
                let mut start = 0;
                while let Some(len) = self.input[start..].iter().position(|&b| b == b'\n') {
                    let line = &self.input[start..start + len];
                    start += len + 1;
                    let creds: &dyn Credentials = &*shared.creds;
                    let out = {
                        let mut limiter = shared.limiter.lock().unwrap_or_else(|p| p.into_inner());
                        session.feed(line, creds, &mut *limiter)
                    };
                    for a in &out.attempts {
                        log_attempt(shared, a);
                    }
                    for l in &out.lines {
                        self.output.extend_from_slice(l.as_bytes());
                        self.output.push(b'\n');
                    }
                    if out.close {
                        self.closing = true;
                        break;
                    }
                }
                self.input.drain(..start);
                if !self.closing && self.input.len() > dovecot::MAX_LINE {
                    (shared.log)("warning: auth socket: line too long; connection closed");
                    return false;
                }
                if self.output.len() - self.written > MAX_OUTPUT {
                    (shared.log)(
                        "warning: auth socket: client does not read its replies; connection closed",
                    );
                    return false;
                }
                // While replies wait, the write deadline stands: more
                // requests do not buy a client that does not read more time.
                if !self.want_write {
                    self.deadline = self.read_deadline(now);
                }
                true
            }
            Proto::Saslauthd => {
                let request = match saslauthd::parse(&self.input) {
                    saslauthd::Parse::Done(r) => r,
                    saslauthd::Parse::TooLong => {
                        self.output.extend(saslauthd::encode_reply("NO "));
                        self.closing = true;
                        return true;
                    }
                    saslauthd::Parse::Incomplete => {
                        // A short request is closed without a reply.
                        return self.input.len() <= 4 * (saslauthd::MAX_FIELD + 2);
                    }
                };
                let (reply, account) = saslauthd::answer(&request, &shared.server, &*shared.creds);
                self.output.extend(saslauthd::encode_reply(reply));
                self.closing = true;
                if reply != "OK" {
                    let user = account.map(|a| a.to_string());
                    (shared.log)(&logging::saslauthd_failure(
                        &String::from_utf8_lossy(&request.service),
                        user.as_deref(),
                    ));
                }
                true
            }
        }
    }

    /// When an idle or half-sent request is cut off: Dovecot clients may
    /// idle between logins but must finish a line they started; a
    /// saslauthd request has one deadline from accept on.
    fn read_deadline(&self, now: Instant) -> Instant {
        match self.proto {
            Proto::Dovecot(_) if self.input.is_empty() => now + IDLE_TIMEOUT,
            Proto::Dovecot(_) => now + PARTIAL_TIMEOUT,
            Proto::Saslauthd => self.deadline,
        }
    }

    /// Write pending output. False: the client is gone.
    fn flush(&mut self, now: Instant) -> bool {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return false,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The client must take our replies within this time.
                    if !self.want_write {
                        self.deadline = now + WRITE_TIMEOUT;
                    }
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if self.want_write {
            self.deadline = self.read_deadline(now);
        }
        self.output.clear();
        self.written = 0;
        true
    }

    /// Ask for writability only while output waits: interest in it would
    /// wake the loop every time the client reads a reply.
    fn interest(&mut self, poll: &Poll, token: usize) -> bool {
        let pending = self.written < self.output.len();
        if pending == self.want_write {
            return true;
        }
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.want_write = pending;
        poll.registry()
            .reregister(&mut self.stream, Token(token), interest)
            .is_ok()
    }
}

/// Postfix's failure line: fail2ban's postfix filter matches it.
fn log_attempt(shared: &Shared, a: &dovecot::Attempt) {
    let client = a.client.as_deref().unwrap_or("unknown");
    match &a.result {
        Ok(()) => {}
        Err(e) => (shared.log)(&logging::sasl_failure(
            client,
            a.mechanism,
            e,
            a.user.as_deref(),
        )),
    }
}
