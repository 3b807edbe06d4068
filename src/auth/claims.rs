//! Token claims (RFC 7519 §4.1 plus Cisco's `lines` and `dev`), checked against `now`, and the
//! compact form the verified-token cache keeps of them.

use super::error::TokenError;
use super::jose::{is_object, json_depth_ok, MAX_JSON_DEPTH};
use serde::Deserialize;
use smallvec::SmallVec;

/// Longest `sub`, `dev` or line number accepted, and most `lines`.
pub const MAX_CLAIM_STRING: usize = 128;
pub const MAX_LINES: usize = 32;

/// What the registrar checks claims against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, `aud` (a string or an array) must contain it.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims as sent. Types are strict: `exp` must be an integer NumericDate, `lines` an
/// array of strings. Unknown claims are ignored; a repeated claim is an error.
#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    #[allow(dead_code)]
    iat: Option<u64>,
    iss: Option<String>,
    aud: Option<Audience>,
    lines: Option<Vec<String>>,
    dev: Option<String>,
}

/// Checked claims: what a REGISTER is authorised against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub lines: Vec<String>,
    pub dev: Option<String>,
}

impl Claims {
    /// Parses `payload` and checks it against `policy` at `now` (seconds since the epoch).
    pub fn check(payload: &[u8], policy: &Policy, now: u64) -> Result<Claims, TokenError> {
        if !is_object(payload) || !json_depth_ok(payload, MAX_JSON_DEPTH) {
            return Err(TokenError::BadClaims);
        }
        let raw: RawClaims = serde_json::from_slice(payload).map_err(|_| TokenError::BadClaims)?;
        let exp = raw.exp.ok_or(TokenError::MissingExp)?;
        let sub = raw.sub.ok_or(TokenError::MissingSub)?;
        let lines = raw.lines.unwrap_or_default();
        let too_long = |s: &str| s.is_empty() || s.len() > MAX_CLAIM_STRING;
        if too_long(&sub)
            || raw.dev.as_deref().is_some_and(too_long)
            || lines.len() > MAX_LINES
            || lines.iter().any(|l| too_long(l))
        {
            return Err(TokenError::BadClaims);
        }
        if let Some(want) = &policy.issuer {
            if raw.iss.as_deref() != Some(want.as_str()) {
                return Err(TokenError::WrongIssuer);
            }
        }
        if let Some(want) = &policy.audience {
            let ok = match &raw.aud {
                Some(Audience::One(a)) => a == want,
                Some(Audience::Many(v)) => v.iter().any(|a| a == want),
                None => false,
            };
            if !ok {
                return Err(TokenError::WrongAudience);
            }
        }
        if raw
            .nbf
            .is_some_and(|nbf| now.saturating_add(policy.leeway_s) < nbf)
        {
            return Err(TokenError::NotYetValid);
        }
        if now >= exp.saturating_add(policy.leeway_s) {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            sub,
            exp,
            lines,
            dev: raw.dev,
        })
    }
}

/// `sub`, `dev` and `lines` packed into one inline buffer: `[len] sub [len|0xFF] dev
/// ([len] line)*`. 56 octets inline cover Jabber's claims; longer ones spill to the heap.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactClaims {
    buf: SmallVec<[u8; 56]>,
}

const NO_DEV: u8 = 0xFF;

impl CompactClaims {
    pub fn new(c: &Claims) -> Self {
        let mut buf = SmallVec::new();
        // Lengths fit a u8: MAX_CLAIM_STRING is below NO_DEV.
        buf.push(c.sub.len() as u8);
        buf.extend_from_slice(c.sub.as_bytes());
        match &c.dev {
            Some(d) => {
                buf.push(d.len() as u8);
                buf.extend_from_slice(d.as_bytes());
            }
            None => buf.push(NO_DEV),
        }
        for l in &c.lines {
            buf.push(l.len() as u8);
            buf.extend_from_slice(l.as_bytes());
        }
        CompactClaims { buf }
    }

