//! SMTP for `smtpd-auth`'s listener: the command codec, the session state
//! machine, the DATA receiver and the Received header are sans-I/O;
//! [`accept`] and [`listener`] are the tokio side, [`spool`] keeps message
//! bodies on disk past a small buffer, and [`delivery`] hands accepted
//! mail on before the client hears 250.

pub mod accept;
pub mod command;
pub mod data;
pub mod delivery;
pub mod listener;
pub mod received;
pub mod session;
pub mod spool;
