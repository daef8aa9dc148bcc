//! `smtpd-auth`: the daemon. An SMTP listener with SMTP AUTH (see
//! `crate::smtp`), and auth sockets that serve Postfix itself (Dovecot
//! protocol, saslauthd protocol), all authenticating against the store;
//! configuration in `main.cf` syntax with `-o` overrides.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Arg, ArgAction, Command};

use crate::authd::dovecot::DovecotConfig;
use crate::authd::limit::{Cidr, FailureLimiter};
use crate::authd::server::{self, Shared, SocketSpec};
use crate::maincf::{self, MainCf};
use crate::mech::ServerConfig;
use crate::saslconf::{self, security::SecurityOptions};
use crate::store::{OpenOptions, Store};

/// Default configuration file (read when it exists and no -c is given).
pub const DEFAULT_CONFIG: &str = "/etc/smtpd-auth/main.cf";

pub fn command() -> Command {
    let mut params = String::from("Parameters (main.cf syntax; unknown names are errors):\n");
    for p in maincf::PARAMS {
        params.push_str(&format!(
            "  {} (default {:?})\n      {}\n",
            p.name, p.default, p.help
        ));
    }
    params.push_str(
        "\nExamples:\n  Serve Postfix (smtpd_sasl_type = dovecot, smtpd_sasl_path = private/auth):\n    smtpd-auth -o dovecot_auth_socket=/var/spool/postfix/private/auth\n  Be saslauthd for Cyrus's pwcheck_method: saslauthd:\n    smtpd-auth -o saslauthd_socket=/var/spool/postfix/var/run/saslauthd/mux",
    );
    Command::new("smtpd-auth")
        .version(env!("CARGO_PKG_VERSION"))
        .about("SMTP submission listener with SMTP AUTH, and authentication service for Postfix (Dovecot and saslauthd socket protocols), backed by the sasldb store")
        .arg(Arg::new("config").short('c').value_name("FILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Configuration file in main.cf syntax (default /etc/smtpd-auth/main.cf when present)"))
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

fn err(msg: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "smtpd-auth: fatal: {msg}");
    1
}

/// A log line in Postfix's format: `Mon DD HH:MM:SS host tag[pid]: text`.
fn log_line(host: &str, tag: &str, text: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = now as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02} {host} {tag}[{}]: {text}",
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        std::process::id()
    )
}

/// Mechanisms for the SMTP listener without and with TLS.
fn mechanisms_for_smtp(
    cyrus: &saslconf::SaslConfig,
    cf: &MainCf,
) -> Result<(Vec<&'static str>, Vec<&'static str>), String> {
    let options = SecurityOptions::parse(
        &cf.get("smtpd_sasl_security_options")
            .map_err(|x| x.to_string())?,
    )?;
    Ok((
        saslconf::security::offered(&cyrus.mech_list(), &options, false),
        saslconf::security::offered(&cyrus.mech_list(), &options, true),
    ))
}

fn smtp_listener(
    cf: &MainCf,
    hostname: &str,
    server: &ServerConfig,
    mechanisms: &(Vec<&'static str>, Vec<&'static str>),
    store_path: &std::path::Path,
    cyrus: &saslconf::SaslConfig,
) -> Result<crate::smtp::listener::Listener, String> {
    let e = |x: maincf::ConfigError| x.to_string();
    let tls = tls_config(cf, hostname)?;
    let mut local_domains = cf.get_list("mydestination").map_err(e)?;
    local_domains.extend(cf.get_list("relay_domains").map_err(e)?);
    let mynetworks = cf
        .get_list("mynetworks")
        .map_err(e)?
        .iter()
        .map(|c| Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|x| format!("mynetworks: {x}"))?;
    let policy = crate::smtp::session::Policy {
        hostname: hostname.to_string(),
        local_domains,
        mynetworks,
        auth_enabled: cf.get_bool("smtpd_sasl_auth_enable").map_err(e)?,
        auth_needs_tls: cf.get_bool("smtpd_tls_auth_only").map_err(e)?,
        tls_available: tls.is_some(),
        mechanisms_plain: mechanisms.0.clone(),
        mechanisms_tls: mechanisms.1.clone(),
        broken_auth_clients: cf.get_bool("broken_sasl_auth_clients").map_err(e)?,
        message_size_limit: u64::from(cf.get_u32("message_size_limit").map_err(e)?),
        hard_error_limit: cf.get_u32("smtpd_hard_error_limit").map_err(e)?.max(1),
        can_relay: false,
        can_deliver_local: false,
    };
    let relayhost = cf.get("relayhost").map_err(e)?.replace(['[', ']'], "");
    let maildir = cf.get_path("virtual_mailbox_base").map_err(e)?;
    let mut policy = policy;
    policy.can_relay = !relayhost.is_empty();
    policy.can_deliver_local = policy.can_relay || maildir.is_some();
    let store = Store::open_read(
        store_path,
        &OpenOptions {
            map_size: cyrus.sasldb_mapsize(),
            max_readers: cyrus.sasldb_maxreaders(),
        },
    )
    .map_err(|x| x.to_string())?;
    let syslog_name = cf.get("syslog_name").map_err(e)?;
    let host = hostname.to_string();
    let tag = format!("{syslog_name}/smtpd");
    let log: Arc<server::LogFn> = Arc::new(move |text: &str| {
        let _ = writeln!(std::io::stderr(), "{}", log_line(&host, &tag, text));
    });
    let limit_exempt = cf
        .get_list("smtpd_auth_failure_exceptions")
        .map_err(e)?
        .iter()
        .map(|c| Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::smtp::listener::Listener {
        policy,
        server: server.clone(),
        tls,
        timeout: cf.get_duration("smtpd_timeout").map_err(e)?,
        relayhost: (!relayhost.is_empty()).then_some(relayhost),
        maildir,
        store: Arc::new(store),
        limiter: Arc::new(std::sync::Mutex::new(FailureLimiter::new(
            cf.get_u32("smtpd_auth_failure_limit").map_err(e)?,
            cf.get_duration("smtpd_auth_failure_window").map_err(e)?,
            limit_exempt,
        ))),
        log,
    })
}

