//! Lab material for `regstorm keys` and `regstorm bench`: a CA, a server certificate for
//! localhost/127.0.0.1, an Expressway-C client certificate for the MRA port, a token signing
//! key with its JWK set, and a registrar.toml that uses them all.

use crate::auth::{generate_pkcs8, pem_encode, Alg, KeySet, Signer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::fmt;
use std::path::{Path, PathBuf};

/// The Expressway-C name written into the client certificate (CN and DNS SAN) and into
/// registrar.toml's `expressway_names`.
pub const EXPRESSWAY_NAME: &str = "expc1.example.com";

/// A failure writing lab material, naming the file.
#[derive(Debug)]
pub struct LabError {
    pub file: PathBuf,
    pub reason: String,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for LabError {}

fn err(file: &Path, reason: impl fmt::Display) -> LabError {
    LabError {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Everything `keys` writes, in memory.
#[derive(Debug)]
pub struct LabMaterial {
    pub ca_pem: String,
    /// The CA's private key (PEM), kept in memory to issue more certificates; never written.
    pub ca_key: String,
    pub server_pem: String,
    pub server_key: String,
    pub expressway_pem: String,
    pub expressway_key: String,
    /// PKCS#8 PEM of the token signing key.
    pub signing_key: String,
    pub kid: String,
    pub jwks: String,
    pub registrar_toml: String,
}

/// The lab CA's name and constraints. Signing again with the same key gives an issuer that
/// verifies as the same CA (same subject, same key).
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "regstorm lab CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca)
}

/// Makes a fresh CA, certificates and signing key (`alg`: EdDSA or ES256).
pub fn generate(alg: Alg) -> Result<LabMaterial, LabError> {
    let here = Path::new("(lab material)");
    let tls = |e: rcgen::Error| err(here, format!("certificate generation failed: {e}"));

    let ca_key = KeyPair::generate().map_err(tls)?;
    let ca_cert = ca_params()
        .map_err(tls)?
        .self_signed(&ca_key)
        .map_err(tls)?;

    let server_key = KeyPair::generate().map_err(tls)?;
    let mut server = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(tls)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(tls)?;

    let exp_key = KeyPair::generate().map_err(tls)?;
    let mut exp = CertificateParams::new(vec![EXPRESSWAY_NAME.to_string()]).map_err(tls)?;
    exp.distinguished_name
        .push(DnType::CommonName, EXPRESSWAY_NAME);
    exp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    exp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let exp_cert = exp.signed_by(&exp_key, &ca_cert, &ca_key).map_err(tls)?;

    let pkcs8 = generate_pkcs8(alg).map_err(|e| err(here, e))?;
    let signer = Signer::from_pkcs8(&pkcs8, "signing.key").map_err(|e| err(here, e))?;
    let jwks = KeySet::new(vec![signer.public_key().clone()]).to_jwks();

    Ok(LabMaterial {
        ca_pem: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_pem: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        expressway_pem: exp_cert.pem(),
        expressway_key: exp_key.serialize_pem(),
        signing_key: pem_encode("PRIVATE KEY", &pkcs8),
        kid: signer.kid().to_string(),
        jwks: serde_json::to_string_pretty(&jwks).unwrap_or_default() + "\n",
        registrar_toml: registrar_toml(),
    })
}

/// A registrar configuration that uses the files `keys` writes (paths relative to the file).
fn registrar_toml() -> String {
    format!(
        r#"# Written by `regstorm keys`: a registrar for the lab, using the files beside it.
# Paths are relative to this file.

[registrar]
realm = "ccmsipline"
min_expires = 60
max_expires = 120
max_contacts = 10
retry_after_s = 35
challenge = "proxy"
unregister_on_close = true
cores = 0

[auth]
jwks = "jwks.json"
leeway_s = 30
cache_entries = 1000000

[[listener]]
kind = "oauth"
addr = "127.0.0.1:5090"
cert = "server.pem"
key = "server.key"

[[listener]]
kind = "mra"
addr = "127.0.0.1:5091"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["{EXPRESSWAY_NAME}"]

[[listener]]
kind = "tcp"
addr = "127.0.0.1:5060"

[limits]
max_message_bytes = 65536
handshake_timeout_s = 10
idle_timeout_s = 360
max_connections = 18000

[admin]
addr = "127.0.0.1:9090"
"#
    )
}

impl LabMaterial {
    /// Issues a client certificate (clientAuth, CN and DNS SAN `name`) from this lab's CA:
    /// returns the certificate and key in PEM. Tests use it for names the MRA listener must
    /// refuse; the load engine for Expressway-C identities.
    pub fn issue_client(&self, name: &str) -> Result<(String, String), LabError> {
        let here = Path::new("(lab material)");
        let tls = |e: rcgen::Error| err(here, format!("certificate generation failed: {e}"));
        let ca_key = KeyPair::from_pem(&self.ca_key).map_err(tls)?;
        let ca_cert = ca_params()
            .map_err(tls)?
            .self_signed(&ca_key)
            .map_err(tls)?;
        let key = KeyPair::generate().map_err(tls)?;
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(tls)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(tls)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes every file into `dir` (created if missing); private keys get mode 0600.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, LabError> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
        let files: [(&str, &str, bool); 8] = [
            ("ca.pem", &self.ca_pem, false),
            ("server.pem", &self.server_pem, false),
            ("server.key", &self.server_key, true),
            ("expressway.pem", &self.expressway_pem, false),
            ("expressway.key", &self.expressway_key, true),
            ("signing.key", &self.signing_key, true),
            ("jwks.json", &self.jwks, false),
            ("registrar.toml", &self.registrar_toml, false),
        ];
        let mut written = Vec::new();
        for (name, content, private) in files {
            let path = dir.join(name);
            write_file(&path, content.as_bytes(), private)?;
            written.push(path);
        }
        Ok(written)
    }
}

fn write_file(path: &Path, content: &[u8], private: bool) -> Result<(), LabError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(path)
        .map_err(|e| err(path, format!("cannot write: {e}")))?;
    f.write_all(content)
        .map_err(|e| err(path, format!("cannot write: {e}")))
}
