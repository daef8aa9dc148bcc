//! `postfix.*`: what main.cf and master.cf say about SMTP AUTH: is it on,
//! may authenticated clients relay, do passwords cross the network in the
//! clear, is the auth socket there.

use super::{Offer, PLAINTEXT, auth_services, cyrus, relevant, shown, tls_of};
use crate::postfix::doctor::Finding;
use crate::postfix::doctor::facts::{Facts, PostfixFacts, PostfixState, Service, SocketState};

/// `postfix.config` always; with Postfix found, AUTH, relay restrictions,
/// TLS and the auth socket of every service that counts.
pub fn check(f: &Facts) -> Vec<Finding> {
    let p = match &f.postfix {
        PostfixState::NotInstalled => {
            return vec![Finding::warning(
                "postfix.config",
                "postconf",
                "Postfix is not installed (no postconf found): only the store was checked".into(),
                "install Postfix, or put postconf on PATH (SASLDB_POSTCONF names it)".into(),
            )];
        }
        PostfixState::Failed(e) => {
            return vec![Finding::error(
                "postfix.config",
                "postconf",
                format!("postconf cannot read Postfix's configuration: {e}"),
                "check the configuration with `postconf -n` (MAIL_CONFIG names its directory)"
                    .into(),
            )];
        }
        PostfixState::Found(p) => p,
    };
    let mut out = vec![postfix_summary(p), auth_enabled(p)];
    let (services, auth_on) = relevant(p);
    for s in services {
        if auth_on {
            out.push(check_restrictions(s));
        }
        match s.sasl_type() {
            "cyrus" => {
                // Only TLS here; the sasl.* checks read the rest.
                if auth_on && let Some(c) = cyrus(s, p) {
                    let offer = c.offer.as_ref().and_then(|o| o.as_ref().ok());
                    out.push(check_tls(s, offer));
                }
            }
            other => {
                if auth_on {
                    out.push(check_tls(s, None));
                }
                out.push(if other == "dovecot" {
                    check_socket(s, p)
                } else {
                    Finding::error(
                        "postfix.sasl_type",
                        &s.name,
                        format!(
                            "{}: smtpd_sasl_type = {other}: Postfix knows cyrus and dovecot",
                            s.name
                        ),
                        "smtpd_sasl_type = cyrus or dovecot".into(),
                    )
                });
            }
        }
    }
    out
}

