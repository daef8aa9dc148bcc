//! `libsasl.db_format`: whether the installed libsasl sasldb plugin reads
//! the LMDB this store is (Debian 12's reads Berkeley DB only).

use super::{cyrus, postfix_facts, relevant};
use crate::postfix::doctor::Finding;
use crate::postfix::doctor::facts::{DbFormat, Facts, LibsaslFacts};

/// Nothing without Postfix; and nothing when a broken SASL config leaves
/// unknown whether any service reads sasldb.
pub fn check(f: &Facts) -> Vec<Finding> {
    let Some(p) = postfix_facts(f) else {
        return Vec::new();
    };
    let mut readers = Vec::new();
    let mut any_cyrus = false;
    let mut config_broken = false;
    for s in relevant(p).0 {
        any_cyrus |= s.sasl_type() == "cyrus";
        let Some(c) = cyrus(s, p) else {
            continue;
        };
        config_broken |= c.config.is_none();
        if c.reads_sasldb() {
            readers.push(s.name.clone());
        }
    }
    if config_broken && readers.is_empty() {
        return Vec::new();
    }
    vec![check_libsasl(&f.libsasl, &readers, any_cyrus)]
}

fn socket_alternative() -> &'static str {
    "serve Postfix from this store through an auth socket instead: run smtpd-auth with dovecot_auth_socket = /var/spool/postfix/private/auth (under queue_directory) and set smtpd_sasl_type = dovecot and smtpd_sasl_path = private/auth in main.cf (or its saslauthd_socket with pwcheck_method: saslauthd and mech_list: PLAIN LOGIN); Postfix then never opens the store"
}

/// `libsasl.db_format` for the services that read sasldb through libsasl.
fn check_libsasl(libsasl: &LibsaslFacts, readers: &[String], any_cyrus: bool) -> Finding {
    let id = "libsasl.db_format";
    let subject = libsasl
        .plugin
        .as_ref()
        .map_or_else(|| "libsasldb".to_string(), |p| p.display().to_string());
    if readers.is_empty() {
        let why = if any_cyrus {
            "no Postfix service reads sasldb through libsasl (pwcheck_method saslauthd with PLAIN/LOGIN only, or auxprop_plugin without sasldb)"
        } else {
            "Postfix uses smtpd_sasl_type = dovecot: it asks an auth socket and never opens sasldb"
        };
        return Finding::ok(
            id,
            &subject,
            format!("{why}, so libsasl's sasldb format does not matter"),
        );
    }
    let Some(plugin) = &libsasl.plugin else {
        return Finding::error(
            id,
            &subject,
            format!(
                "{} read sasldb through libsasl, but no sasldb plugin (libsasldb.so) is installed",
                readers.join(", ")
            ),
            format!(
                "install the sasldb plugin (Debian: libsasl2-modules-db) if it reads LMDB; otherwise {}",
                socket_alternative()
            ),
        );
    };
    match libsasl.format {
        DbFormat::Lmdb => Finding::ok(
            id,
            &subject,
            format!(
                "{}: libsasl's sasldb plugin reads LMDB, the format of this store",
                plugin.display()
            ),
        ),
        DbFormat::Unknown => Finding::warning(
            id,
            &subject,
            format!(
                "{}: cannot tell which database library the sasldb plugin uses",
                plugin.display()
            ),
            format!(
                "check with `ldd {}`: LMDB (liblmdb) reads this store; Berkeley DB or GDBM does not",
                plugin.display()
            ),
        ),
        fmt => Finding::error(
            id,
            &subject,
            format!(
                "{}: libsasl's sasldb plugin reads {}{}, but this store is LMDB: {} (smtpd_sasl_type = cyrus) cannot read it",
                plugin.display(),
                fmt.name(),
                if fmt == DbFormat::BerkeleyDb {
                    " (as Debian 12's libsasl2-modules-db does: it links libdb-5.3)"
                } else {
                    ""
                },
                readers.join(", ")
            ),
            socket_alternative().to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::postfix::doctor::Level;
    use crate::postfix::doctor::checks::fixtures::conf;
    use crate::postfix::doctor::checks::uses_sasldb;

    #[test]
    fn sasldb_use_and_format() {
        let all: BTreeSet<&str> = ["PLAIN", "LOGIN", "CRAM-MD5"].into();
        let plain: BTreeSet<&str> = ["PLAIN", "LOGIN"].into();
        assert!(uses_sasldb(&conf("pwcheck_method: auxprop\n"), &plain));
        assert!(!uses_sasldb(&conf("pwcheck_method: saslauthd\n"), &plain));
        assert!(uses_sasldb(&conf("pwcheck_method: saslauthd\n"), &all));
        assert!(!uses_sasldb(&conf("auxprop_plugin: sql\n"), &all));
        let bdb = LibsaslFacts {
            plugin: Some("/usr/lib/x86_64-linux-gnu/sasl2/libsasldb.so.2".into()),
            format: DbFormat::BerkeleyDb,
            sql_plugin: None,
        };
        let f = check_libsasl(&bdb, &["smtp/inet".into()], true);
        assert_eq!(f.level, Level::Error);
        assert!(
            f.hint
                .as_deref()
                .unwrap_or("")
                .contains("smtpd_sasl_type = dovecot")
        );
        assert_eq!(check_libsasl(&bdb, &[], true).level, Level::Ok);
        let lmdb = LibsaslFacts {
            format: DbFormat::Lmdb,
            ..bdb.clone()
        };
        assert_eq!(
            check_libsasl(&lmdb, &["smtp/inet".into()], true).level,
            Level::Ok
        );
        let missing = LibsaslFacts {
            plugin: None,
            ..bdb
        };
        assert_eq!(
            check_libsasl(&missing, &["smtp/inet".into()], true).level,
            Level::Error
        );
    }
}
