//! `sasl.*`: the Cyrus SASL application config Postfix's libsasl reads
//! (`<smtpd_sasl_path>.conf`) and what it leaves offered.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Offer, OptionsError, cyrus, postfix_facts, relevant};
use crate::postfix::doctor::Finding;
use crate::postfix::doctor::facts::{Entries, Facts, LibsaslFacts, SaslFacts, Service, accounts};
use crate::saslconf::SaslConfig;

const NEED_CLEARTEXT: [&str; 2] = ["CRAM-MD5", "DIGEST-MD5"];
const KNOWN_VERIFIERS: [&str; 5] = [
    "auxprop",
    "saslauthd",
    "pwcheck",
    "authdaemond",
    "alwaystrue",
];

/// Per application config (once each): `sasl.config`,
/// `sasl.pwcheck_method`, `sasl.auxprop_plugin`; per cyrus service:
/// `sasl.mech_list`; then `sasl.cram_digest` over all they offer.
pub fn check(f: &Facts) -> Vec<Finding> {
    let Some(p) = postfix_facts(f) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut apps_done = BTreeSet::new();
    let mut offered_all: BTreeSet<&'static str> = BTreeSet::new();
    let mut any_cyrus = false;
    let queue = Path::new(p.main.get("queue_directory"));
    for s in relevant(p).0 {
        any_cyrus |= s.sasl_type() == "cyrus";
        let Some(c) = cyrus(s, p) else {
            continue;
        };
        let new_app = apps_done.insert(c.app);
        if new_app {
            out.extend(check_sasl_config(c.sasl, queue));
        }
        let (Some(config), Some(offer)) = (c.config, &c.offer) else {
            continue; // sasl.config explains; what libsasl would do is unknown
        };
        out.push(check_mechs(s, config, offer));
        if new_app && (c.reads_sasldb() || config.auxprop_plugins().contains(&"sql")) {
            let subject = c
                .sasl
                .found
                .first()
                .map_or_else(|| format!("{}.conf", c.app), |p| p.display().to_string());
            out.push(check_auxprop(&subject, config, &f.libsasl));
        }
        offered_all.extend(c.offered());
    }
    if any_cyrus && let Ok(entries) = &f.store.content {
        out.push(check_cram_digest(
            entries,
            &offered_all,
            &f.store.path.display().to_string(),
        ));
    }
    out
}

