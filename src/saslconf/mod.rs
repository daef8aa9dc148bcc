//! Cyrus SASL application config files (`<appname>.conf`).
//!
//! Syntax as libsasl 2.1.28 reads it: blank lines and lines whose first
//! non-blank character is `#` are skipped; every other line is
//! `key: value`, the key made of letters, digits, `-` and `_` (compared
//! lower-cased) and followed at once by `:`, the value the rest of the line
//! without surrounding whitespace and never empty. Anything else fails the
//! whole file. The first file found along the search path is the only one
//! read; of duplicate keys the first wins.

pub mod security;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Debian's libsasl2 search path for config files.
pub const DEFAULT_CONF_PATH: &str =
    "/etc/sasl2:/etc/sasl:/usr/lib/x86_64-linux-gnu/sasl2:/usr/lib/sasl2";

/// Options this crate reads.
pub const KNOWN_KEYS: [&str; 12] = [
    "pwcheck_method",
    "auxprop_plugin",
    "mech_list",
    "sasldb_path",
    "sasldb_mapsize",
    "sasldb_maxreaders",
    "scram_iteration_counter",
    "scram_secret_generate",
    "log_level",
    "saslauthd_path",
    "canon_user_plugin",
    "reauth_timeout",
];

/// libsasl reads lines into a buffer of this size.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: line {line}: {reason}", .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("{}: {}", .path.display(), crate::sys::strerror(.source))]
    Io { path: PathBuf, source: io::Error },
}

/// The options of one config file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslConfig {
    /// The file read, if any was found.
    pub path: Option<PathBuf>,
    entries: Vec<(String, String)>,
}

/// Parse config text. `path` only labels errors.
pub fn parse(text: &[u8], path: &Path) -> Result<SaslConfig, ConfigError> {
    let err = |line, reason| ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if raw.len() >= MAX_LINE {
            return Err(err(n, "line too long"));
        }
        let line = raw.trim_ascii_start();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let key_len = line
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .count();
        if line.get(key_len) != Some(&b':') {
            return Err(err(n, "expected `key: value`"));
        }
        if key_len == 0 {
            return Err(err(n, "empty key"));
        }
        let value = line[key_len + 1..].trim_ascii();
        if value.is_empty() {
            return Err(err(n, "empty value"));
        }
        let key = String::from_utf8_lossy(&line[..key_len]).to_ascii_lowercase();
        if entries.iter().any(|(k, _)| *k == key) {
            continue; // first wins
        }
        entries.push((key, String::from_utf8_lossy(value).into_owned()));
    }
    Ok(SaslConfig {
        path: Some(path.to_path_buf()),
        entries,
    })
}

/// The search path: `SASL_CONF_PATH` unless the process runs set-id, as
/// libsasl decides.
pub fn search_path() -> String {
    // SAFETY: plain id queries without side effects.
    let setid = unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() };
    match std::env::var("SASL_CONF_PATH") {
        Ok(p) if !setid && !p.is_empty() => p,
        _ => DEFAULT_CONF_PATH.to_string(),
    }
}

/// Find and read `<appname>.conf`; an empty config when no file exists.
pub fn load(appname: &str, search: &str) -> Result<SaslConfig, ConfigError> {
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let path = Path::new(dir).join(format!("{appname}.conf"));
        match fs::read(&path) {
            Ok(text) => return parse(&text, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // libsasl skips files it cannot open in the same way.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => continue,
            Err(source) => return Err(ConfigError::Io { path, source }),
        }
    }
    Ok(SaslConfig::default())
}

/// True for the values libsasl reads as "on": first character `1`, `y`,
/// `t`, or the word starting with `on`.
pub fn is_true(value: &str) -> bool {
    let v = value.as_bytes();
    matches!(v.first(), Some(b'1' | b'y' | b'Y' | b't' | b'T'))
        || value.to_ascii_lowercase().starts_with("on")
}

impl SaslConfig {
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `sasldb_path`, ignored when empty as Cyrus's backend does.
    pub fn sasldb_path(&self) -> Option<&str> {
        self.get("sasldb_path").filter(|p| !p.is_empty())
    }

