//! Our extensions: --format, --realm, --check, --dry-run, --password-fd.

use super::*;

// ------------------------------------------------------------------------------------------
// Our extensions: --format, --realm, --check, --dry-run, --password-fd
// ------------------------------------------------------------------------------------------

fn listing_formats_and_realm_filter() {
    let scratch = Scratch::new();
    let s = Side::new(scratch.dir.path(), Tool::Ours);
    s.run(
        Prog::Passwd,
        &["-p", "-u", "ex.org", "-f", "$T/db", "alice"],
        Input::Bytes(b"s3cretA"),
    );
    s.run(
        Prog::Passwd,
        &["-n", "-p", "-u", "ex.org", "-f", "$T/db", "bob"],
        Input::Bytes(b"pencil-b"),
    );
    s.run(
        Prog::Passwd,
        &["-p", "-f", "$T/db", "carl@other.org"],
        Input::Bytes(b"x1"),
    );
    s.plant("db", &[(&key("alice", "ex.org", "foo"), b"bar-value")]);
    let verifier = value_of(&s.records("db"), &key("bob", "ex.org", "authPassword"))
        .unwrap()
        .to_string();
    // Every secret byte string that must never be printed: the passwords, a planted value,
    // and each base64 part of bob's SCRAM verifier (salt, StoredKey, ServerKey).
    let mut secrets: Vec<String> = ["s3cretA", "pencil-b", "bar-value", "x1"]
        .map(String::from)
        .to_vec();
    secrets.extend(verifier.split(['$', ':']).skip(2).map(String::from));
    assert_eq!(secrets.len(), 7, "{verifier}");

    let r = s.run(
        Prog::List,
        &["-f", "$T/db", "--format", "json"],
        Input::Null,
    );
    assert_eq!((r.rc, r.err.as_str()), (0, ""), "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(doc["schema"], "sasldb-list/1");
    assert_eq!(doc["path"], "$T/db");
    assert_eq!(doc["malformed_keys"], 0);
    let accounts = doc["accounts"].as_array().expect("accounts");
    let summary: Vec<(String, String, Vec<String>)> = accounts
        .iter()
        .map(|a| {
            let strs = |v: &serde_json::Value| -> Vec<String> {
                v.as_array()
                    .expect("array")
                    .iter()
                    .map(|x| x.as_str().expect("str").to_string())
                    .collect()
            };
            assert!(a["mechanisms"].is_array());
            (
                a["user"].as_str().unwrap().into(),
                a["realm"].as_str().unwrap().into(),
                strs(&a["properties"]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "alice".into(),
                "ex.org".into(),
                vec!["foo".into(), "userPassword".into()]
            ),
            ("bob".into(), "ex.org".into(), vec!["authPassword".into()]),
            (
                "carl".into(),
                "other.org".into(),
                vec!["userPassword".into()]
            ),
        ]
    );
    // A -n account logs in over SCRAM and, through its verifier, PLAIN
    // and LOGIN: the listing says what login decides.
    assert_eq!(
        accounts[1]["mechanisms"],
        serde_json::json!(["PLAIN", "LOGIN", "SCRAM-SHA-256"])
    );
    assert!(
        accounts[0]["mechanisms"]
            .as_array()
            .unwrap()
            .contains(&"PLAIN".into())
    );

    let table = s.run(
        Prog::List,
        &["-f", "$T/db", "--format", "table"],
        Input::Null,
    );
    assert_eq!(table.rc, 0);
    for w in [
        "user",
        "realm",
        "properties",
        "mechanisms",
        "alice",
        "ex.org",
        "bob",
        "SCRAM-SHA-256",
        "carl",
    ] {
        assert!(table.out.contains(w), "table lacks {w}: {}", table.out);
    }
    let compat = s.run(
        Prog::List,
        &["-f", "$T/db", "--realm", "ex.org"],
        Input::Null,
    );
    assert_eq!(
        compat.out,
        "alice@ex.org: foo\nalice@ex.org: userPassword\nbob@ex.org: authPassword\n"
    );
    let only = s.run(
        Prog::List,
        &["--realm", "other.org", "--format", "json", "$T/db"],
        Input::Null,
    );
    let doc: serde_json::Value = serde_json::from_str(&only.out).expect("json");
    assert_eq!(doc["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["accounts"][0]["user"], "carl");
    // Never a secret, in any view.
    for out in [&r.out, &table.out, &compat.out, &only.out] {
        for secret in &secrets {
            assert!(!out.contains(secret.as_str()), "{secret} printed");
        }
        assert!(!out.contains("SCRAM-SHA-256$"), "verifier printed");
    }
    // Missing store: exit 1 in these modes (0 in the Cyrus view), nothing created.
    for fmt in ["json", "table"] {
        let r = s.run(
            Prog::List,
            &["-f", "$T/missing", "--format", fmt],
            Input::Null,
        );
        assert_eq!((r.rc, r.out.as_str()), (1, ""), "{fmt}: {r:?}");
        assert!(r.err.contains("$T/missing"), "{r:?}");
        assert!(!s.p("missing").exists() && !s.p("missing-lock").exists());
    }
    let r = s.run(
        Prog::List,
        &["-f", "$T/missing", "--realm", "x"],
        Input::Null,
    );
    assert_eq!((r.rc, r.err.lines().last()), (0, Some("listusers failed")));
}

fn check_outcomes() {
    let s = Scratch::new();
    let s = Side::new(s.dir.path(), Tool::Ours);
    s.run(
        Prog::Passwd,
        &["-p", "-f", "$T/db", "alice@ex.org"],
        Input::Bytes(b"secret\n"),
    );
    s.run(
        Prog::Passwd,
        &["-n", "-p", "-f", "$T/db", "bob@ex.org"],
        Input::Bytes(b"pencil\n"),
    );
    s.plant("db", &[(&key("carl", "ex.org", "foo"), b"bar")]);
    let check = |user: &str, pw: &[u8]| {
        s.run(
            Prog::Passwd,
            &["--check", "-f", "$T/db", user],
            Input::Bytes(pw),
        )
    };
    for (user, pw) in [
        ("alice@ex.org", &b"secret\n"[..]),
        ("bob@ex.org", b"pencil"),
    ] {
        let r = check(user, pw);
        assert_eq!(r.rc, 0, "{user}: {r:?}");
        assert!(r.out.contains("password matches"), "{r:?}");
    }
    let failures = [
        ("alice@ex.org", &b"Secret\n"[..], "wrong password"),
        ("bob@ex.org", b"pencil2", "wrong password"),
        ("dave@ex.org", b"x", "unknown user"),
        ("alice@nowhere.org", b"x", "unknown realm"),
        ("carl@ex.org", b"x", "no usable secret"),
    ];
    let mut messages = Vec::new();
    for (user, pw, what) in failures {
        let r = check(user, pw);
        assert_eq!((r.rc, r.out.as_str()), (1, ""), "{user}: {r:?}");
        let prefix = format!("saslpasswd: {user}: ");
        assert!(
            r.err.starts_with(&prefix) && r.err.contains(what),
            "{user}: {r:?}"
        );
        assert!(
            !r.err.contains("secret\n") && !r.err.contains("pencil"),
            "password echoed: {r:?}"
        );
        // The reason, without the names in it.
        let reason = r.err[prefix.len()..]
            .split(['"', '('])
            .next()
            .unwrap_or_default()
            .to_string();
        messages.push(reason);
    }
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), 4, "four distinct outcomes: {messages:?}");
    let r = check("alice", b"secret");
    assert_eq!(r.rc, 1, "default realm is the host name, not ex.org: {r:?}");
    let r = s.run(
        Prog::Passwd,
        &["--check", "-f", "$T/missing", "a"],
        Input::Bytes(b"x"),
    );
    assert_eq!(r.rc, 1);
    assert!(!s.p("missing").exists());
    let r = s.run(
        Prog::Passwd,
        &["--check", "-c", "-f", "$T/db", "a"],
        Input::Bytes(b"x"),
    );
    assert_eq!(r.rc, 1);
}

fn dry_run_writes_nothing() {
    let s = Scratch::new();
    let s = Side::new(s.dir.path(), Tool::Ours);
    let r = s.run(
        Prog::Passwd,
        &["--dry-run", "-p", "-f", "$T/new", "alice"],
        Input::Bytes(b"pw\n"),
    );
    assert_eq!(r.rc, 0, "{r:?}");
    assert!(r.out.contains("would be created"), "{r:?}");
    assert!(
        !s.p("new").exists() && !s.p("new-lock").exists(),
        "dry run created the store"
    );
    s.run(
        Prog::Passwd,
        &["-p", "-f", "$T/db", "alice"],
        Input::Bytes(b"pw\n"),
    );
    let before = (s.records("db"), fs::read(s.p("db")).unwrap());
    for (args, what) in [
        (
            &["--dry-run", "-p", "-f", "$T/db", "alice"][..],
            "unchanged",
        ),
        (
            &["--dry-run", "-p", "-f", "$T/db", "bob"],
            "would be created",
        ),
        (
            &["--dry-run", "-d", "-f", "$T/db", "alice"],
            "would be deleted",
        ),
    ] {
        let r = s.run(Prog::Passwd, args, Input::Bytes(b"pw\n"));
        assert_eq!(r.rc, 0, "{r:?}");
        assert!(r.out.contains(what), "{args:?}: {r:?}");
    }
    let r = s.run(
        Prog::Passwd,
        &["--dry-run", "-p", "-f", "$T/db", "alice"],
        Input::Bytes(b"other\n"),
    );
    assert!(r.out.contains("would be updated"), "{r:?}");
    assert_eq!(
        (s.records("db"), fs::read(s.p("db")).unwrap()),
        before,
        "store changed"
    );
}

fn password_fd() {
    let s = Scratch::new();
    let s = Side::new(s.dir.path(), Tool::Ours);
    fs::write(s.p("pwfile"), b"fdpass\n").unwrap();
    let r = s.sh_cmd(
        "--password-fd",
        "echo stdinpass | saslpasswd2 --password-fd 3 -c -f $T/db fd 3< $T/pwfile",
    );
    assert_eq!((r.rc, r.err.as_str()), (0, ""), "{r:?}");
    let recs = s.records("db");
    assert_eq!(
        value_of(&recs, &key("fd", realm(), "userPassword")),
        Some("fdpass")
    );
    let r = s.sh_cmd(
        "--password-fd",
        "saslpasswd2 --password-fd 3 --check -f $T/db fd 3< $T/pwfile",
    );
    assert_eq!(r.rc, 0, "{r:?}");
    // A descriptor that is not open: the read error, exit 1, nothing written.
    let r = s.sh_cmd(
        "--password-fd",
        "saslpasswd2 --password-fd 7 -f $T/db fd7 7<&-",
    );
    assert_eq!(
        (r.rc, r.err.as_str()),
        (1, "saslpasswd: Bad file descriptor\n")
    );
    assert_eq!(s.records("db").len(), 1);
}

crate::tests!(
    listing_formats_and_realm_filter,
    check_outcomes,
    dry_run_writes_nothing,
    password_fd,
);
