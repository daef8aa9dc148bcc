//! Sections A, C, D, E and F of the recorded transcripts, replayed.

use super::*;

// ------------------------------------------------------------------------------------------
// Section A: arguments, password input, realms, config errors, sasldblistusers2
// ------------------------------------------------------------------------------------------

fn transcript_a_arguments_input_realms_config() {
    let pair = Pair::new();
    pair.mkdir("E");
    pair.conf("badconf2", "saslpasswd", "this line has no colon\n");
    pair.conf("conf3", "saslpasswd", "auxprop_plugin: nonexistent\n");
    pair.conf("badconf3", "sasldblistusers", "this line has no colon\n");
    let realm = realm();
    let mut sec = Section::new('A');
    while sec.pos < sec.list.len() {
        let sc = sec.next();
        let ctx = format!("A: {}", sc.title);
        let want = expected(&sc);
        let cmp = match sc.title.as_str() {
            "-v" | "list -v" => VERSION,
            // Debian lists in Berkeley DB hash order; ours is checked in LMDB order below.
            "list" => SORTED,
            "malformed saslpasswd.conf" => detail(&["$T/badconf2/saslpasswd.conf", "line 1"]),
            "auxprop_plugin: nonexistent" => detail(&["auxprop_plugin", "nonexistent"]),
            "list missing file" => detail(&["$T/E/nonexist"]),
            "list malformed sasldblistusers.conf" => {
                detail(&["$T/badconf3/sasldblistusers.conf", "line 1"])
            }
            _ => EXACT,
        };
        let ours = pair.ours.sh(&sc);
        let cy = pair.cy.sh(&sc);
        assert_like(&format!("{ctx} (vs transcript)"), &want, &ours, cmp);
        assert_like(&format!("{ctx} (vs Debian)"), &cy, &ours, cmp);
        // Debian itself still behaves as recorded (hash order aside).
        assert_like(&format!("{ctx} (Debian vs transcript)"), &want, &cy, SORTED);

        match sc.title.as_str() {
            "stdin closed" => {
                // The recorded values of the pipe-mode runs: one read, one LF stripped, CR
                // and inner LFs kept, cut at NUL.
                let rec = sorted_records(transcript_dump(&sc.after, 0));
                assert_eq!(
                    show(&pair.ours.records("E/sasldb2")),
                    show(&rec),
                    "{ctx}: ours"
                );
                assert_eq!(
                    show(&pair.cy.records("E/sasldb2")),
                    show(&rec),
                    "{ctx}: Debian"
                );
            }
            "list" => {
                let rec = sorted_records(transcript_dump(&sc.after, 0));
                assert_eq!(
                    show(&pair.ours.records("E/sasldb2")),
                    show(&rec),
                    "{ctx}: ours"
                );
                assert_eq!(
                    show(&pair.cy.records("E/sasldb2")),
                    show(&rec),
                    "{ctx}: Debian"
                );
                // Ours lists in LMDB key order.
                assert_eq!(
                    lines_of(&ours.out),
                    lmdb_order(&lines_of(&want.out)),
                    "{ctx}"
                );
                // The empty forms: '' user, `hank@`, `@onlyrealm`, `gina@a@b`, `-u ''`.
                for k in [
                    key("", realm, "userPassword"),
                    key("hank", "", "userPassword"),
                    key("", "onlyrealm", "userPassword"),
                    key("gina", "a@b", "userPassword"),
                    key("ivan", realm, "userPassword"),
                    key("dave", "Example.COM", "userPassword"),
                    key("frank", "real.example", "userPassword"),
                ] {
                    assert!(rec.iter().any(|(kk, _)| *kk == k), "{ctx}: {k:?}");
                }
            }
            "list missing file" => {
                for side in [&pair.ours, &pair.cy] {
                    assert!(!side.p("E/nonexist").exists(), "{ctx}: file created");
                    assert!(!side.p("E/nonexist-lock").exists(), "{ctx}: lock created");
                }
            }
            "no arguments"
            | "bad flag"
            | "-h"
            | "-c and -d together"
            | "two userids"
            | "-f missing argument"
            | "-v"
            | "-a containing slash" => {
                // Refused before any store is opened: nothing created.
                assert!(!pair.ours.p("E/sasldb2").exists(), "{ctx}: store created");
                assert!(
                    !pair.cy.p("E/sasldb2").exists(),
                    "{ctx}: Debian created a store"
                );
            }
            _ => {}
        }
    }
    sec.finish();
}

