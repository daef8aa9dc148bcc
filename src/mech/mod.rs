//! SASL server mechanisms as sans-I/O state machines.
//!
//! A mechanism takes the client's decoded bytes and answers with a
//! challenge to send or an outcome; it never reads a socket. Credentials
//! come through [`Credentials`], which the store answers in one read
//! transaction and tests answer from a table. [`Exchange`] adds the framing
//! every protocol shares (base64, `*` cancellation, size bounds) so the SMTP
//! session and the auth sockets feed it lines as they arrive.
//!
//! Identity follows Cyrus: a name is split at the first `@` into user and
//! realm, otherwise the configured realm applies. The same rule
//! ([`Account::resolve`]) creates accounts (`saslpasswd`) and checks logins,
//! so a user created as `alice` in realm `example.org` logs in as `alice` or
//! `alice@example.org`. Unlike Cyrus's login side, whitespace is not
//! trimmed: Cyrus stores ` bob ` as given and then trims it away at login,
//! so such an account could never log in; here it logs in as it was made.

mod cram_md5;
mod digest_md5;
mod login;
#[cfg(test)]
mod oracle_tests;
mod plain;
mod scram;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;

use crate::secret::{self, FailureCost, ScramHash};
use crate::store::Account;
use zeroize::Zeroizing;

// Secrets and where they come from live in `secret`, beside the rule for
// checking them; mechanisms see them through these names.
pub use crate::secret::{Credentials, Secrets};

pub use cram_md5::CramMd5;
pub use digest_md5::{DigestMd5, response_values as digest_response_values};
pub use login::Login;
pub use plain::Plain;
pub use scram::Scram;

/// Postfix's `smtpd_sasl_response_limit` default: longest base64 line.
pub const MAX_RESPONSE_B64: usize = 12288;

/// Server settings every mechanism may consult.
#[derive(Clone)]
pub struct ServerConfig {
    /// Service name for DIGEST-MD5's digest-uri (`smtp`).
    pub service: String,
    /// The server's host name (CRAM-MD5 challenge, DIGEST-MD5 digest-uri).
    pub hostname: String,
    /// Other host names a DIGEST-MD5 digest-uri may name.
    pub host_aliases: Vec<String>,
    /// Refuse a DIGEST-MD5 digest-uri whose host part is not `hostname` or
    /// an alias (`smtpd_sasl_digest_uri_strict_host`). Off by default, as
    /// Cyrus checks only the service part: curl sends `smtp/<realm>`.
    pub digest_strict_host: bool,
    /// Realm for names without `@` (Postfix: `smtpd_sasl_local_domain`,
    /// else `myhostname`).
    pub realm: Vec<u8>,
    /// Let an authenticated user act as another (authzid ≠ authcid).
    pub allow_proxy: bool,
    /// Iterations for SCRAM derived from a cleartext `userPassword`.
    pub scram_iterations: u32,
    /// Secret for the salts of derived and unknown-user SCRAM exchanges,
    /// so an unknown user gets a stable, plausible salt.
    pub salt_key: [u8; 32],
    /// `tls-exporter` channel binding data of the connection, if any.
    pub channel_binding: Option<Vec<u8>>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("service", &self.service)
            .field("hostname", &self.hostname)
            .field("realm", &String::from_utf8_lossy(&self.realm))
            .field("allow_proxy", &self.allow_proxy)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// A config with a fresh random salt key.
    pub fn new(service: &str, hostname: &str, realm: &[u8]) -> Result<Self, secret::SecretError> {
        Ok(ServerConfig {
            service: service.to_string(),
            hostname: hostname.to_string(),
            host_aliases: Vec::new(),
            digest_strict_host: false,
            realm: realm.to_vec(),
            allow_proxy: false,
            scram_iterations: secret::DEFAULT_ITERATIONS,
            salt_key: secret::random_bytes::<32>()?,
            channel_binding: None,
        })
    }

    /// Resolve a login name to an account with the rule that created it
    /// ([`Account::resolve`]). An empty name is refused: no client can mean it.
    pub fn account(&self, name: &[u8]) -> Result<Account, AuthError> {
        if name.is_empty() {
            return Err(AuthError::Malformed("empty user name"));
        }
        Account::resolve(name, Some(&self.realm), || {
            Err(AuthError::Malformed("no realm configured"))
        })
    }

