//! `saslpasswd --doctor` against the real Postfix tools (Debian `postfix`:
//! `postconf` reading a scratch configuration through MAIL_CONFIG), a
//! scratch queue directory and a scratch store. Each test plants one
//! problem and checks the finding in the text and the JSON output and,
//! where `--fix` can repair it, that the repair works and a second run is
//! clean. The Postfix user test is real: the doctor runs itself as
//! `postfix` in a child process.
//!
//! Nothing here reads or writes the machine's /etc/postfix, /etc/sasl2,
//! /etc/sasldb2 or /var/spool/postfix: MAIL_CONFIG, SASL_CONF_PATH and
//! SASLDB_DOCTOR_SASL_PATH point into the scratch directory, and every run
//! names its store with -f.
use crate::common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A Postfix setup that the doctor finds clean: AUTH on, TLS before AUTH,
/// PLAIN/LOGIN checked through saslauthd (so the Berkeley DB libsasl of
/// Debian 12 never has to read the LMDB store).
const CLEAN_MAIN_CF: &str =
    "smtpd_sasl_auth_enable = yes\nsmtpd_tls_security_level = may\nsmtpd_tls_auth_only = yes\n";
const CLEAN_SMTPD_CONF: &str = "pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\n";
/// The stock sasldb setup (Postfix's SASL_README).
const SASLDB_SMTPD_CONF: &str =
    "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n";

/// Every finding id the doctor can report with a clean chrooted setup.
const CLEAN_IDS: [&str; 16] = [
    "store.file",
    "store.perms",
    "store.access",
    "postfix.config",
    "chroot.present",
    "chroot.hard_link",
    "chroot.content",
    "chroot.perms",
    "chroot.access",
    "postfix.sasl_auth_enable",
    "postfix.restrictions",
    "postfix.tls_auth_only",
    "sasl.config",
    "sasl.pwcheck_method",
    "sasl.mech_list",
    "realm.postfix",
];

struct Lab {
    s: Scratch,
    bin: PathBuf,
}

