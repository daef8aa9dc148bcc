//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), with the `-PLUS`
//! variants binding to the TLS connection through `tls-exporter` (RFC 9266).
//!
//! Keys come from the stored `authPassword` verifier when its hash matches,
//! so a login costs a few HMACs; otherwise they are derived from the
//! cleartext `userPassword` with a salt made from the salt key. What the
//! server-first message costs and says does not depend on whether the
//! account exists or how it is stored: the salt is computed for every name,
//! an account without a verifier gets the same kind of salt and the same
//! iteration count as an unknown name, and any derivation waits for the
//! client's proof, where a failure is padded by the one rule of
//! [`secret::check`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{AuthError, Authenticated, Credentials, Mechanism, ServerConfig, Step, ct_eq};
use crate::secret::{ScramHash, ScramSource, ScramVerifier, Secrets, random_bytes};
use crate::store::Account;
use zeroize::{Zeroize, Zeroizing};

/// Longest client message accepted (names and nonces are short).
const MAX_MESSAGE: usize = 4096;

/// A verifier derived for one check, wiped when dropped.
struct Verifier(ScramVerifier);

impl Drop for Verifier {
    fn drop(&mut self) {
        self.0.stored_key.zeroize();
        self.0.server_key.zeroize();
    }
}

/// The channel binding type offered with `-PLUS`.
pub const CB_TYPE: &str = "tls-exporter";

/// What the server remembers between its first and last message.
struct Sent {
    gs2_header: Vec<u8>,
    client_first_bare: Vec<u8>,
    server_first: Vec<u8>,
    nonce: Vec<u8>,
    account: Account,
    authzid: Vec<u8>,
    /// The account's secrets (`None`: no such account), checked at the end.
    secrets: Option<Secrets>,
    salt: Vec<u8>,
    iterations: u32,
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(s) = &mut self.secrets {
            s.zeroize();
        }
    }
}

enum State {
    Start,
    SentFirst(Box<Sent>),
    Done,
}

pub struct Scram {
    config: ServerConfig,
    hash: ScramHash,
    plus: bool,
    state: State,
    fixed_nonce: Option<Vec<u8>>,
    attempted: Option<Account>,
}

/// Decode a SCRAM saslname (`=2C` is `,`, `=3D` is `=`).
fn decode_saslname(s: &[u8]) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'=' => match s.get(i + 1..i + 3) {
                Some(b"2C") => out.push(b','),
                Some(b"3D") => out.push(b'='),
                _ => return Err(AuthError::Malformed("bad `=` escape in a name")),
            },
            0 => return Err(AuthError::Malformed("NUL in a name")),
            c => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        i += 3;
    }
    Ok(out)
}

fn printable_nonce(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|&c| (0x21..=0x7e).contains(&c) && c != b',')
}

impl Scram {
    pub fn new(config: ServerConfig, hash: ScramHash, plus: bool) -> Scram {
        Scram {
            config,
            hash,
            plus,
            state: State::Start,
            fixed_nonce: None,
            attempted: None,
        }
    }

    /// Use a given server nonce part (tests and RFC vectors).
    pub fn with_nonce(config: ServerConfig, hash: ScramHash, plus: bool, nonce: &[u8]) -> Scram {
        Scram {
            fixed_nonce: Some(nonce.to_vec()),
            ..Scram::new(config, hash, plus)
        }
    }

    /// The salt for accounts without a verifier of this hash, and for
    /// unknown names: stable (the salt key is kept in the state directory)
    /// and the same kind for both, so it tells nothing apart.
    fn derived_salt(&self, account: &Account) -> Vec<u8> {
        let mut data = b"scram-salt\0".to_vec();
        data.extend_from_slice(&account.authid);
        data.push(0);
        data.extend_from_slice(&account.realm);
        ScramHash::Sha256.hmac(&self.config.salt_key, &data)[..16].to_vec()
    }

    /// Salt and iteration count to announce: the stored verifier's, else
    /// the derived salt and the configured count. The derived salt is
    /// computed in every case, so every name costs the same here.
    fn announced(&self, account: &Account, secrets: Option<&Secrets>) -> (Vec<u8>, u32) {
        let derived = self.derived_salt(account);
        match secrets.and_then(|s| s.scram_source(self.hash)) {
            Some(ScramSource::Stored(v)) => (v.salt.clone(), v.iterations),
            _ => (derived, self.config.scram_iterations),
        }
    }

