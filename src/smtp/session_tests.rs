//! The session driven with bytes: relay and recipient policy, sender
//! ownership, AUTH limits and pipelining, with an in-memory directory and
//! a clock the tests move.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::mech::{Credentials, Secrets};
use crate::net::FailureLimiter;
use crate::smtp::accounts::Directory;
use crate::store::{Account, StoreError};

/// Accounts with the password "pw", spelled as stored.
struct Dir(Vec<Account>);

impl Credentials for Dir {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        Ok(self.0.contains(a).then(|| Secrets {
            user_password: Some(b"pw".to_vec()),
            ..Secrets::default()
        }))
    }
}

impl Directory for Dir {
    fn find_account(&self, local: &str, domain: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .0
            .iter()
            .find(|a| {
                a.authid.eq_ignore_ascii_case(local.as_bytes())
                    && a.realm.eq_ignore_ascii_case(domain.as_bytes())
            })
            .cloned())
    }
}

fn dir() -> Dir {
    Dir(vec![
        Account::new("alice", "example.org"),
        Account::new("Carol", "Example.ORG"),
    ])
}

fn policy() -> Policy {
    crate::smtp::policy::example()
}

const OUTSIDE: &str = "192.0.2.7";

fn session(p: Policy, client: &str) -> Session {
    let server = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
    Session::new(p, server, client.parse::<IpAddr>().unwrap(), false)
}

fn reply(a: &Action) -> String {
    match a {
        Action::Reply(l) | Action::Close(l) | Action::StartTls(l) | Action::ReadData(l) => {
            l.last().cloned().unwrap_or_default()
        }
    }
}

/// Send each line, return the last reply line of each.
fn talk(s: &mut Session, lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| reply(&s.line(l.as_bytes(), &dir())))
        .collect()
}

fn rcpt(s: &mut Session, to: &str) -> String {
    reply(&s.line(format!("RCPT TO:<{to}>").as_bytes(), &dir()))
}

fn in_transaction(p: Policy, client: &str) -> Session {
    let mut s = session(p, client);
    talk(&mut s, &["EHLO c", "MAIL FROM:<someone@outside.example>"]);
    s
}

const ROUTED: &[&str] = &[
    "victim%outside.example@localhost",
    "outside.example!victim@localhost",
    "\"victim@outside.example\"@example.org",
    "\"victim%outside.example\"@example.org",
    "\"outside.example!victim\"@example.org",
    "\"victim\\@outside.example\"@example.org",
    "VICTIM%OUTSIDE.EXAMPLE@LOCALHOST",
    "victim%outside.example@localhost.",
    "alice%@example.org",
    "@a.example,@b.example:victim%outside.example@example.org",
];

#[test]
fn routed_recipients_are_relay_access_denied_to_strangers() {
    let mut s = in_transaction(policy(), OUTSIDE);
    for to in ROUTED {
        let r = rcpt(&mut s, to);
        assert!(r.starts_with("554 5.7.1 <"), "{to}: {r}");
        assert!(r.ends_with(">: Relay access denied"), "{to}: {r}");
    }
    assert!(rcpt(&mut s, "victim@[127.0.0.1]").starts_with("554 5.7.1"));
    assert!(rcpt(&mut s, "victim@[IPv6:::1]").starts_with("554 5.7.1"));
    assert!(rcpt(&mut s, "user@localhost@outside.example").starts_with("501 5.1.7"));
    assert!(rcpt(&mut s, "alice@example.org").starts_with("250"));
    assert!(rcpt(&mut s, "\"alice\"@example.org").starts_with("250"));
}

#[test]
fn trusted_and_authenticated_clients_may_route() {
    let mut p = policy();
    p.local_recipient_check = false;
    let mut s = in_transaction(p.clone(), "10.1.2.3");
    assert!(rcpt(&mut s, "victim%outside.example@localhost").starts_with("250"));
    let mut s = session(p, OUTSIDE);
    talk(&mut s, &["EHLO c", "AUTH PLAIN AGFsaWNlAHB3"]);
    assert!(s.authenticated().is_some());
    talk(&mut s, &["MAIL FROM:<alice@example.org>"]);
    assert!(rcpt(&mut s, "\"victim@outside.example\"@example.org").starts_with("250"));
}

#[test]
fn local_recipients_must_be_accounts_or_postmaster() {
    let mut s = in_transaction(policy(), OUTSIDE);
    let r = rcpt(&mut s, "nobody@example.org");
    assert_eq!(
        r,
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table"
    );
    assert!(matches!(
        s.take_events().last(),
        Some(Event::Reject {
            command: "RCPT",
            ..
        })
    ));
    assert!(rcpt(&mut s, "alice@EXAMPLE.org").starts_with("250"));
    // Stored as Carol@Example.ORG.
    assert!(rcpt(&mut s, "carol@example.org").starts_with("250"));
    assert!(rcpt(&mut s, "PostMaster@localhost").starts_with("250"));
    // alice is an account of example.org, not of localhost.
    assert!(rcpt(&mut s, "alice@localhost").starts_with("550 5.1.1"));
    let mut p = policy();
    p.local_recipient_check = false;
    let mut s = in_transaction(p, OUTSIDE);
    assert!(rcpt(&mut s, "nobody@example.org").starts_with("250"));
}

