//! Minting tokens, for the load engine and `regstorm token`: Ed25519 and ES256 from PKCS#8 keys
//! (ring's v2 and the v1 that OpenSSL and Python write), RS256 from a supplied PKCS#8 RSA key.
//! The `kid` of a key is its RFC 7638 thumbprint.

use super::error::KeyError;
use super::jose::{Alg, B64URL};
use super::keyset::{Key, KeyKind};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::Serialize;

/// The claims a minted token carries.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TokenClaims<'a> {
    pub sub: &'a str,
    pub exp: u64,
    pub iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub lines: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<&'a str>,
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// A signing key and the header its tokens carry.
pub struct Signer {
    pair: Pair,
    kid: String,
    key: Key,
    /// `BASE64URL({"alg":..,"kid":..,"typ":"JWT"})` followed by '.', computed once.
    header_b64: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish()
    }
}

/// The DER contents of a PEM block, or the input itself when it is not PEM.
pub(crate) fn pem_or_der(bytes: &[u8]) -> Vec<u8> {
    match x509_parser::pem::parse_x509_pem(bytes) {
        Ok((_, pem)) => pem.contents,
        Err(_) => bytes.to_vec(),
    }
}

impl Signer {
    /// Loads a PKCS#8 private key (PEM or DER); `file` names it in errors. The key type picks
    /// the algorithm: Ed25519 → EdDSA, P-256 → ES256, RSA → RS256.
    pub fn from_pkcs8(bytes: &[u8], file: &str) -> Result<Self, KeyError> {
        let der = pem_or_der(bytes);
        let rng = SystemRandom::new();
        let pair = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            Pair::Ed25519(k)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        {
            Pair::Es256(k)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
            Pair::Rs256(k)
        } else {
            return Err(KeyError::new(
                file,
                None,
                "not a PKCS#8 Ed25519, P-256 or RSA private key",
            ));
        };
        let kind = match &pair {
            Pair::Ed25519(k) => {
                let mut x = [0u8; 32];
                x.copy_from_slice(k.public_key().as_ref());
                KeyKind::Ed25519(x)
            }
            Pair::Es256(k) => {
                let mut p = [0u8; 65];
                p.copy_from_slice(k.public_key().as_ref());
                KeyKind::P256(p)
            }
            Pair::Rs256(k) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                KeyKind::Rsa { n: c.n, e: c.e }
            }
        };
        let key = Key::new(None, Some(kind.alg()), kind);
        let kid = key.thumbprint.clone();
        Ok(Self::assemble(pair, key, kid, rng))
    }

    fn assemble(pair: Pair, key: Key, kid: String, rng: SystemRandom) -> Self {
        let header =
            serde_json::json!({ "alg": key.kind.alg().as_str(), "kid": kid, "typ": "JWT" });
        let mut header_b64 = B64URL.encode(header.to_string());
        header_b64.push('.');
        Signer {
            pair,
            kid,
            key,
            header_b64,
            rng,
        }
    }

    /// The same key under another `kid` (`regstorm token --kid`, `load --kid`).
    pub fn with_kid(self, kid: &str) -> Self {
        let key = self.key.renamed(kid);
        Self::assemble(self.pair, key, kid.to_string(), self.rng)
    }

    pub fn alg(&self) -> Alg {
        self.key.kind.alg()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The verification key, as a key set would hold it.
    pub fn public_key(&self) -> &Key {
        &self.key
    }

    /// The public JWK for a key set.
    pub fn public_jwk(&self) -> serde_json::Value {
        self.key.kind.public_jwk(&self.kid)
    }

    /// Signs `claims`, returning the compact JWS.
    pub fn mint(&self, claims: &TokenClaims<'_>) -> String {
        let mut token = String::with_capacity(self.header_b64.len() + 512);
        self.signing_input(claims, &mut token);
        let sig = self.sign(token.as_bytes());
        token.push('.');
        B64URL.encode_string(&sig, &mut token);
        token
    }

    /// Appends the JWS signing input of `claims` to `out`: `BASE64URL(header).BASE64URL(claims)`,
    /// the same bytes for the same claims every time (the load engine keeps only signatures
    /// and rebuilds the rest when it writes a REGISTER).
    pub fn signing_input(&self, claims: &TokenClaims<'_>, out: &mut String) {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        out.push_str(&self.header_b64);
        B64URL.encode_string(&payload, out);
    }

    /// Appends the compact JWS of `claims` signed with `signature` (made by [`Signer::sign`]
    /// over [`Signer::signing_input`] of the same claims) to `out`.
    pub fn write_token(&self, claims: &TokenClaims<'_>, signature: &[u8], out: &mut String) {
        self.signing_input(claims, out);
        out.push('.');
        B64URL.encode_string(signature, out);
    }

    /// Octets of one signature: 64 for EdDSA and ES256, the modulus length for RS256.
    pub fn signature_len(&self) -> usize {
        match &self.pair {
            Pair::Ed25519(_) | Pair::Es256(_) => 64,
            Pair::Rs256(k) => k.public().modulus_len(),
        }
    }

    /// Signs arbitrary bytes with this key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            // Signing fails only on an RNG failure, which ring reports as Unspecified.
            Pair::Es256(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Pair::Rs256(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                match k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig) {
                    Ok(()) => sig,
                    Err(_) => Vec::new(),
                }
            }
        }
    }
}

/// A new PKCS#8 (v2) private key for `alg` (EdDSA or ES256; ring cannot generate RSA keys).
pub fn generate_pkcs8(alg: Alg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let doc = match alg {
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
        Alg::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        }
        Alg::RS256 => {
            return Err(KeyError::new(
                "--alg",
                None,
                "RS256 keys cannot be generated here; supply a PKCS#8 RSA key",
            ))
        }
    };
    doc.map(|d| d.as_ref().to_vec())
        .map_err(|_| KeyError::new("--alg", None, "key generation failed"))
}

/// PEM armour around DER (`label` e.g. `PRIVATE KEY`), 64 columns.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
