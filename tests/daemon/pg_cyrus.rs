//! Cyrus SASL's own `sql` auxprop plugin (Debian's libsasl2-modules-sql) and our PostgreSQL
//! store, both ways, configured by exactly the lines the README and the man page give:
//! - a scratch Postfix (Cyrus SASL, `auxprop_plugin: sql`) on a throwaway PostgreSQL
//!   authenticates users made by our `saslpasswd -f URL` over PLAIN and CRAM-MD5, and a `-n`
//!   user (SCRAM verifier only) over SCRAM-SHA-256 (gsasl as the client);
//! - users made by Debian's `saslpasswd2` writing through `sql_insert` are listed by our
//!   `sasldblistusers -f URL`, verified by our `saslpasswd --check` and logged in by
//!   `smtpd-auth` on the same table, which sees saslpasswd2's later changes within 2 s;
//! - a user `saslpasswd2 -d` deleted (NULL values) never logs in through Postfix, and an
//!   empty password never logs in.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

use base64::Engine;

use crate::authd_postfix::{Lab, Postfix, REALM, Sasl, assert_authenticated, assert_refused};
use crate::common::pg::{PASSWORD, Postgres};
use crate::common::*;

/// The Cyrus lines of the README for this database, password included, and a mech_list.
fn cyrus_lines(pg: &Postgres, mechs: &str) -> String {
    format!(
        "pwcheck_method: auxprop
auxprop_plugin: sql
sql_engine: pgsql
sql_hostnames: 127.0.0.1:{port}
sql_user: sasl
sql_passwd: {PASSWORD}
sql_database: sasl
sql_select: SELECT value FROM sasldb WHERE authid='%u' AND realm='%r' AND property='%p' AND value IS NOT NULL
sql_insert: INSERT INTO sasldb (authid,realm,property,value) VALUES ('%u','%r','%p',NULLIF('%v','NULL')) ON CONFLICT (authid,realm,property) DO UPDATE SET value=EXCLUDED.value
sql_update: UPDATE sasldb SET value=NULLIF('%v','NULL') WHERE authid='%u' AND realm='%r' AND property='%p'
mech_list: {mechs}
",
        port = pg.port
    )
}

