//! JWS compact serialisation (RFC 7515 §7.1): strict base64url, a bounded protected header,
//! and signature checks with ring for the three allowed algorithms.

use super::error::TokenError;
use super::jose::{is_object, json_depth_ok, Alg, B64URL, MAX_JSON_DEPTH};
use super::keyset::{Key, KeyKind};
use base64::Engine;
use ring::signature;
use serde::Deserialize;

/// Longest token accepted; anything longer is refused before it is decoded or hashed. A Jabber
/// token is about 900 octets; an RS256 token with an 8192-bit key and generous claims fits.
pub const MAX_TOKEN: usize = 8192;
/// Longest protected header segment (base64url characters).
pub const MAX_HEADER_B64: usize = 1024;
/// Longest claims segment (base64url characters).
pub const MAX_CLAIMS_B64: usize = 4096;
/// Longest signature segment: an RS256 signature with an 8192-bit key is 1,366 characters.
pub const MAX_SIGNATURE_B64: usize = 1400;

/// The protected header members regstorm reads. Unknown members are ignored; a repeated
/// member is an error (serde refuses duplicates), so a header cannot say two things.
/// `kid` and `typ`, when present, must be strings (`null` is not "absent"); `crit` is refused
/// whatever its value, `null` included.
#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default, deserialize_with = "present_string")]
    kid: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    #[allow(dead_code)]
    typ: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<()>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| Some(()))
}

/// A decoded JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct Jws<'t> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `BASE64URL(header) "." BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'t [u8],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

fn decode_segment(seg: &[u8], max: usize) -> Result<Vec<u8>, TokenError> {
    if seg.len() > max {
        return Err(TokenError::TooLarge);
    }
    B64URL.decode(seg).map_err(|_| TokenError::BadBase64)
}

/// Splits and decodes a compact JWS, checking sizes before any decoding.
pub fn decode(token: &[u8]) -> Result<Jws<'_>, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::TooLarge);
    }
    let d1 = memchr::memchr(b'.', token).ok_or(TokenError::Malformed)?;
    let d2 = d1 + 1 + memchr::memchr(b'.', &token[d1 + 1..]).ok_or(TokenError::Malformed)?;
    if memchr::memchr(b'.', &token[d2 + 1..]).is_some() {
        // Five segments would be JWE; anything else is not a JWS.
        return Err(TokenError::Malformed);
    }
    let (h, p, s) = (&token[..d1], &token[d1 + 1..d2], &token[d2 + 1..]);
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(TokenError::Malformed);
    }
    let header = decode_segment(h, MAX_HEADER_B64)?;
    let payload = decode_segment(p, MAX_CLAIMS_B64)?;
    let signature = decode_segment(s, MAX_SIGNATURE_B64)?;
    if !is_object(&header) || !json_depth_ok(&header, MAX_JSON_DEPTH) {
        return Err(TokenError::BadHeader);
    }
    let raw: RawHeader = serde_json::from_slice(&header).map_err(|_| TokenError::BadHeader)?;
    if raw.crit.is_some() {
        return Err(TokenError::Critical);
    }
    let alg = Alg::parse(&raw.alg).ok_or(TokenError::UnsupportedAlg)?;
    Ok(Jws {
        alg,
        kid: raw.kid,
        signing_input: &token[..d2],
        payload,
        signature,
    })
}

impl Jws<'_> {
    /// Checks the signature with `key`, which must be of the type `alg` names and, when its
    /// JWK restricted it, for this `alg` (no algorithm confusion).
    pub fn verify(&self, key: &Key) -> Result<(), TokenError> {
        if key.alg.is_some_and(|a| a != self.alg) {
            return Err(TokenError::KeyMismatch);
        }
        let ok = match (&key.kind, self.alg) {
            (KeyKind::Ed25519(x), Alg::EdDSA) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(self.signing_input, &self.signature)
            }
            (KeyKind::P256(point), Alg::ES256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(self.signing_input, &self.signature)
            }
            (KeyKind::Rsa { n, e }, Alg::RS256) => signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    self.signing_input,
                    &self.signature,
                ),
            _ => return Err(TokenError::KeyMismatch),
        };
        ok.map_err(|_| TokenError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_shape() {
        assert_eq!(decode(b"a.b").unwrap_err(), TokenError::Malformed);
        assert_eq!(decode(b"a.b.c.d.e").unwrap_err(), TokenError::Malformed);
        assert_eq!(decode(b"..").unwrap_err(), TokenError::Malformed);
        assert_eq!(
            decode(&vec![b'a'; MAX_TOKEN + 1]).unwrap_err(),
            TokenError::TooLarge
        );
    }
}
