//! Interop with independent LMDB readers and writers, both ways, also while
//! the other side holds the environment open: Debian's `mdb_dump`,
//! `mdb_load`, `mdb_stat` (lmdb-utils) and `python3-lmdb` (both link the
//! system liblmdb 0.9.24). Plus file modes under different umasks and the
//! promise that read-only opens create nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::interop::*;
use crate::common::*;

type Kv = Vec<(Vec<u8>, Vec<u8>)>;

fn sorted(mut v: Kv) -> Kv {
    v.sort();
    v
}

fn set_pipe(s: &Scratch, db: &Path, args: &[&str], stdin: &[u8]) {
    let mut a = vec!["-p", "-c", "-f", db.to_str().unwrap()];
    a.extend_from_slice(args);
    let o = s.run(SASLPASSWD, &a, Some(stdin));
    assert!(
        o.status.success(),
        "saslpasswd {args:?} failed: {}",
        stderr(&o)
    );
}

fn list(s: &Scratch, db: &Path) -> String {
    let o = s.run(LISTUSERS, &["-f", db.to_str().unwrap()], None);
    assert!(o.status.success(), "sasldblistusers: {}", stderr(&o));
    assert!(
        !stderr(&o).contains("listusers failed"),
        "sasldblistusers: {}",
        stderr(&o)
    );
    stdout(&o)
}

fn check_pw(s: &Scratch, db: &Path, userid: &str, pw: &[u8]) -> (bool, String) {
    let o = s.run(
        SASLPASSWD,
        &["--check", "-p", "-f", db.to_str().unwrap(), userid],
        Some(pw),
    );
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// The listing line Cyrus prints for a key (raw bytes).
fn listing_of(kv: &Kv) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, _) in kv {
        let mut parts = k.splitn(3, |&b| b == 0);
        out.extend_from_slice(parts.next().unwrap());
        out.push(b'@');
        out.extend_from_slice(parts.next().unwrap());
        out.extend_from_slice(b": ");
        out.extend_from_slice(parts.next().unwrap());
        out.push(b'\n');
    }
    out
}

/// Cyrus's legacy `cmusaslsecretPLAIN`: salt, NUL, MD5(salt "sasldb" password),
/// computed by Python's hashlib (not by our code).
fn legacy_plain(password: &[u8]) -> Vec<u8> {
    let o = python(
        "import sys, hashlib\n\
         salt = b'0123456789abcdef'\n\
         pw = bytes.fromhex(sys.argv[1])\n\
         print((salt + b'\\0' + hashlib.md5(salt + b'sasldb' + pw).digest()).hex())\n",
        &[&hex(password)],
    );
    unhex(String::from_utf8(o.stdout).unwrap().trim())
}

