//! The SMTP session as a sans-I/O state machine: the I/O layer feeds it
//! lines (and DATA content) and performs the actions it returns — write a
//! reply, start TLS, hand over a message, close. Relay policy and SASL are
//! decided here, so scripted dialogs test them with bytes alone.

use std::net::IpAddr;

use std::sync::Arc;
use std::time::Instant;

use super::accounts::Directory;
use super::command::{self, Address, Command};
use crate::mech::{self, Authenticated, Exchange, Reply as MechReply, ServerConfig};
use crate::store::StoreError;

pub use super::limits::{AuthLimits, Limiters};
pub use super::policy::{Destination, Policy, Restriction, check_relay_closed};

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these reply lines (already formatted, without CRLF).
    Reply(Vec<String>),
    /// Reply, then start the TLS handshake; discard anything the client
    /// sent after the command (the CVE-2011-0411 class).
    StartTls(Vec<String>),
    /// Read message content until `.` and call [`Session::data_done`].
    ReadData(Vec<String>),
    /// Reply, then close.
    Close(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Greeted,
    Helo,
    Mail,
    Rcpt,
}

/// Things worth a log line, collected for the I/O layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    AuthOk {
        mechanism: &'static str,
        user: String,
    },
    AuthFailed {
        mechanism: String,
        reason: String,
        /// The account the client named, if it got that far.
        user: Option<String>,
    },
    Reject {
        command: &'static str,
        reply: String,
        to: Option<String>,
    },
    /// Input queued behind a command after which a client must wait
    /// (RFC 2920); the connection is closed.
    PipeliningViolation { after: String },
    /// More AUTH commands than `smtpd_client_auth_rate_limit` allows.
    AuthRateExceeded,
}

/// One accepted message, for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub authenticated: Option<Authenticated>,
    /// The SASL mechanism that authenticated the client.
    pub mechanism: &'static str,
    pub helo: String,
    /// The client said EHLO (not HELO).
    pub esmtp: bool,
    /// The message came over TLS.
    pub tls: bool,
}

impl Envelope {
    /// The protocol for the Received header, as Postfix writes it: SMTP for
    /// HELO clients; ESMTP with S for TLS and A for AUTH (RFC 3848).
    pub fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls, self.authenticated.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        }
    }
}

pub struct Session {
    policy: Arc<Policy>,
    server: ServerConfig,
    client: IpAddr,
    stage: Stage,
    esmtp: bool,
    helo: String,
    tls: bool,
    auth: Option<Authenticated>,
    exchange: Option<Exchange>,
    /// Server-final data sent (SCRAM `v=`); the client's empty line ends AUTH.
    final_ack: Option<Authenticated>,
    from: Option<Option<Address>>,
    to: Vec<Address>,
    errors: u32,
    events: Vec<Event>,
    /// Mechanism of the exchange in progress, for the log.
    mechanism: &'static str,
    limits: Option<Arc<dyn AuthLimits>>,
    /// The clock of the line being handled.
    now: Instant,
}

fn one(code: u16, text: &str) -> Vec<String> {
    vec![format!("{code} {text}")]
}

impl Session {
    pub fn new(
        policy: impl Into<Arc<Policy>>,
        server: ServerConfig,
        client: IpAddr,
        tls: bool,
    ) -> Session {
        Session {
            policy: policy.into(),
            server,
            client,
            stage: Stage::Greeted,
            esmtp: false,
            helo: String::new(),
            tls,
            auth: None,
            exchange: None,
            final_ack: None,
            from: None,
            to: Vec::new(),
            errors: 0,
            events: Vec::new(),
            mechanism: "",
            limits: None,
            now: Instant::now(),
        }
    }

    /// Enforce and count AUTH failures and rate through these limits.
    pub fn with_limits(mut self, limits: Arc<dyn AuthLimits>) -> Session {
        self.limits = Some(limits);
        self
    }

