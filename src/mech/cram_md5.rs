//! CRAM-MD5 (RFC 2195): the server sends `<random.time@host>`, the client
//! answers `user SP hex(HMAC-MD5(password, challenge))`. Needs the cleartext
//! `userPassword`.

use hmac::{KeyInit, Mac};

use super::{AuthError, Authenticated, Credentials, Mechanism, ServerConfig, Step, ct_eq, hex};
use crate::secret::{ScramHash, random_bytes};
use crate::store::Account;

/// Cyrus refuses longer responses.
const MAX_RESPONSE: usize = 1024;

pub struct CramMd5 {
    config: ServerConfig,
    challenge: Option<Vec<u8>>,
    attempted: Option<Account>,
}

pub(crate) fn hmac_md5(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

impl CramMd5 {
    pub fn new(config: ServerConfig) -> CramMd5 {
        CramMd5 {
            config,
            challenge: None,
            attempted: None,
        }
    }

    /// Start with a given challenge (tests and RFC vectors).
    pub fn with_challenge(config: ServerConfig, challenge: &[u8]) -> CramMd5 {
        CramMd5 {
            config,
            challenge: Some(challenge.to_vec()),
            attempted: None,
        }
    }

    fn check(
        &mut self,
        challenge: &[u8],
        response: &[u8],
        creds: &dyn Credentials,
    ) -> Result<Authenticated, AuthError> {
        if response.len() > MAX_RESPONSE {
            return Err(AuthError::TooLong);
        }
        let space = response
            .iter()
            .rposition(|&b| b == b' ')
            .ok_or(AuthError::Malformed("expected `user digest`"))?;
        let (user, digest) = (&response[..space], &response[space + 1..]);
        if digest.len() != 32
            || !digest
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(AuthError::Malformed(
                "digest is not 32 lower-case hex digits",
            ));
        }
        let account = self.config.account(user)?;
        self.attempted = Some(account.clone());
        let secrets = self.config.lookup(creds, &account)?;
        let cost = self.config.failure_cost(ScramHash::Sha256);
        self.config
            .check_account(creds, &account, secrets, cost, true, |s| {
                let key = s.cleartext()?;
                ct_eq(hex(&hmac_md5(key, challenge)).as_bytes(), digest).then_some(())
            })?;
        Ok(Authenticated {
            account,
            authzid: None,
        })
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &'static str {
        "CRAM-MD5"
    }

    fn attempted(&self) -> Option<&Account> {
        self.attempted.as_ref()
    }

    fn start(&mut self, initial: Option<&[u8]>, _creds: &dyn Credentials) -> Step {
        if initial.is_some_and(|i| !i.is_empty()) {
            return Step::Failure(AuthError::Malformed("CRAM-MD5 takes no initial response"));
        }
        if self.challenge.is_none() {
            let r = match random_bytes::<8>() {
                Ok(r) => u64::from_ne_bytes(r),
                Err(e) => return Step::Failure(AuthError::Temporary(e.to_string())),
            };
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            self.challenge = Some(format!("<{r}.{t}@{}>", self.config.hostname).into_bytes());
        }
        Step::Challenge(self.challenge.clone().unwrap_or_default())
    }

    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step {
        let Some(challenge) = self.challenge.take() else {
            return Step::Failure(AuthError::Protocol("exchange already finished"));
        };
        match self.check(&challenge, response, creds) {
            Ok(a) => Step::Success(a, None),
            Err(e) => Step::Failure(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Table, config};
    use super::*;

    const CHALLENGE: &[u8] = b"<1896.697170952@postoffice.reston.mci.net>";

    #[test]
    fn rfc2195_vector() {
        assert_eq!(
            hex(&hmac_md5(b"tanstaaftanstaaf", CHALLENGE)),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let creds = Table::with_password("tim", "example.org", "tanstaaftanstaaf");
        let mut m = CramMd5::with_challenge(config(), CHALLENGE);
        assert_eq!(m.start(None, &creds), Step::Challenge(CHALLENGE.to_vec()));
        assert!(matches!(
            m.step(b"tim b913a602c7eda7a495b4e6e7334d3890", &creds),
            Step::Success(..)
        ));
    }

    #[test]
    fn fresh_challenges_name_the_host_and_differ() {
        let creds = Table::default();
        let a = CramMd5::new(config()).start(None, &creds);
        let b = CramMd5::new(config()).start(None, &creds);
        let Step::Challenge(a) = a else { panic!() };
        let Step::Challenge(b) = b else { panic!() };
        assert_ne!(a, b);
        assert!(a.starts_with(b"<") && a.ends_with(b"@mx.example.org>"));
    }

    #[test]
    fn malformed_and_wrong() {
        let creds = Table::with_password("tim", "example.org", "tanstaaftanstaaf");
        let run = |resp: &[u8]| CramMd5::with_challenge(config(), CHALLENGE).step(resp, &creds);
        assert_eq!(
            run(b"tim b913a602c7eda7a495b4e6e7334d3891"),
            Step::Failure(AuthError::BadCredentials)
        );
        assert_eq!(
            run(b"bob b913a602c7eda7a495b4e6e7334d3890"),
            Step::Failure(AuthError::BadCredentials)
        );
        assert!(matches!(
            run(b"tim B913A602C7EDA7A495B4E6E7334D3890"),
            Step::Failure(AuthError::Malformed(_))
        ));
        assert!(matches!(
            run(b"timb913a602c7eda7a495b4e6e7334d3890"),
            Step::Failure(AuthError::Malformed(_))
        ));
        assert!(matches!(
            run(b"tim b913"),
            Step::Failure(AuthError::Malformed(_))
        ));
        assert_eq!(run(&[b'a'; 1025]), Step::Failure(AuthError::TooLong));
        assert!(matches!(
            CramMd5::new(config()).start(Some(b"x"), &creds),
            Step::Failure(AuthError::Malformed(_))
        ));
    }
}
