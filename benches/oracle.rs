//! Account enumeration by timing (a `harness = false` bench): how long a
//! FAILED login takes for an account holding the cleartext, an account
//! holding only a SCRAM-SHA-256 verifier (`saslpasswd -n`), and an unknown
//! name, for every mechanism, through the release `smtpd-auth` on loopback
//! — its SMTP listener and its Dovecot socket. Prints the median of each
//! (whole exchange, and SCRAM's server-first alone) and the ratio of each
//! existing account to the unknown name; the rule is "within 1.5x".
//!
//! ```text
//! cargo bench --bench oracle            # 150 tries per cell
//! ORACLE_TRIES=400 cargo bench --bench oracle
//! ```
//! Without `--bench` (as `cargo test --benches` runs it) it does nothing.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

const SMTPD_AUTH: &str = env!("CARGO_BIN_EXE_smtpd-auth");
const SASLPASSWD: &str = env!("CARGO_BIN_EXE_saslpasswd");
/// Cleartext account, verifier-only account, unknown name.
const USERS: [&str; 3] = ["alice", "vera", "ghost"];

/// One side of an exchange: the server's challenge, or the end.
enum Answer {
    Challenge(Vec<u8>),
    Done(bool),
}

/// A transport that runs SASL exchanges (SMTP AUTH or the Dovecot socket).
trait Transport {
    /// Get ready for an exchange (not timed: a new SMTP connection).
    fn prepare(&mut self);
    fn start(&mut self, mech: &str, initial: Option<&[u8]>) -> Answer;
    fn step(&mut self, data: &[u8]) -> Answer;
}

struct Smtp {
    port: u16,
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Smtp {
    fn reply(&mut self) -> String {
        let (r, _) = self.conn.as_mut().expect("connected");
        loop {
            let mut l = String::new();
            assert!(r.read_line(&mut l).expect("read") > 0, "server closed");
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.trim_end().to_string();
            }
        }
    }

    fn send(&mut self, line: &str) -> Answer {
        let (_, w) = self.conn.as_mut().expect("connected");
        w.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let l = self.reply();
        match l.strip_prefix("334 ") {
            Some(c) => Answer::Challenge(B64.decode(c).unwrap_or_default()),
            None if l == "334" => Answer::Challenge(Vec::new()),
            None => Answer::Done(l.starts_with("235")),
        }
    }
}

impl Transport for Smtp {
    fn prepare(&mut self) {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        self.conn = Some((BufReader::new(s.try_clone().unwrap()), s));
        self.reply();
        let (_, w) = self.conn.as_mut().unwrap();
        w.write_all(b"EHLO bench.test\r\n").unwrap();
        self.reply();
    }

    fn start(&mut self, mech: &str, initial: Option<&[u8]>) -> Answer {
        match initial {
            Some(i) => self.send(&format!("AUTH {mech} {}", B64.encode(i))),
            None => self.send(&format!("AUTH {mech}")),
        }
    }

    fn step(&mut self, data: &[u8]) -> Answer {
        self.send(&B64.encode(data))
    }
}

struct Dovecot {
    r: BufReader<UnixStream>,
    w: UnixStream,
    id: u64,
}

impl Dovecot {
    fn connect(path: &Path) -> Dovecot {
        let w = UnixStream::connect(path).expect("auth socket");
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut d = Dovecot {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
            id: 0,
        };
        d.w.write_all(b"VERSION\t1\t0\nCPID\t1\n").unwrap();
        while d.line() != "DONE" {}
        d
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        assert!(self.r.read_line(&mut l).expect("read") > 0, "socket closed");
        l.trim_end().to_string()
    }

    fn send(&mut self, line: &str) -> Answer {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let l = self.line();
        let mut f = l.split('\t');
        match f.next() {
            Some("CONT") => {
                Answer::Challenge(B64.decode(f.nth(1).unwrap_or("")).unwrap_or_default())
            }
            Some(k) => Answer::Done(k == "OK"),
            None => Answer::Done(false),
        }
    }
}

impl Transport for Dovecot {
    fn prepare(&mut self) {
        self.id += 1;
    }

    fn start(&mut self, mech: &str, initial: Option<&[u8]>) -> Answer {
        let resp = initial
            .map(|i| format!("\tresp={}", B64.encode(i)))
            .unwrap_or_default();
        self.send(&format!(
            "AUTH\t{}\t{mech}\tservice=smtp\trip=127.0.0.1\tsecured{resp}",
            self.id
        ))
    }

    fn step(&mut self, data: &[u8]) -> Answer {
        self.send(&format!("CONT\t{}\t{}", self.id, B64.encode(data)))
    }
}

fn challenge(a: Answer, what: &str) -> Vec<u8> {
    match a {
        Answer::Challenge(c) => c,
        Answer::Done(ok) => panic!("{what}: ended early (ok={ok})"),
    }
}

