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

mod params;

pub use params::{PARAMS, Param};

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
    #[error("parameter {0}: $-expansion grows too large")]
    TooLarge(String),
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

/// Bounds on `$name` expansion of one value: parameter look-ups, and the
/// length of the result.
const MAX_LOOKUPS: usize = 10_000;
const MAX_EXPANDED: usize = 64 * 1024;

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
            .map_err(|e| ConfigError::Io(path.display().to_string(), crate::sys::strerror(&e)))?;
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
        let mut budget = MAX_LOOKUPS;
        self.value(key, 0, &mut budget).map_err(|e| match e {
            ConfigError::TooLarge(_) => ConfigError::TooLarge(key.to_string()),
            e => e,
        })
    }

    fn value(&self, key: &str, depth: usize, budget: &mut usize) -> Result<String, ConfigError> {
        if depth > 20 {
            return Err(ConfigError::Loop(key.to_string()));
        }
        // Values naming each other many times over expand exponentially.
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| ConfigError::TooLarge(key.to_string()))?;
        if let Some(v) = self.values.get(key) {
            return self.expand(v, depth + 1, budget);
        }
        Ok(match key {
            "myhostname" => crate::host::default_realm()
                .map(|h| String::from_utf8_lossy(&h).into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            "mydomain" => {
                let h = self.value("myhostname", depth + 1, budget)?;
                h.split_once('.')
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| "localdomain".into())
            }
            _ => {
                let default = known(key).map(|p| p.default).unwrap_or_default();
                self.expand(default, depth + 1, budget)?
            }
        })
    }

    fn expand(&self, value: &str, depth: usize, budget: &mut usize) -> Result<String, ConfigError> {
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
                out.push_str(&self.value(name, depth + 1, budget)?);
            }
            if out.len() > MAX_EXPANDED {
                return Err(ConfigError::TooLarge(name.to_string()));
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
        let unit_secs: u64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => {
                return Err(self.invalid(key, format!("{v:?}: unit must be s, m, h or d")));
            }
        };
        let secs = n
            .checked_mul(unit_secs)
            .ok_or_else(|| self.invalid(key, format!("{v:?} is too long a time")))?;
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

    /// Seen while writing the maincf_parse fuzz target: a huge time
    /// overflowed the multiplication by its unit (a panic).
    #[test]
    fn huge_time_is_an_error() {
        let cf = MainCf::parse("smtpd_timeout = 999999999999999999d\n", "m.cf").unwrap();
        assert_eq!(
            cf.get_duration("smtpd_timeout").unwrap_err().to_string(),
            "m.cf: line 1: parameter smtpd_timeout: \"999999999999999999d\" is too long a time"
        );
    }

    /// Values naming each other many times over (8^8 look-ups): an error,
    /// not a hang.
    #[test]
    fn exponential_expansion_is_bounded() {
        let names: Vec<&str> = PARAMS.iter().map(|p| p.name).take(9).collect();
        let mut text = String::new();
        for w in names.windows(2) {
            text.push_str(&format!("{} = {}\n", w[0], format!("${} ", w[1]).repeat(8)));
        }
        text.push_str(&format!("{} = x\n", names[8]));
        let cf = MainCf::parse(&text, "m.cf").unwrap();
        assert_eq!(
            cf.get(names[0]).unwrap_err(),
            ConfigError::TooLarge(names[0].to_string())
        );
        assert_eq!(cf.get(names[8]).unwrap(), "x");
    }
}
