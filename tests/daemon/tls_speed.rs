//! Output in whole flights and TLS resumption, through the real `smtpd-auth`
//! on loopback: the replies to a pipelined batch arrive in one read, the
//! session ticket arrives with the reply that follows the handshake, a
//! rustls client (each ticket used once) resumes every session after the
//! first, concurrent connections offering one ticket (Python's ssl, an
//! OpenSSL client) all resume, and tickets survive a restart.
use crate::common::daemon::{Process, SMTPD_AUTH, free_port, wait_port};
use crate::common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

struct Daemon {
    p: Process,
    port: u16,
    tls_port: u16,
    state: PathBuf,
    /// The certificate clients trust.
    cert: PathBuf,
}

fn start(s: &Scratch) -> Daemon {
    start_with(s, &[])
}

fn start_with(s: &Scratch, extra: &[&std::ffi::OsStr]) -> Daemon {
    let (port, tls_port) = (free_port(), free_port());
    let state = s.path("state");
    let mut cmd = Command::new(SMTPD_AUTH);
    cmd.env("SASL_CONF_PATH", s.conf_dir())
        .args([
            "-o",
            "myhostname=mx.example.org",
            "-o",
            "mail_owner=postfix",
        ])
        .args(["-o", "mydestination=example.org"])
        .arg("-o")
        .arg(format!("smtpd_auth_state_dir={}", state.display()))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--listen-tls")
        .arg(format!("127.0.0.1:{tls_port}"))
        .args(extra);
    let log = s.path(&format!("smtpd-{port}.log"));
    let p = Process::spawn(&mut cmd, log);
    wait_port(port);
    wait_port(tls_port);
    Daemon {
        p,
        port,
        tls_port,
        cert: state.join("tls/cert.pem"),
        state,
    }
}

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.users(&[("alice", "alice-pw")]);
    s
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.set_nodelay(true).unwrap();
    c
}

