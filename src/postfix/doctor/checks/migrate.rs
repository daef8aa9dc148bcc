//! `migrate.import`: the store is a sasldb of another libsasl build
//! (Berkeley DB hash on Debian, GDBM on Fedora): how many accounts it
//! holds, the exact command that imports it, and the Postfix change that
//! follows ([`crate::migrate::advice`]).

use std::path::Path;

use super::postfix_facts;
use crate::migrate;
use crate::postfix::doctor::Finding;
use crate::postfix::doctor::facts::Facts;

/// Postfix's default, when `postconf` did not answer.
const QUEUE_DIRECTORY: &str = "/var/spool/postfix";

/// Nothing when the store is not in an old format (`store.file` covers it).
pub fn check(f: &Facts) -> Vec<Finding> {
    let Some(old) = &f.store.foreign else {
        return Vec::new();
    };
    let subject = f.store.path.display().to_string();
    let finding = match &old.detected {
        Ok(found) => {
            let queue = postfix_facts(f)
                .map(|p| p.main.get("queue_directory"))
                .filter(|q| !q.is_empty())
                .unwrap_or(QUEUE_DIRECTORY);
            let mut advice = migrate::advice(&f.store.path, found, Path::new(queue)).into_iter();
            let message = advice.next().unwrap_or_default();
            Finding::error("migrate.import", &subject, message, advice.collect::<Vec<_>>().join("; "))
        }
        Err(e) => Finding::error(
            "migrate.import",
            &subject,
            format!("{subject} is a {} sasldb that cannot be read through: {e}", old.format.name()),
            "repair or restore the file (db5.3_recover for Berkeley DB), then import it with saslpasswd --import".into(),
        ),
    };
    vec![finding]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::{Detected, Format};
    use crate::postfix::doctor::Level;
    use crate::postfix::doctor::checks::fixtures::pf;
    use crate::postfix::doctor::facts::{
        DbFormat, Foreign, LibsaslFacts, PostfixState, StoreFacts,
    };
    use crate::store::StoreError;

    fn facts(foreign: Option<Foreign>, postfix: PostfixState) -> Facts {
        Facts {
            store: StoreFacts {
                path: "/etc/sasldb2".into(),
                data: None,
                lock: None,
                content: Err(StoreError::NotFound("/etc/sasldb2".into())),
                foreign,
                maps: Default::default(),
            },
            postfix,
            libsasl: LibsaslFacts {
                plugin: None,
                format: DbFormat::Unknown,
                sql_plugin: None,
            },
            hostname: "mx".into(),
        }
    }

    fn bdb(accounts: usize) -> Option<Foreign> {
        Some(Foreign {
            format: Format::BerkeleyDbHash,
            detected: Ok(Detected {
                format: Format::BerkeleyDbHash,
                accounts,
                records: accounts * 2,
            }),
        })
    }

    #[test]
    fn an_lmdb_store_gives_no_finding() {
        assert!(check(&facts(None, PostfixState::NotInstalled)).is_empty());
    }

    #[test]
    fn an_old_store_is_counted_with_the_import_command_and_the_postfix_change() {
        let mut p = pf("mx.example.org");
        p.main
            .params
            .insert("queue_directory".into(), "/srv/pf".into());
        let out = check(&facts(bdb(3), PostfixState::Found(Box::new(p))));
        let [f] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!((f.id, f.level), ("migrate.import", Level::Error));
        assert!(
            f.message
                .contains("Berkeley DB hash sasldb with 3 account(s)"),
            "{}",
            f.message
        );
        let hint = f.hint.as_deref().unwrap_or_default();
        assert!(
            hint.contains("mv /etc/sasldb2 /etc/sasldb2.bdb && saslpasswd --import /etc/sasldb2.bdb -f /etc/sasldb2"),
            "{hint}"
        );
        assert!(
            hint.contains("dovecot_auth_socket=/srv/pf/private/auth"),
            "{hint}"
        );
        assert!(hint.contains("smtpd_sasl_type = dovecot"), "{hint}");
        // Without Postfix, its default queue directory.
        let out = check(&facts(bdb(1), PostfixState::NotInstalled));
        assert!(
            out[0]
                .hint
                .as_deref()
                .unwrap_or_default()
                .contains("/var/spool/postfix/private/auth"),
            "{out:?}"
        );
    }

    #[test]
    fn an_unreadable_old_store_says_so() {
        let broken = Some(Foreign {
            format: Format::Gdbm,
            detected: Err(migrate::MigrateError::Bad {
                path: "/etc/sasldb2".into(),
                what: "truncated".into(),
            }),
        });
        let out = check(&facts(broken, PostfixState::NotInstalled));
        assert!(
            out[0].message.contains("GDBM sasldb that cannot be read"),
            "{out:?}"
        );
    }
}
