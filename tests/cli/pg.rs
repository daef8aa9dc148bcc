//! The tools on a PostgreSQL store (`-f postgresql://...`), each test against its own
//! throwaway cluster (tests/common/pg.rs), with every change checked in SQL.
use std::process::Output;

use crate::common::pg::{PASSWORD, Postgres};
use crate::common::*;

/// Run one of our tools with no password source but the URL (no PGPASSWORD, no pgpass),
/// and a HOME of its own (no ~/.postgresql/root.crt).
pub(crate) fn tool(s: &Scratch, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = s.cmd(program);
    c.env_remove("PGPASSWORD")
        .env("PGPASSFILE", s.path("no-pgpass"))
        .env("HOME", s.path("home"))
        .args(args);
    run_cmd(&mut c, stdin)
}

pub(crate) fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// A cluster with the schema in place.
pub(crate) fn ready(s: &Scratch) -> Postgres {
    let pg = Postgres::start();
    ok(&tool(
        s,
        SASLPASSWD,
        &["--init-schema", "-f", &pg.url()],
        None,
    ));
    pg
}

fn set(s: &Scratch, pg: &Postgres, extra: &[&str], user: &str, pw: &str) -> Output {
    let url = pg.url();
    let mut args = vec!["-p", "-c", "-u", "example.org", "-f", &url];
    args.extend_from_slice(extra);
    args.push(user);
    tool(s, SASLPASSWD, &args, Some(pw.as_bytes()))
}

