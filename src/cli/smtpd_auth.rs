//! `smtpd-auth`: the daemon. An SMTP listener with SMTP AUTH (see
//! `crate::smtp`), and auth sockets that serve Postfix itself (Dovecot
//! protocol, saslauthd protocol), all authenticating against the store;
//! configuration in `main.cf` syntax with `-o` overrides.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Arg, ArgAction, Command};

mod config;
mod error;
mod tls;

use config::{
    Backend, Source, common, failure_limiter, logger, offered, smtp_listener, socket_spec,
};
use error::Fatal;

use crate::authd::dovecot::DovecotConfig;
use crate::authd::server::{self, Shared};
use crate::logging;
use crate::maincf::{self, MainCf};
use crate::smtp::listener::Control;
use crate::smtp::spool::Spool;

/// Default configuration file (read when it exists and no -c is given).
pub const DEFAULT_CONFIG: &str = "/etc/smtpd-auth/main.cf";

/// Names the configuration file read without `-c` (empty: none), instead
/// of [`DEFAULT_CONFIG`].
pub const CONFIG_ENV: &str = "SMTPD_AUTH_CONFIG";

/// The `--help` (and man page) section on running under systemd; the
/// names are `crate::sysd::Role::from_name`'s.
const SOCKET_ACTIVATION: &str = "\nSocket activation:
  Sockets handed over by systemd (LISTEN_FDS) are served instead of the listeners and auth sockets of the configuration, which are then not bound. FileDescriptorName= says what each one serves:
  submission, smtp  SMTP, STARTTLS offered (TCP; ports 587, 25)
  submissions, smtps  SMTP with implicit TLS (TCP; port 465)
  dovecot  Dovecot auth protocol for Postfix (UNIX)
  saslauthd  saslauthd protocol (UNIX)

  With NOTIFY_SOCKET set (Type=notify): READY=1 once serving, RELOADING=1 then READY=1 around a reload (SIGHUP), STOPPING=1 on SIGTERM.
";

/// The `--help` (and man page) section on a PostgreSQL store.
const POSTGRESQL: &str = "\nPostgreSQL store:
  sasldb_path = postgresql://USER@HOST:PORT/DB serves the table saslpasswd --init-schema creates (the password from the URL, PGPASSWORD or ~/.pgpass; keep it off the command line). The SMTP listener and the auth sockets share 4 connections (connect timeout 3s unless the URL sets connect_timeout, statement timeout 5s) and one cache of looked-up secrets (smtpd_auth_cache_ttl, smtpd_auth_cache_negative_ttl, smtpd_auth_cache_size). A LISTEN connection on channel sasldb empties the cache on every change the table's trigger notifies, whoever makes it; while it is down nothing cached is trusted. The first failed login after a success asks the database again.

  When the database is unreachable: logged once (and its return once); accounts that logged in within the last hour keep logging in with the same password, others fail temporarily (454 4.7.0; Dovecot socket: FAIL with temp), and so do wrong passwords (the reply never tells who logged in lately); look-ups fail at once while reconnection is retried in the background.
";