    /// The proof check: `Some(ServerSignature)` when it holds.
    fn verify_proof(
        &self,
        s: &Secrets,
        salt: &[u8],
        iterations: u32,
        auth_message: &[u8],
        proof: &[u8],
    ) -> Option<Vec<u8>> {
        let derived;
        let v = match s.scram_source(self.hash)? {
            ScramSource::Stored(v) => v,
            ScramSource::Derived(pw) => {
                derived = Verifier(ScramVerifier::derive(self.hash, pw, salt, iterations));
                &derived.0
            }
        };
        let signature = Zeroizing::new(self.hash.hmac(&v.stored_key, auth_message));
        let client_key: Zeroizing<Vec<u8>> = Zeroizing::new(
            proof
                .iter()
                .zip(signature.iter())
                .map(|(p, s)| p ^ s)
                .collect(),
        );
        ct_eq(&self.hash.hash(&client_key), &v.stored_key)
            .then(|| self.hash.hmac(&v.server_key, auth_message))
    }

    fn client_first(&mut self, msg: &[u8], creds: &dyn Credentials) -> Result<Vec<u8>, AuthError> {
        if msg.len() > MAX_MESSAGE {
            return Err(AuthError::TooLong);
        }
        let bad = AuthError::Malformed;
        // gs2-header: cbind-flag "," [authzid] ","
        let first_comma = msg
            .iter()
            .position(|&b| b == b',')
            .ok_or(bad("no GS2 header"))?;
        let flag = &msg[..first_comma];
        let rest = &msg[first_comma + 1..];
        let second_comma = rest
            .iter()
            .position(|&b| b == b',')
            .ok_or(bad("no GS2 header"))?;
        let authzid_field = &rest[..second_comma];
        let bare = &rest[second_comma + 1..];
        let gs2_header = msg[..first_comma + 1 + second_comma + 1].to_vec();
        let server_binds = self.config.channel_binding.is_some();
        match flag {
            b"n" if !self.plus => {}
            b"y" if !self.plus => {
                if server_binds {
                    // The client could bind but believes we cannot: someone
                    // removed the -PLUS mechanisms from what it saw.
                    return Err(AuthError::ChannelBinding(
                        "downgrade detected (flag y, -PLUS offered)",
                    ));
                }
            }
            b"n" | b"y" => {
                return Err(AuthError::ChannelBinding(
                    "-PLUS mechanism used without channel binding",
                ));
            }
            f if f.starts_with(b"p=") => {
                if !self.plus {
                    return Err(AuthError::ChannelBinding(
                        "channel binding requested; use the -PLUS mechanism",
                    ));
                }
                if &f[2..] != CB_TYPE.as_bytes() {
                    return Err(AuthError::ChannelBinding("only tls-exporter is supported"));
                }
                if !server_binds {
                    return Err(AuthError::ChannelBinding(
                        "no channel binding data on this connection",
                    ));
                }
            }
            _ => return Err(bad("bad GS2 channel binding flag")),
        }
        let authzid = match authzid_field {
            b"" => Vec::new(),
            a if a.starts_with(b"a=") => decode_saslname(&a[2..])?,
            _ => return Err(bad("bad GS2 authzid")),
        };
        if bare.starts_with(b"m=") {
            return Err(bad("unsupported mandatory extension"));
        }
        let mut fields = bare.split(|&b| b == b',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix(b"n="))
            .ok_or(bad("n= expected"))?;
        let cnonce = fields
            .next()
            .and_then(|f| f.strip_prefix(b"r="))
            .ok_or(bad("r= expected"))?;
        if !printable_nonce(cnonce) {
            return Err(bad("client nonce must be printable"));
        }
        let user = decode_saslname(user)?;
        let account = self.config.account(&user)?;
        self.attempted = Some(account.clone());
        let secrets = self.config.lookup(creds, &account)?;
        let (salt, iterations) = self.announced(&account, secrets.as_ref());
        let snonce = match self.fixed_nonce.take() {
            Some(n) => n,
            None => B64
                .encode(random_bytes::<18>().map_err(|e| AuthError::Temporary(e.to_string()))?)
                .into_bytes(),
        };
        let mut nonce = cnonce.to_vec();
        nonce.extend_from_slice(&snonce);
        let mut server_first = b"r=".to_vec();
        server_first.extend_from_slice(&nonce);
        server_first.extend_from_slice(b",s=");
        server_first.extend_from_slice(B64.encode(&salt).as_bytes());
        server_first.extend_from_slice(format!(",i={iterations}").as_bytes());
        self.state = State::SentFirst(Box::new(Sent {
            gs2_header,
            client_first_bare: bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
            account,
            authzid,
            secrets,
            salt,
            iterations,
        }));
        Ok(server_first)
    }

    fn client_final(
        &mut self,
        msg: &[u8],
        creds: &dyn Credentials,
    ) -> Result<(Authenticated, Vec<u8>), AuthError> {
        let State::SentFirst(sent) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(AuthError::Protocol("exchange already finished"));
        };
        let mut sent = *sent;
        if msg.len() > MAX_MESSAGE {
            return Err(AuthError::TooLong);
        }
        let bad = AuthError::Malformed;
        let p_at = msg
            .windows(3)
            .rposition(|w| w == b",p=")
            .ok_or(bad("p= (proof) expected last"))?;
        let without_proof = &msg[..p_at];
        let proof = B64
            .decode(&msg[p_at + 3..])
            .map_err(|_| bad("proof is not base64"))?;
        let mut fields = without_proof.split(|&b| b == b',');
        let cbind = fields
            .next()
            .and_then(|f| f.strip_prefix(b"c="))
            .ok_or(bad("c= expected"))?;
        let got_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix(b"r="))
            .ok_or(bad("r= expected"))?;
        let cbind = B64.decode(cbind).map_err(|_| bad("c= is not base64"))?;
        let mut expected_cb = sent.gs2_header.clone();
        if sent.gs2_header.starts_with(b"p=") {
            expected_cb
                .extend_from_slice(self.config.channel_binding.as_deref().unwrap_or_default());
        }
        if !ct_eq(&cbind, &expected_cb) {
            return Err(AuthError::ChannelBinding(
                "channel binding data does not match",
            ));
        }
        if !ct_eq(got_nonce, &sent.nonce) {
            return Err(bad("nonce does not match"));
        }
        if proof.len() != self.hash.output_len() {
            return Err(bad("proof has the wrong length"));
        }
        let mut auth_message = std::mem::take(&mut sent.client_first_bare);
        auth_message.push(b',');
        auth_message.extend_from_slice(&sent.server_first);
        auth_message.push(b',');
        auth_message.extend_from_slice(without_proof);
        let cost = self.config.failure_cost(self.hash);
        let (salt, iterations) = (&sent.salt, sent.iterations);
        // The salt went out in server-first: secrets fresher than the
        // cached ones serve the next attempt, not this one.
        let secrets = sent.secrets.take();
        let server_signature =
            self.config
                .check_account(creds, &sent.account, secrets, cost, false, |s| {
                    self.verify_proof(s, salt, iterations, &auth_message, &proof)
                })?;
        let account = sent.account.clone();
        let authzid = self.config.authorize(&account, &sent.authzid)?;
        let mut server_final = b"v=".to_vec();
        server_final.extend_from_slice(B64.encode(server_signature).as_bytes());
        Ok((Authenticated { account, authzid }, server_final))
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &'static str {
        match (self.hash, self.plus) {
            (ScramHash::Sha1, false) => "SCRAM-SHA-1",
            (ScramHash::Sha256, false) => "SCRAM-SHA-256",
            (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        }
    }