impl Lab {
    /// A scratch Postfix (main.cf with `main_cf` appended, Debian's
    /// master.cf: smtpd chrooted), `smtpd.conf` in `<config>/sasl` when
    /// given, and the doctor's binary where `postfix` can run it.
    fn new(main_cf: &str, smtpd_conf: Option<&str>) -> Lab {
        // The store goes to Postfix's group, as the real setup has it.
        need_root();
        let s = Scratch::new();
        // tempdirs are 0700; the postfix user must reach the store.
        std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        let conf = s.path("postfix");
        std::fs::create_dir_all(conf.join("sasl")).expect("config dir");
        std::fs::create_dir_all(s.path("queue")).expect("queue dir");
        std::fs::create_dir_all(s.path("libsasl-path")).expect("sasl path dir");
        need_file("/usr/share/postfix/master.cf.dist", "postfix");
        need("postconf", "postfix");
        std::fs::copy("/usr/share/postfix/master.cf.dist", conf.join("master.cf")).expect(
            "/usr/share/postfix/master.cf.dist (Debian master.cf; apt-get install postfix)",
        );
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {}\nmyhostname = mx.lab.example\nmydomain = lab.example\n{main_cf}",
                s.path("queue").display()
            ),
        )
        .expect("main.cf");
        if let Some(text) = smtpd_conf {
            std::fs::write(conf.join("sasl/smtpd.conf"), text).expect("smtpd.conf");
        }
        // The target directory need not be reachable by postfix: run a
        // copy from the scratch directory.
        let bin = s.path("saslpasswd");
        if std::fs::hard_link(SASLPASSWD, &bin).is_err() {
            std::fs::copy(SASLPASSWD, &bin).expect("copy saslpasswd");
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Lab { s, bin }
    }

    /// The clean setup with one account in Postfix's realm, published.
    fn clean() -> Lab {
        let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
        lab.add(&["--postfix"], "alice");
        lab
    }

    fn conf_dir(&self) -> PathBuf {
        self.s.path("postfix")
    }

    fn db(&self) -> PathBuf {
        self.s.db()
    }

    fn db_str(&self) -> String {
        self.db().to_str().expect("utf-8 path").to_string()
    }

    fn copy(&self) -> PathBuf {
        self.s.path("queue/etc/sasldb2")
    }

    fn cmd(&self) -> Command {
        let mut c = self.s.cmd(self.bin.to_str().expect("utf-8 path"));
        c.env("MAIL_CONFIG", self.conf_dir())
            .env("SASLDB_DOCTOR_SASL_PATH", self.s.path("libsasl-path"))
            .env_remove("SASLDB_POSTCONF")
            .env_remove("SASLDB_DOCTOR_PROBE_EXE");
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(&mut c, stdin)
    }

    /// Create `user` (flags before it, e.g. `--postfix`, `-u REALM`, `-n`).
    fn add(&self, flags: &[&str], user: &str) {
        let db = self.db_str();
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["-p", "-c", "-f", &db, user]);
        let o = self.run(&args, Some(b"secret"));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }

    fn doctor_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["--doctor".to_string(), "-f".into(), self.db_str()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `--doctor` text output and exit code.
    fn text(&self, extra: &[&str]) -> (String, i32) {
        let args = self.doctor_args(extra);
        let o = run_cmd(self.cmd().args(&args), None);
        assert!(
            stderr(&o).is_empty(),
            "doctor wrote to stderr: {}",
            stderr(&o)
        );
        (stdout(&o), o.status.code().unwrap_or(-1))
    }

    /// `--doctor --json` output and exit code.
    fn json(&self, extra: &[&str]) -> (Value, i32) {
        let mut args = self.doctor_args(extra);
        args.push("--json".into());
        let o = run_cmd(self.cmd().args(&args), None);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(&o), stderr(&o)));
        check_schema(&v);
        (v, o.status.code().unwrap_or(-1))
    }

    /// Run both formats and check that `id` is at `level` in both, with
    /// `needle` in its message; returns the JSON finding.
    fn expect(&self, id: &str, level: &str, needle: &str) -> Value {
        let (text, code) = self.text(&[]);
        let (json, jcode) = self.json(&[]);
        assert_eq!(code, jcode, "text and JSON exit codes differ");
        let f = finding(&json, id, level).unwrap_or_else(|| {
            panic!(
                "no {level} finding {id} in:\n{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            )
        });
        let msg = f["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{id}: {msg:?} lacks {needle:?}");
        assert!(
            text_has(&text, id, level, needle),
            "text output has no {level} [{id}] with {needle:?}:\n{text}"
        );
        if level == "ok" {
            assert!(f["hint"].is_null(), "{f}");
        } else {
            assert!(
                f["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "{id} has no hint: {f}"
            );
        }
        let want_code = if json["errors"].as_u64() == Some(0) {
            0
        } else {
            1
        };
        assert_eq!(code, want_code, "{text}");
        f.clone()
    }

    /// `--doctor --fix`: `ids` are repaired (ok, fixed, `was` set).
    fn fix(&self, ids: &[&str]) -> Value {
        let (v, _) = self.json(&["--fix"]);
        for id in ids {
            let f = finding(&v, id, "ok").unwrap_or_else(|| {
                panic!(
                    "{id} not repaired:\n{}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                )
            });
            assert_eq!(f["fixed"], true, "{f}");
            assert!(f["was"].is_string(), "{f}");
        }
        v
    }

    /// A second run finds nothing wrong at all.
    fn assert_clean(&self) {
        let (v, code) = self.json(&[]);
        let problems: Vec<&Value> = findings(&v).iter().filter(|f| f["level"] != "ok").collect();
        assert!(problems.is_empty(), "not clean: {problems:#?}");
        assert_eq!(code, 0);
        assert_eq!(
            (v["errors"].as_u64(), v["warnings"].as_u64()),
            (Some(0), Some(0))
        );
        let (text, code) = self.text(&[]);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("\n0 errors, 0 warnings\n"), "{text}");
        assert!(
            !text.contains("\nerror:\n") && !text.contains("\nwarning:\n"),
            "{text}"
        );
    }

    fn set_mode(&self, path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn findings(v: &Value) -> &Vec<Value> {
    v["findings"].as_array().expect("findings array")
}

fn finding<'a>(v: &'a Value, id: &str, level: &str) -> Option<&'a Value> {
    findings(v)
        .iter()
        .find(|f| f["id"] == id && f["level"] == level)
}

/// The documented schema, exactly.
fn check_schema(v: &Value) {
    assert_eq!(v["schema"], "sasldb-doctor/1");
    assert!(v["store"].is_string());
    let mut counts = [0u64; 3];
    let mut fixed = 0;
    for f in findings(v) {
        let mut keys: Vec<&String> = f.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["fixed", "hint", "id", "level", "message", "subject", "was"],
            "{f}"
        );
        assert!(f["id"].as_str().is_some_and(|i| i.contains('.')), "{f}");
        assert!(f["subject"].is_string() && f["message"].is_string(), "{f}");
        assert!(f["hint"].is_null() || f["hint"].is_string(), "{f}");
        assert!(f["was"].is_null() || f["fixed"] == true, "{f}");
        match f["level"].as_str() {
            Some("ok") => counts[0] += 1,
            Some("warning") => counts[1] += 1,
            Some("error") => counts[2] += 1,
            other => panic!("level {other:?}"),
        }
        if f["fixed"] == true {
            fixed += 1;
        }
    }
    assert_eq!(v["warnings"].as_u64(), Some(counts[1]));
    assert_eq!(v["errors"].as_u64(), Some(counts[2]));
    assert_eq!(v["fixed"].as_u64(), Some(fixed));
}