pub fn command() -> Command {
    let mut params = String::from("Parameters (main.cf syntax; unknown names are errors):\n");
    for p in maincf::PARAMS {
        params.push_str(&format!(
            "  {} (default {:?})\n      {}\n",
            p.name, p.default, p.help
        ));
    }
    params.push_str(SOCKET_ACTIVATION);
    params.push_str(POSTGRESQL);
    params.push_str(
        "\nExamples:\n  Serve Postfix (smtpd_sasl_type = dovecot, smtpd_sasl_path = private/auth):\n    smtpd-auth -o dovecot_auth_socket=/var/spool/postfix/private/auth\n  Be saslauthd for Cyrus's pwcheck_method: saslauthd:\n    smtpd-auth -o saslauthd_socket=/var/spool/postfix/var/run/saslauthd/mux",
    );
    Command::new("smtpd-auth")
        .version(env!("CARGO_PKG_VERSION"))
        .about("SMTP submission listener with SMTP AUTH, and authentication service for Postfix (Dovecot and saslauthd socket protocols), backed by the sasldb store")
        .arg(Arg::new("config").short('c').value_name("FILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Configuration file in main.cf syntax (default: $SMTPD_AUTH_CONFIG, none when it is empty; else /etc/smtpd-auth/main.cf when present)"))
        .arg(Arg::new("override").short('o').value_name("KEY=VALUE").action(ArgAction::Append)
            .help("Override a parameter, as master.cf's -o does"))
        .arg(Arg::new("listen").long("listen").value_name("ADDR:PORT").action(ArgAction::Append)
            .help("SMTP listener (plain, STARTTLS offered); repeatable (default: smtpd_listen, else 127.0.0.1:2525 when nothing else is served)"))
        .arg(Arg::new("listen-tls").long("listen-tls").value_name("ADDR:PORT").action(ArgAction::Append)
            .help("Implicit-TLS SMTP listener (like port 465); repeatable"))
        .arg(Arg::new("print-config").long("print-config").action(ArgAction::SetTrue)
            .help("Print the parameters set explicitly (like postconf -n) and exit"))
        .after_long_help(params)
}

/// Run the daemon; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let m = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let source = Source {
        path: m.get_one::<String>("config").map(PathBuf::from),
        overrides: m
            .get_many::<String>("override")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
    };
    let cf = match source.load() {
        Ok(c) => c,
        Err(e) => return error::report(&e),
    };
    if m.get_flag("print-config") {
        for (k, v) in cf.explicit() {
            // A database URL is shown without its password.
            let v = if crate::store::pg::is_url(v.as_bytes()) {
                crate::store::pg::redacted_url(&v)
            } else {
                v
            };
            println!("{k} = {v}");
        }
        return 0;
    }
    let listen: Vec<String> = m
        .get_many::<String>("listen")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let listen_tls: Vec<String> = m
        .get_many::<String>("listen-tls")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    match start(&source, cf, listen, listen_tls) {
        Ok(()) => 0,
        Err(e) => error::report(&e),
    }
}

/// Remove spool files a crash left behind. When root hands over to
/// `mail_owner`, make the directory now and give it to that user, who
/// could not create it later; otherwise it is made at the first spill.
/// Returns how many stale files were removed.
fn prepare_spool(cf: &MainCf, spool: &Spool) -> Result<usize, Fatal> {
    let n = spool.remove_stale().map_err(Fatal::path(spool.dir()))?;
    let owner = cf.get("mail_owner")?;
    if nix::unistd::geteuid().is_root() && !owner.is_empty() && owner != "root" {
        let user = nix::unistd::User::from_name(&owner)
            .ok()
            .flatten()
            .ok_or_else(|| Fatal::NoUser {
                key: "mail_owner".into(),
                name: owner.clone(),
            })?;
        // mail_owner must reach spool/ through the state directory, which
        // may have been made 0700 (the certificate's key stays in tls/,
        // 0700): allow traversal, not listing, as Postfix's queue_directory.
        if let Some(state) = spool.dir().parent() {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            let at = || Fatal::path(state);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(state)
                .map_err(at())?;
            let mode = std::fs::metadata(state).map_err(at())?.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(state, std::fs::Permissions::from_mode(mode | 0o111))
                    .map_err(at())?;
            }
        }
        spool.ensure_dir().map_err(Fatal::path(spool.dir()))?;
        nix::unistd::chown(spool.dir(), Some(user.uid), Some(user.gid))
            .map_err(Fatal::sys(spool.dir().display().to_string()))?;
        tls::give_tickets(cf, &user).map_err(Fatal::Tls)?;
    }
    Ok(n)
}