fn list_or_all(v: &[&str]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// `sasl.mech_list`: some mechanism is left once the security options
/// have filtered `mech_list`.
fn check_mechs(s: &Service, config: &SaslConfig, offer: &Result<Offer, OptionsError>) -> Finding {
    let id = "sasl.mech_list";
    let listed = match config.get("mech_list") {
        Some(v) => format!("mech_list {v}"),
        None => "mech_list unset (every mechanism)".to_string(),
    };
    let o = match offer {
        Ok(o) => o,
        Err(e) => {
            return Finding::error(
                id,
                &s.name,
                format!("{}: {e}", s.name),
                "valid words: noanonymous, noplaintext, noactive, nodictionary, mutual_auth, forward_secrecy".into(),
            );
        }
    };
    let contexts: Vec<(&str, &Vec<&'static str>)> =
        [("without TLS", &o.plain), ("after STARTTLS", &o.tls)]
            .into_iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
            .collect();
    if contexts.is_empty() {
        return Finding::ok(
            id,
            &s.name,
            format!(
                "{}: AUTH is never offered (see postfix.tls_auth_only)",
                s.name
            ),
        );
    }
    if contexts.iter().all(|(_, v)| v.is_empty()) {
        return Finding::error(
            id,
            &s.name,
            format!(
                "{}: no mechanism left: {listed} minus what smtpd_sasl_security_options ({}) and smtpd_sasl_tls_security_options ({}) forbid is nothing, so Postfix offers no AUTH",
                s.name,
                s.get("smtpd_sasl_security_options"),
                s.get("smtpd_sasl_tls_security_options")
            ),
            "allow plaintext mechanisms once TLS is on (smtpd_sasl_security_options = noanonymous, noplaintext; smtpd_sasl_tls_security_options = noanonymous), or add a mechanism the options allow (e.g. SCRAM-SHA-256) to mech_list".into(),
        );
    }
    let shown: Vec<String> = contexts
        .iter()
        .map(|(n, v)| format!("{} {n}", list_or_all(v)))
        .collect();
    Finding::ok(
        id,
        &s.name,
        format!("{}: offers {} ({listed})", s.name, shown.join("; ")),
    )
}

/// `sasl.config`: which file libsasl reads (the first on its path), and
/// whether it parses; then `sasl.pwcheck_method` for a file that does.
fn check_sasl_config(sf: &SaslFacts, queue: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let searched: Vec<String> = sf
        .searched
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let Some(first) = sf.found.first() else {
        out.push(Finding::warning(
            "sasl.config",
            &sf.appname,
            format!(
                "no {}.conf in {}: libsasl's defaults apply (pwcheck_method auxprop, every installed mechanism and auxprop plugin)",
                sf.appname,
                searched.join(", ")
            ),
            format!(
                "create {}/{}.conf with pwcheck_method: auxprop, auxprop_plugin: sasldb and mech_list: PLAIN LOGIN (and CRAM-MD5 DIGEST-MD5 only if needed)",
                searched.first().map_or("/etc/postfix/sasl", String::as_str),
                sf.appname
            ),
        ));
        return out;
    };
    let subject = first.display().to_string();
    let config = match &sf.config {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::error(
                "sasl.config",
                &subject,
                format!("{e}: libsasl refuses the whole file and Postfix's SASL setup fails"),
                "each line is `key: value` (key of letters, digits, - and _; the colon right after it; a non-empty value) or a # comment".into(),
            ));
            return out;
        }
    };
    if sf.found.len() > 1 {
        let ignored: Vec<String> = sf.found[1..]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        out.push(Finding::warning(
            "sasl.config",
            &subject,
            format!(
                "libsasl reads {subject} only; {} also exist and are ignored",
                ignored.join(", ")
            ),
            format!(
                "keep one {}.conf: merge the settings into {subject} and remove the others",
                sf.appname
            ),
        ));
    } else {
        out.push(Finding::ok(
            "sasl.config",
            &subject,
            format!("Postfix's libsasl reads {subject}"),
        ));
    }
    out.push(pwcheck_method(&subject, config, queue));
    out
}

/// `sasl.pwcheck_method`: a verifier libsasl knows, and not `alwaystrue`.
fn pwcheck_method(subject: &str, config: &SaslConfig, queue: &Path) -> Finding {
    let methods = config.pwcheck_methods();
    let unknown: Vec<&str> = methods
        .iter()
        .copied()
        .filter(|m| !KNOWN_VERIFIERS.contains(m))
        .collect();
    if methods.contains(&"alwaystrue") {
        Finding::error(
            "sasl.pwcheck_method",
            subject,
            format!(
                "{subject}: pwcheck_method includes alwaystrue: any password is accepted for PLAIN and LOGIN"
            ),
            "pwcheck_method: auxprop".into(),
        )
    } else if !unknown.is_empty() {
        Finding::error(
            "sasl.pwcheck_method",
            subject,
            format!(
                "{subject}: pwcheck_method {}: unknown verifier {} (libsasl logs \"unknown password verifier\" and PLAIN/LOGIN fail)",
                methods.join(" "),
                unknown.join(" ")
            ),
            "pwcheck_method: auxprop (the sasldb store) or saslauthd".into(),
        )
    } else if methods.contains(&"saslauthd") {
        let sock = config
            .get("saslauthd_path")
            .unwrap_or("/var/run/saslauthd/mux");
        Finding::ok(
            "sasl.pwcheck_method",
            subject,
            format!(
                "{subject}: pwcheck_method {}: PLAIN and LOGIN are checked by saslauthd at {sock} (for a chrooted smtpd: {}), other mechanisms read sasldb",
                methods.join(" "),
                queue.join(sock.trim_start_matches('/')).display()
            ),
        )
    } else {
        Finding::ok(
            "sasl.pwcheck_method",
            subject,
            format!(
                "{subject}: pwcheck_method {}{}",
                methods.join(" "),
                if config.get("pwcheck_method").is_none() {
                    " (libsasl's default)"
                } else {
                    ""
                }
            ),
        )
    }
}

