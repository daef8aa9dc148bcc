//! SMTP for `smtpd-auth`'s listener. Sans-I/O: the command codec, the
//! session state machine, the relay and recipient [`policy`], the AUTH
//! [`limits`], the [`accounts`] look-ups, the DATA receiver and the
//! Received header. The tokio side: [`accept`] and [`listener`]; [`spool`]
//! keeps message bodies on disk past a small buffer, and [`delivery`] hands
//! accepted mail on before the client hears 250.

pub mod accept;
pub mod accounts;
pub mod command;
pub mod data;
pub mod delivery;
pub mod flight;
pub mod limits;
pub mod listener;
pub mod policy;
pub mod random;
pub mod received;
pub mod session;
pub mod spool;
pub mod tickets;
