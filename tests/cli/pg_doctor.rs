//! `saslpasswd --doctor -f postgresql://...`: the connection, table, trigger and the role's
//! rights checked against a throwaway PostgreSQL, and the Cyrus lines for the site printed
//! (its host, port, user and database; never the password).
use crate::common::pg::{PASSWORD, Postgres};
use crate::common::*;
use crate::pg::{ok, ready, tool};

fn doctor(s: &Scratch, url: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--doctor", "-f", url];
    args.extend_from_slice(extra);
    tool(s, SASLPASSWD, &args, None)
}

/// A login role with this password and these rights on sasldb.
fn role(pg: &Postgres, name: &str, grant: &str) -> String {
    pg.superuser(&format!("CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}'"));
    if !grant.is_empty() {
        pg.superuser(&format!("GRANT {grant} ON sasldb TO {name}"));
    }
    format!("postgresql://{name}:pw-{name}@127.0.0.1:{}/sasl", pg.port)
}

fn a_healthy_store_passes_and_gets_its_cyrus_lines() {
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    ok(&tool(
        &s,
        SASLPASSWD,
        &["-p", "-c", "-u", "example.org", "-f", &url, "alice"],
        Some(b"pw"),
    ));
    let out = ok(&doctor(&s, &url, &[]));
    assert!(!out.contains(PASSWORD), "{out}");
    for want in [
        &format!("--doctor: postgresql://sasl@127.0.0.1:{}/sasl", pg.port),
        "[pg.connect] connected as role sasl to PostgreSQL 15.",
        "[pg.tls] on this host",
        "[pg.table] table sasldb: authid, realm, property text NOT NULL, value text, primary key (authid, realm, property)",
        "[pg.trigger] trigger sasldb_notify notifies channel sasldb after every INSERT, UPDATE, DELETE and TRUNCATE",
        "[pg.role] role sasl (the table's owner) holds SELECT, INSERT, UPDATE, DELETE, TRUNCATE on sasldb: reads and writes",
        "[pg.values] 1 account with a secret in 1 row; 0 NULL",
        "0 errors, 0 warnings",
        "  pwcheck_method: auxprop\n  auxprop_plugin: sql\n  sql_engine: pgsql\n",
        &format!(
            "  sql_hostnames: 127.0.0.1:{}\n  sql_user: sasl\n  sql_passwd: ...\n  sql_database: sasl\n",
            pg.port
        ),
        "  sql_select: SELECT value FROM sasldb WHERE authid='%u' AND realm='%r' AND property='%p' AND value IS NOT NULL\n",
        "  sql_insert: INSERT INTO sasldb (authid,realm,property,value) VALUES ('%u','%r','%p',NULLIF('%v','NULL')) ON CONFLICT (authid,realm,property) DO UPDATE SET value=EXCLUDED.value\n",
        "  sql_update: UPDATE sasldb SET value=NULLIF('%v','NULL') WHERE authid='%u' AND realm='%r' AND property='%p'\n",
    ] {
        assert!(out.contains(want), "want {want:?}:\n{out}");
    }
    // JSON: the same findings and the lines.
    let out = ok(&doctor(&s, &url, &["--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["schema"], "sasldb-doctor/1");
    assert_eq!(v["errors"], 0);
    let lines = v["cyrus_lines"].as_array().expect("cyrus_lines");
    assert!(lines.iter().any(|l| l == "sql_user: sasl"), "{out}");
    assert!(!out.contains(PASSWORD));
    // Nothing was written.
    assert_eq!(pg.rows().len(), 1);
    // --fix has nothing to do on a database.
    let o = doctor(&s, &url, &["--fix"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--fix apply to a sasldb file"),
        "{}",
        stderr(&o)
    );
}

fn the_roles_rights_are_said() {
    let s = Scratch::new();
    let pg = ready(&s);
    let reader = role(&pg, "reader", "SELECT");
    let out = ok(&doctor(&s, &reader, &[]));
    assert!(
        out.contains(
            "[pg.role] role reader holds SELECT on sasldb: reads only: enough for smtpd-auth"
        ),
        "{out}"
    );
    assert!(out.contains("sql_user: reader"), "{out}");
    assert!(!out.contains("pw-reader"), "{out}");
    let writer = role(&pg, "writer", "SELECT, INSERT, UPDATE, DELETE");
    let out = ok(&doctor(&s, &writer, &[]));
    assert!(
        out.contains("holds SELECT, INSERT, UPDATE, DELETE on sasldb: reads and writes"),
        "{out}"
    );
    let nobody = role(&pg, "nobody", "");
    let o = doctor(&s, &nobody, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "[pg.role] role nobody holds no rights on sasldb: it cannot read the secrets"
        ) && stdout(&o).contains("fix: GRANT SELECT ON sasldb TO nobody"),
        "{}",
        stdout(&o)
    );
}

fn missing_table_trigger_empty_secret_and_dead_database_are_reported() {
    let s = Scratch::new();
    let mut pg = Postgres::start();
    let url = pg.url();
    let o = doctor(&s, &url, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[pg.table] table sasldb does not exist"),
        "{out}"
    );
    assert!(
        out.contains(
            "fix: create it once: saslpasswd --init-schema -f postgresql://sasl@127.0.0.1:"
        ),
        "{out}"
    );
    assert!(out.contains("sql_database: sasl"), "{out}");
    assert_eq!(pg.query("SELECT to_regclass('sasldb') IS NULL").trim(), "t");
    ok(&tool(&s, SASLPASSWD, &["--init-schema", "-f", &url], None));
    pg.superuser("DROP TRIGGER sasldb_notify ON sasldb");
    pg.superuser("INSERT INTO sasldb VALUES ('eve', 'example.org', 'userPassword', '')");
    let o = doctor(&s, &url, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[pg.trigger] no statement-level trigger notifies channel sasldb"),
        "{out}"
    );
    assert!(
        out.contains("[pg.values] 1 row with an empty value (eve@example.org userPassword)"),
        "{out}"
    );
    // A wrong password and a dead server: pg.connect, the lines still printed.
    let bad = url.replace(PASSWORD, "wrong");
    let o = doctor(&s, &bad, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[pg.connect]") && out.contains("password authentication failed"),
        "{out}"
    );
    assert!(!out.contains("wrong"), "{out}");
    pg.stop();
    let o = doctor(&s, &url, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[pg.connect]") && out.contains("cannot connect"),
        "{out}"
    );
    assert!(out.contains("sql_hostnames: 127.0.0.1:"), "{out}");
}

crate::tests!(
    a_healthy_store_passes_and_gets_its_cyrus_lines,
    the_roles_rights_are_said,
    missing_table_trigger_empty_secret_and_dead_database_are_reported,
);
