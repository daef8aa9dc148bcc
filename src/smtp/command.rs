//! SMTP command parsing (RFC 5321, RFC 4954 AUTH, RFC 3207 STARTTLS),
//! without I/O: one line in, one command or a reply-worthy error out.
//!
//! Addresses are parsed strictly enough that relay decisions cannot be
//! fooled: source routes are stripped as RFC 5321 allows, and the domain
//! is the part after the last `@` of a well-formed mailbox, so `%` hacks,
//! `!` paths and quoted local parts never change which domain a recipient
//! is judged by; [`Address::routed`] says when the local part itself
//! carries a route, which the relay policy refuses to untrusted clients.

use std::fmt;

/// RFC 5321 §4.5.3.1.4: a command line, CRLF included, is at most 512
/// octets; ESMTP parameters may extend it, so allow a little more.
pub const MAX_COMMAND_LINE: usize = 2048;

/// A mailbox from MAIL FROM or RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Local part as written (quotes kept).
    pub local: String,
    /// Domain, lower-cased, without a trailing dot.
    pub domain: String,
}

impl Address {
    /// Parse `local@domain` (the inside of `<...>`). Only ASCII: SMTPUTF8
    /// is not offered, and 8-bit bytes must not reach a next hop that
    /// might read them differently.
    pub fn parse(s: &str) -> Result<Address, &'static str> {
        if !s.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' ') {
            return Err("invalid character in address");
        }
        let at = s.rfind('@').ok_or("address has no domain")?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() {
            return Err("empty local part");
        }
        if local.starts_with('"') {
            check_quoted(local)?;
        } else if local.contains([
            '"', ' ', '<', '>', '(', ')', ',', ';', ':', '\\', '[', ']', '@',
        ]) {
            return Err("invalid character in local part");
        }
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() {
            return Err("empty domain");
        }
        let valid = match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            Some(literal) => valid_literal(literal),
            None => domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }),
        };
        if !valid {
            return Err("invalid domain");
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The local part as the mailbox sees it: quotes removed, `\x` read
    /// as `x`.
    pub fn dequoted_local(&self) -> String {
        let Some(inner) = self
            .local
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
        else {
            return self.local.clone();
        };
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or(c)
            } else {
                c
            });
        }
        out
    }

    /// Sender-specified routing in the local part (`a@b`, `a%b`, `b!a`,
    /// quoted or escaped): a next hop with Postfix's defaults
    /// (`allow_percent_hack`, `swap_bangpath`, `resolve_dequoted_address`)
    /// would send such mail on to another domain.
    pub fn routed(&self) -> bool {
        self.dequoted_local().contains(['@', '%', '!'])
    }
}

/// A quoted local part: `"` qtext or quoted pairs `"`, nothing after.
fn check_quoted(local: &str) -> Result<(), &'static str> {
    let bad = Err("unbalanced quotes in local part");
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return bad;
    };
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        match b {
            // A quoted pair: the guard takes the escaped byte, whatever it is.
            b'\\' if bytes.next().is_none() => return bad,
            b'"' => return bad,
            _ => {}
        }
    }
    Ok(())
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3), nothing else.
fn valid_literal(literal: &str) -> bool {
    match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            literal[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => literal.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `None` is the null sender `<>`.
    Mail {
        from: Option<Address>,
        size: Option<u64>,
        body_8bit: bool,
        auth: Option<String>,
    },
    Rcpt(Address),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Why a line is not a command, with the reply it deserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: &'static str,
}

const fn err(code: u16, enhanced: &'static str, text: &'static str) -> Error {
    Error {
        code,
        enhanced,
        text,
    }
}

/// Extract the path inside `<...>` after `FROM:`/`TO:`, and the parameters.
fn path_and_params<'a>(rest: &'a str, keyword: &str) -> Result<(&'a str, &'a str), Error> {
    let syntax = err(501, "5.5.4", "Syntax error in parameters or arguments");
    let upper = rest.get(..keyword.len()).map(str::to_ascii_uppercase);
    if upper.as_deref() != Some(keyword) {
        return Err(syntax);
    }
    let rest = rest[keyword.len()..].trim_start();
    let rest = rest
        .strip_prefix('<')
        .ok_or(err(501, "5.1.7", "Bad address syntax"))?;
    let close = rest
        .find('>')
        .ok_or(err(501, "5.1.7", "Bad address syntax"))?;
    Ok((&rest[..close], rest[close + 1..].trim()))
}

