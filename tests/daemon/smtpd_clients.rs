//! Real SMTP clients against the real `smtpd-auth` on loopback: swaks,
//! msmtp, gsasl (SCRAM and SCRAM -PLUS over TLS), curl and Python's
//! smtplib; every mechanism, right and wrong passwords, STARTTLS and
//! implicit TLS, Maildir delivery, forwarding to Postfix's smtp-sink and a
//! next hop that is down.
use crate::common::daemon::{Process, SMTPD_AUTH, free_port, wait_port};
use crate::common::*;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    p: Process,
    port: u16,
    tls_port: u16,
    cert: PathBuf,
    mail: PathBuf,
    s: Scratch,
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        let s = Scratch::new();
        s.users(&[("alice", "alice-pw"), ("bob", "bob pw")]);
        let cert = s.path("cert.pem");
        let key = s.path("key.pem");
        need("openssl", "openssl");
        let o = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=mx.example.org",
            ])
            .args(["-addext", "subjectAltName=DNS:mx.example.org,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(o.status.success());
        let (port, tls_port) = (free_port(), free_port());
        let mail = s.path("mail");
        let log = s.path("smtpd.log");
        open_to_mail_owner(&s, &mail);
        let mut cmd = Command::new(SMTPD_AUTH);
        cmd.env("SASL_CONF_PATH", s.conf_dir())
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
                "mynetworks=192.0.2.0/24",
            ])
            .arg("-o")
            .arg(format!("smtpd_tls_cert_file={}", cert.display()))
            .arg("-o")
            .arg(format!("smtpd_tls_key_file={}", key.display()))
            .arg("-o")
            .arg(format!("virtual_mailbox_base={}", mail.display()))
            // The spool (and any state) in the scratch dir, not /var/lib.
            .arg("-o")
            .arg(format!(
                "smtpd_auth_state_dir={}",
                s.path("state").display()
            ))
            .args(["-o", "mail_owner=postfix", "-o", "smtpd_tls_auth_only=no"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--listen-tls")
            .arg(format!("127.0.0.1:{tls_port}"))
            .args(extra);
        let p = Process::spawn(&mut cmd, log);
        wait_port(port);
        wait_port(tls_port);
        Daemon {
            p,
            port,
            tls_port,
            cert,
            mail,
            s,
        }
    }

    fn log_text(&self) -> String {
        self.p.log()
    }

    fn maildir_count(&self, user: &str) -> usize {
        std::fs::read_dir(self.mail.join("example.org").join(user).join("Maildir/new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn swaks(d: &Daemon, args: &[&str]) -> (bool, String) {
    swaks_port(d.port, args)
}

fn swaks_port(port: u16, args: &[&str]) -> (bool, String) {
    need("swaks", "swaks");
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--helo",
            "client.test",
        ])
        .args(args)
        .output()
        .expect("swaks (apt-get install swaks libauthen-sasl-perl libdigest-hmac-perl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn swaks_every_mechanism_with_and_without_tls() {
    let d = Daemon::start(&[]);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        for tls in [None, Some("--tls"), Some("--tls-on-connect")] {
            let mut args = vec![
                "--auth",
                mech,
                "--auth-user",
                "alice",
                "--auth-password",
                "alice-pw",
            ];
            args.extend(tls);
            let port = if tls == Some("--tls-on-connect") {
                d.tls_port
            } else {
                d.port
            };
            let (ok, out) = swaks_port(port, &args);
            assert!(ok && out.contains("235 2.7.0"), "{mech} {tls:?}: {out}");
            assert!(
                out.contains("250 2.0.0 Ok: queued as"),
                "{mech} {tls:?}: {out}"
            );
            let mut bad = args.clone();
            bad[5] = "wrong";
            let (ok, out) = swaks_port(port, &bad);
            assert!(
                !ok && out.contains("535 5.7.8"),
                "{mech} {tls:?} wrong password: {out}"
            );
        }
    }
    assert_eq!(d.maildir_count("bob"), 12);
    // The name as admins type it, realm included, for every mechanism.
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        let user = "alice@example.org";
        let args = [
            "--auth",
            mech,
            "--auth-user",
            user,
            "--auth-password",
            "alice-pw",
            "--quit-after",
            "AUTH",
        ];
        let (ok, out) = swaks_port(d.port, &args);
        assert!(ok && out.contains("235 2.7.0"), "{mech} {user}: {out}");
    }
    let log = d.log_text();
    assert!(
        log.contains("warning: unknown[127.0.0.1]: SASL PLAIN authentication failed"),
        "{log}"
    );
    // Every failure names the account tried, as Postfix's line does.
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        assert!(
            log.contains(&format!(
                "SASL {mech} authentication failed: authentication failure, sasl_username=alice@example.org"
            )),
            "{mech}: {log}"
        );
    }
    assert!(
        log.contains("sasl_method=CRAM-MD5, sasl_username=alice@example.org"),
        "{log}"
    );
    assert!(
        !log.contains("alice-pw") && !log.contains("wrong"),
        "secret in the log"
    );
}