fn init_schema_is_explicit_and_makes_table_and_trigger() {
    let s = Scratch::new();
    let pg = Postgres::start();
    let url = pg.url();
    // Never implicit: a write before --init-schema fails and creates nothing.
    let o = set(&s, &pg, &[], "alice", "s3cret");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("table sasldb does not exist; create it with saslpasswd --init-schema"),
        "{}",
        stderr(&o)
    );
    assert_eq!(pg.query("SELECT to_regclass('sasldb') IS NULL").trim(), "t");
    let out = ok(&tool(&s, SASLPASSWD, &["--init-schema", "-f", &url], None));
    assert!(
        out.contains("table sasldb and trigger sasldb_notify"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");
    // Idempotent.
    ok(&tool(&s, SASLPASSWD, &["--init-schema", "-f", &url], None));
    let cols = pg.query(
        "SELECT column_name || ':' || data_type || ':' || is_nullable FROM information_schema.columns \
         WHERE table_name = 'sasldb' ORDER BY ordinal_position",
    );
    assert_eq!(
        cols,
        "authid:text:NO\nrealm:text:NO\nproperty:text:NO\nvalue:text:YES\n"
    );
    let pk = pg.query(
        "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) \
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'sasldb'::regclass AND i.indisprimary",
    );
    assert_eq!(pk.trim(), "authid,realm,property");
    // Statement-level, on every kind of change.
    let trig = pg.query(
        "SELECT tgname, (tgtype & 1) = 0 FROM pg_trigger WHERE tgrelid = 'sasldb'::regclass AND NOT tgisinternal",
    );
    assert_eq!(trig.trim(), "sasldb_notify|t");
    // A plain SQL write notifies listeners (what makes caches drop entries).
    let heard = pg.query("LISTEN sasldb; INSERT INTO sasldb VALUES ('x', 'y', 'z', 'v')");
    assert!(
        heard.contains("Asynchronous notification \"sasldb\""),
        "{heard}"
    );
    // --init-schema needs a URL.
    let o = tool(&s, SASLPASSWD, &["--init-schema", "-f", "/tmp/x"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--init-schema needs -f postgresql://"));
}

fn create_change_delete_and_noplain_rows_in_sql() {
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    ok(&set(&s, &pg, &[], "alice", "s3cret"));
    assert_eq!(pg.rows(), ["alice|example.org|userPassword|s3cret"]);
    ok(&set(&s, &pg, &[], "alice@other.org", "other"));
    ok(&set(&s, &pg, &[], "alice", "n3w"));
    assert_eq!(
        pg.rows(),
        [
            "alice|example.org|userPassword|n3w",
            "alice|other.org|userPassword|other"
        ]
    );
    // -n: a SCRAM-SHA-256 verifier, and the cleartext gone.
    ok(&set(&s, &pg, &["-n"], "alice", "scr4m"));
    let rows = pg.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with("alice|example.org|authPassword|SCRAM-SHA-256$"),
        "{rows:?}"
    );
    let check = |pw: &str, user: &str| {
        tool(
            &s,
            SASLPASSWD,
            &["--check", "-p", "-f", &url, user],
            Some(pw.as_bytes()),
        )
    };
    assert!(ok(&check("scr4m", "alice@example.org")).contains("password matches"));
    let o = check("n3w", "alice@example.org");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong password"), "{}", stderr(&o));
    let o = check("x", "bob@example.org");
    assert!(stderr(&o).contains("unknown user"), "{}", stderr(&o));
    let o = check("x", "bob@nowhere.org");
    assert!(stderr(&o).contains("unknown realm"), "{}", stderr(&o));
    // Dry run: reported, nothing written.
    let o = ok(&tool(
        &s,
        SASLPASSWD,
        &["-d", "--dry-run", "-f", &url, "alice@example.org"],
        None,
    ));
    assert!(o.contains("would be deleted"), "{o}");
    assert_eq!(pg.rows().len(), 2);
    // Delete: the rows go.
    ok(&tool(
        &s,
        SASLPASSWD,
        &["-d", "-f", &url, "alice@example.org"],
        None,
    ));
    assert_eq!(pg.rows(), ["alice|other.org|userPassword|other"]);
    // Deleting again is a success, as in Cyrus.
    ok(&tool(
        &s,
        SASLPASSWD,
        &["-d", "-f", &url, "alice@example.org"],
        None,
    ));
}

fn batch_is_one_transaction_all_or_nothing() {
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    let mut input = String::new();
    for i in 0..2000 {
        input.push_str(&format!("user{i}:pw{i}\n"));
    }
    input.push_str("user7:changed\n-user8\n");
    let out = ok(&tool(
        &s,
        SASLPASSWD,
        &["--batch", "-", "-u", "example.org", "-f", &url],
        Some(input.as_bytes()),
    ));
    assert!(
        out.contains("2002 operations: 2000 created, 1 updated, 0 unchanged, 1 deleted"),
        "{out}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM sasldb").trim(), "1999");
    assert_eq!(
        pg.query("SELECT value FROM sasldb WHERE authid = 'user7'")
            .trim(),
        "changed"
    );
    // Again: nothing changes.
    let out = ok(&tool(
        &s,
        SASLPASSWD,
        &["--batch", "-", "-u", "example.org", "-f", &url],
        Some(input.as_bytes()),
    ));
    assert!(out.contains("1998 unchanged"), "{out}");
    // A value PostgreSQL text cannot hold stops the whole batch: nothing written.
    let mut bad = b"new1:fine\nnew2:".to_vec();
    bad.extend_from_slice(b"\xff\xfe\n");
    let o = tool(
        &s,
        SASLPASSWD,
        &["--batch", "-", "-u", "example.org", "-f", &url],
        Some(&bad),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));
    assert_eq!(pg.query("SELECT count(*) FROM sasldb").trim(), "1999");
    // A dry run writes nothing.
    let out = ok(&tool(
        &s,
        SASLPASSWD,
        &["--batch", "-", "--dry-run", "-u", "example.org", "-f", &url],
        Some(b"new1:x\n-user1\n"),
    ));
    assert!(
        out.contains("1 created, 0 updated, 0 unchanged, 1 deleted"),
        "{out}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM sasldb").trim(), "1999");
}

fn listing_matches_an_lmdb_store_in_every_format() {
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    let db = s.db();
    let db = db.to_str().unwrap();
    for (user, realm, pw) in [
        ("bob", "b.org", "x"),
        ("alice", "b.org", "y"),
        ("alice", "a.org", "z"),
        ("Ällö", "a.org", "pässword"),
    ] {
        for f in [url.as_str(), db] {
            let o = tool(
                &s,
                SASLPASSWD,
                &["-p", "-c", "-u", realm, "-f", f, user],
                Some(pw.as_bytes()),
            );
            ok(&o);
        }
    }
    // A NULL row (what saslpasswd2 leaves through NULLIF) is absent.
    pg.query("INSERT INTO sasldb VALUES ('ghost', 'a.org', 'userPassword', NULL)");
    for format in ["compat", "table", "json"] {
        let theirs = ok(&tool(&s, LISTUSERS, &["-f", db, "--format", format], None));
        let ours = ok(&tool(
            &s,
            LISTUSERS,
            &["-f", &url, "--format", format],
            None,
        ));
        if format == "json" {
            let strip = |t: &str| -> serde_json::Value {
                let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
                v.as_object_mut().unwrap().remove("path");
                v
            };
            assert_eq!(strip(&ours), strip(&theirs));
            assert!(!ours.contains(PASSWORD), "{ours}");
            assert!(ours.contains(&format!("\"postgresql://sasl@127.0.0.1:{}/sasl\"", pg.port)));
        } else {
            assert_eq!(ours, theirs, "{format}");
        }
        assert!(!ours.contains("ghost"), "{ours}");
    }
    let o = ok(&tool(
        &s,
        LISTUSERS,
        &["-f", &url, "--realm", "b.org"],
        None,
    ));
    assert_eq!(o, "alice@b.org: userPassword\nbob@b.org: userPassword\n");
    // --check never takes a NULL row for an empty password.
    let o = tool(
        &s,
        SASLPASSWD,
        &["--check", "-p", "-f", &url, "ghost@a.org"],
        Some(b"x"),
    );
    assert!(stderr(&o).contains("unknown user"), "{}", stderr(&o));
}

