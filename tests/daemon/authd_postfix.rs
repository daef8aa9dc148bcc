//! `smtpd-auth` against real peers, no mocks:
//! - Debian's `testsaslauthd` (sasl2-bin) on our saslauthd socket;
//! - a real, scratch Postfix instance (Debian `postfix`: its own
//!   config_directory, queue_directory and data_directory under a temp dir,
//!   127.0.0.1 and a free port, every transport `discard:`) with
//!   `smtpd_sasl_type = dovecot` on our Dovecot socket, and with Cyrus
//!   libsasl (`pwcheck_method: saslauthd`) on our saslauthd socket, both
//!   driven by swaks;
//! - the daemon itself: socket files (stale, live, owner and mode), the
//!   fail2ban-style failure line, the per-client failure limit fed by the
//!   `rip=` Postfix passes, clients that hang, send garbage or come by the
//!   dozen.
//!
//! Nothing here reads or writes /etc/postfix, /var/spool/postfix or
//! /etc/sasldb2. Runs as root (Postfix's master must).
use crate::common;
use crate::common::daemon::{Process, SMTPD_AUTH, WAIT, free_port, wait_for};
use crate::common::*;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine;
use sasldb::authd::server::{PARTIAL_TIMEOUT, REQUEST_TIMEOUT};

pub(crate) const REALM: &str = "lab.example";
const MYHOSTNAME: &str = "mx.lab.example";
const OUTSIDE: &str = "rcpt@outside.example";
const USERS: &[(&str, &str, &str)] = &[
    ("alice", REALM, "alice-secret"),
    ("bob", REALM, "b0b s3cret!"),
    ("dave", "other.example", "dave-other"),
];

// ------------------------------------------------------------------ helpers

/// A peer program's path; a missing one fails the test naming its package.
fn need(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    common::harness::missing(&format!(
        "`{program}` (Debian package {package}: apt-get install {package})"
    ))
}

/// Run to completion within `limit` (killed and failed past it).
fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(o) => o.expect("wait"),
        Err(_) => {
            // SAFETY: the child is not reaped yet (its waiter is blocked).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what}: still running after {limit:?}");
        }
    }
}

/// A scratch directory with a store holding [`USERS`] (made with our
/// `saslpasswd`), `smtpd.conf` naming it and a `main.cf` for smtpd-auth.
/// The directory is opened to others (0755): Postfix's unprivileged
/// processes must reach sockets and logs under it.
pub(crate) struct Lab {
    pub(crate) s: Scratch,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        // Sockets and stores go to Postfix's user and group; the daemons drop root.
        need_root();
        let s = Scratch::new();
        std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        s.conf("smtpd", &format!("sasldb_path: {}\n", s.db().display()));
        let lab = Lab { s };
        for (user, realm, pw) in USERS {
            lab.add_user(user, realm, pw);
        }
        std::fs::write(
            lab.cf(),
            format!(
                "# smtpd-auth test configuration\nmyhostname = {MYHOSTNAME}\nsmtpd_sasl_local_domain = {REALM}\ncyrus_sasl_config_path = {}\nsmtpd_sasl_path = smtpd\nlog_destination = stderr\n",
                lab.s.conf_dir().display()
            ),
        )
        .expect("write main.cf");
        lab
    }

    fn add_user(&self, user: &str, realm: &str, pw: &str) {
        let db = self.s.db();
        let o = self.s.run(
            SASLPASSWD,
            &["-p", "-c", "-u", realm, "-f", db.to_str().unwrap(), user],
            Some(pw.as_bytes()),
        );
        assert!(o.status.success(), "saslpasswd {user}: {}", stderr(&o));
    }

    fn cf(&self) -> PathBuf {
        self.s.path("smtpd-auth.cf")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.s.path(name)
    }

    fn smtpd_auth(&self, overrides: &[String]) -> Command {
        let mut c = Command::new(SMTPD_AUTH);
        c.arg("-c").arg(self.cf());
        // The SCRAM salt key goes to the state dir: keep it in the scratch.
        c.arg("-o").arg(format!(
            "smtpd_auth_state_dir={}",
            self.path("state").display()
        ));
        for o in overrides {
            c.arg("-o").arg(o);
        }
        c
    }
}

/// Start `smtpd-auth` with `-o` overrides; returns once every socket asked
/// for is logged ready.
fn start_daemon(lab: &Lab, name: &str, overrides: &[String]) -> Process {
    let mut d = Process::spawn(
        &mut lab.smtpd_auth(overrides),
        lab.path(&format!("{name}.log")),
    );
    let sockets = overrides
        .iter()
        .filter(|o| o.starts_with("dovecot_auth_socket=") || o.starts_with("saslauthd_socket="))
        .count();
    wait_for(WAIT, "smtpd-auth sockets ready", || {
        if let Some(st) = d.exited() {
            panic!("smtpd-auth exited early ({st}):\n{}", d.log());
        }
        (d.log().matches(" ready; realm ").count() >= sockets).then_some(())
    });
    d
}

/// How Postfix's smtpd authenticates.
pub(crate) enum Sasl {
    /// `smtpd_sasl_type = dovecot`, `smtpd_sasl_path = private/auth`.
    Dovecot,
    /// `smtpd_sasl_type = cyrus`, smtpd.conf with `pwcheck_method:
    /// saslauthd` and `saslauthd_path` this socket.
    CyrusSaslauthd(PathBuf),
}

/// A scratch Postfix instance under the lab: config_directory `postfix/`,
/// queue_directory `queue/`, data_directory `data/`, maillog_file
/// `maillog`; smtpd unchrooted on 127.0.0.1:<port>; nothing delivered
/// anywhere (every transport is discard). `postfix stop` on drop.
pub(crate) struct Postfix {
    conf: PathBuf,
    queue: PathBuf,
    maillog: PathBuf,
    pub(crate) port: u16,
    running: bool,
}

