//! What the daemon derives from its configuration: the parts every
//! service shares, the SMTP listener (at start and on SIGHUP), the failure
//! limiter and the auth sockets' owner and mode. Errors are [`Fatal`].

use std::path::PathBuf;
use std::sync::Arc;

use super::error::Fatal;
use super::{CONFIG_ENV, DEFAULT_CONFIG, tls};
use crate::authd::server::SocketSpec;
use crate::logging::{self, Logger};
use crate::maincf::MainCf;
use crate::mech::Credentials;
use crate::mech::ServerConfig;
use crate::net::{Cidr, FailureLimiter, parse_ipv6_prefix};
use crate::saslconf::{self, security::SecurityOptions};
use crate::secret::cache;
use crate::secret::pg_fetch::{self, PgCredentials};
use crate::smtp::accounts::{AccountIndex, SharedDirectory};
use crate::smtp::listener::Listener;
use crate::smtp::session::{Policy, Restriction, check_relay_closed};
use crate::smtp::spool::Spool;
use crate::store::{OpenOptions, Store};

/// A logger for one part of the daemon, tagged `<syslog_name>/<daemon>`.
pub(super) fn logger(cf: &MainCf, host: &str, daemon: &str) -> Result<Logger, Fatal> {
    let dest = logging::Destination::open(&cf.get("log_destination")?)?;
    let tag = format!("{}/{daemon}", cf.get("syslog_name")?);
    Ok(Logger::new(Arc::new(dest), host, &tag))
}

/// What every part of the daemon derives from the configuration.
pub(super) struct Common {
    pub(super) hostname: String,
    pub(super) realm: String,
    pub(super) cyrus: saslconf::SaslConfig,
    pub(super) store_path: PathBuf,
    pub(super) open: OpenOptions,
    pub(super) server: ServerConfig,
}

pub(super) fn common(cf: &MainCf) -> Result<Common, Fatal> {
    let hostname = cf.get("myhostname")?;
    let local = cf.get("smtpd_sasl_local_domain")?;
    let realm = if local.is_empty() {
        hostname.clone()
    } else {
        local
    };
    let appname = cf.get("smtpd_sasl_path")?;
    let search = match cf.get("cyrus_sasl_config_path")? {
        p if p.is_empty() => saslconf::search_path(),
        p => p,
    };
    let cyrus = saslconf::load(&appname, &search)?;
    // main.cf's sasldb_path wins over the Cyrus application config's.
    let store_path = match cf.get_path("sasldb_path")? {
        Some(p) => p,
        None => PathBuf::from(cyrus.sasldb_path().unwrap_or(crate::cli::DEFAULT_SASLDB)),
    };
    let open = OpenOptions {
        map_size: cyrus.sasldb_mapsize(),
        max_readers: cyrus.sasldb_maxreaders(),
    };
    let mut server = ServerConfig::new("smtp", &hostname, realm.as_bytes())?;
    if let Some(n) = cyrus.scram_iteration_counter() {
        server.scram_iterations = n;
    }
    server.salt_key = crate::secret::load_salt_key(&tls::state_dir(cf).map_err(Fatal::Tls)?)?;
    server.digest_strict_host = cf.get_bool("smtpd_sasl_digest_uri_strict_host")?;
    Ok(Common {
        hostname,
        realm,
        cyrus,
        store_path,
        open,
        server,
    })
}

/// The store the daemon authenticates against: an LMDB file, opened by
/// each user, or one PostgreSQL connection set and cache they all share.
pub(super) enum Backend {
    Lmdb,
    Pg(Arc<PgCredentials>),
}

impl Backend {
    /// Connect when `sasldb_path` is a PostgreSQL URL (checking the table
    /// is there); an LMDB file is opened by its users.
    pub(super) fn open(
        cf: &MainCf,
        c: &Common,
        log: Arc<logging::LogFn>,
    ) -> Result<Backend, Fatal> {
        use std::os::unix::ffi::OsStrExt;
        let path = c.store_path.as_os_str().as_bytes();
        if !crate::store::pg::is_url(path) {
            return Ok(Backend::Lmdb);
        }
        let policy = cache::Policy {
            positive_ttl: cf.get_duration("smtpd_auth_cache_ttl")?,
            negative_ttl: cf.get_duration("smtpd_auth_cache_negative_ttl")?,
            max_entries: cf.get_u32("smtpd_auth_cache_size")?.max(1) as usize,
            ..cache::Policy::default()
        };
        let url = String::from_utf8_lossy(path);
        Ok(Backend::Pg(Arc::new(pg_fetch::connect(&url, policy, log)?)))
    }