    /// May `authcid` act as `authzid`? Equal names (or the same account)
    /// always; others only with proxy authorisation configured.
    pub fn authorize(
        &self,
        authcid: &Account,
        authzid: &[u8],
    ) -> Result<Option<Vec<u8>>, AuthError> {
        if authzid.is_empty() {
            return Ok(None);
        }
        let same = self.account(authzid).is_ok_and(|a| a == *authcid);
        if same {
            return Ok(None);
        }
        if self.allow_proxy {
            return Ok(Some(authzid.to_vec()));
        }
        Err(AuthError::AuthzDenied)
    }

    /// What a failed check is padded to (see [`secret::check`]): the PBKDF2
    /// a derived SCRAM login or a `saslpasswd -n` verifier costs.
    pub fn failure_cost(&self, hash: ScramHash) -> FailureCost {
        FailureCost {
            hash,
            iterations: self.scram_iterations,
        }
    }

    /// Check a plaintext password (PLAIN, LOGIN) under the one rule.
    pub(crate) fn check_plain(
        &self,
        creds: &dyn Credentials,
        account: &Account,
        password: &[u8],
    ) -> Result<(), AuthError> {
        let secrets = self.lookup(creds, account)?;
        let cost = self.failure_cost(ScramHash::Sha256);
        self.check_account(creds, account, secrets, cost, true, |s| {
            s.plain_check()?.matches(password).then_some(())
        })
    }

    /// [`secret::check_account`], a failure as the mechanism answers it:
    /// bad credentials, or a temporary failure when the secrets were a copy
    /// kept through a store outage.
    pub(crate) fn check_account<T>(
        &self,
        creds: &dyn Credentials,
        account: &Account,
        secrets: Option<Secrets>,
        cost: FailureCost,
        recheck: bool,
        check: impl Fn(&Secrets) -> Option<T>,
    ) -> Result<T, AuthError> {
        secret::check_account(creds, account, secrets, cost, recheck, check).ok_or_else(|| {
            if creds.failure_is_temporary(account) {
                AuthError::Temporary("the store is unreachable".into())
            } else {
                AuthError::BadCredentials
            }
        })
    }

    /// Look up secrets; a store failure is a temporary failure.
    fn lookup(
        &self,
        creds: &dyn Credentials,
        account: &Account,
    ) -> Result<Option<Secrets>, AuthError> {
        creds
            .secrets(account)
            .map_err(|e| AuthError::Temporary(e.to_string()))
    }
}

/// Why an exchange failed. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The client sent `*`.
    Cancelled,
    /// Not valid base64.
    BadBase64,
    /// Longer than the bounds of the protocol.
    TooLong,
    /// The bytes do not follow the mechanism's syntax.
    Malformed(&'static str),
    /// Wrong password, unknown user, or no secret this mechanism can use.
    BadCredentials,
    /// Authenticated, but may not act as the requested authzid.
    AuthzDenied,
    /// Channel binding missing, mismatched or downgraded.
    ChannelBinding(&'static str),
    /// The store could not be read.
    Temporary(String),
    /// Input after the exchange ended, or the mechanism is unknown.
    Protocol(&'static str),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Cancelled => write!(f, "authentication cancelled"),
            AuthError::BadBase64 => write!(f, "invalid base64 data"),
            AuthError::TooLong => write!(f, "response too long"),
            AuthError::Malformed(why) => write!(f, "malformed response: {why}"),
            AuthError::BadCredentials => write!(f, "authentication failure"),
            AuthError::AuthzDenied => write!(f, "authorization failure"),
            AuthError::ChannelBinding(why) => write!(f, "channel binding: {why}"),
            AuthError::Temporary(why) => write!(f, "temporary failure: {why}"),
            AuthError::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// A successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub account: Account,
    /// Set when the client asked to act as someone else and may.
    pub authzid: Option<Vec<u8>>,
}

/// What a mechanism answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (raw bytes) and wait for a response.
    Challenge(Vec<u8>),
    /// Done; `Some(data)` is final server data (SCRAM's `v=`) the protocol
    /// sends with success or as a last challenge.
    Success(Authenticated, Option<Vec<u8>>),
    Failure(AuthError),
}

/// A server mechanism. `start` gets the initial response if the client sent
/// one (`Some(b"")` for an explicitly empty one), `step` every later one.
pub trait Mechanism: Send {
    fn name(&self) -> &'static str;
    fn start(&mut self, initial: Option<&[u8]>, creds: &dyn Credentials) -> Step;
    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step;
    /// The account the client named, once the exchange got that far (for
    /// failure logs and Dovecot's `FAIL ... user=`).
    fn attempted(&self) -> Option<&Account> {
        None
    }
}

/// Security properties, in Cyrus's sense: what a mechanism resists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecurityFlags {
    pub no_plaintext: bool,
    pub no_active: bool,
    pub no_dictionary: bool,
    pub no_anonymous: bool,
    pub forward_secrecy: bool,
    pub mutual_auth: bool,
}