/// One failed exchange with a wrong password: (whole exchange, first step).
fn failed_login(t: &mut dyn Transport, mech: &str, user: &str) -> (Duration, Duration) {
    t.prepare();
    let start = Instant::now();
    let end = match mech {
        "PLAIN" => t.start(mech, Some(format!("\0{user}\0wrong-pw").as_bytes())),
        "LOGIN" => {
            challenge(t.start(mech, Some(user.as_bytes())), mech);
            t.step(b"wrong-pw")
        }
        "CRAM-MD5" => {
            challenge(t.start(mech, None), mech);
            t.step(format!("{user} {}", "0".repeat(32)).as_bytes())
        }
        "DIGEST-MD5" => {
            let c = String::from_utf8(challenge(t.start(mech, None), mech)).unwrap();
            let nonce = c.split("nonce=\"").nth(1).and_then(|n| n.split('"').next());
            let msg = format!(
                "username=\"{user}\",nonce=\"{}\",cnonce=\"benchcnonce\",nc=00000001,qop=auth,\
                 digest-uri=\"smtp/mx.example.org\",response={}",
                nonce.expect("nonce"),
                "0".repeat(32)
            );
            t.step(msg.as_bytes())
        }
        _ => {
            let sf = challenge(
                t.start(mech, Some(format!("n,,n={user},r=benchnonce").as_bytes())),
                mech,
            );
            let first = start.elapsed();
            let sf = String::from_utf8(sf).unwrap();
            let nonce = sf
                .split(',')
                .find_map(|f| f.strip_prefix("r="))
                .expect("r=");
            let len = if mech == "SCRAM-SHA-1" { 20 } else { 32 };
            let proof = B64.encode(vec![0u8; len]);
            let end = t.step(format!("c=biws,r={nonce},p={proof}").as_bytes());
            assert!(
                matches!(end, Answer::Done(false)),
                "{mech} {user}: not a failure"
            );
            return (start.elapsed(), first);
        }
    };
    let total = start.elapsed();
    assert!(
        matches!(end, Answer::Done(false)),
        "{mech} {user}: not a failure"
    );
    (total, total)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_daemon(dir: &Path) -> (Child, u16) {
    let db = dir.join("sasldb2");
    for (user, pw, extra) in [("alice", "alice-pw", None), ("vera", "vera-pw", Some("-n"))] {
        let mut c = Command::new(SASLPASSWD);
        c.env("SASL_CONF_PATH", dir).args(["-p", "-c"]);
        c.args(extra);
        c.args(["-u", "example.org", "-f"]).arg(&db).arg(user);
        let mut child = c.stdin(Stdio::piped()).spawn().expect("saslpasswd");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pw.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let port = free_port();
    let child = Command::new(SMTPD_AUTH)
        .env("SASL_CONF_PATH", dir)
        .args([
            "-o",
            "myhostname=mx.example.org",
            "-o",
            "smtpd_sasl_local_domain=example.org",
        ])
        .arg("-o")
        .arg(format!("sasldb_path={}", db.display()))
        .arg("-o")
        .arg(format!(
            "smtpd_auth_state_dir={}",
            dir.join("state").display()
        ))
        .arg("-o")
        .arg(format!(
            "dovecot_auth_socket={}",
            dir.join("auth").display()
        ))
        .args([
            "-o",
            "smtpd_tls_security_level=none",
            "-o",
            "smtpd_tls_auth_only=no",
        ])
        .args([
            "-o",
            "smtpd_auth_failure_limit=0",
            "-o",
            "smtpd_soft_error_limit=1000",
        ])
        .args([
            "-o",
            "smtpd_hard_error_limit=1000",
            "-o",
            "mail_owner=postfix",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtpd-auth");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || UnixStream::connect(dir.join("auth")).is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "smtpd-auth did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("oracle: run with `cargo bench --bench oracle` (ORACLE_TRIES=N, default 150)");
        return;
    }
    let tries: usize = std::env::var("ORACLE_TRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, port) = start_daemon(dir.path());
    let mut smtp = Smtp { port, conn: None };
    let mut dovecot = Dovecot::connect(&dir.path().join("auth"));
    println!(
        "failed logins, median of {tries} (us): cleartext account / -n account / unknown name; ratios to unknown"
    );
    let mut worst: f64 = 0.0;
    for (name, t) in [
        ("smtp", &mut smtp as &mut dyn Transport),
        ("dovecot", &mut dovecot),
    ] {
        // Every mechanism but the -PLUS forms (no TLS here).
        for mech in sasldb::mech::ALL.iter().filter(|m| !m.ends_with("-PLUS")) {
            let mut total = vec![Vec::new(); USERS.len()];
            let mut first = vec![Vec::new(); USERS.len()];
            // Interleaved, so drift affects every name alike; a few warm-ups.
            for i in 0..tries + 5 {
                for (u, user) in USERS.iter().enumerate() {
                    let (all, one) = failed_login(t, mech, user);
                    if i >= 5 {
                        total[u].push(all);
                        first[u].push(one);
                    }
                }
            }
            let mut report = |what: &str, cells: Vec<Vec<Duration>>| {
                let m: Vec<f64> = cells
                    .into_iter()
                    .map(|c| median(c).as_secs_f64() * 1e6)
                    .collect();
                let ratio = |x: f64| x / m[2];
                let r = [ratio(m[0]), ratio(m[1])];
                for x in r {
                    worst = worst.max(x.max(1.0 / x));
                }
                println!(
                    "{name:8} {mech:14} {what:13} {:8.1} {:8.1} {:8.1}   x{:.2} x{:.2}",
                    m[0], m[1], m[2], r[0], r[1]
                );
            };
            report("exchange", total);
            if mech.starts_with("SCRAM") {
                report("server-first", first);
            }
        }
    }
    println!("worst ratio (either way): x{worst:.2} (rule: within x1.5)");
    let _ = child.kill();
    let _ = child.wait();
}