fn debian_tools_and_python_read_exactly_what_we_write() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    let big: Vec<u8> = (0..8191u32).map(|i| b'A' + (i % 26) as u8).collect();

    set_pipe(&s, &db, &["-u", "example.org", "alice"], b"s3cret\n");
    set_pipe(
        &s,
        &db,
        &["-u", "ex\u{e4}mple.org", "j\u{fc}rgen"],
        "p\u{e4}ssw\u{f6}rd\u{20ac}\n".as_bytes(),
    );
    // One trailing LF is removed; the CR before it and inner LFs are kept.
    set_pipe(&s, &db, &["-u", "example.org", "carol"], b"abc\r\n");
    set_pipe(&s, &db, &["-u", "example.org", "dave"], b"line1\nline2\n");
    set_pipe(&s, &db, &["hank@"], b"pw-hank"); // empty realm
    set_pipe(&s, &db, &["-u", "example.org", ""], b"pw-empty-authid"); // empty authid
    set_pipe(&s, &db, &["gina@a@b"], b"pw-gina"); // realm "a@b"
    let mut batch = b"big@example.org:".to_vec();
    batch.extend_from_slice(&big);
    batch.extend_from_slice(b"\nwith space@Realm Two:p a:s\\s\n");
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", db.to_str().unwrap()],
        Some(&batch),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let expected = sorted(vec![
        (
            key("alice", "example.org", "userPassword"),
            b"s3cret".to_vec(),
        ),
        (
            key("j\u{fc}rgen", "ex\u{e4}mple.org", "userPassword"),
            "p\u{e4}ssw\u{f6}rd\u{20ac}".as_bytes().to_vec(),
        ),
        (
            key("carol", "example.org", "userPassword"),
            b"abc\r".to_vec(),
        ),
        (
            key("dave", "example.org", "userPassword"),
            b"line1\nline2".to_vec(),
        ),
        (key("hank", "", "userPassword"), b"pw-hank".to_vec()),
        (
            key("", "example.org", "userPassword"),
            b"pw-empty-authid".to_vec(),
        ),
        (key("gina", "a@b", "userPassword"), b"pw-gina".to_vec()),
        (key("big", "example.org", "userPassword"), big.clone()),
        (
            key("with space", "Realm Two", "userPassword"),
            b"p a:s\\s".to_vec(),
        ),
    ]);
    // Raw bytes of two keys, spelled out, so the layout is not only checked
    // against our own key() helper.
    assert!(expected.iter().any(|(k, _)| k == b"hank\0\0userPassword"));
    assert!(
        expected
            .iter()
            .any(|(k, _)| k == b"\0example.org\0userPassword")
    );

    // mdb_dump (system liblmdb) sees exactly these keys and values, in key order.
    assert_eq!(dump_hex(&db), expected);

    // mdb_stat: Cyrus's defaults (126 readers, 4 KiB pages), but a map of
    // 1 GiB rather than LMDB's 1 MiB, so that a Postfix smtpd or Cyrus
    // process holding the store open never sees it grow: address space,
    // not disk (the file holds only its data).
    let st = mdb_stat(&db);
    assert_eq!(stat_field(&st, "Map size"), 1 << 30, "{st:?}");
    assert!(std::fs::metadata(&db).expect("store").len() < 1 << 20);
    assert_eq!(stat_field(&st, "Page size"), 4096, "{st:?}");
    assert_eq!(stat_field(&st, "Max readers"), 126, "{st:?}");
    assert_eq!(stat_field(&st, "Entries"), expected.len() as u64, "{st:?}");
    // The 8191-byte value needs overflow pages: a real multi-page value.
    assert!(stat_field(&st, "Overflow pages") >= 2, "{st:?}");

    // python3-lmdb, read-only with its default map size.
    let mut py = PyPeer::spawn(&db, "ro", None);
    py.begin();
    assert_eq!(py.dump(), expected);
    assert_eq!(
        py.get(b"carol\0example.org\0userPassword").as_deref(),
        Some(&b"abc\r"[..])
    );
    assert_eq!(py.get(b"carol\0example.org\0userPassword\0"), None);
    py.close();

    // Our listing prints exactly the Cyrus lines, in the same key order.
    assert_eq!(list(&s, &db).into_bytes(), listing_of(&expected));

    // mdb_dump | mdb_load into a fresh file gives the same store back.
    let copy = s.path("reloaded");
    let dump = Command::new("mdb_dump")
        .args(["-n"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(dump.status.success());
    let o = run_cmd(
        Command::new("mdb_load").arg("-n").arg(&copy),
        Some(&dump.stdout),
    );
    assert!(o.status.success(), "mdb_load: {}", stderr(&o));
    assert_eq!(dump_hex(&copy), expected);
    assert_eq!(list(&s, &copy), list(&s, &db));
}

fn we_read_what_python_and_mdb_load_write_while_python_holds_the_env() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    let written: Kv = vec![
        (
            key("py\u{e9}", "r\u{e9}alm", "userPassword"),
            "s\u{e9}cret".as_bytes().to_vec(),
        ),
        (key("cr", "example.org", "userPassword"), b"ab\r".to_vec()),
        (
            key("lf", "example.org", "userPassword"),
            b"one\ntwo".to_vec(),
        ),
        (key("norealm", "", "userPassword"), b"nr".to_vec()),
        (key("", "example.org", "userPassword"), b"anon".to_vec()),
        (
            key("legacy", "example.org", "cmusaslsecretPLAIN"),
            legacy_plain(b"oldplain"),
        ),
        (
            key("back\\slash", "example.org", "userPassword"),
            b"a\\b\\\\c".to_vec(),
        ),
        (key("legacy", "example.org", "foo"), b"bar".to_vec()),
        (key("emptyprop", "example.org", ""), b"x".to_vec()),
    ];
    // A python writer creates the store and keeps the environment open.
    let mut py = PyPeer::spawn(&db, "rw", Some(1_048_576));
    for (k, v) in &written {
        py.put(k, v);
    }
    let expected = sorted(written.clone());

    // sasldblistusers: byte-exact Cyrus lines in key order.
    let listing = list(&s, &db);
    assert_eq!(listing.as_bytes(), listing_of(&expected));
    assert!(listing.contains("norealm@: userPassword\n"), "{listing}");
    assert!(
        listing.contains("@example.org: userPassword\n"),
        "{listing}"
    );
    assert!(listing.contains("emptyprop@example.org: \n"), "{listing}");

    // --check finds and verifies what python stored (pipe mode removes one LF).
    for (userid, pw) in [
        ("py\u{e9}@r\u{e9}alm", "s\u{e9}cret\n".as_bytes()),
        ("cr@example.org", b"ab\r"),
        ("lf@example.org", b"one\ntwo\n"),
        ("norealm@", b"nr"),
        ("@example.org", b"anon"),
        ("legacy@example.org", b"oldplain"), // cmusaslsecretPLAIN
        ("back\\slash@example.org", b"a\\b\\\\c"),
    ] {
        let (ok, msg) = check_pw(&s, &db, userid, pw);
        assert!(ok, "--check {userid}: {msg}");
        assert!(msg.contains("password matches"), "{msg}");
    }
    let (ok, msg) = check_pw(&s, &db, "cr@example.org", b"ab");
    assert!(!ok && msg.contains("wrong password"), "{msg}");

    // We write while python still has the environment open; python sees it.
    set_pipe(&s, &db, &["-u", "example.org", "fromus"], b"ours\n");
    // -d removes the secrets, the foreign property "foo" stays.
    let o = s.run(
        SASLPASSWD,
        &["-d", "-f", db.to_str().unwrap(), "legacy@example.org"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    py.begin();
    assert_eq!(
        py.get(b"fromus\0example.org\0userPassword").as_deref(),
        Some(&b"ours"[..])
    );
    assert_eq!(py.get(b"legacy\0example.org\0cmusaslsecretPLAIN"), None);
    assert_eq!(
        py.get(b"legacy\0example.org\0foo").as_deref(),
        Some(&b"bar"[..])
    );
    // And python writes again after us.
    py.put(b"late\0example.org\0userPassword", b"later");
    py.cmd("end");
    let (ok, msg) = check_pw(&s, &db, "late@example.org", b"later");
    assert!(ok, "{msg}");
    py.close();

    // A store made by mdb_load from a print-format dump.
    let loaded = s.path("loaded");
    // Hex (bytevalue) input: LMDB 0.9.24's mdb_load mis-parses `\\` in the
    // print format, and one key here holds a backslash.
    let mut text = String::from("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n");
    for (k, v) in &written {
        text.push_str(&format!(" {}\n {}\n", hex(k), hex(v)));
    }
    text.push_str("DATA=END\n");
    let o = run_cmd(
        Command::new("mdb_load").arg("-n").arg(&loaded),
        Some(text.as_bytes()),
    );
    assert!(o.status.success(), "mdb_load: {}", stderr(&o));
    assert_eq!(dump_hex(&loaded), expected);
    assert_eq!(list(&s, &loaded).as_bytes(), listing_of(&expected));
    let (ok, msg) = check_pw(&s, &loaded, "lf@example.org", b"one\ntwo\n");
    assert!(ok, "{msg}");
    // We add to the mdb_load store; mdb_dump sees old and new.
    set_pipe(&s, &loaded, &["added@example.org"], b"new\n");
    let mut want = written;
    want.push((key("added", "example.org", "userPassword"), b"new".to_vec()));
    assert_eq!(dump_hex(&loaded), sorted(want));
}

fn python_reader_holding_a_read_txn_does_not_block_us_and_keeps_its_snapshot() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    set_pipe(&s, &db, &["-u", "example.org", "alice"], b"old\n");
    // Python reader with Cyrus's default map (1 MiB), read txn open.
    let mut py = PyPeer::spawn(&db, "ro", Some(1_048_576));
    assert_eq!(py.begin(), 0);
    let alice = key("alice", "example.org", "userPassword");
    assert_eq!(py.get(&alice).as_deref(), Some(&b"old"[..]));

    // Our writer is not blocked by the open reader.
    let t = Instant::now();
    set_pipe(&s, &db, &["-u", "example.org", "alice"], b"new\n");
    set_pipe(&s, &db, &["-u", "example.org", "bob"], b"bobpw\n");
    assert!(t.elapsed() < Duration::from_secs(10), "writer was blocked");

    // Same txn: still the old snapshot. New txn: the new data.
    assert_eq!(py.get(&alice).as_deref(), Some(&b"old"[..]));
    assert_eq!(py.get(&key("bob", "example.org", "userPassword")), None);
    assert_eq!(py.begin(), 0);
    assert_eq!(py.get(&alice).as_deref(), Some(&b"new"[..]));
    assert_eq!(
        py.get(&key("bob", "example.org", "userPassword"))
            .as_deref(),
        Some(&b"bobpw"[..])
    );

    // Grow the store far past the reader's 1 MiB map while it holds a txn.
    let mut batch = String::new();
    for i in 0..12_000 {
        batch.push_str(&format!("grow{i}@big.example:{}{i}\n", "x".repeat(180)));
    }
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", db.to_str().unwrap()],
        Some(batch.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(map_size(&db) > 1_048_576);
    // The old txn still reads its snapshot.
    assert_eq!(py.count(), 2);
    // A new txn must first adopt the grown map (MDB_MAP_RESIZED), then sees all.
    let resized = py.begin();
    assert!(resized >= 1, "python reader did not see the map grow");
    assert_eq!(py.count(), 12_002);
    assert_eq!(
        py.get(&key("grow11999", "big.example", "userPassword")),
        Some(format!("{}11999", "x".repeat(180)).into_bytes())
    );
    py.close();
}

const PY_WRITER: &str = r#"
import sys, os, lmdb
path, stop = sys.argv[1], sys.argv[2]
env = lmdb.open(path, subdir=False, mode=0o660, max_dbs=0)
i = 0
while not os.path.exists(stop) or i < 50:
    with env.begin(write=True) as t:
        # Two properties per user in one txn: a consistent reader sees both or neither.
        t.put(('w%06d\0py.example\0userPassword' % i).encode(), b'pw%d' % i)
        t.put(('w%06d\0py.example\0cmusaslsecretPLAIN' % i).encode(), b'pl%d' % i)
    i += 1
    if i == 1:
        sys.stdout.write('started\n'); sys.stdout.flush()
    if i >= 200000:
        break
sys.stdout.write('wrote %d\n' % i); sys.stdout.flush()
"#;

fn we_list_and_check_while_a_python_writer_holds_the_env_and_writes() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    set_pipe(&s, &db, &["-u", "example.org", "base"], b"basepw\n");
    let stop = s.path("stop");
    let mut writer = Command::new(PYTHON)
        .arg("-c")
        .arg(PY_WRITER)
        .arg(&db)
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (python3-lmdb)");
    let mut out = std::io::BufReader::new(writer.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "started\n");

    let mut counts = Vec::new();
    let t = Instant::now();
    while counts.len() < 25 && t.elapsed() < Duration::from_secs(15) {
        let listing = list(&s, &db);
        let lines: Vec<&str> = listing.lines().collect();
        assert!(lines.contains(&"base@example.org: userPassword"));
        let py: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("@py.example: "))
            .collect();
        // Each snapshot holds both properties of every user the writer committed.
        assert_eq!(py.len() % 2, 0, "torn snapshot: {} lines", py.len());
        for pair in py.chunks(2) {
            let u0 = pair[0].split('@').next().unwrap();
            let u1 = pair[1].split('@').next().unwrap();
            assert_eq!(u0, u1, "torn snapshot near {pair:?}");
            assert!(pair[0].ends_with(": cmusaslsecretPLAIN"), "{pair:?}");
            assert!(pair[1].ends_with(": userPassword"), "{pair:?}");
        }
        counts.push(py.len() / 2);
        // --check of a user the writer has committed, while it keeps writing.
        if let Some(last) = py.last() {
            let user = last.split('@').next().unwrap();
            let n: usize = user[1..].parse().unwrap();
            let (ok, msg) = check_pw(
                &s,
                &db,
                &format!("{user}@py.example"),
                format!("pw{n}").as_bytes(),
            );
            assert!(ok, "{msg}");
        }
        // We also write while python writes.
        set_pipe(
            &s,
            &db,
            &[&format!("ours{}@example.org", counts.len())],
            b"mine\n",
        );
    }
    std::fs::write(&stop, b"").unwrap();
    let st = wait_timeout(&mut writer, Duration::from_secs(20), "python writer");
    assert!(st.success());
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let total: usize = line
        .trim()
        .strip_prefix("wrote ")
        .expect("wrote N")
        .parse()
        .unwrap();

    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    // The listings really overlapped the writes: they saw different states.
    assert!(
        counts.first() != counts.last(),
        "listings never saw the writer progress: {counts:?}"
    );
    let final_listing = list(&s, &db);
    assert_eq!(
        final_listing
            .lines()
            .filter(|l| l.contains("@py.example: "))
            .count(),
        2 * total
    );
    for i in 1..=counts.len() {
        assert!(
            final_listing.contains(&format!("ours{i}@example.org: userPassword\n")),
            "our write {i} lost"
        );
    }
    assert_eq!(entries(&db) as usize, 2 * total + 1 + counts.len());
}

