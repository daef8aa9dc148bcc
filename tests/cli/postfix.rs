//! Postfix deployment against the real Postfix tools (Debian `postfix`:
//! `postconf` reading a scratch configuration through MAIL_CONFIG): the
//! realm Postfix looks up, root:<group> modes, and the chroot copy kept
//! current through LMDB transactions while readers hold it open.
use crate::common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sasldb::admin::{self, Op};
use sasldb::postfix::{Deployment, Postfix};
use sasldb::secret::SetPolicy;
use sasldb::store::{Account, OpenOptions, Store};

/// A scratch Postfix instance: main.cf, Debian's master.cf (smtpd
/// chrooted), a queue directory.
struct Lab {
    s: Scratch,
}

impl Lab {
    fn new(extra_main_cf: &str) -> Lab {
        // The store goes to Postfix's group, as the real setup has it.
        need_root();
        let s = Scratch::new();
        let conf = s.path("postfix");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(s.path("queue")).unwrap();
        need_file("/usr/share/postfix/master.cf.dist", "postfix");
        need("postconf", "postfix");
        std::fs::copy("/usr/share/postfix/master.cf.dist", conf.join("master.cf")).expect(
            "/usr/share/postfix/master.cf.dist (Debian master.cf; apt-get install postfix)",
        );
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {}\nmyhostname = mx.lab.example\nmydomain = lab.example\n{extra_main_cf}",
                s.path("queue").display()
            ),
        )
        .unwrap();
        Lab { s }
    }

    fn conf_dir(&self) -> PathBuf {
        self.s.path("postfix")
    }

    fn copy(&self) -> PathBuf {
        self.s.path("queue/etc/sasldb2")
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
        let mut c = self.s.cmd(SASLPASSWD);
        c.env("MAIL_CONFIG", self.conf_dir()).args(args);
        run_cmd(&mut c, stdin)
    }

    fn db(&self) -> String {
        self.s.db().to_str().unwrap().to_string()
    }
}

fn gid_of(group: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("group {group} missing"))
}

fn assert_modes(path: &Path, gid: u32) {
    for (p, mode) in [
        (path.to_path_buf(), 0o640),
        (sasldb::store::lock_path(path), 0o660),
    ] {
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(m.mode() & 0o7777, mode, "{}", p.display());
        assert_eq!(m.uid(), 0, "{}", p.display());
        assert_eq!(m.gid(), gid, "{}", p.display());
    }
}