// ------------------------------------------------------------------------------------------
// Section C: SCRAM secrets (authPassword)
// ------------------------------------------------------------------------------------------

fn transcript_c_scram_secrets() {
    let pair = Pair::new();
    pair.mkdir("E");
    pair.conf("conf", "saslpasswd", "scram_secret_generate: yes\n");
    pair.conf(
        "conf",
        "myapp",
        "scram_secret_generate: yes\nmech_list: SCRAM-SHA-256 PLAIN\nscram_iteration_counter: 8192\n",
    );
    let realm = realm();
    let db = "E/scram.db";
    let mut sec = Section::new('C');
    let mut lists = 0;
    while sec.pos < sec.list.len() {
        let sc = sec.next();
        let ctx = format!("C: {}", sc.title);
        let want = expected(&sc);
        let ours = pair.ours.sh(&sc);
        let cy = pair.cy.sh(&sc);
        if sc.title == "list" {
            lists += 1;
        }
        if sc.title == "list" && lists == 2 {
            // DELIBERATE: our `-d` always removes authPassword, so `nuser`, deleted without
            // scram_secret_generate in the config, keeps no SCRAM login; Cyrus keeps it.
            assert!(want.out.contains(&format!("nuser@{realm}: authPassword")));
            assert!(
                cy.out.contains(&format!("nuser@{realm}: authPassword")),
                "{ctx}: Debian"
            );
            let mut lines = lines_of(&want.out);
            lines.retain(|l| !l.starts_with("nuser@"));
            assert_eq!(lines_of(&ours.out), lmdb_order(&lines), "{ctx}: ours");
            assert_eq!(ours.rc, 0);
            assert_eq!(ours.err, "");
            assert_like(&format!("{ctx} (Debian vs transcript)"), &want, &cy, SORTED);
            let recs = pair.ours.records(db);
            assert!(value_of(&recs, &key("nuser", realm, "authPassword")).is_none());
            assert!(value_of(&recs, &key("user", realm, "authPassword")).is_none());
            assert!(value_of(&recs, &key("user256", realm, "authPassword")).is_some());
            continue;
        }
        let cmp = if sc.title == "list" { SORTED } else { EXACT };
        assert_like(&format!("{ctx} (vs transcript)"), &want, &ours, cmp);
        assert_like(&format!("{ctx} (vs Debian)"), &cy, &ours, cmp);
        assert_like(&format!("{ctx} (Debian vs transcript)"), &want, &cy, SORTED);
        if sc.title == "list" {
            assert_eq!(
                lines_of(&ours.out),
                lmdb_order(&lines_of(&want.out)),
                "{ctx}"
            );
            // Same keys on all three; same cleartext; SCRAM values of the same kind and
            // iteration count, each verifying `pencil` by the RFC formulas.
            let rec = sorted_records(transcript_dump(&sc.after, 0));
            let mine = pair.ours.records(db);
            let theirs = pair.cy.records(db);
            let keys =
                |r: &[(Vec<u8>, Vec<u8>)]| r.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&mine), keys(&rec), "{ctx}: ours");
            assert_eq!(keys(&theirs), keys(&rec), "{ctx}: Debian");
            let mut checks = Vec::new();
            for (k, v) in &rec {
                let v = std::str::from_utf8(v).expect("utf-8");
                let ours_v = value_of(&mine, k).expect("ours");
                let cy_v = value_of(&theirs, k).expect("Debian");
                if k.ends_with(b"authPassword") {
                    let head = |s: &str| s.split(':').next().map(str::to_string);
                    assert_eq!(head(ours_v), head(v), "{ctx}: kind and iterations");
                    assert_eq!(head(cy_v), head(v), "{ctx}: Debian kind and iterations");
                    checks.extend([("pencil", v), ("pencil", ours_v), ("pencil", cy_v)]);
                    checks.push(("pencil2", ours_v));
                } else {
                    assert_eq!((ours_v, cy_v), (v, v), "{ctx}: cleartext");
                }
            }
            let ok = scram_check(&checks);
            for (i, (pw, v)) in checks.iter().enumerate() {
                if *pw == "pencil" {
                    assert_eq!(
                        ok[i],
                        Some(16),
                        "{ctx}: {v} must verify `pencil` (16-byte salt)"
                    );
                } else {
                    assert_eq!(ok[i], None, "{ctx}: {v} must not verify {pw}");
                }
            }
            assert!(
                value_of(&rec, &key("nuser", realm, "authPassword"))
                    .expect("nuser")
                    .starts_with("SCRAM-SHA-1$4096:")
            );
            assert!(
                value_of(&rec, &key("user256", realm, "authPassword"))
                    .expect("user256")
                    .starts_with("SCRAM-SHA-256$8192:")
            );
            // Our own verifier agrees.
            for (user, pw, rc) in [
                ("nuser", "pencil\n", 0),
                ("nuser", "pencil2\n", 1),
                ("user256", "pencil", 0),
            ] {
                let r = pair.ours.run(
                    Prog::Passwd,
                    &["--check", "-f", &format!("$T/{db}"), user],
                    Input::Bytes(pw.as_bytes()),
                );
                assert_eq!(r.rc, rc, "{ctx}: --check {user} {pw:?}: {r:?}");
            }
        }
    }
    sec.finish();
}

