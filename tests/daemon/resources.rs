//! What a listener exposed to the Internet must withstand, through the real
//! `smtpd-auth` on loopback: bare CR (SMTP smuggling) in DATA and in
//! commands, the Received header's protocol word for every kind of
//! session, message bodies spooled to disk (RSS bounded with 20 clients
//! deep in DATA, spool files private and removed), the session limit, and
//! an exhausted descriptor table (no spinning; service resumes).
use crate::common;
use crate::common::daemon::free_port;
use crate::common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SMTPD_AUTH: &str = env!("CARGO_BIN_EXE_smtpd-auth");

struct Daemon {
    child: Child,
    log: PathBuf,
    port: u16,
    tls_port: u16,
    state: PathBuf,
    mail: PathBuf,
    _s: Scratch,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ok` until it holds (a wait for an event, not a timing assertion).
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Daemon {
    /// `smtpd-auth` with the self-signed certificate in a scratch state
    /// directory, Maildir delivery for example.org; `max_files` as
    /// `ulimit -n`.
    fn start(extra: &[&str], max_files: Option<u32>) -> Daemon {
        let s = Scratch::new();
        s.users(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
        let (port, tls_port) = (free_port(), free_port());
        let (state, mail, log) = (s.path("state"), s.path("mail"), s.path("smtpd.log"));
        common::open_to_mail_owner(&s, &mail);
        let mut cmd = match max_files {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(SMTPD_AUTH);
                c
            }
            None => Command::new(SMTPD_AUTH),
        };
        cmd.env("SASL_CONF_PATH", s.conf_dir())
            .args(["-o", "myhostname=mx.example.org"])
            .args(["-o", "smtpd_sasl_local_domain=example.org"])
            .args(["-o", "mydestination=example.org"])
            .args(["-o", "mail_owner=postfix", "-o", "smtpd_tls_auth_only=no"])
            .arg("-o")
            .arg(format!("smtpd_auth_state_dir={}", state.display()))
            .arg("-o")
            .arg(format!("virtual_mailbox_base={}", mail.display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--listen-tls")
            .arg(format!("127.0.0.1:{tls_port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("smtpd-auth");
        let d = Daemon {
            child,
            log,
            port,
            tls_port,
            state,
            mail,
            _s: s,
        };
        wait_for("the listener logs it is ready", || {
            d.log_text().matches("SMTP listener on").count() == 2
        });
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spool(&self) -> PathBuf {
        self.state.join("spool")
    }

    fn delivered(&self, user: &str) -> Vec<Vec<u8>> {
        let dir = self.mail.join("example.org").join(user).join("Maildir/new");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    fn connect(&self) -> Client {
        Client::new(self.port)
    }
}

/// A line-level SMTP client over a plain socket.
struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            r: BufReader::new(s),
        }
    }

    /// The last line of the next reply ("" at EOF).
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return String::new();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    /// Send a command, return the reply.
    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Greeting through 354, for a message to bob@example.org.
    fn start_data(&mut self) {
        assert!(self.reply().starts_with("220"));
        assert!(self.cmd("EHLO client.test").starts_with("250"));
        assert!(self.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
        assert!(self.cmd("RCPT TO:<bob@example.org>").starts_with("250"));
        assert!(self.cmd("DATA").starts_with("354"));
    }
}

fn bare_cr_in_data_and_in_commands_is_refused() {
    let d = Daemon::start(&[], None);
    // The smuggling payload: to a next hop that ends lines at a lone CR,
    // this is the end of data and a second transaction.
    let mut c = d.connect();
    c.start_data();
    c.send(b"Subject: one\r\n\r\nx\r\n\r.\rMAIL FROM:<x@y>\rRCPT TO:<bob@example.org>\rDATA\rSubject: two\r\n.\r\n");
    assert_eq!(
        c.reply(),
        "521 5.5.2 mx.example.org Error: bare <CR> received"
    );
    assert_eq!(c.reply(), "", "the connection is closed");
    // The same lone CR inside a line of content.
    let mut c = d.connect();
    c.start_data();
    c.send(b"Subject: x\r\n\r\nab\rcd\r\n.\r\n");
    assert_eq!(
        c.reply(),
        "521 5.5.2 mx.example.org Error: bare <CR> received"
    );
    // In a command line.
    let mut c = d.connect();
    assert!(c.reply().starts_with("220"));
    assert_eq!(
        c.cmd("EHLO x\rMAIL FROM:<x@y>"),
        "521 5.5.2 mx.example.org Error: bare <CR> received"
    );
    // Bare LF in DATA keeps its Postfix 3.9 reply.
    let mut c = d.connect();
    c.start_data();
    c.send(b"Subject: x\r\n\nbody\r\n.\r\n");
    assert_eq!(
        c.reply(),
        "521 5.5.2 mx.example.org Error: bare <LF> received"
    );
    assert!(d.delivered("bob").is_empty(), "nothing was delivered");
    // A clean message still goes through.
    let mut c = d.connect();
    c.start_data();
    c.send(b"Subject: ok\r\n\r\n..dot\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as"));
    let got = d.delivered("bob");
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with(b"Subject: ok\r\n\r\n.dot\r\n"));
}

fn swaks(port: u16, args: &[&str]) -> String {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--from", "alice@example.org", "--to", "bob@example.org"])
        .args(["--helo", "client.test"])
        .args(args)
        .output()
        .expect("swaks");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("250 2.0.0 Ok: queued as"), "{text}");
    text
}

/// "with WORD id" of a delivered message.
fn protocol_word(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let after = text.split(" with ").nth(1).expect("with");
    after.split(' ').next().unwrap().to_string()
}

fn the_received_header_names_tls_and_auth() {
    need("swaks", "swaks");
    let d = Daemon::start(&[], None);
    let auth = ["--auth", "PLAIN", "--auth-user", "alice"];
    let pw = ["--auth-password", "alice-pw"];
    let cases: Vec<(&str, Vec<&str>, u16)> = vec![
        ("ESMTP", vec![], d.port),
        ("ESMTPA", [&auth[..], &pw[..]].concat(), d.port),
        ("ESMTPS", vec!["--tls"], d.port),
        ("ESMTPSA", [&["--tls"][..], &auth, &pw].concat(), d.port),
        ("ESMTPS", vec!["--tls-on-connect"], d.tls_port),
        (
            "ESMTPSA",
            [&["--tls-on-connect"][..], &auth, &pw].concat(),
            d.tls_port,
        ),
    ];
    for (i, (want, args, port)) in cases.iter().enumerate() {
        swaks(*port, args);
        assert_eq!(d.delivered("bob").len(), i + 1);
        let newest = last_delivered(&d).unwrap();
        assert_eq!(protocol_word(&newest), *want, "{args:?}");
    }
    // HELO clients: SMTP, as Postfix writes it.
    let mut c = d.connect();
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("HELO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.org>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: helo\r\n\r\nx\r\n.").starts_with("250"));
    let last = last_delivered(&d).unwrap();
    assert_eq!(protocol_word(&last), "SMTP");
}

/// The newest message in bob's Maildir (by modification time).
fn last_delivered(d: &Daemon) -> Option<Vec<u8>> {
    let dir = d.mail.join("example.org/bob/Maildir/new");
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
    std::fs::read(newest.path()).ok()
}

/// Resident set size of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Bytes in the files of a directory, and how many files.
fn dir_usage(dir: &Path) -> (u64, usize) {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .fold((0, 0), |(b, n), m| (b + m.len(), n + 1))
        })
        .unwrap_or((0, 0))
}

const CLIENTS: usize = 20;
const BODY: usize = 9 * 1024 * 1024;

/// A message body of about `len` bytes: 78-character lines, some with a
/// leading dot (stuffed on the wire).
fn body(len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len + 100);
    let mut i = 0u64;
    while b.len() < len {
        let line = format!(
            "{}{:076}\r\n",
            if i.is_multiple_of(7) { ".." } else { "x" },
            i
        );
        b.extend_from_slice(line.as_bytes());
        i += 1;
    }
    b
}

/// What a dot-stuffed body means.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    wire.split_inclusive(|&b| b == b'\n')
        .flat_map(|l| l.strip_prefix(b".").unwrap_or(l).to_vec())
        .collect()
}

fn bodies_past_a_small_buffer_go_to_a_private_spool_file() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start(&[], None);
    let base = rss(d.pid());
    let payload = std::sync::Arc::new(body(BODY));
    let mut clients: Vec<Client> = (0..CLIENTS).map(|_| d.connect()).collect();
    let writers: Vec<_> = clients
        .iter_mut()
        .map(|c| {
            c.start_data();
            let mut s = c.r.get_ref().try_clone().unwrap();
            let p = std::sync::Arc::clone(&payload);
            std::thread::spawn(move || s.write_all(&p).unwrap())
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Everything sent is in the spool (less what a client still buffers
    // in memory, under 64 KiB each); unstuffing drops a dot per 7 lines.
    let unstuffed = (BODY - BODY / 80 / 7 - 64 * 1024) as u64;
    wait_for("the daemon has read every body", || {
        let (bytes, files) = dir_usage(&d.spool());
        files == CLIENTS && bytes >= CLIENTS as u64 * (unstuffed - 64 * 1024)
    });
    let held = rss(d.pid());
    eprintln!(
        "RSS with {CLIENTS} clients holding {} MB of unfinished DATA: {} MB (idle {} MB)",
        BODY >> 20,
        held >> 20,
        base >> 20
    );
    assert!(
        held < 120 << 20,
        "RSS {} MB with {CLIENTS} unfinished messages",
        held >> 20
    );
    for e in std::fs::read_dir(d.spool()).unwrap().flatten() {
        let mode = e.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:?}", e.path());
    }
    let dir_mode = std::fs::metadata(d.spool()).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // One client finishes: the message reaches Maildir whole (streamed
    // from the spool), and its spool file is gone after the reply.
    let mut done = clients.pop().unwrap();
    done.send(b".\r\n");
    assert!(done.reply().starts_with("250 2.0.0 Ok: queued as"));
    assert_eq!(dir_usage(&d.spool()).1, CLIENTS - 1);
    let got = d.delivered("bob");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].ends_with(&unstuff(&payload)),
        "the body arrived intact"
    );
    // The others hang up mid-DATA: their spool files go too.
    drop(clients);
    wait_for("spool files of closed sessions are removed", || {
        dir_usage(&d.spool()).1 == 0
    });
}

fn stale_spool_files_are_removed_at_start() {
    let s = Scratch::new();
    let spool = s.path("state/spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("ABCDEF0123"), b"left by a crash").unwrap();
    s.users(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    common::open_to_mail_owner(&s, &s.path("mail"));
    let log = s.path("log");
    let mut child = Command::new(SMTPD_AUTH)
        .env("SASL_CONF_PATH", s.conf_dir())
        .arg("-o")
        .arg(format!(
            "smtpd_auth_state_dir={}",
            s.path("state").display()
        ))
        .args(["-o", "mail_owner=postfix", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the listener starts", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("SMTP listener on"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(dir_usage(&spool).1, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("removed 1 stale files from"), "{text}");
}

/// Forwarding a spooled message to the relayhost streams it with
/// dot-stuffing restored: a next hop that records the DATA it got.
fn a_spooled_message_is_streamed_to_the_relayhost() {
    let hop = TcpListener::bind("127.0.0.1:0").unwrap();
    let hop_addr = hop.local_addr().unwrap();
    let recorder = std::thread::spawn(move || {
        let (s, _) = hop.accept().unwrap();
        let mut r = BufReader::new(s);
        let say = |r: &mut BufReader<TcpStream>, l: &str| {
            r.get_mut()
                .write_all(format!("{l}\r\n").as_bytes())
                .unwrap()
        };
        say(&mut r, "220 hop ESMTP");
        let mut wire = Vec::new();
        let mut in_data = false;
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).unwrap() == 0 {
                return wire;
            }
            if in_data {
                if line == b".\r\n" {
                    in_data = false;
                    say(&mut r, "250 2.0.0 Ok: queued as HOP");
                } else {
                    wire.extend_from_slice(&line);
                }
                continue;
            }
            match line.get(..4) {
                Some(b"DATA") => {
                    in_data = true;
                    say(&mut r, "354 go ahead");
                }
                Some(b"QUIT") => {
                    say(&mut r, "221 bye");
                    return wire;
                }
                _ => say(&mut r, "250 ok"),
            }
        }
    });
    let d = Daemon::start(
        &[
            "-o",
            &format!("relayhost=[127.0.0.1]:{}", hop_addr.port()),
            "-o",
            "mynetworks=127.0.0.0/8",
            "-o",
            "virtual_mailbox_base=",
        ],
        None,
    );
    let payload = body(1 << 20);
    let mut c = d.connect();
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<far@elsewhere.example>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&payload);
    c.send(b".\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    drop(c);
    let wire = recorder.join().unwrap();
    // Our Received header, then the body exactly as the client sent it
    // (stuffed the same way).
    assert!(wire.starts_with(b"Received: from client.test"));
    assert!(wire.ends_with(&payload), "the body crossed unchanged");
    assert!(d.log_text().contains("status=sent"));
}

/// The daemon's CPU time (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

fn an_exhausted_descriptor_table_costs_no_cpu_and_service_resumes() {
    let d = Daemon::start(&["-o", "smtpd_client_connection_count_limit=0"], Some(64));
    let idle: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    wait_for("accept fails for want of descriptors", || {
        d.log_text().contains("warning: accept: ")
    });
    let seconds = 3;
    let before = cpu_ticks(d.pid());
    std::thread::sleep(Duration::from_secs(seconds));
    let used = cpu_ticks(d.pid()) - before;
    let hz = ticks_per_second();
    eprintln!(
        "CPU over {seconds} s with the descriptor table full: {} ms",
        used * 1000 / hz
    );
    // Spinning on accept costs a whole core or two (>= 3 s here).
    assert!(
        used * 10 < seconds * hz,
        "{used} ticks of CPU in {seconds} s while out of descriptors"
    );
    drop(idle);
    // Once the idle clients are gone, a new client is served.
    let mut c = d.connect();
    let greeting = c.reply();
    assert!(
        greeting.starts_with("220 mx.example.org ESMTP"),
        "{greeting}"
    );
    assert!(c.cmd("QUIT").starts_with("221"));
}

fn past_the_session_limit_clients_wait_in_the_listen_queue() {
    let d = Daemon::start(&["-o", "default_process_limit=2"], None);
    let mut first = d.connect();
    let mut second = d.connect();
    assert!(first.reply().starts_with("220"));
    assert!(second.reply().starts_with("220"));
    let third = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    wait_for("the limit is logged", || {
        d.log_text()
            .contains("warning: service \"smtpd\" has reached its process limit \"2\"")
    });
    // Not served while two sessions are open: no greeting yet.
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = (&third).read(&mut byte);
    assert!(
        early.is_err(),
        "a third client was greeted past the limit: {early:?}"
    );
    // A session ends: the waiting client is greeted.
    assert!(first.cmd("QUIT").starts_with("221"));
    let mut third = Client {
        r: BufReader::new(third),
    };
    third
        .r
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(third.reply().starts_with("220"));
    assert!(third.cmd("QUIT").starts_with("221"));
    assert!(second.cmd("QUIT").starts_with("221"));
}

fn after_dropping_root_the_mail_owner_can_spool() {
    use std::os::unix::fs::MetadataExt;
    let d = Daemon::start(&["-o", "mail_owner=postfix"], None);
    assert!(d.log_text().contains("running as postfix"));
    let postfix = Command::new("id").args(["-u", "postfix"]).output().unwrap();
    let postfix: u32 = String::from_utf8_lossy(&postfix.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(std::fs::metadata(d.spool()).unwrap().uid(), postfix);
    // The scratch paths must be reachable by postfix (tempdirs are 0700).
    let scratch = d.state.parent().unwrap();
    std::fs::create_dir_all(&d.mail).unwrap();
    for (mode, path) in [("755", scratch), ("777", d.mail.as_path())] {
        assert!(
            Command::new("chmod")
                .arg(mode)
                .arg(path)
                .status()
                .unwrap()
                .success()
        );
    }
    let mut c = d.connect();
    c.start_data();
    let payload = body(1 << 20);
    c.send(&payload);
    c.send(b".\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = d.delivered("bob");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].ends_with(&unstuff(&payload)),
        "the body arrived intact"
    );
    assert_eq!(dir_usage(&d.spool()).1, 0);
}

fn a_spool_write_error_is_a_temporary_failure() {
    let d = Daemon::start(&[], None);
    // Where the spool directory would be made, a file: the first spill fails.
    // (Started as root, the daemon made spool/ for mail_owner at start.)
    std::fs::create_dir_all(&d.state).unwrap();
    let _ = std::fs::remove_dir_all(d.spool());
    std::fs::write(d.spool(), b"not a directory").unwrap();
    let mut c = d.connect();
    c.start_data();
    c.send(&body(1 << 20));
    c.send(b".\r\n");
    assert_eq!(c.reply(), "451 4.3.0 Error: queue file write error");
    // The session goes on, and a small message (no spill) is delivered.
    assert!(c.cmd("MAIL FROM:<alice@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.org>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(
        c.cmd("Subject: small\r\n\r\nx\r\n.")
            .starts_with("250 2.0.0")
    );
    assert_eq!(d.delivered("bob").len(), 1);
    assert!(d.log_text().contains("queue file write error"));
}

crate::tests!(
    bare_cr_in_data_and_in_commands_is_refused,
    the_received_header_names_tls_and_auth,
    bodies_past_a_small_buffer_go_to_a_private_spool_file,
    stale_spool_files_are_removed_at_start,
    a_spooled_message_is_streamed_to_the_relayhost,
    an_exhausted_descriptor_table_costs_no_cpu_and_service_resumes,
    past_the_session_limit_clients_wait_in_the_listen_queue,
    after_dropping_root_the_mail_owner_can_spool,
    a_spool_write_error_is_a_temporary_failure,
);
