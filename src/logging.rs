//! Log lines in Postfix's format, so existing log readers and fail2ban
//! filters work: `Mon DD HH:MM:SS host <syslog_name>/<daemon>[pid]: text`
//! on stderr or in a file, or the same through syslog (`/dev/log`, facility
//! mail), where the syslog daemon adds time and host as it does for
//! Postfix. Callers never pass secrets.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A log destination that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("syslog: {}", crate::sys::strerror(.0))]
    Syslog(#[source] io::Error),
    #[error("syslog: /dev/log: {}", crate::sys::strerror(.0))]
    DevLog(#[source] io::Error),
    #[error("{path}: {}", crate::sys::strerror(.source))]
    File { path: String, source: io::Error },
}

/// Where a service sends one line of log output in Postfix's format
/// (`maillog_file` style): the SMTP listener and the auth sockets alike.
pub type LogFn = dyn Fn(&str) + Send + Sync;

/// Postfix's line for a failed SASL login, the one fail2ban's postfix
/// filter (and `dist/fail2ban/filter.d`) matches; the SMTP listener and the
/// Dovecot auth socket both log it. `client` is the address, or `unknown`;
/// `user` (`sasl_username`) is added when known.
pub fn sasl_failure(
    client: &str,
    mechanism: &str,
    reason: &dyn std::fmt::Display,
    user: Option<&str>,
) -> String {
    format!(
        "warning: unknown[{client}]: SASL {mechanism} authentication failed: {reason}{}",
        sasl_username(user)
    )
}

/// A failed saslauthd request: the protocol carries no client address, so
/// this line is for the admin, not for fail2ban.
pub fn saslauthd_failure(service: &str, user: Option<&str>) -> String {
    format!(
        "warning: saslauthd request for service {service}: authentication failed{}",
        sasl_username(user)
    )
}

/// The `, sasl_username=...` suffix Postfix adds when the user is known.
fn sasl_username(user: Option<&str>) -> String {
    user.map(|u| format!(", sasl_username={u}"))
        .unwrap_or_default()
}

/// Where lines go.
pub enum Destination {
    Stderr,
    File(Mutex<std::fs::File>),
    Syslog(UnixDatagram),
}

impl Destination {
    /// `stderr`, `syslog`, or a file path (appended to).
    pub fn open(spec: &str) -> Result<Destination, LogError> {
        match spec {
            "" | "stderr" => Ok(Destination::Stderr),
            "syslog" => {
                let sock = UnixDatagram::unbound().map_err(LogError::Syslog)?;
                sock.connect("/dev/log").map_err(LogError::DevLog)?;
                Ok(Destination::Syslog(sock))
            }
            path => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(|f| Destination::File(Mutex::new(f)))
                .map_err(|source| LogError::File {
                    path: path.to_string(),
                    source,
                }),
        }
    }
}

/// `Mon DD HH:MM:SS` in local time, as syslog writes it.
pub fn timestamp() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// One daemon's logger (`tag` like `smtpd-auth/smtpd`).
pub struct Logger {
    dest: std::sync::Arc<Destination>,
    host: String,
    tag: String,
}

impl Logger {
    pub fn new(dest: std::sync::Arc<Destination>, host: &str, tag: &str) -> Logger {
        Logger {
            dest,
            host: host.to_string(),
            tag: tag.to_string(),
        }
    }

    /// The line as written to a file or stderr.
    pub fn format(&self, text: &str) -> String {
        format!(
            "{} {} {}[{}]: {text}",
            timestamp(),
            self.host,
            self.tag,
            std::process::id()
        )
    }

    pub fn log(&self, text: &str) {
        // Control characters from a peer never reach the log verbatim.
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        match &*self.dest {
            // One write per line: concurrent lines never interleave.
            Destination::Stderr => {
                let line = self.format(&text) + "\n";
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Destination::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let line = self.format(&text) + "\n";
                    let _ = f.write_all(line.as_bytes());
                }
            }
            Destination::Syslog(sock) => {
                // facility mail (2); warning (4) or info (6).
                let severity = if text.starts_with("warning:") { 4 } else { 6 };
                let msg = format!(
                    "<{}>{} {}[{}]: {text}",
                    2 * 8 + severity,
                    timestamp(),
                    self.tag,
                    std::process::id()
                );
                let _ = sock.send(msg.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format_and_control_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let dest = std::sync::Arc::new(Destination::open(path.to_str().unwrap()).unwrap());
        let l = Logger::new(dest, "mx.example.org", "smtpd-auth/smtpd");
        l.log("warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: x\r\ninjected");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().next().unwrap();
        assert!(line.contains(" mx.example.org smtpd-auth/smtpd["), "{line}");
        assert!(
            line.ends_with("authentication failed: x??injected"),
            "{line}"
        );
        assert_eq!(text.lines().count(), 1);
        assert!(Destination::open("/nonexistent/dir/log").is_err());
    }

    #[test]
    fn sasl_failure_lines() {
        assert_eq!(
            sasl_failure(
                "192.0.2.1",
                "PLAIN",
                &"authentication failure",
                Some("tim@example.org")
            ),
            "warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: \
             authentication failure, sasl_username=tim@example.org"
        );
        assert_eq!(
            sasl_failure("unknown", "LOGIN", &"x", None),
            "warning: unknown[unknown]: SASL LOGIN authentication failed: x"
        );
        assert_eq!(
            saslauthd_failure("smtp", Some("tim")),
            "warning: saslauthd request for service smtp: authentication failed, sasl_username=tim"
        );
    }
}
