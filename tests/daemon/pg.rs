//! `smtpd-auth` on a PostgreSQL store (`sasldb_path = postgresql://...`),
//! each test against its own throwaway cluster (tests/common/pg.rs): two
//! daemons on one database see a change made with our `saslpasswd` or plain
//! SQL within 2 s; an outage serves recent logins only and is logged once;
//! the Dovecot and saslauthd sockets on the same store; an empty password
//! never logs in; bad URLs, passwords and a missing table stop the start.
use crate::common::daemon::{Process, SMTPD_AUTH, WAIT, free_port, wait_for, wait_port};
use crate::common::pg::{PASSWORD, Postgres, TlsFiles};
use crate::common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// How soon every daemon must see a change made anywhere.
const SEEN_WITHIN: Duration = Duration::from_secs(2);

/// Our `saslpasswd` on the cluster, the password from PGPASSWORD (not argv).
fn saslpasswd(s: &Scratch, pg: &Postgres, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let url = pg.url_without_password();
    let mut c = s.cmd(SASLPASSWD);
    c.env("PGPASSWORD", PASSWORD)
        .env("PGPASSFILE", s.path("no-pgpass"))
        .args(["-f", &url])
        .args(args);
    let o = run_cmd(&mut c, stdin);
    assert!(o.status.success(), "saslpasswd {args:?}: {}", stderr(&o));
    o
}

fn set_password(s: &Scratch, pg: &Postgres, user: &str, pw: &str) {
    saslpasswd(
        s,
        pg,
        &["-p", "-c", "-u", "example.org", user],
        Some(pw.as_bytes()),
    );
}

/// A cluster with the schema and alice ("alice-pw") and bob ("bob-pw").
fn cluster(s: &Scratch) -> Postgres {
    let pg = Postgres::start();
    saslpasswd(s, &pg, &["--init-schema"], None);
    set_password(s, &pg, "alice", "alice-pw");
    set_password(s, &pg, "bob", "bob-pw");
    pg
}

/// One `smtpd-auth` on the cluster: SMTP on a free port without TLS. The
/// first reads the URL with its password from a main.cf; others get it
/// with `-o` and the password from PGPASSWORD.
pub(crate) struct Daemon {
    pub(crate) p: Process,
    pub(crate) port: u16,
}

pub(crate) fn start(s: &Scratch, pg: &Postgres, name: &str, extra: &[&str]) -> Daemon {
    open_to_mail_owner(s, &s.path(&format!("{name}-mail")));
    let port = free_port();
    let cf = s.path(&format!("{name}.cf"));
    std::fs::write(
        &cf,
        format!(
            "sasldb_path = {}\nmyhostname = mx.example.org\nsmtpd_sasl_local_domain = example.org\n\
             mydestination = example.org\n\
             smtpd_tls_security_level = none\nsmtpd_tls_auth_only = no\nmail_owner = postfix\n\
             smtpd_auth_failure_limit = 1000\nsmtpd_client_auth_rate_limit = 0\n\
             smtpd_error_sleep_time = 0s\nsmtpd_auth_state_dir = {}\n",
            pg.url(),
            s.path(&format!("{name}-state")).display()
        ),
    )
    .expect("main.cf");
    let mut c = s.cmd(SMTPD_AUTH);
    c.env("PGPASSWORD", PASSWORD)
        .arg("-c")
        .arg(&cf)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    for kv in extra {
        c.args(["-o", kv]);
    }
    let p = Process::spawn(&mut c, s.path(&format!("{name}.log")));
    wait_port(port);
    Daemon { p, port }
}

/// A raw SMTP client: the greeting and EHLO, then `commands` one at a
/// time; the last reply line of the last one.
fn smtp(port: u16, commands: &[&str]) -> String {
    let w = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    w.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut w = w;
    let mut reply = || loop {
        let mut l = String::new();
        assert!(r.read_line(&mut l).expect("read") > 0, "connection closed");
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.trim_end().to_string();
        }
    };
    assert!(reply().starts_with("220"));
    let mut last = String::new();
    for c in std::iter::once("EHLO client.test").chain(commands.iter().copied()) {
        w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        last = reply();
    }
    let _ = w.write_all(b"QUIT\r\n");
    last
}