/// A lab, a PostgreSQL with the schema (made by our saslpasswd) and a Postfix whose Cyrus
/// SASL reads it through the sql plugin.
fn setup() -> (Lab, Postgres, Postfix) {
    need("saslpasswd2", "sasl2-bin");
    need_file(
        "/usr/lib/x86_64-linux-gnu/sasl2/libsql.so",
        "libsasl2-modules-sql",
    );
    let lab = Lab::new();
    let pg = Postgres::start();
    let o = our(&lab, SASLPASSWD, &["--init-schema", "-f", &pg.url()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Debian's Postfix reads smtpd.conf from $config_directory/sasl; set both.
    let sasl_dir = lab.path("postfix/sasl");
    std::fs::create_dir_all(&sasl_dir).expect("mkdir");
    std::fs::write(
        sasl_dir.join("smtpd.conf"),
        cyrus_lines(&pg, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"),
    )
    .expect("smtpd.conf");
    let cyrus = format!(
        "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\ncyrus_sasl_config_path = {}\n",
        sasl_dir.display()
    );
    let mut pf = Postfix::with(&lab, Sasl::Dovecot, &cyrus);
    pf.start();
    (lab, pg, pf)
}

/// One of our tools, the URL's password its only password source.
fn our(lab: &Lab, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = lab.s.cmd(program);
    c.env_remove("PGPASSWORD")
        .env("PGPASSFILE", lab.path("no-pgpass"))
        .args(args);
    run_cmd(&mut c, stdin)
}

/// Debian's saslpasswd2 writing through sql_insert: saslpasswd.conf holds the Cyrus lines.
fn saslpasswd2(lab: &Lab, pg: &Postgres, args: &[&str], pw: &[u8]) -> Output {
    let dir = lab.path("saslpasswd2-conf");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("saslpasswd.conf"),
        cyrus_lines(pg, "PLAIN LOGIN CRAM-MD5"),
    )
    .expect("saslpasswd.conf");
    let mut c = Command::new("saslpasswd2");
    c.env("SASL_CONF_PATH", &dir).args(args);
    run_cmd(&mut c, Some(pw))
}

/// AUTH PLAIN with these bytes as the password, straight over the socket (swaks cannot
/// send an empty one): the server's final reply line.
fn auth_plain_raw(pf: &Postfix, user: &str, pw: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", pf.port)).expect("connect to Postfix");
    stream
        .set_read_timeout(Some(crate::common::daemon::WAIT))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    let mut reply = || loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("read reply");
        assert!(!line.is_empty(), "Postfix closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            break line.trim_end().to_string();
        }
    };
    reply();
    w.write_all(b"EHLO client.lab.example\r\n").expect("write");
    reply();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"));
    w.write_all(format!("AUTH PLAIN {token}\r\n").as_bytes())
        .expect("write");
    let answer = reply();
    let _ = w.write_all(b"QUIT\r\n");
    answer
}

/// gsasl as the SMTP client: whether it authenticated.
fn gsasl(pf: &Postfix, mech: &str, user: &str, pw: &str) -> (bool, String) {
    let o = Command::new("gsasl")
        .args(["--smtp", "--connect", &format!("127.0.0.1:{}", pf.port)])
        .args(["--no-starttls", "-m", mech, "-a", user, "-p", pw])
        .args(["--realm", REALM, "--hostname", "mx.lab.example"])
        .stdin(Stdio::null())
        .output()
        .expect("gsasl");
    let t = format!("{}{}", stdout(&o), stderr(&o));
    (o.status.success() && t.contains("235"), t)
}

fn postfix_cyrus_sql_authenticates_users_made_by_our_saslpasswd() {
    need("swaks", "swaks");
    need("gsasl", "gsasl");
    let (lab, pg, pf) = setup();
    let url = pg.url();
    let set = |extra: &[&str], user: &str, pw: &str| {
        let mut args = vec!["-p", "-c", "-u", REALM, "-f", url.as_str()];
        args.extend_from_slice(extra);
        args.push(user);
        let o = our(&lab, SASLPASSWD, &args, Some(pw.as_bytes()));
        assert!(o.status.success(), "saslpasswd {user}: {}", stderr(&o));
    };
    set(&[], "alice", "alice-secret");
    set(&[], "bob", "b0b s3cret!");
    set(&["-n"], "carol", "carol-scram");
    assert_authenticated(pf.auth("PLAIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("LOGIN", "alice", "alice-secret"));
    assert_authenticated(pf.auth("CRAM-MD5", "alice", "alice-secret"));
    assert_authenticated(pf.auth("CRAM-MD5", "bob", "b0b s3cret!"));
    assert_refused(pf.auth("PLAIN", "alice", "wrong"));
    assert_refused(pf.auth("CRAM-MD5", "alice", "wrong"));
    assert_refused(pf.auth("PLAIN", "nobody", "alice-secret"));
    // -n: only a SCRAM-SHA-256 verifier, which Cyrus's SCRAM plugin reads.
    let (ok, t) = gsasl(&pf, "SCRAM-SHA-256", "carol", "carol-scram");
    assert!(ok, "SCRAM-SHA-256 carol:\n{t}\nmaillog:\n{}", pf.maillog());
    assert!(!gsasl(&pf, "SCRAM-SHA-256", "carol", "wrong").0);
    // A change made by ours is seen at the next login (the plugin reads every time).
    set(&[], "alice", "n3w-secret");
    assert_authenticated(pf.auth("PLAIN", "alice", "n3w-secret"));
    assert_refused(pf.auth("PLAIN", "alice", "alice-secret"));
    // An empty password never logs in.
    let r = auth_plain_raw(&pf, "alice", "");
    assert!(r.starts_with("535"), "{r}");
    assert!(auth_plain_raw(&pf, "alice", "n3w-secret").starts_with("235"));
}

fn saslpasswd2_users_through_sql_insert_are_ours_and_deleted_ones_never_log_in() {
    need("swaks", "swaks");
    let (lab, pg, pf) = setup();
    let url = pg.url();
    for (user, pw) in [("dave", "dave-pw"), ("erin", "erin pw!")] {
        let o = saslpasswd2(&lab, &pg, &["-p", "-c", "-u", REALM, user], pw.as_bytes());
        assert!(o.status.success(), "saslpasswd2 {user}: {}", stderr(&o));
    }
    // saslpasswd2 clears the legacy properties with the literal NULL: NULLIF makes them NULL.
    let rows = pg.rows();
    assert!(
        rows.contains(&format!("dave|{REALM}|userPassword|dave-pw")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| !r.contains("|userPassword|"))
            .all(|r| r.ends_with("|<null>")),
        "{rows:?}"
    );
    // Ours lists and verifies them.
    let o = our(&lab, LISTUSERS, &["-f", &url], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("dave@{REALM}: userPassword\nerin@{REALM}: userPassword\n")
    );
    let check = |user: &str, pw: &str| {
        our(
            &lab,
            SASLPASSWD,
            &["--check", "-p", "-f", &url, &format!("{user}@{REALM}")],
            Some(pw.as_bytes()),
        )
    };
    let o = check("erin", "erin pw!");
    assert!(stdout(&o).contains("password matches"), "{}", stderr(&o));
    assert_eq!(check("erin", "wrong").status.code(), Some(1));
    // ...and smtpd-auth on the same table logs them in, and keeps up with
    // what saslpasswd2 does next (its writes fire the NOTIFY trigger too).
    let ours = crate::pg::start(&lab.s, &pg, "ours", &[]);
    let (dave, erin) = (format!("dave@{REALM}"), format!("erin@{REALM}"));
    assert_eq!(crate::pg::plain(ours.port, &dave, "dave-pw"), 235);
    assert_eq!(
        crate::pg::smtplib(ours.port, "CRAM-MD5", &erin, "erin pw!"),
        235
    );
    assert_eq!(crate::pg::plain(ours.port, &erin, "wrong"), 535);
    assert_authenticated(pf.auth("PLAIN", "dave", "dave-pw"));
    assert_authenticated(pf.auth("CRAM-MD5", "erin", "erin pw!"));
    // saslpasswd2 changes a user made by ours: sql_insert's ON CONFLICT updates it.
    let o = our(
        &lab,
        SASLPASSWD,
        &["-p", "-c", "-u", REALM, "-f", &url, "frank"],
        Some(b"frank-1"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = saslpasswd2(&lab, &pg, &["-p", "-u", REALM, "frank"], b"frank-2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&check("frank", "frank-2")).contains("password matches"));
    // saslpasswd2 -d: NULL values, absent to ours, and no login through Postfix, neither
    // with the old password nor with an empty one (a NULL read as "" would let that in).
    let o = saslpasswd2(&lab, &pg, &["-d", "-u", REALM, "dave"], b"");
    assert!(o.status.success(), "saslpasswd2 -d: {}", stderr(&o));
    assert_eq!(
        pg.query("SELECT count(*) FROM sasldb WHERE authid = 'dave' AND value IS NOT NULL")
            .trim(),
        "0"
    );
    assert!(
        pg.query("SELECT count(*) FROM sasldb WHERE authid = 'dave' AND value IS NULL")
            .trim()
            != "0"
    );
    let o = our(&lab, LISTUSERS, &["-f", &url], None);
    assert!(!stdout(&o).contains("dave@"), "{}", stdout(&o));
    crate::pg::seen_within("saslpasswd2 -d dave", 535, || {
        crate::pg::plain(ours.port, &dave, "dave-pw")
    });
    assert_eq!(crate::pg::plain(ours.port, &dave, ""), 535);
    assert_eq!(check("dave", "dave-pw").status.code(), Some(1));
    assert_refused(pf.auth("PLAIN", "dave", "dave-pw"));
    assert_refused(pf.auth("CRAM-MD5", "dave", "dave-pw"));
    let r = auth_plain_raw(&pf, "dave", "");
    assert!(r.starts_with("535"), "{r}");
    // Ours never accepts an empty password either.
    let o = check("dave", "");
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("password matches"));
}

crate::tests!(
    postfix_cyrus_sql_authenticates_users_made_by_our_saslpasswd,
    saslpasswd2_users_through_sql_insert_are_ours_and_deleted_ones_never_log_in,
);