/// Drop an RFC 5321 source route (`@a,@b:user@c`).
fn strip_route(path: &str) -> &str {
    if path.starts_with('@') {
        path.split_once(':').map_or(path, |(_, mailbox)| mailbox)
    } else {
        path
    }
}

/// Parse one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, Error> {
    if line.len() > MAX_COMMAND_LINE {
        return Err(err(500, "5.5.2", "Line too long"));
    }
    let line = std::str::from_utf8(line)
        .map_err(|_| err(500, "5.5.2", "Invalid characters in command"))?;
    if line.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(err(500, "5.5.2", "Invalid characters in command"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let addr_err = |why: &'static str| Error {
        code: 501,
        enhanced: "5.1.7",
        text: why,
    };
    match verb.to_ascii_uppercase().as_str() {
        "HELO" | "EHLO" if rest.is_empty() => Err(err(501, "5.5.4", "Syntax: EHLO hostname")),
        // The name goes into our Received header for the next hop: one
        // printable ASCII word, nothing that could read as more header.
        "HELO" | "EHLO" if !rest.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(err(501, "5.5.2", "Syntax: EHLO hostname"))
        }
        "HELO" => Ok(Command::Helo(rest.to_string())),
        "EHLO" => Ok(Command::Ehlo(rest.to_string())),
        "MAIL" => {
            let (path, params) = path_and_params(rest, "FROM:")?;
            let from = match strip_route(path) {
                "" => None,
                p => Some(Address::parse(p).map_err(addr_err)?),
            };
            let (mut size, mut body_8bit, mut auth) = (None, false, None);
            for p in params.split_whitespace() {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                match k.to_ascii_uppercase().as_str() {
                    "SIZE" => {
                        size = Some(
                            v.parse()
                                .map_err(|_| err(501, "5.5.4", "Bad SIZE parameter"))?,
                        )
                    }
                    "BODY" => match v.to_ascii_uppercase().as_str() {
                        "8BITMIME" => body_8bit = true,
                        "7BIT" => body_8bit = false,
                        _ => return Err(err(501, "5.5.4", "Bad BODY parameter")),
                    },
                    "AUTH" => auth = Some(v.to_string()),
                    _ => return Err(err(555, "5.5.4", "Unsupported option")),
                }
            }
            Ok(Command::Mail {
                from,
                size,
                body_8bit,
                auth,
            })
        }
        "RCPT" => {
            let (path, params) = path_and_params(rest, "TO:")?;
            if !params.is_empty() {
                return Err(err(555, "5.5.4", "Unsupported option"));
            }
            let path = strip_route(path);
            if path.is_empty() {
                return Err(addr_err("Bad recipient address syntax"));
            }
            Ok(Command::Rcpt(Address::parse(path).map_err(addr_err)?))
        }
        "DATA" if rest.is_empty() => Ok(Command::Data),
        "RSET" if rest.is_empty() => Ok(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" if rest.is_empty() => Ok(Command::Quit),
        "VRFY" => Ok(Command::Vrfy(rest.to_string())),
        "HELP" => Ok(Command::Help),
        "STARTTLS" if rest.is_empty() => Ok(Command::StartTls),
        "DATA" | "RSET" | "QUIT" | "STARTTLS" => {
            Err(err(501, "5.5.4", "Syntax error in parameters or arguments"))
        }
        "AUTH" => {
            let mut it = rest.split_whitespace();
            let mechanism = it
                .next()
                .ok_or(err(501, "5.5.4", "Syntax: AUTH mechanism"))?;
            let initial = it.next().map(str::to_string);
            if it.next().is_some() {
                return Err(err(501, "5.5.4", "Syntax: AUTH mechanism"));
            }
            Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial,
            })
        }
        _ => Err(err(502, "5.5.2", "Error: command not recognized")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse(b"EHLO client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(parse(b"ehlo x"), Ok(Command::Ehlo("x".into())));
        // The HELO name reaches the next hop in our Received header.
        for bad in [
            &b"EHLO a (unknown [192.0.2.1])"[..],
            b"HELO a\tb",
            "EHLO caf\u{e9}".as_bytes(),
        ] {
            assert_eq!(parse(bad).map_err(|e| e.code), Err(501), "{bad:?}");
        }
        assert_eq!(parse(b"EHLO").unwrap_err().code, 501);
        assert_eq!(
            parse(b"MAIL FROM:<Alice@Example.ORG> SIZE=1000 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: Some(addr("Alice", "example.org")),
                size: Some(1000),
                body_8bit: true,
                auth: None
            })
        );
        assert_eq!(
            parse(b"MAIL FROM:<>"),
            Ok(Command::Mail {
                from: None,
                size: None,
                body_8bit: false,
                auth: None
            })
        );
        assert_eq!(
            parse(b"mail from: <a@b.c>").unwrap(),
            Command::Mail {
                from: Some(addr("a", "b.c")),
                size: None,
                body_8bit: false,
                auth: None
            }
        );
        assert_eq!(
            parse(b"RCPT TO:<bob@example.net.>"),
            Ok(Command::Rcpt(addr("bob", "example.net")))
        );
        assert_eq!(
            parse(b"AUTH plain AHRpbQB4"),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AHRpbQB4".into())
            })
        );
        assert_eq!(
            parse(b"AUTH LOGIN"),
            Ok(Command::Auth {
                mechanism: "LOGIN".into(),
                initial: None
            })
        );
        assert_eq!(parse(b"STARTTLS"), Ok(Command::StartTls));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
        assert_eq!(parse(b"BDAT 10").unwrap_err().code, 502);
        assert_eq!(parse(b"DATA x").unwrap_err().code, 501);
        assert_eq!(parse(&[b'A'; 3000]).unwrap_err().code, 500);
        assert_eq!(parse(b"NOOP\0").unwrap_err().code, 500);
    }

    #[test]
    fn relay_tricks_do_not_change_the_domain() {
        // Percent hack: the domain is the one after the last @.
        assert_eq!(
            parse(b"RCPT TO:<victim%outside.example@local.example>"),
            Ok(Command::Rcpt(addr(
                "victim%outside.example",
                "local.example"
            )))
        );
        // Source route: stripped, the mailbox decides.
        assert_eq!(
            parse(b"RCPT TO:<@local.example:victim@outside.example>"),
            Ok(Command::Rcpt(addr("victim", "outside.example")))
        );
        // Bang path: no @, no domain: refused.
        assert_eq!(
            parse(b"RCPT TO:<outside.example!victim>").unwrap_err().code,
            501
        );
        // Quoted local part with @ inside: the real domain is after the last @.
        assert_eq!(
            parse(b"RCPT TO:<\"victim@outside.example\"@local.example>"),
            Ok(Command::Rcpt(addr(
                "\"victim@outside.example\"",
                "local.example"
            )))
        );
        assert_eq!(parse(b"RCPT TO:<a@b@c.example>").unwrap_err().code, 501);
        assert_eq!(parse(b"RCPT TO:<a@>").unwrap_err().code, 501);
        assert_eq!(parse(b"RCPT TO:<a@-bad_.example>").unwrap_err().code, 501);
        assert_eq!(
            parse(b"RCPT TO:<a@[192.0.2.1]>"),
            Ok(Command::Rcpt(addr("a", "[192.0.2.1]")))
        );
        assert_eq!(parse(b"RCPT TO:a@b.example").unwrap_err().code, 501);
    }

    #[test]
    fn routing_in_the_local_part_is_seen_through_quotes_and_escapes() {
        let routed = |a: &str| Address::parse(a).map(|a| a.routed());
        assert_eq!(routed("victim%outside.example@localhost"), Ok(true));
        assert_eq!(routed("outside.example!victim@localhost"), Ok(true));
        assert_eq!(routed("\"victim@outside.example\"@example.org"), Ok(true));
        assert_eq!(routed("\"a\\@b\"@example.org"), Ok(true));
        assert_eq!(routed("\"a\\%b\"@example.org"), Ok(true));
        assert_eq!(routed("\"a!b\"@example.org"), Ok(true));
        assert_eq!(routed("victim%@example.org"), Ok(true));
        assert_eq!(routed("alice@example.org"), Ok(false));
        assert_eq!(routed("\"alice\"@example.org"), Ok(false));
        assert_eq!(routed("\"al\\ice\"@example.org"), Ok(false));
        let a = Address::parse("\"Al\\\"ice\"@example.org").unwrap();
        assert_eq!(a.dequoted_local(), "Al\"ice");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "\"a\"b\"@example.org",
            "\"a\\\"@example.org",
            "\"@example.org",
            "a\\@b@example.org",
            "user@localhost@outside.example",
            "v\u{ef}ctim@example.org",
            "a@[127.0.0.1",
            "a@[not.an.ip]",
            "a@[IPv6:nonsense]",
            "a@localhost..",
            "a@.localhost",
            "a b@example.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "a@[ipv6:2001:db8::1]",
            "a@localhost.",
        ] {
            assert!(Address::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            parse("RCPT TO:<v\u{ef}ctim@example.org>".as_bytes())
                .unwrap_err()
                .code,
            501
        );
    }
}