fn umask_run(s: &Scratch, umask: &str, program: &str, args: &[&str], stdin: &[u8]) {
    let mut c = s.cmd("bash");
    c.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(program)
        .args(args);
    let o = run_cmd(&mut c, Some(stdin));
    assert!(o.status.success(), "umask {umask}: {}", stderr(&o));
}

fn new_files_are_0660_masked_by_the_umask_and_existing_modes_are_kept() {
    require_tools();
    let s = Scratch::new();
    for (umask, want) in [
        ("022", 0o640),
        ("077", 0o600),
        ("000", 0o660),
        ("027", 0o640),
    ] {
        // Single set and batch both create the store.
        let db = s.path(&format!("single-{umask}"));
        umask_run(
            &s,
            umask,
            SASLPASSWD,
            &["-p", "-c", "-f", db.to_str().unwrap(), "a@r"],
            b"pw",
        );
        assert_eq!(mode_of(&db), want, "data file, umask {umask}");
        assert_eq!(mode_of(&lock_of(&db)), want, "lock file, umask {umask}");
        let db = s.path(&format!("batch-{umask}"));
        umask_run(
            &s,
            umask,
            SASLPASSWD,
            &["--batch", "-", "-f", db.to_str().unwrap()],
            b"a@r:pw\n",
        );
        assert_eq!(mode_of(&db), want, "batch data file, umask {umask}");
        assert_eq!(mode_of(&lock_of(&db)), want, "batch lock, umask {umask}");
        // A delete on a missing file creates an empty store too (as Cyrus does).
        let db = s.path(&format!("delete-{umask}"));
        umask_run(
            &s,
            umask,
            SASLPASSWD,
            &["-d", "-f", db.to_str().unwrap(), "a@r"],
            b"",
        );
        assert_eq!(mode_of(&db), want, "delete data file, umask {umask}");
        assert!(dump_hex(&db).is_empty());
    }
    // Existing files keep their mode whatever the umask.
    let db = s.path("single-022");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o604)).unwrap();
    umask_run(
        &s,
        "077",
        SASLPASSWD,
        &["-p", "-c", "-f", db.to_str().unwrap(), "b@r"],
        b"pw",
    );
    assert_eq!(mode_of(&db), 0o604);
    assert_eq!(mode_of(&lock_of(&db)), 0o640);
    assert_eq!(dump_hex(&db).len(), 2);
    // A reader recreates a missing lock file the same way (as every LMDB reader does).
    std::fs::remove_file(lock_of(&db)).unwrap();
    umask_run(&s, "077", LISTUSERS, &["-f", db.to_str().unwrap()], b"");
    assert_eq!(mode_of(&lock_of(&db)), 0o600);
    assert_eq!(mode_of(&db), 0o604);
}

