//! The network side of the SMTP listener: accept, read bounded lines with
//! timeouts, feed the session, perform its actions (STARTTLS with the
//! buffer discarded, DATA with size and bare-LF checks, delivery before the
//! final reply), write Postfix-format log lines.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::command::MAX_COMMAND_LINE;
use super::delivery::{self, DeliveryError};
use super::session::{Action, Envelope, Event, Policy, Session};
use crate::authd::limit::{FailureLimiter, client_key};
use crate::authd::server::LogFn;
use crate::mech::ServerConfig;
use crate::store::Store;

/// Accept queue length asked for (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: libc::c_int = 1024;

/// Longest line of message content (RFC 5321 says 1000 with CRLF; be lenient).
const MAX_DATA_LINE: usize = 64 * 1024;

pub struct Listener {
    pub policy: Policy,
    pub server: ServerConfig,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub timeout: Duration,
    pub relayhost: Option<String>,
    pub maildir: Option<PathBuf>,
    pub store: Arc<Store>,
    /// AUTH failures per client.
    pub limiter: Arc<Mutex<FailureLimiter>>,
    /// AUTH commands per client (`smtpd_client_auth_rate_limit`).
    pub auth_rate: Arc<Mutex<FailureLimiter>>,
    pub error_sleep: Duration,
    pub soft_error_limit: u32,
    /// Simultaneous connections per client (0: no limit).
    pub connection_limit: u32,
    /// IPv6 clients count per network of this prefix length (see
    /// [`client_key`]); the limiters key by it too.
    pub ipv6_prefix: u8,
    /// Longest a whole session may last, however busy (`smtpd_max_session_time`).
    pub session_limit: Duration,
    pub log: Arc<LogFn>,
}

/// What the accept loops share across reloads and shutdown.
pub struct Control {
    /// The configuration new connections get (swapped on reload).
    pub current: std::sync::RwLock<Arc<Listener>>,
    pub stopping: std::sync::atomic::AtomicBool,
    pub stop: tokio::sync::Notify,
    /// Sessions in progress.
    pub active: std::sync::atomic::AtomicUsize,
    connections: Mutex<std::collections::HashMap<IpAddr, u32>>,
}

