//! Migration from the sasldb files Cyrus SASL builds write today: Berkeley
//! DB hash files made by Debian's own `saslpasswd2` and `db5.3_load`, read
//! by our `sasldblistusers` and imported by `saslpasswd --import`, compared
//! record by record (bytes) with `db5.3_dump` and line by line with
//! `sasldblistusers2`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn saslpasswd2(s: &Scratch, db: &Path, args: &[&str], password: &[u8]) {
    let mut all = vec!["-p", "-f", p(db)];
    all.extend_from_slice(args);
    let o = s.run("saslpasswd2", &all, Some(password));
    assert!(o.status.success(), "saslpasswd2 {args:?}: {}", stderr(&o));
}

/// `db5.3_load -T` text: one item per line, bytes outside printable ASCII
/// (and the backslash) as `\xx`.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(format!("\\{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'\n');
}

/// Load records into a Berkeley DB file (created or added to) with Debian's
/// `db5.3_load`; `extra` passes `-t`/`-c` settings.
fn db_load(db: &Path, extra: &[&str], records: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) {
    let mut child = Command::new("db5.3_load")
        .arg("-T")
        .args(extra)
        .arg(db)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("db5.3_load (apt-get install db5.3-util)");
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
        let mut buf = Vec::new();
        for (k, v) in records {
            buf.clear();
            escape(&k, &mut buf);
            escape(&v, &mut buf);
            w.write_all(&buf).expect("write to db5.3_load");
        }
    }
    let o = child.wait_with_output().expect("db5.3_load");
    assert!(o.status.success(), "db5.3_load: {}", stderr(&o));
}

pub(crate) fn hash_load(db: &Path, records: Vec<(Vec<u8>, Vec<u8>)>) {
    db_load(db, &["-t", "hash"], records.into_iter());
}

fn list(s: &Scratch, program: &str, db: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["-f", p(db)];
    args.extend_from_slice(extra);
    s.run(program, &args, None)
}

fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}

fn import(s: &Scratch, old: &Path, new: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--import", p(old), "-f", p(new)];
    args.extend_from_slice(extra);
    s.run(SASLPASSWD, &args, None)
}

