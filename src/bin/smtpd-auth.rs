//! `smtpd-auth`: see `sasldb::cli::smtpd_auth`.
fn main() {
    std::process::exit(sasldb::cli::smtpd_auth::run(std::env::args_os()));
}
