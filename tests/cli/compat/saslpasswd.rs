//! spec §3: saslpasswd2's command line, side by side with Debian's.

use super::*;

// ------------------------------------------------------------------------------------------
// spec §3: saslpasswd2 command line, side by side with Debian
// ------------------------------------------------------------------------------------------

fn saslpasswd_command_line_side_by_side() {
    let pair = Pair::new();
    let realm = realm();
    let pw = b"pw\n";
    // Options after the userid (glibc permutes).
    pair.same(
        "options after userid",
        Prog::Passwd,
        &["-f", "$T/db", "alice", "-c", "-p"],
        pw,
        EXACT,
    );
    // `--` ends options: a user named `-dash`.
    pair.same(
        "-- then -dash",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "--", "-dash"],
        pw,
        EXACT,
    );
    // Clustered flags and an attached option argument.
    pair.same(
        "clustered",
        Prog::Passwd,
        &["-cpf$T/db", "-uclu.example", "zed"],
        pw,
        EXACT,
    );
    pair.same_records("permutation", "db");
    let recs = pair.ours.records("db");
    for k in [
        key("alice", realm, "userPassword"),
        key("-dash", realm, "userPassword"),
        key("zed", "clu.example", "userPassword"),
    ] {
        assert_eq!(value_of(&recs, &k), Some("pw"), "{k:?}");
    }
    // Repeated -u / -f: the last wins; the first file is never created.
    pair.same(
        "repeated -u -f",
        Prog::Passwd,
        &[
            "-p",
            "-u",
            "r1",
            "-u",
            "r2",
            "-f",
            "$T/first",
            "-f",
            "$T/second",
            "carl",
        ],
        pw,
        EXACT,
    );
    pair.same_records("repeated -u -f", "second");
    assert_eq!(
        value_of(
            &pair.ours.records("second"),
            &key("carl", "r2", "userPassword")
        ),
        Some("pw")
    );
    for side in [&pair.ours, &pair.cy] {
        assert!(!side.p("first").exists() && !side.p("first-lock").exists());
    }
    // -v acts as soon as it is parsed: other flags, operands, even errors before it.
    for args in [
        &["-c", "-v", "alice"][..],
        &["-f", "$T/vdb", "-c", "-v", "alice"],
        &["-v", "-x"],
        &["-x", "-v"],
        &["-h", "-v"],
        &["-?", "-v"],
        &["-c", "-d", "-v"],
    ] {
        pair.same(&format!("{args:?}"), Prog::Passwd, args, b"", VERSION);
    }
    assert!(!pair.ours.p("vdb").exists() && !pair.cy.p("vdb").exists());
    // Usage errors (exit 1): -h, -?, -c with -d in either order, operand count, missing
    // option arguments, unknown options (each reported), -a with a slash (checked while
    // parsing, before everything else).
    for args in [
        &["-h"][..],
        &["-?"],
        &["-h", "alice"],
        &["-?", "alice"],
        &["-c", "-d", "alice"],
        &["-d", "-c", "alice"],
        &["-cd", "alice"],
        &["-f", "$T/db", "a", "b"],
        &["-f", "$T/db"],
        &[],
        &["-f"],
        &["-u"],
        &["-a"],
        &["-x", "alice"],
        &["-x", "-x", "alice"],
        &["-x", "-Z", "-f"],
        &["-a", "foo/bar", "alice"],
        &["-a", "foo/bar"],
        &["-x", "-a", "foo/bar", "alice"],
        &["-h", "-a", "foo/bar"],
        &["-a", "foo/bar", "-x"],
        &["-c", "-d", "-a", "a/b", "alice"],
    ] {
        let r = pair.same(&format!("{args:?}"), Prog::Passwd, args, pw, EXACT);
        assert_eq!(r.rc, 1, "{args:?}");
    }
    let r = pair
        .ours
        .run(Prog::Passwd, &["-a", "foo/bar", "alice"], Input::Null);
    assert_eq!(r.err, "appname must not contain /\n");
    // glibc's getopt names argv[0] as given: a full path stays a full path.
    let cy = pair.cy.exec(
        Prog::Passwd,
        "/usr/sbin/saslpasswd2",
        &["-x", "-h"],
        Input::Null,
        &[],
    );
    let ours = pair.ours.exec(
        Prog::Passwd,
        "/usr/sbin/saslpasswd",
        &["-x", "-h"],
        Input::Null,
        &[],
    );
    assert_like("full argv[0]", &cy, &ours, EXACT);
    assert!(
        ours.err
            .starts_with("/usr/sbin/saslpasswd: invalid option -- 'x'\n"),
        "{ours:?}"
    );
    assert!(
        ours.err.contains("\nsaslpasswd: usage: saslpasswd [-v]"),
        "{ours:?}"
    );
}

