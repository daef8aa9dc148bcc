//! Which account a user id names, by Cyrus's rules.
//!
//! The user id is split at the first `@`: what follows is the realm and
//! overrides `-u` (even when empty: `hank@` is realm ``). Without `@` the
//! realm is `-u DOM` verbatim, or, when that is missing or empty, the host
//! name from `gethostname()` lower-cased (no DNS canonicalisation). The
//! rule itself is [`Account::resolve`], shared with the login side.

use std::io;

use crate::store::Account;

/// `gethostname()` lower-cased, as libsasl lower-cases the server FQDN.
pub fn default_realm() -> io::Result<Vec<u8>> {
    let name = nix::unistd::gethostname().map_err(io::Error::from)?;
    let mut bytes = name.into_encoded_bytes();
    bytes.make_ascii_lowercase();
    Ok(bytes)
}

/// Resolve a user id against `-u` and the default realm (see
/// [`Account::resolve`]); the default is only computed when needed.
pub fn resolve(
    userid: &[u8],
    domain: Option<&[u8]>,
    default: impl FnOnce() -> io::Result<Vec<u8>>,
) -> io::Result<Account> {
    Account::resolve(userid, domain, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user: &str, dom: Option<&str>) -> (String, String) {
        let a = resolve(user.as_bytes(), dom.map(str::as_bytes), || {
            Ok(b"vm".to_vec())
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

    #[test]
    fn host_name_is_lower_cased() {
        let h = default_realm().unwrap();
        assert!(!h.iter().any(u8::is_ascii_uppercase));
    }
}
