//! Checking a login against an account's secrets: the one home of the rule
//! every mechanism and the saslauthd socket follow.
//!
//! The rule: a failed check costs the same whatever the account — one that
//! holds the cleartext, one that holds only a SCRAM verifier (PBKDF2 to
//! check a password), or no account at all. Otherwise the time a failure
//! takes tells an attacker which names exist and how they are stored. The
//! most expensive check is one PBKDF2 run, so a failure that did not run
//! one runs a dummy one ([`check`]). Successes stay as cheap as the stored
//! secret allows.
//!
//! What a mechanism can use is decided by the accessors of [`Secrets`]
//! ([`Secrets::plain_check`], [`Secrets::cleartext`],
//! [`Secrets::scram_source`]); [`Secrets::mechanisms`] is built from the
//! same accessors, so what `sasldblistusers` lists is what logs in.

use std::cell::Cell;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{AUTH_PASSWORD, DEFAULT_ITERATIONS, LEGACY_PLAIN, ScramHash, ScramVerifier};
use super::{USER_PASSWORD, Verdict, legacy_plain_matches};
use crate::store::{Account, Store, StoreError};

/// What the store holds for one account, as mechanisms need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub user_password: Option<Vec<u8>>,
    pub verifiers: Vec<ScramVerifier>,
    pub legacy_plain: Option<Vec<u8>>,
}

/// Where mechanisms find secrets. `Ok(None)` means no such account.
///
/// A store that caches (PostgreSQL, see [`super::cached`]) also hears how
/// checks of what it served went: successes are what it may serve while
/// the database is unreachable, and the first failure after a success
/// asks the database again.
pub trait Credentials {
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError>;

    /// A check of the secrets served for `account` succeeded.
    fn succeeded(&self, _account: &Account) {}

    /// A check of the secrets served for `account` failed: secrets worth a
    /// second check in the same login, when the store holds others now.
    fn failed(&self, _account: &Account) -> Option<Secrets> {
        None
    }

    /// A check of `account` failed against secrets served while the store
    /// could not be asked (a copy kept through an outage): the failure is
    /// temporary, as for an account the store cannot answer about, so the
    /// reply does not tell which accounts logged in lately.
    fn failure_is_temporary(&self, _account: &Account) -> bool {
        false
    }
}

impl Credentials for Store {
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
        self.read(|v| Ok(Secrets::for_login(&v.properties(account)?)))
    }
}

