//! `saslpasswd`: a drop-in for Cyrus SASL 2.1.28's `saslpasswd2`, plus
//! `--batch`, `--dry-run`, `--password-fd` and `--check`.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::getopt::{Event, Getopt};
use super::progress::Progress;
use super::{DEFAULT_SASLDB, exit, isatty, password, realm, stderr, strerror};
use crate::admin::{self, AdminError, CheckResult, Op, Summary};
use crate::postfix::{self, Deployment, Postfix};
use crate::saslconf::{self, ConfigError, SaslConfig};
use crate::secret::{DEFAULT_ITERATIONS, ScramHash, SecretError, SetPolicy};
use crate::store::{Account, OpenOptions, Store, StoreError};

const AFTER_HELP: &str = "\
Compatibility:
  Flags, prompts, messages and exit codes are those of saslpasswd2 from Cyrus SASL 2.1.28, so a
  script written for one runs unchanged with the other. The store is Cyrus's LMDB layout: the data
  file at the path, LMDB's lock file at <path>-lock, keys user\\0realm\\0property.

Password input:
  On a terminal saslpasswd prompts \"Password: \" and \"Again (for verification): \" on standard
  output, with echo off; the two entries must match. With -p, or when standard input is not a
  terminal, there is no prompt: one read of at most 2048 bytes, one trailing newline removed.
  --password-fd N reads descriptor N the same way; --check asks only once. A password is never
  taken from the command line.

Exit status:
  0      success (deleting a user that does not exist is a success too)
  1      usage error; generic failure (the store cannot be opened or written); --check: the
         password does not match or the user has no usable secret
  4      auxprop_plugin in <appname>.conf names no sasldb store
  7      empty password, or the two passwords typed differ
  100    malformed <appname>.conf

Deliberate differences from saslpasswd2:
  * Every change is one LMDB transaction: all properties it sets or deletes land together or not
    at all (Cyrus commits each property separately).
  * -n stores a SCRAM-SHA-256 authPassword verifier instead of silently storing nothing, and
    removes an existing userPassword so the old password stops working.
  * -d also removes authPassword, whatever scram_secret_generate says, so a deleted user has no
    SCRAM login left.
  * A symbolic link as the store path (or as <path>-lock) is refused: LMDB keeps the lock file
    beside the name it was given, so two names for one data file mean two lock files and
    readers a writer cannot see.
  * The map grows by itself when full (Cyrus fails with \"generic failure\" after a few hundred
    to a few thousand users with the default 1 MiB map); the new size is recorded in the file.
  * A detail line naming the file, user or realm precedes \"generic failure\".

Batch input:
  --batch FILE reads one operation per line from FILE (- for standard input):
  user[@realm]:password    set a password (split at the first colon)
  -user[@realm]            delete the user's secrets
  # comment, blank lines   skipped
  Every line is checked before anything is written; one bad line (named by number, its
  password never shown) means nothing is written. All lines commit in one transaction, so
  an interrupted run leaves the store as it was. Running the same batch again changes
  nothing. A summary goes to standard output.

Import:
  --import OLDFILE copies every record of an old sasldb (Berkeley DB hash as Debian and Ubuntu
  write it, GDBM as Fedora, RHEL and Arch do, or LMDB) into the store, bytes exact, in one transaction. The old file is read
  read-only and checked page by page first: a truncated or damaged file is refused and the
  store left untouched (not created). A key the store holds with another value stops the
  import (nothing written, the accounts named) unless --replace; --dry-run reports the counts.
  Import into a new path, then point the consumers at it:
    saslpasswd --import /etc/sasldb2.bdb -f /etc/sasldb2

