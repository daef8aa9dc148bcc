//! The doctor's rules, one module per area (the first part of a finding
//! id). Each area is a `check(&Facts) -> Vec<Finding>`; what several areas
//! derive from the same facts (TLS on a service, the mechanisms it offers,
//! which services count) lives here.

pub mod chroot;
pub mod libsasl;
pub mod migrate;
pub mod postfix;
pub mod realm;
pub mod sasl;
pub mod store;

use std::collections::BTreeSet;

use super::facts::{Facts, PostfixFacts, PostfixState, SaslFacts, Service};
use crate::saslconf::SaslConfig;
use crate::saslconf::security::{self, SecurityOptions, UnknownOption};

/// Postfix's facts, when `postconf` answered.
pub fn postfix_facts(f: &Facts) -> Option<&PostfixFacts> {
    match &f.postfix {
        PostfixState::Found(p) => Some(p),
        _ => None,
    }
}

/// The smtpd services whose SASL settings matter: those with AUTH on, or,
/// when AUTH is on nowhere, main.cf's own values (to explain what they
/// would give). The flag says whether AUTH is on somewhere.
pub fn relevant(p: &PostfixFacts) -> (Vec<&Service>, bool) {
    let auth: Vec<&Service> = auth_services(p);
    if auth.is_empty() {
        (vec![&p.main], false)
    } else {
        (auth, true)
    }
}

/// Services with `smtpd_sasl_auth_enable = yes`.
pub fn auth_services(p: &PostfixFacts) -> Vec<&Service> {
    p.services
        .iter()
        .filter(|s| is_yes(s.get("smtpd_sasl_auth_enable")))
        .collect()
}

/// What a cyrus service's libsasl works with.
pub struct Cyrus<'a> {
    pub app: &'a str,
    pub sasl: &'a SaslFacts,
    /// None when the config file is broken (`sasl.config` explains).
    pub config: Option<&'a SaslConfig>,
    /// The mechanisms offered, once the config is known.
    pub offer: Option<Result<Offer, OptionsError>>,
}

impl Cyrus<'_> {
    /// The mechanisms offered with or without TLS (none when unknown).
    pub fn offered(&self) -> BTreeSet<&'static str> {
        match &self.offer {
            Some(Ok(o)) => o.all(),
            _ => BTreeSet::new(),
        }
    }

    /// Does this service's libsasl read sasldb?
    pub fn reads_sasldb(&self) -> bool {
        self.config.is_some_and(|c| uses_sasldb(c, &self.offered()))
    }
}

/// A cyrus service's SASL view; None for other types, or when no config
/// was gathered for its application name.
pub fn cyrus<'a>(s: &'a Service, p: &'a PostfixFacts) -> Option<Cyrus<'a>> {
    if s.sasl_type() != "cyrus" {
        return None;
    }
    let app = s.sasl_path();
    let sasl = p.sasl.get(app)?;
    let config = sasl.config.as_ref().ok();
    Some(Cyrus {
        app,
        sasl,
        config,
        offer: config.map(|c| offer(s, &c.mech_list())),
    })
}

/// A security options value libsasl would refuse, with the parameter
/// that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct OptionsError {
    pub key: &'static str,
    pub source: UnknownOption,
}

/// An empty value, shown as `empty`.
pub fn shown(v: &str) -> &str {
    if v.trim().is_empty() { "empty" } else { v }
}

/// Postfix's boolean: `yes` (case-insensitive) is true.
pub fn is_yes(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("yes")
}

/// How TLS stands on one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls {
    /// TLS can be had (STARTTLS or wrapper mode).
    pub available: bool,
    /// Every session is TLS before AUTH can happen.
    pub mandatory: bool,
    /// `smtpd_tls_auth_only = yes`.
    pub auth_only: bool,
}

