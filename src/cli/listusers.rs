//! `sasldblistusers`: a drop-in for Cyrus SASL 2.1.28's `sasldblistusers2`,
//! plus table and JSON views and a realm filter.
//!
//! The default output is byte-identical to Cyrus's: one
//! `authid@realm: property` line per key, in LMDB key order. Keys Cyrus
//! cannot parse (not exactly two NULs) make Cyrus loop forever; they are
//! skipped here with one warning.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};
use serde::Serialize;

use super::getopt::{Event, Getopt};
use super::{DEFAULT_SASLDB, exit, isatty, stderr};
use crate::saslconf;
use crate::secret;
use crate::store::pg::{Mode, PgStore, is_url};
use crate::store::{Entry, OpenOptions, Scanned, Store};

const AFTER_HELP: &str = "\
Compatibility:
  Output, messages and exit codes are those of sasldblistusers2 from Cyrus SASL 2.1.28: one
  user@realm: property line per stored property, in LMDB key order. sasldb_path in
  sasldblistusers.conf is ignored, as by Cyrus; sasldb_mapsize and sasldb_maxreaders are read.

Exit status:
  0      success; also, as with Cyrus, when the store is missing or cannot be read: then
         \"listusers failed\" goes to stderr (preceded here by a line saying why)
  1      usage error; with --format table or json, also a store that cannot be read

Other formats:
  A Berkeley DB hash sasldb (Debian, Ubuntu) or a GDBM one (Fedora, RHEL, Arch) is listed too,
  read-only, chosen by the file's content: the same lines, in the order that build's
  sasldblistusers2 prints them. A truncated or damaged file is an error (exit 1), never a
  partial listing. Import one with saslpasswd --import.

Deliberate differences from sasldblistusers2:
  * A key without exactly two NUL bytes is skipped with one warning (Cyrus loops forever).
  * A symbolic link as the store path is refused (see saslpasswd(8)).

JSON output:
  --format json prints one document in a stable schema:
    {\"schema\": \"sasldb-list/1\", \"path\": STRING,
     \"accounts\": [{\"user\": STRING, \"realm\": STRING,
                   \"properties\": [STRING], \"mechanisms\": [STRING]}],
     \"malformed_keys\": NUMBER}
  Accounts come in LMDB key order; bytes that are not UTF-8 are shown as U+FFFD. \"mechanisms\"
  lists the mechanisms that log in with the stored properties, decided by the code that
  decides at login (a -n account: PLAIN, LOGIN and its SCRAM hash). Values (secrets) are never
  printed in any format.

Files:
  /etc/sasldb2             default store
  /etc/sasldb2-lock        LMDB lock file; readers need write access to it
  sasldblistusers.conf     searched in $SASL_CONF_PATH, else /etc/sasl2, /etc/sasl,
                           /usr/lib/x86_64-linux-gnu/sasl2, /usr/lib/sasl2

Examples:
  List /etc/sasldb2 exactly as sasldblistusers2 does:
    sasldblistusers
  One row per account, with the mechanisms it can use, for Postfix's chrooted copy:
    sasldblistusers -f /var/spool/postfix/etc/sasldb2 --format table
  The accounts in the realm Postfix uses, as JSON:
    sasldblistusers --realm \"$(postconf -h myhostname)\" --format json";

/// Output views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Compat,
    Table,
    Json,
}