Doctor:
  --doctor checks the store (exists, opens, owner and modes, and that Postfix's mail_owner really
  opens it: the check runs as that user), the copy in Postfix's chroot (present, same content, not
  a hard link, lock file group-writable), the SASL config Postfix's libsasl reads
  (<config_dir>/sasl/<smtpd_sasl_path>.conf first; pwcheck_method, auxprop_plugin, mech_list against
  smtpd_sasl_security_options, CRAM-MD5/DIGEST-MD5 without userPassword), the realm Postfix looks
  up, main.cf (smtpd_sasl_auth_enable, permit_sasl_authenticated before reject_unauth_destination,
  smtpd_tls_auth_only) and which database format the installed sasldb plugin reads. Findings are
  grouped as ok, warning and error, each problem with a fix. --fix sets owner and modes of the
  store and the copy and publishes the copy (replacing a hard link; run `postfix reload` then).
  Exit status 0 when no error remains, 1 otherwise. --json prints one object:
    {\"schema\": \"sasldb-doctor/1\", \"store\": PATH, \"errors\": N, \"warnings\": N, \"fixed\": N,
     \"findings\": [{\"id\", \"level\": \"ok\"|\"warning\"|\"error\", \"subject\", \"message\",
                   \"hint\": string|null, \"fixed\": bool, \"was\": string|null}]}
  Ids are stable (store.perms, chroot.content, realm.postfix, ...); fields are only ever added.

Files:
  /etc/sasldb2             default store (-f, or sasldb_path in <appname>.conf, overrides)
  /etc/sasldb2-lock        LMDB lock file; readers need write access to it
  <appname>.conf           searched in $SASL_CONF_PATH, else /etc/sasl2, /etc/sasl,
                           /usr/lib/x86_64-linux-gnu/sasl2, /usr/lib/sasl2; options read:
                           sasldb_path, sasldb_mapsize (KiB), sasldb_maxreaders, auxprop_plugin,
                           mech_list, scram_secret_generate, scram_iteration_counter

Examples:
  Create a user in the realm Postfix looks up (the seed workflow for SMTP AUTH):
    saslpasswd -c -u \"$(postconf -h myhostname)\" alice
  Set a password from a script without a terminal:
    printf '%s' \"$PW\" | saslpasswd -p -c -u example.org alice
  Keep standard input free and pass the password on descriptor 3:
    saslpasswd --password-fd 3 -c -u example.org alice 3< pwfile
  Provision many users at once, checking the file first:
    saslpasswd --batch users.txt --dry-run -u example.org &&
      saslpasswd --batch users.txt -u example.org
  Delete a user:
    saslpasswd -d -u example.org alice
  Check a password (exit 0 if it matches):
    printf '%s' \"$PW\" | saslpasswd --check -f /etc/sasldb2 alice@example.org";

/// The command definition: the option table the parser uses and the source
/// of the man page and shell completions.
pub fn command() -> Command {
    let flag = |id: &'static str, short: char, help: &'static str| {
        Arg::new(id)
            .short(short)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    Command::new("saslpasswd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("set, delete and check SASL passwords in a sasldb file (saslpasswd2 compatible)")
        .long_about(
            "saslpasswd creates, changes and deletes the SASL secrets of a user in a sasldb file \
             laid out as Cyrus SASL's LMDB backend lays it out, so Cyrus SASL (Postfix, Cyrus \
             IMAP, saslauthd) reads what it writes. It accepts every flag of Cyrus saslpasswd2 \
             with the same prompts, messages and exit codes, and adds batch provisioning and \
             password checks for scripts. Passwords are never taken from the command line.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .override_usage(
            "saslpasswd [-v] [-c [-p] [-n]] [-d] [-a appname] [-f sasldb] [-u DOM] userid\n       \
             saslpasswd --batch FILE [--dry-run] [-n] [-a appname] [-f sasldb] [-u DOM]\n       \
             saslpasswd --check [-p] [--password-fd N] [-a appname] [-f sasldb] [-u DOM] userid\n       \
             saslpasswd --import OLDFILE [--dry-run] [--replace] [-a appname] [-f sasldb]",
        )
        .arg(flag("pipe", 'p', "Pipe mode: no prompt, password read on stdin (automatic when stdin is not a terminal); one read of at most 2048 bytes, one trailing newline removed"))
        .arg(flag("create", 'c', "Create: accepted for compatibility; a set creates or overwrites either way"))
        .arg(flag("disable", 'd', "Delete the user's secrets (userPassword, authPassword, legacy cmusaslsecret*)"))
        .arg(flag("noplain", 'n', "Do not store the cleartext userPassword; store a SCRAM authPassword verifier instead"))
        .arg(Arg::new("domain").short('u').value_name("DOM").action(ArgAction::Set)
            .help("Realm for a userid without @ (default: the host name, lower-cased)"))
        .arg(Arg::new("file").short('f').value_name("sasldb").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Use this file as the sasldb (default /etc/sasldb2)"))
        .arg(Arg::new("appname").short('a').value_name("appname").action(ArgAction::Set)
            .help("Application name: read <appname>.conf (default saslpasswd)"))
        .arg(flag("version", 'v', "Print version numbers and exit"))
        .arg(flag("help", 'h', "Print the Cyrus usage text and exit 1"))
        .arg(Arg::new("batch").long("batch").value_name("FILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Apply user[@realm]:password and -user[@realm] lines from FILE (- for stdin) in one transaction"))
        .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue)
            .help("Check the input and report what would change; write nothing"))
        .arg(Arg::new("import").long("import").value_name("OLDFILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Copy every record of an old sasldb (Berkeley DB hash, GDBM, LMDB) into the store in one transaction, bytes exact"))
        .arg(Arg::new("replace").long("replace").action(ArgAction::SetTrue)
            .help("With --import: overwrite keys the store holds with other values (else nothing is written)"))
        .arg(Arg::new("password-fd").long("password-fd").value_name("N").action(ArgAction::Set)
            .help("Read the password from file descriptor N (pipe rules) instead of stdin"))
        .arg(Arg::new("check").long("check").action(ArgAction::SetTrue)
            .help("Verify a password for the user: exit 0 if it matches, 1 otherwise, saying why"))
        .arg(Arg::new("postfix").long("postfix").action(ArgAction::SetTrue)
            .help("Postfix integration on: default realm from Postfix, root:<group> 0640/0660 modes, chroot copy kept current (default: on for /etc/sasldb2 when smtpd runs chrooted; setting postfix_integration in <appname>.conf)"))
        .arg(Arg::new("no-postfix").long("no-postfix").action(ArgAction::SetTrue)
            .help("Postfix integration off, even for /etc/sasldb2"))
        .arg(Arg::new("postfix-group").long("postfix-group").value_name("GROUP").action(ArgAction::Set)
            .help("Group Postfix reads the store through (default: sasl if Postfix's mail_owner is in it, else mail_owner's group; setting postfix_group)"))
        .arg(Arg::new("publish").long("publish").action(ArgAction::SetTrue)
            .help("Bring the copy in Postfix's chroot up to date now (and fix owner and modes)"))
        .arg(Arg::new("doctor").long("doctor").action(ArgAction::SetTrue)
            .help("Check the store and the Postfix SASL setup, explain each problem with a fix"))
        .arg(Arg::new("fix").long("fix").action(ArgAction::SetTrue)
            .help("With --doctor: repair what can be repaired safely"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)
            .help("With --doctor: print the findings as JSON"))
        .arg(Arg::new("long-help").long("help").action(ArgAction::SetTrue)
            .help("Print this help and exit 0"))
        .arg(Arg::new("userid").value_name("userid").help("user, or user@realm (split at the first @)"))
        .after_long_help(AFTER_HELP)
}

fn usage(prog: &str) -> i32 {
    stderr(&format!(
        "{}{prog}: usage: {prog} [-v] [-c [-p] [-n]] [-d] [-a appname] [-f sasldb] [-u DOM] userid\n\
         \t-p\tpipe mode -- no prompt, password read on stdin\n\
         \t-c\tcreate -- ask mechs to create the account\n\
         \t-d\tdisable -- ask mechs to disable/delete the account\n\
         \t-n\tno userPassword -- don't set plaintext userPassword property\n\
         \t  \t                   (only set mechanism-specific secrets)\n\
         \t-f sasldb\tuse given file as sasldb\n\
         \t-a appname\tuse appname as application name\n\
         \t-u DOM\tuse DOM for user domain\n\
         \t-v\tprint version numbers and exit\n",
        super::ACK
    ));
    exit::FAIL
}

#[derive(Debug, Default)]
struct Options {
    pipe: bool,
    create: bool,
    disable: bool,
    noplain: bool,
    domain: Option<OsString>,
    file: Option<OsString>,
    appname: Option<OsString>,
    batch: Option<OsString>,
    dry_run: bool,
    password_fd: Option<OsString>,
    check: bool,
    /// `--postfix` (Some(true)) / `--no-postfix` (Some(false)).
    postfix: Option<bool>,
    postfix_group: Option<String>,
    publish: bool,
    doctor: bool,
    fix: bool,
    json: bool,
}

/// Run the tool; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    // The doctor's probe: this binary re-run as Postfix's user to open a
    // store read-only. Internal, so not in the help.
    if args.get(1).is_some_and(|a| a == postfix::doctor::PROBE_ARG) {
        return postfix::doctor::probe_main(&args[2..]);
    }
    if super::import::wanted(&args) {
        let prog = super::prog_name(args.first().map(|a| a.as_os_str()), "saslpasswd");
        return super::import::run(&prog, args);
    }
    let mut args = args.into_iter();
    let argv0 = args.next();
    let prog = super::prog_name(argv0.as_deref(), "saslpasswd");
    // glibc's getopt names argv[0] as given, not its basename.
    let getopt_name = argv0.map_or_else(|| prog.clone(), |a| a.to_string_lossy().into_owned());
    let parsed = Getopt::from_command(&command())
        .with_flag('?', "question")
        .parse(args);
    let mut o = Options::default();
    // As in saslpasswd2, a bad option or -h/-? only marks an error: parsing goes on, so a
    // later -v or bad -a still acts, and the usage comes once at the end.
    let mut flag_error = false;
    for ev in parsed.events {
        match ev {
            Event::Error(msg) => {
                stderr(&format!("{getopt_name}: {msg}\n"));
                flag_error = true;
            }
            Event::Opt(id, v) => match id.as_str() {
                "pipe" => o.pipe = true,
                "create" => o.create = true,
                "disable" => o.disable = true,
                "noplain" => o.noplain = true,
                "domain" => o.domain = v,
                "file" => o.file = v,
                "appname" => {
                    if v.as_ref().is_some_and(|a| a.as_bytes().contains(&b'/')) {
                        stderr("appname must not contain /\n");
                        return exit::FAIL;
                    }
                    o.appname = v;
                }
                "version" => {
                    stderr(&super::version_text());
                    return exit::OK;
                }
                "batch" => o.batch = v,
                "dry-run" => o.dry_run = true,
                "password-fd" => o.password_fd = v,
                "check" => o.check = true,
                "postfix" => o.postfix = Some(true),
                "no-postfix" => o.postfix = Some(false),
                "postfix-group" => o.postfix_group = v.map(|g| g.to_string_lossy().into_owned()),
                "publish" => o.publish = true,
                "doctor" => o.doctor = true,
                "fix" => o.fix = true,
                "json" => o.json = true,
                "long-help" => {
                    let help = command().render_long_help().to_string();
                    let _ = io::Write::write_all(&mut io::stdout(), help.as_bytes());
                    return exit::OK;
                }
                _ => flag_error = true, // -h, -?
            },
        }
    }
    if flag_error || (o.create && o.disable) {
        return usage(&prog);
    }
    let wanted_operands = if o.batch.is_some() || o.publish || o.doctor {
        0
    } else {
        1
    };
    if parsed.operands.len() != wanted_operands {
        return usage(&prog);
    }
    if let Some(msg) = conflicts(&o) {
        stderr(&format!("{prog}: {msg}\n"));
        return exit::FAIL;
    }
    let tool = match Tool::new(prog, o) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match parsed.operands.into_iter().next() {
        None if tool.o.publish => tool.publish(),
        None if tool.o.doctor => tool.doctor(),
        None => tool.batch(),
        Some(userid) if tool.o.check => tool.check(&userid.into_vec()),
        Some(userid) => tool.single(&userid.into_vec()),
    }
}

fn conflicts(o: &Options) -> Option<&'static str> {
    if o.check && (o.create || o.disable || o.noplain || o.dry_run) {
        return Some("--check cannot be combined with -c, -d, -n or --dry-run");
    }
    if o.batch.is_some() && o.disable {
        return Some("--batch takes deletions as -user lines; -d does not apply");
    }
    if o.batch.is_some() && o.password_fd.is_some() {
        return Some("--batch reads passwords from its input; --password-fd does not apply");
    }
    if o.batch.is_some() && o.check {
        return Some("--batch and --check cannot be combined");
    }
    let modes = [o.batch.is_some(), o.check, o.publish, o.doctor];
    if modes.iter().filter(|&&m| m).count() > 1 {
        return Some("--batch, --check, --publish and --doctor cannot be combined");
    }
    if (o.publish || o.doctor)
        && (o.create || o.disable || o.noplain || o.dry_run || o.password_fd.is_some())
    {
        return Some("--publish and --doctor take no -c, -d, -n, --dry-run or --password-fd");
    }
    if (o.fix || o.json) && !o.doctor {
        return Some("--fix and --json go with --doctor");
    }
    if o.publish && o.postfix == Some(false) {
        return Some("--publish needs Postfix integration; drop --no-postfix");
    }
    None
}

