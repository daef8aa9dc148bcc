//! The command line: what the binaries share, the two Cyrus-compatible
//! tools (`saslpasswd`, `listusers`), `smtpd_auth`, and the `--doctor`
//! front end. The top layer: nothing below imports from here.
//!
//! Each tool is a `run(argv) -> exit code` function so tests and the thin
//! binaries in `src/bin` reach the same code; a tool's failures are one
//! typed value printed in one place (see `saslpasswd::Failure`). Messages and exit codes follow
//! Cyrus SASL 2.1.28 (`spec/cyrus-compat.md` §3–4); where a tool adds a
//! detail line it comes before the Cyrus line, as Berkeley DB's own messages
//! do with Debian's tools.

pub mod batch;
pub mod doctor;
pub mod getopt;
pub mod import;
pub mod listusers;
pub mod password;
pub mod progress;
pub mod saslpasswd;
pub mod smtpd_auth;

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;

// Kept here for the tools that import them from `cli`; both live below.
pub use crate::store::DEFAULT_SASLDB;
pub use crate::sys::strerror;

/// Exit codes: Cyrus exits with the negated SASL result code.
pub mod exit {
    pub const OK: i32 = 0;
    /// Usage errors and `SASL_FAIL` ("generic failure").
    pub const FAIL: i32 = 1;
    /// `SASL_NOMECH`.
    pub const NOMECH: i32 = 4;
    /// `SASL_BADPARAM` (empty password, passwords that differ).
    pub const BADPARAM: i32 = 7;
    /// `SASL_CONFIGERR`.
    pub const CONFIGERR: i32 = 100;
}

/// The acknowledgement block both Cyrus tools print before usage and
/// version text; kept byte-identical so scripts comparing output still match.
pub(crate) const ACK: &str = "\nThis product includes software developed by Computing Services\nat Carnegie Mellon University (http://www.cmu.edu/computing/).\n\n";

/// `-v` output (stderr). The first lines match Cyrus; the last names us.
pub fn version_text() -> String {
    format!(
        "{ACK}Built against SASL API version 2.1.28\n{} {} (sasldb LMDB layout of Cyrus SASL 2.1.28)\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
}

/// The program name as Cyrus prints it: the basename of `argv[0]`.
pub fn prog_name(argv0: Option<&OsStr>, fallback: &str) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// Write to stderr, ignoring failure: a closed stderr must not turn an
/// error report into a panic.
/// What to say after a store's map grew (or would grow, in a dry run):
/// LMDB's `MDB_MAP_RESIZED` reaches every process that keeps the store open
/// with the old map, and Cyrus's LMDB backend then crashes.
pub fn map_growth_note(
    prog: &str,
    path: &std::path::Path,
    from: usize,
    to: usize,
    dry: bool,
) -> String {
    let grew = if dry { "would grow" } else { "grew" };
    format!(
        "{prog}: the map of {} {grew} from {from} to {to} bytes (address space, not disk): programs that keep it open with Cyrus SASL's LMDB backend (Postfix smtpd, Cyrus IMAP) fail their next lookup; restart them (postfix reload)\n",
        path.display()
    )
}

pub fn stderr(text: &str) {
    let _ = io::stderr().write_all(text.as_bytes());
}

/// True when the file descriptor is a terminal.
pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}
