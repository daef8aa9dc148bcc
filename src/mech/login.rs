//! LOGIN (draft-murchison-sasl-login): `Username:` and `Password:` prompts,
//! as Cyrus and Dovecot send them. An initial response is the user name.

use crate::store::Account;

use super::{AuthError, Authenticated, Credentials, Mechanism, ServerConfig, Step};

/// Cyrus's bound for each of user name and password.
const MAX_FIELD: usize = 1024;

enum State {
    WantUser,
    WantPassword(Vec<u8>),
    Done,
}

pub struct Login {
    config: ServerConfig,
    state: State,
    attempted: Option<Account>,
}

impl Login {
    pub fn new(config: ServerConfig) -> Login {
        Login {
            config,
            state: State::WantUser,
            attempted: None,
        }
    }

    fn got_user(&mut self, user: &[u8]) -> Step {
        if user.len() > MAX_FIELD {
            self.state = State::Done;
            return Step::Failure(AuthError::TooLong);
        }
        // Named from here on: an exchange abandoned at the password prompt
        // is logged with the account it tried.
        self.attempted = self.config.account(user).ok();
        self.state = State::WantPassword(user.to_vec());
        Step::Challenge(b"Password:".to_vec())
    }

    fn got_password(&mut self, user: &[u8], password: &[u8], creds: &dyn Credentials) -> Step {
        if password.len() > MAX_FIELD {
            return Step::Failure(AuthError::TooLong);
        }
        if password.is_empty() {
            return Step::Failure(AuthError::Malformed("empty password"));
        }
        let account = match self.config.account(user) {
            Ok(a) => a,
            Err(e) => return Step::Failure(e),
        };
        self.attempted = Some(account.clone());
        match self.config.check_plain(creds, &account, password) {
            Ok(()) => Step::Success(
                Authenticated {
                    account,
                    authzid: None,
                },
                None,
            ),
            Err(e) => Step::Failure(e),
        }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &'static str {
        "LOGIN"
    }

    fn attempted(&self) -> Option<&Account> {
        self.attempted.as_ref()
    }

    fn start(&mut self, initial: Option<&[u8]>, _creds: &dyn Credentials) -> Step {
        match initial {
            Some(user) if !user.is_empty() => self.got_user(user),
            _ => Step::Challenge(b"Username:".to_vec()),
        }
    }

    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::WantUser => self.got_user(response),
            State::WantPassword(user) => self.got_password(&user, response, creds),
            State::Done => Step::Failure(AuthError::Protocol("exchange already finished")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Table, config};
    use super::*;

    #[test]
    fn with_and_without_initial_response() {
        let creds = Table::with_password("tim", "example.org", "pw");
        let mut m = Login::new(config());
        assert_eq!(
            m.start(None, &creds),
            Step::Challenge(b"Username:".to_vec())
        );
        assert_eq!(
            m.step(b"tim", &creds),
            Step::Challenge(b"Password:".to_vec())
        );
        assert!(matches!(m.step(b"pw", &creds), Step::Success(..)));
        assert!(matches!(
            m.step(b"pw", &creds),
            Step::Failure(AuthError::Protocol(_))
        ));

        let mut m = Login::new(config());
        assert_eq!(
            m.start(Some(b"tim@example.org"), &creds),
            Step::Challenge(b"Password:".to_vec())
        );
        assert_eq!(
            m.step(b"nope", &creds),
            Step::Failure(AuthError::BadCredentials)
        );
    }

    #[test]
    fn bounds() {
        let creds = Table::default();
        let mut m = Login::new(config());
        assert_eq!(
            m.start(Some(&[b'u'; 1025]), &creds),
            Step::Failure(AuthError::TooLong)
        );
        let mut m = Login::new(config());
        m.start(Some(b"u"), &creds);
        assert_eq!(
            m.step(&[b'p'; 1025], &creds),
            Step::Failure(AuthError::TooLong)
        );
        let mut m = Login::new(config());
        m.start(Some(b"u"), &creds);
        assert!(matches!(
            m.step(b"", &creds),
            Step::Failure(AuthError::Malformed(_))
        ));
    }
}
