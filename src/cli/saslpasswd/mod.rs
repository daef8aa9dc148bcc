//! `saslpasswd`: a drop-in for Cyrus SASL 2.1.28's `saslpasswd2`, plus
//! `--batch`, `--dry-run`, `--password-fd` and `--check`.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

mod command;
mod failure;

pub use command::command;
use failure::Failure;

use super::getopt::{Event, Getopt};
use super::progress::Progress;
use super::{exit, isatty, map_growth_note, password, stderr};
use crate::admin::{self, AdminError, CheckResult, Op, Summary};
use crate::host;
use crate::postfix::doctor;
use crate::postfix::{self, Deployment, Postfix};
use crate::saslconf::{self, SaslConfig};
use crate::secret::{DEFAULT_ITERATIONS, ScramHash, SetPolicy};
use crate::store::pg::{Mode, PgStore, is_url};
use crate::store::{Account, DEFAULT_SASLDB, OpenOptions, Store};
use crate::sys::strerror;

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
    init_schema: bool,
    /// Only meaningful with `--import` (handled in `cli::import`).
    skip_unstorable: bool,
}

/// Run the tool; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    // The doctor's probe: this binary re-run as Postfix's user to open a
    // store read-only. Internal, so not in the help.
    if args.get(1).is_some_and(|a| a == doctor::PROBE_ARG) {
        return doctor::probe_main(&args[2..]);
    }
    let prog = super::prog_name(args.first().map(OsString::as_os_str), "saslpasswd");
    if super::import::wanted(&args) {
        return super::import::run(&prog, args);
    }
    match main(&prog, args) {
        Ok(()) => exit::OK,
        Err(f) => f.report(&prog),
    }
}

/// The options and operands; None once `-v` or `--help` has answered.
fn options(prog: &str, args: Vec<OsString>) -> Result<Option<(Options, Vec<OsString>)>, Failure> {
    let mut args = args.into_iter();
    let argv0 = args.next();
    // glibc's getopt names argv[0] as given, not its basename.
    let getopt_name = argv0.map_or_else(|| prog.to_string(), |a| a.to_string_lossy().into_owned());
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
                        return Err(Failure::Appname);
                    }
                    o.appname = v;
                }
                "version" => {
                    stderr(&super::version_text());
                    return Ok(None);
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
                "init-schema" => o.init_schema = true,
                "skip-unstorable" => o.skip_unstorable = true,
                "long-help" => {
                    let help = command().render_long_help().to_string();
                    let _ = io::Write::write_all(&mut io::stdout(), help.as_bytes());
                    return Ok(None);
                }
                _ => flag_error = true, // -h, -?
            },
        }
    }
    if flag_error || (o.create && o.disable) {
        return Err(Failure::Usage);
    }
    Ok(Some((o, parsed.operands)))
}

fn main(prog: &str, args: Vec<OsString>) -> Result<(), Failure> {
    let Some((o, operands)) = options(prog, args)? else {
        return Ok(());
    };
    let wanted_operands = if o.batch.is_some() || o.publish || o.doctor || o.init_schema {
        0
    } else {
        1
    };
    if operands.len() != wanted_operands {
        return Err(Failure::Usage);
    }
    if let Some(msg) = conflicts(&o) {
        return Err(Failure::Said(msg.into()));
    }
    let tool = Tool::new(prog.to_string(), o)?;
    match operands.into_iter().next() {
        None if tool.o.init_schema => tool.init_schema(),
        None if tool.o.publish => tool.publish(),
        None if tool.o.doctor => tool.doctor(),
        None => tool.batch(),
        Some(userid) if tool.o.check => tool.check(&userid.into_vec()),
        Some(userid) => tool.single(&userid.into_vec()),
    }
}