fn bad_urls_wrong_passwords_and_missing_tables_are_clear_errors() {
    let s = Scratch::new();
    let pg = Postgres::start();
    let wrong = format!("postgresql://sasl:wrong-pw@127.0.0.1:{}/sasl", pg.port);
    let cases: Vec<(String, &str)> = vec![
        (
            format!("postgresql://sasl:{PASSWORD}@127.0.0.1:notaport/sasl"),
            "PostgreSQL URL: cannot parse",
        ),
        (
            wrong.clone(),
            "password authentication failed for user \"sasl\"",
        ),
        (pg.url(), "table sasldb does not exist"),
        (
            format!("postgresql://sasl:{PASSWORD}@127.0.0.1:{}/nodb", pg.port),
            "database \"nodb\" does not exist",
        ),
    ];
    for (url, said) in &cases {
        for args in [
            vec!["-p", "-c", "-f", url, "alice@a.org"],
            vec!["--check", "-p", "-f", url, "alice@a.org"],
            vec!["--batch", "-", "-f", url],
        ] {
            let o = tool(&s, SASLPASSWD, &args, Some(b"alice@a.org:pw"));
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(said), "{args:?}: {err}");
            assert!(
                !err.contains(PASSWORD) && !err.contains("wrong-pw"),
                "{err}"
            );
        }
        let o = tool(&s, LISTUSERS, &["-f", url, "--format", "json"], None);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(said), "{}", stderr(&o));
    }
    // Nothing was written anywhere: no table, no file named after the URL.
    assert_eq!(pg.query("SELECT to_regclass('sasldb') IS NULL").trim(), "t");
    assert!(!std::path::Path::new("postgresql:").exists());
    // --import into a database without the table fails there, never turned into a file.
    let o = tool(
        &s,
        SASLPASSWD,
        &["--import", "/nonexistent", "-f", &pg.url()],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("table sasldb does not exist"),
        "{}",
        stderr(&o)
    );
    assert!(!std::path::Path::new("postgresql:").exists());
}

