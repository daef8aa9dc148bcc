//! Authentication services for Postfix over UNIX sockets: the Dovecot
//! auth protocol (`smtpd_sasl_type = dovecot`) and the saslauthd protocol
//! (Cyrus `pwcheck_method: saslauthd`). The protocol logic is sans-I/O
//! ([`dovecot`], [`saslauthd`]); [`server`] runs them on sockets.

pub mod dovecot;
pub mod saslauthd;
pub mod server;
