//! Verification keys: RFC 7517 JWK sets (OKP/Ed25519, EC/P-256, RSA 2048 to 8192 bits) and PEM
//! SubjectPublicKeyInfo files. Anything else is refused when loaded, naming the file and kid.

use super::error::{KeyError, TokenError};
use super::jose::{Alg, B64URL};
use base64::Engine;
use ring::digest;
use std::path::Path;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
use x509_parser::public_key::PublicKey;

/// Public key material, in the forms ring verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519([u8; 32]),
    /// Uncompressed SEC1 point: 0x04 || x || y.
    P256([u8; 65]),
    /// Big-endian modulus and exponent without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// One verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub kid: String,
    /// The JWK's `alg`, which restricts the key to that algorithm.
    pub alg: Option<Alg>,
    pub kind: KeyKind,
    /// RFC 7638 thumbprint (base64url of SHA-256 over the canonical JWK).
    pub thumbprint: String,
    /// First eight octets of the thumbprint digest: names the key material.
    pub id: u64,
    /// What a cache entry verified under this key records: a digest of (kid, key material) for
    /// tokens that named this kid, and of (no kid, key material) for tokens that named none.
    /// An entry stays good only while the key set still resolves it the same way
    /// ([`KeySet::accepts`]).
    pub binding_kid: u64,
    pub binding_bare: u64,
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let k = b.iter().take_while(|&&x| x == 0).count();
    &b[k..]
}

impl KeyKind {
    /// The canonical JWK members of RFC 7638 §3.2, in lexicographic order.
    fn canonical_jwk(&self) -> String {
        let b = |x: &[u8]| B64URL.encode(x);
        match self {
            KeyKind::Ed25519(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b(x)),
            KeyKind::P256(p) => {
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b(&p[1..33]),
                    b(&p[33..])
                )
            }
            KeyKind::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n)),
        }
    }

    /// The public JWK (with `kid`, `alg` and `use`), as a key set publishes it.
    pub fn public_jwk(&self, kid: &str) -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&self.canonical_jwk()).unwrap_or_default();
        v["kid"] = kid.into();
        v["use"] = "sig".into();
        v["alg"] = self.alg().as_str().into();
        v
    }

    /// The algorithm this kind of key verifies.
    pub fn alg(&self) -> Alg {
        match self {
            KeyKind::Ed25519(_) => Alg::EdDSA,
            KeyKind::P256(_) => Alg::ES256,
            KeyKind::Rsa { .. } => Alg::RS256,
        }
    }

    /// RFC 7638 thumbprint and the cache id derived from it.
    pub fn thumbprint(&self) -> (String, u64) {
        let d = digest::digest(&digest::SHA256, self.canonical_jwk().as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&d.as_ref()[..8]);
        (B64URL.encode(d.as_ref()), u64::from_be_bytes(id))
    }

    fn rsa(file: &str, kid: Option<&str>, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let (n, e) = (strip_zeros(n), strip_zeros(e));
        let Some(first) = n.first() else {
            return Err(KeyError::new(file, kid, "RSA modulus is zero"));
        };
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::new(
                file,
                kid,
                format!("RSA modulus of {bits} bits (2048 to 8192 allowed)"),
            ));
        }
        if e.is_empty() || e.len() > 8 {
            return Err(KeyError::new(file, kid, "RSA exponent out of range"));
        }
        Ok(KeyKind::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }
}

fn binding(kid: Option<&str>, thumbprint: &str) -> u64 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    match kid {
        Some(k) => {
            ctx.update(b"kid\0");
            ctx.update(k.as_bytes());
        }
        None => ctx.update(b"bare"),
    }
    ctx.update(b"\0");
    ctx.update(thumbprint.as_bytes());
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

