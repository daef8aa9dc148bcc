//! A deliberate difference from saslpasswd2: a password whose first byte
//! is NUL reads as empty; Cyrus stores it (an empty userPassword, exit 0),
//! saslpasswd refuses it like any empty password (exit 7) and stores
//! nothing.
use crate::common::*;

fn password_starting_with_nul_is_refused_where_cyrus_stores_it_empty() {
    need("saslpasswd2", "sasl2-bin");
    let s = Scratch::new();
    let (ours, cyrus) = (s.path("ours"), s.path("cyrus"));
    // Cyrus side by side: exit 0; ours: exit 7, as for any empty password.
    for (program, db, code) in [(SASLPASSWD, &ours, 7), ("saslpasswd2", &cyrus, 0)] {
        let db = db.to_str().unwrap();
        let args = ["-p", "-c", "-u", "example.org", "-f", db, "user"];
        let o = s.run(program, &args, Some(b"\0x"));
        assert_eq!(o.status.code(), Some(code), "{program}: {}", stderr(&o));
        if code == 7 {
            assert!(
                stderr(&o).contains("saslpasswd: invalid parameter supplied"),
                "{}",
                stderr(&o)
            );
        }
    }
    assert!(!ours.exists(), "nothing is stored, no file made");
    let list = s.run("sasldblistusers2", &["-f", cyrus.to_str().unwrap()], None);
    assert_eq!(stdout(&list), "user@example.org: userPassword\n");
}

crate::tests!(password_starting_with_nul_is_refused_where_cyrus_stores_it_empty,);