fn relay_needs_auth() {
    let d = Daemon::start(&[]);
    // 127.0.0.1 is not in mynetworks here: no relay without AUTH.
    let (ok, out) = swaks(&d, &["--to", "victim@elsewhere.example"]);
    assert!(
        !ok && out.contains("554 5.7.1 <victim@elsewhere.example>: Relay access denied"),
        "{out}"
    );
    assert!(
        d.log_text()
            .contains("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1")
    );
    // Local recipients are accepted from anyone.
    let (ok, out) = swaks(&d, &[]);
    assert!(ok, "{out}");
}

fn gsasl_scram_and_scram_plus() {
    let d = Daemon::start(&[]);
    let port = d.port.to_string();
    let run = |mech: &str, pw: &str, tls: bool, extra: &[&str]| {
        need("gsasl", "gsasl");
        let mut c = Command::new("gsasl");
        c.args([
            "--smtp",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "-m",
            mech,
            "-a",
            "bob",
            "-p",
            pw,
        ]);
        if tls {
            c.arg("--starttls")
                .arg(format!("--x509-ca-file={}", d.cert.display()));
        } else {
            c.arg("--no-starttls");
        }
        let o = c
            .args(extra)
            .output()
            .expect("gsasl (apt-get install gsasl)");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    for (mech, tls, extra) in [
        ("SCRAM-SHA-1", false, &[][..]),
        ("SCRAM-SHA-256", false, &[]),
        ("SCRAM-SHA-256", true, &["--no-cb"]),
        ("SCRAM-SHA-1-PLUS", true, &[]),
        ("SCRAM-SHA-256-PLUS", true, &[]),
    ] {
        let (ok, out) = run(mech, "bob pw", tls, extra);
        assert!(ok && out.contains("235 2.7.0"), "{mech} tls={tls}: {out}");
        let (ok, out) = run(mech, "bob pwx", tls, extra);
        assert!(
            !ok && out.contains("535 5.7.8"),
            "{mech} tls={tls} wrong: {out}"
        );
    }
    // (Downgrade detection, flag `y` while -PLUS is offered, is covered by
    // the mechanism's unit tests: gsasl itself refuses to send it.)
    // -PLUS is not offered without TLS.
    let (ok, _) = run("SCRAM-SHA-256-PLUS", "bob pw", false, &[]);
    assert!(!ok);
}

fn msmtp_curl_and_smtplib_deliver() {
    let d = Daemon::start(&[]);
    let msg = d.s.path("msg.eml");
    std::fs::write(&msg, "Subject: t\r\n\r\nhello\r\n.leading dot\r\n").unwrap();
    need("msmtp", "msmtp");
    let o = Command::new("msmtp")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", d.port),
            "--auth=plain",
            "--user=alice",
        ])
        .args([
            "--passwordeval=echo alice-pw",
            "--tls=on",
            "--tls-starttls=on",
        ])
        .arg(format!("--tls-trust-file={}", d.cert.display()))
        .args(["--from=alice@example.org", "bob@example.org"])
        .stdin(std::fs::File::open(&msg).unwrap())
        .output()
        .expect("msmtp (apt-get install msmtp)");
    assert!(
        o.status.success(),
        "msmtp: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    need("curl", "curl");
    let o = Command::new("curl")
        .args([
            "-sS",
            &format!("smtp://127.0.0.1:{}", d.port),
            "--mail-from",
            "alice@example.org",
        ])
        .args([
            "--mail-rcpt",
            "bob@example.org",
            "--user",
            "alice:alice-pw",
            "--login-options",
            "AUTH=LOGIN",
        ])
        .arg("--upload-file")
        .arg(&msg)
        .output()
        .expect("curl (apt-get install curl)");
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = format!(
        "import smtplib\nfor m in ['CRAM-MD5','PLAIN','LOGIN']:\n    s=smtplib.SMTP('127.0.0.1',{})\n    s.ehlo(); s.user, s.password = 'alice', 'alice-pw'\n    code, _ = s.auth(m, getattr(s, 'auth_' + m.lower().replace('-', '_')))\n    assert code == 235, (m, code)\n    s.sendmail('alice@example.org', ['bob@example.org'], 'Subject: py\\r\\n\\r\\nx\\r\\n')\n    s.quit()\n",
        d.port
    );
    need("/usr/bin/python3", "python3");
    let o = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(d.maildir_count("bob"), 5);
    // Dot-unstuffing and the Received header with the authenticated user.
    let dir = d.mail.join("example.org/bob/Maildir/new");
    let any = std::fs::read_dir(&dir).unwrap().flatten().find(|e| {
        std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .contains("Subject: t")
    });
    let text = std::fs::read_to_string(any.expect("msmtp's message").path()).unwrap();
    assert!(text.starts_with("Received: from "), "{text}");
    assert!(
        text.contains("(Authenticated sender: alice@example.org)"),
        "{text}"
    );
    assert!(text.contains("\r\n.leading dot\r\n"), "{text}");
}