#[test]
fn too_many_recipients() {
    let mut p = policy();
    p.recipient_limit = 2;
    let mut s = in_transaction(p, OUTSIDE);
    assert!(rcpt(&mut s, "alice@example.org").starts_with("250"));
    assert!(rcpt(&mut s, "carol@example.org").starts_with("250"));
    assert_eq!(
        rcpt(&mut s, "postmaster@example.org"),
        "452 4.5.3 Error: too many recipients"
    );
    assert_eq!(
        reply(&s.line(b"DATA", &dir())),
        "354 End data with <CR><LF>.<CR><LF>"
    );
    let env = s.data_done(10).unwrap();
    assert_eq!(env.to.len(), 2);
}

#[test]
fn owned_senders_need_their_owner_however_spelled() {
    let mut p = policy();
    p.recipient_restrictions = vec![Restriction::RejectSenderLoginMismatch];
    for from in [
        "alice@example.org",
        "\"alice\"@example.org",
        "Alice@example.org",
        "ALICE@EXAMPLE.ORG",
        "carol@example.org",
        "\"Carol\"@example.ORG",
    ] {
        let mut s = session(p.clone(), OUTSIDE);
        talk(&mut s, &["EHLO c", &format!("MAIL FROM:<{from}>")]);
        let r = rcpt(&mut s, "alice@example.org");
        assert!(
            r.ends_with("Sender address rejected: not logged in"),
            "{from}: {r}"
        );
    }
    // Logged in as Carol@Example.ORG: her address in any spelling is hers,
    // alice's is not.
    let mut s = session(p, OUTSIDE);
    // \0Carol@Example.ORG\0pw
    talk(
        &mut s,
        &["EHLO c", "AUTH PLAIN AENhcm9sQEV4YW1wbGUuT1JHAHB3"],
    );
    assert!(s.authenticated().is_some());
    talk(&mut s, &["MAIL FROM:<\"carol\"@example.org>"]);
    assert!(rcpt(&mut s, "alice@example.org").starts_with("250"));
    talk(&mut s, &["RSET", "MAIL FROM:<alice@example.org>"]);
    assert!(rcpt(&mut s, "alice@example.org").contains("not owned by user Carol@Example.ORG"));
}

/// A store that cannot be reached (a PostgreSQL outage).
struct Down;

impl Credentials for Down {
    fn secrets(&self, _: &Account) -> Result<Option<Secrets>, StoreError> {
        Err(StoreError::Pg {
            target: "postgresql://sasl@db/sasl".into(),
            message: "database unreachable".into(),
        })
    }
}

impl Directory for Down {}

#[test]
fn a_store_that_cannot_say_defers_instead_of_refusing() {
    let mut p = policy();
    let mut s = session(p.clone(), OUTSIDE);
    let say = |s: &mut Session, l: &str| reply(&s.line(l.as_bytes(), &Down));
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<someone@outside.example>");
    // Never "User unknown" (a bounce) because the store is down.
    assert_eq!(
        say(&mut s, "RCPT TO:<alice@example.org>"),
        "451 4.3.0 <alice@example.org>: Temporary lookup failure"
    );
    assert!(say(&mut s, "RCPT TO:<postmaster@example.org>").starts_with("250"));
    p.local_recipient_check = false;
    p.recipient_restrictions = vec![Restriction::RejectSenderLoginMismatch];
    let mut s = session(p, OUTSIDE);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<alice@example.org>");
    assert_eq!(
        say(&mut s, "RCPT TO:<alice@example.org>"),
        "451 4.3.0 <alice@example.org>: Sender address rejected: Temporary lookup failure"
    );
}

fn limited(p: Policy, client: &str, failures: u32, rate: u32) -> Session {
    let limits = Limiters {
        failures: Arc::new(Mutex::new(FailureLimiter::new(
            failures,
            Duration::from_secs(60),
            Vec::new(),
        ))),
        rate: Arc::new(Mutex::new(FailureLimiter::new(
            rate,
            Duration::from_secs(60),
            Vec::new(),
        ))),
    };
    session(p, client).with_limits(Arc::new(limits))
}

