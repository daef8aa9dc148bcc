//! Scripted SMTP dialogs (`tests/dialogs/*.dialog`) driven through the
//! sans-I/O session: `C:` lines are what the client sends, `S:` lines the
//! replies expected (each a prefix of the reply line; a single `S:` after a
//! multi-line reply matches its last line), `! tls` / `! closed` assert the
//! action taken, `# key: value` headers set the client address and policy.
use std::net::IpAddr;

use sasldb::mech::{Credentials, Secrets, ServerConfig};
use sasldb::net::Cidr;
use sasldb::smtp::accounts::Directory;
use sasldb::smtp::session::{Action, Policy, Restriction, Session};
use sasldb::store::{Account, StoreError};

/// alice (password alice-pw) and bob (no password) of example.org.
struct Users;
impl Credentials for Users {
    fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
        if *a == Account::new("bob", "example.org") {
            return Ok(Some(Secrets::default()));
        }
        Ok(
            (*a == Account::new("alice", "example.org")).then(|| Secrets {
                user_password: Some(b"alice-pw".to_vec()),
                ..Secrets::default()
            }),
        )
    }
}
impl Directory for Users {}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
}

fn run_dialog(name: &str, text: &str) {
    let client: IpAddr = header(text, "client")
        .unwrap_or("192.0.2.99")
        .parse()
        .unwrap();
    let policy = Policy {
        hostname: "mx.example.org".into(),
        mydestination: vec!["example.org".into()],
        relay_domains: Vec::new(),
        mynetworks: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        local_recipient_check: header(text, "local_recipient_maps") != Some(""),
        recipient_limit: header(text, "recipient_limit").map_or(1000, |v| v.parse().unwrap()),
        auth_enabled: true,
        auth_needs_tls: header(text, "tls_auth_only") == Some("yes"),
        tls_available: true,
        tls_required: header(text, "tls_level") == Some("encrypt"),
        mechanisms_plain: vec!["SCRAM-SHA-256", "PLAIN", "LOGIN"],
        mechanisms_tls: vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"],
        broken_auth_clients: false,
        message_size_limit: 10_240_000,
        hard_error_limit: header(text, "hard_error_limit").map_or(20, |v| v.parse().unwrap()),
        relay_restrictions: header(text, "relay_restrictions")
            .unwrap_or("permit_mynetworks permit_sasl_authenticated reject_unauth_destination")
            .split_whitespace()
            .map(|r| Restriction::parse(r).expect("restriction"))
            .collect(),
        recipient_restrictions: header(text, "recipient_restrictions")
            .unwrap_or("")
            .split_whitespace()
            .map(|r| Restriction::parse(r).expect("restriction"))
            .collect(),
        can_relay: header(text, "relayhost") != Some("none"),
        can_deliver_local: true,
    };
    let server = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
    let mut s = Session::new(policy, server, client, false);
    let mut last: Option<Action> = None;
    let mut replies: Vec<String> = s.greeting();
    let mut expected: Vec<&str> = Vec::new();
    let check = |replies: &[String], expected: &[&str], at: usize| {
        if expected.is_empty() {
            return;
        }
        if expected.len() == 1 {
            let got = replies.last().map(String::as_str).unwrap_or("");
            assert!(
                got.starts_with(expected[0]),
                "{name}:{at}: expected {:?}, got {replies:?}",
                expected[0]
            );
        } else {
            assert_eq!(replies.len(), expected.len(), "{name}:{at}: {replies:?}");
            for (g, e) in replies.iter().zip(expected) {
                assert!(g.starts_with(e), "{name}:{at}: expected {e:?}, got {g:?}");
            }
        }
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(exp) = line
            .strip_prefix("S: ")
            .or_else(|| (line == "S:").then_some(""))
        {
            expected.push(exp);
        } else if let Some(c) = line
            .strip_prefix("C: ")
            .or_else(|| (line == "C:").then_some(""))
        {
            check(&replies, &expected, i + 1);
            expected.clear();
            let action = s.line(c.as_bytes(), &Users);
            replies = match &action {
                Action::Reply(r) | Action::StartTls(r) | Action::ReadData(r) | Action::Close(r) => {
                    r.clone()
                }
            };
            last = Some(action);
        } else if let Some(cmd) = line.strip_prefix("! ") {
            check(&replies, &expected, i + 1);
            expected.clear();
            match cmd {
                "tls" => assert!(
                    matches!(last, Some(Action::StartTls(_))),
                    "{name}:{}: no StartTls",
                    i + 1
                ),
                "closed" => assert!(
                    matches!(last, Some(Action::Close(_))),
                    "{name}:{}: not closed",
                    i + 1
                ),
                other => panic!("{name}: unknown directive {other}"),
            }
        }
    }
    check(&replies, &expected, text.lines().count());
}

fn every_dialog() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogs");
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "dialog") {
            run_dialog(
                &p.file_name().unwrap().to_string_lossy(),
                &std::fs::read_to_string(&p).unwrap(),
            );
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} dialogs found");
}

crate::tests!(every_dialog,);