impl Postfix {
    /// Lay out the directories and main.cf; the queue's `private/` exists
    /// after this, so the auth socket can be created before start().
    fn new(lab: &Lab, sasl: Sasl) -> Postfix {
        Postfix::with(lab, sasl, "")
    }

    /// As new(), `extra` main.cf lines last (they win over earlier ones).
    pub(crate) fn with(lab: &Lab, sasl: Sasl, extra: &str) -> Postfix {
        need("postfix", "postfix");
        let conf = lab.path("postfix");
        let queue = lab.path("queue");
        let data = lab.path("data");
        let maillog = lab.path("maillog");
        std::fs::create_dir_all(&conf).unwrap();
        let sasl_cf = match sasl {
            Sasl::Dovecot => {
                "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n".to_string()
            }
            Sasl::CyrusSaslauthd(socket) => {
                // Debian's Postfix reads Cyrus's smtpd.conf from
                // $config_directory/sasl whatever cyrus_sasl_config_path
                // says; set both.
                let dir = conf.join("sasl");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    dir.join("smtpd.conf"),
                    format!(
                        "pwcheck_method: saslauthd\nsaslauthd_path: {}\nmech_list: PLAIN LOGIN\n",
                        socket.display()
                    ),
                )
                .unwrap();
                format!(
                    "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\ncyrus_sasl_config_path = {}\n",
                    dir.display()
                )
            }
        };
        let scratch = lab.s.dir.path().display();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "# scratch Postfix instance for tests/daemon/authd_postfix.rs
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {MYHOSTNAME}
mydomain = {REALM}
myorigin = $myhostname
smtpd_banner = $myhostname ESMTP Postfix (scratch)
biff = no
append_dot_mydomain = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# 127.0.0.1 is not trusted: relaying needs AUTH
mynetworks = 192.0.2.0/24
mydestination =
relay_domains =
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = discard:no-egress
relay_transport = discard:no-egress
local_transport = discard:no-local
virtual_transport = discard:no-virtual
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {scratch}
maillog_file = {maillog}
smtpd_sasl_auth_enable = yes
smtpd_sasl_local_domain = {REALM}
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
{sasl_cf}{extra}",
                queue = queue.display(),
                data = data.display(),
                maillog = maillog.display(),
            ),
        )
        .unwrap();
        make_postfix_dirs(&queue, &data);
        Postfix {
            conf,
            queue,
            maillog,
            port: 0,
            running: false,
        }
    }

    fn private(&self, name: &str) -> PathBuf {
        self.queue.join("private").join(name)
    }

    /// `postfix -c DIR start` on a free port (another one if a parallel
    /// test took it meanwhile).
    pub(crate) fn start(&mut self) {
        for _ in 0..5 {
            self.port = free_port();
            std::fs::write(
                self.conf.join("master.cf"),
                format!(
                    "# scratch instance: unchrooted, loopback only, no egress
127.0.0.1:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
discard unix - - n - - discard
error unix - - n - - error
retry unix - - n - - error
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsmgr unix - - n 1000? 1 tlsmgr
",
                    port = self.port
                ),
            )
            .unwrap();
            // The directories are made already: skip postfix-script's
            // integrity checks (seconds) as its quick-start flag allows.
            std::fs::write(self.queue.join("quick-start"), "").unwrap();
            let o = run_within(
                Command::new(need("postfix", "postfix"))
                    .arg("-c")
                    .arg(&self.conf)
                    .arg("start"),
                WAIT,
            );
            if o.status.success() {
                self.running = true;
                return;
            }
            let log = self.maillog();
            assert!(
                log.contains("Address already in use"),
                "postfix start failed: {}{}\nmaillog:\n{log}",
                stdout(&o),
                stderr(&o)
            );
        }
        panic!("postfix start: no free port after 5 tries");
    }

    pub(crate) fn maillog(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    /// Wait until the maillog has a line containing `needle`.
    fn wait_log(&self, needle: &str) -> String {
        wait_for(WAIT, needle, || {
            self.maillog()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
    }

    /// swaks against this instance: (success, transcript).
    fn swaks(&self, args: &[&str]) -> (bool, String) {
        let o = run_within(
            Command::new(need("swaks", "swaks"))
                .args(["--server", "127.0.0.1", "--port"])
                .arg(self.port.to_string())
                .args(["--ehlo", "client.lab.example", "--timeout", "10"])
                .args(args),
            WAIT,
        );
        (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
    }

    /// One AUTH with swaks (`--quit-after AUTH`).
    pub(crate) fn auth(&self, mech: &str, user: &str, pw: &str) -> (bool, String) {
        self.swaks(&[
            "--auth",
            mech,
            "--auth-user",
            user,
            "--auth-password",
            pw,
            "--quit-after",
            "AUTH",
        ])
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let _ = run_within(
            // Found when it was started, so need() cannot stop the test here.
            Command::new(need("postfix", "postfix"))
                .arg("-c")
                .arg(&self.conf)
                .arg("stop"),
            WAIT,
        );
        // Whatever postfix-script did, leave no master behind.
        if let Ok(pid) = std::fs::read_to_string(self.queue.join("pid/master.pid"))
            && let Ok(pid) = pid.trim().parse::<libc::pid_t>()
            && Path::new(&format!("/proc/{pid}/cmdline")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("master"))
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "))
        {
            // SAFETY: the pid is this instance's master (checked above).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

/// The queue and data directories as Postfix's `post-install
/// create-missing` makes them, from $meta_directory/postfix-files
/// (`$queue_directory/active:d:$mail_owner:-:700:ucr`).
fn make_postfix_dirs(queue: &Path, data: &Path) {
    let meta = run_within(
        Command::new(need("postconf", "postfix")).args(["-d", "-h", "meta_directory"]),
        WAIT,
    );
    let files = Path::new(stdout(&meta).trim()).join("postfix-files");
    let text = std::fs::read_to_string(&files)
        .unwrap_or_else(|e| panic!("{}: {e} (apt-get install postfix)", files.display()));
    let postfix_uid = uid_of("postfix");
    let postdrop_gid = gid_of("postdrop");
    let mut made = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 5 || f[1] != "d" {
            continue;
        }
        let path = if let Some(rest) = f[0].strip_prefix("$queue_directory") {
            PathBuf::from(format!("{}{rest}", queue.display()))
        } else if let Some(rest) = f[0].strip_prefix("$data_directory") {
            PathBuf::from(format!("{}{rest}", data.display()))
        } else {
            continue;
        };
        std::fs::create_dir_all(&path).unwrap();
        let uid = match f[2] {
            "$mail_owner" => postfix_uid,
            _ => 0,
        };
        let gid = match f[3] {
            "$setgid_group" => Some(postdrop_gid),
            _ => None,
        };
        std::os::unix::fs::chown(&path, Some(uid), gid).unwrap();
        let mode = u32::from_str_radix(f[4], 8).expect("mode in postfix-files");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        made += 1;
    }
    assert!(
        made >= 10,
        "{}: no queue directories listed",
        files.display()
    );
}

/// Server reply lines of a swaks transcript (`<-  ` and `<** `; inside
/// TLS `<~  ` and `<~* `).
fn replies(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter_map(|l| {
            ["<-  ", "<** ", "<~  ", "<~* "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
        })
        .collect()
}

fn has_reply(transcript: &str, prefix: &str) -> bool {
    replies(transcript).iter().any(|r| r.starts_with(prefix))
}

#[track_caller]
pub(crate) fn assert_authenticated((ok, t): (bool, String)) {
    assert!(
        ok && has_reply(&t, "235 2.7.0 Authentication successful"),
        "{t}"
    );
}

#[track_caller]
pub(crate) fn assert_refused((ok, t): (bool, String)) -> String {
    assert!(
        !ok && has_reply(&t, "535 5.7.8 Error: authentication failed"),
        "{t}"
    );
    t
}

/// `testsaslauthd -f SOCKET args...`: (exit code, stdout).
fn testsaslauthd(socket: &Path, args: &[&str]) -> (i32, String) {
    let o = run_within(
        Command::new(need("testsaslauthd", "sasl2-bin"))
            .arg("-f")
            .arg(socket)
            .args(args),
        WAIT,
    );
    (o.status.code().unwrap_or(-1), stdout(&o))
}

/// Read until EOF or error; how long that took.
fn time_to_close(s: &mut UnixStream, limit: Duration) -> Duration {
    s.set_read_timeout(Some(limit)).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("connection not closed after {:?}", t.elapsed())
            }
            // Reset or broken: closed by the server with our data unread.
            Err(_) => return t.elapsed(),
        }
    }
}

fn saslauthd_request(fields: [&[u8]; 4]) -> Vec<u8> {
    let mut b = Vec::new();
    for f in fields {
        b.extend_from_slice(&(f.len() as u16).to_be_bytes());
        b.extend_from_slice(f);
    }
    b
}

// -------------------------------------------------------------- testsaslauthd

fn testsaslauthd_against_our_saslauthd_socket() {
    let lab = Lab::new();
    let mux = lab.path("mux");
    let d = start_daemon(
        &lab,
        "authd",
        &[format!("saslauthd_socket={}", mux.display())],
    );

    let ok = "0: OK \"Success.\"";
    let no = "0: NO \"authentication failed\"";
    let cases: &[(&[&str], i32, &str)] = &[
        (&["-u", "alice", "-p", "alice-secret"], 0, ok),
        (&["-u", "alice", "-p", "wrong"], 255, no),
        (&["-u", "nobody", "-p", "alice-secret"], 255, no),
        (&["-u", "bob", "-p", "b0b s3cret!", "-s", "smtp"], 0, ok),
        // The realm comes from the request...
        (
            &["-u", "dave", "-p", "dave-other", "-r", "other.example"],
            0,
            ok,
        ),
        (
            &["-u", "alice", "-p", "alice-secret", "-r", "other.example"],
            255,
            no,
        ),
        // ...else it is smtpd_sasl_local_domain...
        (&["-u", "dave", "-p", "dave-other"], 255, no),
        (&["-u", "alice", "-p", "alice-secret", "-r", REALM], 0, ok),
        // ...or the one a user@realm login names.
        (&["-u", "dave@other.example", "-p", "dave-other"], 0, ok),
        (&["-u", "alice@lab.example", "-p", "alice-secret"], 0, ok),
        (&["-u", "dave@other.example", "-p", "alice-secret"], 255, no),
    ];
    for (args, code, line) in cases {
        let (c, out) = testsaslauthd(&mux, args);
        assert_eq!(
            (c, out.trim_end()),
            (*code, *line),
            "testsaslauthd {args:?}"
        );
    }
    // One connection per request, several in a row (-R).
    let (c, out) = testsaslauthd(&mux, &["-u", "alice", "-p", "alice-secret", "-R", "3"]);
    assert_eq!(c, 0, "{out}");
    assert_eq!(out.matches("OK \"Success.\"").count(), 3, "{out}");

    // Failures are logged with the account tried.
    d.wait_log("warning: saslauthd request for service imap: authentication failed, sasl_username=alice@lab.example");
    d.wait_log("authentication failed, sasl_username=nobody@lab.example");
    d.wait_log("authentication failed, sasl_username=dave@lab.example");

    // Default owner, group and mode: root:postfix 0660, Postfix's group can connect.
    let m = std::fs::symlink_metadata(&mux).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (0, gid_of("postfix"), 0o660)
    );
}

// ------------------------------------------------------ Postfix, dovecot type

fn postfix_with_dovecot_sasl_on_our_socket() {
    let lab = Lab::new();
    let mut pf = Postfix::new(&lab, Sasl::Dovecot);
    let socket = pf.private("auth");
    let sock_args = [
        format!("dovecot_auth_socket={}", socket.display()),
        "dovecot_auth_socket_group=postfix".to_string(),
    ];
    let mut d = start_daemon(&lab, "authd", &sock_args);
    pf.start();

    // EHLO offers what our MECH lines offered (after noanonymous).
    let (ok, t) = pf.swaks(&["--quit-after", "EHLO"]);
    assert!(ok, "{t}");
    let auth = replies(&t)
        .into_iter()
        .find(|r| r.starts_with("250-AUTH "))
        .unwrap_or_else(|| panic!("no AUTH in EHLO: {t}"))
        .to_string();
    for m in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256"] {
        assert!(auth.split(' ').any(|x| x == m), "{m} not in {auth}");
    }

    // Every mechanism swaks speaks authenticates.
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        assert_authenticated(pf.auth(mech, "alice", "alice-secret"));
    }
    // DIGEST-MD5's digest-uri names the server by the address swaks
    // connected to (smtp/127.0.0.1, Postfix's lip=) or by myhostname; like
    // Cyrus, only the service part is checked by default, so any host is
    // fine (smtpd_sasl_digest_uri_strict_host refuses it: auth_oracle.rs).
    let digest = |host: &str| {
        pf.swaks(&[
            "--auth",
            "DIGEST-MD5",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-secret",
            "--auth-extra",
            &format!("dmd5-host={host}"),
            "--quit-after",
            "AUTH",
        ])
    };
    assert_authenticated(digest(MYHOSTNAME));
    assert_authenticated(digest("evil.example"));
    assert_authenticated(pf.auth("PLAIN", "bob", "b0b s3cret!"));
    assert_authenticated(pf.auth("CRAM-MD5", "dave@other.example", "dave-other"));
    assert_authenticated(pf.auth("LOGIN", "alice@lab.example", "alice-secret"));
    // swaks sends `username="alice@lab.example",realm="lab.example"`:
    // Cyrus takes that as alice in lab.example, and so do we.
    assert_authenticated(pf.auth("DIGEST-MD5", "alice@lab.example", "alice-secret"));
    assert_authenticated(pf.auth("DIGEST-MD5", "dave@other.example", "dave-other"));
    assert_refused(pf.auth("DIGEST-MD5", "dave@other.example", "wrong"));

    // Wrong passwords and unknown users get Postfix's own 535.
    assert_refused(pf.auth("PLAIN", "alice", "wrong"));
    assert_refused(pf.auth("LOGIN", "alice", "wrong"));
    assert_refused(pf.auth("CRAM-MD5", "nobody", "alice-secret"));
    assert_refused(pf.auth("PLAIN", "dave", "dave-other"));

    // Relaying to an outside domain: refused without AUTH and after a
    // failed one, allowed after AUTH.
    let from = ["--from", "alice@lab.example", "--to", OUTSIDE];
    let (ok, t) = pf.swaks(&from);
    assert!(
        !ok && has_reply(&t, &format!("554 5.7.1 <{OUTSIDE}>: Relay access denied")),
        "{t}"
    );
    let mut a = from.to_vec();
    a.extend([
        "--auth-optional",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "nope",
    ]);
    let (ok, t) = pf.swaks(&a);
    assert!(
        !ok && has_reply(&t, "535 5.7.8") && has_reply(&t, "554 5.7.1"),
        "{t}"
    );
    let mut a = from.to_vec();
    a.extend([
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "alice-secret",
    ]);
    let (ok, t) = pf.swaks(&a);
    assert!(
        ok && has_reply(&t, "250 2.1.5 Ok") && has_reply(&t, "250 2.0.0 Ok: queued as "),
        "{t}"
    );
    // Postfix logged the login and the message went to discard, nowhere else.
    pf.wait_log("sasl_method=PLAIN, sasl_username=alice@lab.example");
    pf.wait_log("status=sent (no-egress)");

    // Our log: one fail2ban-style line per failure, with Postfix's rip.
    let line = d.wait_log("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: ");
    let (stamp, rest) = line.split_at(16);
    assert!(
        stamp.as_bytes()[3] == b' ' && stamp.as_bytes()[6] == b' ' && &stamp[9..10] == ":",
        "syslog time stamp: {line}"
    );
    assert!(
        rest.starts_with(&format!("{MYHOSTNAME} smtpd-auth/auth[{}]: ", d.pid())),
        "{line}"
    );
    d.wait_log("warning: unknown[127.0.0.1]: SASL LOGIN authentication failed: ");
    d.wait_log("warning: unknown[127.0.0.1]: SASL CRAM-MD5 authentication failed: ");
    // The account tried is in our line and, through FAIL's user=, in
    // Postfix's own (its sasl_username=, not "(unavailable)").
    d.wait_log(
        "SASL LOGIN authentication failed: authentication failure, sasl_username=alice@lab.example",
    );
    pf.wait_log(
        "SASL LOGIN authentication failed: authentication failed, sasl_username=alice@lab.example",
    );
    pf.wait_log("SASL CRAM-MD5 authentication failed: authentication failed, sasl_username=nobody@lab.example");
    let log = d.log();
    // (The DIGEST-MD5 digest-uri naming another host is no failure now.)
    assert_eq!(log.matches("authentication failed").count(), 6, "{log}");
    assert!(
        !log.contains("alice-secret") && !log.contains("wrong"),
        "passwords logged:\n{log}"
    );

    // The daemon restarts under a running Postfix: smtpd reconnects.
    assert!(d.stop().success());
    assert!(!socket.exists(), "socket left behind");
    let _d = start_daemon(&lab, "authd2", &sock_args);
    assert_authenticated(pf.auth("PLAIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("CRAM-MD5", "alice", "alice-secret"));
    let pflog = pf.maillog();
    assert!(!pflog.contains("fatal"), "{pflog}");
}

fn postfix_rip_feeds_the_failure_limit() {
    let lab = Lab::new();
    let mut pf = Postfix::new(&lab, Sasl::Dovecot);
    let d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", pf.private("auth").display()),
            "smtpd_auth_failure_limit=3".into(),
            "smtpd_auth_failure_window=1h".into(),
        ],
    );
    pf.start();
    for _ in 0..3 {
        let t = assert_refused(pf.auth("PLAIN", "alice", "wrong"));
        assert!(!t.contains("Too many"), "{t}");
    }
    // 127.0.0.1 has used up its failures: even the right password is refused...
    let t = assert_refused(pf.auth("PLAIN", "alice", "alice-secret"));
    assert!(
        has_reply(
            &t,
            "535 5.7.8 Error: authentication failed: Too many authentication failures"
        ),
        "{t}"
    );
    let t = assert_refused(pf.auth("CRAM-MD5", "bob", "b0b s3cret!"));
    assert!(t.contains("Too many authentication failures"), "{t}");
    // ...while another client address (Postfix's rip=127.0.0.2) is not
    // limited, and the account is never locked.
    let mut a = vec!["--local-interface", "127.0.0.2"];
    a.extend([
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "alice-secret",
    ]);
    a.extend(["--quit-after", "AUTH"]);
    assert_authenticated(pf.swaks(&a));
    pf.wait_log("[127.0.0.2] ehlo=1 auth=1 quit=1");
    assert_eq!(
        d.log()
            .matches("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed")
            .count(),
        4,
        "{}",
        d.log()
    );
}