/// Every mechanism this crate serves, strongest first (the order EHLO
/// advertises them in).
pub const ALL: [&str; 8] = [
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "DIGEST-MD5",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
];

/// Cyrus's security flags for a mechanism name.
pub fn security_flags(name: &str) -> Option<SecurityFlags> {
    let upper = name.to_ascii_uppercase();
    let f = |no_plaintext, no_active, mutual_auth| SecurityFlags {
        no_plaintext,
        no_active,
        no_dictionary: false,
        no_anonymous: true,
        forward_secrecy: false,
        mutual_auth,
    };
    Some(match upper.as_str() {
        "PLAIN" | "LOGIN" => f(false, false, false),
        "CRAM-MD5" => f(true, false, false),
        "DIGEST-MD5" => f(true, false, true),
        "SCRAM-SHA-1" | "SCRAM-SHA-256" | "SCRAM-SHA-1-PLUS" | "SCRAM-SHA-256-PLUS" => {
            f(true, true, true)
        }
        _ => return None,
    })
}

/// A new server mechanism by (case-insensitive) name; `None` when unknown.
pub fn new_mechanism(name: &str, config: &ServerConfig) -> Option<Box<dyn Mechanism>> {
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "PLAIN" => Box::new(Plain::new(config.clone())),
        "LOGIN" => Box::new(Login::new(config.clone())),
        "CRAM-MD5" => Box::new(CramMd5::new(config.clone())),
        "DIGEST-MD5" => Box::new(DigestMd5::new(config.clone())),
        "SCRAM-SHA-1" => Box::new(Scram::new(config.clone(), ScramHash::Sha1, false)),
        "SCRAM-SHA-256" => Box::new(Scram::new(config.clone(), ScramHash::Sha256, false)),
        "SCRAM-SHA-1-PLUS" => Box::new(Scram::new(config.clone(), ScramHash::Sha1, true)),
        "SCRAM-SHA-256-PLUS" => Box::new(Scram::new(config.clone(), ScramHash::Sha256, true)),
        _ => return None,
    })
}

/// Framing shared by SMTP AUTH and the auth sockets: base64 lines in and
/// out, `*` to cancel, bounded sizes.
pub struct Exchange {
    mech: Box<dyn Mechanism>,
    done: bool,
}

/// What to send after feeding the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Base64 challenge (SMTP `334 <b64>`).
    Challenge(String),
    /// Success, with optional base64 final data.
    Success(Authenticated, Option<String>),
    Failure(AuthError),
}

impl Exchange {
    pub fn new(mech: Box<dyn Mechanism>) -> Exchange {
        Exchange { mech, done: false }
    }

