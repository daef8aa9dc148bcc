//! Configuration in Postfix's `main.cf` syntax, for `smtpd-auth`.
//!
//! `key = value` lines; a line starting with whitespace continues the
//! previous one; `#` lines and blank lines are comments; `-o key=value`
//! overrides apply last, as `master.cf` passes them. Values may refer to
//! other parameters as `$name` or `${name}` (expanded when read, with
//! Postfix's defaults behind). Only parameters this program knows are
//! accepted: anything else is an error naming the key and line, so a typo
//! never silently turns a protection off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A parameter: name, default (may refer to others), and what it is for.
pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every parameter `smtpd-auth` reads.
pub const PARAMS: &[Param] = &[
    Param {
        name: "myhostname",
        default: "",
        help: "this host's name (default: the host name)",
    },
    Param {
        name: "mydomain",
        default: "",
        help: "this host's domain (default: myhostname without its first label)",
    },
    Param {
        name: "smtpd_sasl_local_domain",
        default: "",
        help: "realm for logins without @ (default: $myhostname, as Postfix)",
    },
    Param {
        name: "smtpd_sasl_security_options",
        default: "noanonymous",
        help: "mechanism properties required (noplaintext, noactive, nodictionary, noanonymous, mutual_auth, forward_secrecy)",
    },
    Param {
        name: "smtpd_tls_auth_only",
        default: "",
        help: "offer and accept AUTH only under TLS (default: yes when TLS is available); on the Dovecot socket, refuse plaintext mechanisms unless Postfix says the session is secured (default there: no)",
    },
    Param {
        name: "cyrus_sasl_config_path",
        default: "",
        help: "where <smtpd_sasl_path>.conf is searched (default: Cyrus's path)",
    },
    Param {
        name: "smtpd_sasl_path",
        default: "smtpd",
        help: "Cyrus application name: <name>.conf gives mech_list, sasldb_path, scram_iteration_counter",
    },
    Param {
        name: "sasldb_path",
        default: "",
        help: "the store (default: sasldb_path of <smtpd_sasl_path>.conf, else /etc/sasldb2)",
    },
    Param {
        name: "syslog_name",
        default: "smtpd-auth",
        help: "log tag prefix, as Postfix's",
    },
    Param {
        name: "dovecot_auth_socket",
        default: "",
        help: "Dovecot-protocol auth socket for Postfix (smtpd_sasl_type = dovecot); empty: off",
    },
    Param {
        name: "dovecot_auth_socket_owner",
        default: "root",
        help: "owner of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_socket_group",
        default: "postfix",
        help: "group of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_socket_mode",
        default: "0660",
        help: "mode of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_require_client_cert",
        default: "no",
        help: "refuse Dovecot-protocol logins without valid-client-cert (Dovecot's auth_ssl_require_client_cert; Postfix never sends it)",
    },
    Param {
        name: "saslauthd_socket",
        default: "",
        help: "saslauthd-protocol socket (Cyrus pwcheck_method: saslauthd), e.g. /var/run/saslauthd/mux; empty: off",
    },
    Param {
        name: "saslauthd_socket_owner",
        default: "root",
        help: "owner of the saslauthd socket",
    },
    Param {
        name: "saslauthd_socket_group",
        default: "postfix",
        help: "group of the saslauthd socket",
    },
    Param {
        name: "saslauthd_socket_mode",
        default: "0660",
        help: "mode of the saslauthd socket",
    },
    Param {
        name: "smtpd_auth_failure_limit",
        default: "20",
        help: "authentication failures per client within smtpd_auth_failure_window before its attempts are refused (0: no limit)",
    },
    Param {
        name: "smtpd_auth_failure_window",
        default: "60s",
        help: "window of smtpd_auth_failure_limit (s, m or h)",
    },
    Param {
        name: "smtpd_auth_failure_exceptions",
        default: "",
        help: "client address blocks never limited (e.g. 127.0.0.0/8, [::1]/128)",
    },
    Param {
        name: "smtpd_listen",
        default: "",
        help: "SMTP listeners (address:port; STARTTLS where TLS is set up); --listen adds more",
    },
    Param {
        name: "smtpd_listen_tls",
        default: "",
        help: "implicit-TLS SMTP listeners (address:port, like port 465); --listen-tls adds more",
    },
    Param {
        name: "mydestination",
        default: "$myhostname, localhost.$mydomain, localhost",
        help: "domains delivered here, accepted from anyone",
    },
    Param {
        name: "relay_domains",
        default: "",
        help: "more domains accepted from anyone and passed to relayhost",
    },
    Param {
        name: "mynetworks",
        default: "127.0.0.0/8, [::1]/128",
        help: "clients that may relay without authenticating",
    },
    Param {
        name: "smtpd_sasl_auth_enable",
        default: "yes",
        help: "offer and accept AUTH on the SMTP listeners",
    },
    Param {
        name: "broken_sasl_auth_clients",
        default: "no",
        help: "also advertise AUTH=... for old clients",
    },
    Param {
        name: "smtpd_tls_cert_file",
        default: "",
        help: "PEM certificate chain (default: a self-signed one, made once in the state directory)",
    },
    Param {
        name: "smtpd_tls_key_file",
        default: "$smtpd_tls_cert_file",
        help: "PEM private key",
    },
    Param {
        name: "smtpd_tls_security_level",
        default: "may",
        help: "none (no STARTTLS), may (STARTTLS offered) or encrypt (no MAIL or AUTH before STARTTLS)",
    },
    Param {
        name: "message_size_limit",
        default: "10240000",
        help: "largest message accepted, in bytes",
    },
    Param {
        name: "relayhost",
        default: "",
        help: "next hop for mail not delivered here ([host]:port)",
    },
    Param {
        name: "smtpd_timeout",
        default: "300s",
        help: "time a client may take to send a command or a line of data",
    },
    Param {
        name: "smtpd_max_session_time",
        default: "3600s",
        help: "longest a whole SMTP session may last, however active (smtpd_timeout bounds each wait)",
    },
    Param {
        name: "smtpd_hard_error_limit",
        default: "20",
        help: "errors after which a session is closed",
    },
    Param {
        name: "smtpd_relay_restrictions",
        default: "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        help: "checked at RCPT first: permit_mynetworks, permit_sasl_authenticated, permit_auth_destination, reject_unauth_destination, defer_unauth_destination, reject_non_fqdn_recipient, reject_sender_login_mismatch, reject, permit",
    },
    Param {
        name: "smtpd_recipient_restrictions",
        default: "",
        help: "checked at RCPT after smtpd_relay_restrictions (same names)",
    },
    Param {
        name: "smtpd_sasl_tls_security_options",
        default: "$smtpd_sasl_security_options",
        help: "smtpd_sasl_security_options for sessions under TLS",
    },
    Param {
        name: "smtpd_tls_wrappermode",
        default: "no",
        help: "smtpd_listen listeners speak TLS from the first byte (port 465)",
    },
    Param {
        name: "smtpd_error_sleep_time",
        default: "1s",
        help: "delay before each error reply once smtpd_soft_error_limit is reached",
    },
    Param {
        name: "smtpd_soft_error_limit",
        default: "10",
        help: "errors after which error replies are delayed",
    },
    Param {
        name: "smtpd_client_connection_count_limit",
        default: "50",
        help: "simultaneous connections per client address (mynetworks exempt; 0: no limit)",
    },
    Param {
        name: "smtpd_client_auth_rate_limit",
        default: "0",
        help: "AUTH commands per client per minute (mynetworks exempt; 0: no limit)",
    },
    Param {
        name: "smtpd_client_ipv6_prefix_length",
        default: "64",
        help: "IPv6 clients count as one per network of this prefix length (0-128) for smtpd_client_connection_count_limit, smtpd_client_auth_rate_limit and smtpd_auth_failure_limit, here and on the Dovecot socket: one host usually holds a whole /64",
    },
    Param {
        name: "smtpd_auth_state_dir",
        default: "",
        help: "state directory, for the self-signed certificate made when none is configured (default: /var/lib/smtpd-auth as root, else ~/.local/state/smtpd-auth)",
    },
    Param {
        name: "log_destination",
        default: "stderr",
        help: "where Postfix-format log lines go: stderr, syslog (/dev/log, facility mail) or a file path",
    },
    Param {
        name: "mail_owner",
        default: "postfix",
        help: "user the daemon runs as when started as root: it binds its sockets, gives up root, and only then serves anyone; a user with user or group ID 0 is refused, as Postfix does",
    },
    Param {
        name: "virtual_mailbox_base",
        default: "",
        help: "Maildir root for local domains (<base>/<domain>/<user>/Maildir); empty: local mail goes to relayhost too",
    },
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{file}: line {line}: unknown parameter {key:?}")]
    Unknown {
        file: String,
        line: usize,
        key: String,
    },
    #[error("{file}: line {line}: expected `name = value`")]
    Syntax { file: String, line: usize },
    #[error("-o {0}: expected key=value")]
    BadOverride(String),
    #[error("-o {0}: unknown parameter")]
    UnknownOverride(String),
    #[error("{0}: {1}")]
    Io(String, String),
    /// `origin` says where the value was set (`file: line N: `, `-o: `),
    /// empty for a default.
    #[error("{origin}parameter {key}: {why}")]
    Invalid {
        origin: String,
        key: String,
        why: String,
    },
    #[error("parameter {0}: $-expansion loops")]
    Loop(String),
}