fn postfix_says_secured_after_starttls_and_plaintext_waits_for_it() {
    let lab = Lab::new();
    let (cert, key) = (lab.path("cert.pem"), lab.path("key.pem"));
    let o = run_within(
        Command::new(need("openssl", "openssl"))
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN={MYHOSTNAME}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        WAIT,
    );
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    // Postfix offers AUTH before STARTTLS too; our daemon is the one that
    // insists on TLS for plaintext mechanisms (smtpd_tls_auth_only there).
    let mut pf = Postfix::with(
        &lab,
        Sasl::Dovecot,
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_auth_only = no\n",
            cert.display(),
            key.display()
        ),
    );
    let _d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", pf.private("auth").display()),
            "smtpd_tls_auth_only=yes".into(),
        ],
    );
    pf.start();
    for mech in ["PLAIN", "LOGIN"] {
        let t = assert_refused(pf.auth(mech, "alice", "alice-secret"));
        assert!(
            t.contains("Plaintext authentication disallowed on non-secure connections"),
            "{t}"
        );
    }
    assert_authenticated(pf.auth("CRAM-MD5", "alice", "alice-secret"));
    for mech in ["PLAIN", "LOGIN"] {
        let (ok, t) = pf.swaks(&[
            "--tls",
            "--auth",
            mech,
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-secret",
            "--quit-after",
            "AUTH",
        ]);
        assert!(t.contains("220 2.0.0 Ready to start TLS"), "{t}");
        assert_authenticated((ok, t));
    }
    let (ok, t) = pf.swaks(&[
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wrong",
        "--quit-after",
        "AUTH",
    ]);
    assert_refused((ok, t));
}

