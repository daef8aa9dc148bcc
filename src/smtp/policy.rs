//! Who may send what to whom: the restriction lists of `main.cf`, the
//! "is this domain ours" and "is this client trusted" tests (each written
//! once, here), and the start-up check that relaying is closed. No I/O:
//! the session asks, tests drive it with values.

use std::net::IpAddr;

use super::command::Address;
use crate::net::Cidr;

/// One entry of `smtpd_relay_restrictions` / `smtpd_recipient_restrictions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    PermitMynetworks,
    PermitSaslAuthenticated,
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectNonFqdnRecipient,
    RejectSenderLoginMismatch,
    Reject,
    Permit,
}

impl Restriction {
    /// Postfix's name, for configuration.
    pub fn parse(name: &str) -> Option<Restriction> {
        Some(match name {
            "permit_mynetworks" => Restriction::PermitMynetworks,
            "permit_sasl_authenticated" => Restriction::PermitSaslAuthenticated,
            "permit_auth_destination" => Restriction::PermitAuthDestination,
            "reject_unauth_destination" => Restriction::RejectUnauthDestination,
            "defer_unauth_destination" => Restriction::DeferUnauthDestination,
            "reject_non_fqdn_recipient" => Restriction::RejectNonFqdnRecipient,
            "reject_sender_login_mismatch" => Restriction::RejectSenderLoginMismatch,
            "reject" => Restriction::Reject,
            "permit" => Restriction::Permit,
            _ => return None,
        })
    }
}

/// What ends relaying, as Postfix's `has_required()` looks for it.
const RELAY_ENDERS: [Restriction; 3] = [
    Restriction::RejectUnauthDestination,
    Restriction::DeferUnauthDestination,
    Restriction::Reject,
];

/// Refuse a configuration that relays for anyone, as Postfix's smtpd
/// refuses to start: one of the lists must reach `reject_unauth_destination`,
/// `defer_unauth_destination` or `reject` before any `permit` (after which
/// nothing is evaluated).
pub fn check_relay_closed(
    relay: &[Restriction],
    recipient: &[Restriction],
) -> Result<(), RelayOpen> {
    let closes = |list: &[Restriction]| {
        list.iter()
            .take_while(|r| **r != Restriction::Permit)
            .any(|r| RELAY_ENDERS.contains(r))
    };
    if closes(relay) || closes(recipient) {
        return Ok(());
    }
    Err(RelayOpen)
}

/// A configuration that relays for anyone, worded as Postfix's smtpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, \
     specify at least one working instance of: reject_unauth_destination, \
     defer_unauth_destination or reject"
)]
pub struct RelayOpen;

/// Where mail for a domain goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `mydestination`: delivered here, recipients checked against the store.
    Local,
    /// `relay_domains`: accepted from anyone, handed to the relayhost.
    RelayDomain,
    /// Anywhere else: only trusted or authenticated clients.
    Remote,
}

/// Policy and limits of a listener.
#[derive(Clone, Debug)]
pub struct Policy {
    pub hostname: String,
    /// Domains delivered here (`mydestination`), lower case.
    pub mydestination: Vec<String>,
    /// More domains accepted from anyone, handed on (`relay_domains`).
    pub relay_domains: Vec<String>,
    /// Trusted clients that may relay without AUTH (`mynetworks`).
    pub mynetworks: Vec<Cidr>,
    /// `local_recipient_maps` set: local recipients must be accounts.
    pub local_recipient_check: bool,
    /// `smtpd_recipient_limit` (0: none).
    pub recipient_limit: usize,
    /// Offer and accept AUTH (`smtpd_sasl_auth_enable`).
    pub auth_enabled: bool,
    /// Only after TLS (`smtpd_tls_auth_only`).
    pub auth_needs_tls: bool,
    /// TLS is configured, so STARTTLS is offered.
    pub tls_available: bool,
    /// `smtpd_tls_security_level = encrypt`: no mail or AUTH before TLS.
    pub tls_required: bool,
    /// Mechanisms without and with TLS (SCRAM -PLUS only with TLS).
    pub mechanisms_plain: Vec<&'static str>,
    pub mechanisms_tls: Vec<&'static str>,
    /// `broken_sasl_auth_clients`: also advertise `AUTH=...`.
    pub broken_auth_clients: bool,
    pub message_size_limit: u64,
    pub hard_error_limit: u32,
    /// Evaluated in this order at RCPT; each list ends in "no decision".
    pub relay_restrictions: Vec<Restriction>,
    pub recipient_restrictions: Vec<Restriction>,
    /// Mail for other domains can be handed on (`relayhost` set).
    pub can_relay: bool,
    /// Mail for local domains can be delivered (Maildir base or relayhost).
    pub can_deliver_local: bool,
}

