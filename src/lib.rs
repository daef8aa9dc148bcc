//! `sasldb`: Cyrus SASL sasldb-compatible credential tooling.
//!
//! How the parts fit:
//! - [`store`] owns the sasldb file (Cyrus's LMDB layout) and its transactions;
//!   nothing else touches LMDB.
//! - [`secret`] turns a password into stored properties and checks passwords.
//! - [`migrate`] reads the sasldb files of other builds (Berkeley DB hash,
//!   GDBM) read-only and imports them into [`store`].
//! - [`saslconf`] reads a Cyrus application config (`saslpasswd.conf`, ...).
//! - [`cli`] holds what the binaries share and the two Cyrus-compatible tools
//!   themselves (`saslpasswd`, `sasldblistusers`); `src/bin` only calls it.

pub mod admin;
pub mod authd;
pub mod cli;
pub mod logging;
pub mod maincf;
pub mod mech;
pub mod migrate;
pub mod postfix;
pub mod saslconf;
pub mod secret;
pub mod smtp;
pub mod store;