// -------------------------------------------------- Postfix, Cyrus saslauthd

fn postfix_with_cyrus_saslauthd_on_our_socket() {
    let lab = Lab::new();
    let run = lab.path("saslauthd");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mux = run.join("mux");
    let mut pf = Postfix::new(&lab, Sasl::CyrusSaslauthd(mux.clone()));
    let d = start_daemon(
        &lab,
        "authd",
        &[format!("saslauthd_socket={}", mux.display())],
    );
    pf.start();

    let (ok, t) = pf.swaks(&["--quit-after", "EHLO"]);
    assert!(ok && has_reply(&t, "250-AUTH PLAIN LOGIN"), "{t}");
    assert_authenticated(pf.auth("PLAIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("LOGIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("PLAIN", "bob", "b0b s3cret!"));
    // libsasl splits user@realm and sends the realm in the request.
    assert_authenticated(pf.auth("LOGIN", "dave@other.example", "dave-other"));
    assert_refused(pf.auth("PLAIN", "alice", "wrong"));
    assert_refused(pf.auth("LOGIN", "nobody", "alice-secret"));
    assert_refused(pf.auth("PLAIN", "dave", "dave-other"));

    let mut a = vec!["--from", "alice@lab.example", "--to", OUTSIDE];
    a.extend([
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "alice-secret",
    ]);
    let (ok, t) = pf.swaks(&a);
    assert!(ok && has_reply(&t, "250 2.0.0 Ok: queued as "), "{t}");

    d.wait_log("saslauthd request for service smtp: authentication failed, sasl_username=alice@lab.example");
    d.wait_log("authentication failed, sasl_username=nobody@lab.example");
    d.wait_log("authentication failed, sasl_username=dave@lab.example");
    pf.wait_log(
        "SASL PLAIN authentication failed: authentication failure, sasl_username=alice@lab.example",
    );
}

// ---------------------------------------------------------- daemon behaviour

fn stale_socket_replaced_live_one_refused_sockets_removed_on_sigterm() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let mux = lab.path("mux");
    // Stale files: sockets nobody listens on any more.
    drop(UnixListener::bind(&dove).unwrap());
    drop(UnixListener::bind(&mux).unwrap());
    assert!(dove.exists() && mux.exists());
    let args = [
        format!("dovecot_auth_socket={}", dove.display()),
        format!("saslauthd_socket={}", mux.display()),
        "dovecot_auth_socket_mode=0600".into(),
        "saslauthd_socket_mode=0666".into(),
        "saslauthd_socket_group=root".into(),
    ];
    let mut d = start_daemon(&lab, "authd", &args);
    assert_eq!(
        testsaslauthd(&mux, &["-u", "alice", "-p", "alice-secret"]).0,
        0
    );
    assert!(
        Dovecot::connect(&dove)
            .plain(1, "", "alice", "alice-secret")
            .starts_with("OK\t1\tuser=alice@lab.example")
    );
    let mode = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    assert_eq!(mode(&dove), (0, gid_of("postfix"), 0o600));
    assert_eq!(mode(&mux), (0, 0, 0o666));

    // A live socket is not taken over: a second daemon fails, the first
    // one keeps serving on its file.
    for (what, arg) in [("saslauthd", &args[1]), ("dovecot", &args[0])] {
        let o = run_within(&mut lab.smtpd_auth(std::slice::from_ref(arg)), WAIT);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("another server is listening"),
            "{what}: {}",
            stderr(&o)
        );
    }
    assert_eq!(
        testsaslauthd(&mux, &["-u", "alice", "-p", "alice-secret"]).0,
        0
    );
    assert!(
        Dovecot::connect(&dove)
            .plain(7, "", "alice", "alice-secret")
            .starts_with("OK\t7\t")
    );

    // Anything else at the path is left alone.
    let file = lab.path("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let o = run_within(
        &mut lab.smtpd_auth(&[format!("saslauthd_socket={}", file.display())]),
        WAIT,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("exists and is not a socket"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // SIGTERM: a clean exit. Started as root, the daemon runs as
    // mail_owner (postfix) by now, so socket files in root's directories
    // may stay behind: the next start takes them over as stale.
    let st = d.stop();
    assert!(st.success(), "{st}");
    assert!(d.log().contains("stopping on SIGTERM"), "{}", d.log());
    let mut d = start_daemon(&lab, "authd2", &args);
    assert_eq!(
        testsaslauthd(&mux, &["-u", "alice", "-p", "alice-secret"]).0,
        0
    );
    assert!(d.stop().success());
}

fn hung_and_garbage_clients_do_not_block_others() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let mux = lab.path("mux");
    let d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", dove.display()),
            format!("saslauthd_socket={}", mux.display()),
        ],
    );

    // Hung clients: half a Dovecot line; half a saslauthd request.
    // (Times taken before writing: the server cannot see the bytes earlier.)
    let mut hung_dove = Dovecot::connect(&dove);
    let t_dove = Instant::now();
    hung_dove
        .w
        .write_all(b"AUTH\t1\tPLAIN\tservice=smtp\tresp=AGFs")
        .unwrap();
    let mut hung_mux = UnixStream::connect(&mux).unwrap();
    let t_mux = Instant::now();
    hung_mux.write_all(&[0, 5, b'a']).unwrap();
    // An idle Postfix-like connection (whole lines only) is kept.
    let mut idle = Dovecot::connect(&dove);

    // Meanwhile everybody else is served at once.
    let t = Instant::now();
    assert_eq!(
        testsaslauthd(&mux, &["-u", "alice", "-p", "alice-secret"]).0,
        0
    );
    let mut other = Dovecot::connect(&dove);
    assert!(
        other
            .plain(1, "192.0.2.9", "alice", "alice-secret")
            .starts_with("OK\t1\t")
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "blocked for {:?}",
        t.elapsed()
    );

    // Garbage on the Dovecot socket: ignored line by line; the same
    // connection still works.
    let mut g = Dovecot::connect(&dove);
    g.w.write_all(b"\x00\xff\xfe garbage\n\t\t\nAUTH\nCONT\nCANCEL\nVERSION\t1\nBOGUS\tx=y\n")
        .unwrap();
    assert!(
        g.plain(2, "", "bob", "b0b s3cret!")
            .starts_with("OK\t2\tuser=bob@lab.example")
    );
    // A line past the limit: cut off at once.
    let mut big = Dovecot::connect(&dove);
    let _ = big.w.write_all(&vec![b'A'; 64 * 1024]);
    assert!(time_to_close(&mut big.w, WAIT) < Duration::from_secs(3));
    d.wait_log("line too long; connection closed");
    // A wrong VERSION: cut off.
    let mut v2 = UnixStream::connect(&dove).unwrap();
    v2.write_all(b"VERSION\t2\t0\n").unwrap();
    time_to_close(&mut v2, WAIT);

    // A client that sends requests but never reads the replies: cut off
    // once its unread replies pass the bound, nobody else waits on it.
    let flood = UnixStream::connect(&dove).unwrap();
    let mut fw = flood.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"AUTH\t1\tNOSUCHMECH\tservice=smtp\n".repeat(1000);
        // Stops with an error once the server has closed the connection.
        (0..200).all(|_| fw.write_all(&line).is_ok())
    });
    d.wait_log("client does not read its replies; connection closed");
    let mut other2 = Dovecot::connect(&dove);
    assert!(
        other2
            .plain(3, "", "alice", "alice-secret")
            .starts_with("OK\t3\t")
    );
    assert!(!writer.join().unwrap(), "the flood was never cut off");
    drop(flood);

    // Garbage on the saslauthd socket: an oversized field gets `NO ` and
    // the connection closed, as saslauthd does.
    let mut s = UnixStream::connect(&mux).unwrap();
    s.write_all(&[0xff, 0xff, b'x', b'y']).unwrap();
    let mut reply = Vec::new();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"\0\x03NO ");
    // A whole request with an empty login: saslauthd's text.
    let mut s = UnixStream::connect(&mux).unwrap();
    s.write_all(&saslauthd_request([b"", b"pw", b"smtp", b""]))
        .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"\0\x16NO NULL login received");

    // The hung ones are cut off after their timeouts, without a reply.
    time_to_close(&mut hung_mux, REQUEST_TIMEOUT + WAIT);
    let waited_mux = t_mux.elapsed();
    assert!(
        waited_mux >= REQUEST_TIMEOUT && waited_mux < REQUEST_TIMEOUT + Duration::from_secs(5),
        "saslauthd client cut after {waited_mux:?}"
    );
    let mut rest = Vec::new();
    let _ = hung_dove.r.read_to_end(&mut rest);
    let waited_dove = t_dove.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        waited_dove >= PARTIAL_TIMEOUT && waited_dove < PARTIAL_TIMEOUT + Duration::from_secs(5),
        "dovecot client cut after {waited_dove:?}"
    );
    // The idle one outlived the partial-line timeout and still works.
    assert!(
        idle.plain(9, "", "alice", "alice-secret")
            .starts_with("OK\t9\t")
    );
    assert!(
        other
            .plain(2, "", "alice", "alice-secret")
            .starts_with("OK\t2\t")
    );
}

