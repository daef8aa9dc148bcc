//! TLS to PostgreSQL with rustls (ring), with libpq's meaning of `sslmode`
//! and `sslrootcert`.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and refuses
//! the rest of a libpq URL's TLS options, so [`split_url`] takes `sslmode`
//! and `sslrootcert` out of the query first and hands back a URL the driver
//! parses plus the [`TlsParams`] they meant. [`connector`] turns those into
//! a [`MakeRustlsConnect`], which both the sync client (`pg.rs`) and an
//! async pool (`tokio_postgres::Config::connect(connector)`) take.
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | disable | never | - |
//! | prefer (default) | if the server offers it | no |
//! | require | always | only when a root file is given or `~/.postgresql/root.crt` exists (then as verify-ca), as libpq |
//! | verify-ca | always | chain to the roots |
//! | verify-full | always | chain and host name |
//!
//! `sslrootcert=FILE` is a PEM bundle; `sslrootcert=system` the system's
//! roots (`/etc/ssl/certs/ca-certificates.crt`), which libpq allows with
//! verify-full only. Without `sslrootcert`, verify-* reads
//! `~/.postgresql/root.crt` and fails clearly when it is missing.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode as DriverSslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where `sslrootcert=system` looks (Debian's ca-certificates bundle).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS set-up that cannot work; names the option or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PgTlsError(String);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, PgTlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's allow (plain first) is not offered: a downgrade by design.
            other => {
                return Err(PgTlsError(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// What the driver is told: whether TLS is tried, and whether it must succeed.
    pub fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        }
    }
}

/// The roots a certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

/// The TLS options of one URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<RootCert>,
}

fn percent_decode(s: &str) -> Result<String, PgTlsError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgTlsError("a bad %-escape in the URL's options".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgTlsError("a URL option that is not UTF-8".into()))
}

/// Take `sslmode` and `sslrootcert` out of a URL's query: the URL the
/// driver can parse, and what they asked for. The rest of the URL is left
/// as it was (the driver parses and checks it).
pub fn split_url(url: &str) -> Result<(String, TlsParams), PgTlsError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsParams::default()));
    };
    let mut params = TlsParams::default();
    let mut mode = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k)?.as_str() {
            "sslmode" => mode = Some(SslMode::parse(&percent_decode(v)?)?),
            "sslrootcert" => {
                let v = percent_decode(v)?;
                params.root_cert = Some(if v == "system" {
                    RootCert::System
                } else if v.is_empty() {
                    return Err(PgTlsError("sslrootcert= names no file".into()));
                } else {
                    RootCert::File(PathBuf::from(v))
                });
            }
            _ => kept.push(pair),
        }
    }
    params.mode = match (mode, &params.root_cert) {
        // libpq 16: system roots mean a public CA, so the name must match too.
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
            return Err(PgTlsError(
                "sslrootcert=system needs sslmode=verify-full (any server with a public certificate would pass otherwise)".into(),
            ));
        }
        (m, _) => m.unwrap_or_default(),
    };
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, params))
}

/// libpq's default root file: `~/.postgresql/root.crt`.
fn default_root_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql/root.crt"))
}

fn load_roots(path: &Path, what: &str) -> Result<RootCertStore, PgTlsError> {
    use rustls_pki_types::pem::PemObject;
    let fail = |why: String| PgTlsError(format!("{what} {}: {why}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| match e {
            rustls_pki_types::pem::Error::Io(io) => fail(crate::sys::strerror(&io)),
            other => fail(other.to_string()),
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(fail("holds no usable PEM certificate".into()));
    }
    Ok(roots)
}

/// The roots a mode that may check certificates uses: `sslrootcert`, else
/// libpq's default file when it exists; None for disable and prefer.
fn roots(params: &TlsParams) -> Result<Option<RootCertStore>, PgTlsError> {
    if matches!(params.mode, SslMode::Disable | SslMode::Prefer) {
        return Ok(None);
    }
    match &params.root_cert {
        Some(RootCert::File(p)) => load_roots(p, "sslrootcert").map(Some),
        Some(RootCert::System) => {
            load_roots(Path::new(SYSTEM_ROOTS), "sslrootcert=system:").map(Some)
        }
        None => match default_root_file() {
            Some(p) if p.exists() => load_roots(&p, "root certificate file").map(Some),
            _ => Ok(None),
        },
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for these parameters: pass it to `Config::connect` (sync
/// `postgres` or async `tokio_postgres`; the driver's `sslmode` must be
/// [`SslMode::driver`] of the same parameters, which [`split_url`]'s caller
/// sets). Fails when a root file is needed and missing or unreadable.
pub fn connector(params: &TlsParams) -> Result<MakeRustlsConnect, PgTlsError> {
    // libpq: prefer never checks; require checks like verify-ca once it has roots.
    let check = match (params.mode, roots(params)?) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::None,
        (SslMode::VerifyFull, Some(r)) => Check::Full(r),
        (_, Some(r)) => Check::Chain(r),
        (_, None) => {
            let shown = default_root_file().map_or_else(
                || "~/.postgresql/root.crt".into(),
                |p| p.display().to_string(),
            );
            return Err(PgTlsError(format!(
                "root certificate file {shown} does not exist; give one with sslrootcert=FILE, use the system's roots with sslrootcert=system, or set sslmode=require to skip the certificate check"
            )));
        }
    };
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgTlsError(format!("TLS set-up: {e}")))?;
    let config = match check {
        Check::Full(roots) => builder.with_root_certificates(roots),
        Check::Chain(roots) => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| PgTlsError(format!("TLS set-up: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
        }
        Check::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider))),
    }
    .with_no_client_auth();
    Ok(MakeRustlsConnect {
        config: Arc::new(config),
    })
}