/// `sasl.auxprop_plugin`: the store is among the auxprop plugins asked, and
/// no sql plugin without `sql_select` makes noise.
fn check_auxprop(subject: &str, config: &SaslConfig, libsasl: &LibsaslFacts) -> Finding {
    let id = "sasl.auxprop_plugin";
    let plugins = config.auxprop_plugins();
    let sql_options = config.entries().any(|(k, _)| k.starts_with("sql_"));
    let has_select = config.get("sql_select").is_some();
    if plugins.contains(&"sql") && !has_select {
        return Finding::error(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin {} names sql but sql_select is not set: the sql plugin refuses to load (the log line \"sql_select option missing\"){}",
                plugins.join(" "),
                if plugins.contains(&"sasldb") {
                    ""
                } else {
                    ", and no other plugin is named, so no password is found"
                }
            ),
            "auxprop_plugin: sasldb (this store); use sql only with sql_engine, sql_hostnames, sql_user, sql_passwd, sql_database and sql_select set".into(),
        );
    }
    if plugins.is_empty() {
        if let Some(sql) = &libsasl.sql_plugin
            && !has_select
        {
            return Finding::warning(
                id,
                subject,
                format!(
                    "{subject}: auxprop_plugin unset: libsasl loads every auxprop plugin, including sql ({}) which has no sql_* options{}: it logs \"sql_select option missing\" and stays out; sasldb still works",
                    sql.display(),
                    if sql_options { " but no sql_select" } else { "" }
                ),
                "set auxprop_plugin: sasldb to say which store is meant; the log line goes away when libsasl2-modules-sql is removed (or given sql_select)".into(),
            );
        }
        return Finding::ok(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin unset: every installed auxprop plugin is queried (sasldb among them)"
            ),
        );
    }
    if !plugins.contains(&"sasldb") {
        return Finding::warning(
            id,
            subject,
            format!(
                "{subject}: auxprop_plugin {} does not name sasldb: Postfix does not look accounts up in this store",
                plugins.join(" ")
            ),
            "auxprop_plugin: sasldb".into(),
        );
    }
    Finding::ok(
        id,
        subject,
        format!("{subject}: auxprop_plugin {}", plugins.join(" ")),
    )
}

