//! `sasldb`: Cyrus SASL sasldb-compatible credential tooling — the
//! `saslpasswd` and `sasldblistusers` tools, and `smtpd-auth`, an SMTP AUTH
//! listener and auth sockets for Postfix, all on one LMDB sasldb.
//!
//! # Map of the crate
//!
//! Modules are layered: a module uses modules of lower layers only, never
//! one above it and never a sibling of its own layer.
//! `src/bin/*` only call [`cli`].
//!
//! | layer | module | what it owns |
//! |-------|--------|--------------|
//! | 6 command line | [`cli`] | argument parsing, printing, exit codes; one module per tool (`saslpasswd`, `listusers`, `smtpd_auth`) plus the `--doctor` front end ([`cli::doctor`]), password input, batch files, progress |
//! | 5 services | [`smtp`] | SMTP submission: the command codec ([`smtp::command`]) and session state machine, the sans-I/O DATA receiver (`smtp::data`), relay policy, delivery, and the tokio listener that only moves bytes and timers |
//! | 5 services | [`authd`] | auth sockets for a stock Postfix: the Dovecot auth protocol ([`authd::dovecot`]) and the saslauthd protocol ([`authd::saslauthd`]) as sans-I/O codecs, and their socket server |
//! | 5 services | [`postfix`] | deployment: `postconf` look-ups, the realm Postfix uses, owner and modes, the chroot copy, and the doctor ([`postfix::doctor`], which reads old-format stores through [`migrate`]); the only module that knows Postfix's paths and users |
//! | 4 config, admin | [`saslconf`] | a Cyrus application config (`saslpasswd.conf`, `smtpd.conf`) and SASL security options (which read the mechanisms' security properties) |
//! | 4 config, admin | [`admin`] | what `saslpasswd` does to a store: prepare, preview and apply sets and deletes in one transaction, check a password |
//! | 3 mechanisms | [`mech`] | SASL server mechanisms (PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM) as sans-I/O state machines, and the base64 exchange framing |
//! | 2 secrets | [`secret`] | the one home of passwords: what a password becomes in the store (`userPassword`, SCRAM `authPassword`), and checking one (`Secrets`, `Credentials for Store`, the padding that makes an unknown user cost what a wrong password costs); the daemon's credentials from PostgreSQL: a sans-I/O cache with TTLs, invalidation, serve-stale and bypass-once ([`secret::cache`], [`secret::cached`]) over blocking look-ups ([`secret::pg_fetch`]) |
//! | 2 secrets | [`migrate`] | read-only readers of the sasldb files of other builds (Berkeley DB hash, GDBM), format detection by content, and the one-transaction import into [`store`] |
//! | 1 foundations | [`store`] | the sasldb file in Cyrus's LMDB layout, accounts and keys, one-transaction writes; nothing else touches LMDB; the PostgreSQL table Cyrus's sql plugin reads ([`store::pg`] for the tools, [`store::pg_pool`] for the daemon: async pool, LISTEN, outage state) |
//! | 1 foundations | [`maincf`] | `main.cf` syntax for `smtpd-auth` (`key = value`, continuation lines, bounded `$name` expansion, `-o` overrides) and every parameter it knows |
//! | 1 foundations | [`logging`] | log lines in Postfix's format (stderr, a file, or syslog), so fail2ban and log readers work unchanged; the one formatter of the SASL failure line fail2ban matches ([`logging::sasl_failure`]), used by `smtp` and `authd` alike |
//! | 1 foundations | [`net`] | what `smtp` and `authd` share about clients: address ranges ([`net::Cidr`]), the key a client is counted under (IPv6 by prefix), and the failure limiter ([`net::FailureLimiter`]) |
//! | 0 base | [`sys`], [`host`] | `strerror` wording of OS errors; the host's default realm |
//! | 0 base | [`sysd`] | the systemd protocols by hand: inherited listening sockets (`LISTEN_FDS`, named by `FileDescriptorName=`) and readiness notification (`NOTIFY_SOCKET`) |
//!
//! Shared rules live below every user of them, written once (the
//! unknown-account rule, the failure log line fail2ban reads, "is this
//! client in mynetworks"); nothing in `store`, `secret`, `postfix` or
//! `maincf` imports from `cli`.
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
pub mod migrate;
pub mod net;
pub mod postfix;
pub mod saslconf;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod sys;
pub mod sysd;
