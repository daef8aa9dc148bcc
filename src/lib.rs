//! `sasldb`: Cyrus SASL sasldb-compatible credential tooling — the
//! `saslpasswd` and `sasldblistusers` tools, and `smtpd-auth`, an SMTP AUTH
//! listener and auth sockets for Postfix, all on one LMDB sasldb.
//!
//! # Map of the crate
//!
//! Modules are layered; a module calls only modules in its own layer or
//! below, never above. `src/bin/*` only call [`cli`].
//!
//! | layer | module | what it owns |
//! |-------|--------|--------------|
//! | 5 command line | [`cli`] | argument parsing, printing, exit codes; one module per tool (`saslpasswd`, `listusers`, `smtpd_auth`) plus the `--doctor` front end ([`cli::doctor`]), password input, batch files, progress |
//! | 4 services | [`smtp`] | SMTP submission: the command codec ([`smtp::command`]) and session state machine, the sans-I/O DATA receiver (`smtp::data`), relay policy, delivery, and the tokio listener that only moves bytes and timers |
//! | 4 services | [`authd`] | auth sockets for a stock Postfix: the Dovecot auth protocol ([`authd::dovecot`]) and the saslauthd protocol ([`authd::saslauthd`]) as sans-I/O codecs, and their socket server |
//! | 4 services | [`postfix`] | deployment: `postconf` look-ups, the realm Postfix uses, owner and modes, the chroot copy, and the doctor ([`postfix::doctor`]); the only module that knows Postfix's paths and users |
//! | 4 services | [`admin`] | what `saslpasswd` does to a store: prepare, preview and apply sets and deletes in one transaction, check a password |
//! | 3 mechanisms | [`mech`] | SASL server mechanisms (PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM) as sans-I/O state machines, and the base64 exchange framing |
//! | 2 secrets | [`secret`] | the one home of passwords: what a password becomes in the store (`userPassword`, SCRAM `authPassword`), and checking one (`Secrets`, `Credentials for Store`, the padding that makes an unknown user cost what a wrong password costs) |
//! | 2 config | [`saslconf`] | a Cyrus application config (`saslpasswd.conf`, `smtpd.conf`) and SASL security options |
//! | 2 config | [`maincf`] | `main.cf` syntax for `smtpd-auth` (`key = value`, continuation lines, `$name` expansion, `-o` overrides) and every parameter it knows |
//! | 2 logging | [`logging`] | log lines in Postfix's format (stderr, a file, or syslog), so fail2ban and log readers work unchanged |
//! | 1 store | [`store`] | the sasldb file in Cyrus's LMDB layout, accounts and keys, one-transaction writes; nothing else touches LMDB |
//! | 0 base | [`sys`], [`host`] | `strerror` wording of OS errors; the host's default realm |
//!
//! Shared rules live below every user of them: a helper `smtp` and
//! `authd` both need (client address ranges, the failure limiter, today
//! `authd::limit`) belongs in a low module (`net`), not in either; nothing
//! in `store`, `secret`, `postfix` or `maincf` imports from `cli`.
//!
//! # Conventions
//! - Protocol logic is sans-I/O: state machines that take bytes and return
//!   replies and actions, driven by unit tests; I/O stays at the edges.
//! - Library errors are typed (`thiserror`) and name the file, user or
//!   realm involved, never a secret; the command line maps them to Cyrus's
//!   messages and exit codes in one place per tool.
//! - Every parser that reads a peer's bytes or an admin's file has a fuzz
//!   target in `fuzz/`.

pub mod admin;
pub mod authd;
pub mod cli;
pub mod host;
pub mod logging;
pub mod maincf;
pub mod mech;
pub mod postfix;
pub mod saslconf;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod sys;
