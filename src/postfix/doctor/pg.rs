//! `saslpasswd --doctor -f postgresql://...`: a PostgreSQL store checked
//! (connection, table, trigger, the role's rights, the values Cyrus would
//! read), and the Cyrus `sql` auxprop lines for this database.
//!
//! As for the file store: [`gather`] asks the database at the edge,
//! [`check`] is a pure function of the [`PgFacts`], [`cyrus_lines`] of the
//! [`Site`] (the URL alone, so they are printed even when the database
//! cannot be reached). The password is never part of either.
//!
//! | id | what |
//! |----|------|
//! | `pg.connect` | the database answers (server version, role, TLS) |
//! | `pg.tls` | a connection over the network is encrypted and its certificate checked |
//! | `pg.version` | PostgreSQL 15 or later (writes end in `MERGE`) |
//! | `pg.table` | table sasldb with Cyrus's columns and primary key |
//! | `pg.trigger` | a statement-level trigger notifies channel `sasldb` on every change |
//! | `pg.role` | what this role may do: readers need SELECT only, writers SELECT, INSERT, UPDATE and DELETE |
//! | `pg.values` | no empty secret (Cyrus's sql plugin would accept an empty password) |

use std::str::FromStr;

use postgres::config::Host;

use super::{Finding, count};
use crate::store::pg::{CHANNEL, Mode, PgStore};
use crate::store::pg_tls::{self, SslMode};

/// What the URL says about the site: what Cyrus's lines need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `host:port`, one per host, in order.
    pub hosts: Vec<String>,
    pub user: String,
    pub database: String,
    pub ssl: SslMode,
    /// Every host is loopback or a Unix socket.
    pub local: bool,
}

impl Site {
    pub fn from_url(url: &str) -> Result<Site, String> {
        let (driver_url, tls) = pg_tls::split_url(url).map_err(|e| e.to_string())?;
        let c =
            postgres::Config::from_str(&driver_url).map_err(|e| format!("cannot parse: {e}"))?;
        let ports = c.get_ports();
        let port = |i: usize| {
            ports
                .get(i)
                .or(ports.first().filter(|_| ports.len() == 1))
                .copied()
                .unwrap_or(5432)
        };
        let mut hosts = Vec::new();
        let mut local = true;
        for (i, h) in c.get_hosts().iter().enumerate() {
            let name = match h {
                Host::Tcp(name) => {
                    local &= matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1");
                    name.clone()
                }
                Host::Unix(p) => p.display().to_string(),
            };
            hosts.push(format!("{name}:{}", port(i)));
        }
        if hosts.is_empty() {
            hosts.push(format!("localhost:{}", port(0)));
        }
        let user = c
            .get_user()
            .map(str::to_string)
            .or_else(|| std::env::var("PGUSER").ok())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        let database = c.get_dbname().map_or_else(|| user.clone(), str::to_string);
        Ok(Site {
            hosts,
            user,
            database,
            ssl: tls.mode,
            local,
        })
    }
}

/// The lines of Postfix's `smtpd.conf` (Cyrus SASL with
/// libsasl2-modules-sql) that read this table, the password left out.
pub fn cyrus_lines(site: &Site) -> Vec<String> {
    let mut lines = vec![
        "pwcheck_method: auxprop".to_string(),
        "auxprop_plugin: sql".to_string(),
        "sql_engine: pgsql".to_string(),
        format!("sql_hostnames: {}", site.hosts.join(",")),
        format!("sql_user: {}", site.user),
        "sql_passwd: ...".to_string(),
        format!("sql_database: {}", site.database),
    ];
    // Cyrus's pgsql driver knows only sslmode=require: encryption, no certificate check.
    if matches!(
        site.ssl,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
    ) {
        lines.push("sql_usessl: yes".to_string());
    }
    lines.extend(
        [
            "sql_select: SELECT value FROM sasldb WHERE authid='%u' AND realm='%r' AND property='%p' AND value IS NOT NULL",
            "sql_insert: INSERT INTO sasldb (authid,realm,property,value) VALUES ('%u','%r','%p',NULLIF('%v','NULL')) ON CONFLICT (authid,realm,property) DO UPDATE SET value=EXCLUDED.value",
            "sql_update: UPDATE sasldb SET value=NULLIF('%v','NULL') WHERE authid='%u' AND realm='%r' AND property='%p'",
        ]
        .map(str::to_string),
    );
    lines
}

/// A statement-level trigger on table sasldb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    /// FOR EACH STATEMENT (not ROW).
    pub statement: bool,
    /// Of INSERT, UPDATE, DELETE, TRUNCATE, those it fires on.
    pub events: Vec<&'static str>,
    /// Its function calls `pg_notify('sasldb', ...)` or `NOTIFY sasldb`.
    pub notifies: bool,
}