    /// Log-worthy events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The TLS handshake finished: SCRAM -PLUS binds to this data.
    pub fn set_channel_binding(&mut self, data: Vec<u8>) {
        self.server.channel_binding = Some(data);
    }

    pub fn helo_name(&self) -> &str {
        &self.helo
    }

    pub fn sender(&self) -> Option<&Address> {
        self.from.as_ref().and_then(|f| f.as_ref())
    }

    pub fn greeting(&self) -> Vec<String> {
        one(220, &format!("{} ESMTP", self.policy.hostname))
    }

    fn mechanisms(&self) -> &[&'static str] {
        if self.tls {
            &self.policy.mechanisms_tls
        } else {
            &self.policy.mechanisms_plain
        }
    }

    fn auth_offered(&self) -> bool {
        self.policy.auth_enabled
            && (self.tls || !self.policy.auth_needs_tls)
            && !self.mechanisms().is_empty()
    }

    fn error(&mut self, lines: Vec<String>) -> Action {
        self.errors += 1;
        if self.errors >= self.policy.hard_error_limit {
            return Action::Close(one(
                421,
                &format!("4.7.0 {} Error: too many errors", self.policy.hostname),
            ));
        }
        Action::Reply(lines)
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
        if self.stage != Stage::Greeted {
            self.stage = Stage::Helo;
        }
    }

    fn ehlo_lines(&self, name: &str) -> Vec<String> {
        // Every session says EHLO twice under STARTTLS: each line is built
        // once, with its final prefix.
        let mut lines = Vec::with_capacity(9);
        lines.push(format!("250-{} Hello {name}", self.policy.hostname));
        lines.push("250-PIPELINING".to_string());
        // Without a limit, SIZE without a number (RFC 1870), as Postfix.
        lines.push(match self.policy.message_size_limit {
            u64::MAX => "250-SIZE".to_string(),
            n => format!("250-SIZE {n}"),
        });
        if self.policy.tls_available && !self.tls {
            lines.push("250-STARTTLS".into());
        }
        if self.auth_offered() {
            let mut auth = String::from("250-AUTH");
            for m in self.mechanisms() {
                auth.push(' ');
                auth.push_str(m);
            }
            let legacy = self
                .policy
                .broken_auth_clients
                .then(|| auth.replacen("AUTH ", "AUTH=", 1));
            lines.push(auth);
            lines.extend(legacy);
        }
        lines.push("250-ENHANCEDSTATUSCODES".to_string());
        lines.push("250 8BITMIME".to_string());
        lines
    }

    /// `reject_sender_login_mismatch`: an owned address needs its owner's
    /// login; a logged-in client sends only as an address it owns. The
    /// owner: `alice@example.org`, `"alice"@Example.ORG` and
    /// `ALICE@example.org` are all alice's in realm example.org, however the
    /// store spells them. A store that cannot say defers (451).
    fn login_mismatch(&self, dir: &dyn Directory) -> Option<String> {
        let from = self.sender()?;
        let same_name = self.auth.as_ref().is_some_and(|a| {
            a.account
                .authid
                .eq_ignore_ascii_case(from.dequoted_local().as_bytes())
                && a.account.realm.eq_ignore_ascii_case(from.domain.as_bytes())
        });
        if same_name {
            return None;
        }
        let owner = match dir.find_account(&from.dequoted_local(), &from.domain) {
            Ok(owner) => owner,
            Err(_) => {
                return Some(format!(
                    "451 4.3.0 <{from}>: Sender address rejected: Temporary lookup failure"
                ));
            }
        };
        match &self.auth {
            Some(a) => {
                let mine = owner.as_ref() == Some(&a.account);
                (!mine).then(|| {
                    format!(
                        "553 5.7.1 <{from}>: Sender address rejected: not owned by user {}",
                        a.account
                    )
                })
            }
            None => {
                owner.map(|_| format!("553 5.7.1 <{from}>: Sender address rejected: not logged in"))
            }
        }
    }

