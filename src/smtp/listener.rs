//! The network side of one SMTP session (the accept loop is in
//! [`super::accept`]): read bounded lines with timeouts, feed the session,
//! perform its actions (STARTTLS with the buffer discarded, DATA through
//! the [`DataReceiver`] with the body spooled to disk past a small buffer,
//! delivery before the final reply), write Postfix-format log lines.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::accounts::SharedDirectory;
use super::command::MAX_COMMAND_LINE;
use super::data::{self, DataReceiver, Status};
use super::delivery::{self, DeliveryError};
use super::flight::{Flight, Push};
use super::received;
use super::session::{Action, Destination, Envelope, Event, Limiters, Policy, Session};
use super::spool::{Body, Message, Spool, SpoolFile};
use crate::logging::LogFn;
use crate::mech::ServerConfig;
use crate::net::FailureLimiter;

pub use super::accept::Control;

pub struct Listener {
    /// Shared by every session (cloning it cost each session a dozen
    /// allocations).
    pub policy: Arc<Policy>,
    pub server: ServerConfig,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub timeout: Duration,
    pub relayhost: Option<String>,
    pub maildir: Option<PathBuf>,
    /// The store as AUTH and the SMTP policy ask it (owners of addresses,
    /// local recipients), with its case-folded index.
    pub accounts: SharedDirectory,
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
    /// Where message bodies past the in-memory buffer go.
    pub spool: Spool,
    pub log: Arc<LogFn>,
}

enum Next<S> {
    Close,
    StartTls(S),
}

/// How a dialogue ends: the connection closes, or TLS starts.
enum End {
    Close,
    StartTls,
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

impl Listener {
    pub(super) fn log(&self, text: &str) {
        (self.log)(text);
    }

    pub(super) async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
    ) {
        let ip = peer.ip();
        self.log(&format!("connect from unknown[{ip}]"));
        let limits = Limiters {
            failures: Arc::clone(&self.limiter),
            rate: Arc::clone(&self.auth_rate),
        };
        let mut session = Session::new(
            Arc::clone(&self.policy),
            self.server.clone(),
            ip,
            implicit_tls,
        )
        .with_limits(Arc::new(limits));
        // The session futures are boxed: a task's size is that of its
        // largest state, and a connection that idles after the greeting
        // would otherwise carry the size of a whole dialogue (and rustls's).
        // tls() is None only without a TLS configuration, and implicit TLS
        // or STARTTLS is never offered then.
        if implicit_tls {
            let stream = Flight::new(stream);
            let _ = Box::pin(self.tls(stream, &mut session, ip, true)).await;
        } else {
            let next = match self.greet_and_wait(stream, session.greeting()).await {
                Some(stream) => {
                    let stream = Flight::new(stream);
                    Box::pin(self.converse(stream, &mut session, ip, false)).await
                }
                None => Next::Close,
            };
            if let Next::StartTls(stream) = next {
                let _ = Box::pin(self.tls(stream, &mut session, ip, false)).await;
            }
        }
    }