fn smtp_sink(dir: &Path, port: u16) -> Child {
    // It runs as the postfix user.
    need_root();
    std::fs::create_dir_all(dir).unwrap();
    need("smtp-sink", "postfix");
    let mut c = Command::new("smtp-sink")
        .arg("-u")
        .arg("postfix")
        .arg("-d")
        .arg(format!("{}/%Y%m%d%H%M%S.", dir.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smtp-sink (apt-get install postfix)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(_)) = c.try_wait() {
            let mut e = String::new();
            c.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("smtp-sink died: {e}");
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

fn forwarding_to_the_next_hop_and_next_hop_down() {
    let hop = free_port();
    let d = Daemon::start(&["-o", &format!("relayhost=[127.0.0.1]:{hop}")]);
    let dump = d.s.path("sink");
    // chmod so the sink, running as postfix, can write its dumps.
    std::fs::create_dir_all(&dump).unwrap();
    let _ = Command::new("chmod")
        .args(["-R", "a+rwx"])
        .arg(d.s.path(""))
        .status();
    let mut sink = smtp_sink(&dump, hop);
    let (ok, out) = swaks(
        &d,
        &[
            "--to",
            "far@elsewhere.example",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
        ],
    );
    assert!(ok && out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let _ = sink.kill();
    let _ = sink.wait();
    let dumped: Vec<_> = std::fs::read_dir(&dump).unwrap().flatten().collect();
    assert_eq!(dumped.len(), 1, "the next hop got the message");
    assert!(
        d.log_text()
            .contains(&format!("relay=127.0.0.1:{hop}, status=sent")),
        "{}",
        d.log_text()
    );
    // Next hop down: a temporary error, so the client keeps the message.
    let (ok, out) = swaks(
        &d,
        &[
            "--to",
            "far@elsewhere.example",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
        ],
    );
    assert!(!ok && out.contains("451 4.3.0"), "{out}");
}

fn bare_lf_and_oversize_lines_are_refused() {
    use std::io::Write;
    let d = Daemon::start(&[]);
    let talk = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let out = talk(b"EHLO x\nQUIT\r\n");
    assert!(
        out.contains("521 5.5.2 mx.example.org Error: bare <LF> received"),
        "{out}"
    );
    let mut long = b"EHLO ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 5000));
    long.extend_from_slice(b"\r\n");
    let out = talk(&long);
    assert!(out.contains("500 5.5.0 Error: line too long"), "{out}");
}

/// Connections `Daemon::start` makes itself: one readiness probe per port.
const START_PROBES: usize = 2;

/// Wait until every session so far has ended (connects and disconnects
/// balance in the log), the start-up probes included: a probe's connect
/// succeeds in the kernel's accept queue, before the daemon has logged or
/// counted it, so a balanced log alone can come too early.
fn settle(d: &Daemon) {
    let start = Instant::now();
    loop {
        let log = d.log_text();
        let opened = log.matches("connect from unknown").count()
            - log.matches("disconnect from unknown").count();
        // Every session ends with one "disconnect" line, logged once its
        // connection slot is free (a failed implicit-TLS handshake also
        // logs "lost connection": counting both ended sessions too early).
        let closed = log.matches("disconnect from unknown").count();
        if closed >= START_PROBES && opened <= closed {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sessions did not end: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw(port: u16, bytes: &[u8]) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn auth_only_after_tls_by_default_when_tls_is_available() {
    // The last -o wins: back to the default (unset).
    let d = Daemon::start(&["-o", "smtpd_tls_auth_only="]);
    let (ok, out) = swaks(
        &d,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
        ],
    );
    assert!(
        !ok && !out.contains("235"),
        "AUTH accepted without TLS: {out}"
    );
    let (ok, out) = swaks(
        &d,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
        ],
    );
    assert!(ok && out.contains("235 2.7.0"), "{out}");
    let out = raw(d.port, b"EHLO x\r\nAUTH PLAIN AGFsaWNlAGFsaWNlLXB3\r\n");
    assert!(
        out.contains("554 5.5.0 Error: SMTP protocol synchronization"),
        "{out}"
    );
    let out = raw(d.port, b"EHLO x\r\n");
    assert!(!out.contains("AUTH"), "AUTH advertised before TLS: {out}");
}

fn pipelining_violations_connection_and_auth_rate_limits() {
    let d = Daemon::start(&[
        "-o",
        "smtpd_client_connection_count_limit=2",
        "-o",
        "smtpd_client_auth_rate_limit=2",
    ]);
    // Let the start-up probes' sessions end: all connections from one
    // address count against the limit.
    settle(&d);
    // Commands pipelined after EHLO: refused, connection closed.
    let out = raw(d.port, b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n");
    assert!(
        out.contains("554 5.5.0 Error: SMTP protocol synchronization"),
        "{out}"
    );
    assert!(
        d.log_text()
            .contains("pipelining violation from unknown[127.0.0.1] after EHLO")
    );
    // Two open connections are the most one client gets.
    settle(&d);
    let greeted = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 3];
        (&s).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"220");
        s
    };
    let a = greeted();
    let b = greeted();
    let out = raw(d.port, b"");
    assert!(
        out.contains("421 4.7.0 mx.example.org Error: too many connections from 127.0.0.1"),
        "{out}\n{}",
        d.log_text()
    );
    drop((a, b));
    std::thread::sleep(Duration::from_millis(200));
    // AUTH commands per minute.
    let out = raw(d.port, b"EHLO x\r\n");
    assert!(
        out.contains("250 8BITMIME") || out.contains("250-"),
        "{out}"
    );
    let script = format!(
        "import smtplib\ns=smtplib.SMTP('127.0.0.1',{})\ns.ehlo()\ncodes=[]\nfor i in range(3):\n    c,_=s.docmd('AUTH','PLAIN AGFsaWNlAHdyb25n')\n    codes.append(c)\nprint(codes)\n",
        d.port
    );
    need("/usr/bin/python3", "python3");
    let o = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.trim(),
        "[535, 535, 450]",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sigterm_lets_a_session_finish_and_sighup_reloads() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start(&[]);
    // A session in the middle of DATA when SIGTERM arrives.
    let stream = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut expect = |r: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(&code[..3]),
            "expected {code}, got {line:?}"
        );
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut r, "220");
    for (cmd, code) in [
        ("EHLO x", "250"),
        ("MAIL FROM:<x@outside.example>", "250"),
        ("RCPT TO:<bob@example.org>", "250"),
        ("DATA", "354"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        expect(&mut r, code);
    }
    w.write_all(b"Subject: during shutdown\r\n\r\nbody\r\n")
        .unwrap();
    let pid = d.p.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer taken...
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", d.port))
            .map(|mut s| {
                let mut b = [0u8; 3];
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                s.read(&mut b).unwrap_or(0) == 0
            })
            .unwrap_or(true),
        "a new session was greeted after SIGTERM"
    );
    // ...but the message in progress is accepted and delivered.
    w.write_all(b".\r\n").unwrap();
    expect(&mut r, "250");
    assert_eq!(d.maildir_count("bob"), 1);
    w.write_all(b"QUIT\r\n").unwrap();
    expect(&mut r, "221");
    let start = Instant::now();
    let mut d = d;
    loop {
        if let Some(status) = d.p.exited() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not exit after the last session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.log_text().contains("stopping on SIGTERM"));

    // SIGHUP: the configuration file is read again.
    let s = Scratch::new();
    s.users(&[("carol", "pw")]);
    let cf = s.path("main.cf");
    let port = free_port();
    let write_cf = |extra: &str| {
        std::fs::write(
            &cf,
            format!(
                "myhostname = mx.example.org\nmydestination = example.org{extra}\nlocal_recipient_maps =\nmynetworks = 192.0.2.0/24\nsmtpd_tls_security_level = none\nmail_owner = postfix\nvirtual_mailbox_base = {}\n",
                s.path("mail").display()
            ),
        )
        .unwrap()
    };
    write_cf("");
    open_to_mail_owner(&s, &s.path("mail"));
    let log = s.path("log");
    let mut child = Command::new(SMTPD_AUTH)
        .env("SASL_CONF_PATH", s.conf_dir())
        .arg("-c")
        .arg(&cf)
        .arg("-o")
        .arg(format!(
            "smtpd_auth_state_dir={}",
            s.path("state").display()
        ))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_port(port);
    let (_, out) = swaks_port(port, &["--to", "dan@other.example"]);
    assert!(out.contains("554 5.7.1"), "{out}");
    write_cf(", other.example");
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reload: configuration read again")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = swaks_port(port, &["--to", "dan@other.example"]);
    assert!(ok, "{out}");
    // A broken file keeps the old configuration.
    std::fs::write(&cf, "no_such_parameter = 1\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reload failed")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload failure logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = swaks_port(port, &["--to", "dan@other.example"]);
    assert!(ok, "{out}");
    let _ = child.kill();
    let _ = child.wait();
}

fn drops_root_for_mail_owner() {
    // It starts as root and switches to the postfix user.
    need_root();
    // Scratch paths must be reachable by postfix for the Maildir.
    let d = Daemon::start(&["-o", "mail_owner=postfix"]);
    let _ = Command::new("chmod")
        .args(["755"])
        .arg(d.s.path(""))
        .status();
    std::fs::create_dir_all(&d.mail).unwrap();
    let _ = Command::new("chmod").args(["777"]).arg(&d.mail).status();
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.p.pid())).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    let postfix_uid = Command::new("id").args(["-u", "postfix"]).output().unwrap();
    let postfix_uid = String::from_utf8_lossy(&postfix_uid.stdout)
        .trim()
        .to_string();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == postfix_uid),
        "{uid_line} (postfix is {postfix_uid})"
    );
    assert!(d.log_text().contains("running as postfix"));
    // Still authenticates (the store was opened before the switch).
    let (ok, out) = swaks(
        &d,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
        ],
    );
    assert!(ok && out.contains("235"), "{out}");
}