fn many_concurrent_clients() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let mux = lab.path("mux");
    let d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", dove.display()),
            format!("saslauthd_socket={}", mux.display()),
            "smtpd_auth_failure_limit=0".into(),
        ],
    );
    const N: usize = 50;
    // N Dovecot connections open at once, then all authenticating
    // together, PLAIN right and wrong, while N testsaslauthd run.
    let barrier = Arc::new(Barrier::new(N));
    let dovecot: Vec<_> = (0..N)
        .map(|i| {
            let (dove, barrier) = (dove.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut c = Dovecot::connect(&dove);
                barrier.wait();
                let mut out = Vec::new();
                for j in 0..4u32 {
                    let id = 1000 * i as u32 + j;
                    let (user, pw) = if j % 2 == 0 {
                        ("alice", "alice-secret")
                    } else {
                        ("bob", "wrong")
                    };
                    out.push((
                        j % 2 == 0,
                        c.plain(id, &format!("192.0.2.{i}"), user, pw),
                        id,
                    ));
                }
                out
            })
        })
        .collect();
    let saslauthd: Vec<_> = (0..N)
        .map(|i| {
            let mux = mux.clone();
            std::thread::spawn(move || {
                let pw = if i % 5 == 4 { "wrong" } else { "alice-secret" };
                (
                    pw != "wrong",
                    testsaslauthd(&mux, &["-u", "alice", "-p", pw]),
                )
            })
        })
        .collect();
    for h in dovecot {
        for (good, reply, id) in h.join().expect("dovecot client") {
            if good {
                assert_eq!(reply, format!("OK\t{id}\tuser=alice@lab.example"));
            } else {
                assert_eq!(
                    reply,
                    format!("FAIL\t{id}\treason=authentication failed\tuser=bob@lab.example")
                );
            }
        }
    }
    for h in saslauthd {
        let (good, (code, out)) = h.join().expect("testsaslauthd");
        if good {
            assert_eq!((code, out.trim_end()), (0, "0: OK \"Success.\""));
        } else {
            assert_eq!(
                (code, out.trim_end()),
                (255, "0: NO \"authentication failed\"")
            );
        }
    }
    let log = d.log();
    assert_eq!(
        log.matches("SASL PLAIN authentication failed").count(),
        2 * N,
        "{log}"
    );
    assert_eq!(
        log.matches("saslauthd request for service imap").count(),
        N / 5
    );
}

