//! Why a token was refused. Every variant makes the registrar answer 407 with
//! `error="invalid_token"`; the variant is what the log and the metrics say.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the token limit: refused before any decoding.
    TooLarge,
    /// Not three base64url segments separated by dots.
    Malformed,
    /// A segment that is not strict base64url (padding, white space, stray bits).
    BadBase64,
    /// The protected header is not the JSON object a JWS needs, or exceeds its limit.
    BadHeader,
    /// The header lists `crit` extensions; none are supported (RFC 7515 §4.1.11).
    Critical,
    /// `alg` is not EdDSA, ES256 or RS256 (`none` and `HS*` always land here).
    UnsupportedAlg,
    /// No key with this `kid`.
    UnknownKid,
    /// No `kid`, and the key set holds more than one key.
    KidRequired,
    /// The key named by `kid` is of another type than `alg`, or its JWK `alg` differs.
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The claims are not the JSON object expected, a claim has the wrong type, or a
    /// string claim exceeds its limit.
    BadClaims,
    /// No `exp` claim.
    MissingExp,
    /// No `sub` claim.
    MissingSub,
    /// `now` is past `exp` plus the leeway.
    Expired,
    /// `now` is before `nbf` minus the leeway.
    NotYetValid,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    WrongAudience,
    /// Not in the cache, and the verifier is shedding new verifications (overload): the
    /// token was not judged; the registrar answers 503 with Retry-After.
    Shed,
}

impl TokenError {
    /// A short description for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "token too large",
            TokenError::Malformed => "not a JWS compact serialisation",
            TokenError::BadBase64 => "invalid base64url",
            TokenError::BadHeader => "invalid JWS header",
            TokenError::Critical => "unsupported critical header",
            TokenError::UnsupportedAlg => "algorithm not allowed",
            TokenError::UnknownKid => "unknown kid",
            TokenError::KidRequired => "kid required",
            TokenError::KeyMismatch => "key type does not match alg",
            TokenError::BadSignature => "bad signature",
            TokenError::BadClaims => "invalid claims",
            TokenError::MissingExp => "no exp claim",
            TokenError::MissingSub => "no sub claim",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not yet valid",
            TokenError::WrongIssuer => "wrong issuer",
            TokenError::WrongAudience => "wrong audience",
            TokenError::Shed => "not verified: overloaded",
        }
    }

    /// True when the outcome depends only on the token bytes and the key set, not on the
    /// clock: such failures may be remembered until the key set changes.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, TokenError::NotYetValid | TokenError::Shed)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

/// A key file or key set that cannot be used, naming the file and the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    pub file: String,
    pub kid: Option<String>,
    pub reason: String,
}

impl KeyError {
    pub(crate) fn new(file: &str, kid: Option<&str>, reason: impl Into<String>) -> Self {
        KeyError {
            file: file.to_string(),
            kid: kid.map(str::to_string),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "{}: key \"{kid}\": {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl std::error::Error for KeyError {}