/// Who to run as once the sockets are bound, when started as root:
/// `mail_owner`, which must be an unprivileged account (Postfix refuses
/// one with user or group ID 0 the same way). Checked before anything is
/// bound or created.
fn mail_owner(cf: &MainCf) -> Result<Option<nix::unistd::User>, Fatal> {
    use nix::unistd::{User, geteuid};
    if !geteuid().is_root() {
        return Ok(None);
    }
    let key = "mail_owner";
    let owner = cf.get(key)?;
    let bad = |why: String| Fatal::from(cf.invalid(key, why));
    let user = User::from_name(&owner)
        .ok()
        .flatten()
        .ok_or_else(|| bad(format!("unknown user name value: {owner:?}")))?;
    if user.uid.is_root() {
        return Err(bad(format!("user {owner} has privileged user ID")));
    }
    if user.gid.as_raw() == 0 {
        return Err(bad(format!("user {owner} has privileged group ID")));
    }
    Ok(Some(user))
}

/// Give up root for `user` once every socket is bound and the store is
/// open (their descriptors stay usable), before any client is served.
fn drop_privileges(user: &nix::unistd::User) -> Result<(), Fatal> {
    use nix::unistd::{getgid, getuid, setgid, setgroups, setuid};
    setgroups(&[user.gid]).map_err(Fatal::sys("setgroups"))?;
    setgid(user.gid).map_err(Fatal::sys("setgid"))?;
    setuid(user.uid).map_err(Fatal::sys("setuid"))?;
    // setuid(2) as root sets every ID, so root cannot come back; make sure.
    if getuid().is_root() || getgid().as_raw() == 0 || setuid(nix::unistd::Uid::from_raw(0)).is_ok()
    {
        return Err(Fatal::StillRoot(user.name.clone()));
    }
    Ok(())
}

/// Longest wait for sessions to finish after SIGTERM.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