fn saslpasswd_config_errors_side_by_side() {
    let pair = Pair::new();
    pair.conf(
        "bad",
        "saslpasswd",
        "sasldb_path: /nowhere\nno colon on this line\n",
    );
    pair.conf("bad", "myapp", "# comment\n\nkey_without_value:\n");
    pair.conf("nomech", "saslpasswd", "auxprop_plugin: nonexistent\n");
    pair.conf("sasldb", "saslpasswd", "auxprop_plugin: sasldb\n");
    let closed = || Input::Closed;
    // The config is read before the password: a malformed file wins over a closed stdin.
    let r = pair.same_env(
        "malformed conf, stdin closed",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "x"],
        &closed,
        &[("SASL_CONF_PATH", "$T/bad")],
        detail(&["$T/bad/saslpasswd.conf", "line 2"]),
    );
    assert_eq!(r.rc, 100);
    assert!(
        r.err
            .ends_with("saslpasswd: error when parsing configuration file\n")
    );
    // -a picks <appname>.conf.
    let r = pair.same_env(
        "malformed myapp.conf",
        Prog::Passwd,
        &["-a", "myapp", "-d", "-f", "$T/db", "x"],
        &|| Input::Null,
        &[("SASL_CONF_PATH", "$T/bad")],
        detail(&["$T/bad/myapp.conf", "line 3"]),
    );
    assert_eq!(r.rc, 100);
    let r = pair.same_env(
        "auxprop_plugin: nonexistent",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "x"],
        &|| Input::Bytes(b"pw\n"),
        &[("SASL_CONF_PATH", "$T/nomech")],
        detail(&["auxprop_plugin", "nonexistent"]),
    );
    assert_eq!(r.rc, 4);
    assert!(r.err.ends_with("saslpasswd: no mechanism available\n"));
    for side in [&pair.ours, &pair.cy] {
        assert!(!side.p("db").exists(), "no store on config errors");
    }
    pair.same_env(
        "auxprop_plugin: sasldb",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "x"],
        &|| Input::Bytes(b"pw\n"),
        &[("SASL_CONF_PATH", "$T/sasldb")],
        EXACT,
    );
    pair.same_records("auxprop_plugin: sasldb", "db");
    // sasldblistusers: a malformed sasldblistusers.conf.
    pair.conf("bad", "sasldblistusers", "x y z\n");
    let r = pair.same_env(
        "malformed sasldblistusers.conf",
        Prog::List,
        &["-f", "$T/db"],
        &|| Input::Null,
        &[("SASL_CONF_PATH", "$T/bad")],
        detail(&["$T/bad/sasldblistusers.conf"]),
    );
    assert_eq!(
        (r.rc, r.err.lines().last()),
        (1, Some("Couldn't initialize server API"))
    );
}

