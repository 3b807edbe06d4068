//! OAuth bearer tokens, sans-IO: every check takes `now`. JWS compact verification with ring
//! (EdDSA, ES256, RS256 only), key sets, claims, a verified-token cache, minting, and the
//! Bearer challenge. Bearer credentials themselves are read by the wire layer
//! ([`crate::sip::Message::bearer`]).

mod cache;
mod challenge;
mod claims;
mod error;
mod jose;
mod jws;
mod keyset;
mod mint;
mod verify;

pub use cache::{digest, CacheBound, CacheStats, Digest, FailureMemory, Found, Lookup, TokenCache};
pub use challenge::{realm_is_valid, write_challenge};
pub use claims::{Claims, CompactClaims, Policy, MAX_CLAIM_STRING, MAX_LINES};
pub use error::{KeyError, TokenError};
pub use jose::{Alg, MAX_JSON_DEPTH};
pub use jws::{decode, Jws, MAX_CLAIMS_B64, MAX_HEADER_B64, MAX_SIGNATURE_B64, MAX_TOKEN};
pub use keyset::{Key, KeyKind, KeySet};
pub use mint::{generate_pkcs8, pem_encode, Signer, TokenClaims};
pub use verify::{VerifiedToken, Verifier, VerifyStats, FAILURE_MEMORY, FAILURE_TTL_S};
