//! TLS for the SMTP listener: the configured certificate, or a
//! self-signed one kept in the state directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::authd::server;
use crate::maincf::{ConfigError, MainCf};
use crate::smtp::tickets::{self, StateFileError, Tickets};

/// Why the TLS set-up failed; each names the file or parameter involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A certificate or key file that does not read as PEM; `what` names
    /// the parameter it came from, when it came from one.
    #[error("{what}{}: {source}", .path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error(transparent)]
    Rustls(rustls::Error),
    #[error("TLS certificate: {0}")]
    Certificate(rustls::Error),
    #[error(transparent)]
    StateFile(#[from] StateFileError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no state directory: set smtpd_auth_state_dir")]
    NoStateDir,
    #[error(transparent)]
    SelfSigned(#[from] rcgen::Error),
}

fn pem(what: &'static str, path: &Path) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Pem { what, path, source }
}

/// The parameters the TLS set-up is made from.
pub(super) fn tls_inputs(cf: &MainCf) -> Result<Vec<String>, TlsError> {
    [
        "smtpd_tls_security_level",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
        "smtpd_tls_session_cache_timeout",
        "smtpd_auth_state_dir",
        "myhostname",
    ]
    .iter()
    .map(|k| cf.get(k).map_err(TlsError::from))
    .collect()
}

pub(super) fn tls_config(
    cf: &MainCf,
    hostname: &str,
    log: &server::LogFn,
) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    if cf
        .get("smtpd_tls_security_level")?
        .eq_ignore_ascii_case("none")
    {
        return Ok(None);
    }
    let config = match cf.get_path("smtpd_tls_cert_file")? {
        Some(cert) => {
            let key = cf
                .get_path("smtpd_tls_key_file")?
                .unwrap_or_else(|| cert.clone());
            let certs = load_certs("smtpd_tls_cert_file ", &cert)?;
            let key =
                PrivateKeyDer::from_pem_file(&key).map_err(pem("smtpd_tls_key_file ", &key))?;
            server_config(certs, key)?
        }
        None => self_signed(cf, hostname, log)?,
    };
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(resumption(
        cf, config,
    )?))))
}

/// Session resumption by stateless tickets whose keys live in the state
/// directory (see [`Tickets`]), reusable, so concurrent connections of one
/// client resume from the same ticket; one fresh ticket after every
/// handshake, resumed ones included, so a client that uses each ticket
/// once resumes every time. `smtpd_tls_session_cache_timeout = 0`: none.
fn resumption(
    cf: &MainCf,
    mut config: rustls::ServerConfig,
) -> Result<rustls::ServerConfig, TlsError> {
    let lifetime = cf
        .get_duration("smtpd_tls_session_cache_timeout")?
        .as_secs();
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    if lifetime == 0 {
        config.send_tls13_tickets = 0;
        return Ok(config);
    }
    let lifetime = u32::try_from(lifetime).unwrap_or(u32::MAX);
    config.ticketer = Arc::new(Tickets::new(&tickets_dir(cf)?, lifetime)?);
    config.send_tls13_tickets = 1;
    Ok(config)
}

fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(pem(what, path))
}

/// A TLS server configuration; fails when the key does not match.
fn server_config(
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(crate::smtp::random::provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Certificate)
}

/// Where the ticket keys live: apart from `tls/` (root's), as mail_owner
/// rotates them once root is given up.
fn tickets_dir(cf: &MainCf) -> Result<PathBuf, TlsError> {
    Ok(state_dir(cf)?.join("tickets"))
}

/// Hand the ticket keys to mail_owner (called as root, before root is
/// given up): the process holds them in memory anyway, and must write
/// the rotated ones. Nothing to do when TLS made none.
pub(super) fn give_tickets(cf: &MainCf, owner: &nix::unistd::User) -> Result<(), TlsError> {
    let dir = tickets_dir(cf)?;
    for p in [
        dir.join("ticket-keys"),
        dir.join("ticket-keys.lock"),
        dir.clone(),
    ] {
        if p.symlink_metadata().is_ok() {
            std::os::unix::fs::lchown(&p, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
                .map_err(|source| TlsError::Io {
                    path: p.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// The state directory: `smtpd_auth_state_dir`, else /var/lib/smtpd-auth
/// for root, else `$XDG_STATE_HOME/smtpd-auth` (~/.local/state/smtpd-auth).
pub(super) fn state_dir(cf: &MainCf) -> Result<PathBuf, TlsError> {
    if let Some(p) = cf.get_path("smtpd_auth_state_dir")? {
        return Ok(p);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/smtpd-auth"));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .ok_or(TlsError::NoStateDir)?;
    Ok(base.join("smtpd-auth"))
}

/// A self-signed certificate for `hostname`, made once and kept in the
/// state directory (key 0600), so clients that pin it keep working.
/// Instances starting together on one state directory take turns under
/// a lock, so none reads a pair another is halfway through writing; each
/// file is written whole under a temporary name and renamed. A pair that
/// does not load or match (left by a crash, or by a version without the
/// lock) is made anew, with a warning, rather than failing every start.
fn self_signed(
    cf: &MainCf,
    hostname: &str,
    log: &server::LogFn,
) -> Result<rustls::ServerConfig, TlsError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let dir = state_dir(cf)?.join("tls");
    let _lock = tickets::locked_dir(&dir, "lock")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let load = || -> Result<rustls::ServerConfig, TlsError> {
        let certs = load_certs("", &cert)?;
        let k = PrivateKeyDer::from_pem_file(&key).map_err(pem("", &key))?;
        server_config(certs, k)
    };
    if cert.exists() || key.exists() {
        match load() {
            Ok(config) => return Ok(config),
            Err(x) => log(&format!(
                "warning: self-signed certificate in {}: {x}; making a new one",
                dir.display()
            )),
        }
    }
    // ECDSA P-256: a full handshake signs once, and an RSA-2048 signature
    // costs several times as much CPU. Pairs made before (RSA) still load.
    let made = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).and_then(|k| {
        rcgen::CertificateParams::new(vec![hostname.to_string(), "localhost".to_string()])?
            .self_signed(&k)
            .map(|c| (c, k))
    });
    let (c, k) = made?;
    tickets::write_whole(&key, k.serialize_pem().as_bytes(), 0o600)?;
    tickets::write_whole(&cert, c.pem().as_bytes(), 0o644)?;
    load()
}