fn failure_limit_by_rip_with_exceptions_over_the_dovecot_socket() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let _d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", dove.display()),
            "smtpd_auth_failure_limit=2".into(),
            "smtpd_auth_failure_exceptions=127.0.0.0/8, [::1]/128".into(),
        ],
    );
    let mut c = Dovecot::connect(&dove);
    // The handshake Postfix needs: MECH lines before SPID, DONE last.
    let first_spid = c
        .handshake
        .iter()
        .position(|l| l.starts_with("SPID\t"))
        .unwrap();
    let last_mech = c
        .handshake
        .iter()
        .rposition(|l| l.starts_with("MECH\t"))
        .unwrap();
    assert!(last_mech < first_spid, "{:?}", c.handshake);
    assert_eq!(c.handshake[0], "VERSION\t1\t2");
    assert!(
        c.handshake
            .iter()
            .any(|l| l.starts_with("MECH\tPLAIN\tplaintext")),
        "{:?}",
        c.handshake
    );

    for id in 1..=2 {
        assert_eq!(
            c.plain(id, "192.0.2.1", "alice", "x"),
            format!("FAIL\t{id}\treason=authentication failed\tuser=alice@lab.example")
        );
    }
    assert!(
        c.plain(3, "192.0.2.1", "alice", "alice-secret")
            .starts_with("FAIL\t3\treason=Too many authentication failures")
    );
    // Other addresses, exempt ones, and requests without rip= go on.
    assert!(
        c.plain(4, "192.0.2.2", "alice", "alice-secret")
            .starts_with("OK\t4\t")
    );
    for id in 5..=9 {
        assert!(c.plain(id, "127.0.0.1", "alice", "x").starts_with("FAIL"));
    }
    assert!(
        c.plain(10, "127.0.0.1", "alice", "alice-secret")
            .starts_with("OK\t10\t")
    );
    assert!(
        c.plain(11, "::1", "alice", "alice-secret")
            .starts_with("OK\t11\t")
    );
    // A second connection shares the limits (Postfix has one per smtpd).
    let mut c2 = Dovecot::connect(&dove);
    assert!(
        c2.plain(1, "192.0.2.1", "alice", "alice-secret")
            .contains("Too many")
    );
}