// ------------------------------------------------------------------------------------------
// Sections D and E: the same suite on Debian (BDB) and on the LMDB build
// ------------------------------------------------------------------------------------------

fn transcripts_d_and_e_side_by_side() {
    let pair = Pair::new();
    let realm = realm();
    let root_ok = is_root();
    // `runuser -u nobody` must reach the stores.
    for d in [
        pair.root(),
        &pair.ours.t,
        &pair.cy.t,
        &pair.ours.p("noconf"),
        &pair.cy.p("noconf"),
    ] {
        chmod(d, 0o755);
    }
    mkdir(&pair.cy.p("D"));
    mkdir(&pair.ours.p("L"));
    chmod(&pair.cy.p("D"), 0o755);
    chmod(&pair.ours.p("L"), 0o755);
    let (cyd, ourd) = (pair.cy.p("D"), pair.ours.p("L"));
    let mut d = Section::new('D');
    let mut e = Section::new('E');
    let notdb = b"this file is not a database; it only has seventy bytes of plain text.\n";
    assert_eq!(notdb.len(), 70);
    while d.pos < d.list.len() {
        let (dsc, esc) = (d.next(), e.next());
        assert_eq!(dsc.title, esc.title, "D and E run the same scenarios");
        let title = esc.title.as_str();
        let ctx = format!("D/E: {title}");
        let nobody = title.ends_with("as nobody");
        if nobody && !root_ok {
            // Running as nobody takes root.
            need_root();
        }
        // Set-up the transcripts do not show.
        match title {
            "not a DB (write)" => {
                fs::write(cyd.join("notdb"), notdb).unwrap();
                fs::write(ourd.join("notdb"), notdb).unwrap();
            }
            "empty file (write)" => {
                for dir in [&cyd, &ourd] {
                    fs::write(dir.join("empty"), b"").unwrap();
                    chmod(&dir.join("empty"), 0o644);
                }
            }
            "unwritable file as nobody" => {
                for dir in [&cyd, &ourd] {
                    mkdir(&dir.join("ro"));
                    chmod(&dir.join("ro"), 0o755);
                    fs::copy(dir.join("sasldb2"), dir.join("ro/sasldb2")).unwrap();
                    chmod(&dir.join("ro/sasldb2"), 0o644);
                }
            }
            "list unreadable file as nobody" => {
                chmod(&cyd.join("ro/sasldb2"), 0o600);
                chmod(&ourd.join("ro/sasldb2"), 0o600);
            }
            _ => {}
        }
        let ours = pair.ours.sh(&esc);
        let cy = pair.cy.sh(&dsc);
        let (want_e, want_d) = (expected(&esc), expected(&dsc));
        // Debian still behaves as recorded in D.
        assert_like(&format!("{ctx} (Debian vs D)"), &want_d, &cy, SORTED);
        let cmp = match title {
            "missing dir" => detail(&["$T/L/nodir/x"]),
            "not a DB (write)" | "not a DB (list)" => detail(&["$T/L/notdb"]),
            "list missing file" => detail(&["$T/L/nonexist"]),
            "list a directory" | "write a directory" => detail(&["$T/L"]),
            "new file in unwritable dir as nobody" => detail(&["$T/L/ro/new"]),
            t if t.ends_with("as nobody") => detail(&["$T/L/ro/sasldb2"]),
            _ => EXACT,
        };
        match title {
            "list" | "list positional" => {
                // LMDB key order exactly as the LMDB build printed it.
                let e_lines = lines_of(&want_e.out);
                assert_eq!(
                    lmdb_order(&e_lines),
                    e_lines,
                    "{ctx}: E is in LMDB key order"
                );
                // DELIBERATE: `-n` stored a SCRAM-SHA-256 authPassword for carol, where Cyrus
                // stores nothing.
                let carol = format!("carol@{realm}: authPassword");
                let mut with_carol = e_lines.clone();
                with_carol.push(&carol);
                assert_eq!(lines_of(&ours.out), lmdb_order(&with_carol), "{ctx}");
                assert_eq!((ours.rc, ours.err.as_str()), (0, ""), "{ctx}");
                assert_eq!(
                    sorted_lines(&cy.out),
                    sorted_lines(&want_e.out),
                    "{ctx}: Debian"
                );
            }
            "list readable-only file as nobody" => {
                // LMDB readers need write access to the lock file (E); Debian's Berkeley DB
                // lists a readable file (D). That is the backend, not us: ours matches E.
                assert_like(&format!("{ctx} (vs E)"), &want_e, &ours, cmp);
                assert_eq!(cy.rc, 0);
                assert_eq!(lines_of(&cy.out).len(), 7, "{ctx}: Debian lists: {cy:?}");
            }
            _ => {
                assert_like(&format!("{ctx} (vs E)"), &want_e, &ours, cmp);
                assert_like(&format!("{ctx} (vs Debian)"), &cy, &ours, cmp);
            }
        }
        // What the step left behind.
        match title {
            "-n" => {
                // DELIBERATE: -n stores a SCRAM-SHA-256 verifier (no userPassword); Cyrus
                // without scram_secret_generate stores nothing.
                let recs = pair.ours.records("L/sasldb2");
                let v = value_of(&recs, &key("carol", realm, "authPassword")).expect("carol");
                assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
                assert_eq!(scram_check(&[("npw", v), ("pw", v)]), vec![Some(16), None]);
                assert!(value_of(&recs, &key("carol", realm, "userPassword")).is_none());
                let theirs = pair.cy.records("D/sasldb2");
                assert!(!theirs.iter().any(|(k, _)| k.starts_with(b"carol\0")));
            }
            "-d missing" => {
                let carol = key("carol", realm, "authPassword");
                let mut mine = pair.ours.records("L/sasldb2");
                assert!(mine.iter().any(|(k, _)| *k == carol));
                mine.retain(|(k, _)| *k != carol);
                assert_eq!(show(&mine), show(&pair.cy.records("D/sasldb2")), "{ctx}");
                assert_eq!(
                    value_of(&mine, &key("alice", realm, "userPassword")),
                    Some("pw3")
                );
                assert!(value_of(&mine, &key("bob", realm, "userPassword")).is_none());
                assert!(value_of(&mine, &key("nobody", realm, "userPassword")).is_none());
            }
            "list positional" => {
                let m = 0o660 & !umask();
                assert_eq!(mode(&ourd.join("sasldb2")), m, "data file 0660 & ~umask");
                assert_eq!(
                    mode(&ourd.join("sasldb2-lock")),
                    m,
                    "lock file 0660 & ~umask"
                );
                assert_eq!(mode(&cyd.join("sasldb2")), m, "Debian data file");
            }
            "not a DB (write)" => {
                assert_eq!(
                    fs::read(ourd.join("notdb")).unwrap(),
                    notdb,
                    "{ctx}: untouched"
                );
                assert_eq!(fs::read(cyd.join("notdb")).unwrap(), notdb, "{ctx}: Debian");
                // DELIBERATE: the LMDB build leaves `notdb-lock` behind (E's `ls` after the
                // next step); our failed write leaves nothing.
                assert!(!ourd.join("notdb-lock").exists(), "{ctx}: lock left behind");
            }
            "not a DB (list)" => {
                assert_eq!(
                    fs::read(ourd.join("notdb")).unwrap(),
                    notdb,
                    "{ctx}: untouched"
                );
                assert!(!ourd.join("notdb-lock").exists(), "{ctx}: lock left behind");
            }
            "empty file (write)" => {
                assert!(esc.after.iter().any(|l| l.ends_with(" notdb-lock")));
                assert!(!ourd.join("notdb-lock").exists(), "{ctx}: notdb-lock");
                assert!(esc.after.iter().any(|l| l.ends_with(" empty-lock")));
                // A 0-byte file is adopted as a new store and keeps its mode.
                assert_eq!(mode(&ourd.join("empty")), 0o644);
                assert!(ourd.join("empty-lock").exists());
                let recs = pair.ours.records("L/empty");
                assert_eq!(show(&recs), show(&pair.cy.records("D/empty")), "{ctx}");
                assert_eq!(
                    value_of(&recs, &key("alice", realm, "userPassword")),
                    Some("pw")
                );
            }
            "list missing file" => {
                for p in ["L/nonexist", "L/nonexist-lock"] {
                    assert!(!pair.ours.p(p).exists(), "{ctx}: {p} created");
                }
                assert!(!pair.cy.p("D/nonexist").exists());
            }
            "write a directory" | "list a directory" => {
                assert!(
                    !pair.ours.p("L-lock").exists(),
                    "{ctx}: lock beside the dir"
                );
            }
            "new file in unwritable dir as nobody" => {
                let names: Vec<String> = fs::read_dir(ourd.join("ro"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert_eq!(names, vec!["sasldb2".to_string()], "{ctx}: nothing created");
                assert_eq!(
                    fs::read(ourd.join("ro/sasldb2")).unwrap(),
                    fs::read(ourd.join("sasldb2")).unwrap(),
                    "{ctx}: the read-only store is untouched"
                );
            }
            _ => {}
        }
    }
    d.finish();
    e.finish();
}

// ------------------------------------------------------------------------------------------
// Section F: LMDB layout, limits, legacy properties, malformed keys, map size
// ------------------------------------------------------------------------------------------

fn transcript_f_lmdb_layout_limits_legacy_malformed_map() {
    let pair = Pair::new();
    let (ours, cy) = (&pair.ours, &pair.cy);
    let realm = realm();
    pair.mkdir("X");
    pair.conf("X/conf", "saslpasswd", "sasldb_mapsize: 4096\n");
    let mut sec = Section::new('F');
    let u = |len: usize| "x".repeat(len);
    // `<u x N>`: N chosen so that user\0realm\0userPassword is 511 bytes here.
    let n511 = 511 - 14 - realm.len();

    // create: sizes, modes, mdb_stat and mdb_dump exactly as the LMDB build.
    let sc = sec.next();
    assert_eq!(sc.title, "create");
    let r = ours.sh(&sc);
    assert_like("F: create", &expected(&sc), &r, EXACT);
    let db = ours.p("X/sasldb2");
    assert_eq!(fs::metadata(&db).unwrap().len(), 12288, "3 pages");
    assert_eq!(fs::metadata(ours.p("X/sasldb2-lock")).unwrap().len(), 8192);
    let m = 0o660 & !umask();
    assert_eq!((mode(&db), mode(&ours.p("X/sasldb2-lock"))), (m, m));
    let block = |from: &str, to: &str| -> String {
        let a = sc
            .after
            .iter()
            .position(|l| l.starts_with(from))
            .expect(from)
            + 1;
        let b = sc.after.iter().position(|l| l.starts_with(to)).expect(to);
        sc.after[a..b].iter().map(|l| format!("{l}\n")).collect()
    };
    // All but the map: ours records 1 GiB of address space instead of
    // LMDB's 1 MiB, so that processes holding the store open never see it
    // grow (`MDB_MAP_RESIZED` crashes Cyrus's LMDB backend); the file's
    // size, checked above, is the same.
    let unmapped = |stat: &str| -> String {
        stat.lines()
            .filter(|l| !l.contains("Map size:") && !l.contains("Max pages:"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let ours_stat = mdb_stat(&db);
    assert_eq!(
        unmapped(&ours_stat),
        unmapped(&block("--- mdb_stat", "--- mdb_dump")),
        "F: mdb_stat"
    );
    assert!(ours_stat.contains("Map size: 1073741824\n"), "{ours_stat}");
    let dump = Command::new("mdb_dump")
        .args(["-n", "-p"])
        .arg(&db)
        .output()
        .unwrap();
    let want_dump = uncat(
        &sc.after[sc
            .after
            .iter()
            .position(|l| l.starts_with("--- mdb_dump"))
            .unwrap()
            + 1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .replace("\\00vm\\00", &format!("\\00{realm}\\00"))
    // The map, as for mdb_stat above.
    .replace("mapsize=1048576\n", "mapsize=1073741824\n");
    assert_eq!(
        String::from_utf8_lossy(&dump.stdout),
        want_dump,
        "F: mdb_dump"
    );
    cy.sh(&sc);

    // 511-byte key works, 512 fails (LMDB's limit).
    for (len, title) in [
        (n511, "key of exactly 511 bytes"),
        (n511 + 1, "key of 512 bytes"),
    ] {
        let sc = sec.next();
        assert!(sc.title.starts_with(title), "{}", sc.title);
        let name = u(len);
        let cmd = sc.cmd.replace("<u x N>", &name);
        let r = ours.sh_cmd(&sc.title, &cmd);
        let ctx = format!("F: {}", sc.title);
        let recs = ours.records("X/sasldb2");
        if len == n511 {
            assert_like(&ctx, &expected(&sc), &r, EXACT);
            let k = key(&name, realm, "userPassword");
            assert_eq!(k.len(), 511);
            assert_eq!(value_of(&recs, &k), Some("pw"));
        } else {
            let (user, in_realm) = (format!("user \"{name}\""), format!("realm \"{realm}\""));
            assert_like(&ctx, &expected(&sc), &r, detail(&[&user, &in_realm, "511"]));
            assert_eq!(recs.len(), 2, "{ctx}: nothing written");
        }
        // Berkeley DB has no key limit: Debian stores both.
        let c = cy.sh_cmd(&sc.title, &cmd);
        assert_eq!((c.rc, c.err.as_str()), (0, ""), "{ctx}: Debian");
    }

    // Legacy cmusaslsecret* properties: deleted by every successful set and by -d; others
    // (cmusaslsecretOTP, foo) stay. Planted behind the tools' back on both sides.
    let legacy = |who: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            "cmusaslsecretCRAM-MD5",
            "cmusaslsecretDIGEST-MD5",
            "cmusaslsecretOTP",
            "cmusaslsecretPLAIN",
            "foo",
        ]
        .iter()
        .map(|p| (key(who, realm, p), format!("v-{p}").into_bytes()))
        .collect()
    };
    let planted = legacy("alice");
    let items: Vec<(&[u8], &[u8])> = planted.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    ours.plant("X/sasldb2", &items);
    cy.plant("X/sasldb2", &items);
    for title in [
        "list before",
        "password change",
        "list after change",
        "-d",
        "list after -d",
    ] {
        let sc = sec.next();
        assert_eq!(sc.title, title);
        let ctx = format!("F: {title}");
        let r = ours.sh(&sc);
        assert_like(&ctx, &expected(&sc), &r, EXACT);
        let c = cy.sh(&sc);
        assert_like(&format!("{ctx} (vs Debian)"), &c, &r, SORTED);
        // (Debian's store also holds the 512-byte user Berkeley DB accepted.)
        let alice = |mut r: Vec<(Vec<u8>, Vec<u8>)>| {
            r.retain(|(k, _)| k.starts_with(b"alice\0"));
            show(&r)
        };
        assert_eq!(
            alice(ours.records("X/sasldb2")),
            alice(cy.records("X/sasldb2")),
            "{ctx}: stored records (ours left, Debian right)"
        );
    }
    let recs = ours.records("X/sasldb2");
    assert_eq!(value_of(&recs, &key("alice", realm, "foo")), Some("v-foo"));
    assert_eq!(
        value_of(&recs, &key("alice", realm, "cmusaslsecretOTP")),
        Some("v-cmusaslsecretOTP")
    );

    // Malformed keys.
    for side in [ours, cy] {
        let r = side.run(
            Prog::Passwd,
            &["-c", "-p", "-f", "$T/X/bad", "uuuu"],
            Input::Bytes(b"pw"),
        );
        assert_eq!(r.rc, 0, "{r:?}");
        side.plant(
            "X/bad",
            &[
                (&key("alice", realm, "cmusaslsecretOTP"), b"otp"),
                (&key("alice", realm, "foo"), b"bar"),
                (b"nnn\0realm\0", b"empty property"),
                (&key("ooo", "", "userPassword"), b"pw"),
            ],
        );
    }
    let sc = sec.next();
    assert_eq!(sc.title, "list with empty property / empty realm keys");
    let r = ours.sh(&sc);
    assert_like("F: empty components", &expected(&sc), &r, EXACT);
    let c = cy.sh(&sc);
    assert_like("F: empty components (vs Debian)", &c, &r, SORTED);

    let sc = sec.next();
    assert_eq!(sc.title, "list with a key lacking two NULs (timeout 5 s)");
    for side in [ours, cy] {
        side.plant(
            "X/bad",
            &[(b"no-nul-at-all", b"x"), (b"a\0b\0c\0three", b"y")],
        );
    }
    let r = ours.sh(&sc);
    // Cyrus (LMDB build) hangs: killed by `timeout`, exit 124, nothing printed.
    assert_eq!((sc.rc, sc.out.as_str(), sc.err.as_str()), (124, "", ""));
    // DELIBERATE: we skip the malformed keys with one warning and list the rest.
    assert_eq!(r.rc, 0, "F: malformed keys: {r:?}");
    let before = expected(&sc_list_bad());
    let mut want_lines = lines_of(&before.out);
    let uuuu = format!("uuuu@{realm}: userPassword");
    want_lines.push(&uuuu);
    assert_eq!(
        lines_of(&r.out),
        lmdb_order(&want_lines),
        "F: malformed keys"
    );
    let warn = lines_of(&r.err);
    assert_eq!(warn.len(), 1, "F: exactly one warning: {r:?}");
    assert!(
        warn[0].starts_with("sasldblistusers: ") && warn[0].contains("2 malformed key"),
        "{warn:?}"
    );
    // Debian's Berkeley DB build has the same endless loop (shortened timeout).
    let c = cy.sh_cmd(&sc.title, &sc.cmd.replace("timeout 5", "timeout 1"));
    assert_eq!(
        (c.rc, c.out.as_str()),
        (124, ""),
        "F: Debian hangs too: {c:?}"
    );

    // Map size: the LMDB build's default 1 MiB map was full at the 266th user with a
    // 1500-byte password ("generic failure").
    assert!(
        sc.after
            .iter()
            .any(|l| l.starts_with("user266 failed: saslpasswd2: generic failure"))
    );
    let pw1500 = vec![b'p'; 1500];
    for i in 1..=266 {
        let user = format!("user{i}");
        let r = ours.run(
            Prog::Passwd,
            &["-c", "-p", "-f", "$T/X/full", &user],
            Input::Bytes(&pw1500),
        );
        // DELIBERATE: our store records a 1 GiB map from the start;
        // user266 and beyond are stored without the map ever growing.
        assert_eq!((r.rc, r.err.as_str()), (0, ""), "F: map: {user}");
    }
    let full = ours.p("X/full");
    let grown = map_size(&full);
    assert_eq!(grown, 1 << 30, "the generous map is recorded");
    assert_eq!(mdb_dump(&full).len(), 266);
    let sc = sec.next();
    assert_eq!(sc.title, "with sasldb_mapsize: 4096 in saslpasswd.conf");
    let cmd = sc.cmd.replace("<p x 1500>", &"p".repeat(1500));
    let r = ours.sh_cmd(&sc.title, &cmd);
    assert_like("F: sasldb_mapsize", &expected(&sc), &r, EXACT);
    assert!(sc.after.iter().any(|l| l.trim() == "Map size: 4194304"));
    // Cyrus's 1 MiB map grows to the configured 4 MiB; ours is larger
    // already, and a configured size never shrinks a recorded map (that it
    // is read in KiB: interop::sasldb_mapsize_option_is_in_kib).
    assert_eq!(map_size(&full), 1 << 30, "a recorded map never shrinks");
    sec.finish();
}

/// The expected listing of `$T/X/bad` before the malformed keys were added.
fn sc_list_bad() -> Scenario {
    transcripts()
        .iter()
        .find(|s| s.section == 'F' && s.title == "list with empty property / empty realm keys")
        .cloned()
        .expect("scenario")
}

crate::tests!(
    transcript_a_arguments_input_realms_config,
    transcript_c_scram_secrets,
    transcripts_d_and_e_side_by_side,
    transcript_f_lmdb_layout_limits_legacy_malformed_map,
);