/// Which SCRAM verifier a set stores: with `scram_secret_generate`, the one
/// Cyrus ends up with (every SCRAM mechanism writes `authPassword` in turn and
/// the last one in libsasl's order, SCRAM-SHA-1 whenever it is enabled, wins);
/// with `-n` alone, SCRAM-SHA-256.
fn scram_choice(config: &SaslConfig, noplain: bool) -> Option<ScramHash> {
    let cyrus = if config.scram_secret_generate() {
        let mechs = config.mech_list();
        let listed = |m: &str| mechs.iter().any(|x| x == m || *x == format!("{m}-PLUS"));
        if mechs.is_empty() || listed("SCRAM-SHA-1") {
            Some(ScramHash::Sha1)
        } else if listed("SCRAM-SHA-256") {
            Some(ScramHash::Sha256)
        } else {
            None
        }
    } else {
        None
    };
    cyrus.or(noplain.then_some(ScramHash::Sha256))
}

struct Tool {
    prog: String,
    o: Options,
    path: PathBuf,
    open: OpenOptions,
    policy: SetPolicy,
    config: SaslConfig,
    /// Postfix integration, when on.
    deploy: Option<Deployment>,
    /// Postfix's realm for user ids without `@` or `-u` (with integration).
    postfix_realm: Option<(String, &'static str)>,
}

impl Tool {
    /// Read the application config and settle the path and policy, as
    /// `sasl_server_init` does before any password is read.
    fn new(prog: String, o: Options) -> Result<Tool, i32> {
        let appname = o
            .appname
            .as_ref()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "saslpasswd".to_string());
        let config = match saslconf::load(&appname, &saslconf::search_path()) {
            Ok(c) => c,
            Err(e) => {
                let detail = match &e {
                    ConfigError::Syntax { .. } | ConfigError::Io { .. } => e.to_string(),
                };
                stderr(&format!(
                    "{prog}: {detail}\n{prog}: error when parsing configuration file\n"
                ));
                return Err(exit::CONFIGERR);
            }
        };
        let plugins = config.auxprop_plugins();
        if !plugins.is_empty() && !plugins.contains(&"sasldb") {
            stderr(&format!(
                "{prog}: auxprop_plugin ({}) names no sasldb store\n{prog}: no mechanism available\n",
                plugins.join(" ")
            ));
            return Err(exit::NOMECH);
        }
        let path = match &o.file {
            Some(f) if !f.is_empty() => PathBuf::from(f),
            Some(_) => PathBuf::from(DEFAULT_SASLDB),
            None => PathBuf::from(config.sasldb_path().unwrap_or(DEFAULT_SASLDB)),
        };
        let open = OpenOptions {
            map_size: config.sasldb_mapsize(),
            max_readers: config.sasldb_maxreaders(),
        };
        let policy = SetPolicy {
            plaintext: !o.noplain,
            scram: scram_choice(&config, o.noplain),
            iterations: config
                .scram_iteration_counter()
                .unwrap_or(DEFAULT_ITERATIONS),
        };
        let (deploy, postfix_realm) = postfix_integration(&prog, &o, &config, &path)?;
        Ok(Tool {
            prog,
            o,
            path,
            open,
            policy,
            config,
            deploy,
            postfix_realm,
        })
    }

