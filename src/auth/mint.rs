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
use std::io::Write;

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

impl TokenClaims<'_> {
    /// The claims as compact JSON: byte for byte what serde_json writes for this struct (a
    /// property test holds the two together). Written by hand because the load engine rebuilds
    /// a token's text for every REGISTER it sends, and serde_json's escaping and allocation were
    /// most of the 11 % of the engine's samples that text took in a 3x overload storm
    /// (results/storm-20261203c/engine-profile.md).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        // Writing to a Vec cannot fail.
        let _ = self.write_json(&mut out);
        out
    }

    /// Writes [`TokenClaims::to_json`]'s bytes to `w` (a stack buffer in `signing_input`: an
    /// error there means only that it was too small).
    fn write_json(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut digits = itoa::Buffer::new();
        w.write_all(b"{\"sub\":")?;
        json_str(self.sub, w)?;
        w.write_all(b",\"exp\":")?;
        w.write_all(digits.format(self.exp).as_bytes())?;
        w.write_all(b",\"iat\":")?;
        w.write_all(digits.format(self.iat).as_bytes())?;
        if let Some(nbf) = self.nbf {
            w.write_all(b",\"nbf\":")?;
            w.write_all(digits.format(nbf).as_bytes())?;
        }
        if let Some(iss) = self.iss {
            w.write_all(b",\"iss\":")?;
            json_str(iss, w)?;
        }
        if let Some(aud) = self.aud {
            w.write_all(b",\"aud\":")?;
            json_str(aud, w)?;
        }
        if !self.lines.is_empty() {
            w.write_all(b",\"lines\":[")?;
            for (k, line) in self.lines.iter().enumerate() {
                if k > 0 {
                    w.write_all(b",")?;
                }
                json_str(line, w)?;
            }
            w.write_all(b"]")?;
        }
        if let Some(dev) = self.dev {
            w.write_all(b",\"dev\":")?;
            json_str(dev, w)?;
        }
        w.write_all(b"}")
    }
}

/// Appends BASE64URL(`bytes`) to `out`, through a stack buffer when it fits: the crate's
/// `encode_string` goes through a chunked encoder that cost the load engine as much as the
/// rest of a token's text.
fn push_b64(bytes: &[u8], out: &mut String) {
    let mut text = [0u8; 1024];
    match B64URL.encode_slice(bytes, &mut text) {
        Ok(n) => out.push_str(std::str::from_utf8(&text[..n]).unwrap_or_default()),
        Err(_) => B64URL.encode_string(bytes, out),
    }
}

/// A JSON string as serde_json escapes it: `"` and `\\`, the five short escapes, and
/// `\u00xx` (lowercase) for the other control characters; everything else as it is.
fn json_str(s: &str, w: &mut impl Write) -> std::io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    w.write_all(b"\"")?;
    // Claims are plain text: one pass (without an early exit, so it vectorizes) says so.
    let needs_escape = bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        w.write_all(bytes)?;
        return w.write_all(b"\"");
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        w.write_all(&bytes[plain..i])?;
        plain = i + 1;
        if short.is_empty() {
            let hex = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
            w.write_all(b"\\u00")?;
            w.write_all(&hex)?;
        } else {
            w.write_all(short)?;
        }
    }
    w.write_all(&bytes[plain..])?;
    w.write_all(b"\"")
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
        out.push_str(&self.header_b64);
        // The claims' JSON goes to a stack buffer (no allocation per REGISTER in the load
        // engine), or to the heap when it does not fit.
        let mut stack = [0u8; 512];
        let mut rest = &mut stack[..];
        let written = claims.write_json(&mut rest).map(|()| rest.len());
        if let Ok(left) = written {
            let len = stack.len() - left;
            push_b64(&stack[..len], out);
        } else {
            push_b64(&claims.to_json(), out);
        }
    }

    /// Appends the compact JWS of `claims` signed with `signature` (made by [`Signer::sign`]
    /// over [`Signer::signing_input`] of the same claims) to `out`.
    pub fn write_token(&self, claims: &TokenClaims<'_>, signature: &[u8], out: &mut String) {
        self.signing_input(claims, out);
        out.push('.');
        push_b64(signature, out);
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