enum Check {
    None,
    Chain(RootCertStore),
    Full(RootCertStore),
}

/// verify-ca: the chain must lead to a root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate; the handshake's signatures are still checked.
/// prefer / require without roots: encryption against passive eavesdroppers
/// only, as libpq (and the load generator's test clients).
#[derive(Debug)]
pub struct AnyCert(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Makes one TLS connector per connection attempt (per host of a multi-host URL).
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for MakeRustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MakeRustlsConnect")
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = PgTlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, PgTlsError> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|_| PgTlsError(format!("{domain:?} is not a host name TLS can check")))?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

/// One handshake to one host.
pub struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// The encrypted connection.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// `tls-server-end-point` (RFC 5929), so SCRAM-SHA-256-PLUS binds the
    /// login to this TLS session.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| end_point_hash(c))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// One DER element at the start of `b`: (tag, contents, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, b) = b.split_first()?;
    let (len, b) = if first < 0x80 {
        (usize::from(first), b)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, &b[n..])
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// The certificate's hash for `tls-server-end-point`: the hash of its
/// signature algorithm, SHA-256 for MD5 and SHA-1; None for algorithms
/// without one (Ed25519), where no binding is defined.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    const SEQUENCE: u8 = 0x30;
    let (tag, body, _) = der(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _tbs, rest) = der(body)?;
    let (tag, alg, _) = der(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, oid, _) = der(alg)?;
    if tag != 0x06 {
        return None;
    }
    // Arcs under 1.2.840.113549.1.1 (RSA) and 1.2.840.10045.4.3 (ECDSA).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let (&last, prefix) = oid.split_last()?;
    let bits = match (prefix, last) {
        (RSA, 4 | 5 | 11) | (ECDSA, 2) => 256, // MD5, SHA-1 → SHA-256 (RFC 5929)
        (RSA, 12) | (ECDSA, 3) => 384,
        (RSA, 13) | (ECDSA, 4) => 512,
        _ => return None,
    };
    Some(match bits {
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_leave_the_url() {
        let (url, p) = split_url(
            "postgresql://u:pw@h/db?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://u:pw@h/db?target_session_attrs=read-write"
        );
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        let (url, p) = split_url("postgresql://h/db").unwrap();
        assert_eq!(
            (url.as_str(), p),
            ("postgresql://h/db", TlsParams::default())
        );
        let (url, p) = split_url("postgresql://h/db?sslmode=disable").unwrap();
        assert_eq!(
            (url.as_str(), p.mode.driver()),
            ("postgresql://h/db", DriverSslMode::Disable)
        );
        // system roots: verify-full by default, weaker modes refused.
        assert_eq!(
            split_url("postgresql://h/db?sslrootcert=system")
                .unwrap()
                .1
                .mode,
            SslMode::VerifyFull
        );
        let e = split_url("postgresql://h/db?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(e.to_string().contains("needs sslmode=verify-full"), "{e}");
        let e = split_url("postgresql://h/db?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("sslmode=allow"), "{e}");
        assert!(split_url("postgresql://h/db?sslrootcert=%zz").is_err());
    }

    #[test]
    fn verify_without_roots_is_a_clear_error() {
        // SAFETY-free: HOME points at an empty directory for this check only.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let p = TlsParams {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCert::File(missing.clone())),
        };
        let e = connector(&p).unwrap_err().to_string();
        assert!(e.contains("sslrootcert") && e.contains("none.pem"), "{e}");
        std::fs::write(&missing, "not a certificate\n").unwrap();
        let e = connector(&p).unwrap_err().to_string();
        assert!(e.contains("no usable PEM certificate"), "{e}");
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let der = |alg| {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["db".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            cert.der().to_vec()
        };
        let c = der(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(end_point_hash(&c), Some(sha2::Sha384::digest(&c).to_vec()));
        let c = der(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(end_point_hash(&c), Some(sha2::Sha256::digest(&c).to_vec()));
        assert_eq!(end_point_hash(&der(&rcgen::PKCS_ED25519)), None);
        assert_eq!(end_point_hash(b"\x30\x85"), None);
    }
}