    fn say(&self, msg: &str) {
        stderr(&format!("{}: {msg}\n", self.prog));
    }

    fn generic_failure(&self, detail: &dyn std::fmt::Display) -> i32 {
        stderr(&format!(
            "{p}: {detail}\n{p}: generic failure\n",
            p = self.prog
        ));
        exit::FAIL
    }

    fn admin_failure(&self, e: &AdminError) -> i32 {
        match e {
            AdminError::Secret(SecretError::Empty) => {
                self.say("invalid parameter supplied");
                exit::BADPARAM
            }
            AdminError::Secret(e) => self.generic_failure(e),
            AdminError::Store(e) => self.generic_failure(e),
        }
    }

    /// The realm for user ids without `@` and `-u`: Postfix's with
    /// integration (said on a terminal), else the lower-cased host name.
    fn default_realm(&self) -> io::Result<Vec<u8>> {
        match &self.postfix_realm {
            Some((realm, source)) => {
                if isatty(2) {
                    self.say(&format!("using realm {realm} (Postfix's {source})"));
                }
                Ok(realm.clone().into_bytes())
            }
            None => realm::default_realm(),
        }
    }

    fn account(&self, userid: &[u8]) -> Result<Account, i32> {
        let domain = self.o.domain.as_ref().map(|d| d.as_bytes());
        realm::resolve(userid, domain, || self.default_realm()).map_err(|_| {
            self.say("generic failure: gethostname");
            exit::FAIL
        })
    }