fn failures(s: &mut Session) -> Vec<String> {
    s.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::AuthFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn abandoned_exchanges_are_failures_and_count() {
    let mut s = limited(policy(), OUTSIDE, 3, 0);
    let t0 = Instant::now();
    let d = dir();
    assert!(reply(&s.input(b"EHLO c", false, t0, &d)).starts_with("250"));
    assert!(reply(&s.input(b"AUTH LOGIN", false, t0, &d)).starts_with("334"));
    assert_eq!(
        reply(&s.input(b"*", false, t0, &d)),
        "501 5.7.0 Authentication aborted"
    );
    assert_eq!(failures(&mut s), ["aborted by client"]);
    assert!(reply(&s.input(b"AUTH PLAIN", false, t0, &d)).starts_with("334"));
    assert!(reply(&s.input(b"*", false, t0, &d)).starts_with("501"));
    assert!(reply(&s.input(b"AUTH LOGIN", false, t0, &d)).starts_with("334"));
    // The client hangs up mid-exchange.
    s.connection_lost(t0);
    assert_eq!(
        failures(&mut s),
        ["aborted by client", "connection lost during authentication"]
    );
    assert!(!s.in_auth_exchange());
    // Three failures: the limit is reached, for this client only.
    assert_eq!(
        reply(&s.input(b"AUTH LOGIN", false, t0, &d)),
        "454 4.7.0 Too many authentication failures; try again later"
    );
    let later = t0 + Duration::from_secs(61);
    assert!(reply(&s.input(b"AUTH LOGIN", false, later, &d)).starts_with("334"));
    // Lost with nothing open: no failure.
    assert!(reply(&s.input(b"*", false, later, &d)).starts_with("501"));
    let _ = s.take_events();
    s.connection_lost(later);
    assert!(failures(&mut s).is_empty());
}

#[test]
fn auth_rate_and_its_exemption() {
    let d = dir();
    let t0 = Instant::now();
    for (client, third) in [(OUTSIDE, "450 4.7.1"), ("10.0.0.1", "535")] {
        let mut s = limited(policy(), client, 0, 2);
        s.input(b"EHLO c", false, t0, &d);
        for _ in 0..2 {
            assert!(
                reply(&s.input(b"AUTH PLAIN AGFsaWNlAHdyb25n", false, t0, &d)).starts_with("535")
            );
        }
        let r = reply(&s.input(b"AUTH PLAIN AGFsaWNlAHdyb25n", false, t0, &d));
        assert!(r.starts_with(third), "{client}: {r}");
        assert_eq!(
            s.take_events().contains(&Event::AuthRateExceeded),
            client == OUTSIDE
        );
    }
}

#[test]
fn pipelining_after_a_command_that_must_wait_closes() {
    let d = dir();
    let now = Instant::now();
    let mut s = session(policy(), OUTSIDE);
    let a = s.input(b"EHLO c", true, now, &d);
    assert_eq!(
        a,
        Action::Close(vec![
            "554 5.5.0 Error: SMTP protocol synchronization".into()
        ])
    );
    assert_eq!(
        s.take_events(),
        [Event::PipeliningViolation {
            after: "EHLO".into()
        }]
    );
    // MAIL and RCPT may be pipelined; lines inside an AUTH exchange and
    // authenticated clients are not checked.
    let mut s = session(policy(), OUTSIDE);
    s.input(b"EHLO c", false, now, &d);
    assert!(reply(&s.input(b"MAIL FROM:<>", true, now, &d)).starts_with("250"));
    assert!(reply(&s.input(b"RSET", true, now, &d)).starts_with("250"));
    assert!(reply(&s.input(b"AUTH PLAIN", false, now, &d)).starts_with("334"));
    assert!(reply(&s.input(b"AGFsaWNlAHB3", true, now, &d)).starts_with("235"));
    assert!(reply(&s.input(b"NOOP", true, now, &d)).starts_with("250"));
}

#[test]
fn no_size_limit_advertises_bare_size_and_accepts_any_size() {
    let mut p = policy();
    p.message_size_limit = u64::MAX;
    let mut s = session(p, OUTSIDE);
    let Action::Reply(lines) = s.line(b"EHLO c", &dir()) else {
        panic!("EHLO")
    };
    assert!(lines.iter().any(|l| l == "250-SIZE"), "{lines:?}");
    let r = reply(&s.line(
        b"MAIL FROM:<someone@outside.example> SIZE=99999999999",
        &dir(),
    ));
    assert!(r.starts_with("250"), "{r}");
    // A limit is advertised with its number, and a larger SIZE= refused.
    let mut s = session(policy(), OUTSIDE);
    let Action::Reply(lines) = s.line(b"EHLO c", &dir()) else {
        panic!("EHLO")
    };
    assert!(
        lines.iter().any(|l| l.starts_with("250-SIZE 1")),
        "{lines:?}"
    );
    let r = reply(&s.line(
        b"MAIL FROM:<someone@outside.example> SIZE=99999999999",
        &dir(),
    ));
    assert!(r.starts_with("552"), "{r}");
}
