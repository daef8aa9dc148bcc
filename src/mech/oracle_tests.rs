//! The account-enumeration rule, checked structurally: a failed exchange of
//! every mechanism runs exactly one PBKDF2, whatever the account (cleartext,
//! verifier only, unknown), and SCRAM's server-first looks the same for an
//! account without a verifier as for an unknown name.

use super::testing::{Table, config};
use super::*;
use crate::secret::{ScramVerifier, pbkdf2_runs};

fn creds() -> Table {
    let mut t = Table::with_password("clear", "example.org", "pencil");
    t.0.insert(
        Account::new("hashed", "example.org"),
        Secrets {
            verifiers: vec![
                ScramVerifier::generate(ScramHash::Sha256, b"pencil", 4096).expect("random"),
            ],
            ..Secrets::default()
        },
    );
    t
}

/// The text after `key=` in a challenge, up to `,` or `"`.
fn field(challenge: &[u8], key: &str) -> String {
    let text = String::from_utf8_lossy(challenge);
    let start = text.find(key).expect(key) + key.len();
    text[start..]
        .trim_start_matches('"')
        .split([',', '"'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Run a failing exchange for `user`; PBKDF2 runs it cost, and the final step.
fn failed(mech: &str, user: &str, creds: &Table) -> (u64, Step) {
    let cfg = config();
    let before = pbkdf2_runs();
    let last = match mech {
        "PLAIN" => Plain::new(cfg).start(Some(format!("\0{user}\0wrong").as_bytes()), creds),
        "LOGIN" => {
            let mut m = Login::new(cfg);
            m.start(Some(user.as_bytes()), creds);
            m.step(b"wrong", creds)
        }
        "CRAM-MD5" => {
            let mut m = CramMd5::new(cfg);
            m.start(None, creds);
            m.step(format!("{user} {}", "0".repeat(32)).as_bytes(), creds)
        }
        "DIGEST-MD5" => {
            let mut m = DigestMd5::with_nonce(cfg, "N1");
            m.start(None, creds);
            let msg = format!(
                "username=\"{user}\",nonce=\"N1\",cnonce=\"C1\",nc=00000001,qop=auth,\
                 digest-uri=\"smtp/mx.example.org\",response={}",
                "0".repeat(32)
            );
            m.step(msg.as_bytes(), creds)
        }
        scram => {
            let hash = secret::ScramHash::from_mech_name(scram).expect("SCRAM");
            let mut m = Scram::with_nonce(cfg, hash, false, b"SN");
            let Step::Challenge(_) = m.start(Some(format!("n,,n={user},r=CN").as_bytes()), creds)
            else {
                panic!("{scram}: no server-first")
            };
            let proof = B64.encode(vec![0u8; hash.output_len()]);
            m.step(format!("c=biws,r=CNSN,p={proof}").as_bytes(), creds)
        }
    };
    (pbkdf2_runs() - before, last)
}

#[test]
fn every_failure_runs_one_pbkdf2_whatever_the_account() {
    let creds = creds();
    for mech in ALL.iter().filter(|m| !m.ends_with("-PLUS")) {
        for user in ["clear", "hashed", "nobody"] {
            let (runs, last) = failed(mech, user, &creds);
            assert_eq!(
                last,
                Step::Failure(AuthError::BadCredentials),
                "{mech} {user}"
            );
            assert_eq!(runs, 1, "{mech} {user}: PBKDF2 runs");
        }
    }
}

#[test]
fn scram_server_first_does_not_tell_accounts_apart() {
    let creds = creds();
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let first = |user: &str| {
            let before = pbkdf2_runs();
            let mut m = Scram::with_nonce(config(), hash, false, b"SN");
            let Step::Challenge(c) = m.start(Some(format!("n,,n={user},r=CN").as_bytes()), &creds)
            else {
                panic!("no server-first")
            };
            // No derivation before the proof: the same cost for every name.
            assert_eq!(pbkdf2_runs(), before, "{user}");
            (field(&c, "s="), field(&c, "i="))
        };
        let (clear, nobody) = (first("clear"), first("nobody"));
        assert_eq!(clear.1, nobody.1, "iteration counts");
        assert_eq!(clear.0.len(), nobody.0.len(), "salt lengths");
        assert_ne!(clear.0, nobody.0);
        // Deterministic: asking twice gives the same salt.
        assert_eq!(first("nobody"), nobody);
        if hash == ScramHash::Sha1 {
            // The -n account has no SHA-1 verifier: like an unknown name.
            assert_eq!(first("hashed").1, nobody.1);
        }
    }
}

#[test]
fn successes_stay_cheap() {
    let creds = creds();
    let before = pbkdf2_runs();
    assert!(matches!(
        Plain::new(config()).start(Some(b"\0clear\0pencil"), &creds),
        Step::Success(..)
    ));
    assert_eq!(pbkdf2_runs(), before);
    let mut m = CramMd5::new(config());
    let Step::Challenge(c) = m.start(None, &creds) else {
        panic!()
    };
    let digest = hex(&cram_md5::hmac_md5(b"pencil", &c));
    assert!(matches!(
        m.step(format!("clear {digest}").as_bytes(), &creds),
        Step::Success(..)
    ));
    assert_eq!(pbkdf2_runs(), before);
}