fn start(
    source: &Source,
    cf: MainCf,
    mut listen: Vec<String>,
    mut listen_tls: Vec<String>,
) -> Result<(), Fatal> {
    use crate::sysd::State;
    use nix::sys::signal::{SigSet, Signal};
    let owner = mail_owner(&cf)?;
    // Both change the environment: before any thread starts.
    let mut inherited = crate::sysd::take_listen_fds()?.filter(|i| !i.is_empty());
    let notifier = crate::sysd::Notifier::from_env()?;
    let notify = |state: State, status: &str, log: &logging::LogFn| {
        if let Err(e) = notifier.notify(state, status) {
            log(&format!(
                "warning: NOTIFY_SOCKET: {}",
                crate::sys::strerror(&e)
            ));
        }
    };
    let c = common(&cf)?;
    // Stop and reload signals go to sigwait only: block them before any
    // thread starts (a PostgreSQL store starts its client's now).
    let mut signals = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(sig);
    }
    signals.thread_block().map_err(Fatal::Signals)?;
    let auth_log = Arc::new(logger(&cf, &c.hostname, "auth")?);
    let backend = {
        let l = Arc::clone(&auth_log);
        Backend::open(&cf, &c, Arc::new(move |text: &str| l.log(text)))?
    };
    let store = backend.credentials(&c)?;
    let socket_mechanisms = offered(&cf, &c.cyrus, "smtpd_sasl_security_options", false)?;
    if socket_mechanisms.is_empty() {
        return Err(Fatal::NoMechanism);
    }
    let dovecot = DovecotConfig {
        mechanisms: socket_mechanisms.clone(),
        plaintext_needs_tls: cf.get_bool("smtpd_tls_auth_only")?,
        require_client_cert: cf.get_bool("dovecot_auth_require_client_cert")?,
        pid: std::process::id(),
        connection_id: 0,
    };
    let log: Box<logging::LogFn> = Box::new(move |text: &str| auth_log.log(text));
    let mut dovecot_spec = socket_spec(&cf, "dovecot_auth_socket")?;
    let mut saslauthd_spec = socket_spec(&cf, "saslauthd_socket")?;
    let wrapper = cf.get_bool("smtpd_tls_wrappermode")?;
    let configured = cf.get_list("smtpd_listen")?;
    if wrapper {
        listen_tls.extend(configured);
    } else {
        listen.extend(configured);
    }
    listen_tls.extend(cf.get_list("smtpd_listen_tls")?);
    // Socket-activated: serve what the service manager passed, bind nothing.
    let mut not_bound = Vec::new();
    if inherited.is_some() {
        not_bound.extend(dovecot_spec.take().map(|s| s.path.display().to_string()));
        not_bound.extend(saslauthd_spec.take().map(|s| s.path.display().to_string()));
        not_bound.append(&mut listen);
        not_bound.append(&mut listen_tls);
    }
    if inherited.is_none()
        && dovecot_spec.is_none()
        && saslauthd_spec.is_none()
        && listen.is_empty()
        && listen_tls.is_empty()
    {
        listen.push("127.0.0.1:2525".into());
    }
    // DIGEST-MD5 clients name the server as they reached it.
    let mut aliases: Vec<String> = listen
        .iter()
        .chain(&listen_tls)
        .filter_map(|a| a.rsplit_once(':'))
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect();
    aliases.extend(
        inherited
            .iter()
            .flat_map(|i| i.smtp.iter().chain(&i.smtps))
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.ip().to_string()),
    );
    aliases.push("localhost".into());
    let limiter = failure_limiter(&cf)?;
    let shared = Arc::new(Shared::new(store, c.server.clone(), dovecot, limiter, log));
    if let Some(path) = &c.cyrus.path {
        for key in c.cyrus.unknown_keys() {
            (shared.log)(&format!(
                "warning: {}: option {key} is not used by smtpd-auth (ignored)",
                path.display()
            ));
        }
    }
    if !not_bound.is_empty() {
        (shared.log)(&format!(
            "socket activation: not binding {} (configured, but sockets were passed)",
            not_bound.join(", ")
        ));
    }
    // Everything is bound first (as root: port 25, Postfix's private/),
    // then root is given up, and only then is anyone served.
    let mut sockets = Vec::new();
    for (spec, protocol, what) in [
        (dovecot_spec, server::Protocol::Dovecot, "dovecot"),
        (saslauthd_spec, server::Protocol::Saslauthd, "saslauthd"),
    ] {
        let Some(spec) = spec else { continue };
        let listener = server::bind(&spec).map_err(Fatal::path(&spec.path))?;
        sockets.push((
            listener,
            protocol,
            what,
            spec.path.display().to_string(),
            Some(spec.path),
        ));
    }
    if let Some(i) = inherited.as_mut() {
        let dovecot = i.dovecot.drain(..).map(|l| (l, server::Protocol::Dovecot));
        let saslauthd = i
            .saslauthd
            .drain(..)
            .map(|l| (l, server::Protocol::Saslauthd));
        for (l, protocol) in dovecot.chain(saslauthd) {
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
            let what = if protocol == server::Protocol::Dovecot {
                "dovecot"
            } else {
                "saslauthd"
            };
            let name = format!("{} (inherited)", path.as_deref().unwrap_or("unnamed"));
            sockets.push((l, protocol, what, name, None));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut control = None;
    let mut tcp_listeners = Vec::new();
    // What the running TLS set-up was made from (see smtp_listener).
    let mut tls_now = tls::tls_inputs(&cf).map_err(Fatal::Tls)?;
    let inherited_tcp: Vec<(std::net::TcpListener, bool)> = match inherited.take() {
        Some(i) => (i.smtp.into_iter().map(|l| (l, false)))
            .chain(i.smtps.into_iter().map(|l| (l, true)))
            .collect(),
        None => Vec::new(),
    };
    if !listen.is_empty() || !listen_tls.is_empty() || !inherited_tcp.is_empty() {
        let l = smtp_listener(&cf, &c, backend.directory(&c)?, &aliases, None)?;
        let tls_on = l.tls.is_some();
        let stale = prepare_spool(&cf, &l.spool)?;
        if stale > 0 {
            (shared.log)(&format!(
                "removed {stale} stale files from {}",
                l.spool.dir().display()
            ));
        }
        let limit = cf.get_u32("default_process_limit")?;
        control = Some(Control::new(l, limit));
        for (addrs, implicit) in [(&listen, false), (&listen_tls, true)] {
            for a in addrs {
                let tcp = runtime
                    .block_on(tokio::net::TcpListener::bind(a.as_str()))
                    .map_err(|source| Fatal::Listen {
                        addr: a.clone(),
                        source,
                    })?;
                tcp_listeners.push((tcp, implicit, a.clone()));
            }
        }
        for (l, implicit) in inherited_tcp {
            let _in_runtime = runtime.enter();
            let name = l.local_addr().map_or("unnamed".into(), |a| a.to_string());
            if implicit && !tls_on {
                return Err(Fatal::ImplicitTlsOff(name));
            }
            let tcp = l
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(l))
                .map_err(|source| Fatal::Inherited {
                    name: name.clone(),
                    source,
                })?;
            tcp_listeners.push((tcp, implicit, format!("{name} (inherited)")));
        }
    }
    if let Some(user) = &owner {
        drop_privileges(user)?;
        (shared.log)(&format!("running as {}", user.name));
    }
    let mut bound = Vec::new();
    for (listener, protocol, what, name, path) in sockets {
        (shared.log)(&format!(
            "{what} auth socket {name} ready; realm {}; mechanisms {}",
            c.realm,
            socket_mechanisms.join(" ")
        ));
        let sh = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("{what}-auth"))
            .spawn(move || server::serve(listener, sh, protocol))?;
        // Inherited sockets are the service manager's: never removed here.
        bound.extend(path);
    }
    if let Some(ctl) = &control {
        for (tcp, implicit, a) in tcp_listeners {
            (shared.log)(&format!(
                "SMTP listener on {a}{}",
                if implicit { " (implicit TLS)" } else { "" }
            ));
            runtime.spawn(Arc::clone(ctl).serve(tcp, implicit));
        }
    }
    notify(State::Ready, "serving", &*shared.log);
    loop {
        let sig = signals.wait().map_err(Fatal::Signals)?;
        if sig == Signal::SIGHUP {
            notify(State::Reloading, "reloading", &*shared.log);
            match (&control, source.load()) {
                (Some(ctl), Ok(cf2)) => {
                    let rebuilt = common(&cf2).and_then(|c2| {
                        let old = ctl.listener();
                        let same_tls = tls::tls_inputs(&cf2).map_err(Fatal::Tls)? == tls_now;
                        // The open store stays: it is always current (a
                        // PostgreSQL one through its LISTEN connection), and
                        // after root is given up it may not open again.
                        let store = if c2.store_path == c.store_path {
                            Arc::clone(&old.accounts)
                        } else {
                            let log = Arc::clone(&old.log);
                            Backend::open(&cf2, &c2, log)?.directory(&c2)?
                        };
                        let l = smtp_listener(&cf2, &c2, store, &aliases, Some((&old, same_tls)))?;
                        Ok((l, tls::tls_inputs(&cf2).map_err(Fatal::Tls)?))
                    });
                    match rebuilt {
                        Ok((l, tls)) => {
                            tls_now = tls;
                            *ctl.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(l);
                            (shared.log)(
                                "reload: configuration read again (listener addresses and sockets unchanged)",
                            );
                        }
                        Err(e) => (shared.log)(&format!(
                            "warning: reload failed, keeping the old configuration: {e}"
                        )),
                    }
                }
                (None, Ok(_)) => (shared.log)("reload: nothing to reload"),
                (_, Err(e)) => (shared.log)(&format!(
                    "warning: reload failed, keeping the old configuration: {e}"
                )),
            }
            notify(State::Ready, "serving", &*shared.log);
            continue;
        }
        (shared.log)(&format!("stopping on {sig:?}"));
        notify(State::Stopping, "stopping", &*shared.log);
        shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for p in &bound {
            let _ = std::fs::remove_file(p);
        }
        if let Some(ctl) = &control {
            use std::sync::atomic::Ordering;
            ctl.stopping.store(true, Ordering::SeqCst);
            ctl.stop.notify_waiters();
            let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
            while ctl.active.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let left = ctl.active.load(Ordering::SeqCst);
            if left > 0 {
                (shared.log)(&format!(
                    "warning: {left} sessions still open after the grace time"
                ));
            }
        }
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        return Ok(());
    }
}