fn password_input_rules_side_by_side() {
    let pair = Pair::new();
    let realm = realm();
    let cases: &[(&str, &[u8], &[u8])] = &[
        ("nonl", b"abc", b"abc"),
        ("twonl", b"abc\n\n", b"abc\n"),
        ("crlf", b"abc\r\n", b"abc\r"),
        ("twolines", b"line1\nline2\n", b"line1\nline2"),
        ("spaces", b"  sp  \n", b"  sp  "),
        ("nul", b"ab\0cd\n", b"ab"),
        ("utf8", "pässwörd\n".as_bytes(), "pässwörd".as_bytes()),
    ];
    for (user, input, _) in cases {
        pair.same(
            user,
            Prog::Passwd,
            &["-c", "-p", "-f", "$T/db", user],
            input,
            EXACT,
        );
    }
    // One read of at most 2048 bytes: 5000 bytes in, 2048 stored.
    let big: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();
    pair.same(
        "5000 bytes",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "big"],
        &big,
        EXACT,
    );
    // Without -p: stdin is not a terminal, so pipe mode anyway.
    pair.same(
        "no -p",
        Prog::Passwd,
        &["-c", "-f", "$T/db", "auto"],
        b"pw\n",
        EXACT,
    );
    pair.same_records("pipe input", "db");
    let recs = pair.ours.records("db");
    for (user, _, stored) in cases {
        let v = recs
            .iter()
            .find(|(k, _)| *k == key(user, realm, "userPassword"));
        assert_eq!(v.map(|(_, v)| v.as_slice()), Some(*stored), "{user}");
    }
    assert_eq!(
        value_of(&recs, &key("big", realm, "userPassword")).map(str::len),
        Some(2048)
    );
    assert_eq!(
        value_of(&recs, &key("big", realm, "userPassword"))
            .unwrap()
            .as_bytes(),
        &big[..2048]
    );
    // Empty password: newline only, or nothing at all.
    for (what, input) in [("newline", &b"\n"[..]), ("EOF", b"")] {
        let r = pair.same(
            what,
            Prog::Passwd,
            &["-c", "-p", "-f", "$T/db", "empty"],
            input,
            EXACT,
        );
        assert_eq!(
            (r.rc, r.err.as_str()),
            (7, "saslpasswd: invalid parameter supplied\n")
        );
    }
    // read() errors: stdin closed, stdin a directory.
    let r = pair.same_env(
        "stdin closed",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "u"],
        &|| Input::Closed,
        &[],
        EXACT,
    );
    assert_eq!(
        (r.rc, r.err.as_str()),
        (1, "saslpasswd: Bad file descriptor\n")
    );
    let r = pair.same_env(
        "stdin a directory",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "u"],
        &|| Input::From(Path::new("/")),
        &[],
        EXACT,
    );
    assert_eq!((r.rc, r.err.as_str()), (1, "saslpasswd: Is a directory\n"));
    // None of the failures wrote anything.
    pair.same_records("after failures", "db");
    assert!(
        !pair
            .ours
            .records("db")
            .iter()
            .any(|(k, _)| k.starts_with(b"empty\0") || k.starts_with(b"u\0"))
    );
}

fn delete_side_by_side() {
    let pair = Pair::new();
    // -d on a missing file succeeds and creates an empty store (no password is read).
    let r = pair.same_env(
        "-d missing file",
        Prog::Passwd,
        &["-d", "-f", "$T/db", "ghost"],
        &|| Input::Closed,
        &[],
        EXACT,
    );
    assert_eq!(r.rc, 0);
    assert!(pair.cy.p("db").exists());
    assert_eq!(
        fs::metadata(pair.ours.p("db")).unwrap().len(),
        8192,
        "two meta pages"
    );
    assert!(pair.ours.p("db-lock").exists());
    assert!(pair.ours.records("db").is_empty() && pair.cy.records("db").is_empty());
    // -c on an existing user overwrites; no -c on a missing user creates.
    pair.same(
        "create",
        Prog::Passwd,
        &["-p", "-f", "$T/db", "ann@Realm.X"],
        b"one\n",
        EXACT,
    );
    pair.same(
        "overwrite",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "ann@Realm.X"],
        b"two\n",
        EXACT,
    );
    pair.same(
        "other user",
        Prog::Passwd,
        &["-c", "-p", "-u", "Realm.X", "-f", "$T/db", "ben"],
        b"b\n",
        EXACT,
    );
    pair.same_records("sets", "db");
    assert_eq!(
        value_of(
            &pair.ours.records("db"),
            &key("ann", "Realm.X", "userPassword")
        ),
        Some("two")
    );
    // Case is kept; lookups are exact: deleting `Ann` or `ann@realm.x` removes nothing.
    for user in ["Ann@Realm.X", "ann@realm.x", "ann"] {
        pair.same(user, Prog::Passwd, &["-d", "-f", "$T/db", user], b"", EXACT);
    }
    assert_eq!(pair.ours.records("db").len(), 2);
    pair.same(
        "-d",
        Prog::Passwd,
        &["-d", "-p", "-u", "Realm.X", "-f", "$T/db", "ann"],
        b"",
        EXACT,
    );
    pair.same_records("-d", "db");
    let recs = pair.ours.records("db");
    assert_eq!(
        show(&recs),
        show(&[(key("ben", "Realm.X", "userPassword"), b"b".to_vec())])
    );
    // A failed -d (directory missing) is a generic failure on both sides.
    let r = pair.same(
        "-d missing dir",
        Prog::Passwd,
        &["-d", "-f", "$T/nodir/db", "ann"],
        b"",
        detail(&["$T/nodir/db"]),
    );
    assert_eq!(r.rc, 1);
}

