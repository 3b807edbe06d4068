//! The verifier the registrar calls per REGISTER: size limit, digest, cache, and only on a miss
//! the JWS decode, signature check and claims check.

use super::cache::{digest, CacheBound, Digest, FailureMemory, Found, TokenCache};
use super::claims::{Claims, CompactClaims, Policy};
use super::error::TokenError;
use super::jws::{self, MAX_TOKEN};
use super::keyset::KeySet;
use std::sync::Arc;

/// A token that passed, as the registrar needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedToken<'v> {
    pub claims: &'v CompactClaims,
    pub exp: u64,
    /// True when this came from the cache rather than a signature check.
    pub cached: bool,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Signature checks performed.
    pub verifications: u64,
    /// Tokens refused, by any path.
    pub failures: u64,
    /// Misses not verified because admission said no (overload).
    pub shed: u64,
}

/// Default size of the failure memory and how long a failure is remembered.
pub const FAILURE_MEMORY: usize = 1024;
pub const FAILURE_TTL_S: u64 = 60;

/// One core's verifier: the shared key set, the policy, and this core's cache.
#[derive(Debug)]
pub struct Verifier {
    keys: Arc<KeySet>,
    policy: Policy,
    cache: TokenCache,
    stats: VerifyStats,
}

impl Verifier {
    pub fn new(keys: Arc<KeySet>, policy: Policy, cache_entries: usize) -> Self {
        let leeway = policy.leeway_s;
        let failures = FailureMemory::new(FAILURE_MEMORY, FAILURE_TTL_S);
        Verifier::with_cache(
            keys,
            policy,
            TokenCache::new(cache_entries, leeway, failures),
        )
    }

    /// A core's verifier whose cache shares `bound` with the other cores' (the registrar's:
    /// `auth.cache_entries` bounds all cores together).
    pub fn sharing(keys: Arc<KeySet>, policy: Policy, bound: Arc<CacheBound>) -> Self {
        let leeway = policy.leeway_s;
        let failures = FailureMemory::new(FAILURE_MEMORY, FAILURE_TTL_S);
        Verifier::with_cache(keys, policy, TokenCache::sharing(bound, leeway, failures))
    }

    fn with_cache(keys: Arc<KeySet>, policy: Policy, cache: TokenCache) -> Self {
        Verifier {
            keys,
            policy,
            cache,
            stats: VerifyStats::default(),
        }
    }

    /// Verifies `token` at `now` (seconds since the epoch), whatever it costs.
    pub fn verify(&mut self, token: &[u8], now: u64) -> Result<VerifiedToken<'_>, TokenError> {
        self.verify_admitted(token, now, |_| true)
    }

    /// Verifies `token` at `now`, asking `admit` (with the token's SHA-256, which names this
    /// token's retries too) before a signature check, the only costly step: a cached token, a
    /// remembered failure and a token that does not even decode or names no known key are
    /// answered without asking. When `admit` says no the answer is
    /// [`TokenError::Shed`]: not judged, so never a challenge for a token that may be good.
    pub fn verify_admitted(
        &mut self,
        token: &[u8],
        now: u64,
        admit: impl FnOnce(&Digest) -> bool,
    ) -> Result<VerifiedToken<'_>, TokenError> {
        if token.len() > MAX_TOKEN {
            self.stats.failures += 1;
            return Err(TokenError::TooLarge);
        }
        let d = digest(token);
        match self.cache.lookup(&d, now, &self.keys) {
            Found::Slot(i) => {
                let (claims, exp) = self.cache.slot(i);
                return Ok(VerifiedToken {
                    claims,
                    exp,
                    cached: true,
                });
            }
            Found::Failed(e) => {
                self.stats.failures += 1;
                return Err(e);
            }
            Found::Miss => {}
        }
        match self.verify_uncached(token, now, || admit(&d)) {
            Ok((claims, binding)) => {
                let i = self
                    .cache
                    .insert(d, claims.exp, binding, CompactClaims::new(&claims));
                let (claims, exp) = self.cache.slot(i);
                Ok(VerifiedToken {
                    claims,
                    exp,
                    cached: false,
                })
            }
            Err(TokenError::Shed) => {
                self.stats.shed += 1;
                Err(TokenError::Shed)
            }
            Err(e) => {
                self.stats.failures += 1;
                self.cache.remember_failure(d, e, now);
                Err(e)
            }
        }
    }

    fn verify_uncached(
        &mut self,
        token: &[u8],
        now: u64,
        admit: impl FnOnce() -> bool,
    ) -> Result<(Claims, u64), TokenError> {
        let jws = jws::decode(token)?;
        let key = self.keys.find(jws.kid.as_deref())?;
        if !admit() {
            return Err(TokenError::Shed);
        }
        self.stats.verifications += 1;
        jws.verify(key)?;
        let claims = Claims::check(&jws.payload, &self.policy, now)?;
        Ok((claims, key.binding_for(jws.kid.as_deref())))
    }

    /// Replaces the key set (live reload): an entry stops matching at once when its kid no
    /// longer names the same key material, or its token had no kid and the set no longer holds
    /// exactly its one key.
    pub fn set_keys(&mut self, keys: Arc<KeySet>) {
        self.keys = keys;
        self.cache.keys_changed();
    }

    /// Replaces the policy; the cache is emptied because its entries passed the old one.
    pub fn set_policy(&mut self, policy: Policy) {
        if policy != self.policy {
            self.cache.clear();
            self.cache.set_leeway(policy.leeway_s);
        }
        self.policy = policy;
    }

    pub fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    pub fn cache_mut(&mut self) -> &mut TokenCache {
        &mut self.cache
    }

    pub fn stats(&self) -> VerifyStats {
        self.stats
    }
}
