//! Accounts: who a user id names, by Cyrus's rules.

use std::fmt;

use super::{StoreError, key};

/// One account: an authentication id in a realm. Bytes, not strings: Cyrus
/// stores whatever the C strings held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    pub authid: Vec<u8>,
    pub realm: Vec<u8>,
}

impl Account {
    pub fn new(authid: impl Into<Vec<u8>>, realm: impl Into<Vec<u8>>) -> Self {
        Account {
            authid: authid.into(),
            realm: realm.into(),
        }
    }

    /// The account a user id names, by Cyrus's rules, the one
    /// normalisation used both when an account is created and when it logs
    /// in: split at the first `@` (what follows is the realm, even when
    /// empty); without `@`, `realm` if given and non-empty, else
    /// `default()`. Nothing else changes: case and whitespace are kept.
    pub fn resolve<E>(
        userid: &[u8],
        realm: Option<&[u8]>,
        default: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Account, E> {
        if let Some(at) = userid.iter().position(|&b| b == b'@') {
            return Ok(Account::new(&userid[..at], &userid[at + 1..]));
        }
        let realm = match realm {
            Some(r) if !r.is_empty() => r.to_vec(),
            _ => default()?,
        };
        Ok(Account::new(userid, realm))
    }

    /// Key for one property, or the reason it cannot exist.
    pub fn key(&self, property: &str) -> Result<Vec<u8>, StoreError> {
        key::encode(&self.authid, &self.realm, property.as_bytes()).map_err(|e| match e {
            key::KeyError::Nul => StoreError::Nul {
                account: self.clone(),
            },
            key::KeyError::TooLong(len) => StoreError::KeyTooLong {
                account: self.clone(),
                property: property.to_string(),
                len,
            },
        })
    }
}

/// `user@realm`, lossy for display only; the listing prints raw bytes.
impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            String::from_utf8_lossy(&self.authid),
            String::from_utf8_lossy(&self.realm)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user: &str, dom: Option<&str>) -> (String, String) {
        let a = Account::resolve(user.as_bytes(), dom.map(str::as_bytes), || {
            Ok::<_, ()>(b"vm".to_vec())
        })
        .unwrap();
        (
            String::from_utf8(a.authid).unwrap(),
            String::from_utf8(a.realm).unwrap(),
        )
    }

    #[test]
    fn cyrus_realm_rules() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(r("dave", Some("Example.COM")), s("dave", "Example.COM"));
        assert_eq!(r("erin@Other.Org", None), s("erin", "Other.Org"));
        assert_eq!(
            r("frank@real.example", Some("ignored")),
            s("frank", "real.example")
        );
        assert_eq!(r("gina@a@b", None), s("gina", "a@b"));
        assert_eq!(r("hank@", None), s("hank", ""));
        assert_eq!(r("@onlyrealm", None), s("", "onlyrealm"));
        assert_eq!(r("ivan", Some("")), s("ivan", "vm"));
        assert_eq!(r("", None), s("", "vm"));
    }
}