fn socket_spec(cf: &MainCf, prefix: &str) -> Result<Option<SocketSpec>, String> {
    let Some(path) = cf.get_path(prefix).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let owner = cf
        .get(&format!("{prefix}_owner"))
        .map_err(|e| e.to_string())?;
    let group = cf
        .get(&format!("{prefix}_group"))
        .map_err(|e| e.to_string())?;
    let uid = nix::unistd::User::from_name(&owner)
        .ok()
        .flatten()
        .ok_or_else(|| format!("{prefix}_owner: no user {owner:?}"))?
        .uid
        .as_raw();
    let gid = nix::unistd::Group::from_name(&group)
        .ok()
        .flatten()
        .ok_or_else(|| format!("{prefix}_group: no group {group:?}"))?
        .gid
        .as_raw();
    let mode = cf
        .get_mode(&format!("{prefix}_mode"))
        .map_err(|e| e.to_string())?;
    Ok(Some(SocketSpec {
        path,
        uid: Some(uid),
        gid: Some(gid),
        mode,
    }))
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
    let config_path = m.get_one::<String>("config").map(PathBuf::from);
    let mut cf = match &config_path {
        Some(p) => match MainCf::load(p) {
            Ok(c) => c,
            Err(e) => return err(&e.to_string()),
        },
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            match MainCf::load(std::path::Path::new(DEFAULT_CONFIG)) {
                Ok(c) => c,
                Err(e) => return err(&e.to_string()),
            }
        }
        None => MainCf::default(),
    };
    for o in m.get_many::<String>("override").into_iter().flatten() {
        if let Err(e) = cf.override_with(o) {
            return err(&e.to_string());
        }
    }
    if m.get_flag("print-config") {
        for (k, v) in cf.explicit() {
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
    match start(&cf, listen, listen_tls) {
        Ok(()) => 0,
        Err(e) => err(&e),
    }
}

fn tls_config(cf: &MainCf, hostname: &str) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let e = |x: maincf::ConfigError| x.to_string();
    if cf
        .get("smtpd_tls_security_level")
        .map_err(e)?
        .eq_ignore_ascii_case("none")
    {
        return Ok(None);
    }
    let (certs, key) = match cf.get_path("smtpd_tls_cert_file").map_err(e)? {
        Some(cert) => {
            let key = cf
                .get_path("smtpd_tls_key_file")
                .map_err(e)?
                .unwrap_or_else(|| cert.clone());
            let certs = CertificateDer::pem_file_iter(&cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|x| format!("smtpd_tls_cert_file {}: {x}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|x| format!("smtpd_tls_key_file {}: {x}", key.display()))?;
            (certs, key)
        }
        None => {
            let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
                .map_err(|x| x.to_string())?;
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
                .map_err(|x| x.to_string())?;
            (vec![ck.cert.der().clone()], key)
        }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| x.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|x| format!("TLS certificate: {x}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        config,
    ))))
}

