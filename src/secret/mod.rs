//! What is stored for a password, and how a password is checked against it.
//!
//! Properties (Cyrus SASL 2.1.28): `userPassword` holds the cleartext (what
//! CRAM-MD5 and DIGEST-MD5 need); `authPassword` holds a SCRAM verifier
//! `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` (RFC 5802/7677 keys, base64);
//! the legacy `cmusaslsecret*` properties are never written and are removed
//! by every change, as 2.1.28's `saslpasswd2` does. Only this module knows
//! how a password becomes properties.

pub mod cache;
pub mod cached;
mod check;
pub mod pg_fetch;
mod salt_key;
mod scram;

pub use check::{
    Credentials, FailureCost, PlainCheck, ScramSource, Secrets, check, check_account, pbkdf2_runs,
};
pub use salt_key::{SALT_KEY_FILE, load_salt_key};
pub use scram::{ScramHash, ScramVerifier};

use subtle::ConstantTimeEq;

pub const USER_PASSWORD: &str = "userPassword";
pub const AUTH_PASSWORD: &str = "authPassword";
pub const LEGACY_PLAIN: &str = "cmusaslsecretPLAIN";
/// Deleted after every set and on delete (2.1.28 behaviour).
pub const LEGACY: [&str; 3] = [
    "cmusaslsecretCRAM-MD5",
    "cmusaslsecretDIGEST-MD5",
    LEGACY_PLAIN,
];

/// Cyrus's server reads values into an 8192-byte buffer including a NUL.
pub const MAX_VALUE_LEN: usize = 8191;

/// Cyrus's SCRAM default when `scram_iteration_counter` is not set.
pub const DEFAULT_ITERATIONS: u32 = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("empty password")]
    Empty,
    #[error("password is {0} bytes; Cyrus SASL reads at most {MAX_VALUE_LEN}")]
    TooLong(usize),
    #[error("malformed SCRAM verifier")]
    MalformedVerifier,
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    /// The SCRAM salt key file could not be read or made (path, why).
    #[error("{0}: {1}")]
    SaltKey(String, String),
}

/// How a password is stored, from the flags and the application config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPolicy {
    /// Store the cleartext `userPassword` (false with `-n`).
    pub plaintext: bool,
    /// Store an `authPassword` verifier of this kind.
    pub scram: Option<ScramHash>,
    pub iterations: u32,
}

/// One property to write or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(&'static str, Vec<u8>),
    Delete(&'static str),
}

impl Change {
    pub fn property(&self) -> &'static str {
        match self {
            Change::Put(p, _) | Change::Delete(p) => p,
        }
    }
}

/// Check a password before anything derives from it.
pub fn validate(password: &[u8]) -> Result<(), SecretError> {
    if password.is_empty() {
        return Err(SecretError::Empty);
    }
    if password.len() > MAX_VALUE_LEN {
        return Err(SecretError::TooLong(password.len()));
    }
    Ok(())
}

/// The property changes that set `password` under `policy`.
///
/// Differs from Cyrus on purpose in one way: without the cleartext, an
/// existing `userPassword` is removed, so `-n` never leaves an old password
/// usable.
pub fn changes_for_set(policy: &SetPolicy, password: &[u8]) -> Result<Vec<Change>, SecretError> {
    validate(password)?;
    let mut out = Vec::with_capacity(5);
    if policy.plaintext {
        out.push(Change::Put(USER_PASSWORD, password.to_vec()));
    } else {
        out.push(Change::Delete(USER_PASSWORD));
    }
    match policy.scram {
        Some(hash) => {
            let v = ScramVerifier::generate(hash, password, policy.iterations)?;
            out.push(Change::Put(AUTH_PASSWORD, v.to_string().into_bytes()));
        }
        // A stale verifier would keep the old password valid for SCRAM.
        None => out.push(Change::Delete(AUTH_PASSWORD)),
    }
    out.extend(LEGACY.iter().map(|p| Change::Delete(p)));
    Ok(out)
}

/// The property changes that delete an account's secrets. Unlike Cyrus, the
/// `authPassword` verifier goes too, whatever the config says: a "deleted"
/// user must not keep a working SCRAM login. Other properties stay.
pub fn changes_for_delete() -> Vec<Change> {
    let mut out = vec![Change::Delete(USER_PASSWORD), Change::Delete(AUTH_PASSWORD)];
    out.extend(LEGACY.iter().map(|p| Change::Delete(p)));
    out
}

fn find<'a>(props: &[(&'a [u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    props
        .iter()
        .find(|(p, _)| *p == name.as_bytes())
        .map(|(_, v)| *v)
}

/// True when the stored properties already hold `password` as `policy` would
/// store it, so rewriting them would change nothing a login can see. Lets a
/// batch run twice leave the store as the first run left it.
pub fn is_current(policy: &SetPolicy, password: &[u8], props: &[(&[u8], &[u8])]) -> bool {
    let user_pw = find(props, USER_PASSWORD);
    let plain_ok = if policy.plaintext {
        user_pw.is_some_and(|v| bool::from(v.ct_eq(password)))
    } else {
        user_pw.is_none()
    };
    let scram_ok = match (policy.scram, find(props, AUTH_PASSWORD)) {
        (None, None) => true,
        (Some(hash), Some(v)) => ScramVerifier::parse(v).is_ok_and(|v| {
            v.hash == hash && v.iterations == policy.iterations && v.verify_password(password)
        }),
        _ => false,
    };
    let legacy_gone = LEGACY.iter().all(|l| find(props, l).is_none());
    plain_ok && scram_ok && legacy_gone
}