/// What the database says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Db {
    pub version_num: i32,
    pub role: String,
    pub superuser: bool,
    /// A hot standby (read-only): the first host of a multi-host URL that answered may be one.
    pub standby: bool,
    /// `TLSv1.3` etc. when the connection is encrypted.
    pub tls: Option<String>,
    pub table: bool,
    /// (name, type, nullable), in column order.
    pub columns: Vec<(String, String, bool)>,
    pub primary_key: Vec<String>,
    pub triggers: Vec<Trigger>,
    pub owner: bool,
    /// Of SELECT, INSERT, UPDATE, DELETE, TRUNCATE: those this role holds on sasldb.
    pub rights: Vec<String>,
    /// Rows, NULL rows, accounts with a value (when SELECT is allowed).
    pub counts: Option<(i64, i64, i64)>,
    /// `user@realm property` of rows with an empty value (the first 10), and how many.
    pub empty: (Vec<String>, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgFacts {
    /// The URL without its password.
    pub target: String,
    pub site: Result<Site, String>,
    pub db: Result<Db, String>,
}

const WANTED_COLUMNS: [(&str, &str, bool); 4] = [
    ("authid", "text", false),
    ("realm", "text", false),
    ("property", "text", false),
    ("value", "text", true),
];

/// Ask the database; never writes.
pub fn gather(url: &str) -> PgFacts {
    let site = Site::from_url(url);
    let (target, db) = match PgStore::connect(url, Mode::Inspect) {
        Ok(pg) => (
            pg.target().to_string(),
            inspect(&pg).map_err(|e| e.to_string()),
        ),
        Err(e) => (crate::store::pg::redacted_url(url), Err(e.to_string())),
    };
    PgFacts { target, site, db }
}

/// Column `i` of a text row ("" for NULL).
fn at(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Column `c` of row `r`.
fn cell(rows: &[Vec<Option<String>>], r: usize, c: usize) -> String {
    rows.get(r).map(|row| at(row, c)).unwrap_or_default()
}

fn inspect(pg: &PgStore) -> crate::store::Result<Db> {
    let head = pg.text_rows(
        "inspecting the server",
        "SELECT current_setting('server_version_num'), current_user, \
         (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
         to_regclass('sasldb') IS NOT NULL, \
         (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), \
         pg_is_in_recovery()",
    )?;
    let mut db = Db {
        version_num: cell(&head, 0, 0).parse().unwrap_or(0),
        role: cell(&head, 0, 1),
        superuser: cell(&head, 0, 2) == "t",
        table: cell(&head, 0, 3) == "t",
        tls: head.first().and_then(|r| r.get(4).cloned().flatten()),
        standby: cell(&head, 0, 5) == "t",
        ..Db::default()
    };
    if !db.table {
        return Ok(db);
    }
    let what = "inspecting table sasldb";
    db.columns = pg
        .text_rows(
            what,
            "SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute \
             WHERE attrelid = 'sasldb'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )?
        .iter()
        .map(|r| (at(r, 0), at(r, 1), at(r, 2) == "t"))
        .collect();
    let pk = pg.text_rows(
        what,
        "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) \
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'sasldb'::regclass AND i.indisprimary",
    )?;
    db.primary_key = cell(&pk, 0, 0)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    // tgtype bits: 1 ROW, 4 INSERT, 8 DELETE, 16 UPDATE, 32 TRUNCATE.
    let triggers = pg.text_rows(
        what,
        &format!(
            "SELECT t.tgname, t.tgtype, pg_get_functiondef(t.tgfoid) ~* \
             '(pg_notify\\s*\\(\\s*''{CHANNEL}''|NOTIFY\\s+\"?{CHANNEL}\\M)' \
             FROM pg_trigger t WHERE t.tgrelid = 'sasldb'::regclass AND NOT t.tgisinternal \
             AND t.tgenabled <> 'D' ORDER BY t.tgname"
        ),
    )?;
    db.triggers = triggers
        .iter()
        .map(|r| {
            let bits: i32 = at(r, 1).parse().unwrap_or(0);
            Trigger {
                name: at(r, 0),
                statement: bits & 1 == 0,
                events: [
                    (4, "INSERT"),
                    (16, "UPDATE"),
                    (8, "DELETE"),
                    (32, "TRUNCATE"),
                ]
                .into_iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, e)| e)
                .collect(),
                notifies: at(r, 2) == "t",
            }
        })
        .collect();
    let rights = pg.text_rows(
        what,
        "SELECT p, (SELECT pg_get_userbyid(relowner) = current_user FROM pg_class WHERE oid = 'sasldb'::regclass) \
         FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) WITH ORDINALITY AS u(p, n) \
         WHERE has_table_privilege('sasldb', p) ORDER BY n",
    )?;
    db.owner = cell(&rights, 0, 1) == "t";
    db.rights = rights.iter().map(|r| at(r, 0)).collect();
    if db.rights.iter().any(|r| r == "SELECT") {
        let c = pg.text_rows(
            what,
            "SELECT count(*), count(*) FILTER (WHERE value IS NULL), \
             count(DISTINCT (authid, realm)) FILTER (WHERE value IS NOT NULL) FROM sasldb",
        )?;
        let n = |i| cell(&c, 0, i).parse().unwrap_or(0);
        db.counts = Some((n(0), n(1), n(2)));
        let e = pg.text_rows(
            what,
            "SELECT authid || '@' || realm || ' ' || property, count(*) OVER () FROM sasldb \
             WHERE value = '' ORDER BY 1 LIMIT 10",
        )?;
        db.empty = (
            e.iter().map(|r| at(r, 0)).collect(),
            cell(&e, 0, 1).parse().unwrap_or(0),
        );
    }
    Ok(db)
}

const WRITER_RIGHTS: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// Every finding for these facts.
pub fn check(f: &PgFacts) -> Vec<Finding> {
    let subject = f.target.as_str();
    let db = match &f.db {
        Ok(db) => db,
        Err(e) => {
            return vec![Finding::error(
                "pg.connect",
                subject,
                e.clone(),
                "check the URL's host, port, user and database, the password (URL, PGPASSWORD or ~/.pgpass) and pg_hba.conf; `psql URL` shows the same answer".into(),
            )];
        }
    };
    let mut out = vec![Finding::ok(
        "pg.connect",
        subject,
        format!(
            "connected as role {} to PostgreSQL {}.{}{}{}",
            db.role,
            db.version_num / 10_000,
            db.version_num % 10_000 / 100,
            if db.standby {
                " (a read-only standby: readers work, saslpasswd cannot write here)"
            } else {
                ""
            },
            db.tls.as_ref().map_or_else(
                || ", not encrypted".to_string(),
                |v| format!(", encrypted ({v})")
            )
        ),
    )];
    out.push(tls(f, db));
    if db.version_num < 150_000 {
        out.push(Finding::warning(
            "pg.version",
            subject,
            "the server is older than PostgreSQL 15: reads work, but saslpasswd's writes end in MERGE and fail".into(),
            "upgrade the server to PostgreSQL 15 or later".into(),
        ));
    }
    if !db.table {
        out.push(Finding::error(
            "pg.table",
            subject,
            "table sasldb does not exist (in the role's search_path)".into(),
            format!("create it once: saslpasswd --init-schema -f {subject} (as a role allowed to create tables)"),
        ));
        return out;
    }
    out.push(table(subject, db));
    out.push(trigger(subject, db));
    out.push(role(subject, db));
    if let Some(v) = values(subject, db) {
        out.push(v);
    }
    out
}

fn tls(f: &PgFacts, db: &Db) -> Finding {
    let local = f.site.as_ref().is_ok_and(|s| s.local);
    let mode = f.site.as_ref().map_or(SslMode::Prefer, |s| s.ssl);
    let subject = f.target.as_str();
    match (&db.tls, mode) {
        (Some(_), SslMode::VerifyFull) => Finding::ok(
            "pg.tls",
            subject,
            "encrypted, the server's certificate and name checked (sslmode=verify-full)".into(),
        ),
        (_, _) if local => Finding::ok(
            "pg.tls",
            subject,
            "on this host (loopback or Unix socket): TLS not needed".into(),
        ),
        (Some(_), _) => Finding::warning(
            "pg.tls",
            subject,
            "encrypted, but the server's certificate is not checked against its name: an attacker on the path can pose as the database".into(),
            "add sslmode=verify-full&sslrootcert=/path/to/ca.pem (or sslrootcert=system) to the URL".into(),
        ),
        (None, _) => Finding::warning(
            "pg.tls",
            subject,
            "not encrypted over the network: secrets cross it in clear".into(),
            "turn ssl on in the server and add sslmode=verify-full&sslrootcert=/path/to/ca.pem to the URL".into(),
        ),
    }
}

fn table(subject: &str, db: &Db) -> Finding {
    let have: Vec<(&str, &str, bool)> = db
        .columns
        .iter()
        .map(|(n, t, null)| (n.as_str(), t.as_str(), *null))
        .collect();
    let missing: Vec<String> = WANTED_COLUMNS
        .iter()
        .filter(|w| !have.contains(w))
        .map(|(n, t, null)| format!("{n} {t}{}", if *null { "" } else { " NOT NULL" }))
        .collect();
    let pk_ok = db.primary_key == ["authid", "realm", "property"];
    if missing.is_empty() && pk_ok {
        return Finding::ok(
            "pg.table",
            subject,
            "table sasldb: authid, realm, property text NOT NULL, value text, primary key (authid, realm, property)".into(),
        );
    }
    let mut wrong = Vec::new();
    if !missing.is_empty() {
        wrong.push(format!("lacks column(s) {}", missing.join(", ")));
    }
    if !pk_ok {
        wrong.push(format!(
            "has primary key ({}) instead of (authid, realm, property)",
            db.primary_key.join(", ")
        ));
    }
    Finding::error(
        "pg.table",
        subject,
        format!("table sasldb {}", wrong.join(" and ")),
        "the tools and Cyrus's sql_select need CREATE TABLE sasldb (authid text NOT NULL, realm text NOT NULL, property text NOT NULL, value text, PRIMARY KEY (authid, realm, property)); rename this table and run saslpasswd --init-schema, then copy the rows over".into(),
    )
}

fn trigger(subject: &str, db: &Db) -> Finding {
    let all = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"];
    let good = db.triggers.iter().find(|t| t.statement && t.notifies);
    let hint =
        format!("saslpasswd --init-schema -f {subject} (idempotent) creates trigger sasldb_notify");
    match good {
        Some(t) if all.iter().all(|e| t.events.contains(e)) => Finding::ok(
            "pg.trigger",
            subject,
            format!(
                "trigger {} notifies channel {CHANNEL} after every INSERT, UPDATE, DELETE and TRUNCATE (running smtpd-auth caches drop changed entries at once)",
                t.name
            ),
        ),
        Some(t) => Finding::warning(
            "pg.trigger",
            subject,
            format!(
                "trigger {} notifies channel {CHANNEL} only on {}: other changes reach smtpd-auth's cache only when entries expire",
                t.name,
                t.events.join(", ")
            ),
            hint,
        ),
        None => Finding::warning(
            "pg.trigger",
            subject,
            format!(
                "no statement-level trigger notifies channel {CHANNEL}: changes reach smtpd-auth's cache only when entries expire"
            ),
            hint,
        ),
    }
}

fn role(subject: &str, db: &Db) -> Finding {
    let has = |r: &str| db.rights.iter().any(|x| x == r);
    let held = if db.rights.is_empty() {
        "no rights".to_string()
    } else {
        db.rights.join(", ")
    };
    let who = format!(
        "role {}{}",
        db.role,
        if db.superuser {
            " (a superuser)"
        } else if db.owner {
            " (the table's owner)"
        } else {
            ""
        }
    );
    if !has("SELECT") {
        return Finding::error(
            "pg.role",
            subject,
            format!("{who} holds {held} on sasldb: it cannot read the secrets"),
            format!(
                "GRANT SELECT ON sasldb TO {};  -- readers (smtpd-auth, Postfix's Cyrus, sasldblistusers) need only this",
                db.role
            ),
        );
    }
    let writer = WRITER_RIGHTS.iter().all(|r| has(r));
    let can = if writer {
        "reads and writes: enough for saslpasswd, sasldblistusers, smtpd-auth and Cyrus's saslpasswd2"
    } else if db.rights.len() == 1 {
        "reads only: enough for smtpd-auth, Postfix's Cyrus sql plugin and sasldblistusers; saslpasswd needs SELECT, INSERT, UPDATE and DELETE"
    } else {
        "reads, but cannot write everything saslpasswd writes (SELECT, INSERT, UPDATE and DELETE)"
    };
    let message = format!("{who} holds {held} on sasldb: {can}");
    if db.superuser {
        Finding::warning(
            "pg.role",
            subject,
            message,
            "give the readers (Postfix's smtpd.conf, smtpd-auth) a role of their own: CREATE ROLE sasl_reader LOGIN PASSWORD '...'; GRANT SELECT ON sasldb TO sasl_reader;".into(),
        )
    } else {
        Finding::ok("pg.role", subject, message)
    }
}

fn values(subject: &str, db: &Db) -> Option<Finding> {
    let (rows, nulls, accounts) = db.counts?;
    let (shown, n) = &db.empty;
    if *n > 0 {
        return Some(Finding::error(
            "pg.values",
            subject,
            format!(
                "{} with an empty value ({}{}): Cyrus's sql plugin accepts an empty password for an empty userPassword",
                count(usize::try_from(*n).unwrap_or(usize::MAX), "row"),
                shown.join(", "),
                if *n > 10 { ", ..." } else { "" }
            ),
            "set those passwords again with saslpasswd, or clear the rows: UPDATE sasldb SET value = NULL WHERE value = ''".into(),
        ));
    }
    Some(Finding::ok(
        "pg.values",
        subject,
        format!(
            "{} with a secret in {}; {} NULL (absent: cleared by saslpasswd2, skipped by the sql_select below)",
            count(usize::try_from(accounts).unwrap_or(0), "account"),
            count(usize::try_from(rows).unwrap_or(0), "row"),
            nulls
        ),
    ))
}

#[cfg(test)]
#[path = "pg_tests.rs"]
mod tests;
