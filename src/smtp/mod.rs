//! SMTP for `smtpd-auth`'s listener: the command codec, the session state
//! machine and the DATA receiver are sans-I/O; [`listener`] is the tokio
//! side, [`spool`] keeps message bodies on disk past a small buffer, and
//! [`delivery`] hands accepted mail on before the client hears 250.

pub mod command;
pub mod data;
pub mod delivery;
pub mod listener;
pub mod received;
pub mod session;
pub mod spool;