/// Is there a `[id] ...needle...` line under the `level:` heading?
fn text_has(text: &str, id: &str, level: &str, needle: &str) -> bool {
    let mut section = "";
    for line in text.lines() {
        if let Some(h) = line.strip_suffix(':')
            && ["ok", "warning", "error"].contains(&h)
        {
            section = h;
            continue;
        }
        if section == level
            && let Some(rest) = line.strip_prefix(&format!("  [{id}] "))
            && rest.contains(needle)
        {
            return true;
        }
    }
    false
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// `getent group NAME` fields: (gid, members).
fn group(name: &str) -> Option<(u32, Vec<String>)> {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .expect("getent");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    let gid = f.get(2)?.parse().ok()?;
    let members = f
        .get(3)
        .map(|m| {
            m.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Some((gid, members))
}

/// The group the store should have, as the tool picks it: `sasl` when
/// postfix is a member (Debian's convention), else postfix's own.
fn store_group() -> (String, u32) {
    if let Some((gid, members)) = group("sasl")
        && members.iter().any(|m| m == "postfix")
    {
        return ("sasl".into(), gid);
    }
    let (gid, _) = group("postfix").expect("group postfix (apt-get install postfix)");
    ("postfix".into(), gid)
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown");
}

// ------------------------------------------------------------- tests

fn clean_setup_passes_with_every_check_ok() {
    let lab = Lab::clean();
    lab.assert_clean();
    let (v, _) = lab.json(&[]);
    for id in CLEAN_IDS {
        assert!(finding(&v, id, "ok").is_some(), "{id} missing: {v:#}");
    }
    assert_eq!(v["store"], lab.db_str());
    let f = finding(&v, "store.access", "ok").expect("probe");
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("postfix (groups "), "{msg}");
    assert!(msg.contains("read 1 key"), "{msg}");
    let (text, _) = lab.text(&[]);
    assert!(
        text.starts_with(&format!("saslpasswd --doctor: {}\nok:\n", lab.db_str())),
        "{text}"
    );
}

fn missing_store() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    lab.expect("store.file", "error", "no such file");
    let (v, _) = lab.json(&[]);
    // The missing store is said once: no probe, no copy findings.
    for id in [
        "store.perms",
        "store.access",
        "chroot.present",
        "chroot.content",
    ] {
        assert!(
            !findings(&v).iter().any(|f| f["id"] == id),
            "{id} reported for a missing store: {v:#}"
        );
    }
    // Nothing to repair: --fix creates no store.
    let (v, code) = lab.json(&["--fix"]);
    assert_eq!(code, 1);
    assert!(finding(&v, "store.file", "error").is_some());
    assert!(!lab.db().exists());
}

fn berkeley_db_store_from_debians_saslpasswd2() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    let db = lab.db_str();
    let o = lab.s.run(
        "saslpasswd2",
        &["-p", "-c", "-u", "mx.lab.example", "-f", &db, "alice"],
        Some(b"pw"),
    );
    assert!(
        o.status.success(),
        "saslpasswd2 (apt-get install sasl2-bin): {}",
        stderr(&o)
    );
    let f = lab.expect("store.file", "error", "not an LMDB sasldb");
    assert!(
        f["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("Berkeley DB"),
        "{f}"
    );
}

/// An old-format store (here Berkeley DB, from Debian's saslpasswd2): the
/// doctor counts its accounts and gives the import command and the Postfix
/// change; the command, run as given, leaves an LMDB store the doctor passes.
fn berkeley_db_store_gets_the_import_command_and_the_postfix_change() {
    need("saslpasswd2", "sasl2-bin");
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    let db = lab.db_str();
    for user in ["alice", "bob"] {
        let o = lab.s.run(
            "saslpasswd2",
            &["-p", "-c", "-u", "mx.lab.example", "-f", &db, user],
            Some(b"pw"),
        );
        assert!(o.status.success(), "saslpasswd2 {user}: {}", stderr(&o));
    }
    let f = lab.expect(
        "migrate.import",
        "error",
        "is a Berkeley DB hash sasldb with 2 account(s)",
    );
    let hint = f["hint"].as_str().unwrap_or_default();
    let old = format!("{db}.bdb");
    assert!(
        hint.contains(&format!(
            "mv {db} {old} && saslpasswd --import {old} -f {db}"
        )),
        "{hint}"
    );
    let socket = lab.s.path("queue/private/auth");
    assert!(
        hint.contains(&format!("dovecot_auth_socket={}", socket.display())),
        "{hint}"
    );
    assert!(
        hint.contains("smtpd_sasl_type = dovecot, smtpd_sasl_path = private/auth"),
        "{hint}"
    );
    // Do as it says.
    std::fs::rename(&db, &old).expect("mv");
    let o = lab.run(&["--import", &old, "-f", &db], None);
    assert!(o.status.success(), "saslpasswd --import: {}", stderr(&o));
    let (v, _) = lab.json(&[]);
    assert!(finding(&v, "migrate.import", "error").is_none(), "{v}");
    let f = finding(&v, "store.file", "ok").unwrap_or_else(|| panic!("{v}"));
    assert!(
        f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 accounts"),
        "{f}"
    );
}

fn world_readable_store_is_fixed() {
    let lab = Lab::clean();
    lab.set_mode(&lab.db(), 0o644);
    let f = lab.expect("store.perms", "error", "lets every user read it");
    assert!(
        f["hint"].as_str().unwrap_or_default().contains("--fix"),
        "{f}"
    );
    lab.fix(&["store.perms"]);
    assert_eq!(mode_of(&lab.db()), 0o640);
    lab.assert_clean();
}

fn store_postfix_cannot_read_is_fixed() {
    let lab = Lab::clean();
    // root:root data file and a lock file the group cannot write: postfix
    // can open neither, and the probe (really run as postfix) says so.
    chown(&lab.db(), 0, 0);
    lab.set_mode(&sasldb::store::lock_path(&lab.db()), 0o640);
    let (group, gid) = store_group();
    lab.expect("store.perms", "error", &format!("not root:{group}"));
    lab.expect("store.perms", "error", "cannot open it read-write");
    let f = lab.expect("store.access", "error", "cannot open");
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("postfix (groups "), "{msg}");
    lab.fix(&["store.perms", "store.access"]);
    let m = std::fs::metadata(lab.db()).expect("store");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, gid, 0o640));
    assert_eq!(mode_of(&sasldb::store::lock_path(&lab.db())), 0o660);
    lab.assert_clean();
}

