//! SMTP for `smtpd-auth`'s listener: the command codec and the session
//! state machine are sans-I/O; [`listener`] is the tokio side and
//! [`delivery`] hands accepted mail on before the client hears 250.

pub mod command;
pub mod delivery;
pub mod listener;
pub mod session;