impl Policy {
    /// The one "is this domain ours" test (domains compare without case
    /// and without a trailing dot).
    pub fn destination(&self, domain: &str) -> Destination {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let is = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(domain));
        if is(&self.mydestination) {
            Destination::Local
        } else if is(&self.relay_domains) {
            Destination::RelayDomain
        } else {
            Destination::Remote
        }
    }

    /// The one "is this client in mynetworks" test.
    pub fn trusted(&self, client: IpAddr) -> bool {
        self.mynetworks.iter().any(|c| c.contains(client))
    }

    /// May anyone send to this recipient (Postfix's "authorized
    /// destination")? Ours, and no sender-specified routing in the local
    /// part (`allow_untrusted_routing = no`): `a%b@ours` would otherwise be
    /// relayed by the next hop to `b`.
    pub fn auth_destination(&self, to: &Address) -> bool {
        self.destination(&to.domain) != Destination::Remote && !to.routed()
    }
}

/// A policy for tests: mydestination example.org and localhost,
/// relay_domains relayed.example, mynetworks 10.0.0.0/8, relaying closed.
#[cfg(test)]
pub(crate) fn example() -> Policy {
    Policy {
        hostname: "mx.example.org".into(),
        mydestination: vec!["example.org".into(), "localhost".into()],
        relay_domains: vec!["relayed.example".into()],
        mynetworks: vec![Cidr::parse("10.0.0.0/8").expect("cidr")],
        local_recipient_check: true,
        recipient_limit: 1000,
        auth_enabled: true,
        auth_needs_tls: false,
        tls_available: false,
        tls_required: false,
        mechanisms_plain: vec!["PLAIN", "LOGIN"],
        mechanisms_tls: vec!["PLAIN", "LOGIN"],
        broken_auth_clients: false,
        message_size_limit: 1_000_000,
        hard_error_limit: 1000,
        relay_restrictions: vec![
            Restriction::PermitMynetworks,
            Restriction::PermitSaslAuthenticated,
            Restriction::RejectUnauthDestination,
        ],
        recipient_restrictions: Vec::new(),
        can_relay: true,
        can_deliver_local: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        example()
    }

    #[test]
    fn destinations_and_trust() {
        let p = policy();
        assert_eq!(p.destination("Example.ORG"), Destination::Local);
        assert_eq!(p.destination("localhost."), Destination::Local);
        assert_eq!(p.destination("relayed.example"), Destination::RelayDomain);
        assert_eq!(p.destination("outside.example"), Destination::Remote);
        assert_eq!(p.destination("[127.0.0.1]"), Destination::Remote);
        assert!(p.trusted("10.1.2.3".parse().unwrap()));
        assert!(p.trusted("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.trusted("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn routed_local_parts_are_not_authorized_destinations() {
        let p = policy();
        for rcpt in [
            "victim%outside.example@localhost",
            "outside.example!victim@localhost",
            "\"victim@outside.example\"@example.org",
            "\"victim%outside\"@example.org",
            "\"a\\@b\"@example.org",
            "victim%@relayed.example",
        ] {
            let a = Address::parse(rcpt).unwrap();
            assert!(!p.auth_destination(&a), "{rcpt}");
        }
        for rcpt in [
            "alice@example.org",
            "\"alice\"@example.org",
            "x@relayed.example",
        ] {
            assert!(p.auth_destination(&Address::parse(rcpt).unwrap()), "{rcpt}");
        }
    }

    #[test]
    fn relaying_must_be_closed() {
        use Restriction::*;
        let open = [PermitMynetworks, PermitSaslAuthenticated];
        let err = check_relay_closed(&open, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("smtpd_relay_restrictions or smtpd_recipient_restrictions")
        );
        assert!(check_relay_closed(&[Permit, RejectUnauthDestination], &[]).is_err());
        assert!(check_relay_closed(&open, &[RejectUnauthDestination]).is_ok());
        assert!(check_relay_closed(&[PermitMynetworks, DeferUnauthDestination], &[]).is_ok());
        assert!(check_relay_closed(&[PermitSaslAuthenticated, Reject], &[]).is_ok());
    }
}
