//! DIGEST-MD5 (RFC 2831), authentication only (`qop=auth`): the server
//! offers realm and nonce, checks the client's response (nonce, nonce count,
//! digest-uri against service and host) and proves itself with `rspauth`.
//! Needs the cleartext `userPassword`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::{AuthError, Authenticated, Credentials, Mechanism, ServerConfig, Step, ct_eq, hex};
use crate::secret::{ScramHash, random_bytes};
use crate::store::Account;

/// RFC 2831 bounds the client's response at 4096 bytes.
const MAX_RESPONSE: usize = 4096;

enum State {
    Start,
    /// Challenge sent with this nonce.
    Sent(String),
    /// rspauth sent; waiting for the client's empty acknowledgement.
    Verified(Authenticated),
    Done,
}

pub struct DigestMd5 {
    config: ServerConfig,
    state: State,
    fixed_nonce: Option<String>,
    attempted: Option<Account>,
}

/// One parsed `key=value` list.
pub(crate) fn parse_directives(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, AuthError> {
    let bad = AuthError::Malformed;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let n = input.len();
    let skip_lws = |i: &mut usize| {
        while *i < n && matches!(input[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        skip_lws(&mut i);
        while i < n && input[i] == b',' {
            i += 1;
            skip_lws(&mut i);
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && (input[i].is_ascii_alphanumeric() || input[i] == b'-' || input[i] == b'_') {
            i += 1;
        }
        if i == start {
            return Err(bad("directive name expected"));
        }
        let key = String::from_utf8_lossy(&input[start..i]).to_ascii_lowercase();
        skip_lws(&mut i);
        if i >= n || input[i] != b'=' {
            return Err(bad("`=` expected after directive name"));
        }
        i += 1;
        skip_lws(&mut i);
        let mut value = Vec::new();
        if i < n && input[i] == b'"' {
            i += 1;
            loop {
                match input.get(i) {
                    None => return Err(bad("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *input.get(i + 1).ok_or(bad("unterminated quoted string"))?;
                        value.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < n && !matches!(input[i], b',' | b' ' | b'\t' | b'\r' | b'\n') {
                value.push(input[i]);
                i += 1;
            }
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad("directive given twice"));
        }
        out.push((key, value));
        skip_lws(&mut i);
        if i < n && input[i] != b',' {
            return Err(bad("`,` expected between directives"));
        }
    }
    Ok(out)
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 2831 §2.1.2.1 response value and rspauth for given inputs.
/// `user_realm_pass` is the user, realm and password as hashed (after any
/// charset conversion).
#[allow(clippy::too_many_arguments)]
pub fn response_values(
    user: &[u8],
    realm: &[u8],
    password: &[u8],
    nonce: &[u8],
    cnonce: &[u8],
    nc: &[u8],
    qop: &[u8],
    digest_uri: &[u8],
    authzid: Option<&[u8]>,
) -> (String, String) {
    // H(user:realm:password) and what derives from it are password
    // equivalents: wiped when dropped.
    let mut a1 = Zeroizing::new(md5(&[user, b":", realm, b":", password]).to_vec());
    a1.extend_from_slice(b":");
    a1.extend_from_slice(nonce);
    a1.extend_from_slice(b":");
    a1.extend_from_slice(cnonce);
    if let Some(z) = authzid {
        a1.extend_from_slice(b":");
        a1.extend_from_slice(z);
    }
    let ha1 = Zeroizing::new(hex(&md5(&[&a1])));
    let kd = |a2: &[u8]| {
        let ha2 = hex(&md5(&[a2]));
        hex(&md5(&[
            ha1.as_bytes(),
            b":",
            nonce,
            b":",
            nc,
            b":",
            cnonce,
            b":",
            qop,
            b":",
            ha2.as_bytes(),
        ]))
    };
    let mut a2 = b"AUTHENTICATE:".to_vec();
    a2.extend_from_slice(digest_uri);
    let mut a2s = b":".to_vec();
    a2s.extend_from_slice(digest_uri);
    (kd(&a2), kd(&a2s))
}

/// UTF-8 to ISO 8859-1 when every character fits, as RFC 2831 requires
/// before hashing with `charset=utf-8`.
fn to_latin1(bytes: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(bytes).ok()?;
    if s.is_ascii() {
        return None; // identical either way
    }
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

impl DigestMd5 {
    pub fn new(config: ServerConfig) -> DigestMd5 {
        DigestMd5 {
            config,
            state: State::Start,
            fixed_nonce: None,
            attempted: None,
        }
    }

    /// Use a given nonce (tests and RFC vectors).
    pub fn with_nonce(config: ServerConfig, nonce: &str) -> DigestMd5 {
        DigestMd5 {
            fixed_nonce: Some(nonce.to_string()),
            ..DigestMd5::new(config)
        }
    }

    fn challenge(&mut self) -> Step {
        let nonce = match self.fixed_nonce.take() {
            Some(n) => n,
            None => match random_bytes::<24>() {
                Ok(r) => B64.encode(r),
                Err(e) => return Step::Failure(AuthError::Temporary(e.to_string())),
            },
        };
        let realm = self.offered_realm();
        let text = format!(
            "realm=\"{realm}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
        );
        self.state = State::Sent(nonce);
        Step::Challenge(text.into_bytes())
    }

    fn host_ok(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        std::iter::once(&self.config.hostname)
            .chain(self.config.host_aliases.iter())
            .any(|h| h.to_ascii_lowercase() == host)
    }

    /// Whose password to check, as Cyrus decides it: with the realm we
    /// offered (or none, or an empty one) the user name follows the usual
    /// rule (split at `@`, else the default realm), so swaks's
    /// `alice@example.org` with realm `example.org` is alice in
    /// example.org; any other realm is appended first, so `alice` with
    /// realm `other.org` is alice in other.org.
    fn account(&self, username: &[u8], realm: Option<&[u8]>) -> Result<Account, AuthError> {
        match realm {
            Some(r) if !r.is_empty() && r != self.offered_realm().as_bytes() => {
                if username.is_empty() {
                    return Err(AuthError::Malformed("empty user name"));
                }
                let mut full = username.to_vec();
                full.push(b'@');
                full.extend_from_slice(r);
                self.config.account(&full)
            }
            _ => self.config.account(username),
        }
    }

    /// The realm as the challenge quotes it.
    fn offered_realm(&self) -> String {
        String::from_utf8_lossy(&self.config.realm).replace(['\\', '"'], "")
    }

    fn verify(
        &mut self,
        nonce: &str,
        response: &[u8],
        creds: &dyn Credentials,
    ) -> Result<(Authenticated, String), AuthError> {
        if response.len() > MAX_RESPONSE {
            return Err(AuthError::TooLong);
        }
        let d = parse_directives(response)?;
        let get = |k: &str| {
            d.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_slice())
        };
        let need = |k: &'static str| get(k).ok_or(AuthError::Malformed(k));
        let username = need("username")?;
        let got_nonce = need("nonce")?;
        let cnonce = need("cnonce")?;
        let nc = need("nc")?;
        let digest_uri = need("digest-uri")?;
        let response_hex = need("response")?;
        let qop = get("qop").unwrap_or(b"auth");
        if qop != b"auth" {
            return Err(AuthError::Malformed("only qop=auth is offered"));
        }
        if !ct_eq(got_nonce, nonce.as_bytes()) {
            return Err(AuthError::Malformed("nonce does not match the challenge"));
        }
        if cnonce.is_empty() {
            return Err(AuthError::Malformed("empty cnonce"));
        }
        let nc_ok = nc.len() == 8
            && std::str::from_utf8(nc)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                == Some(1);
        if !nc_ok {
            return Err(AuthError::Malformed("nonce count must be 00000001"));
        }
        if response_hex.len() != 32 {
            return Err(AuthError::Malformed("response is not 32 hex digits"));
        }
        let uri = String::from_utf8_lossy(digest_uri);
        let mut parts = uri.splitn(3, '/');
        let (serv, host) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        // Cyrus checks the service part only (curl sends `smtp/<realm>`);
        // the host part is checked when configured.
        if !serv.eq_ignore_ascii_case(&self.config.service) {
            return Err(AuthError::Malformed(
                "digest-uri does not name this service",
            ));
        }
        if self.config.digest_strict_host && !self.host_ok(host) {
            return Err(AuthError::Malformed("digest-uri does not name this host"));
        }
        // A1 hashes the realm directive as sent; a missing one counts as
        // the empty string (RFC 2831bis), never as the realm we offered.
        let realm = get("realm").map(<[u8]>::to_vec).unwrap_or_default();
        let authzid = get("authzid");
        let utf8 = get("charset").is_some_and(|c| c.eq_ignore_ascii_case(b"utf-8"));
        let account = self.account(username, get("realm"))?;
        self.attempted = Some(account.clone());
        let secrets = self.config.lookup(creds, &account)?;
        let expected = response_hex.to_ascii_lowercase();
        let cost = self.config.failure_cost(ScramHash::Sha256);
        let rspauth = self
            .config
            .check_account(creds, &account, secrets, cost, true, |s| {
                let password = s.cleartext()?;
                let attempt = |user: &[u8], pass: &[u8]| {
                    let (response, rspauth) = response_values(
                        user, &realm, pass, got_nonce, cnonce, nc, qop, digest_uri, authzid,
                    );
                    ct_eq(response.as_bytes(), &expected).then_some(rspauth)
                };
                attempt(username, password).or_else(|| {
                    if !utf8 {
                        return None;
                    }
                    // Clients convert to ISO 8859-1 when every character fits.
                    let u = to_latin1(username).unwrap_or_else(|| username.to_vec());
                    let p =
                        Zeroizing::new(to_latin1(password).unwrap_or_else(|| password.to_vec()));
                    attempt(&u, &p)
                })
            })?;
        let authzid = match authzid {
            Some(z) => self.config.authorize(&account, z)?,
            None => None,
        };
        Ok((Authenticated { account, authzid }, rspauth))
    }
}

impl Mechanism for DigestMd5 {
    fn name(&self) -> &'static str {
        "DIGEST-MD5"
    }

    fn attempted(&self) -> Option<&Account> {
        self.attempted.as_ref()
    }

    fn start(&mut self, initial: Option<&[u8]>, _creds: &dyn Credentials) -> Step {
        if initial.is_some_and(|i| !i.is_empty()) {
            // Subsequent authentication is not offered (no reauth cache).
            self.state = State::Done;
            return Step::Failure(AuthError::Malformed("DIGEST-MD5 takes no initial response"));
        }
        self.challenge()
    }

    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Sent(nonce) => match self.verify(&nonce, response, creds) {
                Ok((auth, rspauth)) => {
                    self.state = State::Verified(auth);
                    Step::Challenge(format!("rspauth={rspauth}").into_bytes())
                }
                Err(e) => Step::Failure(e),
            },
            State::Verified(auth) => Step::Success(auth, None),
            State::Start | State::Done => {
                Step::Failure(AuthError::Protocol("exchange already finished"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Table, config};
    use super::*;

    #[test]
    fn rfc2831_vectors() {
        let (r, s) = response_values(
            b"chris",
            b"elwood.innosoft.com",
            b"secret",
            b"OA6MG9tEQGm2hh",
            b"OA6MHXh6VqTrRk",
            b"00000001",
            b"auth",
            b"imap/elwood.innosoft.com",
            None,
        );
        assert_eq!(r, "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(s, "ea40f60335c427b5527b84dbabcdfffd");
        let (r, s) = response_values(
            b"chris",
            b"elwood.innosoft.com",
            b"secret",
            b"OA9BSXrbuRhWay",
            b"OA9BSuZWMSpW8m",
            b"00000001",
            b"auth",
            b"acap/elwood.innosoft.com",
            None,
        );
        assert_eq!(r, "6084c6db3fede7352c551284490fd0fc");
        assert_eq!(s, "2f0b3d7c3c2e486600ef710726aa2eae");
    }

    fn imap_config() -> ServerConfig {
        let mut c = config();
        c.service = "imap".into();
        c.hostname = "elwood.innosoft.com".into();
        c.realm = b"elwood.innosoft.com".to_vec();
        c
    }

    #[test]
    fn full_exchange_with_the_rfc_example() {
        let creds = Table::with_password("chris", "elwood.innosoft.com", "secret");
        let mut m = DigestMd5::with_nonce(imap_config(), "OA6MG9tEQGm2hh");
        let Step::Challenge(c) = m.start(None, &creds) else {
            panic!()
        };
        let c = String::from_utf8(c).unwrap();
        assert!(
            c.contains("nonce=\"OA6MG9tEQGm2hh\"") && c.contains("qop=\"auth\""),
            "{c}"
        );
        let resp = b"charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth";
        assert_eq!(
            m.step(resp, &creds),
            Step::Challenge(b"rspauth=ea40f60335c427b5527b84dbabcdfffd".to_vec())
        );
        assert!(matches!(m.step(b"", &creds), Step::Success(..)));
    }

    #[test]
    fn malformed_table() {
        let creds = Table::with_password("chris", "elwood.innosoft.com", "secret");
        let good = "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth";
        let cases: Vec<(String, &str)> = vec![
            (good.replace("OA6MG9tEQGm2hh", "OTHERNONCE"), "nonce"),
            (good.replace("nc=00000001", "nc=00000002"), "nonce count"),
            (good.replace("imap/elwood", "smtp/elwood"), "digest-uri"),
            (good.replace("qop=auth", "qop=auth-conf"), "qop"),
            (good.replace(",cnonce=\"OA6MHXh6VqTrRk\"", ""), "cnonce"),
            (format!("{good},username=\"x\""), "twice"),
            (format!("{good},authzid=\"chris"), "unterminated"),
            (
                good.replace("response=d388dad90d4bbd760a152321f2143af7", "response=d388"),
                "32 hex",
            ),
            ("garbage".to_string(), "="),
        ];
        for (resp, why) in cases {
            let mut m = DigestMd5::with_nonce(imap_config(), "OA6MG9tEQGm2hh");
            m.start(None, &creds);
            match m.step(resp.as_bytes(), &creds) {
                Step::Failure(AuthError::Malformed(w)) => assert!(w.contains(why), "{resp}: {w}"),
                other => panic!("{resp}: {other:?}"),
            }
        }
        let mut m = DigestMd5::with_nonce(imap_config(), "OA6MG9tEQGm2hh");
        m.start(None, &creds);
        let wrong = good.replace(
            "d388dad90d4bbd760a152321f2143af7",
            "d388dad90d4bbd760a152321f2143af8",
        );
        assert_eq!(
            m.step(wrong.as_bytes(), &creds),
            Step::Failure(AuthError::BadCredentials)
        );
        let mut m = DigestMd5::new(imap_config());
        assert!(matches!(m.start(Some(b"x"), &creds), Step::Failure(_)));
    }

    /// curl sends `digest-uri="smtp/<realm>"`: like Cyrus, only the service
    /// part is checked unless the strict host check is on.
    #[test]
    fn digest_uri_host_checked_only_when_strict() {
        let creds = Table::with_password("chris", "elwood.innosoft.com", "secret");
        let run = |strict: bool, uri: &str| {
            let mut cfg = imap_config();
            cfg.digest_strict_host = strict;
            exchange(cfg, "chris", None, uri, &creds)
        };
        let ok = |s: Step| matches!(s, Step::Challenge(c) if c.starts_with(b"rspauth="));
        assert!(ok(run(false, "imap/some.realm.example")));
        assert!(ok(run(true, "imap/elwood.innosoft.com")));
        assert_eq!(
            run(true, "imap/some.realm.example"),
            Step::Failure(AuthError::Malformed("digest-uri does not name this host"))
        );
        assert_eq!(
            run(false, "smtp/elwood.innosoft.com"),
            Step::Failure(AuthError::Malformed(
                "digest-uri does not name this service"
            ))
        );
    }

    /// One exchange where the client hashes `user`/`realm` as it sends
    /// them (a missing realm directive hashes as ""); which account the
    /// server checks is the point.
    fn login_as(user: &str, realm: Option<&str>, creds: &Table) -> Step {
        exchange(
            imap_config(),
            user,
            realm,
            "imap/elwood.innosoft.com",
            creds,
        )
    }

    fn exchange(
        cfg: ServerConfig,
        user: &str,
        realm: Option<&str>,
        uri: &str,
        creds: &Table,
    ) -> Step {
        let mut m = DigestMd5::with_nonce(cfg, "N1");
        m.start(None, creds);
        let (resp, _) = response_values(
            user.as_bytes(),
            realm.unwrap_or("").as_bytes(),
            b"secret",
            b"N1",
            b"C1",
            b"00000001",
            b"auth",
            uri.as_bytes(),
            None,
        );
        let realm = realm.map(|r| format!(",realm=\"{r}\"")).unwrap_or_default();
        let msg = format!(
            "username=\"{user}\"{realm},nonce=\"N1\",cnonce=\"C1\",nc=00000001,\
             qop=auth,digest-uri=\"{uri}\",response={resp}"
        );
        m.step(msg.as_bytes(), creds)
    }

    #[test]
    fn which_account_a_response_names() {
        let mut creds = Table::with_password("chris", "elwood.innosoft.com", "secret");
        let other = Table::with_password("chris", "other.example", "secret");
        creds.0.extend(other.0);
        let ok = |s: Step| matches!(s, Step::Challenge(c) if c.starts_with(b"rspauth="));
        // swaks -au chris@elwood.innosoft.com: realm offered, @ in the name.
        assert!(ok(login_as(
            "chris@elwood.innosoft.com",
            Some("elwood.innosoft.com"),
            &creds
        )));
        assert!(ok(login_as("chris", Some("elwood.innosoft.com"), &creds)));
        // A realm other than the offered one is the account's realm.
        assert!(ok(login_as("chris", Some("other.example"), &creds)));
        assert!(ok(login_as("chris@other.example", None, &creds)));
        assert!(ok(login_as("chris", None, &creds)));
        // The name's own realm must exist: chris@other.example with realm
        // other.example means chris in "other.example@other.example".
        assert_eq!(
            login_as("chris@other.example", Some("other.example"), &creds),
            Step::Failure(AuthError::BadCredentials)
        );
        assert_eq!(
            login_as("nobody", Some("elwood.innosoft.com"), &creds),
            Step::Failure(AuthError::BadCredentials)
        );
    }
}