/// Parsed configuration.
#[derive(Debug, Clone, Default)]
pub struct MainCf {
    values: HashMap<String, String>,
    /// Names set explicitly (file or -o), in order, for `--print-config`.
    set: Vec<String>,
    /// Where each explicit value was set, for error messages.
    origin: HashMap<String, String>,
}

fn known(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

impl MainCf {
    pub fn parse(text: &str, file: &str) -> Result<MainCf, ConfigError> {
        let mut cf = MainCf::default();
        let mut current: Option<(String, String, usize)> = None;
        let flush = |cf: &mut MainCf,
                     cur: &mut Option<(String, String, usize)>|
         -> Result<(), ConfigError> {
            if let Some((k, v, line)) = cur.take() {
                if known(&k).is_none() {
                    return Err(ConfigError::Unknown {
                        file: file.to_string(),
                        line,
                        key: k,
                    });
                }
                cf.origin.insert(k.clone(), format!("{file}: line {line}"));
                cf.insert(k, v.trim().to_string());
            }
            Ok(())
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                match &mut current {
                    Some((_, v, _)) => {
                        v.push(' ');
                        v.push_str(trimmed.trim_end());
                    }
                    None => {
                        return Err(ConfigError::Syntax {
                            file: file.to_string(),
                            line: n,
                        });
                    }
                }
                continue;
            }
            flush(&mut cf, &mut current)?;
            let Some((k, v)) = raw.split_once('=') else {
                return Err(ConfigError::Syntax {
                    file: file.to_string(),
                    line: n,
                });
            };
            let k = k.trim();
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(ConfigError::Syntax {
                    file: file.to_string(),
                    line: n,
                });
            }
            current = Some((k.to_string(), v.trim().to_string(), n));
        }
        flush(&mut cf, &mut current)?;
        Ok(cf)
    }

    pub fn load(path: &Path) -> Result<MainCf, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io(path.display().to_string(), crate::cli::strerror(&e)))?;
        MainCf::parse(&text, &path.display().to_string())
    }

    fn insert(&mut self, k: String, v: String) {
        self.set.retain(|x| *x != k);
        self.set.push(k.clone());
        self.values.insert(k, v);
    }

    /// Apply one `-o key=value`.
    pub fn override_with(&mut self, kv: &str) -> Result<(), ConfigError> {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| ConfigError::BadOverride(kv.to_string()))?;
        let k = k.trim();
        if known(k).is_none() {
            return Err(ConfigError::UnknownOverride(k.to_string()));
        }
        self.origin.insert(k.to_string(), "-o".into());
        self.insert(k.to_string(), v.trim().to_string());
        Ok(())
    }

    /// A bad value, named with where it was set.
    pub fn invalid(&self, key: &str, why: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self
                .origin
                .get(key)
                .map(|o| format!("{o}: "))
                .unwrap_or_default(),
            key: key.into(),
            why,
        }
    }

    /// A parameter's value with `$name` expanded.
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        self.value(key, 0)
    }

    fn value(&self, key: &str, depth: usize) -> Result<String, ConfigError> {
        if depth > 20 {
            return Err(ConfigError::Loop(key.to_string()));
        }
        if let Some(v) = self.values.get(key) {
            return self.expand(v, depth + 1);
        }
        Ok(match key {
            "myhostname" => crate::cli::realm::default_realm()
                .map(|h| String::from_utf8_lossy(&h).into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            "mydomain" => {
                let h = self.value("myhostname", depth + 1)?;
                h.split_once('.')
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| "localdomain".into())
            }
            _ => {
                let default = known(key).map(|p| p.default).unwrap_or_default();
                self.expand(default, depth + 1)?
            }
        })
    }

    fn expand(&self, value: &str, depth: usize) -> Result<String, ConfigError> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], &inner[end + 1..]),
                    None => (inner, ""),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&self.value(name, depth + 1)?);
            }
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.get(key)?;
        match v.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "on" => Ok(true),
            "no" | "false" | "0" | "off" | "" => Ok(false),
            _ => Err(self.invalid(key, format!("{v:?} is not yes or no"))),
        }
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, ConfigError> {
        let v = self.get(key)?;
        v.parse()
            .map_err(|_| self.invalid(key, format!("{v:?} is not a number")))
    }

    /// A Postfix time value: a number with an optional s, m, h or d unit.
    pub fn get_duration(&self, key: &str) -> Result<std::time::Duration, ConfigError> {
        let v = self.get(key)?;
        let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| self.invalid(key, format!("{v:?} is not a time")))?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            _ => {
                return Err(self.invalid(key, format!("{v:?}: unit must be s, m, h or d")));
            }
        };
        Ok(std::time::Duration::from_secs(secs))
    }

    /// An octal mode.
    pub fn get_mode(&self, key: &str) -> Result<u32, ConfigError> {
        let v = self.get(key)?;
        u32::from_str_radix(&v, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| self.invalid(key, format!("{v:?} is not an octal mode")))
    }

    /// Comma/space separated list.
    pub fn get_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .get(key)?
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn get_path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let v = self.get(key)?;
        Ok((!v.is_empty()).then(|| PathBuf::from(v)))
    }

    /// `key = value` lines for what is set explicitly (like `postconf -n`).
    pub fn explicit(&self) -> Vec<(String, String)> {
        let mut names = self.set.clone();
        names.sort();
        names
            .into_iter()
            .map(|k| {
                let v = self.values.get(&k).cloned().unwrap_or_default();
                (k, v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_continuations_and_expansion() {
        let cf = MainCf::parse(
            "# comment\nmyhostname = mx.example.org\nsmtpd_sasl_local_domain = $mydomain\nsmtpd_sasl_security_options = noanonymous,\n   noplaintext\n\nsyslog_name = ${mydomain}-auth\n",
            "main.cf",
        )
        .unwrap();
        assert_eq!(cf.get("mydomain").unwrap(), "example.org");
        assert_eq!(cf.get("smtpd_sasl_local_domain").unwrap(), "example.org");
        assert_eq!(
            cf.get_list("smtpd_sasl_security_options").unwrap(),
            vec!["noanonymous", "noplaintext"]
        );
        assert_eq!(cf.get("syslog_name").unwrap(), "example.org-auth");
        assert_eq!(cf.get("smtpd_sasl_path").unwrap(), "smtpd");
    }

    #[test]
    fn errors_name_the_key_and_line() {
        assert_eq!(
            MainCf::parse("myhostname = a\nsmtpd_tls_auth_onyl = yes\n", "m.cf").unwrap_err(),
            ConfigError::Unknown {
                file: "m.cf".into(),
                line: 2,
                key: "smtpd_tls_auth_onyl".into()
            }
        );
        assert_eq!(
            MainCf::parse("  continued\n", "m.cf").unwrap_err(),
            ConfigError::Syntax {
                file: "m.cf".into(),
                line: 1
            }
        );
        assert!(matches!(
            MainCf::parse("no equals sign\n", "m.cf"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
        let mut cf = MainCf::default();
        assert!(cf.override_with("bogus=1").is_err());
        assert!(cf.override_with("nonsense").is_err());
        cf.override_with("smtpd_tls_auth_only=maybe").unwrap();
        assert_eq!(
            cf.get_bool("smtpd_tls_auth_only").unwrap_err().to_string(),
            "-o: parameter smtpd_tls_auth_only: \"maybe\" is not yes or no"
        );
        // A bad value in a file names its line, continuation lines included.
        let file = MainCf::parse(
            "# c\nmyhostname = a\nsmtpd_timeout =\n  5 fortnights\n",
            "m.cf",
        )
        .unwrap();
        assert_eq!(
            file.get_duration("smtpd_timeout").unwrap_err().to_string(),
            "m.cf: line 3: parameter smtpd_timeout: \"5 fortnights\": unit must be s, m, h or d"
        );
        cf.override_with("smtpd_auth_failure_window=2m").unwrap();
        assert_eq!(
            cf.get_duration("smtpd_auth_failure_window")
                .unwrap()
                .as_secs(),
            120
        );
        cf.override_with("dovecot_auth_socket_mode=0999").unwrap();
        assert!(cf.get_mode("dovecot_auth_socket_mode").is_err());
        cf.override_with("myhostname=$mydomain").unwrap();
        assert!(matches!(cf.get("myhostname"), Err(ConfigError::Loop(_))));
    }
}