    /// After a successful write: owner, modes and chroot copy (with
    /// integration). The change itself is committed either way; a failure
    /// here is reported and makes the exit status 1.
    fn after_write(&self, store: &Store) -> i32 {
        let Some(d) = &self.deploy else {
            return exit::OK;
        };
        match d.after_write(store) {
            Ok(r) => {
                if isatty(2)
                    && let Some((copy, p)) = &r.published
                {
                    self.say(&format!(
                        "published to {}: {} added, {} changed, {} removed",
                        copy.display(),
                        p.added,
                        p.changed,
                        p.removed
                    ));
                }
                exit::OK
            }
            Err(e) => {
                self.say(&format!(
                    "the change is saved, but Postfix's copy or modes are not: {e}"
                ));
                exit::FAIL
            }
        }
    }

    fn publish(&self) -> i32 {
        let Some(d) = &self.deploy else {
            self.say("--publish: Postfix integration is off (no postconf, or --no-postfix / postfix_integration: no)");
            return exit::FAIL;
        };
        let store = match Store::open_read(&self.path, &self.open) {
            Ok(s) => s,
            Err(e) => {
                self.say(&e.to_string());
                return exit::FAIL;
            }
        };
        match d.after_write(&store) {
            Ok(r) => {
                match &r.published {
                    Some((copy, p)) => println_safe(&format!(
                        "{}: published {} to {}: {} added, {} changed, {} removed",
                        self.prog,
                        self.path.display(),
                        copy.display(),
                        p.added,
                        p.changed,
                        p.removed
                    )),
                    None => println_safe(&format!(
                        "{}: no chroot copy needed (Postfix's smtpd does not run chrooted)",
                        self.prog
                    )),
                }
                for p in &r.perms {
                    println_safe(&format!("{}: fixed {p}", self.prog));
                }
                exit::OK
            }
            Err(e) => {
                self.say(&e.to_string());
                exit::FAIL
            }
        }
    }