/// How a plaintext password (PLAIN, LOGIN, saslauthd) is checked.
#[derive(Debug, Clone, Copy)]
pub enum PlainCheck<'a> {
    /// Against the stored cleartext (constant-time comparison).
    Cleartext(&'a [u8]),
    /// By deriving the verifier's keys (one PBKDF2 run).
    Verifier(&'a ScramVerifier),
    /// Against the legacy `cmusaslsecretPLAIN` digest.
    Legacy(&'a [u8]),
}

impl PlainCheck<'_> {
    pub fn matches(self, password: &[u8]) -> bool {
        match self {
            PlainCheck::Cleartext(v) => bool::from(v.ct_eq(password)),
            PlainCheck::Verifier(v) => v.verify_password(password),
            PlainCheck::Legacy(v) => legacy_plain_matches(v, password),
        }
    }
}

/// Where SCRAM's keys come from.
#[derive(Debug, Clone, Copy)]
pub enum ScramSource<'a> {
    /// A stored verifier of the exchange's hash: its salt, count and keys.
    Stored(&'a ScramVerifier),
    /// The cleartext, derived with a salt from the salt key.
    Derived(&'a [u8]),
}

impl Secrets {
    /// Collect from raw properties.
    pub fn from_properties(props: &[(&[u8], &[u8])]) -> Secrets {
        let mut s = Secrets::default();
        for (name, value) in props {
            match *name {
                n if n == USER_PASSWORD.as_bytes() => s.user_password = Some(value.to_vec()),
                n if n == AUTH_PASSWORD.as_bytes() => {
                    if let Ok(v) = ScramVerifier::parse(value) {
                        s.verifiers.push(v);
                    }
                }
                n if n == LEGACY_PLAIN.as_bytes() => s.legacy_plain = Some(value.to_vec()),
                _ => {}
            }
        }
        s
    }

    /// What a login may check against: [`Secrets::from_properties`]
    /// without empty values. An empty password never logs in: CRAM-MD5,
    /// DIGEST-MD5 and SCRAM would accept the empty password a client can
    /// send (plain SQL or Cyrus's `saslpasswd2` can store one). `None`
    /// when nothing is stored.
    pub fn for_login(props: &[(&[u8], &[u8])]) -> Option<Secrets> {
        if props.is_empty() {
            return None;
        }
        let mut s = Secrets::from_properties(props);
        s.user_password = s.user_password.filter(|v| !v.is_empty());
        s.legacy_plain = s.legacy_plain.filter(|v| !v.is_empty());
        Some(s)
    }

    /// The plaintext check: the cleartext when stored, else the SCRAM
    /// verifier, else the legacy PLAIN digest.
    pub fn plain_check(&self) -> Option<PlainCheck<'_>> {
        if let Some(v) = &self.user_password {
            return Some(PlainCheck::Cleartext(v));
        }
        if let Some(v) = self.verifiers.first() {
            return Some(PlainCheck::Verifier(v));
        }
        self.legacy_plain.as_deref().map(PlainCheck::Legacy)
    }

    /// The cleartext CRAM-MD5 and DIGEST-MD5 hash with.
    pub fn cleartext(&self) -> Option<&[u8]> {
        self.user_password.as_deref()
    }

    /// SCRAM's keys for `hash`: a stored verifier of that hash wins over
    /// deriving from the cleartext (no PBKDF2 at login).
    pub fn scram_source(&self, hash: ScramHash) -> Option<ScramSource<'_>> {
        if let Some(v) = self.verifiers.iter().find(|v| v.hash == hash) {
            return Some(ScramSource::Stored(v));
        }
        self.cleartext().map(ScramSource::Derived)
    }

    /// Check a plaintext password (PLAIN, LOGIN), constant time.
    pub fn verify_plain(&self, password: &[u8]) -> bool {
        self.verdict(password) == Verdict::Match
    }

    pub(super) fn verdict(&self, password: &[u8]) -> Verdict {
        match self.plain_check() {
            Some(c) if c.matches(password) => Verdict::Match,
            Some(_) => Verdict::Mismatch,
            None => Verdict::NoSecret,
        }
    }

    /// The mechanisms that can log in with these secrets (without the
    /// `-PLUS` forms, which need what their base needs), in the order
    /// `sasldblistusers` has always listed them.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.plain_check().is_some() {
            out.extend(["PLAIN", "LOGIN"]);
        }
        if self.cleartext().is_some() {
            out.extend(["CRAM-MD5", "DIGEST-MD5"]);
        }
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            if self.scram_source(hash).is_some() {
                out.push(hash.mech_name());
            }
        }
        out
    }
}

impl Zeroize for Secrets {
    fn zeroize(&mut self) {
        self.user_password.zeroize();
        self.legacy_plain.zeroize();
        for v in &mut self.verifiers {
            v.stored_key.zeroize();
            v.server_key.zeroize();
        }
        self.verifiers.clear();
    }
}

/// What a failed check is padded to: one PBKDF2 run of this hash and
/// count (the server's SCRAM iteration count, what `saslpasswd -n` and
/// derived SCRAM logins cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCost {
    pub hash: ScramHash,
    pub iterations: u32,
}