/// Read plaintext until a final reply line (`NNN ` at a line start).
fn reply(c: &mut TcpStream) -> String {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while !final_reply(&String::from_utf8_lossy(&text)) {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&text));
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn final_reply(text: &str) -> bool {
    text.ends_with("\r\n")
        && text
            .lines()
            .last()
            .is_some_and(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
}

fn replies_to_a_pipelined_batch_arrive_in_one_read() {
    let s = scratch();
    let d = start(&s);
    let mut c = connect(d.port);
    reply(&mut c);
    c.write_all(b"EHLO client.example\r\n").unwrap();
    assert!(reply(&mut c).contains("PIPELINING"));
    c.write_all(b"RSET\r\nRSET\r\nNOOP\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(got.matches("\r\n").count(), 3, "one write: {got:?}");
    assert!(got.lines().all(|l| l.starts_with("250 ")), "{got:?}");
}

/// A client trusting the daemon's self-signed certificate, with `store`
/// for its tickets.
fn client_config(d: &Daemon) -> rustls::ClientConfig {
    let cert = CertificateDer::from_pem_file(&d.cert).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Finish the handshake on `c`; the client's last flight is written.
fn handshake(conn: &mut rustls::ClientConnection, c: &mut TcpStream) {
    while conn.is_handshaking() {
        while conn.wants_write() {
            conn.write_tls(c).unwrap();
        }
        if !conn.is_handshaking() {
            break;
        }
        conn.read_tls(c).expect("read_tls");
        conn.process_new_packets().expect("handshake");
    }
    while conn.wants_write() {
        conn.write_tls(c).unwrap();
    }
}

/// Send `line` over TLS and return the plaintext of exactly one socket
/// read, and what the connection then held.
fn tls_exchange_one_read(
    conn: &mut rustls::ClientConnection,
    c: &mut TcpStream,
    line: &[u8],
) -> String {
    conn.writer().write_all(line).unwrap();
    while conn.wants_write() {
        conn.write_tls(c).unwrap();
    }
    conn.read_tls(c).expect("read_tls");
    conn.process_new_packets().expect("records");
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.reader().read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The session over implicit TLS: `true` when it resumed.
fn implicit_session(d: &Daemon, config: &Arc<rustls::ClientConfig>) -> bool {
    let mut c = connect(d.tls_port);
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    handshake(&mut conn, &mut c);
    let mut tls = rustls::Stream::new(&mut conn, &mut c);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    while !final_reply(&text) {
        let n = tls.read(&mut buf).expect("greeting");
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("220 "), "{text}");
    // QUIT, so the ticket sent with the greeting is surely processed.
    tls.write_all(b"QUIT\r\n").unwrap();
    let _ = tls.read(&mut buf);
    conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

fn the_ticket_arrives_with_the_reply_after_starttls() {
    let s = scratch();
    let d = start(&s);
    let mut c = connect(d.port);
    reply(&mut c);
    c.write_all(b"EHLO client.example\r\n").unwrap();
    reply(&mut c);
    c.write_all(b"STARTTLS\r\n").unwrap();
    assert!(reply(&mut c).starts_with("220 "));
    let config = Arc::new(client_config(&d));
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    handshake(&mut conn, &mut c);
    // The client's Finished and its EHLO leave in two writes; the ticket
    // the server makes on Finished must wait for the EHLO reply, or it
    // arrives alone first (a segment, a wake-up, and with Nagle a stall).
    // A pause (not a measurement): the server has handled the Finished,
    // and made the ticket, before the EHLO arrives.
    std::thread::sleep(Duration::from_millis(200));
    let got = tls_exchange_one_read(&mut conn, &mut c, b"EHLO client.example\r\n");
    assert!(
        final_reply(&got),
        "whole EHLO reply in the first read: {got:?}"
    );
    assert!(got.contains("AUTH"), "{got}");
    // The ticket came in that read too: the next session resumes.
    drop(conn);
    drop(c);
    assert!(implicit_session(&d, &config), "resumed with that ticket");
}

fn a_client_using_each_ticket_once_always_resumes_even_after_a_restart() {
    let s = scratch();
    let d = start(&s);
    let config = Arc::new(client_config(&d));
    assert!(!implicit_session(&d, &config), "first session is full");
    let resumed = (0..20).filter(|_| implicit_session(&d, &config)).count();
    assert_eq!(resumed, 20, "every later session resumed");
    let keys = std::fs::read(d.state.join("tickets/ticket-keys")).expect("keys kept");
    drop(d);
    // The same state directory: the keys, and so the client's ticket, live on.
    let d = start(&s);
    assert_eq!(
        std::fs::read(d.state.join("tickets/ticket-keys")).unwrap(),
        keys
    );
    assert!(implicit_session(&d, &config), "resumed across a restart");
}

fn tickets_outlive_a_reload_that_rebuilds_tls() {
    let s = scratch();
    let cf = s.path("main.cf");
    let write_cf = |timeout: &str| {
        std::fs::write(
            &cf,
            format!("smtpd_tls_session_cache_timeout = {timeout}\n"),
        )
        .unwrap()
    };
    write_cf("3600s");
    // A certificate mail_owner can read again after root is given up.
    let certs = s.path("certs");
    open_to_mail_owner(&s, &certs);
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(certs.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(certs.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let cert = format!("smtpd_tls_cert_file={}", certs.join("cert.pem").display());
    let key = format!("smtpd_tls_key_file={}", certs.join("key.pem").display());
    let mut d = start_with(
        &s,
        &[
            "-c".as_ref(),
            cf.as_os_str(),
            "-o".as_ref(),
            cert.as_ref(),
            "-o".as_ref(),
            key.as_ref(),
        ],
    );
    d.cert = certs.join("cert.pem");
    let config = Arc::new(client_config(&d));
    assert!(!implicit_session(&d, &config));
    // A TLS parameter changed: the reload makes a new TLS configuration,
    // whose ticket keys come from the state directory.
    write_cf("7200s");
    let hup = Command::new("kill")
        .args(["-HUP", &d.p.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let line = d.p.wait_log("reload");
    assert!(line.contains("configuration read again"), "{line}");
    assert!(implicit_session(&d, &config), "resumed after the reload");
}

const SHARED_TICKET: &str = r#"
import socket, ssl, sys, threading
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
def session(sess=None):
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            f = s.makefile("rb")
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            s.sendall(b"QUIT\r\n")
            f.readline()
            return s.session, s.session_reused
first, _ = session()
results = []
def worker():
    for _ in range(5):
        results.append(session(first)[1])
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(results), len(results))
"#;

fn concurrent_connections_offering_one_ticket_all_resume() {
    need("python3", "python3");
    let s = scratch();
    let d = start(&s);
    let ca = d.state.join("tls/cert.pem");
    let o = Command::new("python3")
        .arg("-c")
        .arg(SHARED_TICKET)
        .arg(d.tls_port.to_string())
        .arg(&ca)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "40 40", "resumed of offered");
}

fn the_default_certificate_is_ecdsa_p256() {
    let s = scratch();
    let d = start(&s);
    let key = std::fs::read_to_string(d.state.join("tls/key.pem")).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    // PKCS#8 with the id-ecPublicKey and prime256v1 object identifiers.
    let oid_ec = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let oid_p256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let bytes = der.secret_der();
    let has = |oid: &[u8]| bytes.windows(oid.len()).any(|w| w == oid);
    assert!(has(&oid_ec) && has(&oid_p256), "an ECDSA P-256 key");
}

fn a_failed_handshake_still_sends_its_alert() {
    let s = scratch();
    let d = start(&s);
    let mut c = connect(d.tls_port);
    // Plain SMTP on the implicit-TLS port: not a TLS record.
    c.write_all(b"EHLO client.example\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert_eq!(got.first(), Some(&0x15), "a TLS alert record: {got:?}");
}

crate::tests!(
    replies_to_a_pipelined_batch_arrive_in_one_read,
    the_ticket_arrives_with_the_reply_after_starttls,
    a_client_using_each_ticket_once_always_resumes_even_after_a_restart,
    concurrent_connections_offering_one_ticket_all_resume,
    the_default_certificate_is_ecdsa_p256,
    a_failed_handshake_still_sends_its_alert,
    tickets_outlive_a_reload_that_rebuilds_tls,
);