pub fn tls_of(s: &Service) -> Tls {
    let level = match s.get("smtpd_tls_security_level").trim() {
        "" if is_yes(s.get("smtpd_enforce_tls")) => "encrypt",
        "" if is_yes(s.get("smtpd_use_tls")) => "may",
        "" => "none",
        l => l,
    }
    .to_ascii_lowercase();
    let wrapper = is_yes(s.get("smtpd_tls_wrappermode"));
    Tls {
        available: wrapper || level == "may" || level == "encrypt",
        mandatory: wrapper || level == "encrypt",
        auth_only: is_yes(s.get("smtpd_tls_auth_only")),
    }
}

/// Mechanisms a cyrus service offers: before TLS (None when AUTH is not
/// offered without TLS) and after STARTTLS (None without TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub plain: Option<Vec<&'static str>>,
    pub tls: Option<Vec<&'static str>>,
}

impl Offer {
    pub fn all(&self) -> BTreeSet<&'static str> {
        self.plain
            .iter()
            .chain(self.tls.iter())
            .flatten()
            .copied()
            .collect()
    }
}

pub fn offer(s: &Service, mech_list: &[String]) -> Result<Offer, OptionsError> {
    let tls = tls_of(s);
    let options = |key: &'static str| {
        SecurityOptions::parse(s.get(key)).map_err(|source| OptionsError { key, source })
    };
    let plain_opts = options("smtpd_sasl_security_options")?;
    let tls_opts = options("smtpd_sasl_tls_security_options")?;
    let plain = (!tls.mandatory && !tls.auth_only)
        .then(|| security::offered(mech_list, &plain_opts, false));
    let tls = tls
        .available
        .then(|| security::offered(mech_list, &tls_opts, false));
    Ok(Offer { plain, tls })
}

pub const PLAINTEXT: [&str; 2] = ["PLAIN", "LOGIN"];
/// Does a libsasl with this config read sasldb, given the mechanisms it offers?
pub fn uses_sasldb(config: &SaslConfig, offered: &BTreeSet<&str>) -> bool {
    let auxprop = config.pwcheck_methods().contains(&"auxprop")
        || offered.iter().any(|m| !PLAINTEXT.contains(m));
    let plugins = config.auxprop_plugins();
    auxprop && (plugins.is_empty() || plugins.contains(&"sasldb"))
}

/// Facts built by hand for the areas' unit tests.
#[cfg(test)]
pub mod fixtures {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::postfix::doctor::facts::{Entries, PostfixFacts, Service};
    use crate::postfix::perms;
    use crate::saslconf::{self, SaslConfig};

    pub fn svc(pairs: &[(&str, &str)]) -> Service {
        let mut params: BTreeMap<String, String> = [
            ("smtpd_sasl_auth_enable", "yes"),
            ("smtpd_sasl_type", "cyrus"),
            ("smtpd_sasl_path", "smtpd"),
            ("smtpd_sasl_security_options", "noanonymous"),
            ("smtpd_sasl_tls_security_options", "noanonymous"),
            ("smtpd_tls_auth_only", "no"),
            ("smtpd_tls_security_level", "may"),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
            ),
            ("queue_directory", "/var/spool/postfix"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            params.insert(k.to_string(), v.to_string());
        }
        Service {
            name: "smtp/inet".into(),
            chroot: true,
            params,
        }
    }

    pub fn conf(text: &str) -> SaslConfig {
        saslconf::parse(text.as_bytes(), Path::new("/x/smtpd.conf")).unwrap()
    }

    pub fn entries(accounts: &[(&str, &str, &str)]) -> Entries {
        let mut e: Entries = accounts
            .iter()
            .map(|(u, r, p)| (format!("{u}\0{r}\0{p}").into_bytes(), b"secret".to_vec()))
            .collect();
        e.sort();
        e
    }

    pub fn pf(realm: &str) -> PostfixFacts {
        PostfixFacts {
            config_dir: "/etc/postfix".into(),
            mail_owner: "postfix".into(),
            group: "postfix".into(),
            ownership: perms::Ownership { uid: 0, gid: 105 },
            realm: realm.into(),
            realm_source: "myhostname",
            main: svc(&[]),
            services: vec![svc(&[])],
            copy: None,
            sasl: BTreeMap::new(),
            sockets: BTreeMap::new(),
            store_probe: None,
        }
    }
}