fn directory_postfix_cannot_search_is_reported_not_touched() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    let dir = lab.s.path("private");
    std::fs::create_dir(&dir).expect("dir");
    let db = dir.join("sasldb2");
    let dbs = db.to_str().expect("utf-8").to_string();
    let o = lab.run(&["--postfix", "-p", "-c", "-f", &dbs, "alice"], Some(b"pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    lab.set_mode(&dir, 0o700);
    // Modes of the files are right; only really opening as postfix fails.
    let run = |extra: &[&str]| {
        let mut args = vec!["--doctor", "-f", &dbs, "--json"];
        args.extend(extra);
        let o = lab.run(&args, None);
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        check_schema(&v);
        (v, o.status.code())
    };
    let (v, code) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(finding(&v, "store.perms", "ok").is_some(), "{v:#}");
    let f = finding(&v, "store.access", "error").expect("probe error");
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(
        f["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("searchable"),
        "{f}"
    );
    let o = lab.run(&["--doctor", "-f", &dbs], None);
    assert!(text_has(
        &stdout(&o),
        "store.access",
        "error",
        "cannot open"
    ));
    // --fix never changes the directory.
    let (v, code) = run(&["--fix"]);
    assert_eq!(code, Some(1));
    assert!(finding(&v, "store.access", "error").is_some());
    assert_eq!(mode_of(&dir), 0o700);
}

fn missing_chroot_copy_is_published() {
    let lab = Lab::clean();
    std::fs::remove_file(lab.copy()).expect("rm copy");
    std::fs::remove_file(sasldb::store::lock_path(&lab.copy())).expect("rm lock");
    let f = lab.expect(
        "chroot.present",
        "error",
        "missing: smtpd runs chrooted (smtp/inet)",
    );
    assert_eq!(f["subject"], lab.copy().to_str().unwrap_or_default());
    lab.fix(&["chroot.present"]);
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.db()));
    assert_eq!(mode_of(&lab.copy()), 0o640);
    lab.assert_clean();
}