fn realm_is_the_one_postfix_looks_up() {
    let lab = Lab::new("");
    let db = lab.db();
    let o = lab.run(&["--postfix", "-p", "-c", "-f", &db, "alice"], Some(b"pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lab.run(
        &[
            "--postfix",
            "-p",
            "-c",
            "-u",
            "other.example",
            "-f",
            &db,
            "bob",
        ],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lab.run(
        &["--postfix", "-p", "-c", "-f", &db, "carol@third.example"],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let keys: Vec<Vec<u8>> = mdb_dump(&lab.s.db()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            key("alice", "mx.lab.example", "userPassword"),
            key("bob", "other.example", "userPassword"),
            key("carol", "third.example", "userPassword"),
        ]
    );

    let lab = Lab::new("smtpd_sasl_local_domain = $mydomain\n");
    let db = lab.db();
    let o = lab.run(&["--postfix", "-p", "-c", "-f", &db, "dave"], Some(b"pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        mdb_dump(&lab.s.db())[0].0,
        key("dave", "lab.example", "userPassword")
    );
    // Without integration the Cyrus default (host name) applies.
    let o = lab.run(&["-p", "-c", "-f", &db, "erin"], Some(b"pw"));
    assert!(o.status.success());
    assert!(
        mdb_dump(&lab.s.db())
            .iter()
            .any(|(k, _)| *k == key("erin", &default_realm(), "userPassword"))
    );
}

fn realm_is_said_on_a_terminal() {
    let lab = Lab::new("");
    let cmd = format!(
        "printf pw | MAIL_CONFIG={} SASL_CONF_PATH={} {SASLPASSWD} --postfix -p -c -f {} zed",
        lab.conf_dir().display(),
        lab.s.conf_dir().display(),
        lab.db()
    );
    need("script", "util-linux");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("saslpasswd: using realm mx.lab.example (Postfix's myhostname)"),
        "{text:?}"
    );
    assert!(text.contains("published to "), "{text:?}");
}

fn every_change_is_published_with_postfix_modes() {
    let lab = Lab::new("");
    let db = lab.db();
    let postfix_gid = gid_of("postfix");
    for umask in ["000", "077", "022"] {
        let user = format!("u{umask}");
        let cmd =
            format!("umask {umask}; printf pw | exec {SASLPASSWD} --postfix -p -c -f {db} {user}");
        let mut c = lab.s.cmd("bash");
        c.env("MAIL_CONFIG", lab.conf_dir()).args(["-c", &cmd]);
        let o = run_cmd(&mut c, None);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_modes(&lab.s.db(), postfix_gid);
        assert_modes(&lab.copy(), postfix_gid);
        assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.s.db()));
    }
    // Deletion and batch changes reach the copy too.
    let o = lab.run(&["--postfix", "-d", "-f", &db, "u000"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lab.run(
        &["--postfix", "--batch", "-", "-f", &db],
        Some(b"b1:x\nb2:y\n-u077\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let copy = mdb_dump(&lab.copy());
    assert_eq!(copy, mdb_dump(&lab.s.db()));
    assert_eq!(copy.len(), 3);
    // A configured group, by flag and by setting.
    let o = lab.run(
        &[
            "--postfix",
            "--postfix-group",
            "mail",
            "-p",
            "-f",
            &db,
            "g1",
        ],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_modes(&lab.copy(), gid_of("mail"));
    lab.s.conf(
        "saslpasswd",
        "postfix_integration: yes\npostfix_group: sasl\n",
    );
    let o = lab.run(&["-p", "-f", &db, "g2"], Some(b"pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_modes(&lab.s.db(), gid_of("sasl"));
    assert_modes(&lab.copy(), gid_of("sasl"));
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.s.db()));
}

fn integration_stays_off_unless_asked_for_a_scratch_path() {
    let lab = Lab::new("");
    let db = lab.db();
    let o = lab.run(&["-p", "-c", "-f", &db, "alice"], Some(b"pw"));
    assert!(o.status.success());
    assert!(
        !lab.s.path("queue/etc").exists(),
        "auto mode touched the chroot"
    );
    lab.s.conf("saslpasswd", "postfix_integration: no\n");
    let o = lab.run(&["-p", "-c", "-f", &db, "bob"], Some(b"pw"));
    assert!(o.status.success());
    assert!(!lab.s.path("queue/etc").exists());
    // --postfix overrides the setting; --publish brings the copy up to date.
    let o = lab.run(&["--publish", "-f", &db], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 added, 0 changed, 0 removed"),
        "{}",
        stdout(&o)
    );
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&lab.s.db()));
    let o = lab.run(&["--publish", "-f", &db], None);
    assert!(
        stdout(&o).contains("0 added, 0 changed, 0 removed"),
        "{}",
        stdout(&o)
    );
    // Postfix not configured (no main.cf): an explicit request fails clearly.
    let mut c = lab.s.cmd(SASLPASSWD);
    c.env("MAIL_CONFIG", lab.s.path("nowhere"))
        .args(["--postfix", "-p", "-f", &db, "x"]);
    let o = run_cmd(&mut c, Some(b"pw"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Postfix integration: postconf failed"),
        "{}",
        stderr(&o)
    );
    assert!(
        !mdb_dump(&lab.s.db())
            .iter()
            .any(|(k, _)| k.starts_with(b"x\0"))
    );
}

fn hard_links_and_symlinks_are_refused() {
    let lab = Lab::new("");
    let db = lab.db();
    let o = lab.run(&["-p", "-c", "-f", &db, "alice"], Some(b"pw"));
    assert!(o.status.success());
    std::fs::create_dir_all(lab.s.path("queue/etc")).unwrap();
    std::fs::hard_link(lab.s.db(), lab.copy()).unwrap();
    let o = lab.run(&["--publish", "-f", &db], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a hard link of"), "{}", stderr(&o));
    std::fs::remove_file(lab.copy()).unwrap();

    // A symlinked lock file at the copy: never followed, target untouched.
    let victim = lab.s.path("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&victim, sasldb::store::lock_path(&lab.copy())).unwrap();
    let o = lab.run(&["--publish", "-f", &db], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    let m = std::fs::metadata(&victim).unwrap();
    assert_eq!((m.mode() & 0o777, m.gid()), (0o600, 0));
}

const READER: &str = r#"
import lmdb, sys, os
env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=True, max_readers=126)
stop = sys.argv[2]
reads = bad = 0
last = -1
print("ready", flush=True)
while True:
    done = os.path.exists(stop)
    with env.begin() as txn:
        a = txn.get(b"pair-a\x00lab\x00userPassword")
        b = txn.get(b"pair-b\x00lab\x00userPassword")
        n = txn.stat()["entries"]
    reads += 1
    if a is not None or b is not None:
        if a != b or n != 2:
            bad += 1
        else:
            v = int(a.decode()[1:])
            if v < last:
                bad += 1
            last = v
    if done:
        break
print(reads, bad, last, flush=True)
"#;

fn a_reader_holding_the_copy_open_sees_only_whole_states() {
    let lab = Lab::new("");
    let src = lab.s.db();
    let pf = Postfix::detect(Some(&lab.conf_dir())).expect("postconf");
    let deploy = Deployment::new(pf, &src, None).expect("deployment");
    assert_eq!(deploy.copy.as_deref(), Some(lab.copy().as_path()));
    let store = Store::open_write(&src, &OpenOptions::default()).unwrap();
    let policy = SetPolicy {
        plaintext: true,
        scram: None,
        iterations: 4096,
    };
    let set = |n: usize| {
        let ops = ["pair-a", "pair-b"]
            .iter()
            .map(|u| Op::Set {
                account: Account::new(*u, "lab"),
                password: format!("v{n}").into_bytes(),
            })
            .collect();
        let prepared = admin::prepare(&policy, ops, &mut |_| {}).unwrap();
        admin::apply(&store, &policy, &prepared, &mut |_| {}).unwrap();
        deploy.after_write(&store).unwrap();
    };
    set(0);
    let stop = lab.s.path("stop");
    need_python_lmdb();
    let mut reader = Command::new("/usr/bin/python3")
        .args(["-c", READER])
        .arg(lab.copy())
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with python3-lmdb");
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    for n in 1..=1000 {
        set(n);
    }
    std::fs::File::create(&stop).unwrap().flush().unwrap();
    let summary = lines.next().unwrap().unwrap();
    assert!(reader.wait().unwrap().success());
    let f: Vec<i64> = summary
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (reads, bad, last) = (f[0], f[1], f[2]);
    eprintln!("reader: {reads} reads, {bad} bad, last v{last}");
    assert_eq!(bad, 0, "torn or invalid states seen ({reads} reads)");
    assert!(reads > 10, "the reader barely ran: {reads}");
    assert_eq!(last, 1000, "the reader's final read saw the final state");
    assert_eq!(mdb_dump(&lab.copy()), mdb_dump(&src));
}

crate::tests!(
    realm_is_the_one_postfix_looks_up,
    realm_is_said_on_a_terminal,
    every_change_is_published_with_postfix_modes,
    integration_stays_off_unless_asked_for_a_scratch_path,
    hard_links_and_symlinks_are_refused,
    a_reader_holding_the_copy_open_sees_only_whole_states,
);
