//! The Dovecot authentication protocol (v1.x) as Postfix's client speaks it
//! (`smtpd_sasl_type = dovecot`), server side, sans I/O: lines in, lines
//! out. Quirks of Postfix's client that this follows (spec §7): MECH lines
//! before SPID, `user=` in every OK, request ids that do not restart at 1
//! and are echoed verbatim, requests abandoned without CANCEL, `resp=` last
//! and possibly `=` for an empty initial response.

use std::collections::HashMap;
use std::time::Instant;

use crate::mech::{self, AuthError, Credentials, Exchange, Reply, ServerConfig};
use crate::net::FailureLimiter;

/// Longest line accepted: Postfix's 12288-byte response limit plus the
/// request's other fields.
pub const MAX_LINE: usize = 16 * 1024;

/// Requests one connection may leave pending (Postfix abandons a request
/// on `*` without CANCEL; the oldest such are dropped).
pub const MAX_PENDING: usize = 32;

/// Settings of the protocol server.
#[derive(Clone, Debug)]
pub struct DovecotConfig {
    /// Mechanisms to offer, strongest first (see `saslconf::security`).
    pub mechanisms: Vec<&'static str>,
    /// Refuse plaintext mechanisms unless Postfix says the SMTP session is
    /// `secured` (TLS), as `smtpd_tls_auth_only` would.
    pub plaintext_needs_tls: bool,
    /// Refuse every request without `valid-client-cert` (the client's TLS
    /// certificate was verified), as Dovecot's auth_ssl_require_client_cert.
    /// Postfix never sends the flag; Dovecot's own and Exim's clients do.
    pub require_client_cert: bool,
    pub pid: u32,
    pub connection_id: u64,
}

/// What happened to one request, for logging and rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub mechanism: &'static str,
    /// The client's address as Postfix passed it (`rip=`), if any.
    pub client: Option<String>,
    /// `user@realm` once known.
    pub user: Option<String>,
    pub result: Result<(), AuthError>,
}

/// Decides whether a client may try again (failure rate limits).
pub trait Limiter {
    /// May a request from this client go ahead?
    fn allow(&mut self, client: Option<&str>) -> bool;
    fn failed(&mut self, client: Option<&str>);
}

impl Limiter for FailureLimiter {
    fn allow(&mut self, client: Option<&str>) -> bool {
        self.allow_at(client, Instant::now())
    }
    fn failed(&mut self, client: Option<&str>) {
        self.failed_at(client, Instant::now())
    }
}

/// No limits.
pub struct NoLimit;
impl Limiter for NoLimit {
    fn allow(&mut self, _client: Option<&str>) -> bool {
        true
    }
    fn failed(&mut self, _client: Option<&str>) {}
}

struct Pending {
    exchange: Exchange,
    client: Option<String>,
    /// The final server data (SCRAM `v=`) was sent; the next CONT ends it.
    final_sent: Option<mech::Authenticated>,
    order: u64,
}

/// One connection's protocol state.
pub struct Session {
    config: DovecotConfig,
    server: ServerConfig,
    pending: HashMap<String, Pending>,
    counter: u64,
    /// The peer sent a VERSION we cannot speak.
    pub closed: bool,
}

/// Output of feeding one line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub lines: Vec<String>,
    pub attempts: Vec<Attempt>,
    /// Close the connection after writing `lines`.
    pub close: bool,
}

/// MECH flags in Dovecot's sense (what a mechanism is vulnerable to),
/// from Cyrus's security flags (what it resists): Postfix filters them
/// with `smtpd_sasl_security_options` the way Cyrus would.
pub fn mech_flags(name: &str) -> Vec<&'static str> {
    let Some(f) = mech::security_flags(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !f.no_anonymous {
        out.push("anonymous");
    }
    if !f.no_plaintext {
        out.push("plaintext");
    }
    if !f.no_dictionary {
        out.push("dictionary");
    }
    if !f.no_active {
        out.push("active");
    }
    if f.forward_secrecy {
        out.push("forward-secrecy");
    }
    if f.mutual_auth {
        out.push("mutual-auth");
    }
    out
}

fn safe_field(s: &str) -> bool {
    !s.contains(['\t', '\n', '\r'])
}

impl Session {
    pub fn new(config: DovecotConfig, server: ServerConfig) -> Session {
        Session {
            config,
            server,
            pending: HashMap::new(),
            counter: 0,
            closed: false,
        }
    }

    /// What the server says first, without waiting for the client (as real
    /// Dovecot does): VERSION, MECH lines, then SPID, CUID, COOKIE, DONE.
    pub fn handshake(&self) -> Vec<String> {
        let mut out = vec!["VERSION\t1\t2".to_string()];
        for m in &self.config.mechanisms {
            let mut line = format!("MECH\t{m}");
            for f in mech_flags(m) {
                line.push('\t');
                line.push_str(f);
            }
            out.push(line);
        }
        out.push(format!("SPID\t{}", self.config.pid));
        out.push(format!("CUID\t{}", self.config.connection_id));
        let cookie: String = crate::secret::random_bytes::<16>()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .unwrap_or_else(|_| "0".repeat(32));
        out.push(format!("COOKIE\t{cookie}"));
        out.push("DONE".to_string());
        out
    }

