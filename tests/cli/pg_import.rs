//! `saslpasswd --import OLDFILE -f postgresql://...`: Berkeley DB, GDBM and LMDB sasldb
//! files into the table in one transaction, checked row by row in SQL; what a text column
//! cannot hold is refused by name (or, with --skip-unstorable, left out and listed).
use crate::common::pg::PASSWORD;
use crate::common::*;
use crate::migrate::{gdbm, hash_load, hex};
use crate::pg::{ok, ready, tool};

fn rec(user: &str, realm: &str, prop: &str, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (key(user, realm, prop), value.to_vec())
}

fn import(s: &Scratch, old: &std::path::Path, url: &str, extra: &[&str]) -> std::process::Output {
    let old = old.to_str().expect("utf-8 path");
    let mut args = vec!["--import", old, "-f", url];
    args.extend_from_slice(extra);
    tool(s, SASLPASSWD, &args, None)
}

fn failed(o: &std::process::Output, want: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "want {want:?}: {err}");
    assert!(err.ends_with("generic failure\n"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    err
}

fn berkeley_gdbm_and_lmdb_files_go_into_the_table() {
    need("db5.3_load", "db5.3-util");
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    let bdb = s.path("old.bdb");
    hash_load(
        &bdb,
        vec![
            rec("alice", "example.org", "userPassword", b"pw-alice"),
            rec("bob", "example.org", "userPassword", b"pw-bob"),
            rec(
                "bob",
                "example.org",
                "authPassword",
                b"SCRAM-SHA-256$4096:c2FsdA==$a:b",
            ),
        ],
    );
    // A row saslpasswd2 cleared (NULL) is absent: the import fills it.
    pg.query("INSERT INTO sasldb VALUES ('alice', 'example.org', 'userPassword', NULL)");
    let out = ok(&import(&s, &bdb, &url, &["--dry-run"]));
    assert!(
        out.contains("import (dry run, nothing written): 3 records from")
            && out.contains("(Berkeley DB hash) into postgresql://sasl@127.0.0.1:")
            && out.contains("3 added, 0 replaced, 0 unchanged"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");
    assert_eq!(pg.rows(), ["alice|example.org|userPassword|<null>"]);
    let out = ok(&import(&s, &bdb, &url, &[]));
    assert!(out.contains("3 added, 0 replaced, 0 unchanged"), "{out}");
    assert_eq!(
        pg.rows(),
        [
            "alice|example.org|userPassword|pw-alice",
            "bob|example.org|authPassword|SCRAM-SHA-256$4096:c2FsdA==$a:b",
            "bob|example.org|userPassword|pw-bob",
        ]
    );
    let o = ok(&tool(
        &s,
        SASLPASSWD,
        &["--check", "-p", "-f", &url, "alice@example.org"],
        Some(b"pw-alice"),
    ));
    assert!(o.contains("password matches"), "{o}");
    // Again: nothing changes.
    let out = ok(&import(&s, &bdb, &url, &[]));
    assert!(out.contains("0 added, 0 replaced, 3 unchanged"), "{out}");
    // GDBM (Fedora, Arch) with another value for alice: a conflict, named; nothing written.
    let gdb = s.path("old.gdbm");
    let line = |u: &str, v: &str| {
        format!(
            "{} {}\n",
            hex(&key(u, "example.org", "userPassword")),
            hex(v.as_bytes())
        )
    };
    let input = format!("{}{}", line("alice", "changed"), line("dave", "pw-dave"));
    gdbm(
        &["write", gdb.to_str().expect("path"), "0", "0"],
        input.as_bytes(),
    );
    failed(
        &import(&s, &gdb, &url, &[]),
        "1 account(s) already hold different values: alice@example.org; nothing was written",
    );
    assert_eq!(pg.rows().len(), 3);
    let out = ok(&import(&s, &gdb, &url, &["--replace"]));
    assert!(
        out.contains("(GDBM)") && out.contains("1 added, 1 replaced, 0 unchanged"),
        "{out}"
    );
    assert_eq!(
        pg.query(
            "SELECT authid || '=' || value FROM sasldb WHERE property = 'userPassword' ORDER BY 1"
        ),
        "alice=changed\nbob=pw-bob\ndave=pw-dave\n"
    );
    // LMDB (ours, upstream Cyrus).
    let lmdb = s.db();
    let o = tool(
        &s,
        SASLPASSWD,
        &[
            "-p",
            "-c",
            "-u",
            "lmdb.org",
            "-f",
            lmdb.to_str().expect("path"),
            "erin",
        ],
        Some(b"pw-erin"),
    );
    ok(&o);
    let out = ok(&import(&s, &lmdb, &url, &[]));
    assert!(out.contains("(LMDB)") && out.contains("1 added"), "{out}");
    assert!(
        pg.rows()
            .contains(&"erin|lmdb.org|userPassword|pw-erin".to_string())
    );
    // A damaged source is refused before the database is touched.
    let broken = s.path("broken.bdb");
    let mut bytes = std::fs::read(&bdb).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&broken, bytes).expect("write");
    let before = pg.rows();
    let o = import(&s, &broken, &url, &["--replace"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.bdb"), "{}", stderr(&o));
    assert_eq!(pg.rows(), before);
}

fn binary_and_empty_values_are_refused_by_name_or_skipped_and_listed() {
    need("db5.3_load", "db5.3-util");
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    let bdb = s.path("legacy.bdb");
    hash_load(
        &bdb,
        vec![
            rec("alice", "example.org", "userPassword", b"pw-alice"),
            // Old Cyrus: a binary CRAM-MD5 secret.
            rec(
                "bob",
                "example.org",
                "cmusaslsecretCRAM-MD5",
                b"\x8f\x00\xff\x10binary",
            ),
            rec("bob", "example.org", "userPassword", b"pw-bob"),
            // An empty secret: Cyrus's sql plugin would accept an empty password.
            rec("carol", "example.org", "userPassword", b""),
        ],
    );
    let err = failed(
        &import(&s, &bdb, &url, &[]),
        "2 record(s) a PostgreSQL text column cannot hold: ",
    );
    assert!(
        err.contains("bob@example.org cmusaslsecretCRAM-MD5 (not UTF-8 text)"),
        "{err}"
    );
    assert!(
        err.contains("carol@example.org userPassword (an empty value)"),
        "{err}"
    );
    assert!(
        err.contains("nothing was written (--skip-unstorable"),
        "{err}"
    );
    assert!(pg.rows().is_empty(), "{:?}", pg.rows());
    let out = ok(&import(&s, &bdb, &url, &["--skip-unstorable", "--dry-run"]));
    assert!(out.contains("would skip 2 record(s)"), "{out}");
    assert!(pg.rows().is_empty());
    let out = ok(&import(&s, &bdb, &url, &["--skip-unstorable"]));
    assert!(
        out.contains("4 records") && out.contains("2 added"),
        "{out}"
    );
    assert!(out.contains("skipped 2 record(s)"), "{out}");
    assert!(
        out.contains("  bob@example.org cmusaslsecretCRAM-MD5 (not UTF-8 text)"),
        "{out}"
    );
    assert_eq!(
        pg.rows(),
        [
            "alice|example.org|userPassword|pw-alice",
            "bob|example.org|userPassword|pw-bob",
        ]
    );
    // The option means nothing for an LMDB target, and nothing without --import.
    let db = s.db();
    let o = import(&s, &bdb, db.to_str().expect("path"), &["--skip-unstorable"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--skip-unstorable applies to a PostgreSQL store"),
        "{}",
        stderr(&o)
    );
    assert!(!db.exists());
    let o = tool(
        &s,
        SASLPASSWD,
        &["--skip-unstorable", "-f", &url, "x"],
        None,
    );
    assert!(
        stderr(&o).contains("--skip-unstorable goes with --import"),
        "{}",
        stderr(&o)
    );
}

crate::tests!(
    berkeley_gdbm_and_lmdb_files_go_into_the_table,
    binary_and_empty_values_are_refused_by_name_or_skipped_and_listed,
);