    fn doctor(&self) -> i32 {
        crate::postfix::doctor::cli(
            &self.prog,
            &self.path,
            &self.config,
            self.deploy.as_ref(),
            self.o.fix,
            self.o.json,
        )
    }

    /// The password, from `--password-fd`, a pipe, or the terminal.
    fn read_password(&self, verify: bool) -> Result<Vec<u8>, i32> {
        let io_fail = |e: io::Error| {
            self.say(&strerror(&e));
            exit::FAIL
        };
        if let Some(fd) = &self.o.password_fd {
            let fd: i32 = match fd.to_str().and_then(|s| s.parse().ok()) {
                Some(n) if n >= 0 => n,
                _ => {
                    self.say("--password-fd takes a file descriptor number");
                    return Err(exit::FAIL);
                }
            };
            return password::read_pipe(fd).map_err(io_fail);
        }
        if self.o.pipe || !isatty(0) {
            return password::read_pipe(0).map_err(io_fail);
        }
        let first = password::prompt(0, "Password: ").map_err(io_fail)?;
        if verify {
            let again = password::prompt(0, "Again (for verification): ").map_err(io_fail)?;
            if first != again {
                self.say("passwords don't match; aborting");
                return Err(exit::BADPARAM);
            }
        }
        Ok(first)
    }

