//! The saslauthd protocol (Cyrus `pwcheck_method: saslauthd`), server
//! side, sans I/O. One request per connection: four counted strings
//! (2-byte big-endian length, bytes) — login, password, service, realm;
//! one counted reply starting `OK` or `NO`.

use crate::mech::{Credentials, ServerConfig};
use crate::store::Account;

/// saslauthd's per-field bound.
pub const MAX_FIELD: usize = 256;

#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub login: Vec<u8>,
    pub password: Vec<u8>,
    pub service: Vec<u8>,
    pub realm: Vec<u8>,
}

// Never shows the password.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("login", &String::from_utf8_lossy(&self.login))
            .field("service", &String::from_utf8_lossy(&self.service))
            .field("realm", &String::from_utf8_lossy(&self.realm))
            .finish_non_exhaustive()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// Progress of parsing a request from the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// Need more bytes.
    Incomplete,
    Done(Request),
    /// A field over [`MAX_FIELD`]: answer `NO ` and close, as saslauthd.
    TooLong,
}

/// Parse a request from a buffer.
pub fn parse(buf: &[u8]) -> Parse {
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(4);
    let mut i = 0;
    while fields.len() < 4 {
        let Some(len) = buf.get(i..i + 2) else {
            return Parse::Incomplete;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > MAX_FIELD {
            return Parse::TooLong;
        }
        let Some(field) = buf.get(i + 2..i + 2 + len) else {
            return Parse::Incomplete;
        };
        fields.push(field.to_vec());
        i += 2 + len;
    }
    let realm = fields.pop().unwrap_or_default();
    let service = fields.pop().unwrap_or_default();
    let password = fields.pop().unwrap_or_default();
    let login = fields.pop().unwrap_or_default();
    Parse::Done(Request {
        login,
        password,
        service,
        realm,
    })
}

/// A counted reply.
pub fn encode_reply(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&bytes[..usize::from(len)]);
    out
}

/// The account a request names: the request's realm when given (the
/// login then used verbatim, as saslauthd's sasldb module does); else the
/// login resolved like any other (`user@realm`, or the default realm).
pub fn account(req: &Request, server: &ServerConfig) -> Account {
    if req.realm.is_empty() {
        Account::resolve(&req.login, Some(&server.realm), || {
            Ok::<_, ()>(server.realm.clone())
        })
        .unwrap_or_else(|()| Account::new(req.login.clone(), server.realm.clone()))
    } else {
        Account::new(req.login.clone(), req.realm.clone())
    }
}

/// Answer a request: `OK`, `NO`, or saslauthd's texts for empty fields.
/// Returns the reply text and the account checked (for logging).
pub fn answer(
    req: &Request,
    server: &ServerConfig,
    creds: &dyn Credentials,
) -> (&'static str, Option<Account>) {
    if req.login.is_empty() {
        return ("NO NULL login received", None);
    }
    if req.password.is_empty() {
        return ("NO NULL password received", None);
    }
    let acct = account(req, server);
    // The rule PLAIN and LOGIN follow (`secret::check`): a failure costs
    // the same whether the account exists or not.
    let ok = server.check_plain(creds, &acct, &req.password).is_ok();
    (if ok { "OK" } else { "NO" }, Some(acct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::Secrets;
    use crate::store::StoreError;

    struct One;
    impl Credentials for One {
        fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
            Ok((a.authid == b"tim").then(|| Secrets {
                user_password: Some(b"pencil".to_vec()),
                ..Secrets::default()
            }))
        }
    }

    fn req(login: &str, pw: &str, service: &str, realm: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for f in [login, pw, service, realm] {
            b.extend_from_slice(&(f.len() as u16).to_be_bytes());
            b.extend_from_slice(f.as_bytes());
        }
        b
    }

    #[test]
    fn testsaslauthd_bytes() {
        // What `testsaslauthd -u tim -p pencil` sends (transcript G).
        let bytes = [
            0, 3, b't', b'i', b'm', 0, 6, b'p', b'e', b'n', b'c', b'i', b'l', 0, 4, b'i', b'm',
            b'a', b'p', 0, 0,
        ];
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Parse::Incomplete, "{cut}");
        }
        let Parse::Done(r) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(
            (r.login.as_slice(), r.realm.as_slice()),
            (&b"tim"[..], &b""[..])
        );
        assert_eq!(encode_reply("OK"), vec![0, 2, b'O', b'K']);
    }

    #[test]
    fn answers() {
        let server = ServerConfig::new("smtp", "mx", b"example.org").unwrap();
        let run = |b: Vec<u8>| match parse(&b) {
            Parse::Done(r) => answer(&r, &server, &One).0,
            other => panic!("{other:?}"),
        };
        assert_eq!(run(req("tim", "pencil", "smtp", "")), "OK");
        assert_eq!(run(req("tim", "pencil", "smtp", "any.realm")), "OK");
        assert_eq!(run(req("tim", "wrong", "smtp", "")), "NO");
        assert_eq!(run(req("nouser", "pencil", "smtp", "")), "NO");
        assert_eq!(run(req("", "pencil", "smtp", "")), "NO NULL login received");
        assert_eq!(run(req("tim", "", "smtp", "")), "NO NULL password received");
        assert_eq!(parse(&req(&"x".repeat(257), "p", "s", "")), Parse::TooLong);
        let r = match parse(&req("tim@other.org", "pencil", "smtp", "")) {
            Parse::Done(r) => r,
            _ => panic!(),
        };
        assert_eq!(account(&r, &server), Account::new("tim", "other.org"));
    }
}