impl Key {
    pub fn new(kid: Option<String>, alg: Option<Alg>, kind: KeyKind) -> Self {
        let (thumbprint, id) = kind.thumbprint();
        let kid = kid.unwrap_or_else(|| thumbprint.clone());
        let binding_kid = binding(Some(&kid), &thumbprint);
        let binding_bare = binding(None, &thumbprint);
        Key {
            kid,
            alg,
            kind,
            thumbprint,
            id,
            binding_kid,
            binding_bare,
        }
    }

    /// A copy under another kid.
    pub fn renamed(&self, kid: &str) -> Key {
        Key::new(Some(kid.to_string()), self.alg, self.kind.clone())
    }

    /// The binding a token that named `kid` (or none) records when this key verified it.
    pub fn binding_for(&self, kid: Option<&str>) -> u64 {
        match kid {
            Some(_) => self.binding_kid,
            None => self.binding_bare,
        }
    }
}

/// Checks that an uncompressed P-256 point is on the curve, so a bad key is refused when it is
/// loaded rather than failing every signature later. ring validates the peer's point in an
/// ECDH agreement; an ephemeral agreement against it is the check.
fn check_p256_point(p: &[u8; 65]) -> Result<(), &'static str> {
    use ring::agreement;
    if p[0] != 4 {
        return Err("P-256 key is not an uncompressed point");
    }
    let rng = ring::rand::SystemRandom::new();
    let mine = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| "cannot check the P-256 point")?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, p);
    agreement::agree_ephemeral(mine, &peer, |_| ()).map_err(|_| "P-256 point is not on the curve")
}

/// The keys tokens may be signed with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
}

fn member<'v>(jwk: &'v serde_json::Value, name: &str) -> Option<&'v str> {
    jwk.get(name).and_then(serde_json::Value::as_str)
}

fn b64_member(
    file: &str,
    kid: Option<&str>,
    jwk: &serde_json::Value,
    name: &str,
) -> Result<Vec<u8>, KeyError> {
    let v =
        member(jwk, name).ok_or_else(|| KeyError::new(file, kid, format!("missing \"{name}\"")))?;
    B64URL
        .decode(v)
        .map_err(|_| KeyError::new(file, kid, format!("\"{name}\" is not base64url")))
}

impl KeySet {
    pub fn new(keys: Vec<Key>) -> Self {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds `key`, refusing a second key with the same kid.
    pub fn add(&mut self, key: Key, file: &str) -> Result<(), KeyError> {
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(KeyError::new(file, Some(&key.kid), "duplicate kid"));
        }
        self.keys.push(key);
        Ok(())
    }