pub fn command() -> Command {
    Command::new("sasldblistusers")
        .version(env!("CARGO_PKG_VERSION"))
        .about("list the users of a sasldb file (sasldblistusers2 compatible)")
        .long_about(
            "sasldblistusers lists the accounts of a sasldb file in Cyrus SASL's LMDB layout. \
             By default it prints exactly what Cyrus sasldblistusers2 prints: one \
             user@realm: property line per stored property. Table and JSON views show each \
             account once with the mechanisms it can use. Secrets are never printed.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .override_usage(
            "sasldblistusers [-v] [[-f] sasldb] [--format compat|table|json] [--realm REALM]",
        )
        .arg(
            Arg::new("file")
                .short('f')
                .value_name("sasldb")
                .action(ArgAction::Set)
                .value_hint(clap::ValueHint::FilePath)
                .help("Use this file as the sasldb (default /etc/sasldb2), or a PostgreSQL URL postgresql://USER[:PASS]@HOST[:PORT]/DB (see saslpasswd(8))"),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .action(ArgAction::SetTrue)
                .help("Print version numbers and exit"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .action(ArgAction::SetTrue)
                .help("Print the Cyrus usage text and exit 1"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .action(ArgAction::Set)
                .value_parser(["compat", "table", "json"])
                .help("Output view: compat (Cyrus lines, default), table or json"),
        )
        .arg(
            Arg::new("realm")
                .long("realm")
                .value_name("REALM")
                .action(ArgAction::Set)
                .help("Only list accounts in this realm (exact, case-sensitive)"),
        )
        .arg(
            Arg::new("long-help")
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Print this help and exit 0"),
        )
        .after_long_help(AFTER_HELP)
}

fn usage(prog: &str) {
    stderr(&format!(
        "{}{prog}: usage: {prog} [-v] [[-f] sasldb]\n\t-f sasldb\tuse given file as sasldb\n\t-v\tprint version numbers and exit\n",
        super::ACK
    ));
}

/// Run the tool; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let mut args = args.into_iter();
    let argv0 = args.next();
    let prog = super::prog_name(argv0.as_deref(), "sasldblistusers");
    // glibc's getopt names argv[0] as given, not its basename.
    let getopt_name = argv0.map_or_else(|| prog.clone(), |a| a.to_string_lossy().into_owned());
    let args: Vec<OsString> = args.collect();
    let mut file: Option<OsString> = None;
    let mut format = Format::Compat;
    let mut realm: Option<OsString> = None;
    // Cyrus: a single argument that is not an option is the path.
    if args.len() == 1 && !args[0].as_bytes().starts_with(b"-") {
        file = Some(args[0].clone());
    } else {
        let parsed = Getopt::from_command(&command())
            .with_flag('?', "question")
            .parse(args);
        // As in sasldblistusers2, errors only mark the command line bad and parsing goes on
        // (a later -v still acts); "Unrecognized command line option" follows the usage when
        // the last of them was a bad option (or -?) rather than -h.
        let mut flag_error = false;
        let mut bad_option = false;
        for ev in parsed.events {
            match ev {
                Event::Error(msg) => {
                    stderr(&format!("{getopt_name}: {msg}\n"));
                    flag_error = true;
                    bad_option = true;
                }
                Event::Opt(id, v) => match id.as_str() {
                    "file" => file = v,
                    "version" => {
                        stderr(&super::version_text());
                        return exit::OK;
                    }
                    "format" => {
                        format = match v.as_ref().and_then(|f| f.to_str()) {
                            Some("compat") => Format::Compat,
                            Some("table") => Format::Table,
                            Some("json") => Format::Json,
                            _ => {
                                stderr(&format!("{prog}: --format takes compat, table or json\n"));
                                return exit::FAIL;
                            }
                        }
                    }
                    "realm" => realm = v,
                    "long-help" => {
                        let help = command().render_long_help().to_string();
                        let _ = io::stdout().write_all(help.as_bytes());
                        return exit::OK;
                    }
                    "help" => {
                        flag_error = true;
                        bad_option = false;
                    }
                    _ => {
                        flag_error = true; // -?
                        bad_option = true;
                    }
                },
            }
        }
        // Extension: with one of our long options, `sasldblistusers PATH
        // --format json` names the path as an operand. Every command line
        // Cyrus accepts or refuses is still treated as Cyrus treats it.
        let extended = format != Format::Compat || realm.is_some();
        match parsed.operands.as_slice() {
            [] => {}
            [one] if extended && file.is_none() => file = Some(one.clone()),
            _ => flag_error = true,
        }
        if flag_error {
            usage(&prog);
            if bad_option {
                stderr("Unrecognized command line option\n");
            }
            return exit::FAIL;
        }
    }
    let path = match &file {
        Some(f) if !f.is_empty() => PathBuf::from(f),
        _ => PathBuf::from(DEFAULT_SASLDB),
    };
    let config = match saslconf::load("sasldblistusers", &saslconf::search_path()) {
        Ok(c) => c,
        Err(e) => {
            stderr(&format!("{prog}: {e}\nCouldn't initialize server API\n"));
            return exit::FAIL;
        }
    };
    let open = OpenOptions {
        map_size: config.sasldb_mapsize(),
        max_readers: config.sasldb_maxreaders(),
    };
    let failed = |detail: &dyn std::fmt::Display| {
        stderr(&format!("{prog}: {detail}\n"));
        if format == Format::Compat {
            stderr("listusers failed\n");
            exit::OK
        } else {
            exit::FAIL
        }
    };
    let realm = realm.map(|r| r.as_bytes().to_vec());
    let pg = is_url(path.as_os_str().as_bytes());
    // What the JSON names as the store: never a URL's password.
    let mut shown = path.to_string_lossy().into_owned();
    let listing = if pg {
        match list_pg(&path.to_string_lossy(), realm.as_deref(), format) {
            Ok((l, target)) => {
                shown = target;
                l
            }
            Err(e) => return failed(&e),
        }
    } else {
        match migrate_listing(&path, realm.as_deref(), format) {
            Some(Ok(l)) => l,
            // Unlike Cyrus, a damaged file is an error in every view: a partial
            // listing with exit 0 would hide lost accounts.
            Some(Err(e)) => {
                stderr(&format!("{prog}: {e}\n"));
                return exit::FAIL;
            }
            None => {
                let store = match Store::open_read(&path, &open) {
                    Ok(s) => s,
                    Err(e) => return failed(&e),
                };
                match list(&store, realm.as_deref(), format) {
                    Ok(l) => l,
                    Err(e) => return failed(&e),
                }
            }
        }
    };
    if listing.malformed > 0 {
        stderr(&format!(
            "{prog}: warning: skipped {} malformed key(s) (not user\\0realm\\0property)\n",
            listing.malformed
        ));
    }
    let out = io::stdout().lock();
    let written = match format {
        Format::Compat => write_all_bytes(out, &listing.compat),
        Format::Table => write_all_bytes(out, render_table(&listing.accounts).as_bytes()),
        Format::Json => {
            let doc = JsonDoc {
                schema: "sasldb-list/1",
                path: shown,
                accounts: &listing.accounts,
                malformed_keys: listing.malformed,
            };
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            write_all_bytes(out, text.as_bytes())
        }
    };
    match written {
        Ok(()) => exit::OK,
        Err(e) => {
            stderr(&format!(
                "{prog}: standard output: {}\n",
                super::strerror(&e)
            ));
            exit::FAIL
        }
    }
}

fn write_all_bytes(out: impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    w.write_all(bytes)?;
    w.flush()
}

/// One account as the table and JSON views show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccountView {
    pub user: String,
    pub realm: String,
    pub properties: Vec<String>,
    pub mechanisms: Vec<&'static str>,
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    schema: &'static str,
    path: String,
    accounts: &'a [AccountView],
    malformed_keys: usize,
}