    fn single(&self, userid: &[u8]) -> i32 {
        let account = match self.account(userid) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let op = if self.o.disable {
            Op::Delete { account }
        } else {
            let password = match self.read_password(true) {
                Ok(p) => p,
                Err(code) => return code,
            };
            Op::Set { account, password }
        };
        let shown = op.account().to_string();
        let prepared = match admin::prepare(&self.policy, vec![op], &mut |_| {}) {
            Ok(p) => p,
            Err(e) => return self.admin_failure(&e),
        };
        if self.o.dry_run {
            return match self.preview(&prepared) {
                Ok(s) => {
                    let what = describe_one(&s);
                    println_safe(&format!("{}: dry run: {shown}: {what}", self.prog));
                    exit::OK
                }
                Err(code) => code,
            };
        }
        let store = match Store::open_write(&self.path, &self.open) {
            Ok(s) => s,
            Err(e) => return self.generic_failure(&e),
        };
        match admin::apply(&store, &self.policy, &prepared, &mut |_| {}) {
            Ok(_) => self.after_write(&store),
            Err(e) => self.admin_failure(&e),
        }
    }

    fn preview(&self, prepared: &[admin::Prepared]) -> Result<Summary, i32> {
        let store = match Store::open_read(&self.path, &self.open) {
            Ok(s) => Some(s),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(self.generic_failure(&e)),
        };
        let r = match &store {
            Some(s) => s.read(|view| {
                admin::preview(Some(view), &self.policy, prepared).map_err(into_store)
            }),
            None => admin::preview(None, &self.policy, prepared).map_err(into_store),
        };
        r.map_err(|e| self.generic_failure(&e))
    }

    fn check(&self, userid: &[u8]) -> i32 {
        let account = match self.account(userid) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let password = match self.read_password(false) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let store = match Store::open_read(&self.path, &self.open) {
            Ok(s) => s,
            Err(e) => {
                self.say(&e.to_string());
                return exit::FAIL;
            }
        };
        let result = match store.read(|v| admin::check(v, &account, &password)) {
            Ok(r) => r,
            Err(e) => {
                self.say(&e.to_string());
                return exit::FAIL;
            }
        };
        let realm = String::from_utf8_lossy(&account.realm);
        let user = String::from_utf8_lossy(&account.authid);
        match result {
            CheckResult::Match => {
                println_safe(&format!("{}: {account}: password matches", self.prog));
                exit::OK
            }
            CheckResult::WrongPassword => {
                self.say(&format!("{account}: wrong password"));
                exit::FAIL
            }
            CheckResult::NoSecret => {
                self.say(&format!(
                    "{account}: no usable secret (no userPassword, authPassword or cmusaslsecretPLAIN)"
                ));
                exit::FAIL
            }
            CheckResult::UnknownUser => {
                self.say(&format!(
                    "{account}: unknown user {user:?} in realm {realm:?}"
                ));
                exit::FAIL
            }
            CheckResult::UnknownRealm => {
                self.say(&format!(
                    "{account}: unknown realm {realm:?} (no account in it; see sasldblistusers)"
                ));
                exit::FAIL
            }
        }
    }

