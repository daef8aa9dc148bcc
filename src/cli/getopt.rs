//! Command-line parsing the way glibc's `getopt_long` does it, so the
//! Cyrus-compatible tools accept exactly what `saslpasswd2` accepts
//! (clustered flags, `-fFILE`, an option argument that starts with `-`,
//! options after operands, `--`) and print glibc's messages for bad input.
//!
//! The option table comes from the tool's clap `Command`, the one definition
//! the man pages and completions are generated from.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// One option the table knows.
#[derive(Debug, Clone)]
struct Opt {
    id: String,
    short: Option<char>,
    long: Option<String>,
    takes_value: bool,
}

/// What the parser met, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An option by its clap id, with its argument when it takes one.
    Opt(String, Option<OsString>),
    /// A bad option; the message is glibc's, without the program prefix.
    Error(String),
}

/// Parsed command line: events in order, operands apart.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub events: Vec<Event>,
    pub operands: Vec<OsString>,
}

pub struct Getopt {
    opts: Vec<Opt>,
}

impl Getopt {
    pub fn from_command(cmd: &clap::Command) -> Self {
        let opts = cmd
            .get_arguments()
            .filter(|a| !a.is_positional())
            .map(|a| Opt {
                id: a.get_id().to_string(),
                short: a.get_short(),
                long: a.get_long().map(str::to_string),
                takes_value: a.get_action().takes_values(),
            })
            .collect();
        Getopt { opts }
    }

    /// Also accept the flag `-short`, reported as `id`: for option characters that are in a
    /// Cyrus option string but not in the command definition (`-?`, which glibc's getopt
    /// returns without printing "invalid option").
    pub fn with_flag(mut self, short: char, id: &str) -> Self {
        self.opts.push(Opt {
            id: id.to_string(),
            short: Some(short),
            long: None,
            takes_value: false,
        });
        self
    }