fn stale_chroot_copy_is_published() {
    let lab = Lab::clean();
    // Changes without Postfix integration leave the copy behind.
    lab.add(&["-u", "mx.lab.example"], "bob");
    lab.add(&["-u", "mx.lab.example"], "carol");
    lab.expect(
        "chroot.content",
        "error",
        "2 keys missing, 0 changed, 0 extra",
    );
    lab.fix(&["chroot.content"]);
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.db()));
    assert_eq!(mdb_dump(&lab.copy()).len(), 3);
    lab.assert_clean();
}

fn hard_linked_chroot_copy_is_replaced() {
    let lab = Lab::clean();
    std::fs::remove_file(lab.copy()).expect("rm copy");
    std::fs::hard_link(lab.db(), lab.copy()).expect("ln");
    let f = lab.expect("chroot.hard_link", "error", "is a hard link of");
    let hint = f["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("postfix reload"), "{hint}");
    assert!(hint.contains("old inode"), "{hint}");
    lab.fix(&["chroot.hard_link"]);
    let (a, b) = (
        std::fs::metadata(lab.db()).expect("store"),
        std::fs::metadata(lab.copy()).expect("copy"),
    );
    assert_ne!(a.ino(), b.ino(), "still one inode");
    assert_eq!(a.nlink(), 1);
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.db()));
    lab.assert_clean();
}

fn chroot_lock_not_group_writable_is_fixed() {
    let lab = Lab::clean();
    let lock = sasldb::store::lock_path(&lab.copy());
    lab.set_mode(&lock, 0o640);
    let (group, _) = store_group();
    lab.expect(
        "chroot.perms",
        "error",
        &format!("group {group} cannot open it read-write"),
    );
    lab.expect("chroot.access", "error", "cannot open");
    lab.fix(&["chroot.perms", "chroot.access"]);
    assert_eq!(mode_of(&lock), 0o660);
    lab.assert_clean();
}

fn no_copy_needed_when_smtpd_is_not_chrooted() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    need("postconf", "postfix");
    let o = Command::new("postconf")
        .arg("-c")
        .arg(lab.conf_dir())
        .args(["-F", "-e", "smtp/inet/chroot = n"])
        .output()
        .expect("postconf");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lab.add(&["--postfix"], "alice");
    assert!(!lab.copy().exists());
    lab.expect("chroot.present", "ok", "no smtpd service runs chrooted");
    lab.assert_clean();
}

