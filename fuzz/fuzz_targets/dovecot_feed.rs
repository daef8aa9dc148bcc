#![no_main]
//! The Dovecot auth protocol is what Postfix (or anyone who can reach the
//! socket) sends: any sequence of lines must leave the session answering
//! well-formed lines (one verb, no line breaks inside), never a panic, and
//! never OK: the store holds no account (unknown users still run the
//! verification against dummy secrets).
use libfuzzer_sys::fuzz_target;

mod common;
use sasldb::authd::dovecot::{DovecotConfig, NoLimit, Session};
use sasldb::mech::{self, Credentials, Secrets};
use sasldb::store::{Account, StoreError};

struct Nobody;
impl Credentials for Nobody {
    fn secrets(&self, _: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok(None)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let config = DovecotConfig {
        mechanisms: mech::ALL.to_vec(),
        plaintext_needs_tls: flags & 1 != 0,
        require_client_cert: flags & 2 != 0,
        pid: 1,
        connection_id: 1,
    };
    let server = common::server_config(flags);
    let mut session = Session::new(config, server);
    for line in session.handshake() {
        assert!(!line.contains(['\n', '\r']), "{line:?}");
    }
    for line in rest.split(|&b| b == b'\n') {
        let out = session.feed(line, &Nobody, &mut NoLimit);
        for l in &out.lines {
            assert!(!l.contains(['\n', '\r']), "{l:?}");
            let verb = l.split('\t').next().unwrap_or("");
            assert!(matches!(verb, "OK" | "FAIL" | "CONT"), "{l:?}");
            assert!(verb != "OK", "authenticated on fuzz input: {l:?}");
        }
        if out.close {
            break;
        }
    }
});