    fn attempted(&self) -> Option<&Account> {
        self.attempted.as_ref()
    }

    fn start(&mut self, initial: Option<&[u8]>, creds: &dyn Credentials) -> Step {
        match initial {
            None => Step::Challenge(Vec::new()),
            Some(msg) => self.step(msg, creds),
        }
    }

    fn step(&mut self, response: &[u8], creds: &dyn Credentials) -> Step {
        let r = match self.state {
            State::Start => self.client_first(response, creds).map(Step::Challenge),
            State::SentFirst(_) => self
                .client_final(response, creds)
                .map(|(a, f)| Step::Success(a, Some(f))),
            State::Done => Err(AuthError::Protocol("exchange already finished")),
        };
        r.unwrap_or_else(|e| {
            self.state = State::Done;
            Step::Failure(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Secrets;
    use super::super::testing::{Table, config};
    use super::*;

    fn verifier_table(user: &str, v: ScramVerifier) -> Table {
        let mut t = Table::default();
        t.0.insert(
            Account::new(user, "example.org"),
            Secrets {
                verifiers: vec![v],
                ..Secrets::default()
            },
        );
        t
    }

    #[test]
    fn rfc5802_exchange_from_a_stored_verifier() {
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let creds = verifier_table(
            "user",
            ScramVerifier::derive(ScramHash::Sha1, b"pencil", &salt, 4096),
        );
        let mut m = Scram::with_nonce(config(), ScramHash::Sha1, false, b"3rfcNHYJY1ZVvWVs7j");
        assert_eq!(
            m.start(Some(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), &creds),
            Step::Challenge(
                b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096".to_vec()
            )
        );
        let Step::Success(a, Some(v)) = m.step(
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            &creds,
        ) else {
            panic!("no success")
        };
        assert_eq!(a.account, Account::new("user", "example.org"));
        assert_eq!(v, b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    #[test]
    fn rfc7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = verifier_table(
            "user",
            ScramVerifier::derive(ScramHash::Sha256, b"pencil", &salt, 4096),
        );
        let mut m = Scram::with_nonce(
            config(),
            ScramHash::Sha256,
            false,
            b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert!(matches!(
            m.start(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), &creds),
            Step::Challenge(_)
        ));
        assert_eq!(
            m.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &creds),
            Step::Success(
                Authenticated { account: Account::new("user", "example.org"), authzid: None },
                Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec())
            )
        );
    }

    #[test]
    fn wrong_proof_and_unknown_user_fail_at_the_end() {
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let creds = verifier_table(
            "user",
            ScramVerifier::derive(ScramHash::Sha1, b"pencil", &salt, 4096),
        );
        for user in ["user", "nobody"] {
            let mut m = Scram::with_nonce(config(), ScramHash::Sha1, false, b"3rfcNHYJY1ZVvWVs7j");
            let first = format!("n,,n={user},r=fyko+d2lbbFgONRv9qkxdawL");
            let Step::Challenge(sf) = m.start(Some(first.as_bytes()), &creds) else {
                panic!()
            };
            assert!(
                sf.ends_with(b",i=4096"),
                "unknown users get a plausible challenge"
            );
            assert_eq!(
                m.step(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=AAAAv3Bz2T0CJGbJQyF0X+HI4Ts=", &creds),
                Step::Failure(AuthError::BadCredentials)
            );
        }
        // The unknown user's salt is stable, so probing twice reveals nothing.
        let salt_of = || {
            let mut m = Scram::new(config(), ScramHash::Sha1, false);
            let Step::Challenge(sf) = m.start(Some(b"n,,n=ghost,r=abc"), &creds) else {
                panic!()
            };
            String::from_utf8(sf)
                .unwrap()
                .split(",s=")
                .nth(1)
                .unwrap()
                .to_string()
        };
        assert_eq!(salt_of(), salt_of());
    }

    #[test]
    fn gs2_flags_and_channel_binding() {
        let creds = Table::with_password("user", "example.org", "pencil");
        let mut tls = config();
        tls.channel_binding = Some(b"exporter-bytes".to_vec());
        let first = |cfg: &ServerConfig, plus: bool, msg: &[u8]| {
            Scram::new(cfg.clone(), ScramHash::Sha256, plus).start(Some(msg), &creds)
        };
        // y with -PLUS on offer: downgrade.
        assert!(
            matches!(first(&tls, false, b"y,,n=user,r=abc"), Step::Failure(AuthError::ChannelBinding(w)) if w.contains("downgrade"))
        );
        // y without channel binding on the connection: fine.
        assert!(matches!(
            first(&config(), false, b"y,,n=user,r=abc"),
            Step::Challenge(_)
        ));
        assert!(matches!(
            first(&tls, false, b"p=tls-exporter,,n=user,r=abc"),
            Step::Failure(AuthError::ChannelBinding(_))
        ));
        assert!(matches!(
            first(&tls, true, b"n,,n=user,r=abc"),
            Step::Failure(AuthError::ChannelBinding(_))
        ));
        assert!(matches!(
            first(&tls, true, b"p=tls-unique,,n=user,r=abc"),
            Step::Failure(AuthError::ChannelBinding(_))
        ));
        assert!(matches!(
            first(&config(), true, b"p=tls-exporter,,n=user,r=abc"),
            Step::Failure(AuthError::ChannelBinding(_))
        ));
        assert!(matches!(
            first(&tls, true, b"p=tls-exporter,,n=user,r=abc"),
            Step::Challenge(_)
        ));
    }

    #[test]
    fn malformed_client_first() {
        let creds = Table::default();
        for (msg, why) in [
            (&b"n,,"[..], "n="),
            (b"x,,n=u,r=a", "flag"),
            (b"n", "GS2"),
            (b"n,b=x,n=u,r=a", "authzid"),
            (b"n,,m=ext,n=u,r=a", "mandatory"),
            (b"n,,n=u=2X,r=a", "escape"),
            (b"n,,n=u,r=", "nonce"),
            (b"n,,n=u", "r="),
        ] {
            match Scram::new(config(), ScramHash::Sha1, false).start(Some(msg), &creds) {
                Step::Failure(AuthError::Malformed(w)) => assert!(w.contains(why), "{msg:?}: {w}"),
                other => panic!("{msg:?}: {other:?}"),
            }
        }
        assert_eq!(
            Scram::new(config(), ScramHash::Sha1, false).start(Some(&[b'n'; 5000]), &creds),
            Step::Failure(AuthError::TooLong)
        );
    }

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname(b"a=2Cb=3Dc").unwrap(), b"a,b=c");
        assert!(decode_saslname(b"a=").is_err());
    }
}