    /// The key a token names: by `kid`, or the only key when the token has none.
    pub fn find(&self, kid: Option<&str>) -> Result<&Key, TokenError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or(TokenError::UnknownKid),
            None if self.keys.len() == 1 => Ok(&self.keys[0]),
            None => Err(TokenError::KidRequired),
        }
    }

    /// True when a token recorded with `binding` would still resolve to the same key: its kid
    /// still names the same key material, or, for a token without kid, the set still holds
    /// exactly that one key.
    #[inline]
    pub fn accepts(&self, binding: u64) -> bool {
        self.keys.iter().any(|k| k.binding_kid == binding)
            || (self.keys.len() == 1 && self.keys[0].binding_bare == binding)
    }

    /// Parses an RFC 7517 JWK set; `file` names it in errors.
    pub fn from_jwks(json: &[u8], file: &str) -> Result<Self, KeyError> {
        let doc: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| KeyError::new(file, None, format!("not JSON: {e}")))?;
        let list = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| KeyError::new(file, None, "no \"keys\" array (RFC 7517 §5)"))?;
        let mut set = KeySet::default();
        for (i, jwk) in list.iter().enumerate() {
            let key = Self::jwk_key(jwk, file, i)?;
            set.add(key, file)?;
        }
        Ok(set)
    }

    fn jwk_key(jwk: &serde_json::Value, file: &str, index: usize) -> Result<Key, KeyError> {
        let kid_owned = member(jwk, "kid").map(str::to_string);
        let label = kid_owned.clone().unwrap_or_else(|| format!("#{index}"));
        let kid = Some(label.as_str());
        if jwk.get("d").is_some() || jwk.get("p").is_some() || jwk.get("k").is_some() {
            return Err(KeyError::new(
                file,
                kid,
                "holds private or symmetric key material",
            ));
        }
        if let Some(u) = member(jwk, "use") {
            if u != "sig" {
                return Err(KeyError::new(
                    file,
                    kid,
                    format!("\"use\" is \"{u}\", not \"sig\""),
                ));
            }
        }
        let alg =
            match member(jwk, "alg") {
                None => None,
                Some(a) => Some(Alg::parse(a).ok_or_else(|| {
                    KeyError::new(file, kid, format!("alg \"{a}\" is not allowed"))
                })?),
            };
        let kty = member(jwk, "kty").ok_or_else(|| KeyError::new(file, kid, "missing \"kty\""))?;
        let crv = member(jwk, "crv");
        let kind = match (kty, crv) {
            ("OKP", Some("Ed25519")) => {
                let x = b64_member(file, kid, jwk, "x")?;
                KeyKind::Ed25519(
                    x.try_into()
                        .map_err(|_| KeyError::new(file, kid, "Ed25519 \"x\" is not 32 octets"))?,
                )
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (
                    b64_member(file, kid, jwk, "x")?,
                    b64_member(file, kid, jwk, "y")?,
                );
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::new(
                        file,
                        kid,
                        "P-256 coordinates must be 32 octets",
                    ));
                }
                let mut p = [0u8; 65];
                p[0] = 4;
                p[1..33].copy_from_slice(&x);
                p[33..].copy_from_slice(&y);
                check_p256_point(&p).map_err(|why| KeyError::new(file, kid, why))?;
                KeyKind::P256(p)
            }
            ("RSA", _) => KeyKind::rsa(
                file,
                kid,
                &b64_member(file, kid, jwk, "n")?,
                &b64_member(file, kid, jwk, "e")?,
            )?,
            (kty, crv) => {
                let what = crv.map_or_else(|| kty.to_string(), |c| format!("{kty}/{c}"));
                return Err(KeyError::new(
                    file,
                    kid,
                    format!("key type {what} is not supported (OKP/Ed25519, EC/P-256, RSA)"),
                ));
            }
        };
        if alg.is_some_and(|a| a != kind.alg()) {
            return Err(KeyError::new(
                file,
                kid,
                "\"alg\" does not match the key type",
            ));
        }
        Ok(Key::new(kid_owned, alg, kind))
    }

    /// Parses a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`); its kid is `kid`.
    pub fn pem_key(pem: &[u8], kid: &str, file: &str) -> Result<Key, KeyError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|_| KeyError::new(file, Some(kid), "not a PEM file"))?;
        if pem.label != "PUBLIC KEY" {
            return Err(KeyError::new(
                file,
                Some(kid),
                format!("PEM label is \"{}\", want \"PUBLIC KEY\"", pem.label),
            ));
        }
        let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
            .map_err(|_| KeyError::new(file, Some(kid), "not a SubjectPublicKeyInfo"))?;
        let oid = &spki.algorithm.algorithm;
        let bits = spki.subject_public_key.data.as_ref();
        let kind = if *oid == OID_SIG_ED25519 {
            KeyKind::Ed25519(
                bits.try_into()
                    .map_err(|_| KeyError::new(file, Some(kid), "Ed25519 key is not 32 octets"))?,
            )
        } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve.as_ref() != Some(&OID_EC_P256) {
                return Err(KeyError::new(file, Some(kid), "EC key is not on P-256"));
            }
            KeyKind::P256(bits.try_into().map_err(|_| {
                KeyError::new(file, Some(kid), "P-256 key is not an uncompressed point")
            })?)
        } else if *oid == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    KeyKind::rsa(file, Some(kid), rsa.modulus, rsa.exponent)?
                }
                _ => return Err(KeyError::new(file, Some(kid), "malformed RSA public key")),
            }
        } else {
            return Err(KeyError::new(
                file,
                Some(kid),
                format!("key algorithm {oid} is not supported"),
            ));
        };
        Ok(Key::new(Some(kid.to_string()), None, kind))
    }

    /// Loads a JWK set file plus PEM key files (each named by its file stem).
    pub fn load(jwks: Option<&Path>, pems: &[&Path]) -> Result<Self, KeyError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                KeyError::new(&p.display().to_string(), None, format!("cannot read: {e}"))
            })
        };
        let mut set = match jwks {
            Some(p) => Self::from_jwks(&read(p)?, &p.display().to_string())?,
            None => KeySet::default(),
        };
        for p in pems {
            let file = p.display().to_string();
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let key = Self::pem_key(&read(p)?, &stem, &file)?;
            set.add(key, &file)?;
        }
        if set.is_empty() {
            return Err(KeyError::new(
                "[auth]",
                None,
                "no verification keys configured",
            ));
        }
        Ok(set)
    }

    /// This set as a JWK set document.
    pub fn to_jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| k.kind.public_jwk(&k.kid))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1 has this thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let kind = KeyKind::Rsa {
            n: B64URL.decode(n).unwrap(),
            e: vec![1, 0, 1],
        };
        assert_eq!(
            kind.thumbprint().0,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn refuses_other_key_kinds_naming_file_and_kid() {
        let jwks = br#"{"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}"#;
        let e = KeySet::from_jwks(jwks, "jwks.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "jwks.json: key \"hmac\": holds private or symmetric key material"
        );
        let jwks = br#"{"keys":[{"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"}]}"#;
        let e = KeySet::from_jwks(jwks, "k.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.json: key \"p384\": key type EC/P-384 is not supported"),
            "{e}"
        );
        let jwks = br#"{"keys":[{"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"}]}"#;
        let e = KeySet::from_jwks(jwks, "k.json").unwrap_err();
        assert!(e.to_string().contains("RSA modulus of 17 bits"), "{e}");
    }

    #[test]
    fn unusable_keys_are_refused_at_load() {
        let zero = br#"{"keys":[{"kty":"RSA","kid":"r","n":"AA","e":"AQAB"}]}"#;
        assert_eq!(
            KeySet::from_jwks(zero, "j").unwrap_err().to_string(),
            "j: key \"r\": RSA modulus is zero"
        );
        let zeros = B64URL.encode([0u8; 32]);
        let off_curve = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"p","x":"{zeros}","y":"{zeros}"}}]}}"#
        );
        let e = KeySet::from_jwks(off_curve.as_bytes(), "j").unwrap_err();
        assert_eq!(
            e.to_string(),
            "j: key \"p\": P-256 point is not on the curve"
        );
    }

    #[test]
    fn kid_rules() {
        let k = |kid: &str, x: u8| Key::new(Some(kid.into()), None, KeyKind::Ed25519([x; 32]));
        let one = KeySet::new(vec![k("a", 1)]);
        assert_eq!(one.find(None).unwrap().kid, "a");
        let two = KeySet::new(vec![k("a", 1), k("b", 2)]);
        assert_eq!(two.find(None).unwrap_err(), TokenError::KidRequired);
        assert_eq!(two.find(Some("c")).unwrap_err(), TokenError::UnknownKid);
        let b = two.find(Some("b")).unwrap();
        assert!(two.accepts(b.binding_for(Some("b"))));
        assert!(
            !two.accepts(b.binding_for(None)),
            "two keys: a kid-less token no longer resolves"
        );
        assert!(one.accepts(one.keys()[0].binding_for(None)));
        let renamed = KeySet::new(vec![b.renamed("c")]);
        assert!(!renamed.accepts(b.binding_for(Some("b"))), "kid b is gone");
    }
}
