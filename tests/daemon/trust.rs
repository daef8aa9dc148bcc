//! What a mail admin relies on when `smtpd-auth` faces the Internet,
//! through the real binary on loopback (the client is outside
//! `mynetworks`), with a capturing fake relayhost: no unauthenticated
//! relaying in any spelling of a route, unknown local users refused, the
//! recipient limit, a refusal to start with relaying open, sender
//! ownership whatever the spelling, and abandoned AUTH exchanges logged in
//! the format the shipped fail2ban filter reads.
use crate::common;
use crate::common::daemon::free_port;
use crate::common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SMTPD_AUTH: &str = env!("CARGO_BIN_EXE_smtpd-auth");
const WAIT: Duration = Duration::from_secs(15);

/// What the fake relayhost was handed: one entry per message, its RCPTs.
type Captured = Arc<Mutex<Vec<Vec<String>>>>;

/// A tiny SMTP sink on loopback that accepts everything and records the
/// recipients of every message it is given.
fn relayhost() -> (u16, Captured) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let captured: Captured = Arc::default();
    let sink = Arc::clone(&captured);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve_sink(conn, &sink));
        }
    });
    (port, captured)
}

fn serve_sink(conn: TcpStream, sink: &Captured) {
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut rcpts = Vec::new();
    let _ = w.write_all(b"220 sink ESMTP\r\n");
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("RCPT") {
            rcpts.push(line.trim_end().to_string());
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            let _ = w.write_all(b"354 go\r\n");
            let mut body = String::new();
            while r.read_line(&mut body).unwrap_or(0) > 0 && !body.ends_with("\r\n.\r\n") {}
            sink.lock().unwrap().push(std::mem::take(&mut rcpts));
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = w.write_all(answer);
        line.clear();
    }
}

struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
    relayed: Captured,
    _s: Scratch,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Users alice and bob of example.org, and Carol of realm Example.ORG
