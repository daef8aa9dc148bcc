//! `saslpasswd --batch`: provisioning input for scripts.
//!
//! One operation per line: `user[@realm]:password` sets a password (split at
//! the first `:`, so the password may hold colons but the user id cannot),
//! `-user[@realm]` deletes. Blank lines and lines starting with `#` are
//! skipped; a CR before the LF is taken as part of the line ending. Realms
//! follow the `-u`/`@` rules of a single user id. Errors name the line,
//! never its password.

use std::io;

use crate::admin::Op;
use crate::secret;
use crate::store::Account;

/// Longest accepted line: a 511-byte key plus an 8191-byte password fit.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// Parse every line; all errors are reported, and any error means no
/// operation at all.
pub fn parse(
    input: &[u8],
    domain: Option<&[u8]>,
    default_realm: &mut dyn FnMut() -> io::Result<Vec<u8>>,
) -> Result<Vec<Op>, Vec<LineError>> {
    let mut ops = Vec::new();
    let mut errors = Vec::new();
    let mut cached: Option<Vec<u8>> = None;
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let mut fail = |reason: String| errors.push(LineError { line: n, reason });
        if line.len() > MAX_LINE {
            fail(format!("line longer than {MAX_LINE} bytes"));
            continue;
        }
        let (userid, password) = if let Some(user) = line.strip_prefix(b"-") {
            (user, None)
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            (&line[..colon], Some(&line[colon + 1..]))
        } else {
            fail("expected `user[@realm]:password` or `-user[@realm]`".into());
            continue;
        };
        if userid.contains(&0) {
            fail("user id contains a NUL byte".into());
            continue;
        }
        let account = match Account::resolve(userid, domain, || match &cached {
            Some(r) => Ok::<_, io::Error>(r.clone()),
            None => {
                let r = default_realm()?;
                cached = Some(r.clone());
                Ok(r)
            }
        }) {
            Ok(a) => a,
            Err(e) => {
                fail(format!("cannot find the default realm: {e}"));
                continue;
            }
        };
        if let Err(e) = crate::admin::check_account(&account) {
            fail(e.to_string());
            continue;
        }
        match password {
            None => ops.push(Op::Delete { account }),
            Some(pw) => {
                if pw.contains(&0) {
                    fail("password contains a NUL byte".into());
                    continue;
                }
                if let Err(e) = secret::validate(pw) {
                    fail(e.to_string());
                    continue;
                }
                ops.push(Op::Set {
                    account: Account::new(account.authid, account.realm),
                    password: pw.to_vec(),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Vec<Op>, Vec<LineError>> {
        parse(text.as_bytes(), Some(b"dom.example"), &mut || {
            Ok(b"vm".to_vec())
        })
    }

    #[test]
    fn good_lines() {
        let ops = run("# users\nalice:pw:with:colons\r\n\nbob@other.example:x\n-carol\n-dave@r\n")
            .unwrap();
        assert_eq!(ops.len(), 4);
        match &ops[0] {
            Op::Set { account, password } => {
                assert_eq!(account, &Account::new("alice", "dom.example"));
                assert_eq!(password, b"pw:with:colons");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ops[1].account(), &Account::new("bob", "other.example"));
        assert!(
            matches!(&ops[2], Op::Delete { account } if account == &Account::new("carol", "dom.example"))
        );
        assert_eq!(ops[3].account(), &Account::new("dave", "r"));
    }

    #[test]
    fn every_bad_line_is_named_and_no_password_is_echoed() {
        let long_user = "u".repeat(600);
        let text = format!("ok:fine\nnocolon-s3cr3t\nempty:\n{long_user}:hunter2\nnul:a\0b\n");
        let errs = run(&text).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        for e in &errs {
            assert!(
                !e.reason.contains("s3cr3t") && !e.reason.contains("hunter2"),
                "{e:?}"
            );
        }
        assert!(errs[2].reason.contains("511"), "{:?}", errs[2]);
    }
}
