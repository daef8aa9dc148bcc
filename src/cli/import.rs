//! `saslpasswd --import OLDFILE [-f NEWFILE|URL] [--dry-run] [--replace]
//! [--skip-unstorable]`: the command-line side of [`crate::migrate::import`]
//! and, into PostgreSQL, [`crate::migrate::import_pg`].
//!
//! Parsed from `saslpasswd`'s own option table (so the man page and the
//! completions know `--import`), but only the options that mean something
//! for an import are accepted. The summary goes to standard output; failures
//! are one line naming the file, then Cyrus's `generic failure`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::getopt::{Event, Getopt};
use super::progress::Progress;
use super::{DEFAULT_SASLDB, exit, isatty, stderr};
use crate::migrate::import::{ImportOptions, ImportReport, import};
use crate::migrate::import_pg::import_pg;
use crate::saslconf;
use crate::store::OpenOptions;
use crate::store::pg::{Mode, PgStore};

/// True when the command line asks for an import (`--import` anywhere
/// before a `--`): `saslpasswd` hands the whole command line over.
pub fn wanted(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--import" || a.as_encoded_bytes().starts_with(b"--import="))
}

/// Run an import; returns the exit code. `args` includes `argv[0]`.
pub fn run(prog: &str, args: Vec<OsString>) -> i32 {
    let parsed =
        Getopt::from_command(&super::saslpasswd::command()).parse(args.into_iter().skip(1));
    let mut source: Option<OsString> = None;
    let mut file: Option<OsString> = None;
    let mut appname = String::from("saslpasswd");
    let mut opts = ImportOptions::default();
    for ev in parsed.events {
        match ev {
            Event::Error(msg) => return fail_usage(prog, &msg),
            Event::Opt(id, v) => match id.as_str() {
                "import" => source = v,
                "file" => file = v,
                "appname" => {
                    appname = v
                        .map(|a| a.to_string_lossy().into_owned())
                        .unwrap_or_default()
                }
                "dry-run" => opts.dry_run = true,
                "replace" => opts.replace = true,
                "skip-unstorable" => opts.skip_unstorable = true,
                other => {
                    return fail_usage(
                        prog,
                        &format!(
                            "--import takes only -f, -a, --dry-run, --replace and --skip-unstorable, not {}",
                            flag_name(other)
                        ),
                    );
                }
            },
        }
    }
    if !parsed.operands.is_empty() {
        return fail_usage(prog, "--import takes no user id");
    }
    if appname.contains('/') || appname.is_empty() {
        return fail_usage(prog, "appname must be a plain name");
    }
    let source = match source {
        Some(s) if s == "-" => {
            return fail_usage(
                prog,
                "--import needs a file (the reader seeks in it); standard input cannot be imported",
            );
        }
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => return fail_usage(prog, "--import needs the old sasldb file"),
    };
    let config = match saslconf::load(&appname, &saslconf::search_path()) {
        Ok(c) => c,
        Err(e) => {
            stderr(&format!(
                "{prog}: {e}\n{prog}: error when parsing configuration file\n"
            ));
            return exit::CONFIGERR;
        }
    };
    let target = match &file {
        Some(f) if !f.is_empty() => PathBuf::from(f),
        Some(_) => PathBuf::from(DEFAULT_SASLDB),
        None => PathBuf::from(config.sasldb_path().unwrap_or(DEFAULT_SASLDB)),
    };
    let pg_url = crate::store::pg::is_url(target.as_os_str().as_encoded_bytes())
        .then(|| target.to_string_lossy().into_owned());
    if opts.skip_unstorable && pg_url.is_none() {
        return fail_usage(
            prog,
            "--skip-unstorable applies to a PostgreSQL store (an LMDB store holds every record as it is)",
        );
    }
    opts.open = OpenOptions {
        map_size: config.sasldb_mapsize(),
        max_readers: config.sasldb_maxreaders(),
    };
    let mut bar = Progress::new(prog, "importing", 0, isatty(2));
    let mut progress = |done, total| {
        bar.set_total(total);
        bar.update(done);
    };
    let outcome = match &pg_url {
        Some(url) => PgStore::connect(url, Mode::Write)
            .map_err(Into::into)
            .and_then(|pg| {
                let report = import_pg(&source, &pg, &opts, &mut progress)?;
                Ok((report, PathBuf::from(pg.target())))
            }),
        None => import(&source, &target, &opts, &mut progress).map(|r| (r, target.clone())),
    };
    bar.finish();
    match outcome {
        Ok((report, shown)) => {
            print_report(prog, &source, &shown, opts.dry_run, &report);
            exit::OK
        }
        Err(e) => {
            stderr(&format!("{prog}: {e}\n{prog}: generic failure\n"));
            exit::FAIL
        }
    }
}

fn flag_name(id: &str) -> String {
    super::saslpasswd::command()
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| {
            a.get_long()
                .map(|l| format!("--{l}"))
                .or_else(|| a.get_short().map(|s| format!("-{s}")))
        })
        .unwrap_or_else(|| format!("-{id}"))
}

fn fail_usage(prog: &str, msg: &str) -> i32 {
    stderr(&format!("{prog}: {msg}\n"));
    exit::FAIL
}

fn print_report(prog: &str, source: &Path, target: &Path, dry: bool, r: &ImportReport) {
    let format = r.format.map_or("?", |f| f.name());
    let head = if dry {
        "import (dry run, nothing written)"
    } else {
        "import"
    };
    let what = if r.created {
        if dry { "would create" } else { "created" }
    } else {
        "into"
    };
    let mut out = format!(
        "{prog}: {head}: {} records from {} ({format}) {what} {}: {} added, {} replaced, {} unchanged\n",
        r.records,
        source.display(),
        target.display(),
        r.added,
        r.replaced,
        r.unchanged
    );
    if r.map_grew() {
        out.push_str(&super::map_growth_note(
            prog,
            target,
            r.map_before,
            r.map_after,
            dry,
        ));
    }
    if !r.skipped.is_empty() {
        let skip = if dry { "would skip" } else { "skipped" };
        out.push_str(&format!(
            "{prog}: {skip} {} record(s) a PostgreSQL text column cannot hold (--skip-unstorable); users left without another secret need a new password:\n",
            r.skipped.len()
        ));
        for s in &r.skipped {
            out.push_str(&format!("{prog}:   {s}\n"));
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}