/// Outcome of checking a password against an account's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    Mismatch,
    /// The account exists but holds nothing a password can be checked with.
    NoSecret,
}

/// Check `password` the way a plaintext login (PLAIN, LOGIN) would: the
/// cleartext when stored, else the SCRAM verifier, else the legacy PLAIN
/// digest ([`Secrets::plain_check`]). Comparisons run in constant time.
pub fn verify(props: &[(&[u8], &[u8])], password: &[u8]) -> Verdict {
    Secrets::from_properties(props).verdict(password)
}

/// `cmusaslsecretPLAIN`: 16-byte salt, NUL, MD5(salt ‖ "sasldb" ‖ password).
pub(crate) fn legacy_plain_matches(stored: &[u8], password: &[u8]) -> bool {
    use md5::Digest;
    if stored.len() != 33 {
        return false;
    }
    let (salt, digest) = (&stored[..16], &stored[17..]);
    let mut h = md5::Md5::new();
    h.update(salt);
    h.update(b"sasldb");
    h.update(password);
    bool::from(h.finalize().as_slice().ct_eq(digest))
}

/// Mechanisms that log in with an account with these properties: the
/// decision a login makes ([`Secrets::mechanisms`]).
pub fn mechanisms(props: &[(&[u8], &[u8])]) -> Vec<&'static str> {
    Secrets::from_properties(props).mechanisms()
}

/// Random bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(plaintext: bool, scram: Option<ScramHash>) -> SetPolicy {
        SetPolicy {
            plaintext,
            scram,
            iterations: 4096,
        }
    }

    #[test]
    fn default_set_writes_userpassword_and_clears_the_rest() {
        let c = changes_for_set(&policy(true, None), b"pw").unwrap();
        assert_eq!(c[0], Change::Put(USER_PASSWORD, b"pw".to_vec()));
        assert!(c.contains(&Change::Delete(AUTH_PASSWORD)));
        for l in LEGACY {
            assert!(c.contains(&Change::Delete(l)));
        }
    }

    #[test]
    fn no_plain_set_writes_a_verifier_only() {
        let c = changes_for_set(&policy(false, Some(ScramHash::Sha256)), b"pencil").unwrap();
        assert_eq!(c[0], Change::Delete(USER_PASSWORD));
        let Change::Put(AUTH_PASSWORD, v) = &c[1] else {
            panic!("no verifier")
        };
        let v = ScramVerifier::parse(v).unwrap();
        assert!(v.verify_password(b"pencil"));
        assert!(!v.verify_password(b"pencil2"));
    }

    #[test]
    fn empty_and_oversize_passwords_are_refused() {
        assert_eq!(
            changes_for_set(&policy(true, None), b""),
            Err(SecretError::Empty)
        );
        assert_eq!(
            changes_for_set(&policy(true, None), &[b'x'; 8192]),
            Err(SecretError::TooLong(8192))
        );
    }

    #[test]
    fn verify_each_kind_of_secret() {
        let up: Vec<(&[u8], &[u8])> = vec![(b"userPassword", b"secret")];
        assert_eq!(verify(&up, b"secret"), Verdict::Match);
        assert_eq!(verify(&up, b"secreT"), Verdict::Mismatch);
        assert_eq!(verify(&up, b"secret2"), Verdict::Mismatch);
        let v = ScramVerifier::generate(ScramHash::Sha1, b"pencil", 4096)
            .unwrap()
            .to_string();
        let ap: Vec<(&[u8], &[u8])> = vec![(b"authPassword", v.as_bytes())];
        assert_eq!(verify(&ap, b"pencil"), Verdict::Match);
        assert_eq!(verify(&ap, b"pencil!"), Verdict::Mismatch);
        let other: Vec<(&[u8], &[u8])> = vec![(b"foo", b"bar")];
        assert_eq!(verify(&other, b"x"), Verdict::NoSecret);
    }

    #[test]
    fn legacy_plain_digest() {
        use md5::Digest;
        let salt = [7u8; 16];
        let mut h = md5::Md5::new();
        h.update(salt);
        h.update(b"sasldb");
        h.update(b"pw");
        let mut stored = salt.to_vec();
        stored.push(0);
        stored.extend_from_slice(&h.finalize());
        let props: Vec<(&[u8], &[u8])> = vec![(b"cmusaslsecretPLAIN", &stored)];
        assert_eq!(verify(&props, b"pw"), Verdict::Match);
        assert_eq!(verify(&props, b"pX"), Verdict::Mismatch);
        assert_eq!(mechanisms(&props), vec!["PLAIN", "LOGIN"]);
    }

    #[test]
    fn currency_check() {
        let p = policy(true, None);
        let props: Vec<(&[u8], &[u8])> = vec![(b"userPassword", b"pw")];
        assert!(is_current(&p, b"pw", &props));
        assert!(!is_current(&p, b"pw2", &props));
        let with_legacy: Vec<(&[u8], &[u8])> =
            vec![(b"cmusaslsecretPLAIN", b"x"), (b"userPassword", b"pw")];
        assert!(!is_current(&p, b"pw", &with_legacy));
    }
}
