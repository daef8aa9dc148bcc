//! Integration tests of `smtpd-auth` (SMTP AUTH listener, Dovecot and saslauthd sockets)
//! with real clients, Postfix and fail2ban, one test binary. Run by
//! tests/common/harness.rs: a test whose system tool is missing is counted as ignored, or
//! fails under CI=true.

#[path = "../common/mod.rs"]
mod common;

mod authd_postfix;
mod dialogs;
mod fail2ban;
mod mech_python;
mod smtpd_clients;

fn main() {
    common::harness::run(
        [
            authd_postfix::tests(),
            dialogs::tests(),
            fail2ban::tests(),
            mech_python::tests(),
            smtpd_clients::tests(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}