/// `postfix.sasl_auth_enable`: some smtpd service offers SMTP AUTH.
fn auth_enabled(p: &PostfixFacts) -> Finding {
    let auth = auth_services(p);
    let names = |v: &[&Service]| {
        v.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if p.services.is_empty() {
        Finding::error(
            "postfix.sasl_auth_enable",
            "master.cf",
            "master.cf has no smtpd service: nothing offers SMTP AUTH".into(),
            "add the smtp (and submission) services of Postfix's stock master.cf".into(),
        )
    } else if auth.is_empty() {
        let all: Vec<&Service> = p.services.iter().collect();
        Finding::error(
            "postfix.sasl_auth_enable",
            "main.cf",
            format!(
                "smtpd_sasl_auth_enable is not yes on any smtpd service ({}): Postfix offers no SMTP AUTH",
                names(&all)
            ),
            "`postconf -e smtpd_sasl_auth_enable=yes` (or `-o smtpd_sasl_auth_enable=yes` on the submission service in master.cf), then `postfix reload`".into(),
        )
    } else {
        Finding::ok(
            "postfix.sasl_auth_enable",
            "main.cf",
            format!("SMTP AUTH is on for {}", names(&auth)),
        )
    }
}

fn postfix_summary(p: &PostfixFacts) -> Finding {
    let services: Vec<String> = p
        .services
        .iter()
        .map(|s| {
            if s.chroot {
                format!("{} (chrooted)", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    Finding::ok(
        "postfix.config",
        &p.config_dir.display().to_string(),
        format!(
            "Postfix configuration {}: mail_owner {}, store group {}, smtpd services: {}",
            p.config_dir.display(),
            p.mail_owner,
            p.group,
            if services.is_empty() {
                "none".to_string()
            } else {
                services.join(", ")
            }
        ),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// `permit_sasl_authenticated` comes before the first blocker.
    PermitFirst,
    /// The list never refuses relaying by itself.
    NoBlocker,
    /// The blocker comes first, with `permit_sasl_authenticated` later.
    PermitAfter(String),
    /// A blocker and no `permit_sasl_authenticated`.
    PermitMissing(String),
}

const BLOCKERS: [&str; 4] = [
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
];

pub fn restriction_order(list: &str) -> Order {
    let words: Vec<String> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let permit = words.iter().position(|w| w == "permit_sasl_authenticated");
    let block = words.iter().position(|w| BLOCKERS.contains(&w.as_str()));
    match (permit, block) {
        (_, None) => Order::NoBlocker,
        (Some(p), Some(b)) if p < b => Order::PermitFirst,
        (Some(_), Some(b)) => Order::PermitAfter(words[b].clone()),
        (None, Some(b)) => Order::PermitMissing(words[b].clone()),
    }
}

fn check_restrictions(s: &Service) -> Finding {
    let mut problems = Vec::new();
    let mut permitted = false;
    for name in ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"] {
        match restriction_order(s.get(name)) {
            Order::PermitFirst => permitted = true,
            Order::NoBlocker => {}
            Order::PermitAfter(b) => problems.push(format!(
                "{name} has {b} before permit_sasl_authenticated, so authenticated clients are refused relaying"
            )),
            Order::PermitMissing(b) => problems.push(format!(
                "{name} has {b} and no permit_sasl_authenticated before it, so authenticated clients are refused relaying"
            )),
        }
    }
    let hint = "put permit_sasl_authenticated before reject_unauth_destination, e.g. `postconf -e 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'` (or -o on the service in master.cf), then `postfix reload`";
    if !problems.is_empty() {
        return Finding::error(
            "postfix.restrictions",
            &s.name,
            format!("{}: {}", s.name, problems.join("; ")),
            hint.into(),
        );
    }
    if !permitted {
        return Finding::error(
            "postfix.restrictions",
            &s.name,
            format!(
                "{}: neither smtpd_relay_restrictions ({}) nor smtpd_recipient_restrictions ({}) has permit_sasl_authenticated before reject_unauth_destination: authentication gives no right to relay",
                s.name,
                shown(s.get("smtpd_relay_restrictions")),
                shown(s.get("smtpd_recipient_restrictions"))
            ),
            hint.into(),
        );
    }
    Finding::ok(
        "postfix.restrictions",
        &s.name,
        format!(
            "{}: permit_sasl_authenticated comes before reject_unauth_destination",
            s.name
        ),
    )
}

pub(super) fn check_tls(s: &Service, offer: Option<&Offer>) -> Finding {
    let tls = tls_of(s);
    let id = "postfix.tls_auth_only";
    if tls.auth_only && !tls.available {
        return Finding::error(
            id,
            &s.name,
            format!(
                "{}: smtpd_tls_auth_only = yes but TLS is off (smtpd_tls_security_level = {}): AUTH is never offered",
                s.name,
                shown(s.get("smtpd_tls_security_level"))
            ),
            "turn TLS on: smtpd_tls_security_level = may with smtpd_tls_chain_files (or smtpd_tls_cert_file and smtpd_tls_key_file)".into(),
        );
    }
    if tls.mandatory {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: TLS is mandatory before AUTH (wrapper mode or smtpd_tls_security_level = encrypt)",
                s.name
            ),
        );
    }
    if tls.auth_only {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: smtpd_tls_auth_only = yes: AUTH only after STARTTLS",
                s.name
            ),
        );
    }
    let plaintext: Vec<&str> = match offer {
        Some(o) => o
            .plain
            .iter()
            .flatten()
            .copied()
            .filter(|m| PLAINTEXT.contains(m))
            .collect(),
        // Dovecot-protocol servers (ours included) offer PLAIN and LOGIN.
        None => PLAINTEXT.to_vec(),
    };
    if plaintext.is_empty() {
        return Finding::ok(
            id,
            &s.name,
            format!("{}: no plaintext mechanism before STARTTLS", s.name),
        );
    }
    Finding::warning(
        id,
        &s.name,
        format!(
            "{}: {} offered without TLS (smtpd_tls_auth_only = no): passwords can cross the network in the clear",
            s.name,
            plaintext.join(" and ")
        ),
        "`postconf -e smtpd_tls_auth_only=yes` (with smtpd_tls_security_level = may and a certificate), or smtpd_sasl_security_options = noanonymous, noplaintext with smtpd_sasl_tls_security_options = noanonymous".into(),
    )
}

fn check_socket(s: &Service, p: &PostfixFacts) -> Finding {
    let id = "postfix.auth_socket";
    let Some((path, state)) = p.sockets.get(s.sasl_path()) else {
        return Finding::ok(
            id,
            &s.name,
            format!("{}: smtpd_sasl_path {}", s.name, s.sasl_path()),
        );
    };
    let shown = path.display().to_string();
    match state {
        SocketState::Socket => Finding::ok(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot, socket {shown} exists", s.name),
        ),
        SocketState::Tcp => Finding::ok(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot over TCP ({})", s.name, s.sasl_path()),
        ),
        SocketState::Missing => Finding::error(
            id,
            &shown,
            format!("{}: smtpd_sasl_type = dovecot but nothing listens at {shown}: every AUTH fails", s.name),
            "start the auth server with its socket there (smtpd-auth's dovecot_auth_socket, or Dovecot's auth service); a relative smtpd_sasl_path is relative to queue_directory".into(),
        ),
        SocketState::NotSocket => Finding::error(
            id,
            &shown,
            format!("{}: {shown} is not a socket", s.name),
            "remove it and start the auth server so it creates its socket there".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::Level;
    use crate::postfix::doctor::checks::fixtures::{conf, svc};
    use crate::postfix::doctor::checks::offer;

    #[test]
    fn restriction_order_cases() {
        assert_eq!(
            restriction_order(
                "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
            ),
            Order::PermitFirst
        );
        assert_eq!(
            restriction_order(
                "permit_mynetworks reject_unauth_destination permit_sasl_authenticated"
            ),
            Order::PermitAfter("reject_unauth_destination".into())
        );
        assert_eq!(
            restriction_order("permit_mynetworks, defer_unauth_destination"),
            Order::PermitMissing("defer_unauth_destination".into())
        );
        assert_eq!(restriction_order(""), Order::NoBlocker);
        assert_eq!(
            restriction_order("check_client_access hash:/x, PERMIT_SASL_AUTHENTICATED, reject"),
            Order::PermitFirst
        );
        let s = svc(&[
            ("smtpd_relay_restrictions", ""),
            (
                "smtpd_recipient_restrictions",
                "permit_mynetworks, reject_unauth_destination",
            ),
        ]);
        assert_eq!(check_restrictions(&s).level, Level::Error);
        let s = svc(&[
            ("smtpd_relay_restrictions", ""),
            ("smtpd_recipient_restrictions", ""),
        ]);
        assert_eq!(check_restrictions(&s).level, Level::Error);
        assert_eq!(check_restrictions(&svc(&[])).level, Level::Ok);
    }

    #[test]
    fn tls_auth_only_cases() {
        let c = conf("mech_list: PLAIN LOGIN CRAM-MD5\n");
        let s = svc(&[]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Warning);
        let s = svc(&[("smtpd_tls_auth_only", "yes")]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(o.plain, None);
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Ok);
        let s = svc(&[
            ("smtpd_tls_auth_only", "yes"),
            ("smtpd_tls_security_level", ""),
        ]);
        assert_eq!(check_tls(&s, None).level, Level::Error);
        let s = svc(&[("smtpd_tls_wrappermode", "yes")]);
        assert_eq!(check_tls(&s, None).level, Level::Ok);
        let s = svc(&[("smtpd_tls_security_level", ""), ("smtpd_use_tls", "yes")]);
        assert!(tls_of(&s).available);
        let c = conf("mech_list: CRAM-MD5\n");
        let s = svc(&[]);
        assert_eq!(
            check_tls(&s, offer(&s, &c.mech_list()).ok().as_ref()).level,
            Level::Ok
        );
    }
}
