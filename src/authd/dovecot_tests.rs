//! Unit tests of the Dovecot protocol session, driven with lines.

use super::*;
use crate::mech::Secrets;
use crate::store::{Account, StoreError};

struct One;
impl Credentials for One {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok(
            (a.authid == b"tim" && a.realm == b"example.org").then(|| Secrets {
                user_password: Some(b"tanstaaftanstaaf".to_vec()),
                ..Secrets::default()
            }),
        )
    }
}

fn session(plaintext_needs_tls: bool) -> Session {
    let mut server = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
    server.scram_iterations = 64;
    Session::new(
        DovecotConfig {
            mechanisms: vec!["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"],
            plaintext_needs_tls,
            require_client_cert: false,
            pid: 42,
            connection_id: 7,
        },
        server,
    )
}

fn feed(s: &mut Session, line: &str) -> Output {
    s.feed(line.as_bytes(), &One, &mut NoLimit)
}

#[test]
fn handshake_puts_mech_before_spid_and_ends_with_done() {
    let h = session(false).handshake();
    assert_eq!(h[0], "VERSION\t1\t2");
    assert_eq!(h[1], "MECH\tSCRAM-SHA-256\tdictionary\tmutual-auth");
    assert_eq!(h[2], "MECH\tCRAM-MD5\tdictionary\tactive");
    assert_eq!(h[3], "MECH\tPLAIN\tplaintext\tdictionary\tactive");
    assert!(h[5].starts_with("SPID\t42") && h[6] == "CUID\t7");
    assert!(h[7].starts_with("COOKIE\t") && h[7].len() == 7 + 32);
    assert_eq!(h.last().map(String::as_str), Some("DONE"));
}

#[test]
fn plain_with_initial_response_and_odd_ids() {
    let mut s = session(false);
    assert!(feed(&mut s, "VERSION\t1\t0").lines.is_empty());
    assert!(feed(&mut s, "CPID\t1234").lines.is_empty());
    let o = feed(
        &mut s,
        "AUTH\t0x1F\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
    );
    assert_eq!(o.lines, vec!["OK\t0x1F\tuser=tim@example.org"]);
    assert_eq!(o.attempts[0].client.as_deref(), Some("192.0.2.7"));
    assert_eq!(o.attempts[0].result, Ok(()));
    let o = feed(
        &mut s,
        "AUTH\t99\tPLAIN\tservice=smtp\tresp=AHRpbQB3cm9uZw==",
    );
    // The account tried goes back for Postfix's sasl_username=.
    assert_eq!(
        o.lines,
        vec!["FAIL\t99\treason=authentication failed\tuser=tim@example.org"]
    );
    assert_eq!(o.attempts[0].user.as_deref(), Some("tim@example.org"));
    // A response that never names anybody: no user=.
    let o = feed(&mut s, "AUTH\t100\tPLAIN\tservice=smtp\tresp=AHRpbQ==");
    assert_eq!(o.lines, vec!["FAIL\t100\treason=authentication failed"]);
    assert_eq!(o.attempts[0].user, None);
}

#[test]
fn multi_step_login_and_empty_initial_response() {
    let mut s = session(false);
    let o = feed(&mut s, "AUTH\t5\tLOGIN\tservice=smtp");
    assert_eq!(o.lines, vec!["CONT\t5\tVXNlcm5hbWU6"]);
    assert_eq!(
        feed(&mut s, "CONT\t5\tdGlt").lines,
        vec!["CONT\t5\tUGFzc3dvcmQ6"]
    );
    let o = feed(&mut s, "CONT\t5\tdGFuc3RhYWZ0YW5zdGFhZg==");
    assert_eq!(o.lines, vec!["OK\t5\tuser=tim@example.org"]);
    // `resp=` without a value: no initial response, empty challenge.
    assert_eq!(
        feed(&mut s, "AUTH\t6\tPLAIN\tresp=").lines,
        vec!["CONT\t6\t"]
    );
    // `resp==` is an explicitly empty one: PLAIN fails on it.
    assert_eq!(
        feed(&mut s, "AUTH\t7\tPLAIN\tresp==").lines,
        vec!["FAIL\t7\treason=authentication failed"]
    );
}