/// (stored in mixed case); every password is "pw".
fn scratch_with_users() -> Scratch {
    let s = Scratch::new();
    s.users(&[("alice", "pw"), ("bob", "pw")]);
    let db = s.db();
    let o = s.run(
        SASLPASSWD,
        &[
            "-p",
            "-c",
            "-u",
            "Example.ORG",
            "-f",
            db.to_str().unwrap(),
            "Carol",
        ],
        Some(b"pw"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    s
}

/// The configuration every test starts from; `extra` -o pairs override.
fn args(s: &Scratch, relay_port: u16, port: u16, extra: &[&str]) -> Vec<String> {
    common::open_to_mail_owner(s, &s.path("mail"));
    let mut a: Vec<String> = [
        "myhostname=mx.example.org",
        "smtpd_sasl_local_domain=example.org",
        "mydestination=example.org, localhost",
        "mynetworks=192.0.2.0/24",
        "smtpd_tls_security_level=none",
        "mail_owner=postfix",
        "smtpd_hard_error_limit=1000",
        "smtpd_error_sleep_time=0s",
    ]
    .iter()
    .flat_map(|kv| ["-o".to_string(), kv.to_string()])
    .collect();
    a.extend(["-o".into(), format!("relayhost=[127.0.0.1]:{relay_port}")]);
    a.extend([
        "-o".into(),
        format!("smtpd_auth_state_dir={}", s.path("state").display()),
    ]);
    for kv in extra {
        a.extend(["-o".to_string(), kv.to_string()]);
    }
    a.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    a
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        let s = scratch_with_users();
        let (relay_port, relayed) = relayhost();
        let port = free_port();
        let log = s.path("smtpd.log");
        let child = s
            .cmd(SMTPD_AUTH)
            .args(args(&s, relay_port, port, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("smtpd-auth");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < WAIT, "port {port} never opened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            port,
            log,
            relayed,
            _s: s,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Messages the relayhost was handed.
    fn relayed(&self) -> Vec<Vec<String>> {
        self.relayed.lock().unwrap().clone()
    }

    /// Wait until the log holds `n` lines containing `what`.
    fn wait_log(&self, what: &str, n: usize) -> String {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if text.matches(what).count() >= n {
                return text;
            }
            assert!(
                started.elapsed() < WAIT,
                "{n} x {what:?} never logged:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One SMTP client connection, a command at a time.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        c
    }

    /// The last line of the next reply ("" once the server closed).
    fn reply(&mut self) -> String {
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return String::new();
            }
            if line.get(3) != Some(&b'-') {
                return String::from_utf8_lossy(&line).trim_end().to_string();
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> String {
        self.w.write_all(bytes).unwrap();
        self.w.write_all(b"\r\n").unwrap();
        self.reply()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(line.as_bytes())
    }

    /// EHLO and MAIL FROM, both accepted.
    fn transaction(&mut self, from: &str) {
        assert!(self.cmd("EHLO client.test").starts_with("250"));
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "{r}");
    }

    /// DATA with a short message; the final reply.
    fn data(&mut self) -> String {
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "{r}");
        self.cmd("Subject: t\r\n\r\nhello\r\n.")
    }
}

/// Recipients (the inside of RCPT TO:<...>, as bytes) that would reach
/// outside.example through a relayhost with Postfix's defaults, or are
/// malformed attempts at it.
fn relay_battery() -> Vec<Vec<u8>> {
    let text: &[&str] = &[
        "victim%outside.example@localhost",
        "outside.example!victim@localhost",
        "\"victim@outside.example\"@example.org",
        "victim%outside.example@example.org",
        "outside.example!victim@example.org",
        "\"victim%outside.example\"@example.org",
        "\"outside.example!victim\"@example.org",
        "\"victim\\@outside.example\"@example.org",
        "\"victim\\%outside.example\"@example.org",
        "\"outside.example\\!victim\"@localhost",
        "\"victim@outside.example\"@localhost",
        "\"\\\"victim@outside.example\\\"\"@localhost",
        "\"\"victim@outside.example\"\"@localhost",
        "\" victim@outside.example\"@localhost",
        "VICTIM%OUTSIDE.EXAMPLE@LOCALHOST",
        "victim%outside.example@LocalHost",
        "Victim%Outside.Example@Example.ORG",
        "victim%outside.example@localhost.",
        "victim%outside.example@example.org.",
        "victim%outside.example@localhost..",
        "victim%outside.example@.localhost",
        "victim%outside.example@[127.0.0.1]",
        "victim@[127.0.0.1]",
        "victim%outside.example@[IPv6:::1]",
        "victim@[IPv6:::1]",
        "victim@[192.0.2.1]",
        "victim%[192.0.2.1]@localhost",
        "@localhost:victim@outside.example",
        "@localhost,@example.org:victim@outside.example",
        "@localhost:victim%outside.example@localhost",
        "@outside.example:victim%outside.example@example.org",
        "victim@outside.example",
        "victim@outside.example.",
        "victim@OUTSIDE.EXAMPLE",
        "victim%@localhost",
        "victim%@example.org",
        "%outside.example@localhost",
        "victim%outside.example%@localhost",
        "victim%outside.example%localhost@localhost",
        "outside.example!victim%localhost@localhost",
        "outside.example!@localhost",
        "!victim@localhost",
        "victim\\@outside.example@localhost",
        "user@localhost@outside.example",
        "user@outside.example@localhost",
        "victim@outside.example%localhost",
        "<victim@outside.example>@localhost",
        "victim(comment)@localhost",
        "outside.example!victim",
        "victim%outside.example",
        "postmaster%outside.example@localhost",
        "outside.example!postmaster@example.org",
        "\"postmaster@outside.example\"@example.org",
        "alice%outside.example@example.org",
        "\"alice@outside.example\"@example.org",
        "alice@outside.example",
        "victim%outside.example@mx.example.org",
    ];
    let mut forms: Vec<Vec<u8>> = text.iter().map(|t| t.as_bytes().to_vec()).collect();
    // 8-bit bytes: UTF-8 and raw Latin-1.
    forms.push("v\u{ef}ctim%outside.example@localhost".as_bytes().to_vec());
    forms.push(b"victim%outside.example@local\xe9host".to_vec());
    forms.push(b"\"victim\xa0@outside.example\"@localhost".to_vec());
    forms
}

fn no_spelling_of_a_route_relays_for_a_stranger() {
    let d = Daemon::start(&[]);
    let forms = relay_battery();
    assert!(forms.len() >= 50, "{}", forms.len());
    let mut accepted = Vec::new();
    for form in &forms {
        let mut c = d.client();
        c.transaction("someone@outside.example");
        let mut line = b"RCPT TO:<".to_vec();
        line.extend_from_slice(form);
        line.push(b'>');
        let r = c.send(&line);
        if !r.starts_with('4') && !r.starts_with('5') {
            let end = c.data();
            accepted.push(format!("{} -> {r} / {end}", String::from_utf8_lossy(form)));
        }
        let _ = c.cmd("QUIT");
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    // The relayhost is reachable: an authenticated client does relay.
    let mut c = d.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("AUTH PLAIN AGFsaWNlAHB3").starts_with("235"));
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<victim@outside.example>").starts_with("250"));
    assert!(c.data().starts_with("250"));
    let relayed = d.relayed();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0], ["RCPT TO:<victim@outside.example>"]);
    assert!(
        d.log_text()
            .contains("Relay access denied; from=<someone@outside.example>"),
        "{}",
        d.log_text()
    );
}

fn unknown_local_users_are_refused_unless_the_map_is_empty() {
    let d = Daemon::start(&["smtpd_recipient_limit=3"]);
    let mut c = d.client();
    c.transaction("someone@outside.example");
    assert_eq!(
        c.cmd("RCPT TO:<nobody@example.org>"),
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table"
    );
    assert!(c.cmd("RCPT TO:<nobody@localhost>").starts_with("550 5.1.1"));
    assert!(c.cmd("RCPT TO:<Bob@Example.ORG>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<carol@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<PostMaster@localhost>").starts_with("250"));
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.org>"),
        "452 4.5.3 Error: too many recipients"
    );
    assert!(c.data().starts_with("250"));
    let relayed = d.relayed();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].len(), 3, "{relayed:?}");
    drop(d);
    let open = Daemon::start(&["local_recipient_maps="]);
    let mut c = open.client();
    c.transaction("someone@outside.example");
    assert!(c.cmd("RCPT TO:<nobody@example.org>").starts_with("250"));
}