fn empty_password_is_never_stored() {
    let s = Scratch::new();
    let pg = ready(&s);
    let o = set(&s, &pg, &[], "alice", "");
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let o = tool(
        &s,
        SASLPASSWD,
        &["--batch", "-", "-u", "a.org", "-f", &pg.url()],
        Some(b"bob:ok\nalice:\n"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(pg.rows().is_empty(), "{:?}", pg.rows());
}

fn password_from_pgpassword_or_pgpass() {
    let s = Scratch::new();
    let pg = ready(&s);
    let bare = pg.url_without_password();
    // PGPASSWORD.
    let mut c = s.cmd(SASLPASSWD);
    c.env("PGPASSWORD", PASSWORD)
        .env("PGPASSFILE", s.path("none"))
        .args(["-p", "-c", "-u", "a.org", "-f", &bare, "env"]);
    ok(&run_cmd(&mut c, Some(b"pw1")));
    // A pgpass file (libpq's format and rules).
    let pass = s.path("pgpass");
    std::fs::write(
        &pass,
        format!(
            "otherhost:*:*:*:no\n127.0.0.1:{}:sasl:sasl:{PASSWORD}\n",
            pg.port
        ),
    )
    .unwrap();
    let mut c = s.cmd(SASLPASSWD);
    c.env_remove("PGPASSWORD")
        .env("PGPASSFILE", &pass)
        .args(["-p", "-c", "-u", "a.org", "-f", &bare, "file"]);
    ok(&run_cmd(&mut c, Some(b"pw2")));
    assert_eq!(
        pg.rows(),
        ["env|a.org|userPassword|pw1", "file|a.org|userPassword|pw2"]
    );
    // Neither: the server's refusal, said plainly.
    let o = tool(
        &s,
        SASLPASSWD,
        &["-p", "-c", "-f", &bare, "x@a.org"],
        Some(b"pw"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

fn multi_host_url_fails_over_to_a_live_host() {
    let s = Scratch::new();
    let pg = ready(&s);
    let dead = crate::common::daemon::free_port();
    let url = format!(
        "postgresql://sasl:{PASSWORD}@127.0.0.1:{dead},127.0.0.1:{}/sasl",
        pg.port
    );
    let o = tool(
        &s,
        SASLPASSWD,
        &["-p", "-c", "-f", &url, "multi@a.org"],
        Some(b"pw"),
    );
    ok(&o);
    assert_eq!(pg.rows(), ["multi|a.org|userPassword|pw"]);
    let o = ok(&tool(&s, LISTUSERS, &["-f", &url], None));
    assert_eq!(o, "multi@a.org: userPassword\n");
    // A writer insists on a host that takes writes: a read-only one is passed over.
    pg.query("ALTER DATABASE sasl SET default_transaction_read_only = on");
    let o = tool(
        &s,
        SASLPASSWD,
        &["-p", "-c", "-f", &url, "other@a.org"],
        Some(b"pw"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(pg.rows().len(), 1);
}

fn concurrent_batches_serialise_and_lose_nothing() {
    let s = Scratch::new();
    let pg = ready(&s);
    let url = pg.url();
    // Two writers on overlapping accounts at once: each commits whole, one after the
    // other, and the second's reads see the first's commit.
    let input = |tag: &str| -> Vec<u8> {
        (0..3000)
            .flat_map(|i| format!("u{i}:{tag}{i}\n").into_bytes())
            .collect()
    };
    let outs: Vec<Output> = std::thread::scope(|sc| {
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|tag| {
                let (s, url, lines) = (&s, url.clone(), input(tag));
                sc.spawn(move || {
                    tool(
                        s,
                        SASLPASSWD,
                        &["--batch", "-", "-u", "c.org", "-f", &url],
                        Some(&lines),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let said: Vec<String> = outs.iter().map(ok).collect();
    let created: usize = said
        .iter()
        .filter(|o| o.contains("3000 created, 0 updated"))
        .count();
    let updated: usize = said
        .iter()
        .filter(|o| o.contains("0 created, 3000 updated"))
        .count();
    assert_eq!((created, updated), (1, 1), "{said:?}");
    // All rows from one batch: the one that committed last.
    let tags = pg.query("SELECT DISTINCT left(value, 1) FROM sasldb");
    assert_eq!(tags.lines().count(), 1, "{tags}");
    assert_eq!(pg.query("SELECT count(*) FROM sasldb").trim(), "3000");
}

fn sasldb_path_in_the_conf_names_the_database() {
    let s = Scratch::new();
    let pg = ready(&s);
    // The URL (and its password) in <appname>.conf instead of argv.
    s.conf("saslpasswd", &format!("sasldb_path: {}\n", pg.url()));
    ok(&tool(
        &s,
        SASLPASSWD,
        &["-p", "-c", "conf@a.org"],
        Some(b"pw"),
    ));
    assert_eq!(pg.rows(), ["conf|a.org|userPassword|pw"]);
    let o = ok(&tool(
        &s,
        SASLPASSWD,
        &["--check", "-p", "conf@a.org"],
        Some(b"pw"),
    ));
    assert!(o.contains("password matches"), "{o}");
}

crate::tests!(
    sasldb_path_in_the_conf_names_the_database,
    concurrent_batches_serialise_and_lose_nothing,
    multi_host_url_fails_over_to_a_live_host,
    init_schema_is_explicit_and_makes_table_and_trigger,
    create_change_delete_and_noplain_rows_in_sql,
    batch_is_one_transaction_all_or_nothing,
    listing_matches_an_lmdb_store_in_every_format,
    bad_urls_wrong_passwords_and_missing_tables_are_clear_errors,
    empty_password_is_never_stored,
    password_from_pgpassword_or_pgpass,
);