fn client_certificate_requirement_through_the_daemon() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", dove.display()),
            "dovecot_auth_require_client_cert=yes".into(),
        ],
    );
    let mut c = Dovecot::connect(&dove);
    // Postfix's request (no valid-client-cert): refused, logged.
    assert_eq!(
        c.plain(1, "192.0.2.5", "alice", "alice-secret"),
        "FAIL\t1\treason=Client didn't present valid SSL certificate"
    );
    d.wait_log("warning: unknown[192.0.2.5]: SASL PLAIN authentication failed: ");
    // A Dovecot-style client whose certificate was verified.
    let resp = base64::engine::general_purpose::STANDARD.encode("\0alice\0alice-secret");
    c.send(&format!(
        "AUTH\t2\tPLAIN\tservice=smtp\tsecured=tls\tvalid-client-cert\trip=192.0.2.5\tresp={resp}"
    ));
    assert!(c.line().starts_with("OK\t2\tuser=alice@"));
}

fn out_of_descriptors_the_queued_clients_are_served_once_some_close() {
    let lab = Lab::new();
    let dove = lab.path("auth");
    let d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", dove.display()),
            "mail_owner=postfix".into(),
        ],
    );
    let pid = d.pid();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open_fds + 4;
    // The daemon runs as postfix: only postfix (or CAP_SYS_RESOURCE, which
    // a container may not grant root) may change its limits.
    let o = Command::new(need("setpriv", "util-linux"))
        .args([
            "--reuid=postfix",
            "--regid=postfix",
            "--clear-groups",
            "prlimit",
        ])
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("prlimit (apt-get install util-linux)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // RLIMIT_NOFILE bounds descriptor numbers: the daemon is full once every
    // number below the limit is in use. Read from /proc, not guessed from
    // how long a greeting takes: under load an accepted client may wait
    // longer for its greeting than any guess.
    let full = || {
        let open: std::collections::HashSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        (0..limit).all(|n| open.contains(&n))
    };
    // A client the daemon accepted gets its greeting; WAIT only guards
    // against a hang.
    let greeted = |s: &UnixStream| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 8];
        matches!((&*s).read(&mut b), Ok(n) if n > 0)
    };
    let mut accepted = Vec::new();
    while !full() {
        let s = UnixStream::connect(&dove).unwrap();
        // The greeting is written after the accept: once it is here, the
        // descriptor is in /proc.
        assert!(greeted(&s), "client {} not greeted", accepted.len() + 1);
        accepted.push(s);
        assert!(accepted.len() < 20, "the descriptor limit never bit");
    }
    assert!(!accepted.is_empty(), "no client was accepted");
    // No descriptor is left: this one waits queued, not greeted.
    let queued = UnixStream::connect(&dove).unwrap();
    d.wait_log("warning: auth socket: cannot accept a connection: ");
    queued.set_nonblocking(true).unwrap();
    let mut b = [0u8; 8];
    assert!(
        matches!((&queued).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a client was accepted with no descriptor free"
    );
    queued.set_nonblocking(false).unwrap();
    // Free descriptors: the queued client is served with no new
    // connection arriving to wake the server.
    drop(accepted);
    assert!(greeted(&queued), "queued client never accepted");
}

