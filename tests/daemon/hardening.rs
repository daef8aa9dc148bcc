//! Start-up of the real `smtpd-auth` as root, as a mail admin runs it:
//! auth sockets in a directory others can write, self-signed certificates
//! made by instances starting together, root given up before anyone is
//! served, IPv6 clients limited per network.
use crate::common::daemon::free_port;
use crate::common::*;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SMTPD_AUTH: &str = env!("CARGO_BIN_EXE_smtpd-auth");
/// Longest a start-up may take before the test gives up on it.
const START_WAIT: Duration = Duration::from_secs(20);

/// A daemon killed when the test is done with it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Start with the scratch store (realm example.org) and `args`; its
    /// log (stderr) goes to `log`.
    fn spawn(s: &Scratch, log: &Path, args: &[String]) -> Daemon {
        Daemon::spawn_cmd(s.cmd(SMTPD_AUTH), s, log, args)
    }

    fn spawn_cmd(mut cmd: Command, s: &Scratch, log: &Path, args: &[String]) -> Daemon {
        // A scratch state directory unless the test names one (a later -o
        // wins): never the machine's /var/lib/smtpd-auth.
        let state = s.path("default-state");
        cmd.arg("-o")
            .arg(format!("sasldb_path={}", s.db().display()))
            .arg("-o")
            .arg(format!("smtpd_auth_state_dir={}", state.display()))
            .args(["-o", "myhostname=mx.example.org"])
            .args(["-o", "smtpd_sasl_local_domain=example.org"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"));
        Daemon {
            child: cmd.spawn().expect("smtpd-auth"),
            log: log.to_path_buf(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log shows `needle` (Ok) or the daemon exits (Err,
    /// with its log).
    fn wait_for(&mut self, needle: &str) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("exited ({st}): {}", self.log_text()));
            }
            assert!(
                start.elapsed() < START_WAIT,
                "no {needle:?} in: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn o(kv: impl std::fmt::Display) -> [String; 2] {
    ["-o".to_string(), kv.to_string()]
}

/// Item: the auth socket's mode and owner are set without following a
/// path others can change. A racer keeps watching the socket path and, the
/// moment a socket appears, records its mode and owner and swaps a symlink
/// to a sentinel in. Root must never chmod the sentinel, and the socket
/// must never be seen with any but its final mode and owner.
fn auth_socket_mode_is_never_set_through_a_swapped_symlink() {
    need_root();
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let dir = s.path("private");
    std::fs::create_dir(&dir).unwrap();
    // Writable by others, as Postfix's private/ is by postfix.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sentinel = s.path("sentinel");
    std::fs::write(&sentinel, "keep my mode").unwrap();
    std::fs::set_permissions(&sentinel, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = dir.join("auth");
    let (nobody, nogroup) = (uid_of("nobody"), gid_of("nogroup"));
    let args: Vec<String> = [
        o(format!("dovecot_auth_socket={}", sock.display())),
        o("dovecot_auth_socket_owner=nobody"),
        o("dovecot_auth_socket_group=nogroup"),
        o("dovecot_auth_socket_mode=0660"),
    ]
    .concat();
    let mut seen = Vec::new();
    for round in 0..40 {
        let _ = std::fs::remove_file(&sock);
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (stop, sock, sentinel) = (Arc::clone(&stop), sock.clone(), sentinel.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&sock)
                        && m.file_type().is_socket()
                    {
                        let _ = std::fs::remove_file(&sock);
                        let _ = std::os::unix::fs::symlink(&sentinel, &sock);
                        return Some((m.mode() & 0o7777, m.uid(), m.gid()));
                    }
                }
                None
            })
        };
        let log = s.path(&format!("round{round}.log"));
        let mut d = Daemon::spawn(&s, &log, &args);
        let started = d.wait_for("dovecot auth socket");
        stop.store(true, Ordering::Relaxed);
        let observed = racer.join().unwrap();
        drop(d);
        started.unwrap_or_else(|e| panic!("round {round}: {e}"));
        let m = std::fs::metadata(&sentinel).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o600, 0, 0),
            "round {round}: the sentinel behind the symlink was changed"
        );
        seen.extend(observed);
    }
    // Checked after every round has had its chance at the sentinel.
    assert!(!seen.is_empty(), "the racer never saw a socket");
    for o in &seen {
        assert_eq!(
            *o,
            (0o660, nobody, nogroup),
            "the socket was visible with a mode or owner not yet set: {seen:?}"
        );
    }
    // Undisturbed, the socket is in place with its mode and serves.
    let _ = std::fs::remove_file(&sock);
    let mut d = Daemon::spawn(&s, &s.path("last.log"), &args);
    d.wait_for("dovecot auth socket").unwrap();
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid()),
        (0o660, nobody, nogroup)
    );
    assert!(
        Dovecot::connect(&sock)
            .plain(1, "192.0.2.1", "alice", "alice-pw")
            .starts_with("OK\t1\t")
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "auth")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The public key of a PEM certificate or private key, as openssl prints it.
fn public_key(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg("-in")
        .arg(file)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_pair_matches(tls: &Path) {
    let cert = public_key(&["x509", "-noout", "-pubkey"], &tls.join("cert.pem"));
    let key = public_key(&["pkey", "-pubout"], &tls.join("key.pem"));
    assert_eq!(
        cert,
        key,
        "{}: certificate and key do not match",
        tls.display()
    );
    let mode = std::fs::metadata(tls.join("key.pem")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "key mode");
}

/// Item: instances starting together on one fresh state directory leave
/// one matching certificate and key, and every later start succeeds.
fn instances_starting_together_make_one_matching_certificate() {
    need("openssl", "openssl");
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let start = |state: &Path, log: &Path| {
        Daemon::spawn(
            &s,
            log,
            &[
                o(format!("smtpd_auth_state_dir={}", state.display())),
                o("mail_owner=postfix"),
                ["--listen".into(), "127.0.0.1:0".into()],
            ]
            .concat(),
        )
    };
    for round in 0..6 {
        let state = s.path(&format!("state{round}"));
        let mut many: Vec<Daemon> = (0..8)
            .map(|i| start(&state, &s.path(&format!("r{round}-{i}.log"))))
            .collect();
        for d in &mut many {
            // Whether each of these starts is not the point: the files are.
            let _ = d.wait_for("SMTP listener on");
        }
        drop(many);
        assert_pair_matches(&state.join("tls"));
        let mut later = start(&state, &s.path(&format!("r{round}-later.log")));
        later
            .wait_for("SMTP listener on")
            .unwrap_or_else(|e| panic!("round {round}: a later start failed: {e}"));
        assert!(!later.log_text().contains("making a new one"));
    }
}

/// A certificate and key that do not match (as the race used to leave
/// them) are replaced at the next start instead of failing every start.
fn mismatched_self_signed_pair_is_made_anew() {
    need("openssl", "openssl");
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let state = s.path("state");
    let tls = state.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    for (name, out) in [("a", "cert.pem"), ("b", "key.pem")] {
        let keyout = s.path(&format!("{name}.key"));
        let certout = s.path(&format!("{name}.crt"));
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=mx.example.org", "-keyout"])
            .arg(&keyout)
            .arg("-out")
            .arg(&certout)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success());
        let from = if out == "cert.pem" { certout } else { keyout };
        std::fs::copy(from, tls.join(out)).unwrap();
    }
    let mut d = Daemon::spawn(
        &s,
        &s.path("log"),
        &[
            o(format!("smtpd_auth_state_dir={}", state.display())),
            ["--listen".into(), "127.0.0.1:0".into()],
        ]
        .concat(),
    );
    d.wait_for("SMTP listener on")
        .expect("starts despite the mismatched pair");
    let log = d.log_text();
    assert!(
        log.contains("warning: self-signed certificate in") && log.contains("making a new one"),
        "{log}"
    );
    assert_pair_matches(&tls);
}