impl Control {
    pub fn new(l: Listener) -> Arc<Control> {
        Arc::new(Control {
            current: std::sync::RwLock::new(Arc::new(l)),
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            active: std::sync::atomic::AtomicUsize::new(0),
            connections: Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn listener(&self) -> Arc<Listener> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Accept until shutdown; each session runs to its end even then.
    pub async fn serve(self: Arc<Self>, tcp: TcpListener, implicit_tls: bool) {
        use std::sync::atomic::Ordering;
        {
            // Lengthen the accept queue (std binds with 128): hundreds of
            // clients connecting at once would otherwise have SYNs dropped
            // and wait a 1 s retransmit. Linux lets listen(2) be called
            // again on a listening socket; only the queue length changes.
            use std::os::fd::AsRawFd;
            // SAFETY: listen(2) on a socket this listener owns.
            unsafe { libc::listen(tcp.as_raw_fd(), LISTEN_BACKLOG) };
        }
        loop {
            let accepted = tokio::select! {
                a = tcp.accept() => a,
                _ = self.stop.notified() => return,
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            let l = self.listener();
            let ip = peer.ip();
            let exempt = l.policy.mynetworks.iter().any(|c| c.contains(ip));
            let key = client_key(ip, l.ipv6_prefix);
            let count = {
                let mut m = self.connections.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entry(key).or_insert(0);
                *n += 1;
                *n
            };
            let me = Arc::clone(&self);
            me.active.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if l.connection_limit > 0 && count > l.connection_limit && !exempt {
                    l.log(&format!(
                        "warning: Connection concurrency limit exceeded: {count} from unknown[{ip}]"
                    ));
                    let mut s = stream;
                    let msg = format!(
                        "421 4.7.0 {} Error: too many connections from {ip}\r\n",
                        l.policy.hostname
                    );
                    let _ = s.write_all(msg.as_bytes()).await;
                } else {
                    let limit = l.session_limit;
                    let session = Arc::clone(&l).connection(stream, peer, implicit_tls);
                    if tokio::time::timeout(limit, session).await.is_err() {
                        l.log(&format!(
                            "warning: session time limit exceeded; disconnect from unknown[{ip}]"
                        ));
                    }
                }
                let mut m = me.connections.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = m.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&key);
                    }
                }
                me.active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

enum Next<S> {
    Close,
    StartTls(S),
}

enum ReadLine {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

async fn read_line<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    max: usize,
    timeout: Duration,
) -> ReadLine {
    let mut line = Vec::new();
    loop {
        let buf = match tokio::time::timeout(timeout, r.fill_buf()).await {
            Ok(Ok(b)) => b,
            _ => return ReadLine::Closed,
        };
        if buf.is_empty() {
            return ReadLine::Closed;
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > max {
            return ReadLine::TooLong;
        }
        if done {
            return ReadLine::Line(line);
        }
    }
}

fn queue_id() -> String {
    crate::secret::random_bytes::<5>()
        .map(|b| b.iter().map(|x| format!("{x:02X}")).collect())
        .unwrap_or_else(|_| "0000000000".into())
}

fn rfc5322_date() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: plain data filled by localtime_r; strftime writes at most buf.len().
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    let mut buf = [0u8; 64];
    let fmt = c"%a, %d %b %Y %H:%M:%S %z";
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

impl Listener {
    fn log(&self, text: &str) {
        (self.log)(text);
    }

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
    ) {
        let ip = peer.ip();
        self.log(&format!("connect from unknown[{ip}]"));
        let mut session = Session::new(self.policy.clone(), self.server.clone(), ip, implicit_tls);
        // The session futures are boxed: a task's size is that of its
        // largest state, and a connection that idles after the greeting
        // would otherwise carry the size of a whole dialogue (and rustls's).
        if implicit_tls {
            if Box::pin(self.tls(stream, &mut session, ip, true))
                .await
                .is_none()
            {
                return;
            }
        } else {
            let next = match self.greet_and_wait(stream, session.greeting()).await {
                Some(stream) => Box::pin(self.converse(stream, &mut session, ip, false)).await,
                None => Next::Close,
            };
            if let Next::StartTls(stream) = next
                && Box::pin(self.tls(stream, &mut session, ip, false))
                    .await
                    .is_none()
            {
                return;
            }
        }
        self.log(&format!("disconnect from unknown[{ip}]"));
    }

    /// The TLS handshake, then the dialogue over TLS (greeting first for
    /// implicit TLS; after STARTTLS the client speaks first). `None`: no
    /// TLS configured.
    async fn tls(
        &self,
        stream: tokio::net::TcpStream,
        session: &mut Session,
        ip: IpAddr,
        implicit: bool,
    ) -> Option<()> {
        let acceptor = self.tls.as_ref()?;
        match tokio::time::timeout(self.timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                session.set_channel_binding(binding(tls.get_ref().1));
                self.converse(tls, session, ip, implicit).await;
            }
            _ if implicit => self.log(&format!(
                "lost connection after CONNECT from unknown[{ip}]: TLS handshake failed"
            )),
            _ => self.log(&format!("warning: TLS handshake failed with unknown[{ip}]")),
        }
        Some(())
    }

    /// Send the greeting, then wait (up to `smtpd_timeout`) until the
    /// client sends something before [`Self::converse`] allocates its read
    /// buffer, so connections idle after the greeting stay small. `None`:
    /// the write failed or the client stayed silent (closed, as a read
    /// timeout closes).
    async fn greet_and_wait(
        &self,
        mut stream: tokio::net::TcpStream,
        greeting: Vec<String>,
    ) -> Option<tokio::net::TcpStream> {
        let mut out = String::new();
        for l in greeting {
            out.push_str(&l);
            out.push_str("\r\n");
        }
        stream.write_all(out.as_bytes()).await.ok()?;
        // peek, not readable(): tokio reports a new socket ready at once.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(self.timeout, stream.peek(&mut byte)).await {
            Ok(Ok(_)) => Some(stream),
            _ => None,
        }
    }

    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        session: &mut Session,
        ip: IpAddr,
        greet: bool,
    ) -> Next<S> {
        let mut r = BufReader::new(stream);
        if greet && write_lines(&mut r, &session.greeting()).await.is_err() {
            return Next::Close;
        }
        loop {
            let line = match read_line(&mut r, MAX_COMMAND_LINE + 2, self.timeout).await {
                ReadLine::Line(l) => l,
                ReadLine::TooLong => {
                    let _ =
                        write_lines(&mut r, &["500 5.5.0 Error: line too long".to_string()]).await;
                    return Next::Close;
                }
                ReadLine::Closed => return Next::Close,
            };
            let Some(body) = line.strip_suffix(b"\r\n") else {
                // Bare LF: refused as Postfix 3.9 does (SMTP smuggling).
                let _ = write_lines(
                    &mut r,
                    &[format!(
                        "521 5.5.2 {} Error: bare <LF> received",
                        self.policy.hostname
                    )],
                )
                .await;
                return Next::Close;
            };
            let verb = body
                .split(|&b| b == b' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let in_exchange = session.in_auth_exchange();
            if verb == b"AUTH" && !in_exchange {
                let client = ip.to_string();
                let now = std::time::Instant::now();
                let failures_ok = self
                    .limiter
                    .lock()
                    .map(|mut l| l.allow_at(Some(&client), now))
                    .unwrap_or(true);
                if !failures_ok {
                    let reply = "454 4.7.0 Too many authentication failures; try again later";
                    let _ = write_lines(&mut r, &[reply.to_string()]).await;
                    continue;
                }
                let exempt = self.policy.mynetworks.iter().any(|c| c.contains(ip));
                let rate_ok = exempt
                    || self
                        .auth_rate
                        .lock()
                        .map(|mut l| {
                            let ok = l.allow_at(Some(&client), now);
                            l.failed_at(Some(&client), now);
                            ok
                        })
                        .unwrap_or(true);
                if !rate_ok {
                    self.log(&format!(
                        "warning: AUTH command rate limit exceeded: unknown[{ip}]"
                    ));
                    let reply = format!("450 4.7.1 Error: too many AUTH commands from {ip}");
                    let _ = write_lines(&mut r, &[reply]).await;
                    continue;
                }
            }
            // RFC 2920: after these commands a client must wait for the
            // reply; input already queued is a synchronisation violation
            // (the SMTP smuggling class), refused as Postfix 3.9 does.
            let must_wait = !in_exchange
                && matches!(
                    verb.as_slice(),
                    b"EHLO" | b"HELO" | b"DATA" | b"QUIT" | b"NOOP" | b"AUTH" | b"STARTTLS"
                );
            if must_wait && !r.buffer().is_empty() && session.authenticated().is_none() {
                self.log(&format!(
                    "warning: non-SMTP command or pipelining violation from unknown[{ip}] after {}",
                    String::from_utf8_lossy(&verb)
                ));
                let reply = "554 5.5.0 Error: SMTP protocol synchronization";
                let _ = write_lines(&mut r, &[reply.to_string()]).await;
                return Next::Close;
            }
            let action = session.line(body, &*self.store);
            for e in session.take_events() {
                self.log_event(&e, session, ip);
            }
            if session.errors() >= self.soft_error_limit
                && let Action::Reply(lines) = &action
                && lines
                    .last()
                    .is_some_and(|l| l.starts_with('4') || l.starts_with('5'))
            {
                tokio::time::sleep(self.error_sleep).await;
            }
            let result = match action {
                Action::Reply(lines) => write_lines(&mut r, &lines).await,
                Action::Close(lines) => {
                    let _ = write_lines(&mut r, &lines).await;
                    return Next::Close;
                }
                Action::StartTls(lines) => {
                    if write_lines(&mut r, &lines).await.is_err() {
                        return Next::Close;
                    }
                    // Dropping the reader's buffer discards anything the
                    // client pipelined after STARTTLS.
                    return Next::StartTls(r.into_inner());
                }
                Action::ReadData(lines) => {
                    if write_lines(&mut r, &lines).await.is_err() {
                        return Next::Close;
                    }
                    // Boxed: only sessions in DATA carry the delivery state.
                    match Box::pin(self.data(&mut r, session, ip)).await {
                        Some(reply) => write_lines(&mut r, &[reply]).await,
                        None => return Next::Close,
                    }
                }
            };
            if result.is_err() {
                return Next::Close;
            }
        }
    }

    fn log_event(&self, e: &Event, session: &Session, ip: IpAddr) {
        match e {
            Event::AuthOk { .. } => {}
            Event::AuthFailed {
                mechanism,
                reason,
                user,
            } => {
                if let Ok(mut l) = self.limiter.lock() {
                    l.failed_at(Some(&ip.to_string()), std::time::Instant::now());
                }
                // Postfix's line, sasl_username included when known.
                let user = user
                    .as_deref()
                    .map(|u| format!(", sasl_username={u}"))
                    .unwrap_or_default();
                self.log(&format!(
                    "warning: unknown[{ip}]: SASL {mechanism} authentication failed: {reason}{user}"
                ));
            }
            Event::Reject { command, reply, to } => {
                let from = session.sender().map(|a| a.to_string()).unwrap_or_default();
                let to = to.clone().unwrap_or_default();
                self.log(&format!(
                    "NOQUEUE: reject: {command} from unknown[{ip}]: {reply}; from=<{from}> to=<{to}> proto=ESMTP helo=<{}>",
                    session.helo_name()
                ));
            }
        }
    }

    /// Read the message, deliver it, and return the final reply (`None`:
    /// the connection is to be closed).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        r: &mut BufReader<S>,
        session: &mut Session,
        ip: IpAddr,
    ) -> Option<String> {
        let limit = self.policy.message_size_limit as usize;
        let mut message: Vec<u8> = Vec::new();
        let mut too_big = false;
        loop {
            let line = match read_line(r, MAX_DATA_LINE, self.timeout).await {
                ReadLine::Line(l) => l,
                ReadLine::TooLong => {
                    let _ = write_lines(r, &["500 5.5.0 Error: line too long".to_string()]).await;
                    return None;
                }
                ReadLine::Closed => return None,
            };
            if !line.ends_with(b"\r\n") {
                let _ = write_lines(
                    r,
                    &[format!(
                        "521 5.5.2 {} Error: bare <LF> received",
                        self.policy.hostname
                    )],
                )
                .await;
                return None;
            }
            if line == b".\r\n" {
                break;
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
            if message.len() + content.len() > limit {
                too_big = true;
            } else {
                message.extend_from_slice(content);
            }
        }
        let size = if too_big {
            u64::MAX
        } else {
            message.len() as u64
        };
        let env = match session.data_done(size) {
            Ok(env) => env,
            Err(
                Action::Reply(lines)
                | Action::Close(lines)
                | Action::StartTls(lines)
                | Action::ReadData(lines),
            ) => {
                return lines.into_iter().next();
            }
        };
        let qid = queue_id();
        let auth = env.authenticated.as_ref().map(|a| a.account.to_string());
        match &auth {
            Some(user) => self.log(&format!(
                "{qid}: client=unknown[{ip}], sasl_method={}, sasl_username={user}",
                env.mechanism
            )),
            None => self.log(&format!("{qid}: client=unknown[{ip}]")),
        }
        let mut full = self.received(&env, ip, &qid).into_bytes();
        full.extend_from_slice(&message);
        match self.deliver(&env, &full, &qid).await {
            Ok(()) => Some(format!("250 2.0.0 Ok: queued as {qid}")),
            Err(e) => {
                self.log(&format!("{qid}: {}", e.reply()));
                Some(e.reply())
            }
        }
    }

    fn received(&self, env: &Envelope, ip: IpAddr, qid: &str) -> String {
        let proto = match (env.authenticated.is_some(), session_tls_hint(&self.server)) {
            (true, true) => "ESMTPSA",
            (true, false) => "ESMTPA",
            (false, true) => "ESMTPS",
            (false, false) => "ESMTP",
        };
        let mut h = format!("Received: from {} (unknown [{ip}])\r\n", env.helo);
        if let Some(a) = &env.authenticated {
            h.push_str(&format!("\t(Authenticated sender: {})\r\n", a.account));
        }
        h.push_str(&format!(
            "\tby {} (smtpd-auth) with {proto} id {qid}",
            self.policy.hostname
        ));
        if let [one] = env.to.as_slice() {
            h.push_str(&format!("\r\n\tfor <{one}>"));
        }
        h.push_str(&format!("; {}\r\n", rfc5322_date()));
        h
    }

    async fn deliver(
        &self,
        env: &Envelope,
        message: &[u8],
        qid: &str,
    ) -> Result<(), DeliveryError> {
        let (local, remote): (Vec<_>, Vec<_>) = env.to.iter().cloned().partition(|a| {
            self.policy
                .local_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&a.domain))
        });
        let (to_maildir, mut to_relay) = match &self.maildir {
            Some(_) => (local, remote),
            None => (Vec::new(), [local, remote].concat()),
        };
        if !to_relay.is_empty() {
            let Some(hop) = &self.relayhost else {
                return Err(DeliveryError::Temporary(
                    "no relayhost configured for non-local mail".into(),
                ));
            };
            let reply = delivery::relay(
                hop,
                &self.policy.hostname,
                env.from.as_ref(),
                &to_relay,
                message,
            )
            .await?;
            for rcpt in to_relay.drain(..) {
                self.log(&format!(
                    "{qid}: to=<{rcpt}>, relay={hop}, status=sent ({reply})"
                ));
            }
        }
        if let Some(base) = &self.maildir {
            for rcpt in &to_maildir {
                let unique = format!(
                    "{}.{qid}.{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    rcpt.local.trim_matches('"')
                );
                let base = base.clone();
                let r = rcpt.clone();
                let msg = message.to_vec();
                let path = tokio::task::spawn_blocking(move || {
                    delivery::maildir(&base, &r, &unique, &msg)
                })
                .await
                .map_err(|e| DeliveryError::Temporary(e.to_string()))??;
                self.log(&format!(
                    "{qid}: to=<{rcpt}>, relay=maildir, status=sent (delivered to {})",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Channel binding for SCRAM -PLUS: the `tls-exporter` value (RFC 9266).
fn binding(conn: &rustls::ServerConnection) -> Vec<u8> {
    conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap_or_default()
}

fn session_tls_hint(server: &ServerConfig) -> bool {
    server.channel_binding.is_some()
}

async fn write_lines<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    lines: &[String],
) -> std::io::Result<()> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    r.get_mut().write_all(out.as_bytes()).await?;
    r.get_mut().flush().await
}
