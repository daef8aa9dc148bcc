//! Unit tests of the PostgreSQL doctor's rules and Cyrus lines.

use super::*;
use crate::postfix::doctor::Level;

fn healthy() -> Db {
    Db {
        version_num: 150_014,
        role: "sasl".into(),
        superuser: false,
        standby: false,
        tls: None,
        table: true,
        columns: WANTED_COLUMNS
            .iter()
            .map(|(n, t, null)| (n.to_string(), t.to_string(), *null))
            .collect(),
        primary_key: vec!["authid".into(), "realm".into(), "property".into()],
        triggers: vec![Trigger {
            name: "sasldb_notify".into(),
            statement: true,
            events: vec!["INSERT", "UPDATE", "DELETE", "TRUNCATE"],
            notifies: true,
        }],
        owner: true,
        rights: WRITER_RIGHTS
            .iter()
            .map(|r| r.to_string())
            .chain(["TRUNCATE".to_string()])
            .collect(),
        counts: Some((3, 1, 2)),
        empty: (vec![], 0),
    }
}

fn facts(url: &str, db: Db) -> PgFacts {
    PgFacts {
        target: crate::store::pg::redacted_url(url),
        site: Site::from_url(url),
        db: Ok(db),
    }
}

fn level(findings: &[Finding], id: &str) -> Level {
    findings
        .iter()
        .find(|f| f.id == id)
        .map_or_else(|| panic!("no {id}: {findings:?}"), |f| f.level)
}

#[test]
fn a_healthy_local_store_has_no_problem() {
    let f = check(&facts(
        "postgresql://sasl:pw@127.0.0.1:5433/sasl",
        healthy(),
    ));
    assert!(f.iter().all(|x| x.level == Level::Ok), "{f:?}");
    assert_eq!(f.len(), 6, "{f:?}");
    assert!(f.iter().all(|x| !x.message.contains("pw@")), "{f:?}");
}

#[test]
fn problems_are_named_with_a_fix() {
    let mut db = healthy();
    db.triggers.clear();
    db.rights = vec!["INSERT".into()];
    db.primary_key = vec!["authid".into()];
    db.columns.pop();
    let f = check(&facts("postgresql://sasl@db.example.org/sasl", db));
    assert_eq!(level(&f, "pg.trigger"), Level::Warning);
    assert_eq!(level(&f, "pg.role"), Level::Error);
    assert_eq!(level(&f, "pg.table"), Level::Error);
    // Over the network without TLS.
    assert_eq!(level(&f, "pg.tls"), Level::Warning);
    let table = f.iter().find(|x| x.id == "pg.table").unwrap();
    assert!(
        table.message.contains("lacks column(s) value text"),
        "{}",
        table.message
    );
    assert!(
        table.message.contains("primary key (authid)"),
        "{}",
        table.message
    );
    // A missing table stops the checks that need it.
    let mut db = healthy();
    db.table = false;
    let f = check(&facts("postgresql://sasl@h/sasl", db));
    assert_eq!(level(&f, "pg.table"), Level::Error);
    assert!(f.iter().all(|x| x.id != "pg.role"));
    // Empty secrets are an error: Cyrus would accept an empty password.
    let mut db = healthy();
    db.empty = (vec!["eve@example.org userPassword".into()], 1);
    let f = check(&facts("postgresql://sasl@127.0.0.1/sasl", db));
    assert_eq!(level(&f, "pg.values"), Level::Error);
}

#[test]
fn readers_need_only_select() {
    let mut db = healthy();
    db.rights = vec!["SELECT".into()];
    db.owner = false;
    let f = check(&facts("postgresql://reader@127.0.0.1/sasl", db));
    let r = f.iter().find(|x| x.id == "pg.role").unwrap();
    assert_eq!(r.level, Level::Ok);
    assert!(
        r.message.contains("holds SELECT on sasldb: reads only"),
        "{}",
        r.message
    );
}

#[test]
fn cyrus_lines_carry_the_sites_values_never_the_password() {
    let site = Site::from_url(
        "postgresql://sasl:hunter2@db1:5433,db2/sasl?sslmode=verify-full&sslrootcert=system",
    )
    .unwrap();
    let lines = cyrus_lines(&site).join("\n");
    assert!(!lines.contains("hunter2"));
    assert!(
        lines.contains("sql_hostnames: db1:5433,db2:5432"),
        "{lines}"
    );
    assert!(
        lines.contains("sql_user: sasl\nsql_passwd: ...\nsql_database: sasl"),
        "{lines}"
    );
    assert!(lines.contains("sql_usessl: yes"), "{lines}");
    assert!(lines.contains("AND value IS NOT NULL"), "{lines}");
    let site = Site::from_url("postgresql://u@127.0.0.1/d").unwrap();
    assert!(site.local);
    assert!(!cyrus_lines(&site).join("\n").contains("sql_usessl"));
}