fn sasl_config_missing_is_explained() {
    let lab = Lab::new(CLEAN_MAIN_CF, None);
    lab.add(&["--postfix"], "alice");
    let f = lab.expect("sasl.config", "warning", "no smtpd.conf in");
    let msg = f["message"].as_str().unwrap_or_default();
    // Only the scratch directories were searched.
    assert!(
        msg.contains(&lab.conf_dir().join("sasl").display().to_string()),
        "{msg}"
    );
    assert!(!msg.contains("/etc/sasl2"), "{msg}");
}

fn sasl_config_syntax_error() {
    let lab = Lab::new(
        CLEAN_MAIN_CF,
        Some("pwcheck_method: auxprop\nmech_list PLAIN LOGIN\n"),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect("sasl.config", "error", "line 2: expected `key: value`");
}

fn sasl_config_found_twice_names_the_ignored_file() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    lab.add(&["--postfix"], "alice");
    let other = lab.s.path("libsasl-path/smtpd.conf");
    std::fs::write(&other, "mech_list: CRAM-MD5\n").expect("second smtpd.conf");
    let f = lab.expect("sasl.config", "warning", "are ignored");
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&other.display().to_string()), "{msg}");
    // The first file is the one read: still PLAIN LOGIN.
    lab.expect("sasl.mech_list", "ok", "PLAIN LOGIN");
}

