//! Integration tests of `smtpd-auth` (SMTP AUTH listener, Dovecot and saslauthd sockets)
//! with real clients, Postfix and fail2ban, one test binary. Run by
//! tests/common/harness.rs: a test whose system tool is missing is counted as ignored, or
//! fails under CI=true.

#[path = "../common/mod.rs"]
mod common;

mod auth_oracle;
mod authd_postfix;
mod dialogs;
mod fail2ban;
mod hardening;
mod mech_python;
mod package;
mod pg;
mod pg_cyrus;
mod resources;
mod smtpd_clients;
mod tls_speed;
mod trust;

fn main() {
    common::harness::run(
        [
            auth_oracle::tests(),
            authd_postfix::tests(),
            dialogs::tests(),
            fail2ban::tests(),
            hardening::tests(),
            mech_python::tests(),
            package::tests(),
            pg_cyrus::tests(),
            pg::tests(),
            resources::tests(),
            smtpd_clients::tests(),
            tls_speed::tests(),
            trust::tests(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}