/// Item: as Postfix, a privileged mail_owner is refused, before anything
/// is bound.
fn mail_owner_root_is_refused() {
    need_root();
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let sock = s.path("auth");
    for (owner, why) in [
        (
            "root",
            "smtpd-auth: fatal: -o: parameter mail_owner: user root has privileged user ID",
        ),
        (
            "no-such-user-here",
            "parameter mail_owner: unknown user name value",
        ),
    ] {
        let mut d = Daemon::spawn(
            &s,
            &s.path("log"),
            &[
                o(format!("mail_owner={owner}")),
                o(format!("dovecot_auth_socket={}", sock.display())),
            ]
            .concat(),
        );
        let log = d.wait_for("auth socket").expect_err("must not start");
        assert!(log.contains("exit status: 1") && log.contains(why), "{log}");
        assert!(!sock.exists(), "nothing is bound");
    }
}

/// The user ID of every thread of `pid` (real, effective, saved, fs).
fn thread_uids(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_string)
        })
        .collect()
}

/// Item: no client is served, neither on the SMTP listener nor on the
/// auth socket, before root is given up. strace holds the daemon in its
/// setuid call for two seconds; clients knock all the while, and whenever
/// one gets a greeting, every thread of the daemon must already be
/// unprivileged.
fn no_client_is_served_before_root_is_given_up() {
    need("strace", "strace");
    need_root();
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let port = free_port();
    let sock = s.path("auth");
    let mut cmd = Command::new("strace");
    cmd.env("SASL_CONF_PATH", s.conf_dir())
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=setuid"])
        .args(["-e", "inject=setuid:delay_enter=2000000", SMTPD_AUTH]);
    let args: Vec<String> = [
        o("mail_owner=postfix"),
        o("smtpd_tls_security_level=none"),
        o(format!("dovecot_auth_socket={}", sock.display())),
        ["--listen".into(), format!("127.0.0.1:{port}")],
    ]
    .concat();
    let mut d = Daemon::spawn_cmd(cmd, &s, &s.path("log"), &args);
    let strace_pid = d.child.id();
    let postfix = uid_of("postfix").to_string();
    let unprivileged = |pid: u32| {
        let uids = thread_uids(pid);
        !uids.is_empty()
            && uids
                .iter()
                .all(|l| l.split_whitespace().skip(1).all(|u| u == postfix))
    };
    let daemon_pid = || -> Option<u32> {
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let start = Instant::now();
    let (mut smtp_served, mut socket_served) = (false, false);
    while !(smtp_served && socket_served) {
        assert!(
            start.elapsed() < START_WAIT,
            "not served: smtp {smtp_served}, socket {socket_served}; {}",
            d.log_text()
        );
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("strace/smtpd-auth exited ({st}): {}", d.log_text());
        }
        if !smtp_served && let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut greeting = [0u8; 3];
            if c.read_exact(&mut greeting).is_ok() {
                let pid = daemon_pid().expect("daemon pid");
                assert!(
                    unprivileged(pid),
                    "SMTP greeting {:?} while {:?}",
                    String::from_utf8_lossy(&greeting),
                    thread_uids(pid)
                );
                smtp_served = true;
            }
        }
        if !socket_served && let Ok(c) = std::os::unix::net::UnixStream::connect(&sock) {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut line = String::new();
            if BufReader::new(&c).read_line(&mut line).is_ok() && line.starts_with("VERSION") {
                let pid = daemon_pid().expect("daemon pid");
                assert!(
                    unprivileged(pid),
                    "auth socket handshake while {:?}",
                    thread_uids(pid)
                );
                socket_served = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "setuid was not held up: strace's delay did not apply"
    );
}

/// `smtpd_client_ipv6_prefix_length` is checked.
fn ipv6_prefix_length_is_validated() {
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    for bad in ["129", "-1", "x"] {
        let out = run_cmd(
            s.cmd(SMTPD_AUTH)
                .arg("-o")
                .arg(format!("sasldb_path={}", s.db().display()))
                .arg("-o")
                .arg(format!(
                    "smtpd_auth_state_dir={}",
                    s.path("state").display()
                ))
                .arg("-o")
                .arg(format!("smtpd_client_ipv6_prefix_length={bad}")),
            None,
        );
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            stderr(&out).contains("-o: parameter smtpd_client_ipv6_prefix_length: "),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

/// Run a Python client inside the daemon's network namespace: open
/// connections from each source address in order, keep them open, and
/// print the first reply line each got.
fn connect_from(pid: u32, port: u16, sources: &[&str]) -> Vec<String> {
    let script = r#"
import socket, sys
port = int(sys.argv[1])
keep = []
for src in sys.argv[2:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(15)
    s.connect(("2001:db8:1::1", port))
    keep.append(s)
    f = s.makefile("rb")
    print(f.readline().decode().strip(), flush=True)
"#;
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["python3", "-c", script, &port.to_string()])
        .args(sources)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Item: IPv6 clients count per /64 for the connection limit (real
/// addresses in a network namespace of the test's own), and per address
/// with `smtpd_client_ipv6_prefix_length = 128`.
fn ipv6_clients_are_limited_per_network() {
    need("nsenter", "util-linux");
    need("unshare", "util-linux");
    need("ip", "iproute2");
    need_root();
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let addrs = [
        "2001:db8:1::1",
        "2001:db8:1::a",
        "2001:db8:1::b",
        "2001:db8:1::c",
        "2001:db8:2::a",
    ];
    let mut setup = String::from("ip link set lo up");
    for a in addrs {
        setup.push_str(&format!(" && ip -6 addr add {a}/128 dev lo nodad"));
    }
    setup.push_str(" && exec \"$0\" \"$@\"");
    for (prefix, third) in [("64", "421 4.7.0"), ("128", "220 ")] {
        let mut cmd = Command::new("unshare");
        cmd.env("SASL_CONF_PATH", s.conf_dir())
            .args(["-n", "sh", "-c", &setup, SMTPD_AUTH]);
        let log = s.path(&format!("log{prefix}"));
        let mut d = Daemon::spawn_cmd(
            cmd,
            &s,
            &log,
            &[
                o("mail_owner=postfix"),
                o("smtpd_tls_security_level=none"),
                o("smtpd_client_connection_count_limit=2"),
                o(format!("smtpd_client_ipv6_prefix_length={prefix}")),
                ["--listen".into(), "[2001:db8:1::1]:2525".into()],
            ]
            .concat(),
        );
        d.wait_for("SMTP listener on")
            .unwrap_or_else(|e| panic!("prefix {prefix}: {e}"));
        let replies = connect_from(
            d.child.id(),
            2525,
            &[
                "2001:db8:1::a",
                "2001:db8:1::b",
                "2001:db8:1::c",
                "2001:db8:2::a",
            ],
        );
        assert_eq!(replies.len(), 4, "{replies:?}");
        assert!(replies[0].starts_with("220 "), "{replies:?}");
        assert!(replies[1].starts_with("220 "), "{replies:?}");
        assert!(
            replies[2].starts_with(third),
            "prefix {prefix}: third client of 2001:db8:1::/64: {replies:?}"
        );
        assert!(replies[3].starts_with("220 "), "other /64: {replies:?}");
    }
}

/// Root is given up before anyone is served, so on SIGHUP the daemon can
/// no longer read root's key files: the configuration is still read again
/// and the certificate in use is kept (with a warning), STARTTLS works.
fn sighup_after_root_is_given_up_keeps_tls() {
    need("python3", "python3");
    need_root();
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let port = free_port();
    let mut d = Daemon::spawn(
        &s,
        &s.path("log"),
        &[
            o(format!(
                "smtpd_auth_state_dir={}",
                s.path("state").display()
            )),
            o("mail_owner=postfix"),
            ["--listen".into(), format!("127.0.0.1:{port}")],
        ]
        .concat(),
    );
    d.wait_for("SMTP listener on").unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    d.wait_for("reload: configuration read again").unwrap();
    assert!(
        d.log_text().contains("warning: TLS files not read again"),
        "{}",
        d.log_text()
    );
    let out = Command::new("python3")
        .args([
            "-c",
            "import smtplib,ssl,sys; s=smtplib.SMTP('127.0.0.1',int(sys.argv[1]),timeout=15); \
             print(s.starttls(context=ssl._create_unverified_context())[0]); s.quit()",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "220",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

crate::tests!(
    auth_socket_mode_is_never_set_through_a_swapped_symlink,
    instances_starting_together_make_one_matching_certificate,
    mismatched_self_signed_pair_is_made_anew,
    mail_owner_root_is_refused,
    no_client_is_served_before_root_is_given_up,
    ipv6_prefix_length_is_validated,
    ipv6_clients_are_limited_per_network,
    sighup_after_root_is_given_up_keeps_tls,
);