fn read_only_opens_of_a_missing_store_create_nothing() {
    let s = Scratch::new();
    let before = dir_listing(s.dir.path());
    let db = s.path("missing");
    let p = db.to_str().unwrap();

    let o = s.run(LISTUSERS, &["-f", p], None);
    // Cyrus: "listusers failed", exit 0.
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("listusers failed"), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    for fmt in ["table", "json"] {
        let o = s.run(LISTUSERS, &["-f", p, "--format", fmt], None);
        assert_eq!(o.status.code(), Some(1), "--format {fmt}");
    }
    let o = s.run(SASLPASSWD, &["--check", "-p", "-f", p, "a@r"], Some(b"pw"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    let o = s.run(
        SASLPASSWD,
        &["--dry-run", "-p", "-f", p, "a@r"],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("would be created"), "{}", stdout(&o));
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "--dry-run", "-f", p],
        Some(b"a@r:pw\nb@r:pw\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 created"), "{}", stdout(&o));

    assert_eq!(
        dir_listing(s.dir.path()),
        before,
        "a read-only open created files"
    );
}

// ---------------------------------------------------------------------------
// Map size (B)

fn count_in_process(store: &sasldb::store::Store) -> usize {
    store
        .read(|v| {
            let mut n = 0;
            v.scan(|_| {
                n += 1;
                true
            })?;
            Ok(n)
        })
        .expect("read")
}

