//! Bad input and hostile file-system states: each must leave the store
//! exactly as it was (Debian's `mdb_dump` before/after, and the data file's
//! bytes), print a clear reason and exit with the Cyrus exit code. Also
//! `--batch` details: stdin, `--dry-run`, idempotent re-runs, deletions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::interop::*;
use crate::common::*;

/// Everything observable about a store that a failed command must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    data: Vec<u8>,
    dump: Vec<(Vec<u8>, Vec<u8>)>,
}

fn snapshot(db: &Path) -> Snapshot {
    Snapshot {
        data: std::fs::read(db).expect("read data file"),
        dump: dump_hex(db),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn set(s: &Scratch, db: &Path, userid: &str, pw: &[u8]) -> Output {
    s.run(SASLPASSWD, &["-p", "-c", "-f", p(db), userid], Some(pw))
}

fn must(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A failure as saslpasswd2 reports it: exit 1, the reason, then "generic failure".
fn assert_generic_failure(o: &Output, reason: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(reason), "expected {reason:?} in: {err}");
    assert!(
        err.ends_with("saslpasswd: generic failure\n"),
        "no Cyrus line: {err}"
    );
    assert!(!err.contains("(os error"), "Rust error suffix: {err}");
    assert!(stdout(o).is_empty(), "{}", stdout(o));
}

/// A listing failure as sasldblistusers2 reports it: "listusers failed", exit 0.
fn assert_listusers_failed(o: &Output, reason: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(reason), "expected {reason:?} in: {err}");
    assert!(err.ends_with("listusers failed\n"), "{err}");
    assert!(!err.contains("(os error"), "Rust error suffix: {err}");
    assert!(stdout(o).is_empty(), "{}", stdout(o));
}

fn populated(s: &Scratch, name: &str) -> PathBuf {
    let db = s.path(name);
    must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(b"alice@example.org:alicepw\nbob@example.org:bobpw\ncarol@other.org:carolpw\n"),
    ));
    db
}

// ---------------------------------------------------------------------------

