//! Password checking through the real `smtpd-auth` on loopback: what a
//! failure reveals (SCRAM's server-first for existing and unknown names,
//! on the SMTP listener and the Dovecot socket), the SCRAM salt key kept
//! across SIGHUP and restarts, DIGEST-MD5 with curl's `smtp/<realm>`
//! digest-uri, every real client with every mechanism it supports, the
//! mechanisms `sasldblistusers` lists against what logs in, and exchanges
//! abandoned on the Dovecot socket logged as failures. (Timing itself is
//! measured by `benches/oracle.rs`, not asserted here.)
use crate::common;
use crate::common::daemon::free_port;
use crate::common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

const SMTPD_AUTH: &str = env!("CARGO_BIN_EXE_smtpd-auth");

/// Every mechanism, without the -PLUS forms, in the listing's order.
const SASL_MECHS: [&str; 6] = [
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
];

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch lab: users in realm example.org, a certificate for 127.0.0.1,
/// a state directory. Daemons started from it share all of these.
struct Lab {
    s: Scratch,
    cert: PathBuf,
    key: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let s = Scratch::new();
        s.users(&[("alice", "alice-pw")]);
        // `-n`: a SCRAM-SHA-256 verifier only.
        let o = s.run(
            SASLPASSWD,
            &[
                "-p",
                "-c",
                "-n",
                "-u",
                "example.org",
                "-f",
                s.db().to_str().unwrap(),
                "vera",
            ],
            Some(b"vera-pw"),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (cert, key) = (s.path("cert.pem"), s.path("key.pem"));
        let o = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=mx.example.org"])
            .args(["-addext", "subjectAltName=DNS:mx.example.org,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(o.status.success());
        Lab { s, cert, key }
    }

    fn state(&self) -> PathBuf {
        self.s.path("state")
    }

    fn start(&self, name: &str, extra: &[&str]) -> Daemon {
        common::open_to_mail_owner(&self.s, &self.s.path("mail"));
        let port = free_port();
        let sock = self.s.path(&format!("{name}.auth"));
        let log = self.s.path(&format!("{name}.log"));
        let child = self
            .s
            .cmd(SMTPD_AUTH)
            .args(["-o", "myhostname=mx.example.org"])
            .args(["-o", "smtpd_sasl_local_domain=example.org"])
            .args([
                "-o",
                "mydestination=example.org",
                "-o",
                "mail_owner=postfix",
            ])
            .args(["-o", "smtpd_tls_auth_only=no"])
            .arg("-o")
            .arg(format!("smtpd_tls_cert_file={}", self.cert.display()))
            .arg("-o")
            .arg(format!("smtpd_tls_key_file={}", self.key.display()))
            .arg("-o")
            .arg(format!("smtpd_auth_state_dir={}", self.state().display()))
            .arg("-o")
            .arg(format!(
                "virtual_mailbox_base={}",
                self.s.path("mail").display()
            ))
            .arg("-o")
            .arg(format!("dovecot_auth_socket={}", sock.display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("smtpd-auth");
        wait_until("the SMTP port", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        wait_until("the auth socket", || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        Daemon {
            child,
            port,
            sock,
            log,
        }
    }
}

struct Daemon {
    child: Child,
    port: u16,
    sock: PathBuf,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SCRAM's server-first for `user` over SMTP AUTH, then `*`.
    fn smtp_server_first(&self, mech: &str, user: &str) -> String {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let reply = |r: &mut BufReader<TcpStream>| loop {
            let mut l = String::new();
            assert!(r.read_line(&mut l).unwrap() > 0, "closed");
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.trim_end().to_string();
            }
        };
        reply(&mut r);
        w.write_all(b"EHLO client.test\r\n").unwrap();
        reply(&mut r);
        let first = B64.encode(format!("n,,n={user},r=clientnonce"));
        w.write_all(format!("AUTH {mech} {first}\r\n").as_bytes())
            .unwrap();
        let l = reply(&mut r);
        let b64 = l.strip_prefix("334 ").unwrap_or_else(|| panic!("{l}"));
        w.write_all(b"*\r\n").unwrap();
        assert!(reply(&mut r).starts_with("501"));
        String::from_utf8(B64.decode(b64).unwrap()).unwrap()
    }

    /// The same over the Dovecot socket.
    fn dovecot_server_first(&self, mech: &str, user: &str) -> String {
        let mut d = Dovecot::connect(&self.sock);
        let first = B64.encode(format!("n,,n={user},r=clientnonce"));
        d.send(&format!("AUTH\t1\t{mech}\tservice=smtp\tresp={first}"));
        let l = d.line();
        let b64 = l.strip_prefix("CONT\t1\t").unwrap_or_else(|| panic!("{l}"));
        String::from_utf8(B64.decode(b64).unwrap()).unwrap()
    }
}

/// `s=` and `i=` of a server-first message (the nonce differs every time).
fn salt_and_count(server_first: &str) -> (String, String) {
    let get = |k: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {server_first}"))
            .to_string()
    };
    (get("s="), get("i="))
}

fn scram_server_first_is_the_same_kind_for_known_and_unknown_names() {
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        for via_socket in [false, true] {
            let first = |user: &str| {
                salt_and_count(&if via_socket {
                    d.dovecot_server_first(mech, user)
                } else {
                    d.smtp_server_first(mech, user)
                })
            };
            let (alice, ghost) = (first("alice"), first("ghost"));
            assert_eq!(alice.1, ghost.1, "{mech}: iteration counts");
            assert_eq!(
                B64.decode(&alice.0).unwrap().len(),
                B64.decode(&ghost.0).unwrap().len(),
                "{mech}: salt lengths"
            );
            assert_eq!(first("ghost"), ghost, "{mech}: an unknown salt is stable");
        }
    }
}

fn the_salt_key_survives_sighup_and_restarts() {
    need("openssl", "openssl");
    let lab = Lab::new();
    let ghost = |d: &Daemon| salt_and_count(&d.smtp_server_first("SCRAM-SHA-256", "ghost"));
    let d = lab.start("first", &[]);
    let before = ghost(&d);
    let key = lab.state().join("scram-salt.key");
    let mode = std::fs::metadata(&key)
        .expect("salt key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let o = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .output()
        .unwrap();
    assert!(o.status.success());
    wait_until("the reload", || d.log_text().contains("reload:"));
    assert!(
        d.log_text().contains("reload: configuration read again"),
        "{}",
        d.log_text()
    );
    assert_eq!(ghost(&d), before, "after SIGHUP");
    drop(d);
    let d = lab.start("second", &[]);
    assert_eq!(ghost(&d), before, "after a restart");
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(lab.state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().starts_with('.')),
        "{names:?}"
    );
}

/// curl with `--login-options AUTH=<mech>`, optionally `--ssl-reqd`
/// (STARTTLS), delivering one message; curl's exit status.
fn curl(d: &Daemon, lab: &Lab, mech: &str, pw: &str, tls: bool) -> (bool, String) {
    let msg = lab.s.path("curl.eml");
    std::fs::write(&msg, "Subject: curl\r\n\r\nhello\r\n").unwrap();
    let mut c = Command::new("curl");
    c.args(["-sS", &format!("smtp://127.0.0.1:{}", d.port)])
        .args([
            "--mail-from",
            "alice@example.org",
            "--mail-rcpt",
            "postmaster@example.org",
        ])
        .args(["--user", &format!("alice:{pw}")])
        .args(["--login-options", &format!("AUTH={mech}")])
        .arg("--upload-file")
        .arg(&msg);
    if tls {
        c.arg("--ssl-reqd").arg("--cacert").arg(&lab.cert);
    }
    let o = c.output().expect("curl");
    (o.status.success(), stderr(&o))
}

fn curl_every_mechanism_plain_and_over_starttls() {
    need("curl", "curl");
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        for tls in [false, true] {
            let (ok, err) = curl(&d, &lab, mech, "alice-pw", tls);
            assert!(ok, "curl {mech} tls={tls}: {err}");
            let (ok, _) = curl(&d, &lab, mech, "wrong", tls);
            assert!(!ok, "curl {mech} tls={tls} with a wrong password");
        }
    }
    // curl's digest-uri names the realm, not the host: fine by default.
    let log = d.log_text();
    assert!(log.contains("sasl_method=DIGEST-MD5"), "{log}");
}

fn the_strict_digest_uri_host_check_is_an_option() {
    need("curl", "curl");
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("strict", &["-o", "smtpd_sasl_digest_uri_strict_host=yes"]);
    let (ok, _) = curl(&d, &lab, "DIGEST-MD5", "alice-pw", false);
    assert!(!ok, "curl's smtp/<realm> is refused under the strict check");
    let log = d.log_text();
    assert!(log.contains("digest-uri does not name this host"), "{log}");
    // PLAIN is unaffected.
    assert!(curl(&d, &lab, "PLAIN", "alice-pw", false).0);
}

fn msmtp_every_mechanism_over_starttls() {
    need("msmtp", "msmtp");
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    let run = |mech: &str, pw: &str| {
        let o = Command::new("msmtp")
            .args(["--host=127.0.0.1", &format!("--port={}", d.port)])
            .args([&format!("--auth={mech}"), "--user=alice"])
            .arg(format!("--passwordeval=echo {pw}"))
            .args(["--tls=on", "--tls-starttls=on"])
            .arg(format!("--tls-trust-file={}", lab.cert.display()))
            .args(["--from=alice@example.org", "postmaster@example.org"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("msmtp");
        let mut c = o;
        c.stdin
            .take()
            .unwrap()
            .write_all(b"Subject: msmtp\r\n\r\nhi\r\n")
            .unwrap();
        let o = c.wait_with_output().unwrap();
        (o.status.success(), stderr(&o))
    };
    for mech in [
        "plain",
        "login",
        "cram-md5",
        "digest-md5",
        "scram-sha-1",
        "scram-sha-256",
    ] {
        let (ok, err) = run(mech, "alice-pw");
        assert!(ok, "msmtp {mech}: {err}");
        assert!(!run(mech, "wrong").0, "msmtp {mech} with a wrong password");
    }
}

/// gsasl as an SMTP client; success.
fn gsasl(d: &Daemon, lab: &Lab, mech: &str, user: &str, pw: &str, tls: bool) -> bool {
    let mut c = Command::new("gsasl");
    c.args(["--smtp", "--connect", &format!("127.0.0.1:{}", d.port)])
        .args(["-m", mech, "-a", user, "-p", pw])
        .args(["--realm", "example.org", "--hostname", "mx.example.org"]);
    if tls {
        c.arg("--starttls")
            .arg(format!("--x509-ca-file={}", lab.cert.display()));
    } else {
        c.arg("--no-starttls");
    }
    let o = c.stdin(Stdio::null()).output().expect("gsasl");
    o.status.success() && stdout(&o).contains("235")
}

fn gsasl_plain_login_cram_md5_digest_md5() {
    need("gsasl", "gsasl");
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        for tls in [false, true] {
            assert!(
                gsasl(&d, &lab, mech, "alice", "alice-pw", tls),
                "{mech} tls={tls}"
            );
            assert!(
                !gsasl(&d, &lab, mech, "alice", "wrong", tls),
                "{mech} wrong"
            );
        }
    }
}

fn smtplib_over_starttls() {
    need("openssl", "openssl");
    need_file("/usr/bin/python3", "python3");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    let script = format!(
        "import smtplib,ssl\nctx=ssl.create_default_context(cafile={cert:?})\n\
         for m in ['CRAM-MD5','PLAIN','LOGIN']:\n    s=smtplib.SMTP('127.0.0.1',{port})\n    \
         s.starttls(context=ctx); s.ehlo(); s.user, s.password = 'alice', 'alice-pw'\n    \
         code, _ = s.auth(m, getattr(s, 'auth_' + m.lower().replace('-', '_')))\n    \
         assert code == 235, (m, code)\n    s.quit()\n",
        cert = lab.cert.display().to_string(),
        port = d.port
    );
    let o = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "smtplib: {}", stderr(&o));
}

/// The mechanisms `sasldblistusers --format json` lists for each account
/// are exactly those that log in (swaks and gsasl as the clients).
fn listed_mechanisms_are_those_that_log_in() {
    need("gsasl", "gsasl");
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    let o = lab.s.run(
        LISTUSERS,
        &["-f", lab.s.db().to_str().unwrap(), "--format", "json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed = |user: &str| -> Vec<String> {
        doc["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["user"] == user)
            .unwrap_or_else(|| panic!("{user} listed"))["mechanisms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    // The cleartext serves every mechanism.
    assert_eq!(listed("alice"), SASL_MECHS);
    assert_eq!(listed("vera"), ["PLAIN", "LOGIN", "SCRAM-SHA-256"]);
    for (user, pw) in [("alice", "alice-pw"), ("vera", "vera-pw")] {
        let listed = listed(user);
        for mech in SASL_MECHS {
            let works = gsasl(&d, &lab, mech, user, pw, false);
            assert_eq!(
                works,
                listed.iter().any(|m| m == mech),
                "{user} {mech}: logs in = {works}, listed {listed:?}"
            );
        }
    }
}

fn abandoned_dovecot_exchanges_are_logged_as_failures() {
    need("openssl", "openssl");
    let lab = Lab::new();
    let d = lab.start("d", &[]);
    // `*` from the client.
    let mut c = Dovecot::connect(&d.sock);
    c.send("AUTH\t1\tLOGIN\tservice=smtp\trip=192.0.2.8\tresp=YWxpY2U=");
    assert!(c.line().starts_with("CONT\t1\t"));
    c.send("CONT\t1\t*");
    assert!(c.line().starts_with("FAIL\t1\t"));
    // Disconnecting halfway through an exchange.
    c.send("AUTH\t2\tLOGIN\tservice=smtp\trip=192.0.2.9\tresp=YWxpY2U=");
    assert!(c.line().starts_with("CONT\t2\t"));
    drop(c);
    let line = |client: &str| {
        format!(
            "warning: unknown[{client}]: SASL LOGIN authentication failed: authentication cancelled, sasl_username=alice@example.org"
        )
    };
    wait_until("the disconnect's failure line", || {
        d.log_text().contains(&line("192.0.2.9"))
    });
    assert!(
        d.log_text().contains(&line("192.0.2.8")),
        "{}",
        d.log_text()
    );
}

/// DIGEST-MD5 over the Dovecot socket with `digest-uri="smtp/<host>"`:
/// the first line after the response (`CONT` with rspauth, or `FAIL`).
fn dovecot_digest(d: &Daemon, host: &str) -> String {
    let mut c = Dovecot::connect(&d.sock);
    c.send("AUTH\t1\tDIGEST-MD5\tservice=smtp\tlip=127.0.0.1\trip=192.0.2.7");
    let l = c.line();
    let challenge = B64
        .decode(l.strip_prefix("CONT\t1\t").unwrap_or_else(|| panic!("{l}")))
        .unwrap();
    let challenge = String::from_utf8(challenge).unwrap();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|n| n.split('"').next())
        .expect("nonce");
    let uri = format!("smtp/{host}");
    let (response, _) = sasldb::mech::digest_response_values(
        b"alice",
        b"example.org",
        b"alice-pw",
        nonce.as_bytes(),
        b"cn",
        b"00000001",
        b"auth",
        uri.as_bytes(),
        None,
    );
    let msg = format!(
        "username=\"alice\",realm=\"example.org\",nonce=\"{nonce}\",cnonce=\"cn\",\
         nc=00000001,qop=auth,digest-uri=\"{uri}\",response={response}"
    );
    c.send(&format!("CONT\t1\t{}", B64.encode(msg)));
    c.line()
}

fn the_strict_digest_uri_host_check_on_the_dovecot_socket() {
    need("openssl", "openssl");
    let lab = Lab::new();
    let lax = lab.start("lax", &[]);
    assert!(dovecot_digest(&lax, "example.org").starts_with("CONT\t1\t"));
    let strict = lab.start("strict", &["-o", "smtpd_sasl_digest_uri_strict_host=yes"]);
    // Postfix's lip= and myhostname name this server; the realm does not.
    assert!(dovecot_digest(&strict, "127.0.0.1").starts_with("CONT\t1\t"));
    assert!(dovecot_digest(&strict, "mx.example.org").starts_with("CONT\t1\t"));
    assert!(dovecot_digest(&strict, "example.org").starts_with("FAIL\t1\t"));
}

crate::tests!(
    scram_server_first_is_the_same_kind_for_known_and_unknown_names,
    the_salt_key_survives_sighup_and_restarts,
    curl_every_mechanism_plain_and_over_starttls,
    the_strict_digest_uri_host_check_is_an_option,
    msmtp_every_mechanism_over_starttls,
    gsasl_plain_login_cram_md5_digest_md5,
    smtplib_over_starttls,
    listed_mechanisms_are_those_that_log_in,
    abandoned_dovecot_exchanges_are_logged_as_failures,
    the_strict_digest_uri_host_check_on_the_dovecot_socket,
);