    /// `sasldb_mapsize` in bytes: the code takes KiB, whatever the docs say.
    pub fn sasldb_mapsize(&self) -> Option<usize> {
        self.get("sasldb_mapsize")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&k| k > 0)
            .map(|k| k.saturating_mul(1024))
    }

    pub fn sasldb_maxreaders(&self) -> Option<u32> {
        self.get("sasldb_maxreaders")
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
    }

    pub fn scram_secret_generate(&self) -> bool {
        self.get("scram_secret_generate").is_some_and(is_true)
    }

    pub fn scram_iteration_counter(&self) -> Option<u32> {
        self.get("scram_iteration_counter")
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
    }

    /// `mech_list` names, upper-cased; empty when unset (= all mechanisms).
    pub fn mech_list(&self) -> Vec<String> {
        self.get("mech_list")
            .map(|v| {
                v.split_ascii_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `pwcheck_method` verifiers in order (`auxprop` when unset).
    pub fn pwcheck_methods(&self) -> Vec<&str> {
        match self.get("pwcheck_method") {
            Some(v) => v.split_ascii_whitespace().collect(),
            None => vec!["auxprop"],
        }
    }

    /// `log_level` (Cyrus's default is 1, errors only).
    pub fn log_level(&self) -> u32 {
        self.get("log_level")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Keys this implementation does not interpret, in file order: kept and
    /// reported, never fatal (other plugins' options live here too).
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !KNOWN_KEYS.contains(k))
            .collect()
    }

    /// `auxprop_plugin` names; empty when unset (= every loaded plugin).
    pub fn auxprop_plugins(&self) -> Vec<&str> {
        self.get("auxprop_plugin")
            .map(|v| v.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<SaslConfig, ConfigError> {
        parse(s.as_bytes(), Path::new("t.conf"))
    }

    #[test]
    fn good_file() {
        let c = p("# comment\n\n  pwcheck_method: auxprop\nMech_List:  PLAIN  cram-md5 \nsasldb_path: /x # not a comment\nmech_list: IGNORED\n").unwrap();
        assert_eq!(c.get("pwcheck_method"), Some("auxprop"));
        assert_eq!(c.mech_list(), vec!["PLAIN", "CRAM-MD5"]);
        assert_eq!(c.sasldb_path(), Some("/x # not a comment"));
        assert_eq!(c.pwcheck_methods(), vec!["auxprop"]);
        assert_eq!(c.log_level(), 1);
        assert!(c.unknown_keys().is_empty());
        let c =
            p("pwcheck_method: saslauthd auxprop\nlog_level: 7\nsql_select: x\nldapdb_uri: y\n")
                .unwrap();
        assert_eq!(c.pwcheck_methods(), vec!["saslauthd", "auxprop"]);
        assert_eq!(c.log_level(), 7);
        assert_eq!(c.unknown_keys(), vec!["sql_select", "ldapdb_uri"]);
    }

    #[test]
    fn syntax_errors() {
        for (text, line) in [
            ("key value\n", 1),
            ("ok: 1\nkey:\n", 2),
            ("ok: 1\n: v\n", 2),
            ("key : v\n", 1),
            ("k.ey: v\n", 1),
        ] {
            match p(text) {
                Err(ConfigError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(p(&format!("k: {}\n", "x".repeat(5000))).is_err());
    }

    #[test]
    fn typed_options() {
        let c =
            p("scram_secret_generate: yes\nscram_iteration_counter: 8192\nsasldb_mapsize: 4096\n")
                .unwrap();
        assert!(c.scram_secret_generate());
        assert_eq!(c.scram_iteration_counter(), Some(8192));
        assert_eq!(c.sasldb_mapsize(), Some(4 << 20));
        for (v, want) in [
            ("on", true),
            ("1", true),
            ("true", true),
            ("no", false),
            ("off", false),
            ("0", false),
        ] {
            assert_eq!(is_true(v), want, "{v}");
        }
    }
}