fn self_signed_certificate_is_made_once_in_the_state_directory() {
    use std::os::unix::fs::PermissionsExt;
    // Before the daemons start: a skip on the way would leave them running.
    need("swaks", "swaks");
    let s = Scratch::new();
    s.users(&[("alice", "pw")]);
    let state = s.path("state");
    let start = |port: u16| {
        let c = Command::new(SMTPD_AUTH)
            .env("SASL_CONF_PATH", s.conf_dir())
            .args([
                "-o",
                "myhostname=mx.example.org",
                "-o",
                "mail_owner=postfix",
            ])
            .arg("-o")
            .arg(format!("smtpd_auth_state_dir={}", state.display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        c
    };
    let port = free_port();
    let mut c = start(port);
    let cert = state.join("tls/cert.pem");
    let first = std::fs::read(&cert).expect("certificate made");
    let key_mode = std::fs::metadata(state.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    // STARTTLS works with it, and AUTH is then offered (TLS-only by default).
    let (ok, out) = swaks_port(port, &["--tls", "--quit-after", "EHLO"]);
    assert!(ok && out.contains("250-AUTH"), "{out}");
    let _ = c.kill();
    let _ = c.wait();
    let port = free_port();
    let mut c = start(port);
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        first,
        "a restart kept the certificate"
    );
    let _ = c.kill();
    let _ = c.wait();
}

fn commands_pipelined_behind_starttls_are_never_run() {
    use std::io::Write;
    let d = Daemon::start(&[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The injected MAIL FROM rides in the same packet as STARTTLS (the
    // CVE-2011-0411 attack): it must not be answered in plaintext or run.
    s.write_all(b"EHLO x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(!out.contains("2.1.0"), "injected command answered: {out}");
    assert!(
        out.contains("554 5.5.0 Error: SMTP protocol synchronization"),
        "{out}"
    );
}

fn a_user_added_while_running_logs_in_without_a_restart() {
    let d = Daemon::start(&[]);
    let (ok, _) = swaks(
        &d,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol",
            "--auth-password",
            "carol-pw",
            "--quit-after",
            "AUTH",
        ],
    );
    assert!(!ok);
    let db = d.s.db();
    let o = d.s.run(
        SASLPASSWD,
        &[
            "-p",
            "-c",
            "-u",
            "example.org",
            "-f",
            db.to_str().unwrap(),
            "carol",
        ],
        Some(b"carol-pw"),
    );
    assert!(o.status.success());
    let (ok, out) = swaks(
        &d,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol",
            "--auth-password",
            "carol-pw",
            "--quit-after",
            "AUTH",
        ],
    );
    assert!(ok && out.contains("235"), "{out}");
    // And a deleted one stops at once.
    let o = d.s.run(
        SASLPASSWD,
        &[
            "-d",
            "-u",
            "example.org",
            "-f",
            db.to_str().unwrap(),
            "carol",
        ],
        None,
    );
    assert!(o.status.success());
    let (ok, _) = swaks(
        &d,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol",
            "--auth-password",
            "carol-pw",
            "--quit-after",
            "AUTH",
        ],
    );
    assert!(!ok);
}

fn a_session_has_a_total_time_limit() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start(&["-o", "smtpd_max_session_time=2s"]);
    let s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let start = Instant::now();
    let mut line = String::new();
    // Busy all the time (NOOP every 300 ms), yet cut off after ~2 s.
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if w.write_all(b"NOOP\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(start.elapsed() < Duration::from_secs(8), "never cut off");
    }
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(
        d.log_text().contains("session time limit exceeded"),
        "{}",
        d.log_text()
    );
}

fn bad_configuration_values_name_where_they_were_set() {
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    let cf = s.path("smtpd-auth.cf");
    std::fs::write(
        &cf,
        "# scratch\nmyhostname = mx.example.org\nsmtpd_timeout =\n    5x\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let o = s
            .cmd(SMTPD_AUTH)
            .arg("-c")
            .arg(&cf)
            .args(["-o", "smtpd_listen=127.0.0.1:0"])
            .arg("-o")
            .arg(format!(
                "smtpd_auth_state_dir={}",
                s.path("state").display()
            ))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: line 3: parameter smtpd_timeout: \"5x\": unit must be s, m, h or d",
            cf.display()
        )),
        "{err}"
    );
    // An -o value overrides the file and is named as such.
    let (code, err) = run(&[
        "-o",
        "smtpd_timeout=300s",
        "-o",
        "smtpd_tls_auth_only=maybe",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("-o: parameter smtpd_tls_auth_only: \"maybe\" is not yes or no"),
        "{err}"
    );
}

crate::tests!(
    swaks_every_mechanism_with_and_without_tls,
    relay_needs_auth,
    gsasl_scram_and_scram_plus,
    msmtp_curl_and_smtplib_deliver,
    forwarding_to_the_next_hop_and_next_hop_down,
    bare_lf_and_oversize_lines_are_refused,
    auth_only_after_tls_by_default_when_tls_is_available,
    pipelining_violations_connection_and_auth_rate_limits,
    sigterm_lets_a_session_finish_and_sighup_reloads,
    drops_root_for_mail_owner,
    self_signed_certificate_is_made_once_in_the_state_directory,
    commands_pipelined_behind_starttls_are_never_run,
    a_user_added_while_running_logs_in_without_a_restart,
    a_session_has_a_total_time_limit,
    bad_configuration_values_name_where_they_were_set,
);
