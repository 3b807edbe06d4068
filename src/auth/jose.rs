//! The JOSE ground the token code stands on (RFC 7515, RFC 7518): the algorithms allowed,
//! strict base64url, and the JSON shape checks made before serde sees a header or claims set.
//! JWS decoding, key sets and claims all import from here; nothing here imports them.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

/// base64url without padding; padding, white space and non-zero trailing bits are errors.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The signature algorithms regstorm accepts. `none`, `HS*`, and everything else are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA P-256 with SHA-256, signature as raw r||s (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys.
    RS256,
}

impl Alg {
    /// The allowed algorithm named `name`.
    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "EdDSA" => Some(Alg::EdDSA),
            "ES256" => Some(Alg::ES256),
            "RS256" => Some(Alg::RS256),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
        }
    }
}

/// True when `json` is a JSON object (RFC 7515 §4 and RFC 7519 §7.2 require one; serde's
/// derive would also take an array for a struct).
pub(crate) fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Deepest nesting of arrays and objects accepted in a JWS header or claims set. Real tokens
/// need 2; serde_json skips unknown members without recursing, so this bound is the guard.
pub const MAX_JSON_DEPTH: usize = 8;

/// True when no array or object in `json` nests deeper than `max` (strings are skipped).
pub(crate) fn json_depth_ok(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn strict_base64url() {
        assert_eq!(B64URL.decode("e30").unwrap(), b"{}");
        assert!(B64URL.decode("e30=").is_err(), "padding");
        assert!(B64URL.decode("e3 0").is_err(), "white space");
        assert!(B64URL.decode("e31").is_err(), "non-zero trailing bits");
        assert!(B64URL.decode("e3+/").is_err(), "standard alphabet");
    }

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert!(json_depth_ok(br#"{"a":[["x"]]}"#, 3));
        assert!(!json_depth_ok(br#"{"a":[["x"]]}"#, 2));
        assert!(json_depth_ok(br#"{"a":"[[[[[[\"[[["}"#, 1));
        assert!(!json_depth_ok(&[b'['; 9], 8));
    }
}