/// The listing of a store in one snapshot.
#[derive(Debug, Default)]
pub struct Listing {
    /// Cyrus lines, raw bytes (compat view only).
    pub compat: Vec<u8>,
    /// Accounts (table and JSON views only).
    pub accounts: Vec<AccountView>,
    pub malformed: usize,
}

/// Read the listing for one view in one read transaction.
/// The listing of a PostgreSQL store, and its URL without the password.
fn list_pg(
    url: &str,
    realm: Option<&[u8]>,
    format: Format,
) -> crate::store::Result<(Listing, String)> {
    let store = PgStore::connect(url, Mode::Read)?;
    let rows = store.entries()?;
    let listing = list_scanned(
        |f| {
            for [authid, in_realm, property, value] in &rows {
                let go = f(Scanned::Entry(Entry {
                    authid: authid.as_bytes(),
                    realm: in_realm.as_bytes(),
                    property: property.as_bytes(),
                    value: value.as_bytes(),
                }));
                if !go {
                    break;
                }
            }
            Ok::<(), crate::store::StoreError>(())
        },
        realm,
        format,
    )?;
    Ok((listing, store.target().to_string()))
}

pub fn list(store: &Store, realm: Option<&[u8]>, format: Format) -> crate::store::Result<Listing> {
    store.read(|view| list_scanned(|f| view.scan(f), realm, format))
}