/// EHLO, then one AUTH; the reply code.
fn auth(port: u16, mech_and_initial: &str) -> u16 {
    smtp(port, &[&format!("AUTH {mech_and_initial}")])[..3]
        .parse()
        .expect("reply code")
}

/// A stranger's RCPT to a local address; the reply.
fn rcpt(port: u16, to: &str) -> String {
    smtp(
        port,
        &["MAIL FROM:<x@outside.example>", &format!("RCPT TO:<{to}>")],
    )
}

/// AUTH PLAIN with an initial response; the reply code.
pub(crate) fn plain(port: u16, user: &str, pw: &str) -> u16 {
    auth(
        port,
        &format!("PLAIN {}", B64.encode(format!("\0{user}\0{pw}"))),
    )
}

/// A login by Python's smtplib with one mechanism; the reply code.
pub(crate) fn smtplib(port: u16, mech: &str, user: &str, pw: &str) -> u16 {
    let script = r#"
import smtplib, sys
port, mech = int(sys.argv[1]), sys.argv[2]
user, pw = sys.stdin.read().split("\n")[:2]
s = smtplib.SMTP("127.0.0.1", port, timeout=15)
s.ehlo("client.test")
s.user, s.password = user, pw
auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
try:
    code = s.auth(mech, auth, initial_response_ok=(mech == "PLAIN"))[0]
except smtplib.SMTPResponseException as e:
    code = e.smtp_code
print(code)
"#;
    let mut c = std::process::Command::new("python3");
    c.args(["-c", script, &port.to_string(), mech]);
    let o = run_cmd(&mut c, Some(format!("{user}\n{pw}\n").as_bytes()));
    assert!(o.status.success(), "smtplib: {}", stderr(&o));
    stdout(&o).trim().parse().expect("a reply code")
}

