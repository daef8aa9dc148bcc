//! spec §4: sasldblistusers2, side by side with Debian's.

use super::*;

// ------------------------------------------------------------------------------------------
// spec §4: sasldblistusers2, side by side with Debian
// ------------------------------------------------------------------------------------------

fn sasldblistusers_command_line_side_by_side() {
    let pair = Pair::new();
    for user in ["bob", "alice"] {
        pair.same(
            user,
            Prog::Passwd,
            &["-c", "-p", "-u", "ex.org", "-f", "$T/db", user],
            b"pw\n",
            EXACT,
        );
    }
    let listing = "alice@ex.org: userPassword\nbob@ex.org: userPassword\n";
    for args in [
        &["-f", "$T/db"][..],
        &["$T/db"],
        &["-f$T/db"],
        &["-f", "$T/nope", "-f", "$T/db"],
    ] {
        let r = pair.same(&format!("{args:?}"), Prog::List, args, b"", SORTED);
        assert_eq!(r.out, listing, "{args:?}: LMDB key order");
    }
    for args in [
        &["-v"][..],
        &["-v", "extra", "args"],
        &["-x", "-v"],
        &["-h", "-v"],
        &["-?", "-v"],
        &["-v", "-f"],
    ] {
        pair.same(&format!("{args:?}"), Prog::List, args, b"", VERSION);
    }
    // Usage (exit 1); "Unrecognized command line option" last when the last bad thing was an
    // unknown option or -?, not after -h.
    for args in [
        &["-h"][..],
        &["-"],
        &["-f", "$T/db", "extra"],
        &["$T/db", "extra"],
        &["--", "$T/db"],
        &["-f", "$T/db", "--", "x"],
        &["-h", "extra"],
        &["-x"],
        &["-?"],
        &["-x", "-x"],
        &["-x", "-h"],
        &["-h", "-x"],
        &["-x", "-f"],
        &["-f"],
        &["-f", "$T/db", "-?"],
        &["$T/db", "-x"],
    ] {
        let r = pair.same(&format!("{args:?}"), Prog::List, args, b"", EXACT);
        assert_eq!(r.rc, 1, "{args:?}");
        assert_eq!(r.out, "");
    }
    let r = pair.ours.run(Prog::List, &["-x"], Input::Null);
    assert_eq!(
        r.err.lines().last(),
        Some("Unrecognized command line option")
    );
    assert_eq!(
        r.err.lines().next(),
        Some("sasldblistusers: invalid option -- 'x'")
    );
    let r = pair.ours.run(Prog::List, &["-x", "-h"], Input::Null);
    assert_eq!(
        r.err.lines().last(),
        Some("\t-v\tprint version numbers and exit")
    );

    // Failures: exit 0 and "listusers failed" last, after our detail line.
    fs::write(pair.ours.p("notdb"), b"not a database, just text\n").unwrap();
    fs::write(pair.cy.p("notdb"), b"not a database, just text\n").unwrap();
    for (what, path, needle) in [
        ("missing", "$T/missing", "$T/missing"),
        ("directory", "$T", "$T"),
        ("not a DB", "$T/notdb", "$T/notdb"),
    ] {
        let r = pair.same(what, Prog::List, &["-f", path], b"", detail(&[needle]));
        assert_eq!(
            (r.rc, r.err.lines().last()),
            (0, Some("listusers failed")),
            "{what}"
        );
    }
    for side in [&pair.ours, &pair.cy] {
        assert!(!side.p("missing").exists(), "missing file created");
    }
    for p in ["missing-lock", "notdb-lock"] {
        assert!(!pair.ours.p(p).exists(), "{p} created");
    }
    assert_eq!(
        fs::read(pair.ours.p("notdb")).unwrap(),
        b"not a database, just text\n"
    );
    assert!(!pair.root().join("ours-lock").exists());
    // A failed write to a non-LMDB file leaves it untouched and no lock behind (DELIBERATE:
    // the LMDB build leaves `<path>-lock`).
    let r = pair.same(
        "write not a DB",
        Prog::Passwd,
        &["-p", "-f", "$T/notdb", "a"],
        b"pw\n",
        detail(&["$T/notdb"]),
    );
    assert_eq!(r.rc, 1);
    assert!(!pair.ours.p("notdb-lock").exists());
    assert_eq!(
        fs::read(pair.ours.p("notdb")).unwrap(),
        b"not a database, just text\n"
    );

    // A 0-byte file: our listing prints nothing and exits 0, creating nothing. (Debian's
    // Berkeley DB refuses it: "listusers failed"; undocumented in the spec for the LMDB
    // build.) A write adopts it, as both Cyrus builds do.
    fs::write(pair.ours.p("zero"), b"").unwrap();
    fs::write(pair.cy.p("zero"), b"").unwrap();
    let (cy, ours) = pair.both_env(Prog::List, &["-f", "$T/zero"], &|| Input::Null, &[]);
    assert_eq!(
        ours,
        Run {
            rc: 0,
            out: String::new(),
            err: String::new()
        }
    );
    assert_eq!(
        (cy.rc, cy.err.lines().last()),
        (0, Some("listusers failed"))
    );
    assert_eq!(fs::metadata(pair.ours.p("zero")).unwrap().len(), 0);
    assert!(!pair.ours.p("zero-lock").exists());
    pair.same(
        "write 0-byte",
        Prog::Passwd,
        &["-p", "-f", "$T/zero", "z"],
        b"pw\n",
        EXACT,
    );
    pair.same_records("0-byte adopted", "zero");
    let r = pair.same("list adopted", Prog::List, &["-f", "$T/zero"], b"", EXACT);
    assert_eq!(r.out, format!("z@{}: userPassword\n", realm()));
}