fn an_open_relay_configuration_does_not_start() {
    let s = scratch_with_users();
    let run = |extra: &[&str]| {
        let port = free_port();
        let mut child = s
            .cmd(SMTPD_AUTH)
            .args(args(&s, free_port(), port, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A configuration that starts opens its port; one refused exits.
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (Some(status.code()), err);
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let _ = child.kill();
                let _ = child.wait();
                return (None, String::new());
            }
            assert!(started.elapsed() < WAIT, "neither started nor exited");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (code, err) =
        run(&["smtpd_relay_restrictions=permit_mynetworks, permit_sasl_authenticated"]);
    assert_eq!(code, Some(Some(1)), "{err}");
    assert!(
        err.contains("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination or reject"),
        "{err}"
    );
    let (code, err) = run(&["smtpd_relay_restrictions=permit, reject_unauth_destination"]);
    assert_eq!(code, Some(Some(1)), "{err}");
    // Closed in the recipient list instead: starts.
    let (code, err) = run(&[
        "smtpd_relay_restrictions=permit_mynetworks, permit_sasl_authenticated",
        "smtpd_recipient_restrictions=permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    ]);
    assert_eq!(code, None, "{err}");
}

fn owned_senders_need_their_owner_in_any_spelling() {
    let d = Daemon::start(&["smtpd_recipient_restrictions=reject_sender_login_mismatch"]);
    for from in [
        "alice@example.org",
        "\"alice\"@example.org",
        "Alice@example.org",
        "ALICE@EXAMPLE.ORG.",
        "\"al\\ice\"@example.org",
        "carol@example.org",
        "Carol@Example.ORG",
    ] {
        let mut c = d.client();
        c.transaction(from);
        let r = c.cmd("RCPT TO:<bob@example.org>");
        assert!(
            r.starts_with("553 5.7.1") && r.ends_with("Sender address rejected: not logged in"),
            "{from}: {r}"
        );
    }
    // Logged in as Carol (realm stored as Example.ORG): her address in any
    // case is hers; alice's is not.
    let mut c = d.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    // Logins are exact (Cyrus's rule): \0Carol@Example.ORG\0pw.
    assert!(
        c.cmd("AUTH PLAIN AENhcm9sQEV4YW1wbGUuT1JHAHB3")
            .starts_with("235")
    );
    assert!(c.cmd("MAIL FROM:<carol@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.org>").starts_with("250"));
    assert!(c.cmd("RSET").starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<\"alice\"@example.org>")
            .starts_with("250")
    );
    let r = c.cmd("RCPT TO:<bob@example.org>");
    assert!(r.contains("not owned by user Carol@Example.ORG"), "{r}");
}

/// fail2ban-regex with the shipped filter (beside fail2ban's common.conf,
/// which it includes) over `log`: the lines it matched.
fn fail2ban_matches(dir: &Path, log: &Path) -> Vec<String> {
    let filters = dir.join("f2b");
    std::fs::create_dir_all(&filters).unwrap();
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        filters.join("common.conf"),
    )
    .expect("fail2ban's common.conf (apt-get install fail2ban)");
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/fail2ban/filter.d/smtpd-auth.conf");
    let filter = filters.join("smtpd-auth.conf");
    std::fs::copy(ours, &filter).unwrap();
    let o = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(log)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    // The section "|- Matched line(s):", one "|  " line each, up to "`-".
    out.lines()
        .skip_while(|l| !l.contains("Matched line(s):"))
        .skip(1)
        .take_while(|l| l.starts_with("|  "))
        .map(str::to_string)
        .collect()
}

fn abandoned_auth_is_logged_for_fail2ban_and_counted() {
    need("fail2ban-regex", "fail2ban");
    let d = Daemon::start(&["smtpd_auth_failure_limit=3"]);
    // Cancelled after the server's challenge, across reconnects.
    for _ in 0..2 {
        let mut c = d.client();
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert!(c.cmd("AUTH LOGIN").starts_with("334"));
        assert_eq!(c.cmd("*"), "501 5.7.0 Authentication aborted");
    }
    // Dropped mid-exchange.
    {
        let mut c = d.client();
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert!(c.cmd("AUTH PLAIN").starts_with("334"));
    }
    let log = d.wait_log("connection lost during authentication", 1);
    assert_eq!(
        log.matches(
            "warning: unknown[127.0.0.1]: SASL LOGIN authentication failed: aborted by client"
        )
        .count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: connection lost during authentication"),
        "{log}"
    );
    // Three abandoned exchanges reach smtpd_auth_failure_limit.
    let mut c = d.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("AUTH LOGIN"),
        "454 4.7.0 Too many authentication failures; try again later"
    );
    let matched = fail2ban_matches(d._s.dir.path(), &d.log);
    assert_eq!(matched.len(), 3, "{matched:#?}\n{log}");
}

crate::tests!(
    no_spelling_of_a_route_relays_for_a_stranger,
    unknown_local_users_are_refused_unless_the_map_is_empty,
    an_open_relay_configuration_does_not_start,
    owned_senders_need_their_owner_in_any_spelling,
    abandoned_auth_is_logged_for_fail2ban_and_counted,
);