    /// The TLS handshake, then the dialogue over TLS (greeting first for
    /// implicit TLS; after STARTTLS the client speaks first). `None`: no
    /// TLS configured.
    async fn tls(
        &self,
        stream: Flight<tokio::net::TcpStream>,
        session: &mut Session,
        ip: IpAddr,
        implicit: bool,
    ) -> Option<()> {
        let acceptor = self.tls.as_ref()?;
        let accept = acceptor.accept(stream).into_fallible();
        match tokio::time::timeout(self.timeout, accept).await {
            Ok(Ok(mut tls)) => {
                session.set_channel_binding(binding(tls.get_ref().1));
                // The session ticket goes with the first reply: after
                // STARTTLS that answers the client's next command.
                tls.get_mut().0.hold();
                self.converse(tls, session, ip, implicit).await;
            }
            failed => {
                // The alert rustls queued tells the client why.
                if let Ok(Err((_, mut io))) = failed {
                    let _ = tokio::time::timeout(self.timeout, io.send()).await;
                }
                if implicit {
                    self.log(&format!(
                        "lost connection after CONNECT from unknown[{ip}]: TLS handshake failed"
                    ));
                } else {
                    self.log(&format!("warning: TLS handshake failed with unknown[{ip}]"));
                }
            }
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

    /// The dialogue on `stream`; what it wrote is sent when it waits for
    /// the client (so replies to one pipelined batch leave together) and
    /// before the connection closes.
    async fn converse<S: Push>(
        &self,
        stream: S,
        session: &mut Session,
        ip: IpAddr,
        greet: bool,
    ) -> Next<S> {
        let mut r = BufReader::new(stream);
        match self.dialogue(&mut r, session, ip, greet).await {
            End::StartTls => Next::StartTls(r.into_inner()),
            End::Close => {
                let _ = tokio::time::timeout(self.timeout, r.get_mut().shutdown()).await;
                Next::Close
            }
        }
    }

    async fn dialogue<S: Push>(
        &self,
        r: &mut BufReader<S>,
        session: &mut Session,
        ip: IpAddr,
        greet: bool,
    ) -> End {
        if greet && write_lines(r, &session.greeting()).await.is_err() {
            return End::Close;
        }
        loop {
            let line = match read_line(r, MAX_COMMAND_LINE + 2, self.timeout).await {
                ReadLine::Line(l) => l,
                ReadLine::TooLong => {
                    let _ = write_lines(r, &["500 5.5.0 Error: line too long".to_string()]).await;
                    self.lost(session, ip);
                    return End::Close;
                }
                ReadLine::Closed => {
                    self.lost(session, ip);
                    return End::Close;
                }
            };
            let body = match data::check_command_line(&line) {
                Ok(body) => body,
                Err(refused) => {
                    // Bare LF or CR: refused as Postfix 3.9 refuses bare LF
                    // (SMTP smuggling).
                    if let Some(reply) = refused.refusal(&self.policy.hostname) {
                        let _ = write_lines(r, &[reply]).await;
                    }
                    self.lost(session, ip);
                    return End::Close;
                }
            };
            let queued = !r.buffer().is_empty();
            let action = session.input(body, queued, std::time::Instant::now(), &*self.accounts);
            for e in session.take_events() {
                self.log_event(&e, session, ip);
            }
            if session.errors() >= self.soft_error_limit
                && let Action::Reply(lines) = &action
                && lines
                    .last()
                    .is_some_and(|l| l.starts_with('4') || l.starts_with('5'))
            {
                // The client sees the replies so far before the pause.
                if r.get_mut().push().await.is_err() {
                    self.lost(session, ip);
                    return End::Close;
                }
                tokio::time::sleep(self.error_sleep).await;
            }
            let result = match action {
                Action::Reply(lines) => write_lines(r, &lines).await,
                Action::Close(lines) => {
                    let _ = write_lines(r, &lines).await;
                    return End::Close;
                }
                Action::StartTls(lines) => {
                    if write_lines(r, &lines).await.is_err() {
                        return End::Close;
                    }
                    // Dropping the reader's buffer discards anything the
                    // client pipelined after STARTTLS.
                    return End::StartTls;
                }
                Action::ReadData(lines) => {
                    if write_lines(r, &lines).await.is_err() {
                        return End::Close;
                    }
                    // Boxed: only sessions in DATA carry the delivery state.
                    match Box::pin(self.data(r, session, ip)).await {
                        Some(reply) => write_lines(r, &[reply]).await,
                        None => return End::Close,
                    }
                }
            };
            if result.is_err() {
                self.lost(session, ip);
                return End::Close;
            }
        }
    }

    /// The connection ends before the session did.
    fn lost(&self, session: &mut Session, ip: IpAddr) {
        session.connection_lost(std::time::Instant::now());
        for e in session.take_events() {
            self.log_event(&e, session, ip);
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
                self.log(&crate::logging::sasl_failure(
                    &ip.to_string(),
                    mechanism,
                    reason,
                    user.as_deref(),
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
            Event::PipeliningViolation { after } => self.log(&format!(
                "warning: non-SMTP command or pipelining violation from unknown[{ip}] after {after}"
            )),
            Event::AuthRateExceeded => self.log(&format!(
                "warning: AUTH command rate limit exceeded: unknown[{ip}]"
            )),
        }
    }

    /// Read the message, deliver it, and return the final reply (`None`:
    /// the connection is to be closed). The spool file, if any, is
    /// unlinked when this returns or its future is dropped.
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        r: &mut BufReader<S>,
        session: &mut Session,
        ip: IpAddr,
    ) -> Option<String> {
        let qid = queue_id();
        let mut rx = DataReceiver::new(self.policy.message_size_limit);
        let mut spool: Option<SpoolFile> = None;
        let mut write_error = false;
        let status = loop {
            let buf = match tokio::time::timeout(self.timeout, r.fill_buf()).await {
                Ok(Ok(b)) if !b.is_empty() => b,
                _ => return None,
            };
            let (used, status) = rx.feed(buf);
            r.consume(used);
            let done = status == Status::Done;
            if write_error {
                // Keep reading to the end so the reply lands in sync.
                rx.take();
            } else if (rx.should_spill() || (done && spool.is_some()))
                && let Err(e) = self.spill(&mut spool, &qid, &rx.take())
            {
                self.log(&format!("warning: {qid}: queue file write error: {e}"));
                write_error = true;
                spool = None;
            }
            if status != Status::More {
                break status;
            }
        };
        if let Some(reply) = status.refusal(&self.policy.hostname) {
            let _ = write_lines(r, &[reply]).await;
            return None;
        }
        let env = match session.data_done(rx.size()) {
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
        if write_error {
            return Some("451 4.3.0 Error: queue file write error".into());
        }
        let auth = env.authenticated.as_ref().map(|a| a.account.to_string());
        match &auth {
            Some(user) => self.log(&format!(
                "{qid}: client=unknown[{ip}], sasl_method={}, sasl_username={user}",
                env.mechanism
            )),
            None => self.log(&format!("{qid}: client=unknown[{ip}]")),
        }
        let header = received::header(
            &env,
            &self.policy.hostname,
            ip,
            &qid,
            &received::rfc5322_date(),
        );
        let body = match spool {
            Some(f) => Body::Spooled(f),
            None => Body::Memory(rx.take()),
        };
        let message = Message::new(header.into_bytes(), body);
        match self.deliver(&env, &message, &qid).await {
            Ok(()) => Some(format!("250 2.0.0 Ok: queued as {qid}")),
            Err(e) => {
                self.log(&format!("{qid}: {}", e.reply()));
                Some(e.reply())
            }
        }
    }

    /// Move received content to the spool file, creating it first.
    fn spill(
        &self,
        spool: &mut Option<SpoolFile>,
        qid: &str,
        content: &[u8],
    ) -> std::io::Result<()> {
        let f = match spool {
            Some(f) => f,
            None => spool.insert(self.spool.create(qid)?),
        };
        f.append(content)
    }

    async fn deliver(
        &self,
        env: &Envelope,
        message: &Arc<Message>,
        qid: &str,
    ) -> Result<(), DeliveryError> {
        let (local, remote): (Vec<_>, Vec<_>) = env
            .to
            .iter()
            .cloned()
            .partition(|a| self.policy.destination(&a.domain) == Destination::Local);
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
                let msg = Arc::clone(message);
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

async fn write_lines<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    lines: &[String],
) -> std::io::Result<()> {
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    // Queued in the session's flight; flush moves TLS records there too.
    r.get_mut().write_all(out.as_bytes()).await?;
    r.get_mut().flush().await
}
