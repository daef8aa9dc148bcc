//! The shipped fail2ban filter (dist/fail2ban) against real smtpd-auth log
//! lines, checked with Debian's `fail2ban-regex`: it matches every failed
//! AUTH and no successful one; and with a `postfix-...` syslog_name,
//! Debian's stock `postfix[mode=auth]` filter matches the failures too.
use crate::common::daemon::{Process, SMTPD_AUTH, free_port, wait_port};
use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Run smtpd-auth, make `good` successful and `bad` failed logins per
/// mechanism with swaks, and return the log file.
fn produce_log(s: &Scratch, syslog_name: &str, good: usize, bad: usize) -> PathBuf {
    // Before the daemon starts: a skip on the way would leave it running.
    need("swaks", "swaks");
    s.users(&[("alice", "alice-pw")]);
    let port = free_port();
    let log = s.path(format!("{syslog_name}.log").as_str());
    let mut child = Process::spawn(
        Command::new(SMTPD_AUTH)
            .env("SASL_CONF_PATH", s.conf_dir())
            .arg("-o")
            .arg(format!(
                "smtpd_auth_state_dir={}",
                s.path("state").display()
            ))
            .args([
                "-o",
                "myhostname=mx.example.org",
                "-o",
                "smtpd_sasl_local_domain=example.org",
            ])
            .args([
                "-o",
                "mydestination=example.org",
                "-o",
                "smtpd_tls_security_level=none",
                "-o",
                "mail_owner=postfix",
            ])
            .arg("-o")
            .arg(format!("syslog_name={syslog_name}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}")),
        log.clone(),
    );
    wait_port(port);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        for (n, pw) in [(good, "alice-pw"), (bad, "wrong")] {
            for _ in 0..n {
                let o = Command::new("swaks")
                    .args([
                        "--server",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                        "--quit-after",
                        "AUTH",
                    ])
                    .args([
                        "--auth",
                        mech,
                        "--auth-user",
                        "alice",
                        "--auth-password",
                        pw,
                    ])
                    .output()
                    .expect(
                        "swaks (apt-get install swaks libauthen-sasl-perl libdigest-hmac-perl)",
                    );
                assert_eq!(
                    o.status.success(),
                    pw == "alice-pw",
                    "{}",
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
    }
    // SIGKILL: no shutdown line joins the log under test.
    child.kill();
    log
}

/// fail2ban-regex's "matched" count.
fn matched(log: &Path, filter: &str) -> usize {
    need("fail2ban-regex", "fail2ban");
    let o = Command::new("fail2ban-regex")
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex (apt-get install fail2ban)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .unwrap_or_else(|| panic!("no summary: {out}"));
    // "Lines: 12 lines, 0 ignored, 6 matched, 6 missed"
    line.split(',')
        .find(|p| p.trim().ends_with("matched"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// Our filter beside a copy of fail2ban's common.conf, which it includes.
fn our_filter(s: &Scratch) -> String {
    let dir = s.path("filter.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        dir.join("common.conf"),
    )
    .expect("/etc/fail2ban/filter.d/common.conf (apt-get install fail2ban)");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/fail2ban/filter.d/smtpd-auth.conf");
    std::fs::copy(&src, dir.join("smtpd-auth.conf")).unwrap();
    dir.join("smtpd-auth.conf").display().to_string()
}

fn shipped_filter_matches_failures_only() {
    let s = Scratch::new();
    let log = produce_log(&s, "smtpd-auth", 2, 3);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("authentication failed").count(), 9, "{text}");
    assert_eq!(matched(&log, &our_filter(&s)), 9);
    // A log with successes only matches nothing.
    let s2 = Scratch::new();
    let ok_only = produce_log(&s2, "smtpd-auth", 2, 0);
    assert_eq!(matched(&ok_only, &our_filter(&s2)), 0);
}

fn debian_postfix_filter_matches_with_a_postfix_syslog_name() {
    let s = Scratch::new();
    let log = produce_log(&s, "postfix-submission", 1, 2);
    assert_eq!(matched(&log, "postfix[mode=auth]"), 6);
    // And not with our default name (Postfix's filter wants postfix*/...).
    let s2 = Scratch::new();
    let log2 = produce_log(&s2, "smtpd-auth", 0, 1);
    assert_eq!(matched(&log2, "postfix[mode=auth]"), 0);
    assert_eq!(matched(&log2, &our_filter(&s2)), 3);
}

/// The Dovecot auth socket's failure lines (smtpd-auth/auth, Postfix's
/// client address from rip=) are matched too, one per failure, and name
/// the address fail2ban must ban, not the socket's peer.
fn shipped_filter_matches_auth_socket_failures() {
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let sock = s.path("auth");
    let log = s.path("auth.log");
    let mut child = Process::spawn(
        Command::new(SMTPD_AUTH)
            .env("SASL_CONF_PATH", s.conf_dir())
            .arg("-o")
            .arg(format!(
                "smtpd_auth_state_dir={}",
                s.path("state").display()
            ))
            .args([
                "-o",
                "myhostname=mx.example.org",
                "-o",
                "mail_owner=postfix",
            ])
            .args(["-o", "smtpd_sasl_local_domain=example.org"])
            .arg("-o")
            .arg(format!("dovecot_auth_socket={}", sock.display())),
        log.clone(),
    );
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Dovecot::connect(&sock);
    let mut id = 0;
    for (pw, ip, n) in [("alice-pw", "192.0.2.1", 2), ("wrong", "198.51.100.7", 3)] {
        for _ in 0..n {
            id += 1;
            let reply = c.plain(id, ip, "alice", pw);
            assert!(
                reply.starts_with(if pw == "wrong" { "FAIL" } else { "OK" }),
                "{reply}"
            );
        }
    }
    let start = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap()
        .matches("authentication failed")
        .count()
        < 3
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no shutdown line joins the log under test.
    child.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("smtpd-auth/auth[").count(),
        text.lines().count(),
        "{text}"
    );
    assert_eq!(
        text.matches("warning: unknown[198.51.100.7]: SASL PLAIN authentication failed")
            .count(),
        3,
        "{text}"
    );
    assert_eq!(matched(&log, &our_filter(&s)), 3, "{text}");
}

crate::tests!(
    shipped_filter_matches_failures_only,
    debian_postfix_filter_matches_with_a_postfix_syslog_name,
    shipped_filter_matches_auth_socket_failures,
);
