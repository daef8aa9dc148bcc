//! `realm.postfix`: the realm Postfix looks users up in against the
//! realms the store's accounts are in.

use std::collections::BTreeMap;

use super::postfix_facts;
use crate::postfix::doctor::Finding;
use crate::postfix::doctor::facts::{Entries, Facts, PostfixFacts, accounts};

/// With Postfix and a readable store.
pub fn check(f: &Facts) -> Vec<Finding> {
    match (postfix_facts(f), &f.store.content) {
        (Some(p), Ok(entries)) => vec![check_realm(entries, p, &f.hostname)],
        _ => Vec::new(),
    }
}

/// A realm that looks like a container id: 12 or more hex digits.
pub fn container_like(realm: &[u8]) -> bool {
    realm.len() >= 12 && realm.iter().all(|b| b.is_ascii_hexdigit())
}

/// `realm.postfix`: accounts exist in the realm Postfix looks logins
/// without `@` up in; if not, say which realm they are in and why that
/// one looks accidental (the host name, a container id).
pub fn check_realm(entries: &Entries, p: &PostfixFacts, hostname: &str) -> Finding {
    let id = "realm.postfix";
    let realm = p.realm.as_bytes();
    let accts = accounts(entries);
    let subject = p.realm.as_str();
    if accts.is_empty() {
        return Finding::ok(
            id,
            subject,
            format!(
                "no accounts yet; Postfix looks logins without @ up in realm {subject} ({})",
                p.realm_source
            ),
        );
    }
    let mut by_realm: BTreeMap<&[u8], usize> = BTreeMap::new();
    for a in &accts {
        *by_realm.entry(a.account.realm.as_slice()).or_default() += 1;
    }
    if let Some(n) = by_realm.get(realm) {
        return Finding::ok(
            id,
            subject,
            format!(
                "{n} of {} accounts are in realm {subject}, the one Postfix looks up for logins without @ ({})",
                accts.len(),
                p.realm_source
            ),
        );
    }
    let suspicious: Vec<(String, usize, &str)> = by_realm
        .iter()
        .filter_map(|(r, n)| {
            let why = if !hostname.is_empty() && r.eq_ignore_ascii_case(hostname.as_bytes()) {
                "the host name"
            } else if container_like(r) {
                "looks like a container id"
            } else {
                return None;
            };
            Some((String::from_utf8_lossy(r).into_owned(), *n, why))
        })
        .collect();
    let realms: Vec<String> = by_realm
        .keys()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    if suspicious.is_empty() {
        return Finding::ok(
            id,
            subject,
            format!(
                "no account is in realm {subject} ({}): users log in as user@realm (realms: {})",
                p.realm_source,
                realms.join(", ")
            ),
        );
    }
    let named: Vec<String> = suspicious
        .iter()
        .map(|(r, n, why)| format!("{n} in {r} ({why})"))
        .collect();
    let first = &suspicious[0].0;
    Finding::warning(
        id,
        subject,
        format!(
            "no account is in realm {subject}, the one Postfix looks up for logins without @ ({}); accounts: {}",
            p.realm_source,
            named.join(", ")
        ),
        format!(
            "create the users again in Postfix's realm: `saslpasswd -c -u {subject} USER` (and `saslpasswd -d -u {first} USER` for the old ones), or set `smtpd_sasl_local_domain = {first}` in main.cf if that is the realm you mean"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::Level;
    use crate::postfix::doctor::checks::fixtures::{entries, pf};

    #[test]
    fn realms() {
        assert!(container_like(b"3f2a9c1b7d4e"));
        assert!(container_like(
            b"3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e3f2a9c1b7d4e1234"
        ));
        assert!(!container_like(b"3f2a9c1b7d4"));
        assert!(!container_like(b"mx.example.org"));
        let p = pf("mx.example.org");
        let e = entries(&[
            ("alice", "mx.example.org", "userPassword"),
            ("bob", "box", "userPassword"),
        ]);
        assert_eq!(check_realm(&e, &p, "box").level, Level::Ok);
        let e = entries(&[
            ("alice", "box", "userPassword"),
            ("bob", "3f2a9c1b7d4e", "userPassword"),
        ]);
        let f = check_realm(&e, &p, "box");
        assert_eq!(f.level, Level::Warning);
        assert!(
            f.message.contains("1 in box (the host name)"),
            "{}",
            f.message
        );
        assert!(f.message.contains("container id"), "{}", f.message);
        assert!(
            f.hint
                .as_deref()
                .unwrap_or("")
                .contains("-u mx.example.org")
        );
        let e = entries(&[("alice", "example.org", "userPassword")]);
        assert_eq!(check_realm(&e, &p, "box").level, Level::Ok);
        assert_eq!(check_realm(&Vec::new(), &p, "box").level, Level::Ok);
    }
}