fn conflicts(o: &Options) -> Option<&'static str> {
    if o.skip_unstorable {
        return Some("--skip-unstorable goes with --import");
    }
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
    let modes = [
        o.batch.is_some(),
        o.check,
        o.publish,
        o.doctor,
        o.init_schema,
    ];
    if modes.iter().filter(|&&m| m).count() > 1 {
        return Some("--batch, --check, --publish, --doctor and --init-schema cannot be combined");
    }
    if o.init_schema && (o.create || o.disable || o.noplain || o.dry_run || o.password_fd.is_some())
    {
        return Some("--init-schema takes no -c, -d, -n, --dry-run or --password-fd");
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

/// A realm, and the Postfix parameter it came from.
type PostfixRealm = (String, &'static str);

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
    postfix_realm: Option<PostfixRealm>,
    /// The store is this PostgreSQL URL, not the file at `path`.
    pg: Option<String>,
}

impl Tool {
    /// Read the application config and settle the path and policy, as
    /// `sasl_server_init` does before any password is read.
    fn new(prog: String, o: Options) -> Result<Tool, Failure> {
        let appname = o
            .appname
            .as_ref()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "saslpasswd".to_string());
        let config = saslconf::load(&appname, &saslconf::search_path()).map_err(Failure::Config)?;
        let plugins = config.auxprop_plugins();
        if !plugins.is_empty() && !plugins.contains(&"sasldb") {
            return Err(Failure::NoSasldb(plugins.join(" ")));
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
        let pg = is_url(path.as_os_str().as_bytes()).then(|| path.to_string_lossy().into_owned());
        if pg.is_none() && o.init_schema {
            return Err(Failure::Said(
                "--init-schema needs -f postgresql://USER@HOST/DB".into(),
            ));
        }
        if pg.is_some() && (o.postfix == Some(true) || o.publish || o.fix) {
            return Err(Failure::Said(
                "--postfix, --publish and --fix apply to a sasldb file; a PostgreSQL store needs neither copies nor modes".into(),
            ));
        }
        let (deploy, postfix_realm) = if pg.is_some() {
            (None, None)
        } else {
            postfix_integration(&o, &config, &path)?
        };
        Ok(Tool {
            prog,
            o,
            path,
            open,
            policy,
            config,
            deploy,
            postfix_realm,
            pg,
        })
    }

    fn say(&self, msg: &str) {
        stderr(&format!("{}: {msg}\n", self.prog));
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
            None => host::default_realm(),
        }
    }

    fn account(&self, userid: &[u8]) -> Result<Account, Failure> {
        let domain = self.o.domain.as_ref().map(|d| d.as_bytes());
        Account::resolve(userid, domain, || self.default_realm()).map_err(|_| Failure::Hostname)
    }

    /// After a successful write: owner, modes and chroot copy (with
    /// integration). The change itself is committed either way; a failure
    /// here is reported and makes the exit status 1.
    fn after_write(&self, store: &Store) -> Result<(), Failure> {
        if let Some((from, to)) = store.map_growth() {
            stderr(&map_growth_note(&self.prog, &self.path, from, to, false));
        }
        let Some(d) = &self.deploy else {
            return Ok(());
        };
        let r = d.after_write(store).map_err(Failure::NotDeployed)?;
        if let Some((copy, p)) = &r.published
            && let Some((from, to)) = p.map_grew
        {
            stderr(&map_growth_note(&self.prog, copy, from, to, false));
        }
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
        Ok(())
    }

    fn publish(&self) -> Result<(), Failure> {
        let Some(d) = &self.deploy else {
            return Err(Failure::Said("--publish: Postfix integration is off (no postconf, or --no-postfix / postfix_integration: no)".into()));
        };
        let store = Store::open_read(&self.path, &self.open).map_err(Failure::Store)?;
        let r = d.after_write(&store).map_err(Failure::Deploy)?;
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
        Ok(())
    }

    fn doctor(&self) -> Result<(), Failure> {
        if let Some(url) = &self.pg {
            return match super::doctor::run_pg(&self.prog, url, self.o.json)? {
                true => Ok(()),
                false => Err(Failure::Unhealthy),
            };
        }
        let healthy = super::doctor::run(
            &self.prog,
            &self.path,
            &self.config,
            self.deploy.as_ref(),
            self.o.fix,
            self.o.json,
        )?;
        if healthy {
            Ok(())
        } else {
            Err(Failure::Unhealthy)
        }
    }

    /// The password, from `--password-fd`, a pipe, or the terminal.
    fn read_password(&self, verify: bool) -> Result<Vec<u8>, Failure> {
        let io_fail = |e: io::Error| Failure::Said(strerror(&e));
        if let Some(fd) = &self.o.password_fd {
            let fd: i32 = match fd.to_str().and_then(|s| s.parse().ok()) {
                Some(n) if n >= 0 => n,
                _ => {
                    return Err(Failure::Said(
                        "--password-fd takes a file descriptor number".into(),
                    ));
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
                return Err(Failure::Mismatch);
            }
        }
        Ok(first)
    }

    fn single(&self, userid: &[u8]) -> Result<(), Failure> {
        let account = self.account(userid)?;
        let op = if self.o.disable {
            Op::Delete { account }
        } else {
            let password = self.read_password(true)?;
            Op::Set { account, password }
        };
        let shown = op.account().to_string();
        let prepared = admin::prepare(&self.policy, vec![op], &mut |_| {})?;
        if self.o.dry_run {
            let what = describe_one(&self.preview(&prepared)?);
            println_safe(&format!("{}: dry run: {shown}: {what}", self.prog));
            return Ok(());
        }
        if let Some(pg) = self.connect_pg(Mode::Write)? {
            admin::apply_pg(&pg, &self.policy, &prepared, true, &mut |_| {})?;
            return Ok(());
        }
        let store = self.open_write()?;
        admin::apply(&store, &self.policy, &prepared, &mut |_| {})?;
        self.after_write(&store)
    }

    /// The PostgreSQL store, connected, when `-f` names one (its table must exist).
    fn connect_pg(&self, mode: Mode) -> Result<Option<PgStore>, Failure> {
        self.pg
            .as_deref()
            .map(|url| PgStore::connect(url, mode))
            .transpose()
            .map_err(|e| Failure::Generic(e.into()))
    }

    /// `--init-schema`: the table Cyrus's sql plugin reads, and the trigger.
    fn init_schema(&self) -> Result<(), Failure> {
        let url = self.pg.as_deref().unwrap_or_default();
        let pg = PgStore::connect(url, Mode::Schema).map_err(|e| Failure::Generic(e.into()))?;
        pg.init_schema().map_err(|e| Failure::Generic(e.into()))?;
        println_safe(&format!(
            "{}: {}: table sasldb and trigger sasldb_notify are in place",
            self.prog,
            pg.target()
        ));
        Ok(())
    }

    fn open_write(&self) -> Result<Store, Failure> {
        Store::open_write(&self.path, &self.open).map_err(|e| Failure::Generic(e.into()))
    }

    /// What the prepared operations would do; a missing store is empty.
    fn preview(&self, prepared: &[admin::Prepared]) -> Result<Summary, Failure> {
        if let Some(pg) = self.connect_pg(Mode::Write)? {
            return Ok(admin::apply_pg(
                &pg,
                &self.policy,
                prepared,
                false,
                &mut |_| {},
            )?);
        }
        let store = match Store::open_read(&self.path, &self.open) {
            Ok(s) => Some(s),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(Failure::Generic(e.into())),
        };
        let summary = match &store {
            Some(s) => s
                .read(|view| Ok(admin::preview(Some(view), &self.policy, prepared)))
                .map_err(AdminError::from)?,
            None => admin::preview(None, &self.policy, prepared),
        };
        Ok(summary?)
    }

    fn check(&self, userid: &[u8]) -> Result<(), Failure> {
        let account = self.account(userid)?;
        let password = self.read_password(false)?;
        let result = match self.connect_pg(Mode::Read)? {
            Some(pg) => admin::check(&pg, &account, &password),
            None => Store::open_read(&self.path, &self.open)
                .and_then(|store| store.read(|v| admin::check(v, &account, &password))),
        }
        .map_err(Failure::Store)?;
        let realm = String::from_utf8_lossy(&account.realm);
        let user = String::from_utf8_lossy(&account.authid);
        let why = match result {
            CheckResult::Match => {
                println_safe(&format!("{}: {account}: password matches", self.prog));
                return Ok(());
            }
            CheckResult::WrongPassword => format!("{account}: wrong password"),
            CheckResult::NoSecret => format!(
                "{account}: no usable secret (no userPassword, authPassword or cmusaslsecretPLAIN)"
            ),
            CheckResult::UnknownUser => {
                format!("{account}: unknown user {user:?} in realm {realm:?}")
            }
            CheckResult::UnknownRealm => format!(
                "{account}: unknown realm {realm:?} (no account in it; see sasldblistusers)"
            ),
        };
        Err(Failure::Said(why))
    }

    fn batch(&self) -> Result<(), Failure> {
        let source = self.o.batch.clone().unwrap_or_default();
        let input = if source == "-" {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf).map(|_| buf)
        } else {
            std::fs::read(&source)
        };
        let input = input.map_err(|e| {
            Failure::Said(format!(
                "{}: {}",
                PathBuf::from(&source).display(),
                strerror(&e)
            ))
        })?;
        let domain = self.o.domain.as_ref().map(|d| d.as_bytes());
        let ops = super::batch::parse(&input, domain, &mut || self.default_realm())
            .map_err(Failure::Batch)?;
        let total = ops.len();
        let tty = isatty(2);
        let mut bar = Progress::new(&self.prog, "preparing", total, tty);
        let prepared = admin::prepare(&self.policy, ops, &mut |n| bar.update(n))?;
        bar.finish();
        let summary = if self.o.dry_run {
            self.preview(&prepared)?
        } else if let Some(pg) = self.connect_pg(Mode::Write)? {
            let mut bar = Progress::new(&self.prog, "writing", total, tty);
            let s = admin::apply_pg(&pg, &self.policy, &prepared, true, &mut |n| bar.update(n))?;
            bar.finish();
            s
        } else {
            let store = self.open_write()?;
            let mut bar = Progress::new(&self.prog, "writing", total, tty);
            let s = admin::apply(&store, &self.policy, &prepared, &mut |n| bar.update(n))?;
            bar.finish();
            self.after_write(&store)?;
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
        Ok(())
    }
}

/// Decide Postfix integration: `--postfix`/`--no-postfix`, else the
/// `postfix_integration` setting (yes, no, auto), else auto: on for
/// Postfix's own store path when `postconf` answers.
fn postfix_integration(
    o: &Options,
    config: &SaslConfig,
    path: &std::path::Path,
) -> Result<(Option<Deployment>, Option<PostfixRealm>), Failure> {
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
        Ok((pf, realm)) => {
            let d = Deployment::new(pf, path, group.as_deref()).map_err(Failure::Integration)?;
            Ok((Some(d), Some(realm)))
        }
        // Auto-detection quietly gives up, and the doctor reports the cause
        // itself; an explicit request fails.
        Err(_) if o.doctor || (forced.is_none() && !o.publish) => Ok((None, None)),
        Err(e) => Err(Failure::Integration(e.into())),
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
