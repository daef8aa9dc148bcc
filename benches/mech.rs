//! Server-side cost of one authentication per mechanism (criterion). The
//! client's messages are computed once outside the timed loop (fixed nonces
//! make them valid), so each iteration is exactly the server's work: parse,
//! look up, verify, answer. Secrets come from an in-memory table; the store
//! read is benchmarked in `benches/store.rs`.
//!
//! SCRAM is measured two ways: from a stored `authPassword` verifier (what
//! `saslpasswd -n` and `scram_secret_generate` store) and from a cleartext
//! `userPassword`, which needs PBKDF2 per login as Cyrus does for every
//! SCRAM login.

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use sasldb::mech::{
    CramMd5, Credentials, DigestMd5, Mechanism, Plain, Scram, Secrets, ServerConfig, Step,
    new_mechanism,
};
use sasldb::secret::{ScramHash, ScramVerifier};
use sasldb::store::{Account, StoreError};

struct One(Account, Secrets);
impl Credentials for One {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok((*a == self.0).then(|| self.1.clone()))
    }
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
    c.scram_iterations = 4096;
    c
}

fn cleartext() -> One {
    One(
        Account::new("alice", "example.org"),
        Secrets {
            user_password: Some(b"alice-secret".to_vec()),
            ..Secrets::default()
        },
    )
}

fn ok(step: Step) {
    assert!(
        matches!(step, Step::Success(..) | Step::Challenge(_)),
        "{step:?}"
    );
}

/// The client-final message for a SCRAM exchange with fixed nonces.
fn scram_final(hash: ScramHash, creds: &One, cfg: &ServerConfig) -> Vec<u8> {
    let mut m = Scram::with_nonce(cfg.clone(), hash, false, b"serverNonce");
    let Step::Challenge(sf) = m.start(Some(b"n,,n=alice,r=clientNonce"), creds) else {
        panic!()
    };
    let sf = String::from_utf8(sf).unwrap();
    let field = |k: &str| {
        sf.split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let salt = B64.decode(field("s=")).unwrap();
    let v = ScramVerifier::derive(hash, b"alice-secret", &salt, field("i=").parse().unwrap());
    let salted = hash.salted_password(b"alice-secret", &salt, v.iterations);
    let ck = hash.hmac(&salted, b"Client Key");
    let without = format!("c=biws,r={}", field("r="));
    let am = format!("n=alice,r=clientNonce,{sf},{without}");
    let sig = hash.hmac(&v.stored_key, am.as_bytes());
    let proof: Vec<u8> = ck.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    format!("{without},p={}", B64.encode(proof)).into_bytes()
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let creds = cleartext();
    let mut g = c.benchmark_group("auth");

    g.bench_function("PLAIN", |b| {
        b.iter(|| ok(Plain::new(cfg.clone()).start(Some(b"\0alice\0alice-secret"), &creds)))
    });
    g.bench_function("LOGIN", |b| {
        b.iter(|| {
            let mut m = new_mechanism("LOGIN", &cfg).unwrap();
            m.start(Some(b"alice"), &creds);
            ok(m.step(b"alice-secret", &creds))
        })
    });

    let challenge = b"<1896.697170952@mx.example.org>";
    let mut probe = CramMd5::with_challenge(cfg.clone(), challenge);
    probe.start(None, &creds);
    let digest: String = {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(b"alice-secret").unwrap();
        m.update(challenge);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let cram_resp = format!("alice {digest}");
    g.bench_function("CRAM-MD5", |b| {
        b.iter(|| {
            let mut m = CramMd5::with_challenge(cfg.clone(), challenge);
            m.start(None, &creds);
            ok(m.step(cram_resp.as_bytes(), &creds))
        })
    });

    let (resp, _) = sasldb::mech::digest_response_values(
        b"alice",
        b"example.org",
        b"alice-secret",
        b"benchNonce",
        b"cnonce",
        b"00000001",
        b"auth",
        b"smtp/mx.example.org",
        None,
    );
    let digest_resp = format!(
        "username=\"alice\",realm=\"example.org\",nonce=\"benchNonce\",cnonce=\"cnonce\",nc=00000001,qop=auth,digest-uri=\"smtp/mx.example.org\",response={resp}"
    );
    g.bench_function("DIGEST-MD5", |b| {
        b.iter(|| {
            let mut m = DigestMd5::with_nonce(cfg.clone(), "benchNonce");
            m.start(None, &creds);
            ok(m.step(digest_resp.as_bytes(), &creds));
            ok(m.step(b"", &creds))
        })
    });

    for (name, hash) in [
        ("SCRAM-SHA-1", ScramHash::Sha1),
        ("SCRAM-SHA-256", ScramHash::Sha256),
    ] {
        // From a stored verifier (salt and keys fixed by the store).
        let v = ScramVerifier::generate(hash, b"alice-secret", 4096).unwrap();
        let stored = One(
            Account::new("alice", "example.org"),
            Secrets {
                verifiers: vec![v],
                ..Secrets::default()
            },
        );
        let fin = scram_final(hash, &stored, &cfg);
        g.bench_function(format!("{name} (stored verifier)"), |b| {
            b.iter(|| {
                let mut m = Scram::with_nonce(cfg.clone(), hash, false, b"serverNonce");
                m.start(Some(b"n,,n=alice,r=clientNonce"), &stored);
                let s = m.step(black_box(&fin), &stored);
                assert!(matches!(s, Step::Success(..)));
            })
        });
        // From the cleartext: PBKDF2 on every login, as Cyrus does.
        let fin = scram_final(hash, &creds, &cfg);
        g.bench_function(
            format!("{name} (from userPassword, PBKDF2 per login)"),
            |b| {
                b.iter(|| {
                    let mut m = Scram::with_nonce(cfg.clone(), hash, false, b"serverNonce");
                    m.start(Some(b"n,,n=alice,r=clientNonce"), &creds);
                    let s = m.step(black_box(&fin), &creds);
                    assert!(matches!(s, Step::Success(..)));
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