    /// Feed one line (without its LF).
    pub fn feed(
        &mut self,
        line: &[u8],
        creds: &dyn Credentials,
        limiter: &mut dyn Limiter,
    ) -> Output {
        let mut out = Output::default();
        if line.len() > MAX_LINE {
            out.close = true;
            return out;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let fields: Vec<&str> = text.split('\t').collect();
        match fields[0] {
            "VERSION" if fields.get(1) != Some(&"1") => {
                self.closed = true;
                out.close = true;
            }
            "CPID" => {}
            "AUTH" => self.auth(&fields, creds, limiter, &mut out),
            "CONT" => self.cont(&fields, creds, limiter, &mut out),
            "CANCEL" => {
                if let Some(p) = fields.get(1).and_then(|id| self.pending.remove(*id)) {
                    Self::abandoned(p, limiter, &mut out);
                }
            }
            // Unknown commands are ignored, as the protocol asks.
            _ => {}
        }
        out
    }

    fn fail(out: &mut Output, id: &str, reason: &str) {
        out.lines.push(format!("FAIL\t{id}\treason={reason}"));
    }

    fn auth(
        &mut self,
        f: &[&str],
        creds: &dyn Credentials,
        limiter: &mut dyn Limiter,
        out: &mut Output,
    ) {
        let (Some(id), Some(mech_name)) = (f.get(1), f.get(2)) else {
            return; // malformed AUTH: no id to answer
        };
        let id = id.to_string();
        if !safe_field(&id) || id.is_empty() {
            return;
        }
        let mut client = None;
        let mut local = None;
        let mut secured = false;
        let mut client_cert = false;
        let mut resp: Option<&str> = None;
        for p in &f[3..] {
            match p.split_once('=') {
                Some(("rip", v)) if !v.is_empty() => client = Some(v.to_string()),
                Some(("lip", v)) if !v.is_empty() => local = Some(v),
                Some(("resp", v)) => resp = Some(v),
                // Newer clients say `secured=tls` (or `=localhost`).
                Some(("secured", _)) => secured = true,
                None if *p == "secured" => secured = true,
                None if *p == "valid-client-cert" => client_cert = true,
                _ => {}
            }
        }
        let Some(name) = self
            .config
            .mechanisms
            .iter()
            .find(|m| m.eq_ignore_ascii_case(mech_name))
            .copied()
        else {
            Self::fail(out, &id, "Unsupported authentication mechanism");
            return;
        };
        let attempt = |user: Option<String>, result| Attempt {
            mechanism: name,
            client: client.clone(),
            user,
            result,
        };
        if !limiter.allow(client.as_deref()) {
            Self::fail(
                out,
                &id,
                "Too many authentication failures; try again later",
            );
            out.attempts.push(attempt(
                None,
                Err(AuthError::Temporary("rate limited".into())),
            ));
            return;
        }
        if self.config.require_client_cert && !client_cert {
            Self::fail(out, &id, "Client didn't present valid SSL certificate");
            out.attempts.push(attempt(
                None,
                Err(AuthError::Protocol("no valid client certificate")),
            ));
            return;
        }
        let plaintext = mech::security_flags(name).is_some_and(|s| !s.no_plaintext);
        if plaintext && self.config.plaintext_needs_tls && !secured {
            Self::fail(
                out,
                &id,
                "Plaintext authentication disallowed on non-secure connections",
            );
            out.attempts.push(attempt(
                None,
                Err(AuthError::Protocol("plaintext without TLS")),
            ));
            return;
        }
        // A DIGEST-MD5 digest-uri may name the server by the address the
        // client connected to (`smtp/127.0.0.1`, as swaks sends; Cyrus and
        // Dovecot accept it): Postfix passes that address as `lip=`.
        let with_lip;
        let server = match local {
            Some(ip) if name == "DIGEST-MD5" => {
                let mut s = self.server.clone();
                s.host_aliases.push(ip.to_string());
                s.host_aliases.push(format!("[{ip}]"));
                with_lip = s;
                &with_lip
            }
            _ => &self.server,
        };
        let Some(mechanism) = mech::new_mechanism(name, server) else {
            Self::fail(out, &id, "Unsupported authentication mechanism");
            return;
        };
        let mut exchange = Exchange::new(mechanism);
        // `resp=` with no value means no initial response (Dovecot's rule).
        let initial = resp.filter(|r| !r.is_empty()).map(str::as_bytes);
        let reply = exchange.start(initial, creds);
        self.counter += 1;
        // A request id reused while pending, or the oldest of too many,
        // is an exchange the client left unfinished.
        if let Some(old) = self.pending.remove(&id) {
            Self::abandoned(old, limiter, out);
        }
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.order)
                .map(|(k, _)| k.clone())
            && let Some(p) = self.pending.remove(&oldest)
        {
            Self::abandoned(p, limiter, out);
        }
        let pending = Pending {
            exchange,
            client: client.clone(),
            final_sent: None,
            order: self.counter,
        };
        self.answer(id, pending, reply, limiter, out);
    }