fn noplain_and_delete_secrets_differ_deliberately() {
    let pair = Pair::new();
    let realm = realm();
    // A user with a cleartext password, then `-n` with a new one.
    pair.same(
        "set",
        Prog::Passwd,
        &["-c", "-p", "-f", "$T/db", "nora"],
        b"old\n",
        EXACT,
    );
    pair.same(
        "-n",
        Prog::Passwd,
        &["-c", "-n", "-p", "-f", "$T/db", "nora"],
        b"new\n",
        EXACT,
    );
    // Cyrus (no scram_secret_generate): -n stores nothing, the old password stays valid.
    let theirs = pair.cy.records("db");
    assert_eq!(
        show(&theirs),
        show(&[(key("nora", realm, "userPassword"), b"old".to_vec())])
    );
    // DELIBERATE: ours stores a SCRAM-SHA-256 authPassword for the new password and removes
    // the old userPassword.
    let mine = pair.ours.records("db");
    assert_eq!(mine.len(), 1, "{:?}", show(&mine));
    let v = value_of(&mine, &key("nora", realm, "authPassword")).expect("authPassword");
    assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
    assert_eq!(scram_check(&[("new", v), ("old", v)]), vec![Some(16), None]);
    for (pw, rc) in [("new", 0), ("old", 1)] {
        let r = pair.ours.run(
            Prog::Passwd,
            &["--check", "-f", "$T/db", "nora"],
            Input::Bytes(pw.as_bytes()),
        );
        assert_eq!(r.rc, rc, "--check {pw}: {r:?}");
    }
    // The listing shows what is stored (and never the value).
    let r = pair.ours.run(Prog::List, &["-f", "$T/db"], Input::Null);
    assert_eq!(r.out, format!("nora@{realm}: authPassword\n"));

    // A plain set over an authPassword written with scram_secret_generate.
    pair.conf("scram", "saslpasswd", "scram_secret_generate: yes\n");
    let scram = [("SASL_CONF_PATH", "$T/scram")];
    let pw = |b: &'static [u8]| move || Input::Bytes(b);
    pair.same_env(
        "scram set",
        Prog::Passwd,
        &["-p", "-f", "$T/db", "sam"],
        &pw(b"pencil\n"),
        &scram,
        EXACT,
    );
    pair.same(
        "plain set",
        Prog::Passwd,
        &["-p", "-f", "$T/db", "sam"],
        b"newpw\n",
        EXACT,
    );
    let sam = key("sam", realm, "authPassword");
    // Cyrus keeps the stale SCRAM verifier: `pencil` still logs in over SCRAM.
    let stale = value_of(&pair.cy.records("db"), &sam)
        .expect("Debian keeps authPassword")
        .to_string();
    assert_eq!(scram_check(&[("pencil", &stale)]), vec![Some(16)]);
    // DELIBERATE (not in the README table; see secret::changes_for_set): ours removes it, so
    // the old password stops working everywhere.
    assert!(value_of(&pair.ours.records("db"), &sam).is_none());
    // -d: DELIBERATE: ours always removes authPassword; Cyrus keeps it without
    // scram_secret_generate.
    pair.same_env(
        "scram set 2",
        Prog::Passwd,
        &["-p", "-f", "$T/db", "dora"],
        &pw(b"pencil\n"),
        &scram,
        EXACT,
    );
    pair.same(
        "-d",
        Prog::Passwd,
        &["-d", "-f", "$T/db", "dora"],
        b"",
        EXACT,
    );
    let dora = key("dora", realm, "authPassword");
    assert!(
        value_of(&pair.cy.records("db"), &dora).is_some(),
        "Debian keeps it"
    );
    assert!(
        !pair
            .ours
            .records("db")
            .iter()
            .any(|(k, _)| k.starts_with(b"dora\0"))
    );
}

crate::tests!(
    saslpasswd_command_line_side_by_side,
    saslpasswd_config_errors_side_by_side,
    password_input_rules_side_by_side,
    delete_side_by_side,
    noplain_and_delete_secrets_differ_deliberately,
);