    fn batch(&self) -> i32 {
        let source = self.o.batch.clone().unwrap_or_default();
        let input = if source == "-" {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf).map(|_| buf)
        } else {
            std::fs::read(&source)
        };
        let input = match input {
            Ok(i) => i,
            Err(e) => {
                self.say(&format!(
                    "{}: {}",
                    PathBuf::from(&source).display(),
                    strerror(&e)
                ));
                return exit::FAIL;
            }
        };
        let domain = self.o.domain.as_ref().map(|d| d.as_bytes());
        let ops = match super::batch::parse(&input, domain, &mut || self.default_realm()) {
            Ok(ops) => ops,
            Err(errors) => {
                const SHOWN: usize = 20;
                for e in errors.iter().take(SHOWN) {
                    self.say(&format!("batch line {}: {}", e.line, e.reason));
                }
                if errors.len() > SHOWN {
                    self.say(&format!("... and {} more bad lines", errors.len() - SHOWN));
                }
                self.say(&format!(
                    "batch: {} bad line(s); nothing written",
                    errors.len()
                ));
                return exit::FAIL;
            }
        };
        let total = ops.len();
        let tty = isatty(2);
        let mut bar = Progress::new(&self.prog, "preparing", total, tty);
        let prepared = match admin::prepare(&self.policy, ops, &mut |n| bar.update(n)) {
            Ok(p) => p,
            Err(e) => return self.admin_failure(&e),
        };
        bar.finish();
        let summary = if self.o.dry_run {
            match self.preview(&prepared) {
                Ok(s) => s,
                Err(code) => return code,
            }
        } else {
            let store = match Store::open_write(&self.path, &self.open) {
                Ok(s) => s,
                Err(e) => return self.generic_failure(&e),
            };
            let mut bar = Progress::new(&self.prog, "writing", total, tty);
            let s = match admin::apply(&store, &self.policy, &prepared, &mut |n| bar.update(n)) {
                Ok(s) => s,
                Err(e) => return self.admin_failure(&e),
            };
            bar.finish();
            let code = self.after_write(&store);
            if code != exit::OK {
                return code;
            }
            s
        };
        let head = if self.o.dry_run {
            "batch (dry run, nothing written)"
        } else {
            "batch"
        };
        println_safe(&format!(
            "{}: {head}: {total} operations: {} created, {} updated, {} unchanged, {} deleted, {} absent",
            self.prog,
            summary.created,
            summary.updated,
            summary.unchanged,
            summary.deleted,
            summary.absent
        ));
        exit::OK
    }
}

/// Decide Postfix integration: `--postfix`/`--no-postfix`, else the
/// `postfix_integration` setting (yes, no, auto), else auto: on for
/// Postfix's own store path when `postconf` answers.
#[allow(clippy::type_complexity)]
fn postfix_integration(
    prog: &str,
    o: &Options,
    config: &SaslConfig,
    path: &std::path::Path,
) -> Result<(Option<Deployment>, Option<(String, &'static str)>), i32> {
    let setting = config
        .get("postfix_integration")
        .map(str::to_ascii_lowercase);
    let forced = match (o.postfix, setting.as_deref()) {
        (Some(v), _) => Some(v),
        (None, Some("auto")) | (None, None) => None,
        (None, Some(v)) => Some(saslconf::is_true(v)),
    };
    let wanted = forced.unwrap_or_else(|| postfix::auto_applies(path)) || o.publish || o.doctor;
    if !wanted {
        return Ok((None, None));
    }
    let group = o
        .postfix_group
        .clone()
        .or_else(|| config.get("postfix_group").map(str::to_string));
    let built = Postfix::detect(None).and_then(|pf| {
        let realm = pf.sasl_realm()?;
        Ok((pf, realm))
    });
    match built {
        Ok((pf, realm)) => match Deployment::new(pf, path, group.as_deref()) {
            Ok(d) => Ok((Some(d), Some(realm))),
            Err(e) => {
                stderr(&format!("{prog}: Postfix integration: {e}\n"));
                Err(exit::FAIL)
            }
        },
        // Auto-detection quietly gives up, and the doctor reports the cause
        // itself; an explicit request fails.
        Err(_) if o.doctor || (forced.is_none() && !o.publish) => Ok((None, None)),
        Err(e) => {
            stderr(&format!("{prog}: Postfix integration: {e}\n"));
            Err(exit::FAIL)
        }
    }
}

fn into_store(e: AdminError) -> StoreError {
    match e {
        AdminError::Store(s) => s,
        AdminError::Secret(s) => StoreError::Io {
            path: PathBuf::new(),
            source: io::Error::other(s.to_string()),
        },
    }
}

fn describe_one(s: &Summary) -> &'static str {
    if s.created > 0 {
        "would be created"
    } else if s.updated > 0 {
        "would be updated"
    } else if s.unchanged > 0 {
        "unchanged (already holds this password)"
    } else if s.deleted > 0 {
        "would be deleted"
    } else {
        "holds no secret; nothing to delete"
    }
}

fn println_safe(line: &str) {
    let _ = io::Write::write_all(&mut io::stdout(), format!("{line}\n").as_bytes());
}
