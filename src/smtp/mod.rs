//! SMTP for `smtpd-auth`'s listener (work in progress: the command codec
//! is here; the session state machine, relay policy, delivery and the
//! network listener are still to come).

pub mod command;
pub mod session;