fn map_grows_past_1_mib_with_single_calls_and_the_size_is_recorded() {
    require_tools();
    let s = Scratch::new();
    // A store with LMDB's (and Cyrus's) 1 MiB map, as Cyrus makes them.
    s.conf("saslpasswd", "sasldb_mapsize: 1024\n");
    let db = s.db();
    // Transcript F: Cyrus failed at user 266 with 1500-byte passwords.
    let users = 400;
    let script = format!(
        "pw=$(printf 'P%.0s' $(seq 1 1500)); for i in $(seq 1 {users}); do \
         printf '%s' \"$pw$i\" | \"$0\" -p -c -f \"$1\" -u big.example \"user$i\" || {{ echo \"failed at $i\" >&2; exit 1; }}; done"
    );
    let o = run_cmd(
        s.cmd("bash")
            .arg("-c")
            .arg(&script)
            .arg(SASLPASSWD)
            .arg(&db),
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The call that grew it said so, and which processes must restart.
    assert!(
        stderr(&o).contains("grew from 1048576 to 1073741824 bytes")
            && stderr(&o).contains("restart them"),
        "{}",
        stderr(&o)
    );
    let st = mdb_stat(&db);
    let grown = stat_field(&st, "Map size");
    // In one large step, not by doubling from 1 MiB.
    assert_eq!(grown, 1 << 30, "map did not grow: {st:?}");
    assert_eq!(stat_field(&st, "Entries"), users);
    // The data really did not fit the default map.
    assert!(
        stat_field(&st, "Number of pages used") * 4096 > 1_048_576,
        "{st:?}"
    );

    // A batch of 20k users with long passwords on top.
    let mut batch = String::new();
    for i in 0..20_000 {
        batch.push_str(&format!("b{i}@batch.example:{}-{i}\n", "L".repeat(300)));
    }
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", db.to_str().unwrap()],
        Some(batch.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("20000 created"), "{}", stdout(&o));
    // Room enough: no second growth for readers to meet.
    assert!(!stderr(&o).contains("grew"), "{}", stderr(&o));
    let st = mdb_stat(&db);
    let bigger = stat_field(&st, "Map size");
    assert_eq!(bigger, grown, "{st:?}");
    assert_eq!(stat_field(&st, "Entries"), users + 20_000);

    // Independent openers with their default map size read everything.
    let out = python(
        "import sys, lmdb\n\
         e = lmdb.open(sys.argv[1], subdir=False, readonly=True)\n\
         with e.begin() as t:\n\
         \x20   n = sum(1 for _ in t.cursor())\n\
         \x20   v = t.get(b'user266\\0big.example\\0userPassword')\n\
         \x20   w = t.get(b'b19999\\0batch.example\\0userPassword')\n\
         print(n, len(v), v[-4:].decode(), w[-6:].decode())\n",
        &[db.to_str().unwrap()],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} 1503 P266 -19999", users + 20_000)
    );
    let listing = list(&s, &db);
    assert_eq!(listing.lines().count() as u64, users + 20_000);
    let (ok, msg) = check_pw(
        &s,
        &db,
        "user400@big.example",
        format!("{}400", "P".repeat(1500)).as_bytes(),
    );
    assert!(ok, "{msg}");
    // A later default open adopts the recorded size (not back to 1 MiB).
    set_pipe(&s, &db, &["late@big.example"], b"x\n");
    assert!(map_size(&db) >= bigger);
}