    pub fn mechanism(&self) -> &'static str {
        self.mech.name()
    }

    /// The account the client named, if the exchange got that far.
    pub fn attempted(&self) -> Option<&Account> {
        self.mech.attempted()
    }

    /// Decoded responses carry passwords: wiped when dropped.
    fn decode(line: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        if line == b"*" {
            return Err(AuthError::Cancelled);
        }
        if line.len() > MAX_RESPONSE_B64 {
            return Err(AuthError::TooLong);
        }
        B64.decode(line.trim_ascii())
            .map(Zeroizing::new)
            .map_err(|_| AuthError::BadBase64)
    }

    fn reply(&mut self, step: Step) -> Reply {
        match step {
            Step::Challenge(c) => Reply::Challenge(B64.encode(c)),
            Step::Success(a, data) => {
                self.done = true;
                Reply::Success(a, data.map(|d| B64.encode(d)))
            }
            Step::Failure(e) => {
                self.done = true;
                Reply::Failure(e)
            }
        }
    }

    /// Begin. `initial` is the base64 initial response as the client sent
    /// it (`=` meaning empty), if any.
    pub fn start(&mut self, initial: Option<&[u8]>, creds: &dyn Credentials) -> Reply {
        let decoded = match initial {
            None => None,
            Some(b"=") => Some(Zeroizing::new(Vec::new())),
            Some(line) => match Self::decode(line) {
                Ok(d) => Some(d),
                Err(e) => return self.reply(Step::Failure(e)),
            },
        };
        let step = self
            .mech
            .start(decoded.as_deref().map(Vec::as_slice), creds);
        self.reply(step)
    }

    /// Feed one response line (without CRLF).
    pub fn feed(&mut self, line: &[u8], creds: &dyn Credentials) -> Reply {
        if self.done {
            return Reply::Failure(AuthError::Protocol("exchange already finished"));
        }
        let step = match Self::decode(line) {
            Ok(d) => self.mech.step(&d, creds),
            Err(e) => Step::Failure(e),
        };
        self.reply(step)
    }
}

/// Constant-time equality for byte strings of possibly different length.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use super::{ALL, MAX_RESPONSE_B64, security_flags};
    use crate::store::StoreError;
    use std::collections::HashMap;

    /// An in-memory credential table for mechanism tests.
    #[derive(Default)]
    pub struct Table(pub HashMap<Account, Secrets>);

    impl Table {
        pub fn with_password(user: &str, realm: &str, pw: &str) -> Table {
            let mut t = Table::default();
            t.0.insert(
                Account::new(user, realm),
                Secrets {
                    user_password: Some(pw.as_bytes().to_vec()),
                    ..Secrets::default()
                },
            );
            t
        }
    }

    impl Credentials for Table {
        fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
            Ok(self.0.get(account).cloned())
        }
    }

    #[test]
    fn exchange_framing() {
        use super::{AuthError, Exchange, Reply, new_mechanism};
        let creds = Table::with_password("tim", "example.org", "tanstaaftanstaaf");
        let cfg = config();
        let ex = || Exchange::new(new_mechanism("plain", &cfg).expect("plain"));
        // Initial response, base64.
        assert!(matches!(
            ex().start(Some(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), &creds),
            Reply::Success(..)
        ));
        // `=` is an empty initial response: PLAIN finds no fields.
        assert!(matches!(
            ex().start(Some(b"="), &creds),
            Reply::Failure(AuthError::Malformed(_))
        ));
        // No initial response: empty challenge, then the response.
        let mut e = ex();
        assert_eq!(e.start(None, &creds), Reply::Challenge(String::new()));
        assert!(matches!(
            e.feed(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &creds),
            Reply::Success(..)
        ));
        assert_eq!(
            e.feed(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &creds),
            Reply::Failure(AuthError::Protocol("exchange already finished"))
        );
        let mut e = ex();
        e.start(None, &creds);
        assert_eq!(e.feed(b"*", &creds), Reply::Failure(AuthError::Cancelled));
        let mut e = ex();
        e.start(None, &creds);
        assert_eq!(
            e.feed(b"not base64!", &creds),
            Reply::Failure(AuthError::BadBase64)
        );
        let mut e = ex();
        e.start(None, &creds);
        assert_eq!(
            e.feed(&vec![b'A'; MAX_RESPONSE_B64 + 4], &creds),
            Reply::Failure(AuthError::TooLong)
        );
        assert_eq!(
            ex().start(Some(b"%%%"), &creds),
            Reply::Failure(AuthError::BadBase64)
        );
        assert!(new_mechanism("NTLM", &cfg).is_none());
        for name in ALL {
            assert_eq!(new_mechanism(name, &cfg).expect("known").name(), name);
            assert!(security_flags(name).is_some());
        }
    }

    pub fn config() -> ServerConfig {
        ServerConfig {
            service: "smtp".into(),
            hostname: "mx.example.org".into(),
            host_aliases: vec![],
            digest_strict_host: false,
            realm: b"example.org".to_vec(),
            allow_proxy: false,
            scram_iterations: 4096,
            salt_key: [7u8; 32],
            channel_binding: None,
        }
    }
}