// ------------------------------------------- migration from a Cyrus sasldb

/// The README's "Moving from Cyrus sasldb", end to end: a Postfix set up
/// the classic way (`smtpd_sasl_type = cyrus`, `auxprop_plugin: sasldb` on
/// a Berkeley DB sasldb made by Debian's saslpasswd2), then `saslpasswd
/// --import`, then the same Postfix switched to `smtpd_sasl_type = dovecot`
/// on our socket: the same users log in with the same passwords.
fn postfix_moves_from_cyrus_sasldb_to_our_socket_without_a_password_reset() {
    need("saslpasswd2", "sasl2-bin");
    let lab = Lab::new();
    // Only the imported store may answer: drop the one Lab::new made.
    std::fs::remove_file(lab.s.db()).expect("remove store");
    let _ = std::fs::remove_file(lab.path("sasldb2-lock"));
    let users: Vec<(&str, &str, &str)> = USERS
        .iter()
        .copied()
        .chain([("carol", REALM, " spaced out pw ")])
        .collect();
    let bdb = lab.path("sasldb2.bdb");
    for (user, realm, pw) in &users {
        let o = lab.s.run(
            "saslpasswd2",
            &["-p", "-c", "-u", realm, "-f", bdb.to_str().unwrap(), user],
            Some(pw.as_bytes()),
        );
        assert!(o.status.success(), "saslpasswd2 {user}: {}", stderr(&o));
    }
    // Postfix's smtpd (user postfix) reads the file, as on a Debian host
    // where it is root:sasl 0640 and postfix is in group sasl.
    std::os::unix::fs::chown(&bdb, None, Some(gid_of("postfix"))).expect("chgrp");

    // Before: the classic setup.
    let sasl_dir = lab.path("postfix/sasl");
    std::fs::create_dir_all(&sasl_dir).expect("mkdir");
    std::fs::write(
        sasl_dir.join("smtpd.conf"),
        format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\nmech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5\n",
            bdb.display()
        ),
    )
    .expect("smtpd.conf");
    let classic = format!(
        "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\ncyrus_sasl_config_path = {}\n",
        sasl_dir.display()
    );
    let mut pf = Postfix::with(&lab, Sasl::Dovecot, &classic);
    pf.start();
    assert_authenticated(pf.auth("PLAIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("CRAM-MD5", "carol", " spaced out pw "));
    assert_refused(pf.auth("PLAIN", "alice", "wrong"));
    drop(pf);

    // The import.
    let o = lab.s.run(
        SASLPASSWD,
        &[
            "--import",
            bdb.to_str().unwrap(),
            "-f",
            lab.s.db().to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "import: {}", stderr(&o));
    assert!(stdout(&o).contains("4 records"), "{}", stdout(&o));

    // After: the same instance on our Dovecot socket.
    let mut pf = Postfix::new(&lab, Sasl::Dovecot);
    let socket = pf.private("auth");
    let _d = start_daemon(
        &lab,
        "authd",
        &[
            format!("dovecot_auth_socket={}", socket.display()),
            "dovecot_auth_socket_group=postfix".to_string(),
        ],
    );
    pf.start();
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        for (user, realm, pw) in &users {
            let login = if *realm == REALM {
                user.to_string()
            } else {
                format!("{user}@{realm}")
            };
            assert_authenticated(pf.auth(mech, &login, pw));
        }
        assert_refused(pf.auth(mech, "alice", "alice-secret!"));
    }
}

crate::tests!(
    testsaslauthd_against_our_saslauthd_socket,
    postfix_with_dovecot_sasl_on_our_socket,
    postfix_rip_feeds_the_failure_limit,
    postfix_says_secured_after_starttls_and_plaintext_waits_for_it,
    postfix_with_cyrus_saslauthd_on_our_socket,
    stale_socket_replaced_live_one_refused_sockets_removed_on_sigterm,
    hung_and_garbage_clients_do_not_block_others,
    many_concurrent_clients,
    failure_limit_by_rip_with_exceptions_over_the_dovecot_socket,
    client_certificate_requirement_through_the_daemon,
    out_of_descriptors_the_queued_clients_are_served_once_some_close,
    postfix_moves_from_cyrus_sasldb_to_our_socket_without_a_password_reset,
);
