//! PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd` in one message.

use crate::store::Account;

use super::{AuthError, Authenticated, Credentials, Mechanism, ServerConfig, Step};

/// RFC 4616 asks servers to take at least 255 octets per field; Cyrus's
/// buffers and Postfix's response limit are far above this bound.
const MAX_MESSAGE: usize = 8192;

pub struct Plain {
    config: ServerConfig,
    attempted: Option<Account>,
}

impl Plain {
    pub fn new(config: ServerConfig) -> Plain {
        Plain {
            config,
            attempted: None,
        }
    }

    fn check(&mut self, msg: &[u8], creds: &dyn Credentials) -> Result<Authenticated, AuthError> {
        if msg.len() > MAX_MESSAGE {
            return Err(AuthError::TooLong);
        }
        let fields: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
        let [authzid, authcid, password] = fields.as_slice() else {
            return Err(AuthError::Malformed(
                "PLAIN needs exactly three NUL-separated fields",
            ));
        };
        if authcid.is_empty() {
            return Err(AuthError::Malformed("empty authentication identity"));
        }
        if password.is_empty() {
            return Err(AuthError::Malformed("empty password"));
        }
        let account = self.config.account(authcid)?;
        self.attempted = Some(account.clone());
        self.config.check_plain(creds, &account, password)?;
        let authzid = self.config.authorize(&account, authzid)?;
        Ok(Authenticated { account, authzid })
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        "PLAIN"
    }

    fn attempted(&self) -> Option<&Account> {
        self.attempted.as_ref()
    }

    fn start(&mut self, initial: Option<&[u8]>, creds: &dyn Credentials) -> Step {
        match initial {
            // No initial response: ask for it with an empty challenge.
            None => Step::Challenge(Vec::new()),
            Some(msg) => self.step(msg, creds),
        }
    }

    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step {
        match self.check(response, creds) {
            Ok(a) => Step::Success(a, None),
            Err(e) => Step::Failure(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Table, config};
    use super::*;
    use crate::store::Account;

    fn run(msg: &[u8]) -> Step {
        let creds = Table::with_password("tim", "example.org", "tanstaaftanstaaf");
        Plain::new(config()).start(Some(msg), &creds)
    }

    #[test]
    fn rfc4616_examples() {
        assert_eq!(
            run(b"\0tim\0tanstaaftanstaaf"),
            Step::Success(
                Authenticated {
                    account: Account::new("tim", "example.org"),
                    authzid: None
                },
                None
            )
        );
        // Kurt may not act as Ursel without proxy authorisation.
        let mut creds = Table::with_password("Kurt", "example.org", "xipj3plmq");
        creds.0.insert(
            Account::new("tim", "example.org"),
            super::super::Secrets::default(),
        );
        assert_eq!(
            Plain::new(config()).start(Some(b"Ursel\0Kurt\0xipj3plmq"), &creds),
            Step::Failure(AuthError::AuthzDenied)
        );
        let mut c = config();
        c.allow_proxy = true;
        assert!(matches!(
            Plain::new(c).start(Some(b"Ursel\0Kurt\0xipj3plmq"), &creds),
            Step::Success(Authenticated { authzid: Some(z), .. }, None) if z == b"Ursel"
        ));
    }

    #[test]
    fn authzid_equal_to_authcid_is_fine() {
        assert!(matches!(
            run(b"tim\0tim\0tanstaaftanstaaf"),
            Step::Success(..)
        ));
        assert!(matches!(
            run(b"tim@example.org\0tim\0tanstaaftanstaaf"),
            Step::Success(..)
        ));
        assert!(matches!(
            run(b"\0tim@example.org\0tanstaaftanstaaf"),
            Step::Success(..)
        ));
    }

    #[test]
    fn malformed_and_wrong() {
        for (msg, err) in [
            (&b"tim\0tanstaaftanstaaf"[..], "three"),
            (b"\0tim\0tanstaaftanstaaf\0", "three"),
            (b"\0\0pw", "empty authentication"),
            (b"\0tim\0", "empty password"),
        ] {
            match run(msg) {
                Step::Failure(AuthError::Malformed(why)) => assert!(why.contains(err), "{why}"),
                other => panic!("{msg:?}: {other:?}"),
            }
        }
        assert_eq!(
            run(b"\0tim\0wrong"),
            Step::Failure(AuthError::BadCredentials)
        );
        assert_eq!(
            run(b"\0nobody\0x"),
            Step::Failure(AuthError::BadCredentials)
        );
        assert_eq!(run(&vec![b'a'; 9000]), Step::Failure(AuthError::TooLong));
        assert_eq!(
            Plain::new(config()).start(None, &Table::default()),
            Step::Challenge(vec![])
        );
    }
}