    /// One restriction list: `Some(reply)` rejects, `Some("")` permits,
    /// `None` has no opinion.
    fn evaluate(&self, list: &[Restriction], to: &Address, dir: &dyn Directory) -> Option<String> {
        let authorized = self.policy.auth_destination(to);
        for r in list {
            let verdict = match r {
                Restriction::PermitMynetworks => self.policy.trusted(self.client).then(String::new),
                Restriction::PermitSaslAuthenticated => self.auth.is_some().then(String::new),
                Restriction::PermitAuthDestination => authorized.then(String::new),
                Restriction::RejectUnauthDestination => {
                    (!authorized).then(|| format!("554 5.7.1 <{to}>: Relay access denied"))
                }
                Restriction::DeferUnauthDestination => {
                    (!authorized).then(|| format!("454 4.7.1 <{to}>: Relay access denied"))
                }
                Restriction::RejectNonFqdnRecipient => (!to.domain.contains('.')
                    && !to.domain.starts_with('['))
                .then(|| {
                    format!(
                        "504 5.5.2 <{to}>: Recipient address rejected: need fully-qualified address"
                    )
                }),
                Restriction::RejectSenderLoginMismatch => self.login_mismatch(dir),
                Restriction::Reject => Some(format!(
                    "554 5.7.1 <{to}>: Recipient address rejected: Access denied"
                )),
                Restriction::Permit => Some(String::new()),
            };
            if verdict.is_some() {
                return verdict;
            }
        }
        None
    }

    /// `local_recipient_maps`: mail for `mydestination` goes to accounts
    /// of the store (realm = the domain) and to postmaster (RFC 5321 §4.5.1).
    /// An error: the store cannot say now.
    fn unknown_local(&self, to: &Address, dir: &dyn Directory) -> Result<bool, StoreError> {
        if !self.policy.local_recipient_check
            || self.policy.destination(&to.domain) != Destination::Local
        {
            return Ok(false);
        }
        let local = to.dequoted_local();
        Ok(!local.eq_ignore_ascii_case("postmaster")
            && dir.find_account(&local, &to.domain)?.is_none())
    }

    fn reject(&mut self, command: &'static str, reply: String, to: Option<String>) -> Action {
        self.events.push(Event::Reject {
            command,
            reply: reply.clone(),
            to,
        });
        self.error(vec![reply])
    }

    /// A failed, aborted or abandoned AUTH exchange: logged and counted
    /// against `smtpd_auth_failure_limit` alike.
    fn auth_failed(&mut self, reason: String, user: Option<String>) {
        self.events.push(Event::AuthFailed {
            mechanism: self.mechanism.to_string(),
            reason,
            user,
        });
        if let Some(l) = &self.limits {
            l.failed(self.client, self.now);
        }
    }

    /// The client went away (or timed out): an exchange left open is a
    /// failure too, or probing by hanging up would cost nothing.
    pub fn connection_lost(&mut self, now: Instant) {
        self.now = now;
        let user = self
            .exchange
            .as_ref()
            .and_then(Exchange::attempted)
            .map(ToString::to_string);
        if self.exchange.take().is_some() || self.final_ack.take().is_some() {
            self.auth_failed("connection lost during authentication".into(), user);
        }
    }

    /// RFC 2920: after these commands a client must wait for the reply;
    /// input already queued is a synchronisation violation (the SMTP
    /// smuggling class), refused as Postfix 3.9 does. Authenticated
    /// clients are trusted not to smuggle.
    fn out_of_sync(&self, line: &[u8], more_buffered: bool) -> Option<String> {
        if !more_buffered || self.in_auth_exchange() || self.auth.is_some() {
            return None;
        }
        let verb = line
            .split(|&b| b == b' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        matches!(
            verb.as_slice(),
            b"EHLO" | b"HELO" | b"DATA" | b"QUIT" | b"NOOP" | b"AUTH" | b"STARTTLS"
        )
        .then(|| String::from_utf8_lossy(&verb).into_owned())
    }