fn symlinked_store_path_is_refused() {
    let pair = Pair::new();
    for side in [&pair.ours, &pair.cy] {
        let r = side.run(
            Prog::Passwd,
            &["-c", "-p", "-f", "$T/real", "sym"],
            Input::Bytes(b"pw\n"),
        );
        assert_eq!(r.rc, 0);
        std::os::unix::fs::symlink(side.p("real"), side.p("link")).unwrap();
    }
    let before = fs::read(pair.ours.p("real")).unwrap();
    // Debian follows the link.
    let cy = pair.cy.run(
        Prog::Passwd,
        &["-p", "-f", "$T/link", "other"],
        Input::Bytes(b"pw\n"),
    );
    assert_eq!(cy.rc, 0);
    assert_eq!(pair.cy.records("real").len(), 2);
    // DELIBERATE: ours refuses a symlinked path (LMDB would put the lock beside the link).
    let want = Run {
        rc: 1,
        out: String::new(),
        err: "saslpasswd: generic failure\n".into(),
    };
    let ours = pair.ours.run(
        Prog::Passwd,
        &["-p", "-f", "$T/link", "other"],
        Input::Bytes(b"pw\n"),
    );
    assert_like(
        "write via symlink",
        &want,
        &ours,
        detail(&["$T/link", "symbolic link"]),
    );
    assert_eq!(
        fs::read(pair.ours.p("real")).unwrap(),
        before,
        "store untouched"
    );
    assert!(
        !pair.ours.p("link-lock").exists(),
        "no lock beside the link"
    );
    let want = Run {
        rc: 0,
        out: String::new(),
        err: "listusers failed\n".into(),
    };
    let ours = pair.ours.run(Prog::List, &["-f", "$T/link"], Input::Null);
    assert_like(
        "list via symlink",
        &want,
        &ours,
        detail(&["$T/link", "symbolic link"]),
    );
    let cy = pair.cy.run(Prog::List, &["-f", "$T/link"], Input::Null);
    assert_eq!(
        (cy.rc, cy.out.lines().count()),
        (0, 2),
        "Debian lists through the link"
    );
}

crate::tests!(
    sasldblistusers_command_line_side_by_side,
    symlinked_store_path_is_refused,
);