/// `sasl.cram_digest`: accounts without `userPassword` cannot use the
/// CRAM-MD5 or DIGEST-MD5 offered.
fn check_cram_digest(entries: &Entries, offered: &BTreeSet<&str>, who: &str) -> Finding {
    let id = "sasl.cram_digest";
    let needing: Vec<&str> = NEED_CLEARTEXT
        .iter()
        .copied()
        .filter(|m| offered.contains(m))
        .collect();
    let accts = accounts(entries);
    if needing.is_empty() {
        return Finding::ok(
            id,
            who,
            "CRAM-MD5 and DIGEST-MD5 are not offered".to_string(),
        );
    }
    let lacking: Vec<String> = accts
        .iter()
        .filter(|a| !a.mechanisms.contains(&"CRAM-MD5"))
        .map(|a| a.account.to_string())
        .collect();
    if lacking.is_empty() {
        return Finding::ok(
            id,
            who,
            format!(
                "{} offered; all {} accounts have the userPassword these mechanisms need",
                needing.join(" and "),
                accts.len()
            ),
        );
    }
    const SHOWN: usize = 10;
    let mut names = lacking
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if lacking.len() > SHOWN {
        names.push_str(&format!(" and {} more", lacking.len() - SHOWN));
    }
    Finding::warning(
        id,
        who,
        format!(
            "{} offered, but {} of {} accounts have no userPassword and cannot use them (clients that pick them fail): {names}",
            needing.join(" and "),
            lacking.len(),
            accts.len()
        ),
        "set those passwords again without -n (these mechanisms need the cleartext userPassword), or drop CRAM-MD5 and DIGEST-MD5 from mech_list".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::Level;
    use crate::postfix::doctor::checks::fixtures::{conf, entries, svc};
    use crate::postfix::doctor::checks::offer;
    use crate::postfix::doctor::checks::postfix::check_tls;
    use crate::postfix::doctor::facts::DbFormat;

    #[test]
    fn noplaintext_with_plain_login_only_leaves_nothing() {
        let s = svc(&[
            ("smtpd_sasl_security_options", "noanonymous, noplaintext"),
            (
                "smtpd_sasl_tls_security_options",
                "noanonymous, noplaintext",
            ),
        ]);
        let c = conf("mech_list: plain login\n");
        let o = offer(&s, &c.mech_list());
        assert_eq!(check_mechs(&s, &c, &o).level, Level::Error);
        // The recommended split: no plaintext before TLS, plaintext after.
        let s = svc(&[("smtpd_sasl_security_options", "noanonymous, noplaintext")]);
        let o = offer(&s, &c.mech_list()).unwrap();
        assert_eq!(o.plain, Some(vec![]));
        assert_eq!(o.tls, Some(vec!["PLAIN", "LOGIN"]));
        assert_eq!(check_mechs(&s, &c, &Ok(o.clone())).level, Level::Ok);
        assert_eq!(check_tls(&s, Some(&o)).level, Level::Ok);
        let bad = svc(&[("smtpd_sasl_security_options", "noanonymous, bogus")]);
        assert_eq!(check_mechs(&bad, &c, &offer(&bad, &[])).level, Level::Error);
    }

    #[test]
    fn auxprop_and_sql() {
        let none = LibsaslFacts {
            plugin: None,
            format: DbFormat::Unknown,
            sql_plugin: None,
        };
        let sql = LibsaslFacts {
            sql_plugin: Some("/usr/lib/sasl2/libsql.so.2".into()),
            ..none.clone()
        };
        let f = check_auxprop("s", &conf("auxprop_plugin: sql\n"), &none);
        assert_eq!(f.level, Level::Error);
        assert!(
            f.message.contains("sql_select option missing"),
            "{}",
            f.message
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: sql\nsql_select: x\n"), &none).level,
            Level::Warning
        );
        let f = check_auxprop("s", &conf("pwcheck_method: auxprop\n"), &sql);
        assert_eq!(f.level, Level::Warning);
        assert!(f.message.contains("sql_select option missing"));
        assert_eq!(
            check_auxprop("s", &conf("pwcheck_method: auxprop\n"), &none).level,
            Level::Ok
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: sasldb\n"), &sql).level,
            Level::Ok
        );
        assert_eq!(
            check_auxprop("s", &conf("auxprop_plugin: ldapdb\n"), &none).level,
            Level::Warning
        );
    }

    #[test]
    fn cram_digest_needs_user_password() {
        let e = entries(&[("alice", "r", "userPassword"), ("bob", "r", "authPassword")]);
        let offered: BTreeSet<&str> = ["PLAIN", "CRAM-MD5"].into();
        let f = check_cram_digest(&e, &offered, "s");
        assert_eq!(f.level, Level::Warning);
        assert!(f.message.contains("1 of 2 accounts"), "{}", f.message);
        assert!(f.message.contains("bob@r"), "{}", f.message);
        let plain: BTreeSet<&str> = ["PLAIN"].into();
        assert_eq!(check_cram_digest(&e, &plain, "s").level, Level::Ok);
    }
}