    fn cont(
        &mut self,
        f: &[&str],
        creds: &dyn Credentials,
        limiter: &mut dyn Limiter,
        out: &mut Output,
    ) {
        let Some(id) = f.get(1) else { return };
        let data = f.get(2).copied().unwrap_or("");
        let Some(mut p) = self.pending.remove(*id) else {
            Self::fail(out, id, "Authentication request timed out");
            return;
        };
        if let Some(auth) = p.final_sent.take() {
            // The client acknowledged SCRAM's server-final message.
            let attempt = Attempt {
                mechanism: p.exchange.mechanism(),
                client: p.client.clone(),
                user: Some(auth.account.to_string()),
                result: Ok(()),
            };
            self.success(id, &auth, out);
            out.attempts.push(attempt);
            return;
        }
        let reply = p.exchange.feed(data.as_bytes(), creds);
        self.answer(id.to_string(), p, reply, limiter, out);
    }

    /// The connection is going away: every exchange still pending was
    /// abandoned mid-way (Postfix drops its request when the SMTP client
    /// sends `*` or disconnects).
    pub fn disconnect(&mut self, limiter: &mut dyn Limiter) -> Output {
        let mut out = Output::default();
        let mut pending: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        pending.sort_by_key(|p| p.order);
        for p in pending {
            Self::abandoned(p, limiter, &mut out);
        }
        out
    }

    /// An exchange left unfinished counts and logs as a failure, like a
    /// wrong password: otherwise walking away before the verdict would be
    /// a free guess (and the exchange may have named an account).
    fn abandoned(p: Pending, limiter: &mut dyn Limiter, out: &mut Output) {
        limiter.failed(p.client.as_deref());
        out.attempts.push(Attempt {
            mechanism: p.exchange.mechanism(),
            client: p.client.clone(),
            user: p.exchange.attempted().map(ToString::to_string),
            result: Err(AuthError::Cancelled),
        });
    }

    fn success(&self, id: &str, auth: &mech::Authenticated, out: &mut Output) {
        let user = auth.account.to_string();
        if !safe_field(&user) {
            Self::fail(out, id, "User name not representable");
            return;
        }
        out.lines.push(format!("OK\t{id}\tuser={user}"));
    }

    fn answer(
        &mut self,
        id: String,
        mut p: Pending,
        reply: Reply,
        limiter: &mut dyn Limiter,
        out: &mut Output,
    ) {
        match reply {
            Reply::Challenge(c) => {
                out.lines.push(format!("CONT\t{id}\t{c}"));
                self.pending.insert(id, p);
            }
            Reply::Success(auth, Some(final_data)) => {
                // Server-final data goes out as a last challenge; OK follows
                // the client's empty answer (RFC 4954's order).
                out.lines.push(format!("CONT\t{id}\t{final_data}"));
                p.final_sent = Some(auth);
                self.pending.insert(id, p);
            }
            Reply::Success(auth, None) => {
                out.attempts.push(Attempt {
                    mechanism: p.exchange.mechanism(),
                    client: p.client.clone(),
                    user: Some(auth.account.to_string()),
                    result: Ok(()),
                });
                self.success(&id, &auth, out);
            }
            Reply::Failure(e) => {
                limiter.failed(p.client.as_deref());
                let reason = match &e {
                    AuthError::Cancelled => "Authentication aborted by client",
                    AuthError::BadBase64 => "Invalid base64 data in continued response",
                    AuthError::TooLong => "Response too long",
                    AuthError::Temporary(_) => "Temporary authentication failure",
                    _ => "authentication failed",
                };
                let mut line = format!("FAIL\t{id}\treason={reason}");
                // Postfix logs it as the failure's sasl_username.
                let user = p.exchange.attempted().map(ToString::to_string);
                if let Some(u) = user.as_deref().filter(|u| safe_field(u)) {
                    line.push_str("\tuser=");
                    line.push_str(u);
                }
                if matches!(e, AuthError::Temporary(_)) {
                    line.push_str("\ttemp");
                }
                out.lines.push(line);
                out.attempts.push(Attempt {
                    mechanism: p.exchange.mechanism(),
                    client: p.client.clone(),
                    user,
                    result: Err(e),
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "dovecot_tests.rs"]
mod tests;
