//! TLS configuration for the listeners (rustls 0.23, ring provider): one `ServerConfig` per
//! listener, shared by every connection on every core, rebuilt on SIGHUP. The MRA listener
//! verifies client certificates against `client_ca` and then requires the certificate's CN or
//! a DNS SAN to be one of `expressway_names` (webpki checks the chain but exposes no CN, so
//! the names are read with x509-parser). No sockets here.

use crate::config::{ConfigError, Listener, ListenerKind};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

/// Server-side session cache entries per listener (TLS 1.2 session IDs; TLS 1.3 uses tickets).
const SESSION_CACHE: usize = 64 * 1024;

fn err(file: &Path, key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        line: None,
        file: file.display().to_string(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a PEM certificate chain (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(path, "", e))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(path, "", e))?;
    if certs.is_empty() {
        return Err(err(path, "", "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| err(path, "", format!("no usable private key: {e}")))
}

/// Chain verification by webpki, then the Expressway-C name rule.
#[derive(Debug)]
struct ExpresswayVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<String>,
}

/// The certificate's subject CNs and DNS SANs.
pub fn certificate_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_string());
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    Ok(names)
}

/// Whether one of `names` (from a certificate) is listed; DNS names compare without case.
pub fn name_allowed(names: &[String], allowed: &[String]) -> bool {
    names.iter().any(|n| {
        allowed.iter().any(|a| {
            a.trim_end_matches('.')
                .eq_ignore_ascii_case(n.trim_end_matches('.'))
        })
    })
}

impl ClientCertVerifier for ExpresswayVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
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
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| tracing::warn!("mra: client certificate refused: {e}"))?;
        let names = certificate_names(end_entity).map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(e)),
            )))
        })?;
        if name_allowed(&names, &self.names) {
            Ok(verified)
        } else {
            tracing::warn!(
                "mra: client certificate names {names:?} are not in expressway_names; connection refused"
            );
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
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

/// The rustls configuration of one TLS listener (`oauth` or `mra`); `index` names it in errors
/// (`listener[1].cert`). Files are read now: a reload calls this again.
pub fn server_config(
    listener: &Listener,
    index: usize,
    config_file: &Path,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let key_name = |k: &str| format!("listener[{index}].{k}");
    let missing = |k: &str| err(config_file, &key_name(k), "required for a TLS listener");
    let cert_path = listener.cert.as_deref().ok_or_else(|| missing("cert"))?;
    let key_path = listener.key.as_deref().ok_or_else(|| missing("key"))?;
    let chain = load_certs(cert_path).map_err(|e| err(config_file, &key_name("cert"), e))?;
    let key = load_key(key_path).map_err(|e| err(config_file, &key_name("key"), e))?;
    let provider = Arc::new(provider::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(config_file, &key_name("kind"), e))?;
    let builder = if listener.kind == ListenerKind::Mra {
        let ca_path = listener
            .client_ca
            .as_deref()
            .ok_or_else(|| missing("client_ca"))?;
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca_path).map_err(|e| err(config_file, &key_name("client_ca"), e))? {
            roots
                .add(c)
                .map_err(|e| err(config_file, &key_name("client_ca"), e))?;
        }
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| err(config_file, &key_name("client_ca"), e))?;
        if listener.expressway_names.is_empty() {
            return Err(err(
                config_file,
                &key_name("expressway_names"),
                "an mra listener needs at least one name",
            ));
        }
        builder.with_client_cert_verifier(Arc::new(ExpresswayVerifier {
            inner,
            names: listener.expressway_names.clone(),
        }))
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| err(config_file, &key_name("key"), e))?;
    // Resumption: TLS 1.2 session IDs in a shared cache, TLS 1.3 tickets.
    cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    cfg.ticketer = provider::Ticketer::new().map_err(|e| err(config_file, &key_name("kind"), e))?;
    Ok(Arc::new(cfg))
}

/// Which input of [`client_config`] was at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientPart {
    Ca,
    Certificate,
    Key,
}

/// A client configuration (the load engine's): every certificate in `ca_pem` as a root, and a
/// client certificate chain and key (PEM) for mutual TLS when given.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, (ClientPart, String)> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| (ClientPart::Ca, e.to_string()))?;
        roots.add(c).map_err(|e| (ClientPart::Ca, e.to_string()))?;
    }
    let provider = Arc::new(provider::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| (ClientPart::Ca, e.to_string()))?;
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (ClientPart::Ca, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FleetVerifier {
            inner: webpki,
            seen: std::sync::Mutex::new(Vec::new()),
        }));
    Ok(match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (ClientPart::Certificate, e.to_string()))?;
            let key =
                PrivateKeyDer::from_pem_slice(key).map_err(|e| (ClientPart::Key, e.to_string()))?;
            b.with_client_auth_cert(chain, key)
                .map_err(|e| (ClientPart::Key, e.to_string()))?
        }
    })
}

/// How long a server certificate chain verified once is taken as verified again.
const CHAIN_REUSE_S: u64 = 60;

/// The load engine's server certificate check: webpki's, with the chain verification of a
/// certificate already verified for the same name in the last minute reused. One engine plays
/// thousands of devices that each verify the same registrar certificate; verifying its chain
/// thousands of times over is the simulation's cost, not the fleet's, and in a storm it took
/// CPU from the registrar on the same cores. The handshake signature (the server holding the
/// certificate's key) is still checked on every connection.
#[derive(Debug)]
struct FleetVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    /// (end-entity certificate, name, when verified): a few entries at most.
    seen: std::sync::Mutex<Vec<(CertificateDer<'static>, String, u64)>>,
}

impl rustls::client::danger::ServerCertVerifier for FleetVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let name = server_name.to_str();
        let t = now.as_secs();
        {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.iter().any(|(c, n, at)| {
                c.as_ref() == end_entity.as_ref()
                    && *n == name
                    && t.saturating_sub(*at) < CHAIN_REUSE_S
            }) {
                return Ok(rustls::client::danger::ServerCertVerified::assertion());
            }
        }
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|(c, n, _)| !(c.as_ref() == end_entity.as_ref() && *n == name));
        if seen.len() >= 8 {
            seen.remove(0);
        }
        seen.push((end_entity.clone().into_owned(), name.into_owned(), t));
        Ok(verified)
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