impl Default for FailureCost {
    fn default() -> Self {
        FailureCost {
            hash: ScramHash::Sha256,
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

thread_local! {
    static PBKDF2_RUNS: Cell<u64> = const { Cell::new(0) };
}

/// Counted by every PBKDF2 run ([`ScramHash::salted_password`]).
pub(super) fn count_pbkdf2() {
    PBKDF2_RUNS.with(|c| c.set(c.get().wrapping_add(1)));
}

/// PBKDF2 runs so far on this thread: lets [`check`] see whether a check
/// already paid the most expensive price, and tests count the work.
pub fn pbkdf2_runs() -> u64 {
    PBKDF2_RUNS.with(Cell::get)
}

/// The one rule: run `check` on the account's secrets (`None`: no such
/// account, checked against empty secrets), then, if it failed without a
/// PBKDF2 run, run one with `cost`. The secrets are wiped afterwards.
/// `check` returns what a success yields (`None` is a failure).
pub fn check<T>(
    secrets: Option<Secrets>,
    cost: FailureCost,
    check: impl FnOnce(&Secrets) -> Option<T>,
) -> Option<T> {
    let before = pbkdf2_runs();
    let known = secrets.is_some();
    let mut secrets = secrets.unwrap_or_default();
    let outcome = check(&secrets).filter(|_| known);
    secrets.zeroize();
    pad(outcome.is_none(), before, cost);
    outcome
}

/// A failure that ran no PBKDF2 since `before` runs one.
fn pad(failed: bool, before: u64, cost: FailureCost) {
    if failed && pbkdf2_runs() == before {
        let mut dummy =
            cost.hash
                .salted_password(b"\0no such password\0", b"failure-padding", cost.iterations);
        dummy.zeroize();
    }
}

/// [`check`] with the store told the outcome. After a failure it may hand
/// fresher secrets (a password changed since it cached them): with
/// `recheck` they are checked too, in the same login; without (SCRAM,
/// whose salt went out before the check) they serve the next login. Still
/// one padding run at most, so a failure costs what it costs uncached.
pub fn check_account<T>(
    creds: &dyn Credentials,
    account: &Account,
    secrets: Option<Secrets>,
    cost: FailureCost,
    recheck: bool,
    check: impl Fn(&Secrets) -> Option<T>,
) -> Option<T> {
    let before = pbkdf2_runs();
    let once = |s: Option<Secrets>| {
        let known = s.is_some();
        let mut s = s.unwrap_or_default();
        let outcome = check(&s).filter(|_| known);
        s.zeroize();
        outcome
    };
    let mut outcome = once(secrets);
    if outcome.is_none()
        && let Some(fresh) = creds.failed(account)
        && recheck
    {
        outcome = once(Some(fresh));
    }
    match outcome {
        Some(_) => creds.succeeded(account),
        None => pad(true, before, cost),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleartext() -> Secrets {
        Secrets {
            user_password: Some(b"pencil".to_vec()),
            ..Secrets::default()
        }
    }

    fn verifier_only() -> Secrets {
        Secrets {
            verifiers: vec![ScramVerifier::derive(
                ScramHash::Sha256,
                b"pencil",
                b"salt",
                4096,
            )],
            ..Secrets::default()
        }
    }

    /// PBKDF2 runs of one plaintext check, and its outcome.
    fn plain(secrets: Option<Secrets>, pw: &[u8]) -> (u64, bool) {
        let before = pbkdf2_runs();
        let ok = check(secrets, FailureCost::default(), |s| {
            s.plain_check()?.matches(pw).then_some(())
        });
        (pbkdf2_runs() - before, ok.is_some())
    }

    #[test]
    fn every_failure_costs_one_pbkdf2_run() {
        assert_eq!(plain(Some(cleartext()), b"wrong"), (1, false));
        assert_eq!(plain(Some(verifier_only()), b"wrong"), (1, false));
        assert_eq!(plain(None, b"wrong"), (1, false));
        assert_eq!(plain(None, b""), (1, false));
        assert_eq!(plain(Some(Secrets::default()), b"pencil"), (1, false));
        // Successes stay as cheap as the stored secret allows.
        assert_eq!(plain(Some(cleartext()), b"pencil"), (0, true));
        assert_eq!(plain(Some(verifier_only()), b"pencil"), (1, true));
    }

    #[test]
    fn mechanisms_follow_what_logs_in() {
        assert_eq!(
            cleartext().mechanisms(),
            [
                "PLAIN",
                "LOGIN",
                "CRAM-MD5",
                "DIGEST-MD5",
                "SCRAM-SHA-1",
                "SCRAM-SHA-256"
            ]
        );
        // `saslpasswd -n`: the verifier logs in over SCRAM and, checked
        // with PBKDF2, over PLAIN and LOGIN.
        assert_eq!(
            verifier_only().mechanisms(),
            ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
        );
        assert!(verifier_only().verify_plain(b"pencil"));
        let legacy = Secrets {
            legacy_plain: Some(vec![0; 33]),
            ..Secrets::default()
        };
        assert_eq!(legacy.mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(Secrets::default().mechanisms().is_empty());
    }

    #[test]
    fn zeroize_wipes_everything() {
        let mut s = verifier_only();
        s.user_password = Some(b"pencil".to_vec());
        s.zeroize();
        assert!(s.user_password.is_none() && s.verifiers.is_empty());
    }
}
