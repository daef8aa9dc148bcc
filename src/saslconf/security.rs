//! SASL security options as Postfix passes them to Cyrus
//! (`smtpd_sasl_security_options`, `smtpd_sasl_tls_security_options`), and
//! the mechanism list they leave: what EHLO advertises.
//!
//! As in Cyrus, an option names a property a mechanism must have:
//! `noplaintext` keeps only mechanisms that resist passive attacks,
//! `noactive` those that resist active ones, `nodictionary`,
//! `noanonymous`, `mutual_auth` and `forward_secrecy` likewise.

use crate::mech::{self, SecurityFlags};

/// A word that is not a SASL security option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SASL security option {0:?}")]
pub struct UnknownOption(pub String);

/// Required properties. Postfix's default is `noanonymous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecurityOptions {
    pub required: SecurityFlags,
}

impl SecurityOptions {
    /// Parse a Postfix value (`noanonymous, noplaintext`): comma or blank
    /// separated, case-insensitive. Unknown words are errors that name them.
    pub fn parse(value: &str) -> Result<SecurityOptions, UnknownOption> {
        let mut r = SecurityFlags::default();
        for word in value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            match word.to_ascii_lowercase().as_str() {
                "noanonymous" => r.no_anonymous = true,
                "noplaintext" => r.no_plaintext = true,
                "noactive" => r.no_active = true,
                "nodictionary" => r.no_dictionary = true,
                "mutual_auth" => r.mutual_auth = true,
                "forward_secrecy" => r.forward_secrecy = true,
                other => return Err(UnknownOption(other.to_string())),
            }
        }
        Ok(SecurityOptions { required: r })
    }

    /// Does a mechanism with these flags satisfy the options?
    pub fn allows(&self, f: &SecurityFlags) -> bool {
        let r = &self.required;
        (!r.no_plaintext || f.no_plaintext)
            && (!r.no_active || f.no_active)
            && (!r.no_dictionary || f.no_dictionary)
            && (!r.no_anonymous || f.no_anonymous)
            && (!r.mutual_auth || f.mutual_auth)
            && (!r.forward_secrecy || f.forward_secrecy)
    }
}

/// The mechanisms to offer, strongest first: those in `mech_list` (all when
/// empty; a base SCRAM name also enables its `-PLUS` form), allowed by the
/// options, `-PLUS` only when the connection has channel binding data.
pub fn offered(
    mech_list: &[String],
    options: &SecurityOptions,
    channel_binding: bool,
) -> Vec<&'static str> {
    let listed = |name: &str| {
        mech_list.is_empty()
            || mech_list.iter().any(|m| {
                m.eq_ignore_ascii_case(name)
                    || name
                        .strip_suffix("-PLUS")
                        .is_some_and(|base| m.eq_ignore_ascii_case(base))
            })
    };
    mech::ALL
        .iter()
        .copied()
        .filter(|name| channel_binding || !name.ends_with("-PLUS"))
        .filter(|name| listed(name))
        .filter(|name| mech::security_flags(name).is_some_and(|f| options.allows(&f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn postfix_defaults_offer_everything() {
        let o = SecurityOptions::parse("noanonymous").unwrap();
        assert_eq!(
            offered(&[], &o, false),
            vec![
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "DIGEST-MD5",
                "CRAM-MD5",
                "PLAIN",
                "LOGIN"
            ]
        );
        assert_eq!(offered(&[], &o, true).len(), 8);
    }

    #[test]
    fn noplaintext_with_only_plain_login_leaves_nothing() {
        let o = SecurityOptions::parse("noanonymous, noplaintext").unwrap();
        assert!(offered(&list("plain login"), &o, false).is_empty());
        assert_eq!(
            offered(&list("PLAIN LOGIN CRAM-MD5"), &o, false),
            vec!["CRAM-MD5"]
        );
    }

    #[test]
    fn each_option_filters_as_cyrus() {
        let all = |opts: &str| offered(&[], &SecurityOptions::parse(opts).unwrap(), true);
        assert_eq!(
            all("noactive"),
            vec![
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-1-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1"
            ]
        );
        assert!(all("nodictionary").is_empty());
        assert!(all("forward_secrecy").is_empty());
        assert_eq!(all("mutual_auth").last(), Some(&"DIGEST-MD5"));
        assert!(SecurityOptions::parse("noplaintext, bogus").is_err());
    }

    #[test]
    fn mech_list_matches_case_insensitively_and_enables_plus() {
        let o = SecurityOptions::default();
        assert_eq!(
            offered(&list("scram-sha-256 plain"), &o, true),
            vec!["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]
        );
        assert_eq!(offered(&list("NTLM GSSAPI"), &o, true), Vec::<&str>::new());
    }
}