/// Poll `login` until it gives `want`, for at most [`SEEN_WITHIN`].
pub(crate) fn seen_within(what: &str, want: u16, mut login: impl FnMut() -> u16) {
    let start = Instant::now();
    loop {
        let got = login();
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < SEEN_WITHIN,
            "{what}: still {got}, not {want}, after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn two_daemons_see_every_change_within_2s() {
    need("python3", "python3");
    let s = Scratch::new();
    let pg = cluster(&s);
    let a = start(&s, &pg, "a", &[]);
    // The second one: the URL without its password on the command line.
    let b = start(
        &s,
        &pg,
        "b",
        &[&format!("sasldb_path={}", pg.url_without_password())],
    );
    let daemons = [&a, &b];
    for d in daemons {
        assert_eq!(smtplib(d.port, "PLAIN", "alice", "alice-pw"), 235);
        assert_eq!(plain(d.port, "alice", "alice-pw"), 235, "cached");
        assert_eq!(plain(d.port, "carol", "carol-pw"), 535, "unknown, cached");
    }
    // A change with our saslpasswd.
    set_password(&s, &pg, "alice", "changed-pw");
    for d in daemons {
        seen_within("new password", 235, || plain(d.port, "alice", "changed-pw"));
        assert_eq!(plain(d.port, "alice", "alice-pw"), 535, "old password");
    }
    // A user created: the cached "no such user" goes too.
    set_password(&s, &pg, "carol", "carol-pw");
    for d in daemons {
        seen_within("new user", 235, || plain(d.port, "carol", "carol-pw"));
    }
    // Plain SQL, as another tool (or Cyrus's saslpasswd2) would write.
    pg.superuser(
        "UPDATE sasldb SET value = 'sql-pw' WHERE authid = 'alice' AND property = 'userPassword'; \
         DELETE FROM sasldb WHERE authid = 'alice' AND property = 'authPassword'",
    );
    for d in daemons {
        seen_within("password set in SQL", 235, || {
            plain(d.port, "alice", "sql-pw")
        });
        assert_eq!(plain(d.port, "alice", "changed-pw"), 535);
    }
    // A delete.
    saslpasswd(&s, &pg, &["-d", "-u", "example.org", "alice"], None);
    for d in daemons {
        seen_within("deleted user", 535, || plain(d.port, "alice", "sql-pw"));
    }
    for d in daemons {
        let log = d.p.log();
        assert!(!log.contains(PASSWORD), "{log}");
        assert!(!log.contains("sasldb_folded"), "{log}");
        assert!(!log.contains(OUTAGE), "{log}");
    }
}

const OUTAGE: &str = "warning: database unreachable: ";
const RECOVERY: &str = "reachable again";

fn an_outage_serves_recent_logins_and_recovers() {
    need("python3", "python3");
    let s = Scratch::new();
    let mut pg = cluster(&s);
    let socket = s.path("auth");
    let mut d = start(
        &s,
        &pg,
        "a",
        &[
            &format!("dovecot_auth_socket={}", socket.display()),
            "dovecot_auth_socket_owner=postfix",
        ],
    );
    d.p.wait_log("dovecot auth socket");
    let mut postfix = Dovecot::connect(&socket);
    assert_eq!(smtplib(d.port, "PLAIN", "alice", "alice-pw"), 235);
    assert_eq!(plain(d.port, "bob", "wrong"), 535);
    assert!(rcpt(d.port, "nobody@example.org").starts_with("550 5.1.1"));
    pg.stop();
    // Whichever notices first (a look-up or the LISTEN connection) logs it.
    d.p.wait_log(OUTAGE);
    for _ in 0..3 {
        assert_eq!(smtplib(d.port, "PLAIN", "alice", "alice-pw"), 235);
        assert_eq!(plain(d.port, "alice", "alice-pw"), 235);
        assert_eq!(smtplib(d.port, "LOGIN", "alice", "alice-pw"), 235);
        // A wrong password against the copy kept through the outage is as
        // temporary as an unknown name: the reply does not tell who logged
        // in lately.
        assert_eq!(plain(d.port, "alice", "wrong-pw"), 454);
        assert_eq!(plain(d.port, "nobody", "x"), 454, "unknown user");
        assert_eq!(plain(d.port, "bob", "bob-pw"), 454, "not recently in");
        // Mail for a local address is deferred, never refused as unknown.
        assert_eq!(
            rcpt(d.port, "nobody@example.org"),
            "451 4.3.0 <nobody@example.org>: Temporary lookup failure"
        );
    }
    // The Dovecot socket shares the cache: Postfix's smtpd sees the same.
    let ok = postfix.plain(1, "192.0.2.7", "alice", "alice-pw");
    assert!(ok.starts_with("OK\t1\tuser=alice"), "{ok}");
    let temp = postfix.plain(2, "192.0.2.7", "bob", "bob-pw");
    assert!(
        temp.starts_with("FAIL\t2\t") && temp.ends_with("\ttemp"),
        "{temp}"
    );
    let wrong = postfix.plain(3, "192.0.2.7", "alice", "wrong");
    assert!(
        wrong.starts_with("FAIL\t3\t") && wrong.ends_with("\ttemp"),
        "{wrong}"
    );
    assert!(d.p.exited().is_none(), "the daemon died:\n{}", d.p.log());
    let log = d.p.log();
    assert_eq!(log.matches(OUTAGE).count(), 1, "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(log.contains(&pg.url_without_password()), "{log}");
    pg.restart();
    wait_for(WAIT, "logins from the database again", || {
        (plain(d.port, "bob", "bob-pw") == 235).then_some(())
    });
    set_password(&s, &pg, "dave", "dave-pw");
    wait_for(WAIT, "the user created after the restart", || {
        (plain(d.port, "dave", "dave-pw") == 235).then_some(())
    });
    let log = d.p.log();
    assert_eq!(log.matches(OUTAGE).count(), 1, "{log}");
    assert_eq!(log.matches(RECOVERY).count(), 1, "{log}");
    // Notifications flow again: a change is seen within 2 s.
    set_password(&s, &pg, "dave", "dave-new");
    seen_within("change after recovery", 235, || {
        plain(d.port, "dave", "dave-new")
    });
}

/// A saslauthd request: four length-prefixed fields; the reply text.
fn saslauthd(path: &Path, user: &str, pw: &str) -> String {
    let mut c = std::os::unix::net::UnixStream::connect(path).expect("saslauthd socket");
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = Vec::new();
    for f in [user, pw, "smtp", "example.org"] {
        req.extend_from_slice(&(f.len() as u16).to_be_bytes());
        req.extend_from_slice(f.as_bytes());
    }
    c.write_all(&req).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(out.get(2..).unwrap_or_default()).into_owned()
}

fn auth_sockets_use_the_same_store() {
    let s = Scratch::new();
    let pg = cluster(&s);
    let (dovecot, sasl) = (s.path("auth"), s.path("mux"));
    let d = start(
        &s,
        &pg,
        "a",
        &[
            &format!("dovecot_auth_socket={}", dovecot.display()),
            "dovecot_auth_socket_owner=postfix",
            &format!("saslauthd_socket={}", sasl.display()),
            "saslauthd_socket_owner=postfix",
        ],
    );
    d.p.wait_log("dovecot auth socket");
    let mut c = Dovecot::connect(&dovecot);
    let ok = c.plain(1, "192.0.2.7", "alice", "alice-pw");
    assert!(ok.starts_with("OK\t1\tuser=alice"), "{ok}");
    let no = c.plain(2, "192.0.2.7", "alice", "wrong");
    assert!(no.starts_with("FAIL\t2"), "{no}");
    assert_eq!(saslauthd(&sasl, "bob", "bob-pw"), "OK");
    assert_eq!(saslauthd(&sasl, "bob", "wrong"), "NO");
    // The SMTP listener shares the cache the sockets filled.
    set_password(&s, &pg, "alice", "new-pw");
    seen_within("change on the Dovecot socket", 0, || {
        let r = c.plain(3, "192.0.2.7", "alice", "new-pw");
        if r.starts_with("OK") { 0 } else { 1 }
    });
    assert_eq!(plain(d.port, "alice", "new-pw"), 235);
}

fn an_empty_password_never_logs_in() {
    need("python3", "python3");
    let s = Scratch::new();
    let pg = cluster(&s);
    // Written as plain SQL can: an empty value, and a NULL one (absent).
    pg.superuser(
        "INSERT INTO sasldb VALUES ('empty', 'example.org', 'userPassword', ''), \
         ('null', 'example.org', 'userPassword', NULL)",
    );
    let d = start(&s, &pg, "a", &[]);
    for user in ["empty", "null"] {
        assert_eq!(smtplib(d.port, "CRAM-MD5", user, ""), 535, "{user}");
        assert_eq!(smtplib(d.port, "LOGIN", user, ""), 535, "{user}");
        assert_ne!(
            auth(
                d.port,
                &format!("PLAIN {}", B64.encode(format!("\0{user}\0")))
            ),
            235
        );
        assert_eq!(plain(d.port, user, "x"), 535, "{user}");
    }
    assert_eq!(plain(d.port, "alice", "alice-pw"), 235);
}

/// Start a daemon that must not start; its exit code and messages.
fn refused(s: &Scratch, url: &str) -> (Option<i32>, String) {
    let mut c = s.cmd(SMTPD_AUTH);
    c.env_remove("PGPASSWORD")
        .env("PGPASSFILE", s.path("no-pgpass"))
        .args(["-o", &format!("sasldb_path={url}")])
        .args(["-o", "myhostname=mx.example.org"])
        .args([
            "-o",
            &format!("smtpd_auth_state_dir={}", s.path("state").display()),
        ])
        .args(["-o", "mail_owner=postfix"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())]);
    let mut p = Process::spawn(&mut c, s.path("refused.log"));
    let status = wait_for(WAIT, "smtpd-auth to give up", || p.exited());
    (status.code(), p.log())
}

fn bad_urls_passwords_and_tables_stop_the_start() {
    let s = Scratch::new();
    open_to_mail_owner(&s, &s.path("mail"));
    let pg = Postgres::start();
    let target = pg.url_without_password();
    // No schema yet.
    let (code, log) = refused(&s, &pg.url());
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "smtpd-auth: fatal: {target}: table sasldb does not exist"
        )),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    saslpasswd(&s, &pg, &["--init-schema"], None);
    // A wrong password for the database.
    let wrong = format!(
        "postgresql://sasl:not-{PASSWORD}@127.0.0.1:{}/sasl",
        pg.port
    );
    let (code, log) = refused(&s, &wrong);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("smtpd-auth: fatal: {target}: cannot connect")),
        "{log}"
    );
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    // A URL that does not parse: named without its text.
    let (code, log) = refused(
        &s,
        &format!("postgresql://sasl:{PASSWORD}@127.0.0.1:port/sasl"),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("PostgreSQL URL: cannot parse"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    // A schema from before the index on lowered names: a warning.
    pg.superuser("DROP INDEX sasldb_folded");
    let d = start(&s, &pg, "old-schema", &[]);
    d.p.wait_log("warning: postgresql://sasl@127.0.0.1");
    assert!(
        d.p.log()
            .contains("index sasldb_folded is missing; run saslpasswd --init-schema"),
        "{}",
        d.p.log()
    );
    drop(d);
    // Nobody listening.
    let closed = format!(
        "postgresql://sasl:{PASSWORD}@127.0.0.1:{}/sasl",
        free_port()
    );
    let (code, log) = refused(&s, &closed);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cannot connect"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

/// The daemon's pool connects with the TLS the URL asks for, as the tools
/// do: verified against the right CA it serves logins, and every
/// connection it made to the server was encrypted; against another CA it
/// does not start, and says why.
fn the_daemon_reaches_the_database_over_verified_tls() {
    let s = Scratch::new();
    let tls = TlsFiles::new(&["localhost", "127.0.0.1"]);
    let pg = Postgres::start_tls(&tls);
    saslpasswd(&s, &pg, &["--init-schema"], None);
    set_password(&s, &pg, "alice", "alice-pw");
    let ca = s.path("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("ca");
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}&application_name=smtpd-auth-tls-test",
        pg.url(),
        ca.display()
    );
    let d = start(&s, &pg, "tls", &[&format!("sasldb_path={verified}")]);
    assert_eq!(plain(d.port, "alice", "alice-pw"), 235);
    assert_eq!(plain(d.port, "alice", "wrong"), 535);
    // The server's view of the daemon's connections (pool and LISTEN).
    let plain_ones = pg.superuser(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'smtpd-auth-tls-test' AND NOT ssl",
    );
    let tls_ones = pg.superuser(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'smtpd-auth-tls-test' AND ssl",
    );
    assert_eq!(plain_ones.trim(), "0");
    assert!(
        tls_ones.trim().parse::<u32>().is_ok_and(|n| n >= 1),
        "{tls_ones}"
    );
    drop(d);
    // Another CA: the start fails with the reason, the password unsaid.
    let other = TlsFiles::new(&["localhost", "127.0.0.1"]);
    let wrong_ca = s.path("other-ca.pem");
    std::fs::write(&wrong_ca, &other.ca_pem).expect("ca");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        wrong_ca.display()
    );
    let (code, log) = refused(&s, &url);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot connect") && log.contains("certificate"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

crate::tests!(
    the_daemon_reaches_the_database_over_verified_tls,
    two_daemons_see_every_change_within_2s,
    an_outage_serves_recent_logins_and_recovers,
    auth_sockets_use_the_same_store,
    an_empty_password_never_logs_in,
    bad_urls_passwords_and_tables_stop_the_start,
);
