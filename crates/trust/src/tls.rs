//! TLS configurations for the server and its clients (rustls with the ring provider).
//!
//! TLS 1.3 only unless TLS 1.2 is asked for. The server can ask clients for a certificate signed by a
//! client CA (mTLS: agents); it never requires one, because people and programs also come with bearer
//! tokens, and an unauthenticated connection gets a 401 from the API, not a failed handshake. A
//! certificate that is presented is verified against the CA and the revocation check, and a bad or
//! revoked one fails the handshake.

use crate::x509::{parse_cert, CertInfo};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider Quarry uses everywhere (ring: no C toolchain beyond what the workspace builds).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS13_AND_12: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls12 {
        &TLS13_AND_12
    } else {
        &TLS13_ONLY
    }
}

/// Every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let data = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_err("holds no certificate (expected PEM)".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        message: format!("no private key in it (expected PEM PKCS#8, SEC1 or PKCS#1): {e}"),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path)? {
        store.add(c).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

/// Decides whether a verified client certificate is revoked; returns why.
pub type RevocationCheck = Arc<dyn Fn(&CertInfo) -> Option<String> + Send + Sync>;

/// What the server's TLS needs.
#[derive(Clone)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA whose client certificates are accepted (mTLS), if any.
    pub client_ca: Option<PathBuf>,
    /// Also accept TLS 1.2.
    pub tls12: bool,
    /// Revocation of client certificates.
    pub revoked: Option<RevocationCheck>,
}

/// The server's rustls configuration (HTTP/1.1 by ALPN).
pub fn server_config(t: &ServerTls) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(t.tls12))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(Revoking {
                inner,
                revoked: t.revoked.clone(),
            }))
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(load_certs(&t.cert)?, load_key(&t.key)?)
        .map_err(|e| TlsError::Config(format!("{}: {e}", t.key.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// WebPKI client verification followed by the revocation check.
struct Revoking {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Option<RevocationCheck>,
}

impl std::fmt::Debug for Revoking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revoking")
    }
}

impl ClientCertVerifier for Revoking {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(check) = &self.revoked {
            let info = parse_cert(end_entity).map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(std::io::Error::other(e)),
                )))
            })?;
            if let Some(why) = check(&info) {
                tracing::warn!(
                    node = info.node().unwrap_or("?"),
                    serial = %info.serial,
                    "refused a revoked client certificate: {why}"
                );
                return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
            }
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a client's TLS needs.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA bundle that signs the server's certificate (PEM); the system's is not used.
    pub ca: Option<PathBuf>,
    /// Client certificate and key for mTLS (an agent's).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Also accept TLS 1.2.
    pub tls12: bool,
}

/// A client's rustls configuration; `None` when no CA is given (plain HTTP only).
pub fn client_config(t: &ClientTls) -> Result<Option<ClientConfig>, TlsError> {
    let Some(ca) = &t.ca else {
        if let Some((cert, _)) = &t.identity {
            return Err(TlsError::File {
                path: cert.clone(),
                message:
                    "a client certificate needs --ca (the CA that signed the server's certificate)"
                        .into(),
            });
        }
        return Ok(None);
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(t.tls12))
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let mut cfg = match &t.identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError::Config(format!("{}: {e}", key.display())))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(cfg))
}
