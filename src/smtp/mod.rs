//! SMTP for `smtpd-auth`'s listener: the command codec, the session
//! state machine, the relay and recipient [`policy`], the AUTH [`limits`]
//! and the [`accounts`] look-ups are sans-I/O; [`listener`] is the tokio
//! side and [`delivery`] hands accepted mail on before the client hears 250.

pub mod accounts;
pub mod command;
pub mod delivery;
pub mod limits;
pub mod listener;
pub mod policy;
pub mod session;