    /// Parse the arguments after the program name.
    pub fn parse<I, S>(&self, args: I) -> Parsed
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let posixly = std::env::var_os("POSIXLY_CORRECT").is_some();
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut out = Parsed::default();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_bytes();
            i += 1;
            if arg == b"--" {
                out.operands.extend(args[i..].iter().cloned());
                break;
            }
            if arg.len() < 2 || arg[0] != b'-' {
                out.operands.push(args[i - 1].clone());
                if posixly {
                    out.operands.extend(args[i..].iter().cloned());
                    break;
                }
                continue;
            }
            if let Some(body) = arg.strip_prefix(b"--") {
                self.long(body, &args, &mut i, &mut out.events);
            } else {
                self.shorts(&arg[1..], &args, &mut i, &mut out.events);
            }
        }
        out
    }

    fn shorts(&self, cluster: &[u8], args: &[OsString], i: &mut usize, ev: &mut Vec<Event>) {
        let mut j = 0;
        while j < cluster.len() {
            let c = cluster[j] as char;
            j += 1;
            let Some(opt) = self.opts.iter().find(|o| o.short == Some(c)) else {
                ev.push(Event::Error(format!("invalid option -- '{}'", c)));
                continue;
            };
            if !opt.takes_value {
                ev.push(Event::Opt(opt.id.clone(), None));
                continue;
            }
            if j < cluster.len() {
                let v = OsStr::from_bytes(&cluster[j..]).to_os_string();
                ev.push(Event::Opt(opt.id.clone(), Some(v)));
            } else if *i < args.len() {
                ev.push(Event::Opt(opt.id.clone(), Some(args[*i].clone())));
                *i += 1;
            } else {
                ev.push(Event::Error(format!(
                    "option requires an argument -- '{}'",
                    c
                )));
            }
            return;
        }
    }

    fn long(&self, body: &[u8], args: &[OsString], i: &mut usize, ev: &mut Vec<Event>) {
        let (name, inline) = match body.iter().position(|&b| b == b'=') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        let shown = String::from_utf8_lossy(name);
        let exact = self
            .opts
            .iter()
            .find(|o| o.long.as_deref().map(str::as_bytes) == Some(name));
        let opt = match exact {
            Some(o) => o,
            None => {
                let prefixed: Vec<&Opt> = self
                    .opts
                    .iter()
                    .filter(|o| {
                        o.long
                            .as_deref()
                            .is_some_and(|l| l.as_bytes().starts_with(name))
                    })
                    .collect();
                match prefixed.as_slice() {
                    [one] => *one,
                    [] => {
                        ev.push(Event::Error(format!("unrecognized option '--{shown}'")));
                        return;
                    }
                    many => {
                        let names: Vec<String> = many
                            .iter()
                            .filter_map(|o| o.long.as_ref().map(|l| format!("'--{l}'")))
                            .collect();
                        ev.push(Event::Error(format!(
                            "option '--{shown}' is ambiguous; possibilities: {}",
                            names.join(" ")
                        )));
                        return;
                    }
                }
            }
        };
        let long = opt.long.as_deref().unwrap_or_default();
        match (opt.takes_value, inline) {
            (false, None) => ev.push(Event::Opt(opt.id.clone(), None)),
            (false, Some(_)) => ev.push(Event::Error(format!(
                "option '--{long}' doesn't allow an argument"
            ))),
            (true, Some(v)) => ev.push(Event::Opt(
                opt.id.clone(),
                Some(OsStr::from_bytes(v).to_os_string()),
            )),
            (true, None) if *i < args.len() => {
                ev.push(Event::Opt(opt.id.clone(), Some(args[*i].clone())));
                *i += 1;
            }
            (true, None) => ev.push(Event::Error(format!(
                "option '--{long}' requires an argument"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn table() -> Getopt {
        Getopt::from_command(
            &Command::new("t")
                .arg(Arg::new("c").short('c').action(ArgAction::SetTrue))
                .arg(Arg::new("p").short('p').action(ArgAction::SetTrue))
                .arg(Arg::new("f").short('f').action(ArgAction::Set))
                .arg(Arg::new("batch").long("batch").action(ArgAction::Set))
                .arg(
                    Arg::new("dry-run")
                        .long("dry-run")
                        .action(ArgAction::SetTrue),
                )
                .arg(Arg::new("debug").long("debug").action(ArgAction::SetTrue))
                .arg(Arg::new("user")),
        )
    }

    fn opt(id: &str, v: Option<&str>) -> Event {
        Event::Opt(id.into(), v.map(OsString::from))
    }

    #[test]
    fn clusters_attached_values_and_permutation() {
        let p = table().parse(["alice", "-cpfDB", "-f", "-x", "--", "-dash"]);
        assert_eq!(
            p.events,
            vec![
                opt("c", None),
                opt("p", None),
                opt("f", Some("DB")),
                opt("f", Some("-x"))
            ]
        );
        assert_eq!(p.operands, vec![OsString::from("alice"), "-dash".into()]);
    }

    #[test]
    fn glibc_messages() {
        let p = table().parse(["-x", "-f"]);
        assert_eq!(
            p.events,
            vec![
                Event::Error("invalid option -- 'x'".into()),
                Event::Error("option requires an argument -- 'f'".into())
            ]
        );
        // Like glibc, a required argument takes the next word even if it
        // looks like an option.
        let p = table().parse([
            "--nope",
            "--batch",
            "--dry-run=1",
            "--dry-run=1",
            "--d",
            "--batch",
        ]);
        assert_eq!(
            p.events,
            vec![
                Event::Error("unrecognized option '--nope'".into()),
                opt("batch", Some("--dry-run=1")),
                Event::Error("option '--dry-run' doesn't allow an argument".into()),
                Event::Error(
                    "option '--d' is ambiguous; possibilities: '--dry-run' '--debug'".into()
                ),
                Event::Error("option '--batch' requires an argument".into()),
            ]
        );
    }

    #[test]
    fn long_values_and_prefixes() {
        let p = table().parse(["--batch=f.txt", "--dry", "--batch", "-"]);
        assert_eq!(
            p.events,
            vec![
                opt("batch", Some("f.txt")),
                opt("dry-run", None),
                opt("batch", Some("-"))
            ]
        );
        assert!(p.operands.is_empty());
        assert_eq!(table().parse(["-"]).operands, vec![OsString::from("-")]);
    }
}