    /// The per-client AUTH limits, before an AUTH command is looked at.
    fn auth_limited(&mut self) -> Option<Action> {
        let limits = self.limits.clone()?;
        if !limits.failures_allow(self.client, self.now) {
            return Some(Action::Reply(one(
                454,
                "4.7.0 Too many authentication failures; try again later",
            )));
        }
        if !self.policy.trusted(self.client) && !limits.rate_allow(self.client, self.now) {
            self.events.push(Event::AuthRateExceeded);
            return Some(Action::Reply(one(
                450,
                &format!("4.7.1 Error: too many AUTH commands from {}", self.client),
            )));
        }
        None
    }

    /// Feed one command line (without CRLF), or a line of an AUTH
    /// exchange, with nothing queued behind it.
    pub fn line(&mut self, line: &[u8], dir: &dyn Directory) -> Action {
        self.input(line, false, Instant::now(), dir)
    }

    /// Feed one line; `more_buffered`: the client already sent more.
    pub fn input(
        &mut self,
        line: &[u8],
        more_buffered: bool,
        now: Instant,
        dir: &dyn Directory,
    ) -> Action {
        self.now = now;
        if let Some(after) = self.out_of_sync(line, more_buffered) {
            self.events.push(Event::PipeliningViolation { after });
            return Action::Close(one(554, "5.5.0 Error: SMTP protocol synchronization"));
        }
        if let Some(a) = self.final_ack.take() {
            return match line {
                b"" => {
                    self.events.push(Event::AuthOk {
                        mechanism: self.mechanism,
                        user: a.account.to_string(),
                    });
                    self.auth = Some(a);
                    Action::Reply(one(235, "2.7.0 Authentication successful"))
                }
                b"*" => {
                    self.auth_failed("aborted by client".into(), Some(a.account.to_string()));
                    self.error(one(501, "5.7.0 Authentication aborted"))
                }
                _ => {
                    self.auth_failed("bad final response".into(), Some(a.account.to_string()));
                    self.error(one(
                        535,
                        "5.7.8 Error: authentication failed: authentication failure",
                    ))
                }
            };
        }
        if let Some(mut ex) = self.exchange.take() {
            let reply = ex.feed(line, dir);
            return self.auth_reply(reply, ex);
        }
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.error(one(e.code, &format!("{} {}", e.enhanced, e.text))),
        };
        let needs_tls = matches!(
            cmd,
            Command::Mail { .. } | Command::Rcpt(_) | Command::Data | Command::Auth { .. }
        );
        if needs_tls && self.policy.tls_required && !self.tls {
            return self.error(one(530, "5.7.0 Must issue a STARTTLS command first"));
        }
        if matches!(cmd, Command::Auth { .. })
            && let Some(refused) = self.auth_limited()
        {
            return refused;
        }
        match cmd {
            Command::Helo(name) | Command::Ehlo(name)
                if matches!(self.stage, Stage::Mail | Stage::Rcpt) =>
            {
                let _ = name;
                self.reset();
                Action::Reply(one(250, &self.policy.hostname))
            }
            Command::Helo(name) => {
                self.stage = Stage::Helo;
                self.esmtp = false;
                self.helo = name;
                Action::Reply(one(250, &self.policy.hostname))
            }
            Command::Ehlo(name) => {
                self.stage = Stage::Helo;
                self.esmtp = true;
                let lines = self.ehlo_lines(&name);
                self.helo = name;
                Action::Reply(lines)
            }
            Command::StartTls if self.tls => {
                self.error(one(554, "5.5.1 Error: TLS already active"))
            }
            Command::StartTls if !self.policy.tls_available => {
                self.error(one(502, "5.5.1 Error: command not implemented"))
            }
            Command::StartTls if self.auth.is_some() => {
                self.error(one(503, "5.5.1 Error: already authenticated"))
            }
            Command::StartTls => {
                // RFC 3207: forget everything; a new EHLO is required.
                self.tls = true;
                self.stage = Stage::Greeted;
                self.helo.clear();
                self.reset();
                Action::StartTls(one(220, "2.0.0 Ready to start TLS"))
            }
            Command::Auth { .. } if self.stage == Stage::Greeted => {
                self.error(one(503, "5.5.1 Error: send HELO/EHLO first"))
            }
            Command::Auth { .. } if !self.policy.auth_enabled => {
                self.error(one(503, "5.5.1 Error: authentication not enabled"))
            }
            Command::Auth { .. } if self.auth.is_some() => {
                self.error(one(503, "5.5.1 Error: already authenticated"))
            }
            Command::Auth { .. } if matches!(self.stage, Stage::Mail | Stage::Rcpt) => {
                self.error(one(503, "5.5.1 Error: MAIL transaction in progress"))
            }
            Command::Auth { .. } if !self.auth_offered() => self.error(one(
                538,
                "5.7.11 Encryption required for requested authentication mechanism",
            )),
            Command::Auth { mechanism, initial } => {
                let Some(name) = self.mechanisms().iter().find(|m| **m == mechanism).copied()
                else {
                    return self.error(one(535, &format!("5.7.8 Error: authentication failed: Invalid authentication mechanism: '{mechanism}'")));
                };
                let Some(m) = mech::new_mechanism(name, &self.server) else {
                    return self.error(one(535, "5.7.8 Error: authentication failed"));
                };
                self.mechanism = name;
                let mut ex = Exchange::new(m);
                let reply = ex.start(initial.as_deref().map(str::as_bytes), dir);
                self.auth_reply(reply, ex)
            }
            Command::Mail { .. } if self.stage == Stage::Greeted => {
                self.error(one(503, "5.5.1 Error: send HELO/EHLO first"))
            }
            Command::Mail { .. } if self.stage != Stage::Helo => {
                self.error(one(503, "5.5.1 Error: nested MAIL command"))
            }
            Command::Mail { size: Some(n), .. } if n > self.policy.message_size_limit => {
                self.error(one(552, "5.3.4 Message size exceeds fixed limit"))
            }
            Command::Mail { from, .. } => {
                self.from = Some(from);
                self.stage = Stage::Mail;
                Action::Reply(one(250, "2.1.0 Ok"))
            }
            Command::Rcpt(_) if !matches!(self.stage, Stage::Mail | Stage::Rcpt) => {
                self.error(one(503, "5.5.1 Error: need MAIL command"))
            }
            Command::Rcpt(_)
                if self.policy.recipient_limit > 0
                    && self.to.len() >= self.policy.recipient_limit =>
            {
                Action::Reply(one(452, "4.5.3 Error: too many recipients"))
            }
            Command::Rcpt(to) => {
                let rejection = [
                    &self.policy.relay_restrictions,
                    &self.policy.recipient_restrictions,
                ]
                .into_iter()
                .find_map(|list| self.evaluate(list, &to, dir).filter(|r| !r.is_empty()));
                if let Some(reply) = rejection {
                    return self.reject("RCPT", reply, Some(to.to_string()));
                }
                let unknown = match self.unknown_local(&to, dir) {
                    Ok(true) => Some(format!(
                        "550 5.1.1 <{to}>: Recipient address rejected: User unknown in local recipient table"
                    )),
                    // Never "unknown" because the store is down: the client
                    // tries again later (Postfix's wording).
                    Err(_) => Some(format!("451 4.3.0 <{to}>: Temporary lookup failure")),
                    Ok(false) => None,
                };
                if let Some(reply) = unknown {
                    return self.reject("RCPT", reply, Some(to.to_string()));
                }
                let deliverable = match self.policy.destination(&to.domain) {
                    Destination::Local => self.policy.can_deliver_local,
                    Destination::RelayDomain | Destination::Remote => self.policy.can_relay,
                };
                if !deliverable {
                    return Action::Reply(one(
                        451,
                        &format!("4.3.0 <{to}>: no route: set relayhost or virtual_mailbox_base"),
                    ));
                }
                self.to.push(to);
                self.stage = Stage::Rcpt;
                Action::Reply(one(250, "2.1.5 Ok"))
            }
            Command::Data if self.stage != Stage::Rcpt => {
                self.error(one(503, "5.5.1 Error: need RCPT command"))
            }
            Command::Data => Action::ReadData(one(354, "End data with <CR><LF>.<CR><LF>")),
            Command::Rset => {
                self.reset();
                Action::Reply(one(250, "2.0.0 Ok"))
            }
            Command::Noop => Action::Reply(one(250, "2.0.0 Ok")),
            Command::Vrfy(_) => Action::Reply(one(
                252,
                "2.0.0 Cannot VRFY user; try RCPT to attempt delivery",
            )),
            Command::Help => Action::Reply(one(214, "2.0.0 Ok")),
            Command::Quit => Action::Close(one(221, "2.0.0 Bye")),
        }
    }

    fn auth_reply(&mut self, reply: MechReply, ex: Exchange) -> Action {
        match reply {
            MechReply::Challenge(c) => {
                self.exchange = Some(ex);
                Action::Reply(vec![format!("334 {c}")])
            }
            MechReply::Success(a, Some(final_data)) => {
                // RFC 4954: additional data as a last 334; the client's
                // empty line completes the exchange.
                self.final_ack = Some(a);
                Action::Reply(vec![format!("334 {final_data}")])
            }
            MechReply::Success(a, None) => {
                self.events.push(Event::AuthOk {
                    mechanism: self.mechanism,
                    user: a.account.to_string(),
                });
                self.auth = Some(a);
                Action::Reply(one(235, "2.7.0 Authentication successful"))
            }
            MechReply::Failure(mech::AuthError::Cancelled) => {
                let user = ex.attempted().map(ToString::to_string);
                self.auth_failed("aborted by client".into(), user);
                self.error(one(501, "5.7.0 Authentication aborted"))
            }
            MechReply::Failure(mech::AuthError::BadBase64) => {
                let user = ex.attempted().map(ToString::to_string);
                self.auth_failed("cannot decode response".into(), user);
                self.error(one(501, "5.5.2 Cannot decode response"))
            }
            MechReply::Failure(mech::AuthError::Temporary(_)) => {
                self.error(one(454, "4.7.0 Temporary authentication failure"))
            }
            MechReply::Failure(e) => {
                let user = ex.attempted().map(ToString::to_string);
                self.auth_failed(e.to_string(), user);
                self.error(one(
                    535,
                    "5.7.8 Error: authentication failed: authentication failure",
                ))
            }
        }
    }

    /// The message content has been read (dot-unstuffed, `size` bytes).
    /// Returns the envelope to deliver, or the reply for an oversize one.
    pub fn data_done(&mut self, size: u64) -> Result<Envelope, Action> {
        if size > self.policy.message_size_limit {
            self.reset();
            return Err(Action::Reply(one(
                552,
                "5.3.4 Message size exceeds fixed limit",
            )));
        }
        let env = Envelope {
            from: self.from.clone().flatten(),
            to: std::mem::take(&mut self.to),
            authenticated: self.auth.clone(),
            mechanism: self.mechanism,
            helo: self.helo.clone(),
            esmtp: self.esmtp,
            tls: self.tls,
        };
        self.reset();
        Ok(env)
    }

    /// Errors so far (for the error sleep).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// An AUTH exchange is waiting for the client's next line.
    pub fn in_auth_exchange(&self) -> bool {
        self.exchange.is_some() || self.final_ack.is_some()
    }

    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.auth.as_ref()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