/// Run `program` as `nobody` (uid/gid 65534) with the scratch SASL_CONF_PATH.
fn as_nobody(s: &Scratch, program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = s.cmd("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args);
    run_cmd(&mut c, stdin)
}

fn unwritable_directory_and_files_as_nobody() {
    require_tools();
    // It switches to user nobody with setpriv.
    need_root();
    need("setpriv", "util-linux");
    let s = Scratch::new();
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    // nobody must reach the binaries and the scratch tree.
    chmod(s.dir.path(), 0o755);
    chmod(&s.conf_dir(), 0o755);
    let bin = s.path("bin");
    std::fs::create_dir(&bin).unwrap();
    chmod(&bin, 0o755);
    let pw_bin = bin.join("saslpasswd");
    let ls_bin = bin.join("sasldblistusers");
    std::fs::copy(SASLPASSWD, &pw_bin).unwrap();
    std::fs::copy(LISTUSERS, &ls_bin).unwrap();
    chmod(&pw_bin, 0o755);
    chmod(&ls_bin, 0o755);
    // A directory nobody cannot write to.
    let ro = s.path("ro");
    std::fs::create_dir(&ro).unwrap();
    chmod(&ro, 0o755);

    // 1. Store missing, directory unwritable: refused, nothing created.
    let db = ro.join("sasldb2");
    let o = as_nobody(&s, &pw_bin, &["-p", "-c", "-f", p(&db), "a@r"], Some(b"pw"));
    assert_generic_failure(&o, "Permission denied");
    assert!(stderr(&o).contains(p(&db)), "{}", stderr(&o));
    let o = as_nobody(
        &s,
        &pw_bin,
        &["--batch", "-", "-f", p(&db)],
        Some(b"a@r:pw\n"),
    );
    assert_generic_failure(&o, "Permission denied");
    assert!(dir_listing(&ro).is_empty(), "{:?}", dir_listing(&ro));

    // 2. Store owned by root, not readable by nobody.
    must(set(&s, &db, "alice@example.org", b"alicepw"));
    chmod(&db, 0o600);
    chmod(&lock_of(&db), 0o600);
    let before = snapshot(&db);
    let o = as_nobody(&s, &pw_bin, &["-p", "-c", "-f", p(&db), "a@r"], Some(b"pw"));
    assert_generic_failure(&o, "Permission denied");
    let o = as_nobody(
        &s,
        &pw_bin,
        &["-d", "-f", p(&db), "alice@example.org"],
        None,
    );
    assert_generic_failure(&o, "Permission denied");
    let o = as_nobody(&s, &ls_bin, &["-f", p(&db)], None);
    assert_listusers_failed(&o, "Permission denied");
    assert_eq!(snapshot(&db), before);

    // 3. World-readable data, lock file not writable by nobody: LMDB readers
    //    need the lock file read-write, so listing fails as with Cyrus.
    //    The message names the lock file, not the readable data file.
    chmod(&db, 0o644);
    chmod(&lock_of(&db), 0o644);
    let lock_denied = format!("{}: Permission denied", p(&lock_of(&db)));
    let o = as_nobody(&s, &ls_bin, &["-f", p(&db)], None);
    assert_listusers_failed(&o, &lock_denied);
    assert!(
        stderr(&o).contains("lock file read-write"),
        "{}",
        stderr(&o)
    );
    let o = as_nobody(
        &s,
        &pw_bin,
        &["--check", "-p", "-f", p(&db), "alice@example.org"],
        Some(b"alicepw"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&lock_denied), "{}", stderr(&o));
    // With a lock file nobody may write, reading works; writing still not.
    chmod(&lock_of(&db), 0o666);
    let o = must(as_nobody(&s, &ls_bin, &["-f", p(&db)], None));
    assert_eq!(stdout(&o), "alice@example.org: userPassword\n");
    let o = as_nobody(&s, &pw_bin, &["-p", "-c", "-f", p(&db), "a@r"], Some(b"pw"));
    assert_generic_failure(&o, "Permission denied");
    assert_eq!(snapshot(&db), before);
    assert_eq!(dir_listing(&ro), ["sasldb2", "sasldb2-lock"]);

    // A data file nobody may write but a lock file it may not: the lock is named.
    chmod(&db, 0o666);
    chmod(&lock_of(&db), 0o644);
    let o = as_nobody(&s, &pw_bin, &["-p", "-c", "-f", p(&db), "a@r"], Some(b"pw"));
    assert_generic_failure(&o, &lock_denied);
    // No lock file and no right to create one in the directory: named too.
    std::fs::remove_file(lock_of(&db)).unwrap();
    let o = as_nobody(&s, &ls_bin, &["-f", p(&db)], None);
    assert_listusers_failed(&o, &lock_denied);
    assert!(stderr(&o).contains("(or create it)"), "{}", stderr(&o));
    assert_eq!(dir_listing(&ro), ["sasldb2"]);
    assert_eq!(snapshot(&db), before); // mdb_dump, as root, recreates the lock

    // 4. Control: files owned by nobody in the same unwritable directory
    //    work (LMDB needs no directory write access for an existing store).
    nix::unistd::chown(
        &db,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .unwrap();
    nix::unistd::chown(
        &lock_of(&db),
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .unwrap();
    must(as_nobody(
        &s,
        &pw_bin,
        &["-p", "-c", "-f", p(&db), "b@r"],
        Some(b"pw"),
    ));
    assert_eq!(dump_hex(&db).len(), 2);
    assert_eq!(dir_listing(&ro), ["sasldb2", "sasldb2-lock"]);
}

fn a_file_that_is_not_lmdb_is_left_untouched_without_a_lock_file() {
    let s = Scratch::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "text",
            b"# this is /etc/sasldb2? no, some text file that happens to be here\n".repeat(50),
        ),
        ("short", b"hi\n".to_vec()),
        (
            "binary",
            (0..16384u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (name, content) in cases {
        let db = s.path(name);
        std::fs::write(&db, &content).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o604)).unwrap();
        let reason = "not an LMDB sasldb file";
        assert_generic_failure(&set(&s, &db, "a@r", b"pw"), reason);
        assert_generic_failure(
            &s.run(SASLPASSWD, &["-d", "-f", p(&db), "a@r"], None),
            reason,
        );
        assert_generic_failure(
            &s.run(
                SASLPASSWD,
                &["--batch", "-", "-f", p(&db)],
                Some(b"a@r:pw\n"),
            ),
            reason,
        );
        assert_generic_failure(
            &s.run(
                SASLPASSWD,
                &["--dry-run", "-p", "-f", p(&db), "a@r"],
                Some(b"pw"),
            ),
            reason,
        );
        let o = s.run(
            SASLPASSWD,
            &["--check", "-p", "-f", p(&db), "a@r"],
            Some(b"pw"),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(reason), "{}", stderr(&o));
        assert_listusers_failed(&s.run(LISTUSERS, &["-f", p(&db)], None), reason);
        let o = s.run(LISTUSERS, &["-f", p(&db), "--format", "json"], None);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(std::fs::read(&db).unwrap(), content, "{name} was modified");
        assert_eq!(mode_of(&db), 0o604);
        assert!(
            !lock_of(&db).exists(),
            "{name}: a -lock file was left behind"
        );
    }
}

fn a_zero_byte_file_is_read_as_empty_and_adopted_by_a_write_like_cyrus() {
    require_tools();
    let s = Scratch::new();
    let db = s.path("empty");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o604)).unwrap();
    // Readers see an empty store and change nothing.
    let o = must(s.run(LISTUSERS, &["-f", p(&db)], None));
    assert!(
        stdout(&o).is_empty() && stderr(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    let o = s.run(
        SASLPASSWD,
        &["--check", "-p", "-f", p(&db), "a@r"],
        Some(b"pw"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown realm"), "{}", stderr(&o));
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "--dry-run", "-f", p(&db)],
        Some(b"a@r:pw\n"),
    ));
    assert!(stdout(&o).contains("1 created"), "{}", stdout(&o));
    // A batch with a bad line does not initialise it either.
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(b"a@r:pw\nbad\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    assert!(!lock_of(&db).exists(), "a reader created a lock file");
    // A write initialises it as a new store, keeping its mode (as Cyrus does).
    must(set(&s, &db, "a@r", b"pw"));
    assert_eq!(mode_of(&db), 0o604);
    assert_eq!(
        dump_hex(&db),
        vec![(key("a", "r", "userPassword"), b"pw".to_vec())]
    );
    // ...with the generous map of a new store.
    assert_eq!(map_size(&db), 1 << 30);
}

fn key_length_limit_is_511_bytes() {
    require_tools();
    let s = Scratch::new();
    let db = populated(&s, "sasldb2");
    // authid + NUL + "vm" + NUL + "userPassword" = 495 + 16 = 511 bytes.
    let ok_user = "u".repeat(495);
    let long_user = "v".repeat(496);
    must(set(&s, &db, &format!("{ok_user}@vm"), b"pw"));
    let dump = dump_hex(&db);
    let k511 = key(&ok_user, "vm", "userPassword");
    assert_eq!(k511.len(), 511);
    assert!(dump.iter().any(|(k, _)| *k == k511));

    let before = snapshot(&db);
    let o = set(&s, &db, &format!("{long_user}@vm"), b"pw");
    assert_generic_failure(&o, "512 bytes");
    let err = stderr(&o);
    assert!(err.contains(&long_user) && err.contains("\"vm\""), "{err}");
    assert!(err.contains("511"), "{err}");
    // Same user in a batch among good lines: named by line, nothing written.
    let batch = format!("new1@vm:pw\n{long_user}@vm:pw\nnew2@vm:pw\n");
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(batch.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("batch line 2: ") && err.contains("512 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("batch line 1:") && !err.contains("batch line 3:"),
        "{err}"
    );
    // A realm that makes the key too long is named the same way.
    let o = set(&s, &db, &format!("x@{}", "r".repeat(497)), b"pw");
    assert_generic_failure(&o, "512 bytes");
    assert_eq!(snapshot(&db), before);
    // Deleting a user whose key cannot exist is not an error (nothing there).
    let o = must(s.run(
        SASLPASSWD,
        &["-d", "-f", p(&db), &format!("{long_user}@vm")],
        None,
    ));
    assert!(stderr(&o).is_empty());
    assert_eq!(dump_hex(&db), before.dump);
}

fn symlinked_store_or_lock_file_is_refused() {
    require_tools();
    let s = Scratch::new();
    let real = populated(&s, "real");
    let before = snapshot(&real);
    let link = s.path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let o = set(&s, &link, "a@r", b"pw");
    assert_generic_failure(&o, "is a symbolic link");
    let err = stderr(&o);
    assert!(
        err.contains("lock file") && err.contains("real path"),
        "{err}"
    );
    assert!(err.contains(p(&real)), "names the target: {err}");
    assert_generic_failure(
        &s.run(
            SASLPASSWD,
            &["--batch", "-", "-f", p(&link)],
            Some(b"a@r:pw\n"),
        ),
        "is a symbolic link",
    );
    assert_generic_failure(
        &s.run(
            SASLPASSWD,
            &["-d", "-f", p(&link), "alice@example.org"],
            None,
        ),
        "is a symbolic link",
    );
    assert_listusers_failed(
        &s.run(LISTUSERS, &["-f", p(&link)], None),
        "is a symbolic link",
    );
    let o = s.run(
        SASLPASSWD,
        &["--check", "-p", "-f", p(&link), "alice@example.org"],
        Some(b"alicepw"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a symbolic link"), "{}", stderr(&o));
    assert!(
        !lock_of(&link).exists(),
        "a lock file appeared beside the link"
    );
    assert_eq!(snapshot(&real), before);

    // A dangling link: its target is not created.
    let dangling = s.path("dangling");
    std::os::unix::fs::symlink(s.path("nowhere"), &dangling).unwrap();
    assert_generic_failure(&set(&s, &dangling, "a@r", b"pw"), "is a symbolic link");
    assert!(!s.path("nowhere").exists());

    // A symlinked lock file, to a missing file and to the real lock.
    let db = populated(&s, "store2");
    let before2 = snapshot(&db);
    std::fs::remove_file(lock_of(&db)).unwrap();
    std::os::unix::fs::symlink(s.path("elsewhere-lock"), lock_of(&db)).unwrap();
    let o = set(&s, &db, "a@r", b"pw");
    assert_generic_failure(&o, "is a symbolic link");
    assert!(stderr(&o).contains("store2-lock"), "{}", stderr(&o));
    assert_listusers_failed(
        &s.run(LISTUSERS, &["-f", p(&db)], None),
        "is a symbolic link",
    );
    assert!(!s.path("elsewhere-lock").exists());
    std::fs::remove_file(lock_of(&db)).unwrap();
    std::os::unix::fs::symlink(lock_of(&real), lock_of(&db)).unwrap();
    assert_generic_failure(&set(&s, &db, "a@r", b"pw"), "is a symbolic link");
    assert_eq!(snapshot(&db), before2);
    assert_eq!(snapshot(&real), before);

    // Control: a symlinked *directory* in the path is fine (the lock file
    // still lands beside the data file).
    let realdir = s.path("realdir");
    std::fs::create_dir(&realdir).unwrap();
    std::os::unix::fs::symlink(&realdir, s.path("linkdir")).unwrap();
    must(set(&s, &s.path("linkdir").join("db"), "a@r", b"pw"));
    assert_eq!(dir_listing(&realdir), ["db", "db-lock"]);
}

fn a_directory_as_store_or_lock_path_and_a_missing_parent_are_refused() {
    let s = Scratch::new();
    let dir = s.path("adir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside"), b"x").unwrap();
    assert_generic_failure(&set(&s, &dir, "a@r", b"pw"), "is a directory");
    assert_generic_failure(
        &s.run(
            SASLPASSWD,
            &["--batch", "-", "-f", p(&dir)],
            Some(b"a@r:pw\n"),
        ),
        "is a directory",
    );
    assert_listusers_failed(&s.run(LISTUSERS, &["-f", p(&dir)], None), "is a directory");
    assert_eq!(dir_listing(&dir), ["inside"]);
    assert!(!lock_of(&dir).exists());

    // The lock path is a directory.
    let db = s.path("db");
    std::fs::create_dir(lock_of(&db)).unwrap();
    let o = set(&s, &db, "a@r", b"pw");
    assert_generic_failure(&o, "db-lock: is a directory");
    assert!(!db.exists());

    // Missing parent directory: refused, nothing created anywhere.
    let before = dir_listing(s.dir.path());
    let nested = s.path("no-such-dir").join("sasldb2");
    let o = set(&s, &nested, "a@r", b"pw");
    assert_generic_failure(&o, "No such file or directory");
    assert!(stderr(&o).contains(p(&nested)), "{}", stderr(&o));
    assert_generic_failure(
        &s.run(
            SASLPASSWD,
            &["--batch", "-", "-f", p(&nested)],
            Some(b"a@r:pw\n"),
        ),
        "No such file or directory",
    );
    assert_listusers_failed(&s.run(LISTUSERS, &["-f", p(&nested)], None), "no such file");
    assert_eq!(dir_listing(s.dir.path()), before);
}

// ---------------------------------------------------------------------------
// --batch

fn invalid_batch_lines_are_all_named_nothing_is_written_and_no_password_leaks() {
    require_tools();
    let s = Scratch::new();
    let long_user = "u".repeat(600);
    let mut lines: Vec<Vec<u8>> = vec![
        b"# a comment".to_vec(),
        b"ok1@example.org:Good-Secret-1".to_vec(),
        b"no-colon-Leak-Secret-A".to_vec(), // 3
        b"empty@example.org:".to_vec(),     // 4
        format!("{long_user}@example.org:Leak-Secret-B").into_bytes(), // 5
        b"nul@example.org:Leak\0Secret-C".to_vec(), // 6
        b"n\0ul@example.org:Leak-Secret-D".to_vec(), // 7
        b"".to_vec(),
        b"ok2@example.org:Good-Secret-2".to_vec(),
    ];
    let mut huge = b"huge@example.org:".to_vec();
    huge.extend(b"Leak-Secret-E".iter().cycle().take(9000)); // 10: > 8191 bytes
    lines.push(huge);
    let mut longline = b"longline@example.org:".to_vec();
    longline.extend(b"Leak-Secret-F".iter().cycle().take(17_000)); // 11: > 16 KiB
    lines.push(longline);
    lines.push(b"ok3@example.org:Good-Secret-3\r".to_vec());
    let input = lines.join(&b"\n"[..]);
    let bad = [3, 4, 5, 6, 7, 10, 11];

    let check = |o: &Output| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        let err = stderr(o);
        for n in bad {
            assert!(
                err.contains(&format!("batch line {n}: ")),
                "line {n} not named: {err}"
            );
        }
        for n in [1, 2, 8, 9, 12] {
            assert!(
                !err.contains(&format!("batch line {n}: ")),
                "good line {n} named: {err}"
            );
        }
        assert!(err.contains("7 bad line(s); nothing written"), "{err}");
        let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains("Secret"), "a password leaked: {text}");
        assert!(!text.contains("Leak"), "a password leaked: {text}");
    };

    // Missing store: not created. From a file and from stdin.
    let db = s.path("new");
    let file = s.path("users.txt");
    std::fs::write(&file, &input).unwrap();
    check(&s.run(SASLPASSWD, &["--batch", p(&file), "-f", p(&db)], None));
    check(&s.run(SASLPASSWD, &["--batch", "-", "-f", p(&db)], Some(&input)));
    check(&s.run(
        SASLPASSWD,
        &["--batch", "-", "--dry-run", "-f", p(&db)],
        Some(&input),
    ));
    assert!(!db.exists() && !lock_of(&db).exists());

    // Existing store: unchanged.
    let db = populated(&s, "existing");
    let before = snapshot(&db);
    check(&s.run(SASLPASSWD, &["--batch", p(&file), "-f", p(&db)], None));
    assert_eq!(snapshot(&db), before);

    // Many bad lines: the first 20 are named, the rest counted.
    let many: String = (1..=30).map(|i| format!("bad{i}-Leak\n")).collect();
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(many.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("batch line 20: ") && !err.contains("batch line 21: "),
        "{err}"
    );
    assert!(
        err.contains("10 more bad lines") && err.contains("30 bad line(s)"),
        "{err}"
    );
    assert!(!err.contains("Leak"), "{err}");
    assert_eq!(snapshot(&db), before);

    // An unreadable batch file names the file.
    let o = s.run(
        SASLPASSWD,
        &["--batch", p(&s.path("nope.txt")), "-f", p(&db)],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nope.txt: No such file or directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&db), before);
}

fn one_bad_line_at_the_end_of_a_large_batch_writes_nothing() {
    require_tools();
    let s = Scratch::new();
    let db = populated(&s, "sasldb2");
    let before = snapshot(&db);
    let mut input = String::new();
    for i in 0..5000 {
        input.push_str(&format!("user{i}@example.org:password-{i}\n"));
    }
    input.push_str("alice@example.org:changed\n-bob@example.org\n");
    input.push_str("last line without a colon\n");
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(input.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("batch line 5003: "), "{err}");
    assert!(err.contains("1 bad line(s); nothing written"), "{err}");
    assert!(stdout(&o).is_empty());
    assert_eq!(snapshot(&db), before);
    assert_eq!(entries(&db), 3);
}

fn batch_from_stdin_dry_run_idempotent_rerun_and_deletions() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    // stdin, CRLF line ends, comments, -u for lines without a realm.
    let input = b"# provisioning\r\nalice:pw:with:colons\r\nbob@other.org:bobpw\r\n\r\n\
                  carol:carolpw\n-nobody\n";
    let dry = must(s.run(
        SASLPASSWD,
        &[
            "--batch",
            "-",
            "--dry-run",
            "-u",
            "example.org",
            "-f",
            p(&db),
        ],
        Some(input),
    ));
    assert_eq!(
        stdout(&dry),
        "saslpasswd: batch (dry run, nothing written): 4 operations: 3 created, 0 updated, 0 unchanged, 0 deleted, 1 absent\n"
    );
    assert!(
        !db.exists() && !lock_of(&db).exists(),
        "--dry-run created the store"
    );

    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-u", "example.org", "-f", p(&db)],
        Some(input),
    ));
    assert_eq!(
        stdout(&o),
        "saslpasswd: batch: 4 operations: 3 created, 0 updated, 0 unchanged, 0 deleted, 1 absent\n"
    );
    let first = dump_hex(&db);
    assert_eq!(
        first,
        vec![
            (
                key("alice", "example.org", "userPassword"),
                b"pw:with:colons".to_vec()
            ),
            (key("bob", "other.org", "userPassword"), b"bobpw".to_vec()),
            (
                key("carol", "example.org", "userPassword"),
                b"carolpw".to_vec()
            ),
        ]
    );

    // Re-run: all unchanged, the data file not rewritten at all.
    let bytes = std::fs::read(&db).unwrap();
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-u", "example.org", "-f", p(&db)],
        Some(input),
    ));
    assert!(
        stdout(&o).contains("0 created, 0 updated, 3 unchanged"),
        "{}",
        stdout(&o)
    );
    assert_eq!(dump_hex(&db), first);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "an idempotent re-run rewrote the file"
    );

    // --dry-run on the existing store: reports, writes nothing.
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "--dry-run", "-f", p(&db)],
        Some(b"alice@example.org:new\ndave@example.org:x\n-bob@other.org\n"),
    ));
    assert!(
        stdout(&o).contains("1 created, 1 updated, 0 unchanged, 1 deleted"),
        "{}",
        stdout(&o)
    );
    let o = must(s.run(
        SASLPASSWD,
        &["--dry-run", "-p", "-f", p(&db), "carol@example.org"],
        Some(b"carolpw"),
    ));
    assert!(stdout(&o).contains("unchanged"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);

    // Deletions: secrets go, a foreign property stays.
    let mut py = PyPeer::spawn(&db, "rw", None);
    py.put(&key("alice", "example.org", "foo"), b"bar");
    py.put(
        &key("alice", "example.org", "cmusaslsecretPLAIN"),
        b"legacy",
    );
    py.close();
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(b"-alice@example.org\n-bob@other.org\n-ghost@example.org\n"),
    ));
    assert_eq!(
        stdout(&o),
        "saslpasswd: batch: 3 operations: 0 created, 0 updated, 0 unchanged, 2 deleted, 1 absent\n"
    );
    assert_eq!(
        dump_hex(&db),
        vec![
            (key("alice", "example.org", "foo"), b"bar".to_vec()),
            (
                key("carol", "example.org", "userPassword"),
                b"carolpw".to_vec()
            ),
        ]
    );
    let o = must(s.run(LISTUSERS, &["-f", p(&db)], None));
    assert_eq!(
        stdout(&o),
        "alice@example.org: foo\ncarol@example.org: userPassword\n"
    );

    // Idempotence with SCRAM verifiers (random salts): still unchanged.
    s.conf(
        "saslpasswd",
        "scram_secret_generate: yes\nmech_list: SCRAM-SHA-256 PLAIN\n",
    );
    let scram: String = (0..100)
        .map(|i| format!("s{i}@scram.example:pw{i}\n"))
        .collect();
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(scram.as_bytes()),
    ));
    assert!(stdout(&o).contains("100 created"), "{}", stdout(&o));
    let with_scram = dump_hex(&db);
    assert_eq!(with_scram.len(), 2 + 200);
    assert!(
        with_scram
            .iter()
            .any(|(k, v)| k == &key("s7", "scram.example", "authPassword")
                && v.starts_with(b"SCRAM-SHA-256$4096:"))
    );
    let bytes = std::fs::read(&db).unwrap();
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(scram.as_bytes()),
    ));
    assert!(stdout(&o).contains("100 unchanged"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    // A changed password among them is the only update.
    let changed = scram.replace("s50@scram.example:pw50\n", "s50@scram.example:other\n");
    let o = must(s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", p(&db)],
        Some(changed.as_bytes()),
    ));
    assert!(
        stdout(&o).contains("1 updated, 99 unchanged"),
        "{}",
        stdout(&o)
    );
    let after = dump_hex(&db);
    let diff: Vec<_> = after
        .iter()
        .zip(&with_scram)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| String::from_utf8_lossy(&a.0).into_owned())
        .collect();
    assert_eq!(
        diff,
        [
            "s50\0scram.example\0authPassword",
            "s50\0scram.example\0userPassword"
        ]
    );
}

crate::tests!(
    unwritable_directory_and_files_as_nobody,
    a_file_that_is_not_lmdb_is_left_untouched_without_a_lock_file,
    a_zero_byte_file_is_read_as_empty_and_adopted_by_a_write_like_cyrus,
    key_length_limit_is_511_bytes,
    symlinked_store_or_lock_file_is_refused,
    a_directory_as_store_or_lock_path_and_a_missing_parent_are_refused,
    invalid_batch_lines_are_all_named_nothing_is_written_and_no_password_leaks,
    one_bad_line_at_the_end_of_a_large_batch_writes_nothing,
    batch_from_stdin_dry_run_idempotent_rerun_and_deletions,
);