fn pwcheck_method_unknown_and_alwaystrue() {
    let lab = Lab::new(
        CLEAN_MAIN_CF,
        Some("pwcheck_method: sasldb\nmech_list: PLAIN LOGIN\n"),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect("sasl.pwcheck_method", "error", "unknown verifier sasldb");
    std::fs::write(
        lab.conf_dir().join("sasl/smtpd.conf"),
        "pwcheck_method: alwaystrue\nmech_list: PLAIN LOGIN\n",
    )
    .expect("smtpd.conf");
    lab.expect("sasl.pwcheck_method", "error", "any password is accepted");
}

fn auxprop_sql_without_sql_select() {
    let lab = Lab::new(
        CLEAN_MAIN_CF,
        Some("pwcheck_method: auxprop\nauxprop_plugin: sql\nmech_list: PLAIN LOGIN\n"),
    );
    lab.add(&["--postfix"], "alice");
    let f = lab.expect("sasl.auxprop_plugin", "error", "sql_select option missing");
    assert!(
        f["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("auxprop_plugin: sasldb"),
        "{f}"
    );
}

fn noplaintext_with_only_plain_login_leaves_no_mechanism() {
    let lab = Lab::new(
        &format!("{CLEAN_MAIN_CF}smtpd_sasl_security_options = noanonymous, noplaintext\n"),
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    let f = lab.expect("sasl.mech_list", "error", "no mechanism left");
    assert!(
        f["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("smtpd_sasl_tls_security_options = noanonymous"),
        "{f}"
    );
    // The recommended split offers PLAIN and LOGIN once TLS is on.
    let lab = Lab::new(
        &format!(
            "{CLEAN_MAIN_CF}smtpd_sasl_security_options = noanonymous, noplaintext\nsmtpd_sasl_tls_security_options = noanonymous\n"
        ),
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect("sasl.mech_list", "ok", "PLAIN LOGIN after STARTTLS");
}

fn cram_md5_offered_to_accounts_without_user_password() {
    let lab = Lab::new(
        CLEAN_MAIN_CF,
        Some("pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN CRAM-MD5\n"),
    );
    lab.add(&["--postfix"], "alice");
    lab.add(&["--postfix", "-n"], "bob");
    let f = lab.expect(
        "sasl.cram_digest",
        "warning",
        "CRAM-MD5 offered, but 1 of 2 accounts have no userPassword",
    );
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(msg.contains("bob@mx.lab.example"), "{msg}");
    assert!(!msg.contains("alice@"), "{msg}");
}

fn accounts_under_the_host_name_or_a_container_id() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(CLEAN_SMTPD_CONF));
    let host = default_realm();
    lab.add(&["--postfix", "-u", &host], "alice");
    lab.add(&["--postfix", "-u", "3f2a9c1b7d4e"], "bob");
    let f = lab.expect(
        "realm.postfix",
        "warning",
        "no account is in realm mx.lab.example",
    );
    let msg = f["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("1 in {host} (the host name)")),
        "{msg}"
    );
    assert!(
        msg.contains("1 in 3f2a9c1b7d4e (looks like a container id)"),
        "{msg}"
    );
    let hint = f["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("-u mx.lab.example"), "{hint}");
    assert!(hint.contains("smtpd_sasl_local_domain"), "{hint}");
    // Following the hint's second way: Postfix looks up the host name.
    std::fs::write(
        lab.conf_dir().join("main.cf"),
        format!(
            "{}smtpd_sasl_local_domain = {host}\n",
            std::fs::read_to_string(lab.conf_dir().join("main.cf")).expect("main.cf")
        ),
    )
    .expect("main.cf");
    lab.expect(
        "realm.postfix",
        "ok",
        &format!("1 of 2 accounts are in realm {host}"),
    );
}

fn sasl_auth_not_enabled() {
    let lab = Lab::new(
        "smtpd_tls_security_level = may\nsmtpd_tls_auth_only = yes\n",
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect(
        "postfix.sasl_auth_enable",
        "error",
        "not yes on any smtpd service",
    );
    // Enabled for one service through master.cf -o: that counts.
    let master = lab.conf_dir().join("master.cf");
    let mut text = std::fs::read_to_string(&master).expect("master.cf");
    text.push_str(
        "submission inet n - y - - smtpd\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n",
    );
    std::fs::write(&master, text).expect("master.cf");
    lab.expect(
        "postfix.sasl_auth_enable",
        "ok",
        "SMTP AUTH is on for submission/inet",
    );
    lab.expect("postfix.restrictions", "ok", "submission/inet");
    lab.assert_clean();
}

fn permit_sasl_authenticated_after_reject_unauth_destination() {
    let lab = Lab::new(
        &format!(
            "{CLEAN_MAIN_CF}smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination, permit_sasl_authenticated\n"
        ),
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect(
        "postfix.restrictions",
        "error",
        "smtpd_relay_restrictions has reject_unauth_destination before permit_sasl_authenticated",
    );
    let lab = Lab::new(
        &format!(
            "{CLEAN_MAIN_CF}smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n"
        ),
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect(
        "postfix.restrictions",
        "error",
        "smtpd_recipient_restrictions has reject_unauth_destination and no permit_sasl_authenticated",
    );
}

fn plaintext_before_tls() {
    let lab = Lab::new(
        "smtpd_sasl_auth_enable = yes\nsmtpd_tls_security_level = may\n",
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    let f = lab.expect(
        "postfix.tls_auth_only",
        "warning",
        "PLAIN and LOGIN offered without TLS",
    );
    assert!(
        f["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("smtpd_tls_auth_only=yes"),
        "{f}"
    );
    // smtpd_tls_auth_only without TLS: AUTH is never offered.
    let lab = Lab::new(
        "smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\n",
        Some(CLEAN_SMTPD_CONF),
    );
    lab.add(&["--postfix"], "alice");
    lab.expect("postfix.tls_auth_only", "error", "AUTH is never offered");
}

fn libsasl_database_format_against_an_lmdb_store() {
    let lab = Lab::new(CLEAN_MAIN_CF, Some(SASLDB_SMTPD_CONF));
    lab.add(&["--postfix"], "alice");
    // What the installed plugin links decides; Debian 12's links libdb-5.3.
    need_file("/usr/lib/x86_64-linux-gnu/sasl2", "libsasl2-modules-db");
    let plugin = std::fs::read_dir("/usr/lib/x86_64-linux-gnu/sasl2")
        .expect("libsasl2-modules-db")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("libsasldb.so"))
        .expect("libsasldb.so (apt-get install libsasl2-modules-db)");
    need("ldd", "libc-bin");
    let ldd = Command::new("ldd").arg(&plugin).output().expect("ldd");
    let linked = String::from_utf8_lossy(&ldd.stdout).to_string();
    if linked.contains("libdb-") {
        let f = lab.expect("libsasl.db_format", "error", "reads Berkeley DB");
        let hint = f["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("smtpd_sasl_type = dovecot"), "{hint}");
        assert!(hint.contains("saslauthd"), "{hint}");
        let (_, code) = lab.text(&[]);
        assert_eq!(code, 1);
    } else {
        assert!(linked.contains("liblmdb"), "{linked}");
        lab.expect("libsasl.db_format", "ok", "reads LMDB");
    }
    // The other checks of the stock setup pass.
    lab.expect("sasl.auxprop_plugin", "ok", "auxprop_plugin sasldb");
    lab.expect("sasl.pwcheck_method", "ok", "pwcheck_method auxprop");
    // With saslauthd checking PLAIN/LOGIN, libsasl never reads sasldb.
    std::fs::write(lab.conf_dir().join("sasl/smtpd.conf"), CLEAN_SMTPD_CONF).expect("conf");
    lab.expect("libsasl.db_format", "ok", "no Postfix service reads sasldb");
}

fn dovecot_socket() {
    let lab = Lab::new(
        &format!("{CLEAN_MAIN_CF}smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n"),
        None,
    );
    lab.add(&["--postfix"], "alice");
    let sock = lab.s.path("queue/private/auth");
    lab.expect("postfix.auth_socket", "error", "nothing listens at");
    std::fs::create_dir_all(lab.s.path("queue/private")).expect("private");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    lab.expect("postfix.auth_socket", "ok", "exists");
    lab.expect("libsasl.db_format", "ok", "smtpd_sasl_type = dovecot");
    lab.assert_clean();
}

fn postconf_failing_is_an_error_and_the_store_is_still_checked() {
    let lab = Lab::clean();
    let db = lab.db_str();
    let mut c = lab.cmd();
    c.env("MAIL_CONFIG", lab.s.path("no-such-config"))
        .args(["--doctor", "--json", "-f", &db]);
    let o = run_cmd(&mut c, None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    check_schema(&v);
    let f = finding(&v, "postfix.config", "error").expect("postfix.config");
    assert!(
        f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("postconf"),
        "{f}"
    );
    assert!(finding(&v, "store.file", "ok").is_some(), "{v:#}");
    assert!(finding(&v, "store.perms", "ok").is_some(), "{v:#}");
}

fn doctor_flags_are_documented_and_checked() {
    let lab = Lab::clean();
    let o = lab.run(&["--help"], None);
    let help = stdout(&o);
    assert!(help.contains("sasldb-doctor/1"), "{help}");
    assert!(
        !help.contains("doctor-probe"),
        "the probe argument is internal"
    );
    let o = lab.run(&["--fix", "-f", &lab.db_str(), "alice"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--fix and --json go with --doctor"));
    // The probe argument, run by hand, only reads.
    let o = lab.run(&["--doctor-probe-open", &lab.db_str()], None);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "1\n".to_string()));
}

crate::tests!(
    clean_setup_passes_with_every_check_ok,
    missing_store,
    berkeley_db_store_from_debians_saslpasswd2,
    berkeley_db_store_gets_the_import_command_and_the_postfix_change,
    world_readable_store_is_fixed,
    store_postfix_cannot_read_is_fixed,
    directory_postfix_cannot_search_is_reported_not_touched,
    missing_chroot_copy_is_published,
    stale_chroot_copy_is_published,
    hard_linked_chroot_copy_is_replaced,
    chroot_lock_not_group_writable_is_fixed,
    no_copy_needed_when_smtpd_is_not_chrooted,
    sasl_config_missing_is_explained,
    sasl_config_syntax_error,
    sasl_config_found_twice_names_the_ignored_file,
    pwcheck_method_unknown_and_alwaystrue,
    auxprop_sql_without_sql_select,
    noplaintext_with_only_plain_login_leaves_no_mechanism,
    cram_md5_offered_to_accounts_without_user_password,
    accounts_under_the_host_name_or_a_container_id,
    sasl_auth_not_enabled,
    permit_sasl_authenticated_after_reject_unauth_destination,
    plaintext_before_tls,
    libsasl_database_format_against_an_lmdb_store,
    dovecot_socket,
    postconf_failing_is_an_error_and_the_store_is_still_checked,
    doctor_flags_are_documented_and_checked,
);