/// Our listing equals Cyrus's, and the import holds exactly db5.3_dump's
/// records.
fn assert_lists_and_imports_exactly(s: &Scratch, old: &Path, name: &str) {
    let cyrus = list(s, "sasldblistusers2", old, &[]);
    let ours = list(s, LISTUSERS, old, &[]);
    assert_eq!(ours.status.code(), Some(0), "{name}: {}", stderr(&ours));
    assert_eq!(cyrus.status.code(), Some(0), "{name}: {}", stderr(&cyrus));
    assert!(!cyrus.stdout.is_empty(), "{name}: Cyrus lists nothing");
    assert_eq!(stdout(&ours), stdout(&cyrus), "{name}: listings differ");
    let new = s.path(&format!("{name}.lmdb"));
    let o = import(s, old, &new, &[]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let dumped = db_dump(old);
    assert!(
        stdout(&o).contains(&format!("{} records from", dumped.len())),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        sorted(mdb_dump(&new)),
        sorted(dumped),
        "{name}: records differ"
    );
}

fn files_written_by_debian_saslpasswd2() {
    need("db5.3_load", "db5.3-util");
    need("saslpasswd2", "sasl2-bin");
    let s = Scratch::new();
    let db = s.path("sasldb2.bdb");
    saslpasswd2(&s, &db, &["-c", "-u", "example.org", "alice"], b"alice-pw");
    saslpasswd2(
        &s,
        &db,
        &["-c", "-u", "other.net", "bob"],
        b"bob pw with spaces ",
    );
    saslpasswd2(
        &s,
        &db,
        &["-c", "carol@third.example"],
        b"cr\rin the middle",
    );
    saslpasswd2(
        &s,
        &db,
        &["-c", "-u", "example.org", "j\u{f6}rg"],
        "p\u{e4}ssw\u{f6}rd \u{2713}".as_bytes(),
    );
    saslpasswd2(&s, &db, &["-c", "-u", "example.org", "long"], &[b'x'; 2048]);
    // A changed and a deleted user.
    saslpasswd2(&s, &db, &["-c", "-u", "example.org", "dave"], b"first");
    saslpasswd2(&s, &db, &["-u", "example.org", "dave"], b"second");
    saslpasswd2(&s, &db, &["-c", "-u", "example.org", "gone"], b"gone-pw");
    let o = s.run(
        "saslpasswd2",
        &["-d", "-f", p(&db), "-u", "example.org", "gone"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Legacy records older Cyrus versions stored, planted with db5.3_load.
    hash_load(
        &db,
        vec![
            (
                key("old", "example.org", "cmusaslsecretPLAIN"),
                b"legacy\0bytes\xff".to_vec(),
            ),
            (
                key("old", "example.org", "cmusaslsecretCRAM-MD5"),
                vec![0x5a; 32],
            ),
            (
                key("alice", "example.org", "x-custom"),
                b"anything".to_vec(),
            ),
        ],
    );
    let dumped = db_dump(&db);
    assert!(dumped.contains(&(
        key("dave", "example.org", "userPassword"),
        b"second".to_vec()
    )));
    assert!(!dumped.iter().any(|(k, _)| k.starts_with(b"gone\0")));
    assert!(
        dumped.iter().any(|(_, v)| v.len() == 2048),
        "2048-byte password not stored"
    );
    assert_lists_and_imports_exactly(&s, &db, "debian");

    // What the doctor learns: format, accounts (user and realm), records.
    let accounts: std::collections::BTreeSet<Vec<u8>> = dumped
        .iter()
        .map(|(k, _)| k[..k.iter().rposition(|&b| b == 0).unwrap_or(0)].to_vec())
        .collect();
    let found = sasldb::migrate::detect(&db).expect("detect");
    assert_eq!(
        (found.format, found.accounts, found.records),
        (
            sasldb::migrate::Format::BerkeleyDbHash,
            accounts.len(),
            dumped.len()
        )
    );
    assert_eq!(accounts.len(), 7, "{accounts:?}");

    // The account views group each account's properties.
    let o = list(&s, LISTUSERS, &db, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let alice: Vec<_> = doc["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter(|a| a["user"] == "alice")
        .collect();
    assert_eq!(alice.len(), 1, "{doc}");
    assert_eq!(
        alice[0]["properties"],
        serde_json::json!(["userPassword", "x-custom"])
    );
    let o = list(&s, LISTUSERS, &db, &["--format", "table"]);
    assert!(stdout(&o).contains("j\u{f6}rg"), "{}", stdout(&o));

    // A key Cyrus cannot parse (sasldblistusers2 would loop forever on it):
    // skipped in the listing with a warning, imported bytes exact.
    hash_load(&db, vec![(b"no-nul-key".to_vec(), b"v".to_vec())]);
    let o = list(&s, LISTUSERS, &db, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("skipped 1 malformed key"),
        "{}",
        stderr(&o)
    );
    let new = s.path("malformed.lmdb");
    assert_eq!(import(&s, &db, &new, &[]).status.code(), Some(0));
    assert_eq!(sorted(mdb_dump(&new)), sorted(db_dump(&db)));
}

/// Records for `db5.3_load`: `n` users, every 1000th value large enough
/// for overflow pages.
fn many(n: usize) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    (0..n).map(|i| {
        let k = key(&format!("user{i}"), "example.org", "userPassword");
        let v = if i % 1000 == 7 {
            vec![b'a' + (i % 26) as u8; 5000 + i % 3000]
        } else {
            format!("secret{i}").into_bytes()
        };
        (k, v)
    })
}

fn a_million_records_from_db_load() {
    need("db5.3_load", "db5.3-util");
    let s = Scratch::new();
    let db = s.path("big.bdb");
    db_load(&db, &["-t", "hash"], many(1_000_000));
    assert_lists_and_imports_exactly(&s, &db, "big");
}

fn small_pages_off_page_keys_both_byte_orders_and_checksums() {
    need("db5.3_load", "db5.3-util");
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
        .map(|i| {
            // 400-byte keys do not fit a 512-byte page inline.
            let user = format!("{i}-{}", "u".repeat(if i % 3 == 0 { 380 } else { 5 }));
            let v = vec![(i % 251) as u8; if i % 5 == 0 { 3000 } else { 20 }];
            (key(&user, "example.org", "userPassword"), v)
        })
        .collect();
    for (name, extra) in [
        (
            "le512",
            &["-c", "db_pagesize=512", "-c", "db_lorder=1234"][..],
        ),
        (
            "be512",
            &["-c", "db_pagesize=512", "-c", "db_lorder=4321"][..],
        ),
        (
            "be64k",
            &["-c", "db_pagesize=65536", "-c", "db_lorder=4321"][..],
        ),
        ("chksum", &["-c", "chksum=1", "-c", "db_pagesize=1024"][..]),
    ] {
        let s = Scratch::new();
        let db = s.path(&format!("{name}.bdb"));
        let mut args = vec!["-t", "hash"];
        args.extend_from_slice(extra);
        db_load(&db, &args, records.clone().into_iter());
        assert_lists_and_imports_exactly(&s, &db, name);
    }
}

/// One line naming the file and what is wrong (then Cyrus's generic
/// failure for saslpasswd), a non-zero exit, nothing on stdout.
fn assert_refused(o: &Output, path: &Path, what: &str) {
    let err = stderr(o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains(p(path)) && first.contains(what),
        "want {what:?}: {err}"
    );
    assert!(err.lines().count() <= 2, "{err}");
    assert!(o.stdout.is_empty(), "{}", stdout(o));
}

fn damaged_and_foreign_files_are_refused_and_the_target_untouched() {
    need("db5.3_load", "db5.3-util");
    let s = Scratch::new();
    let good = s.path("good.bdb");
    db_load(&good, &["-t", "hash"], many(5000));
    let bytes = std::fs::read(&good).expect("read");
    let target = s.path("target");
    let existing = s.path("existing");
    let o = s.run(
        SASLPASSWD,
        &["-p", "-c", "-u", "r", "-f", p(&existing), "keep"],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = mdb_dump(&existing);

    let check = |name: &str, content: &[u8], what: &str| {
        let f = s.path(name);
        std::fs::write(&f, content).expect("write");
        assert_refused(&import(&s, &f, &target, &[]), &f, what);
        assert!(!target.exists(), "{name}: target created");
        assert!(!s.path("target-lock").exists(), "{name}: lock created");
        assert_refused(&import(&s, &f, &existing, &[]), &f, what);
        assert_eq!(mdb_dump(&existing), before, "{name}: target changed");
        assert_refused(&import(&s, &f, &target, &["--dry-run"]), &f, what);
        f
    };

    // Cut in half: Berkeley DB's own lister shows part of it and exits 0.
    let half = check("half.bdb", &bytes[..bytes.len() / 2], "truncated");
    let cyrus = list(&s, "sasldblistusers2", &half, &[]);
    assert_eq!(cyrus.status.code(), Some(0), "{}", stderr(&cyrus));
    assert_refused(&list(&s, LISTUSERS, &half, &[]), &half, "truncated");
    // Cut anywhere else.
    for cut in [600, 4096, 4097, bytes.len() - 4096, bytes.len() - 1] {
        check("cut.bdb", &bytes[..cut], "Berkeley DB hash file");
    }
    // A zeroed page in the middle.
    let mut zeroed = bytes.clone();
    zeroed[8 * 4096..9 * 4096].fill(0);
    check("zeroed.bdb", &zeroed, "damaged");

    // Random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    check("random", &random, "not a sasldb file");
    // Other Berkeley DB access methods.
    let btree = s.path("btree.db");
    db_load(&btree, &["-t", "btree"], many(10));
    let content = std::fs::read(&btree).expect("read");
    check("btree", &content, "Berkeley DB btree");
    let queue = s.path("queue.db");
    let o = run_cmd(
        Command::new("db5.3_load").args(["-T", "-t", "queue", "-c", "re_len=32", p(&queue)]),
        Some(b"one\ntwo\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let content = std::fs::read(&queue).expect("read");
    check("queue", &content, "Berkeley DB queue file");
    // A GDBM header with nothing valid behind it.
    let mut gdbm = 0x1357_9acfu32.to_le_bytes().to_vec();
    gdbm.resize(4096, 0);
    check("gdbm", &gdbm, "GDBM file: damaged");

    // The file read so far is intact and imports fine.
    assert_eq!(import(&s, &good, &target, &[]).status.code(), Some(0));
}

fn conflicts_dry_run_replace_and_stdin() {
    need("saslpasswd2", "sasl2-bin");
    let s = Scratch::new();
    let old = s.path("old.bdb");
    saslpasswd2(
        &s,
        &old,
        &["-c", "-u", "example.org", "alice"],
        b"old-alice",
    );
    saslpasswd2(&s, &old, &["-c", "-u", "example.org", "bob"], b"old-bob");
    let new = s.path("new");
    for user in ["alice", "carol"] {
        let o = s.run(
            SASLPASSWD,
            &["-p", "-c", "-u", "example.org", "-f", p(&new), user],
            Some(b"new-pw"),
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let before = mdb_dump(&new);

    // A dry run writes and creates nothing, and says what would happen.
    let fresh = s.path("fresh");
    let o = import(&s, &old, &fresh, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("dry run") && stdout(&o).contains("2 added"),
        "{}",
        stdout(&o)
    );
    assert!(!fresh.exists() && !s.path("fresh-lock").exists());

    // alice differs: nothing written, alice named, non-zero exit.
    for extra in [&[][..], &["--dry-run"][..]] {
        let o = import(&s, &old, &new, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        let err = stderr(&o);
        assert!(
            err.contains("alice@example.org") && !err.contains("bob@"),
            "{err}"
        );
        assert!(!err.contains("old-alice"), "a secret in a message: {err}");
        assert_eq!(mdb_dump(&new), before);
    }

    // --replace: alice overwritten, bob added, carol kept.
    let o = import(&s, &old, &new, &["--replace"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 added, 1 replaced, 0 unchanged"),
        "{}",
        stdout(&o)
    );
    let after = mdb_dump(&new);
    assert!(after.contains(&(
        key("alice", "example.org", "userPassword"),
        b"old-alice".to_vec()
    )));
    assert!(after.contains(&(
        key("bob", "example.org", "userPassword"),
        b"old-bob".to_vec()
    )));
    assert!(after.iter().any(|(k, _)| k.starts_with(b"carol\0")));
    // Again: everything unchanged, which is no conflict.
    let o = import(&s, &old, &new, &[]);
    assert!(
        stdout(&o).contains("0 added, 0 replaced, 2 unchanged"),
        "{}",
        stdout(&o)
    );

    // The logins work through our own check.
    let o = s.run(
        SASLPASSWD,
        &["--check", "-p", "-f", p(&new), "bob@example.org"],
        Some(b"old-bob"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Refused command lines.
    for (args, what) in [
        (vec!["--import", "-", "-f", p(&new)], "needs a file"),
        (vec!["--import", p(&old), "-f", p(&new), "-c"], "not -c"),
        (
            vec!["--import", p(&old), "-f", p(&new), "alice"],
            "no user id",
        ),
        (vec!["--import", p(&new), "-f", p(&new)], "target too"),
    ] {
        let o = s.run(SASLPASSWD, &args, None);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(
        s.run(
            SASLPASSWD,
            &["--import", p(&s.path("missing")), "-f", p(&fresh)],
            None
        )
        .status
        .code(),
        Some(1)
    );
    assert!(!fresh.exists());

    // Without -f the target is sasldb_path of <appname>.conf, as for every
    // other saslpasswd command.
    let configured = s.path("configured");
    s.conf("myapp", &format!("sasldb_path: {}\n", configured.display()));
    let o = s.run(SASLPASSWD, &["--import", p(&old), "-a", "myapp"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mdb_dump(&configured).len(), 2);
}

/// Python driving libgdbm, the library of Fedora's and Arch's Cyrus SASL:
/// through `dbm.gnu` (Debian's python3-gdbm) where installed, else through
/// ctypes on the same libgdbm.so.6. `write FILE FLAGS BLOCK` stores the hex
/// `key value` lines of stdin; `dump FILE` prints them in
/// gdbm_firstkey/gdbm_nextkey order, the order Cyrus's GDBM lister uses.
const GDBM_PY: &str = r#"
import ctypes, sys
class datum(ctypes.Structure):
    _fields_ = [("dptr", ctypes.c_void_p), ("dsize", ctypes.c_int)]
def d(b):
    buf = ctypes.create_string_buffer(b, len(b))
    keep.append(buf)
    return datum(ctypes.cast(buf, ctypes.c_void_p), len(b))
keep = []
lib = ctypes.CDLL("libgdbm.so.6")
lib.gdbm_open.restype = ctypes.c_void_p
lib.gdbm_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
lib.gdbm_store.argtypes = [ctypes.c_void_p, datum, datum, ctypes.c_int]
lib.gdbm_delete.argtypes = [ctypes.c_void_p, datum]
for f in ("gdbm_firstkey",):
    getattr(lib, f).restype = datum; getattr(lib, f).argtypes = [ctypes.c_void_p]
lib.gdbm_nextkey.restype = datum; lib.gdbm_nextkey.argtypes = [ctypes.c_void_p, datum]
lib.gdbm_fetch.restype = datum; lib.gdbm_fetch.argtypes = [ctypes.c_void_p, datum]
lib.gdbm_close.argtypes = [ctypes.c_void_p]
cmd, path = sys.argv[1], sys.argv[2].encode()
if cmd == "write":
    try:
        import dbm.gnu  # the writer the issue names, when installed
        plain = sys.argv[3] == "0" and sys.argv[4] == "0"
    except ImportError:
        plain = False
    if plain:
        db = dbm.gnu.open(sys.argv[2], "c")
        for line in sys.stdin:
            k, v = line.split()
            if k.startswith("-"):
                del db[bytes.fromhex(k[1:])]
            else:
                db[bytes.fromhex(k)] = bytes.fromhex(v)
        db.close()
    else:
        h = lib.gdbm_open(path, int(sys.argv[4]), 2 | int(sys.argv[3]), 0o600, None)
        assert h, "gdbm_open"
        for line in sys.stdin:
            k, v = line.split()
            if k.startswith("-"):
                assert lib.gdbm_delete(h, d(bytes.fromhex(k[1:]))) == 0
            else:
                assert lib.gdbm_store(h, d(bytes.fromhex(k)), d(bytes.fromhex(v)), 1) == 0
        lib.gdbm_close(h)
else:
    h = lib.gdbm_open(path, 0, 0, 0, None)
    assert h, "gdbm_open"
    k = lib.gdbm_firstkey(h)
    while k.dptr:
        v = lib.gdbm_fetch(h, k)
        print(ctypes.string_at(k.dptr, k.dsize).hex(), ctypes.string_at(v.dptr, v.dsize).hex())
        k = lib.gdbm_nextkey(h, k)
    lib.gdbm_close(h)
"#;

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(crate) fn gdbm(args: &[&str], input: &[u8]) -> Vec<u8> {
    need_file("/usr/bin/python3", "python3");
    let mut c = Command::new("/usr/bin/python3");
    c.arg("-c").arg(GDBM_PY).args(args);
    let o = run_cmd(&mut c, Some(input));
    assert!(
        o.status.success(),
        "python3 + libgdbm (apt-get install python3-gdbm): {}",
        stderr(&o)
    );
    o.stdout
}

fn gdbm_files_written_by_libgdbm() {
    let s = Scratch::new();
    let mut input = Vec::new();
    let mut expect_gone = Vec::new();
    for i in 0..3000usize {
        let k = key(&format!("user{i}"), "example.org", "userPassword");
        let v = match i % 500 {
            1 => vec![0xff; 5000],
            2 => vec![b'x'; 2048],
            3 => b"with\0nul and \r cr".to_vec(),
            _ => format!("pw{i}").into_bytes(),
        };
        input.extend_from_slice(format!("{} {}\n", hex(&k), hex(&v)).as_bytes());
        if i % 700 == 5 {
            input.extend_from_slice(format!("-{} -\n", hex(&k)).as_bytes());
            expect_gone.push(k);
        }
    }
    let legacy = key("old", "other.net", "cmusaslsecretPLAIN");
    input.extend_from_slice(format!("{} {}\n", hex(&legacy), hex(b"legacy")).as_bytes());
    // Default format (dbm.gnu where installed), numsync (GDBM_NUMSYNC), and
    // small exact blocks (GDBM_BSEXACT) that split buckets often.
    for (name, flags, block) in [
        ("plain", "0", "0"),
        ("numsync", "8192", "0"),
        ("small", "512", "512"),
    ] {
        let db = s.path(&format!("{name}.gdbm"));
        gdbm(&["write", p(&db), flags, block], &input);
        let dump = String::from_utf8(gdbm(&["dump", p(&db)], b"")).expect("ascii");
        let records: Vec<(Vec<u8>, Vec<u8>)> = dump
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                (unhex(k), unhex(v))
            })
            .collect();
        assert_eq!(records.len(), 3001 - expect_gone.len(), "{name}");
        assert!(!records.iter().any(|(k, _)| expect_gone.contains(k)));
        // The listing: the writer's order, Cyrus's lines.
        let want: String = records
            .iter()
            .map(|(k, _)| {
                let parts: Vec<&[u8]> = k.splitn(3, |&b| b == 0).collect();
                format!(
                    "{}@{}: {}\n",
                    String::from_utf8_lossy(parts[0]),
                    String::from_utf8_lossy(parts[1]),
                    String::from_utf8_lossy(parts[2])
                )
            })
            .collect();
        let o = list(&s, LISTUSERS, &db, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{name}");
        let new = s.path(&format!("{name}.lmdb"));
        let o = import(&s, &db, &new, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("(GDBM)"), "{}", stdout(&o));
        assert_eq!(sorted(mdb_dump(&new)), sorted(records), "{name}");
        // Truncated: refused, nothing created.
        let bytes = std::fs::read(&db).expect("read");
        let cut = s.path("cut.gdbm");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
        let target = s.path("cut.lmdb");
        assert_refused(
            &import(&s, &cut, &target, &[]),
            &cut,
            "GDBM file: truncated",
        );
        assert!(!target.exists());
    }
    let numsync = std::fs::read(s.path("numsync.gdbm")).expect("read");
    assert_eq!(
        numsync[..4],
        0x1357_9ad1u32.to_le_bytes(),
        "not a numsync file"
    );
}

/// A long-running LMDB consumer, as Postfix's smtpd is with a Cyrus SASL
/// built with LMDB: python3-lmdb opens the environment, reads, waits for a
/// line, and reads again without reopening. Where Cyrus would crash it
/// prints `resized` (MDB_MAP_RESIZED). Like Cyrus without `sasldb_mapsize`
/// it sets no map size of its own (0), so it maps what the file records.
const CONSUMER_PY: &str = r#"
import lmdb, sys
env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=True, max_dbs=0, map_size=0)
def count():
    try:
        with env.begin() as t:
            return "count %d" % t.stat()["entries"]
    except lmdb.MapResizedError:
        return "resized"
print("ready %d %s" % (env.info()["map_size"], count()), flush=True)
sys.stdin.readline()
print(count(), flush=True)
"#;

/// Start the consumer; returns it with its first line (`ready MAP count N`).
fn consumer(db: &Path) -> (std::process::Child, impl std::io::BufRead, String) {
    need_python_lmdb();
    use std::io::BufRead;
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(CONSUMER_PY)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with python3-lmdb");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("consumer");
    (child, out, line)
}

/// Let the consumer read again; its answer.
fn read_again(child: &mut std::process::Child, out: &mut impl std::io::BufRead) -> String {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write");
    drop(stdin);
    let mut line = String::new();
    out.read_line(&mut line).expect("consumer");
    assert!(child.wait().expect("wait").success());
    line
}

fn a_consumer_open_across_a_million_record_import_keeps_working() {
    need("db5.3_load", "db5.3-util");
    need("saslpasswd2", "sasl2-bin");
    let s = Scratch::new();
    let first = s.path("first.bdb");
    saslpasswd2(
        &s,
        &first,
        &["-c", "-u", "example.org", "alice"],
        b"alice-pw",
    );
    let store = s.path("sasldb2");
    // The store the import creates records a generous map (address space;
    // the file holds only its data).
    let o = import(&s, &first, &store, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::metadata(&store).expect("store").len() < 1 << 20);
    let (mut child, mut out, ready) = consumer(&store);
    assert!(ready.starts_with("ready 1073741824 count 1"), "{ready}");

    let big = s.path("big.bdb");
    db_load(&big, &["-t", "hash"], many(1_000_000));
    let o = import(&s, &big, &store, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("map grew"), "{}", stdout(&o));
    assert_eq!(read_again(&mut child, &mut out).trim(), "count 1000001");

    // A store Cyrus's way (LMDB's 1 MiB map): the import must grow it, and
    // says so, because an open consumer now fails.
    s.conf("saslpasswd", "sasldb_mapsize: 1024\n");
    let small = s.path("small");
    let o = s.run(
        SASLPASSWD,
        &["-p", "-c", "-u", "r", "-f", p(&small), "x"],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(s.conf_dir().join("saslpasswd.conf")).expect("conf");
    let (mut child, mut out, ready) = consumer(&small);
    assert!(ready.starts_with("ready 1048576 count 1"), "{ready}");
    let o = import(&s, &big, &small, &["--dry-run"]);
    assert!(
        stdout(&o).contains("would grow from 1048576 to 1073741824"),
        "{}",
        stdout(&o)
    );
    let o = import(&s, &big, &small, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("grew from 1048576 to 1073741824 bytes")
            && stdout(&o).contains("restart them"),
        "{}",
        stdout(&o)
    );
    // The doctor names the consumer that still maps 1 MiB.
    let o = s.run(
        SASLPASSWD,
        &["--doctor", "--no-postfix", "-f", p(&small)],
        None,
    );
    let pid = child.id().to_string();
    assert!(
        stdout(&o).contains("store.map")
            && stdout(&o).contains(&format!("{pid} (python3) maps 1048576 bytes")),
        "{}",
        stdout(&o)
    );
    assert_eq!(read_again(&mut child, &mut out).trim(), "resized");
    // Once it is gone, the doctor has nothing to say about maps.
    let o = s.run(
        SASLPASSWD,
        &["--doctor", "--no-postfix", "-f", p(&small)],
        None,
    );
    assert!(!stdout(&o).contains("store.map"), "{}", stdout(&o));
}

fn databases_of_other_programs_are_refused() {
    need("db5.3_load", "db5.3-util");
    let s = Scratch::new();
    let records = || {
        (0..50).map(|i| {
            (
                format!("host{i}.example").into_bytes(),
                b"10.0.0.1".to_vec(),
            )
        })
    };
    let bdb = s.path("hosts.db");
    db_load(&bdb, &["-t", "hash"], records());
    let gdbm_file = s.path("hosts.gdbm");
    let input: String = records()
        .map(|(k, v)| format!("{} {}\n", hex(&k), hex(&v)))
        .collect();
    gdbm(&["write", p(&gdbm_file), "0", "0"], input.as_bytes());
    for (f, kind) in [(&bdb, "Berkeley DB hash"), (&gdbm_file, "GDBM")] {
        let what = format!("a {kind} database of another program: none of its 50 keys");
        let target = s.path("target");
        assert_refused(&import(&s, f, &target, &[]), f, &what);
        assert!(!target.exists());
        for view in [&[][..], &["--format", "json"][..]] {
            assert_refused(&list(&s, LISTUSERS, f, view), f, &what);
        }
    }
}

crate::tests!(
    files_written_by_debian_saslpasswd2,
    a_million_records_from_db_load,
    small_pages_off_page_keys_both_byte_orders_and_checksums,
    damaged_and_foreign_files_are_refused_and_the_target_untouched,
    conflicts_dry_run_replace_and_stdin,
    gdbm_files_written_by_libgdbm,
    a_consumer_open_across_a_million_record_import_keeps_working,
    databases_of_other_programs_are_refused,
);