    fn field(&self, at: usize) -> (Option<&[u8]>, usize) {
        let len = self.buf[at];
        if len == NO_DEV {
            return (None, at + 1);
        }
        let end = at + 1 + usize::from(len);
        (Some(&self.buf[at + 1..end]), end)
    }

    pub fn sub(&self) -> &[u8] {
        self.field(0).0.unwrap_or_default()
    }

    pub fn dev(&self) -> Option<&[u8]> {
        let (_, after_sub) = self.field(0);
        self.field(after_sub).0
    }

    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let (_, after_sub) = self.field(0);
        let (_, mut at) = self.field(after_sub);
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let (v, next) = self.field(at);
            at = next;
            v
        })
    }

    /// True when the token covers `user` (the To-URI user part): it is `sub` or a line.
    pub fn covers_user(&self, user: &[u8]) -> bool {
        self.sub() == user || self.lines().any(|l| l == user)
    }

    /// True when the token allows `device` (the Contact's device name): always when the token
    /// names no `dev`; else only that device.
    pub fn covers_device(&self, device: Option<&[u8]>) -> bool {
        match self.dev() {
            None => true,
            Some(d) => device == Some(d),
        }
    }

    /// Heap octets beyond the inline buffer (0 for typical claims).
    pub fn spilled(&self) -> usize {
        if self.buf.spilled() {
            self.buf.capacity()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str, now: u64) -> Result<Claims, TokenError> {
        let p = Policy {
            issuer: Some("ucm".into()),
            audience: Some("ccmsipline".into()),
            leeway_s: 30,
        };
        Claims::check(json.as_bytes(), &p, now)
    }

    #[test]
    fn time_and_policy_checks() {
        let ok = r#"{"sub":"1010","exp":1000,"nbf":500,"iss":"ucm","aud":["x","ccmsipline"],"lines":["1010","1011"],"dev":"CSFrado"}"#;
        assert!(claims(ok, 600).is_ok());
        assert_eq!(claims(ok, 1029).map(|c| c.exp), Ok(1000), "within leeway");
        assert_eq!(claims(ok, 1030), Err(TokenError::Expired));
        assert_eq!(claims(ok, 469), Err(TokenError::NotYetValid));
        assert_eq!(
            claims(r#"{"sub":"a","iss":"ucm","aud":"ccmsipline"}"#, 0),
            Err(TokenError::MissingExp)
        );
        assert_eq!(
            claims(r#"{"exp":9,"iss":"ucm","aud":"ccmsipline"}"#, 0),
            Err(TokenError::MissingSub)
        );
        assert_eq!(
            claims(r#"{"sub":"a","exp":9,"iss":"x","aud":"ccmsipline"}"#, 0),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            claims(r#"{"sub":"a","exp":9,"iss":"ucm","aud":"x"}"#, 0),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            claims(r#"{"sub":"a","exp":9.5,"iss":"ucm","aud":"ccmsipline"}"#, 0),
            Err(TokenError::BadClaims)
        );
        assert_eq!(
            claims(r#"{"sub":"a","sub":"b","exp":9}"#, 0),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn compact_claims_round_trip_inline() {
        let c = Claims {
            sub: "1010".into(),
            exp: 9,
            lines: vec!["1010".into(), "1011".into()],
            dev: Some("CSFrado".into()),
        };
        let k = CompactClaims::new(&c);
        assert_eq!(k.sub(), b"1010");
        assert_eq!(k.dev(), Some(&b"CSFrado"[..]));
        assert_eq!(k.lines().collect::<Vec<_>>(), [&b"1010"[..], b"1011"]);
        assert!(k.covers_user(b"1011") && !k.covers_user(b"1012"));
        assert!(k.covers_device(Some(b"CSFrado")) && !k.covers_device(None));
        assert_eq!(k.spilled(), 0);
        let open = CompactClaims::new(&Claims {
            dev: None,
            lines: vec![],
            ..c
        });
        assert!(open.covers_device(None) && open.covers_device(Some(b"any")));
        assert_eq!(open.lines().count(), 0);
    }
}
