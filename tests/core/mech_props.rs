//! Property tests: a client written from the RFCs (here, with the hash
//! crates directly, not the server's helpers) succeeds for random users,
//! realms and passwords, and fails for any other password.
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use md5::Digest;
use proptest::prelude::*;

use sasldb::mech::{self, Credentials, Secrets, ServerConfig, Step};
use sasldb::secret::{ScramHash, ScramVerifier};
use sasldb::store::{Account, StoreError};

struct One(Account, Secrets);
impl Credentials for One {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok((*a == self.0).then(|| self.1.clone()))
    }
}

fn config(realm: &str) -> ServerConfig {
    let mut c = ServerConfig::new("smtp", "mx.example.org", realm.as_bytes()).unwrap();
    c.scram_iterations = 64; // keep the property runs quick
    c
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac_md5(k: &[u8], d: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(k).unwrap();
    m.update(d);
    m.finalize().into_bytes().to_vec()
}

fn hmac_sha256(k: &[u8], d: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(k).unwrap();
    m.update(d);
    m.finalize().into_bytes().to_vec()
}

fn login_name(user: &str, realm: &str) -> String {
    format!("{user}@{realm}")
}

fn plain(cfg: &ServerConfig, creds: &One, name: &str, pw: &str) -> bool {
    let msg = format!("\0{name}\0{pw}");
    let mut m = mech::new_mechanism("PLAIN", cfg).unwrap();
    matches!(m.start(Some(msg.as_bytes()), creds), Step::Success(..))
}

fn login(cfg: &ServerConfig, creds: &One, name: &str, pw: &str) -> bool {
    let mut m = mech::new_mechanism("LOGIN", cfg).unwrap();
    assert_eq!(m.start(None, creds), Step::Challenge(b"Username:".to_vec()));
    assert_eq!(
        m.step(name.as_bytes(), creds),
        Step::Challenge(b"Password:".to_vec())
    );
    matches!(m.step(pw.as_bytes(), creds), Step::Success(..))
}

fn cram(cfg: &ServerConfig, creds: &One, name: &str, pw: &str) -> bool {
    let mut m = mech::new_mechanism("CRAM-MD5", cfg).unwrap();
    let Step::Challenge(c) = m.start(None, creds) else {
        panic!()
    };
    let resp = format!("{name} {}", hex(&hmac_md5(pw.as_bytes(), &c)));
    matches!(m.step(resp.as_bytes(), creds), Step::Success(..))
}

fn digest(cfg: &ServerConfig, creds: &One, user: &str, realm: &str, pw: &str) -> bool {
    let mut m = mech::new_mechanism("DIGEST-MD5", cfg).unwrap();
    let Step::Challenge(c) = m.start(None, creds) else {
        panic!()
    };
    let c = String::from_utf8(c).unwrap();
    let nonce = c
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (cnonce, nc, uri) = ("cn0nce", "00000001", "smtp/mx.example.org");
    let h = |b: &[u8]| md5::Md5::digest(b).to_vec();
    let mut a1 = h(format!("{user}:{realm}:{pw}").as_bytes());
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    let kd = |a2: &str| {
        hex(&h(format!(
            "{}:{nonce}:{nc}:{cnonce}:auth:{}",
            hex(&h(&a1)),
            hex(&h(a2.as_bytes()))
        )
        .as_bytes()))
    };
    let resp = format!(
        "username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",cnonce=\"{cnonce}\",nc={nc},qop=auth,digest-uri=\"{uri}\",response={}",
        kd(&format!("AUTHENTICATE:{uri}"))
    );
    match m.step(resp.as_bytes(), creds) {
        Step::Challenge(r) => {
            assert_eq!(
                r,
                format!("rspauth={}", kd(&format!(":{uri}"))).into_bytes()
            );
            matches!(m.step(b"", creds), Step::Success(..))
        }
        _ => false,
    }
}

fn scram256(cfg: &ServerConfig, creds: &One, name: &str, pw: &str) -> bool {
    let mut m = mech::new_mechanism("SCRAM-SHA-256", cfg).unwrap();
    let bare = format!(
        "n={},r=clientNonce",
        name.replace('=', "=3D").replace(',', "=2C")
    );
    let Step::Challenge(sf) = m.start(Some(format!("n,,{bare}").as_bytes()), creds) else {
        return false;
    };
    let sf = String::from_utf8(sf).unwrap();
    let get = |k: &str| {
        sf.split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let (nonce, salt, iters) = (get("r="), B64.decode(get("s=")).unwrap(), get("i="));
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pw.as_bytes(), &salt, iters.parse().unwrap(), &mut salted);
    let ck = hmac_sha256(&salted, b"Client Key");
    let sk = sha2::Sha256::digest(&ck).to_vec();
    let without = format!("c=biws,r={nonce}");
    let am = format!("{bare},{sf},{without}");
    let sig = hmac_sha256(&sk, am.as_bytes());
    let proof: Vec<u8> = ck.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let fin = format!("{without},p={}", B64.encode(proof));
    match m.step(fin.as_bytes(), creds) {
        Step::Success(_, Some(v)) => {
            let server_key = hmac_sha256(&salted, b"Server Key");
            assert_eq!(
                v,
                format!("v={}", B64.encode(hmac_sha256(&server_key, am.as_bytes()))).into_bytes()
            );
            true
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rfc_clients_succeed_only_with_the_password(
        user in "[a-zA-Z0-9._-]{1,16}",
        realm in "[a-z0-9.-]{1,16}",
        pw in "[ -~]{1,24}",
        other in "[ -~]{1,24}",
        verifier_only in any::<bool>(),
    ) {
        let cfg = config(&realm);
        let account = Account::new(user.as_str(), realm.as_str());
        let secrets = if verifier_only {
            Secrets {
                verifiers: vec![ScramVerifier::generate(ScramHash::Sha256, pw.as_bytes(), 64).unwrap()],
                ..Secrets::default()
            }
        } else {
            Secrets { user_password: Some(pw.as_bytes().to_vec()), ..Secrets::default() }
        };
        let creds = One(account, secrets);
        let name = login_name(&user, &realm);
        let wrong = other != pw;
        // Mechanisms that work from what is stored.
        prop_assert!(plain(&cfg, &creds, &name, &pw));
        prop_assert!(plain(&cfg, &creds, &user, &pw), "default realm");
        prop_assert!(login(&cfg, &creds, &name, &pw));
        prop_assert!(scram256(&cfg, &creds, &name, &pw));
        prop_assert_eq!(plain(&cfg, &creds, &name, &other), !wrong);
        prop_assert_eq!(login(&cfg, &creds, &name, &other), !wrong);
        prop_assert_eq!(scram256(&cfg, &creds, &name, &other), !wrong);
        // CRAM-MD5 and DIGEST-MD5 need the cleartext.
        prop_assert_eq!(cram(&cfg, &creds, &name, &pw), !verifier_only);
        prop_assert_eq!(digest(&cfg, &creds, &user, &realm, &pw), !verifier_only);
        if wrong {
            prop_assert!(!cram(&cfg, &creds, &name, &other));
            prop_assert!(!digest(&cfg, &creds, &user, &realm, &other));
        }
    }
}
