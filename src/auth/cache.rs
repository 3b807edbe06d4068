//! The verified-token cache: a token's signature is checked once, then its SHA-256 digest finds
//! the claims the registrar needs. Bounded, evicting with CLOCK; expiry and key withdrawal are
//! checked at every lookup, so the cache never turns a failed, expired or orphaned token into a
//! pass.
//!
//! Why CLOCK: a Jabber token is presented every re-registration (about every 2 minutes) for
//! three quarters of its life, then replaced and never seen again. CLOCK's reference bit keeps
//! every token in use (each is hit again well within one sweep of the hand) and lets replaced
//! tokens fall out first, like LRU, but a hit is one bit store instead of a list move.
//! S3-FIFO's guard against one-hit scans buys nothing here: every verified token is a
//! device's working token.
//!
//! Memory: a slot is 112 octets (digest 32, exp 4, flags 2, key binding 8, 64 for the inline
//! claims)
//! and the index 5 to 10.5 (a `u32` slot number plus a control byte per bucket, buckets a power
//! of two at most 7/8 full); measured at 1,000,000 entries: see examples/cache_memory.rs.
//! Claims that do not fit inline spill to the heap.

use super::claims::CompactClaims;
use super::error::TokenError;
#[allow(unused_imports)] // named in docs
use super::keyset::Key;
use super::keyset::KeySet;
use hashbrown::HashTable;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// SHA-256 of the token bytes.
pub type Digest = [u8; 32];

#[derive(Debug)]
struct Slot {
    digest: Digest,
    /// Seconds since the epoch; a later `exp` than 2106 is stored as `u32::MAX`.
    exp: u32,
    referenced: bool,
    live: bool,
    /// The key binding the token verified under ([`KeySet::accepts`]).
    binding: u64,
    claims: CompactClaims,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'c> {
    /// These exact token bytes verified before, the key is still there, and `now` is before
    /// `exp` plus the leeway.
    Hit {
        claims: &'c CompactClaims,
        exp: u64,
    },
    /// These bytes failed recently, for this reason (see [`FailureMemory`]).
    Failed(TokenError),
    Miss,
}

/// What [`TokenCache::lookup`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Slot(u32),
    Failed(TokenError),
    Miss,
}

/// Lookup counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub failure_hits: u64,
    pub evictions: u64,
    pub expired: u64,
    pub orphaned: u64,
}

/// Recent failures, so a flood of one bad token costs one verification. Small (`capacity`
/// entries, oldest overwritten), each remembered for `ttl_s`, and cleared whenever the key set
/// changes (a token that failed for an unknown kid may verify after a rotation). Failures that
/// depend on the clock (`nbf`) are not remembered.
#[derive(Debug)]
pub struct FailureMemory {
    ring: Vec<(Digest, TokenError, u64)>,
    next: usize,
    capacity: usize,
    ttl_s: u64,
}

impl FailureMemory {
    pub fn new(capacity: usize, ttl_s: u64) -> Self {
        FailureMemory {
            ring: Vec::with_capacity(capacity.min(4096)),
            next: 0,
            capacity,
            ttl_s,
        }
    }

    fn get(&self, digest: &Digest, now: u64) -> Option<TokenError> {
        self.ring
            .iter()
            .find(|(d, _, until)| d == digest && now < *until)
            .map(|(_, e, _)| *e)
    }

