//! Accounts made by the real `saslpasswd` log in through the mechanisms with
//! the store as the credential source: one identity rule at creation and at
//! login, and every kind of stored secret usable by the mechanisms that can
//! use it.
use crate::common::*;

use sasldb::mech::{self, Reply, ServerConfig};
use sasldb::store::{OpenOptions, Store};

fn plain(store: &Store, cfg: &ServerConfig, authcid: &str, pw: &str) -> bool {
    use base64::Engine;
    let msg = base64::engine::general_purpose::STANDARD.encode(format!("\0{authcid}\0{pw}"));
    let mut ex = mech::Exchange::new(mech::new_mechanism("PLAIN", cfg).unwrap());
    matches!(ex.start(Some(msg.as_bytes()), store), Reply::Success(..))
}

#[test]
fn accounts_created_by_saslpasswd_log_in() {
    let s = Scratch::new();
    let db = s.db();
    let f = db.to_str().unwrap();
    let add = |args: &[&str], pw: &str| {
        let mut a = vec!["-p", "-c", "-f", f];
        a.extend_from_slice(args);
        let o = s.run(SASLPASSWD, &a, Some(pw.as_bytes()));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    add(&["-u", "example.org", "alice"], "alice-pw");
    add(&["bob@other.example"], "bob-pw");
    add(&["-n", "-u", "example.org", "carol"], "carol-pw"); // verifier only
    add(&["-u", "example.org", " dave "], "dave-pw"); // kept as typed

    let store = Store::open_read(&db, &OpenOptions::default()).unwrap();
    let cfg = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
    assert!(plain(&store, &cfg, "alice", "alice-pw"));
    assert!(plain(&store, &cfg, "alice@example.org", "alice-pw"));
    assert!(!plain(&store, &cfg, "alice", "bob-pw"));
    assert!(
        !plain(&store, &cfg, "Alice", "alice-pw"),
        "names are case-sensitive"
    );
    assert!(plain(&store, &cfg, "bob@other.example", "bob-pw"));
    assert!(
        !plain(&store, &cfg, "bob", "bob-pw"),
        "bob is not in the default realm"
    );
    assert!(
        plain(&store, &cfg, "carol", "carol-pw"),
        "PLAIN from a SCRAM verifier"
    );
    assert!(plain(&store, &cfg, " dave ", "dave-pw"));
    assert!(!plain(&store, &cfg, "dave", "dave-pw"));

    // CRAM-MD5 needs the cleartext: carol (verifier only) cannot use it.
    for (user, pw, works) in [("alice", "alice-pw", true), ("carol", "carol-pw", false)] {
        let mut m = mech::new_mechanism("CRAM-MD5", &cfg).unwrap();
        let mech::Step::Challenge(c) = m.start(None, &store) else {
            panic!()
        };
        use hmac::{KeyInit, Mac};
        let mut h = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(pw.as_bytes()).unwrap();
        h.update(&c);
        let hexd: String = h
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let r = m.step(format!("{user} {hexd}").as_bytes(), &store);
        assert_eq!(matches!(r, mech::Step::Success(..)), works, "{user}");
    }

    // A password change is visible to the next login without reopening.
    add(&["-u", "example.org", "alice"], "new-pw");
    assert!(plain(&store, &cfg, "alice", "new-pw"));
    assert!(!plain(&store, &cfg, "alice", "alice-pw"));
}