#[test]
fn abandoned_cancelled_unknown_and_oversized() {
    let mut s = session(false);
    feed(&mut s, "AUTH\t1\tLOGIN\tservice=smtp");
    // Postfix abandons 1 without CANCEL and goes on with 2.
    let o = feed(&mut s, "AUTH\t2\tPLAIN\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    assert_eq!(o.lines, vec!["OK\t2\tuser=tim@example.org"]);
    feed(&mut s, "CANCEL\t1");
    assert_eq!(
        feed(&mut s, "CONT\t1\tdGlt").lines,
        vec!["FAIL\t1\treason=Authentication request timed out"]
    );
    assert!(feed(&mut s, "BOGUS\tx").lines.is_empty());
    assert_eq!(
        feed(&mut s, "AUTH\t3\tNTLM\tresp=AA==").lines,
        vec!["FAIL\t3\treason=Unsupported authentication mechanism"]
    );
    assert!(feed(&mut s, &"A".repeat(MAX_LINE + 1)).close);
    assert!(feed(&mut s, "VERSION\t2\t0").close);
    for i in 0..(MAX_PENDING + 10) {
        feed(&mut s, &format!("AUTH\tp{i}\tLOGIN"));
    }
    assert!(s.pending.len() <= MAX_PENDING);
}

#[test]
fn abandoned_exchanges_count_as_failures() {
    struct Count(usize);
    impl Limiter for Count {
        fn allow(&mut self, _c: Option<&str>) -> bool {
            true
        }
        fn failed(&mut self, _c: Option<&str>) {
            self.0 += 1;
        }
    }
    let mut s = session(false);
    let mut l = Count(0);
    let mut feed = |s: &mut Session, line: &str| s.feed(line.as_bytes(), &One, &mut l);
    let cancelled = |o: &Output, user: Option<&str>| {
        o.attempts.len() == 1
            && o.attempts[0].result == Err(AuthError::Cancelled)
            && o.attempts[0].user.as_deref() == user
    };
    // `*` from the client: FAIL, logged.
    feed(&mut s, "AUTH\t1\tLOGIN\trip=192.0.2.1\tresp=dGlt");
    let o = feed(&mut s, "CONT\t1\t*");
    assert_eq!(
        o.lines,
        vec!["FAIL\t1\treason=Authentication aborted by client\tuser=tim@example.org"]
    );
    assert!(cancelled(&o, Some("tim@example.org")));
    // CANCEL, and an id reused while its exchange is pending.
    feed(&mut s, "AUTH\t2\tLOGIN\tresp=dGlt");
    assert!(cancelled(
        &feed(&mut s, "CANCEL\t2"),
        Some("tim@example.org")
    ));
    feed(&mut s, "AUTH\t3\tLOGIN");
    assert!(cancelled(&feed(&mut s, "AUTH\t3\tLOGIN"), None));
    // Disconnecting mid-exchange.
    feed(&mut s, "AUTH\t4\tLOGIN\tresp=dGlt");
    let o = s.disconnect(&mut l);
    assert_eq!(o.attempts.len(), 2, "{:?}", o.attempts);
    assert!(
        o.attempts
            .iter()
            .all(|a| a.result == Err(AuthError::Cancelled))
    );
    assert_eq!(l.0, 5);
    assert!(s.disconnect(&mut l).attempts.is_empty());
}

#[test]
fn plaintext_refused_without_tls_when_configured() {
    let mut s = session(true);
    assert_eq!(
        feed(&mut s, "AUTH\t1\tPLAIN\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm").lines,
        vec!["FAIL\t1\treason=Plaintext authentication disallowed on non-secure connections"]
    );
    assert_eq!(
        feed(
            &mut s,
            "AUTH\t2\tPLAIN\tsecured\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        )
        .lines,
        vec!["OK\t2\tuser=tim@example.org"]
    );
    // Dovecot 2.3's own clients say secured=tls.
    assert_eq!(
        feed(
            &mut s,
            "AUTH\t3\tPLAIN\tsecured=tls\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        )
        .lines,
        vec!["OK\t3\tuser=tim@example.org"]
    );
}

#[test]
fn client_certificate_required_when_configured() {
    let mut s = session(false);
    s.config.require_client_cert = true;
    let plain = "PLAIN\tservice=smtp\tsecured\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
    let o = feed(&mut s, &format!("AUTH\t1\t{plain}"));
    assert_eq!(
        o.lines,
        vec!["FAIL\t1\treason=Client didn't present valid SSL certificate"]
    );
    assert!(o.attempts[0].result.is_err());
    assert_eq!(
        feed(&mut s, &format!("AUTH\t2\t{plain}\tvalid-client-cert")).lines,
        vec!["OK\t2\tuser=tim@example.org"]
    );
    // Off (the default): the flag changes nothing.
    let mut s = session(false);
    assert_eq!(
        feed(&mut s, &format!("AUTH\t3\t{plain}")).lines,
        vec!["OK\t3\tuser=tim@example.org"]
    );
}

#[test]
fn limiter_refuses_and_counts_failures() {
    struct Count(usize);
    impl Limiter for Count {
        fn allow(&mut self, _c: Option<&str>) -> bool {
            self.0 < 2
        }
        fn failed(&mut self, _c: Option<&str>) {
            self.0 += 1;
        }
    }
    let mut s = session(false);
    let mut l = Count(0);
    for id in 1..=2 {
        let o = s.feed(
            format!("AUTH\t{id}\tPLAIN\trip=192.0.2.1\tresp=AHRpbQB4").as_bytes(),
            &One,
            &mut l,
        );
        assert_eq!(
            o.lines,
            vec![format!(
                "FAIL\t{id}\treason=authentication failed\tuser=tim@example.org"
            )]
        );
    }
    let o = s.feed(
        b"AUTH\t3\tPLAIN\trip=192.0.2.1\tresp=AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
        &One,
        &mut l,
    );
    assert!(
        o.lines[0].contains("Too many authentication failures"),
        "{:?}",
        o.lines
    );
}