fn start(cf: &MainCf, mut listen: Vec<String>, mut listen_tls: Vec<String>) -> Result<(), String> {
    let e = |x: maincf::ConfigError| x.to_string();
    let hostname = cf.get("myhostname").map_err(e)?;
    let local = cf.get("smtpd_sasl_local_domain").map_err(e)?;
    let realm = if local.is_empty() {
        hostname.clone()
    } else {
        local
    };
    let appname = cf.get("smtpd_sasl_path").map_err(e)?;
    let search = match cf.get("cyrus_sasl_config_path").map_err(e)? {
        p if p.is_empty() => saslconf::search_path(),
        p => p,
    };
    let cyrus = saslconf::load(&appname, &search).map_err(|x| x.to_string())?;
    let options = SecurityOptions::parse(&cf.get("smtpd_sasl_security_options").map_err(e)?)
        .map_err(|x| format!("smtpd_sasl_security_options: {x}"))?;
    let mechanisms = saslconf::security::offered(&cyrus.mech_list(), &options, false);
    if mechanisms.is_empty() {
        return Err(
            "no SASL mechanism left after mech_list and smtpd_sasl_security_options".into(),
        );
    }
    let store_path = PathBuf::from(cyrus.sasldb_path().unwrap_or(crate::cli::DEFAULT_SASLDB));
    let store = Store::open_read(
        &store_path,
        &OpenOptions {
            map_size: cyrus.sasldb_mapsize(),
            max_readers: cyrus.sasldb_maxreaders(),
        },
    )
    .map_err(|x| format!("{x} (create a user with saslpasswd first)"))?;
    let mut server =
        ServerConfig::new("smtp", &hostname, realm.as_bytes()).map_err(|x| x.to_string())?;
    if let Some(n) = cyrus.scram_iteration_counter() {
        server.scram_iterations = n;
    }
    let exempt = cf
        .get_list("smtpd_auth_failure_exceptions")
        .map_err(e)?
        .iter()
        .map(|c| Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|x| format!("smtpd_auth_failure_exceptions: {x}"))?;
    let limiter = FailureLimiter::new(
        cf.get_u32("smtpd_auth_failure_limit").map_err(e)?,
        cf.get_duration("smtpd_auth_failure_window").map_err(e)?,
        exempt,
    );
    let dovecot = DovecotConfig {
        mechanisms: mechanisms.clone(),
        plaintext_needs_tls: cf.get_bool("smtpd_tls_auth_only").map_err(e)?,
        pid: std::process::id(),
        connection_id: 0,
    };
    let syslog_name = cf.get("syslog_name").map_err(e)?;
    let host = hostname.clone();
    let tag = format!("{syslog_name}/auth");
    let log: Box<server::LogFn> = Box::new(move |text: &str| {
        let _ = writeln!(std::io::stderr(), "{}", log_line(&host, &tag, text));
    });
    let dovecot_spec = socket_spec(cf, "dovecot_auth_socket")?;
    let saslauthd_spec = socket_spec(cf, "saslauthd_socket")?;
    listen.extend(cf.get_list("smtpd_listen").map_err(e)?);
    listen_tls.extend(cf.get_list("smtpd_listen_tls").map_err(e)?);
    if dovecot_spec.is_none()
        && saslauthd_spec.is_none()
        && listen.is_empty()
        && listen_tls.is_empty()
    {
        listen.push("127.0.0.1:2525".into());
    }
    // DIGEST-MD5 clients name the server as they reached it.
    for a in listen.iter().chain(&listen_tls) {
        if let Some((host, _)) = a.rsplit_once(':') {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if !server.host_aliases.contains(&host) {
                server.host_aliases.push(host);
            }
        }
    }
    server.host_aliases.push("localhost".into());
    let smtp = if listen.is_empty() && listen_tls.is_empty() {
        None
    } else {
        Some(smtp_listener(
            cf,
            &hostname,
            &server,
            &mechanisms_for_smtp(&cyrus, cf)?,
            &store_path,
            &cyrus,
        )?)
    };
    // Block the stop signals before any thread starts, so only sigwait sees them.
    let mut stop_signals = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        stop_signals.add(s);
    }
    stop_signals.thread_block().map_err(|x| x.to_string())?;
    let shared = Arc::new(Shared::new(store, server, dovecot, limiter, log));
    let mut bound = Vec::new();
    for (spec, handler, what) in [
        (
            dovecot_spec,
            server::handle_dovecot as fn(_, &Shared),
            "dovecot",
        ),
        (
            saslauthd_spec,
            server::handle_saslauthd as fn(_, &Shared),
            "saslauthd",
        ),
    ] {
        let Some(spec) = spec else { continue };
        let listener = server::bind(&spec).map_err(|x| format!("{}: {x}", spec.path.display()))?;
        (shared.log)(&format!(
            "{what} auth socket {} ready; realm {realm}; mechanisms {}",
            spec.path.display(),
            mechanisms.join(" ")
        ));
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("{what}-accept"))
            .spawn(move || server::serve(listener, s, handler))
            .map_err(|x| x.to_string())?;
        bound.push(spec.path);
    }
    let runtime;
    if let Some(l) = smtp {
        runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|x| x.to_string())?;
        let l = Arc::new(l);
        for (addrs, implicit) in [(&listen, false), (&listen_tls, true)] {
            for a in addrs {
                let tcp = runtime
                    .block_on(tokio::net::TcpListener::bind(a.as_str()))
                    .map_err(|x| format!("listen {a}: {x}"))?;
                if implicit && l.tls.is_none() {
                    return Err(format!(
                        "--listen-tls {a}: TLS is off (smtpd_tls_security_level = none)"
                    ));
                }
                (shared.log)(&format!(
                    "SMTP listener on {a}{}",
                    if implicit { " (implicit TLS)" } else { "" }
                ));
                runtime.spawn(Arc::clone(&l).serve(tcp, implicit));
            }
        }
    }
    let sig = stop_signals.wait().map_err(|x| x.to_string())?;
    shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in &bound {
        let _ = std::fs::remove_file(p);
    }
    (shared.log)(&format!("stopping on {sig:?}"));
    Ok(())
}
