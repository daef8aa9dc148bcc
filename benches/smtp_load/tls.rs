//! The TLS side of the load generator: a tokio-rustls client for STARTTLS
//! and implicit TLS, with or without resumption. The certificate is not
//! checked (a bench on loopback against a server's self-signed one) unless
//! `--ca` names the anchor.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use sasldb::store::pg_tls::AnyCert;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Implicit,
}

impl Tls {
    pub fn parse(v: &str) -> Result<Tls, String> {
        match v {
            "none" => Ok(Tls::None),
            "starttls" => Ok(Tls::Starttls),
            "implicit" => Ok(Tls::Implicit),
            _ => Err(format!("bad --tls {v:?} (none|starttls|implicit)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tls::None => "none",
            Tls::Starttls => "starttls",
            Tls::Implicit => "implicit",
        }
    }
}

/// A client configuration; `resume`: keep tickets (rustls's in-memory
/// store, each TLS 1.3 ticket used once), else offer none. One per worker,
/// so a worker is one client resuming from its own last session.
pub fn client(ca: Option<&str>, resume: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match ca {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
                roots
                    .add(c.map_err(|e| format!("{path}: {e}"))?)
                    .map_err(|e| format!("{path}: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}