    /// The credentials the auth sockets check against.
    pub(super) fn credentials(
        &self,
        c: &Common,
    ) -> Result<Arc<dyn Credentials + Send + Sync>, Fatal> {
        Ok(match self {
            Backend::Lmdb => {
                Arc::new(Store::open_read(&c.store_path, &c.open).map_err(Fatal::NoStore)?)
            }
            Backend::Pg(p) => Arc::clone(p) as Arc<dyn Credentials + Send + Sync>,
        })
    }

    /// What the SMTP listener asks.
    pub(super) fn directory(&self, c: &Common) -> Result<SharedDirectory, Fatal> {
        Ok(match self {
            Backend::Lmdb => Arc::new(AccountIndex::new(Arc::new(Store::open_read(
                &c.store_path,
                &c.open,
            )?))),
            Backend::Pg(p) => Arc::clone(p) as SharedDirectory,
        })
    }
}

pub(super) fn cidrs(cf: &MainCf, key: &str) -> Result<Vec<Cidr>, Fatal> {
    cf.get_list(key)?
        .iter()
        .map(|c| Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Fatal::Net {
            key: key.into(),
            source,
        })
}

pub(super) fn restrictions(cf: &MainCf, key: &str) -> Result<Vec<Restriction>, Fatal> {
    cf.get_list(key)?
        .iter()
        .map(|n| {
            Restriction::parse(n).ok_or_else(|| Fatal::Restriction {
                key: key.into(),
                name: n.clone(),
            })
        })
        .collect()
}

pub(super) fn offered(
    cf: &MainCf,
    cyrus: &saslconf::SaslConfig,
    key: &str,
    tls: bool,
) -> Result<Vec<&'static str>, Fatal> {
    let options =
        SecurityOptions::parse(&cf.get(key)?).map_err(|source| Fatal::SecurityOptions {
            key: key.into(),
            source,
        })?;
    Ok(saslconf::security::offered(
        &cyrus.mech_list(),
        &options,
        tls,
    ))
}

/// `local_recipient_maps`: empty accepts any local recipient, as in
/// Postfix; `sasldb` (the default) only accounts of the store.
pub(super) fn local_recipient_check(cf: &MainCf) -> Result<bool, Fatal> {
    let key = "local_recipient_maps";
    match cf.get_list(key)?.as_slice() {
        [] => Ok(false),
        [one] if one == "sasldb" => Ok(true),
        other => Err(Fatal::LocalRecipientMaps {
            key: key.into(),
            value: other.join(", "),
        }),
    }
}

/// Build the SMTP side from the configuration (at start and on SIGHUP).
/// On reload, `previous` is the running listener and whether the TLS
/// parameters are unchanged: then, if the key cannot be read again (it is
/// root's and root is given up by now), the running TLS set-up is kept.
pub(super) fn smtp_listener(
    cf: &MainCf,
    c: &Common,
    accounts: SharedDirectory,
    aliases: &[String],
    previous: Option<(&Listener, bool)>,
) -> Result<Listener, Fatal> {
    let log = logger(cf, &c.hostname, "smtpd")?;
    let log: Arc<logging::LogFn> = Arc::new(move |text: &str| log.log(text));
    let tls = match (tls::tls_config(cf, &c.hostname, &*log), previous) {
        (Ok(tls), _) => tls,
        (Err(x), Some((old, true))) => {
            log(&format!(
                "warning: TLS files not read again ({x}); keeping the certificate in use until a restart"
            ));
            old.tls.clone()
        }
        (Err(x), _) => return Err(Fatal::Tls(x)),
    };
    let relay_restrictions = restrictions(cf, "smtpd_relay_restrictions")?;
    let recipient_restrictions = restrictions(cf, "smtpd_recipient_restrictions")?;
    check_relay_closed(&relay_restrictions, &recipient_restrictions)?;
    let auth_needs_tls = match cf.get("smtpd_tls_auth_only")?.as_str() {
        "" => tls.is_some(),
        _ => cf.get_bool("smtpd_tls_auth_only")?,
    };
    let relayhost = cf.get("relayhost")?.replace(['[', ']'], "");
    let maildir = cf.get_path("virtual_mailbox_base")?;
    let policy = Policy {
        hostname: c.hostname.clone(),
        mydestination: cf.get_list("mydestination")?,
        relay_domains: cf.get_list("relay_domains")?,
        mynetworks: cidrs(cf, "mynetworks")?,
        local_recipient_check: local_recipient_check(cf)?,
        recipient_limit: cf.get_u32("smtpd_recipient_limit")? as usize,
        auth_enabled: cf.get_bool("smtpd_sasl_auth_enable")?,
        auth_needs_tls,
        tls_available: tls.is_some(),
        tls_required: cf
            .get("smtpd_tls_security_level")?
            .eq_ignore_ascii_case("encrypt"),
        mechanisms_plain: offered(cf, &c.cyrus, "smtpd_sasl_security_options", false)?,
        mechanisms_tls: offered(cf, &c.cyrus, "smtpd_sasl_tls_security_options", true)?,
        broken_auth_clients: cf.get_bool("broken_sasl_auth_clients")?,
        // 0: no limit, as in Postfix (bodies past 64 KiB go to the spool
        // on disk, so memory stays bounded either way).
        message_size_limit: match cf.get_u32("message_size_limit")? {
            0 => u64::MAX,
            n => u64::from(n),
        },
        hard_error_limit: cf.get_u32("smtpd_hard_error_limit")?.max(1),
        relay_restrictions,
        recipient_restrictions,
        can_relay: !relayhost.is_empty(),
        can_deliver_local: !relayhost.is_empty() || maildir.is_some(),
    };
    let mut server = c.server.clone();
    server.host_aliases.extend(aliases.iter().cloned());
    let minute = std::time::Duration::from_secs(60);
    let ipv6_prefix = ipv6_prefix(cf)?;
    Ok(Listener {
        policy: Arc::new(policy),
        server,
        tls,
        timeout: cf.get_duration("smtpd_timeout")?,
        relayhost: (!relayhost.is_empty()).then_some(relayhost),
        maildir,
        accounts,
        limiter: Arc::new(std::sync::Mutex::new(failure_limiter(cf)?)),
        auth_rate: Arc::new(std::sync::Mutex::new(
            FailureLimiter::new(
                cf.get_u32("smtpd_client_auth_rate_limit")?,
                minute,
                Vec::new(),
            )
            .with_ipv6_prefix(ipv6_prefix),
        )),
        error_sleep: cf.get_duration("smtpd_error_sleep_time")?,
        soft_error_limit: cf.get_u32("smtpd_soft_error_limit")?,
        connection_limit: cf.get_u32("smtpd_client_connection_count_limit")?,
        ipv6_prefix,
        session_limit: cf.get_duration("smtpd_max_session_time")?,
        spool: Spool::new(tls::state_dir(cf).map_err(Fatal::Tls)?.join("spool")),
        log,
    })
}

