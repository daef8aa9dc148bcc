#![no_main]
//! Every server mechanism fed arbitrary client messages (as decoded bytes
//! and as raw base64 lines): no panic, and no success without the password.
use libfuzzer_sys::fuzz_target;
use sasldb::mech::{self, Credentials, Exchange, Reply, Secrets, ServerConfig, Step};
use sasldb::store::{Account, StoreError};

struct One;
impl Credentials for One {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok((a.authid == b"user").then(|| Secrets {
            user_password: Some(b"pencil".to_vec()),
            ..Secrets::default()
        }))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let name = mech::ALL[usize::from(which) % mech::ALL.len()];
    let mut cfg = ServerConfig {
        service: "smtp".into(),
        hostname: "mx.example.org".into(),
        host_aliases: vec![],
        digest_strict_host: false,
        realm: b"example.org".to_vec(),
        allow_proxy: which & 0x80 != 0,
        scram_iterations: 16,
        salt_key: [1; 32],
        channel_binding: None,
    };
    if which & 0x40 != 0 {
        cfg.channel_binding = Some(b"cb".to_vec());
    }
    let parts: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
    // Decoded bytes straight into the mechanism.
    if let Some(mut m) = mech::new_mechanism(name, &cfg) {
        let mut step = m.start(parts.first().copied(), &One);
        for p in parts.iter().skip(1) {
            if !matches!(step, Step::Challenge(_)) {
                break;
            }
            step = m.step(p, &One);
        }
        // Random bytes cannot know a fresh nonce: SCRAM, CRAM-MD5 and
        // DIGEST-MD5 must never succeed here.
        if matches!(step, Step::Success(..)) {
            assert!(name == "PLAIN" || name == "LOGIN", "{name} succeeded on fuzz input");
        }
    }
    // The same bytes as base64 lines through the framing.
    if let Some(m) = mech::new_mechanism(name, &cfg) {
        let mut ex = Exchange::new(m);
        let mut reply = ex.start(parts.first().copied(), &One);
        for p in parts.iter().skip(1) {
            if !matches!(reply, Reply::Challenge(_)) {
                break;
            }
            reply = ex.feed(p, &One);
        }
    }
});