fn a_long_lived_reader_in_process_adopts_a_map_grown_by_another_process() {
    require_tools();
    let s = Scratch::new();
    s.conf("saslpasswd", "sasldb_mapsize: 1024\n");
    let db = s.db();
    set_pipe(&s, &db, &["-u", "example.org", "first"], b"pw\n");
    assert_eq!(map_size(&db), 1_048_576);

    let opts = sasldb::store::OpenOptions::default();
    let store = sasldb::store::Store::open_read(&db, &opts).expect("open_read");
    assert_eq!(store.map_size(), 1_048_576);
    assert_eq!(count_in_process(&store), 1);
    // Also a python reader opened before the growth, holding the old map.
    let mut py = PyPeer::spawn(&db, "ro", None);

    // Another process grows the file well past this reader's map.
    let mut batch = String::new();
    for i in 0..20_000 {
        batch.push_str(&format!("grown{i}@example.org:{}{i}\n", "z".repeat(250)));
    }
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", db.to_str().unwrap()],
        Some(batch.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let grown = map_size(&db) as usize;
    assert!(grown > 4 << 20, "{grown}");

    // MDB_MAP_RESIZED is handled: the same Store reads the new data.
    assert_eq!(count_in_process(&store), 20_001);
    assert!(store.map_size() >= grown, "{} < {grown}", store.map_size());
    let acct = sasldb::store::Account::new("grown19999", "example.org");
    let v = store
        .read(|v| Ok(v.get(&acct, "userPassword")?.map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(v, Some(format!("{}19999", "z".repeat(250)).into_bytes()));
    // And a --check through the binary sees it too.
    let (ok, msg) = check_pw(
        &s,
        &db,
        "grown19999@example.org",
        format!("{}19999", "z".repeat(250)).as_bytes(),
    );
    assert!(ok, "{msg}");

    // The python reader (default 10 MiB map) reads all of it after adopting.
    py.begin();
    assert_eq!(py.count(), 20_001);
    py.close();
}

fn map_full_inside_one_transaction_grows_and_persists() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    let opts = sasldb::store::OpenOptions {
        map_size: Some(1 << 20),
        max_readers: None,
    };
    let store = sasldb::store::Store::open_write(&db, &opts).expect("open_write");
    assert_eq!(store.map_size(), 1 << 20);
    let mut attempts = 0;
    // No reserve(): the transaction itself runs into MDB_MAP_FULL.
    let n = 4000usize;
    store
        .write(|w| {
            attempts += 1;
            for i in 0..n {
                let a = sasldb::store::Account::new(format!("u{i}"), "full.example");
                w.put(&a, "userPassword", &vec![b'v'; 1000])?;
            }
            Ok(())
        })
        .expect("write past a full map");
    assert!(
        attempts >= 2,
        "the map was never full ({attempts} attempts)"
    );
    assert!(store.map_size() > 4 << 20);
    drop(store);
    let st = mdb_stat(&db);
    assert!(stat_field(&st, "Map size") > 4 << 20, "{st:?}");
    assert_eq!(stat_field(&st, "Entries"), n as u64);
    let dump = dump_hex(&db);
    assert_eq!(dump.len(), n);
    assert!(dump.iter().all(|(_, v)| v == &vec![b'v'; 1000]));
}

fn sasldb_mapsize_option_is_in_kib() {
    require_tools();
    let s = Scratch::new();
    s.conf("saslpasswd", "sasldb_mapsize: 4096\n");
    let db = s.db();
    set_pipe(&s, &db, &["a@r"], b"pw\n");
    assert_eq!(map_size(&db), 4_194_304);
    // An app-specific config is read with -a.
    s.conf("myapp", "sasldb_mapsize: 8192\n");
    let db2 = s.path("app");
    set_pipe(&s, &db2, &["-a", "myapp", "a@r"], b"pw\n");
    assert_eq!(map_size(&db2), 8 << 20);
    // The larger recorded size survives a later open with the default config.
    std::fs::remove_file(s.conf_dir().join("saslpasswd.conf")).unwrap();
    set_pipe(&s, &db, &["b@r"], b"pw\n");
    assert_eq!(map_size(&db), 4_194_304);
}

crate::tests!(
    debian_tools_and_python_read_exactly_what_we_write,
    we_read_what_python_and_mdb_load_write_while_python_holds_the_env,
    python_reader_holding_a_read_txn_does_not_block_us_and_keeps_its_snapshot,
    we_list_and_check_while_a_python_writer_holds_the_env_and_writes,
    new_files_are_0660_masked_by_the_umask_and_existing_modes_are_kept,
    read_only_opens_of_a_missing_store_create_nothing,
    map_grows_past_1_mib_with_single_calls_and_the_size_is_recorded,
    a_long_lived_reader_in_process_adopts_a_map_grown_by_another_process,
    map_full_inside_one_transaction_grows_and_persists,
    sasldb_mapsize_option_is_in_kib,
);
