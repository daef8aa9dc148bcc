//! SCRAM verifiers (RFC 5802, RFC 7677) in Cyrus's `authPassword` format:
//! `<MECH>$<iterations>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{SecretError, random_bytes};

/// Cyrus's salt length for generated secrets.
pub const SALT_LEN: usize = 16;

/// Bounds on a stored iteration count: a verifier asking for more would let
/// a planted value burn CPU on every check.
const MAX_ITERATIONS: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub fn mech_name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_mech_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-1" => Some(ScramHash::Sha1),
            "SCRAM-SHA-256" => Some(ScramHash::Sha256),
            _ => None,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    /// `Hi(password, salt, i)` of RFC 5802: PBKDF2 with HMAC of this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        super::check::count_pbkdf2();
        let mut out = vec![0u8; self.output_len()];
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = <hmac::Hmac<Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// A stored SCRAM secret: enough to run the server side of SCRAM without the
/// password, and to check a plaintext password with one PBKDF2 run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub hash: ScramHash,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramVerifier {
    /// Derive the keys for a known salt (RFC test vectors use this).
    pub fn derive(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = Zeroizing::new(hash.salted_password(password, salt, iterations));
        let client_key = Zeroizing::new(hash.hmac(&salted, b"Client Key"));
        ScramVerifier {
            hash,
            iterations,
            salt: salt.to_vec(),
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// A new verifier with a fresh random salt.
    pub fn generate(
        hash: ScramHash,
        password: &[u8],
        iterations: u32,
    ) -> Result<Self, SecretError> {
        let salt = random_bytes::<SALT_LEN>()?;
        Ok(Self::derive(hash, password, &salt, iterations))
    }

    /// Parse an `authPassword` value.
    pub fn parse(value: &[u8]) -> Result<Self, SecretError> {
        let bad = || SecretError::MalformedVerifier;
        let s = std::str::from_utf8(value).map_err(|_| bad())?;
        let (mech, rest) = s.split_once('$').ok_or_else(bad)?;
        let hash = ScramHash::from_mech_name(mech).ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iter, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iter.parse().map_err(|_| bad())?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(bad());
        }
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let stored_key = B64.decode(stored).map_err(|_| bad())?;
        let server_key = B64.decode(server).map_err(|_| bad())?;
        if salt.is_empty()
            || stored_key.len() != hash.output_len()
            || server_key.len() != hash.output_len()
        {
            return Err(bad());
        }
        Ok(ScramVerifier {
            hash,
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Does `password` produce this verifier's StoredKey? Constant time in
    /// the comparison; the PBKDF2 cost is the same for every password.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let mut other = Self::derive(self.hash, password, &self.salt, self.iterations);
        let ok = bool::from(other.stored_key.ct_eq(&self.stored_key))
            & bool::from(other.server_key.ct_eq(&self.server_key));
        zeroize::Zeroize::zeroize(&mut other.stored_key);
        zeroize::Zeroize::zeroize(&mut other.server_key);
        ok
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}${}:{}${}:{}",
            self.hash.mech_name(),
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 §5 and spec §8.3.
    #[test]
    fn rfc5802_vector() {
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let v = ScramVerifier::derive(ScramHash::Sha1, b"pencil", &salt, 4096);
        assert_eq!(
            v.to_string(),
            "SCRAM-SHA-1$4096:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE="
        );
        let salted = ScramHash::Sha1.salted_password(b"pencil", &salt, 4096);
        let hex: String = salted.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d");
    }

    /// RFC 7677 §3 and spec §8.4.
    #[test]
    fn rfc7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::derive(ScramHash::Sha256, b"pencil", &salt, 4096);
        assert_eq!(
            v.to_string(),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        let back = ScramVerifier::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(back, v);
        assert!(back.verify_password(b"pencil"));
    }

    /// Secrets written by Debian's saslpasswd2 (transcript C), password `pencil`.
    #[test]
    fn cyrus_written_secrets_verify() {
        for s in [
            "SCRAM-SHA-256$8192:dqcMOScMCujbPTJi1UVreg==$HV8wcQyItQqv6X/TIbRTDmVDbDwoXxCQWrFOJ+0QW7o=:61YlUWb8OwfSfNKZPe8o30IJq4IIa0RIXGmDU3e6ALM=",
            "SCRAM-SHA-1$4096:/TwSakzvxJrKGqVEFVqQ/w==$kNjErrLZaoWudQlYhlYsTQ8FjfE=:z8cvuU8pYM6teNfbiuHf1XWVbxA=",
            "SCRAM-SHA-1$4096:Z1sTefLJrImkmB+7yOdXQA==$M8Hotb8GbzRFgUcyDt2WUXuIxdI=:b9od53ZXzdriClmCb5WvGwzZZHI=",
        ] {
            let v = ScramVerifier::parse(s.as_bytes()).unwrap();
            assert!(v.verify_password(b"pencil"), "{s}");
            assert!(!v.verify_password(b"Pencil"), "{s}");
            assert_eq!(v.to_string(), s);
        }
    }

    #[test]
    fn malformed_verifiers() {
        for s in [
            "",
            "SCRAM-SHA-1",
            "SCRAM-MD5$4096:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
            "SCRAM-SHA-1$0:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
            "SCRAM-SHA-1$x:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
            "SCRAM-SHA-1$4096:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=",
            "SCRAM-SHA-256$4096:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
            "SCRAM-SHA-1$4096:!!$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
            "SCRAM-SHA-1$99999999:QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
        ] {
            assert_eq!(
                ScramVerifier::parse(s.as_bytes()),
                Err(SecretError::MalformedVerifier),
                "{s}"
            );
        }
    }
}