    fn remember(&mut self, digest: Digest, error: TokenError, now: u64) {
        if self.capacity == 0 || !error.is_permanent() {
            return;
        }
        let entry = (digest, error, now.saturating_add(self.ttl_s));
        if self.ring.len() < self.capacity {
            self.ring.push(entry);
        } else {
            self.ring[self.next] = entry;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.next = 0;
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// One bound on the entries of several caches together (`auth.cache_entries` is the bound of
/// all cores): a core whose connections carry more devices than its even share holds more
/// tokens, instead of evicting tokens still in use while another core's cache stands half
/// empty. A Jabber fleet re-registers cyclically, so a cache even a little smaller than its
/// core's devices misses on every re-registration (CLOCK, like LRU, evicts each token just
/// before its next use): with 1,000,000 MRA devices split 55/45 over two cores, per-core
/// halves re-verified a tenth of the fleet in a storm and would re-verify a core's whole share
/// every cycle after it.
///
/// The count is checked, then taken, without a lock: cores racing for the last places may
/// overshoot the bound by at most one entry each.
#[derive(Debug)]
pub struct CacheBound {
    limit: usize,
    live: AtomicUsize,
}

impl CacheBound {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(CacheBound {
            limit: limit.max(1),
            live: AtomicUsize::new(0),
        })
    }

    /// Entries held by all the caches under this bound.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn has_room(&self) -> bool {
        self.live() < self.limit
    }

    fn add(&self, n: usize) {
        self.live.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.live.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A bounded map from token digest to verified claims (one per core: a device's connection
/// stays on one core), bounded alone or with the other cores' caches ([`CacheBound`]).
#[derive(Debug)]
pub struct TokenCache {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    hand: usize,
    /// Entries at most in this cache alone (with a shared bound, the bound decides).
    capacity: usize,
    bound: Option<Arc<CacheBound>>,
    leeway_s: u64,
    failures: FailureMemory,
    stats: CacheStats,
}

#[inline]
fn hash(d: &Digest) -> u64 {
    // The digest is uniformly distributed: its first eight octets are the hash.
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// SHA-256 of `token`.
pub fn digest(token: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Index buckets reserved up front; doubling from here to the bound costs a few rehashes.
const INITIAL_INDEX: usize = 1024;

impl TokenCache {
    /// A cache of at most `capacity` tokens; `leeway_s` extends `exp` as the verifier does.
    pub fn new(capacity: usize, leeway_s: u64, failures: FailureMemory) -> Self {
        TokenCache {
            // The index grows with use: a small population stays in a few cache lines and
            // pages instead of being scattered over a table sized for the bound.
            index: HashTable::with_capacity(capacity.min(INITIAL_INDEX)),
            slots: Vec::with_capacity(capacity.min(1 << 20)),
            free: Vec::new(),
            hand: 0,
            capacity: capacity.max(1),
            bound: None,
            leeway_s,
            failures,
            stats: CacheStats::default(),
        }
    }

    /// A cache that shares `bound` with other cores' caches: it may hold up to the whole
    /// bound while the others hold little, and evicts its own entries when all are full.
    pub fn sharing(bound: Arc<CacheBound>, leeway_s: u64, failures: FailureMemory) -> Self {
        let mut cache = TokenCache::new(bound.limit(), leeway_s, failures);
        cache.bound = Some(bound);
        cache
    }

    /// May one more entry be added without evicting one? (A shared bound counts this cache's
    /// entries too.)
    fn has_room(&self) -> bool {
        match &self.bound {
            Some(b) => b.has_room(),
            None => self.len() < self.capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn find(&self, d: &Digest) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash(d), |&i| slots[i as usize].digest == *d)
            .copied()
    }

    fn remove_slot(&mut self, i: u32) {
        let d = self.slots[i as usize].digest;
        let slots = &self.slots;
        if let Ok(e) = self
            .index
            .find_entry(hash(&d), |&j| slots[j as usize].digest == d)
        {
            e.remove();
        }
        let s = &mut self.slots[i as usize];
        s.live = false;
        s.claims = CompactClaims::default();
        self.free.push(i);
        if let Some(b) = &self.bound {
            b.sub(1);
        }
    }

    /// Looks `digest` up at `now` against the current key set.
    pub fn get(&mut self, digest: &Digest, now: u64, keys: &KeySet) -> Lookup<'_> {
        match self.lookup(digest, now, keys) {
            Found::Slot(i) => {
                let s = &self.slots[i as usize];
                Lookup::Hit {
                    claims: &s.claims,
                    exp: u64::from(s.exp),
                }
            }
            Found::Failed(e) => Lookup::Failed(e),
            Found::Miss => Lookup::Miss,
        }
    }

    /// As [`TokenCache::get`], answering with a slot number for [`TokenCache::slot`], so a
    /// caller can decide what to do without holding a borrow of the cache.
    pub fn lookup(&mut self, digest: &Digest, now: u64, keys: &KeySet) -> Found {
        let Some(i) = self.find(digest) else {
            if let Some(e) = self.failures.get(digest, now) {
                self.stats.failure_hits += 1;
                return Found::Failed(e);
            }
            self.stats.misses += 1;
            return Found::Miss;
        };
        let slot = &mut self.slots[i as usize];
        // MUST: an expired entry or one whose key left the set is a miss right here, not only
        // when a sweep would have found it.
        let expired = now >= u64::from(slot.exp).saturating_add(self.leeway_s);
        if expired || !keys.accepts(slot.binding) {
            if expired {
                self.stats.expired += 1;
            } else {
                self.stats.orphaned += 1;
            }
            self.stats.misses += 1;
            self.remove_slot(i);
            return Found::Miss;
        }
        slot.referenced = true;
        self.stats.hits += 1;
        Found::Slot(i)
    }

    /// The claims and `exp` in slot `i`, as returned by [`TokenCache::lookup`] or
    /// [`TokenCache::insert`].
    pub fn slot(&self, i: u32) -> (&CompactClaims, u64) {
        let s = &self.slots[i as usize];
        (&s.claims, u64::from(s.exp))
    }

    /// Remembers that `digest` verified under key binding `binding` ([`Key::binding_for`]) with
    /// these claims; returns its slot.
    pub fn insert(&mut self, digest: Digest, exp: u64, binding: u64, claims: CompactClaims) -> u32 {
        let exp = u32::try_from(exp).unwrap_or(u32::MAX);
        if let Some(i) = self.find(&digest) {
            let s = &mut self.slots[i as usize];
            (s.exp, s.binding, s.claims, s.referenced) = (exp, binding, claims, true);
            return i;
        }
        let slot = Slot {
            digest,
            exp,
            binding,
            referenced: false,
            live: true,
            claims,
        };
        // Full (this cache, or all under the shared bound): evict one of this cache's own
        // entries. A cache with none to evict takes the place anyway (the bound's overshoot is
        // then this one entry).
        let i = if !self.has_room() && !self.is_empty() {
            let i = self.evict();
            self.slots[i as usize] = slot;
            i
        } else if let Some(i) = self.free.pop() {
            self.slots[i as usize] = slot;
            i
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        if let Some(b) = &self.bound {
            b.add(1);
        }
        let slots = &self.slots;
        self.index
            .insert_unique(hash(&digest), i, |&j| hash(&slots[j as usize].digest));
        i
    }

    /// CLOCK: advance the hand, clearing reference bits, until an unreferenced slot is found.
    fn evict(&mut self) -> u32 {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let s = &mut self.slots[i];
            if s.live && s.referenced {
                s.referenced = false;
                continue;
            }
            if s.live {
                self.stats.evictions += 1;
                self.remove_slot(i as u32);
            }
            // The slot is free now; take it back from the free list.
            if let Some(pos) = self.free.iter().rposition(|&f| f as usize == i) {
                self.free.swap_remove(pos);
            }
            return i as u32;
        }
    }

    /// Records a failed verification (see [`FailureMemory`]).
    pub fn remember_failure(&mut self, digest: Digest, error: TokenError, now: u64) {
        self.failures.remember(digest, error, now);
    }

    /// The leeway applied to `exp` at lookup (follows the verifier's policy).
    pub fn set_leeway(&mut self, leeway_s: u64) {
        self.leeway_s = leeway_s;
    }

    /// The key set changed: forget failures. Entries of withdrawn keys are dropped lazily, at
    /// their next lookup, by their key id.
    pub fn keys_changed(&mut self) {
        self.failures.clear();
    }

    /// Drops every entry (when the issuer or audience policy changes).
    pub fn clear(&mut self) {
        if let Some(b) = &self.bound {
            b.sub(self.len());
        }
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.hand = 0;
        self.failures.clear();
    }

    /// Removes expired entries, returning how many (for a low-priority background sweep; lookups
    /// do not depend on it).
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.live && now >= u64::from(s.exp).saturating_add(self.leeway_s) {
                self.remove_slot(i as u32);
                n += 1;
            }
        }
        n
    }

    /// Octets per slot, for reports.
    pub const SLOT_BYTES: usize = size_of::<Slot>();
}

impl Drop for TokenCache {
    fn drop(&mut self) {
        // A core that stops gives its places back to the others.
        if let Some(b) = &self.bound {
            b.sub(self.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_fits_the_memory_goal() {
        // Goal: at most 128 octets per entry, index included (5 to 10.5 octets a slot).
        let slot = TokenCache::SLOT_BYTES;
        assert!(slot as f64 + 10.5 <= 128.0, "slot is {slot} octets");
    }
}