/// `smtpd_client_ipv6_prefix_length`, checked.
pub(super) fn ipv6_prefix(cf: &MainCf) -> Result<u8, Fatal> {
    let key = "smtpd_client_ipv6_prefix_length";
    let n = cf.get_u32(key)?;
    Ok(parse_ipv6_prefix(n).map_err(|why| cf.invalid(key, why.to_string()))?)
}

/// AUTH failures per client (`smtpd_auth_failure_limit`), for the SMTP
/// listener and the Dovecot socket alike.
pub(super) fn failure_limiter(cf: &MainCf) -> Result<FailureLimiter, Fatal> {
    Ok(FailureLimiter::new(
        cf.get_u32("smtpd_auth_failure_limit")?,
        cf.get_duration("smtpd_auth_failure_window")?,
        cidrs(cf, "smtpd_auth_failure_exceptions")?,
    )
    .with_ipv6_prefix(ipv6_prefix(cf)?))
}

pub(super) fn socket_spec(cf: &MainCf, prefix: &str) -> Result<Option<SocketSpec>, Fatal> {
    let Some(path) = cf.get_path(prefix)? else {
        return Ok(None);
    };
    let owner = cf.get(&format!("{prefix}_owner"))?;
    let group = cf.get(&format!("{prefix}_group"))?;
    let uid = nix::unistd::User::from_name(&owner)
        .ok()
        .flatten()
        .ok_or_else(|| Fatal::NoUser {
            key: format!("{prefix}_owner"),
            name: owner.clone(),
        })?
        .uid
        .as_raw();
    let gid = nix::unistd::Group::from_name(&group)
        .ok()
        .flatten()
        .ok_or_else(|| Fatal::NoGroup {
            key: format!("{prefix}_group"),
            name: group.clone(),
        })?
        .gid
        .as_raw();
    let mode = cf.get_mode(&format!("{prefix}_mode"))?;
    Ok(Some(SocketSpec {
        path,
        uid: Some(uid),
        gid: Some(gid),
        mode,
    }))
}

/// Where the configuration comes from, so SIGHUP can read it again.
pub(super) struct Source {
    pub(super) path: Option<PathBuf>,
    pub(super) overrides: Vec<String>,
}

impl Source {
    pub(super) fn load(&self) -> Result<MainCf, Fatal> {
        let mut cf = match &self.path {
            Some(p) => MainCf::load(p)?,
            // As Postfix's MAIL_CONFIG: another default, or none when empty.
            None => match std::env::var_os(CONFIG_ENV) {
                Some(p) if p.is_empty() => MainCf::default(),
                Some(p) => MainCf::load(std::path::Path::new(&p))?,
                None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
                    MainCf::load(std::path::Path::new(DEFAULT_CONFIG))?
                }
                None => MainCf::default(),
            },
        };
        for o in &self.overrides {
            cf.override_with(o)?;
        }
        Ok(cf)
    }
}