/// The listing of any walk over entries: a store's, or a migration source's
/// (Berkeley DB or GDBM, read through `crate::migrate`).
pub fn list_scanned<E>(
    scan: impl FnOnce(&mut dyn FnMut(Scanned<'_>) -> bool) -> Result<(), E>,
    realm: Option<&[u8]>,
    format: Format,
) -> Result<Listing, E> {
    {
        let mut l = Listing::default();
        // Property names and values of the account being gathered.
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut props: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let flush = |cur: &mut Option<(Vec<u8>, Vec<u8>)>,
                     props: &mut Vec<(Vec<u8>, Vec<u8>)>,
                     out: &mut Vec<AccountView>| {
            if let Some((user, realm)) = cur.take() {
                let refs: Vec<(&[u8], &[u8])> = props
                    .iter()
                    .map(|(p, v)| (p.as_slice(), v.as_slice()))
                    .collect();
                out.push(AccountView {
                    user: String::from_utf8_lossy(&user).into_owned(),
                    realm: String::from_utf8_lossy(&realm).into_owned(),
                    properties: props
                        .iter()
                        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
                        .collect(),
                    mechanisms: secret::mechanisms(&refs),
                });
                props.clear();
            }
        };
        scan(&mut |s| {
            let e = match s {
                Scanned::Entry(e) => e,
                Scanned::Malformed(_) => {
                    l.malformed += 1;
                    return true;
                }
            };
            if realm.is_some_and(|r| r != e.realm) {
                return true;
            }
            if format == Format::Compat {
                l.compat.extend_from_slice(e.authid);
                l.compat.push(b'@');
                l.compat.extend_from_slice(e.realm);
                l.compat.extend_from_slice(b": ");
                l.compat.extend_from_slice(e.property);
                l.compat.push(b'\n');
                return true;
            }
            let same = current
                .as_ref()
                .is_some_and(|(u, r)| u == e.authid && r == e.realm);
            if !same {
                flush(&mut current, &mut props, &mut l.accounts);
                current = Some((e.authid.to_vec(), e.realm.to_vec()));
            }
            // Values are kept only to name SCRAM mechanisms; never shown.
            let keep = if e.property == secret::AUTH_PASSWORD.as_bytes() {
                e.value.to_vec()
            } else {
                Vec::new()
            };
            props.push((e.property.to_vec(), keep));
            true
        })?;
        flush(&mut current, &mut props, &mut l.accounts);
        Ok(l)
    }
}

/// The listing of a file that is not LMDB (Berkeley DB, GDBM), read-only
/// through [`crate::migrate`]; `None` when the file is LMDB, empty or
/// missing, which the store reads itself.
fn migrate_listing(
    path: &std::path::Path,
    realm: Option<&[u8]>,
    format: Format,
) -> Option<crate::migrate::Result<Listing>> {
    use crate::migrate::{self, Format as Source};
    match migrate::sniff(path) {
        Ok(Source::Lmdb | Source::Empty) => return None,
        // Unreadable, or no database at all: the store says why, as Cyrus does.
        Err(migrate::MigrateError::Io { .. } | migrate::MigrateError::Foreign(_)) => return None,
        Err(e) => return Some(Err(e)),
        Ok(_) => {}
    }
    if format == Format::Compat {
        // Cyrus lists in the file's own (hash) order.
        return Some(list_scanned(
            |f| {
                migrate::for_each_record(path, |k, v| {
                    f(Scanned::from_raw(k, v));
                    Ok(())
                })
                .map(|_| ())
            },
            realm,
            format,
        ));
    }
    // The account views group an account's properties, which hash order
    // scatters: sort by key first. Only authPassword values are kept (they
    // name the SCRAM mechanisms).
    let mut records = Vec::new();
    if let Err(e) = migrate::for_each_record(path, |k, v| {
        let keep = crate::store::key::decode(k)
            .is_some_and(|d| d.property == secret::AUTH_PASSWORD.as_bytes());
        records.push((k.to_vec(), if keep { v.to_vec() } else { Vec::new() }));
        Ok(())
    }) {
        return Some(Err(e));
    }
    records.sort_unstable();
    Some(list_scanned(
        |f| {
            for (k, v) in &records {
                f(Scanned::from_raw(k, v));
            }
            Ok(())
        },
        realm,
        format,
    ))
}

fn render_table(accounts: &[AccountView]) -> String {
    use comfy_table::{Table, presets};
    let mut t = Table::new();
    t.load_style(if isatty(1) {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    });
    t.set_header(["user", "realm", "properties", "mechanisms"]);
    for a in accounts {
        t.add_row([
            a.user.clone(),
            a.realm.clone(),
            a.properties.join(", "),
            if a.mechanisms.is_empty() {
                "(none)".to_string()
            } else {
                a.mechanisms.join(" ")
            },
        ]);
    }
    let mut s = t.to_string();
    s.push('\n');
    s
}
