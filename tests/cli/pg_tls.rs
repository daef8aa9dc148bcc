//! TLS to the database (`sslmode`, `sslrootcert`, as libpq): a throwaway PostgreSQL with
//! `ssl=on` and a certificate from a CA made here; the right CA and name connect, a wrong
//! one is a clear error and nothing is written.
use crate::common::pg::{Postgres, TlsFiles};
use crate::common::*;
use crate::pg::{ok, tool};

/// `url` with these options appended.
fn with(url: &str, opts: &str) -> String {
    format!("{url}?{opts}")
}

fn write_ca(s: &Scratch, name: &str, tls: &TlsFiles) -> String {
    let path = s.path(name);
    std::fs::write(&path, &tls.ca_pem).expect("ca file");
    path.display().to_string()
}

/// A set through `url`: its output.
fn set(s: &Scratch, url: &str, user: &str) -> std::process::Output {
    tool(
        s,
        SASLPASSWD,
        &["-p", "-c", "-u", "example.org", "-f", url, user],
        Some(b"s3cret"),
    )
}

fn verify_full_with_the_right_ca_connects_over_tls() {
    let s = Scratch::new();
    let tls = TlsFiles::new(&["localhost", "127.0.0.1"]);
    let pg = Postgres::start_tls(&tls);
    let ca = write_ca(&s, "ca.pem", &tls);
    // channel_binding=require: SCRAM-SHA-256-PLUS, so the login is bound to this TLS session
    // (the tls-server-end-point hash must be right, or the server refuses the login).
    let url = with(
        &pg.url(),
        &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    );
    let out = ok(&tool(&s, SASLPASSWD, &["--init-schema", "-f", &url], None));
    assert!(!out.contains(crate::common::pg::PASSWORD), "{out}");
    ok(&set(&s, &url, "alice"));
    assert_eq!(pg.rows(), ["alice|example.org|userPassword|s3cret"]);
    let listed = ok(&tool(&s, LISTUSERS, &["-f", &url], None));
    assert!(listed.contains("alice@example.org"), "{listed}");
    // The server saw encrypted connections from our role.
    let log = pg.log();
    assert!(
        log.lines()
            .any(|l| l.contains("user=sasl") && l.contains("SSL enabled")),
        "{log}"
    );
    // verify-ca with the name unchecked works too; and the default (prefer) uses TLS.
    ok(&set(
        &s,
        &with(&pg.url(), &format!("sslmode=verify-ca&sslrootcert={ca}")),
        "bob",
    ));
    ok(&set(&s, &pg.url(), "carol"));
    assert_eq!(pg.rows().len(), 3);
}

fn wrong_ca_or_wrong_host_name_is_a_clear_error_and_writes_nothing() {
    let s = Scratch::new();
    // The certificate names a host the client does not connect to.
    let tls = TlsFiles::new(&["db.example.org"]);
    let pg = Postgres::start_tls(&tls);
    let ca = write_ca(&s, "ca.pem", &tls);
    let other = write_ca(&s, "other-ca.pem", &TlsFiles::new(&["127.0.0.1"]));
    ok(&tool(
        &s,
        SASLPASSWD,
        &["--init-schema", "-f", &pg.url()],
        None,
    ));
    let fails = |url: &str, want: &str| {
        let o = set(&s, url, "mallory");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "want {want:?}: {err}");
        assert!(err.contains("postgresql://sasl@127.0.0.1:"), "{err}");
        assert!(!err.contains(crate::common::pg::PASSWORD), "{err}");
    };
    fails(
        &with(
            &pg.url(),
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        "invalid peer certificate",
    );
    fails(
        &with(&pg.url(), &format!("sslmode=verify-ca&sslrootcert={other}")),
        "invalid peer certificate",
    );
    fails(
        &with(&pg.url(), &format!("sslmode=verify-full&sslrootcert={ca}")),
        "certificate not valid for name \"127.0.0.1\"",
    );
    // require with a root file checks the chain, as libpq.
    fails(
        &with(&pg.url(), &format!("sslmode=require&sslrootcert={other}")),
        "invalid peer certificate",
    );
    // verify-* without sslrootcert reads ~/.postgresql/root.crt, here missing.
    fails(
        &with(&pg.url(), "sslmode=verify-full"),
        ".postgresql/root.crt does not exist",
    );
    fails(
        &with(
            &pg.url(),
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        "/nonexistent/ca.pem: No such file",
    );
    let o = set(&s, &with(&pg.url(), "sslmode=bogus"), "mallory");
    assert!(
        stderr(&o)
            .contains("sslmode=bogus: expected disable, prefer, require, verify-ca or verify-full"),
        "{}",
        stderr(&o)
    );
    assert!(pg.rows().is_empty(), "{:?}", pg.rows());
    // The name check is the only failure: verify-ca (chain only) connects.
    ok(&set(
        &s,
        &with(&pg.url(), &format!("sslmode=verify-ca&sslrootcert={ca}")),
        "alice",
    ));
    // libpq's default root file is used when present.
    std::fs::create_dir_all(s.path("home/.postgresql")).expect("mkdir");
    std::fs::write(s.path("home/.postgresql/root.crt"), &tls.ca_pem).expect("root.crt");
    ok(&set(&s, &with(&pg.url(), "sslmode=verify-ca"), "bob"));
    assert_eq!(pg.rows().len(), 2);
}

fn require_against_a_server_without_tls_is_a_clear_error() {
    let s = Scratch::new();
    let pg = crate::pg::ready(&s);
    let o = set(&s, &with(&pg.url(), "sslmode=require"), "alice");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("TLS"), "{err}");
    assert!(pg.rows().is_empty());
    // prefer (the default) and disable fall back to / stay on plain TCP.
    ok(&set(&s, &with(&pg.url(), "sslmode=prefer"), "alice"));
    ok(&set(&s, &with(&pg.url(), "sslmode=disable"), "bob"));
    assert_eq!(pg.rows().len(), 2);
}

crate::tests!(
    verify_full_with_the_right_ca_connects_over_tls,
    wrong_ca_or_wrong_host_name_is_a_clear_error_and_writes_nothing,
    require_against_a_server_without_tls_is_a_clear_error,
);
