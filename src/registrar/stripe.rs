//! One stripe of the binding table: a slab of [`Slot`]s (56 octets each, plus one heap blob),
//! the AOR index, the bindings of each connection as an intrusive list through the slots, the
//! interners, and expiry bucketed by second. A stripe knows no locks; [`super::table`] wraps
//! each in a `Mutex` and picks one by a keyed hash of the canonical AOR.

use super::contact::{put_len, render, take_len, CompactContact, Spans};
use super::interner::Interner;
use crate::config::ListenerKind;
use crate::sip::{scan, Aor};
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Identifies the connection a binding was learnt on (unique per process).
pub type ConnId = u64;

/// One binding as the admin endpoint shows it (`/bindings/{aor}`, CONTRACT "Admin endpoints").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BindingInfo {
    /// The contact as listed in a 200 OK, without `;expires=`.
    pub contact: String,
    /// `+sip.instance`, as received.
    pub instance: Option<String>,
    /// Cisco device name.
    pub device: Option<String>,
    /// Seconds left.
    pub expires_in: u64,
    /// The listener kind it came on (`oauth`, `mra`, `tcp`, `udp`).
    pub listener: &'static str,
    /// Path values (RFC 3327), comma-joined.
    pub path: Option<String>,
}

/// Whether two contacts are the same: the same instance when both have one (RFC 5626 §6),
/// else the same URI.
fn same_contact(
    uri: &[u8],
    instance: Option<&[u8]>,
    other_uri: &[u8],
    other_instance: Option<&[u8]>,
) -> bool {
    match (instance, other_instance) {
        (Some(a), Some(b)) => a == b,
        _ => uri == other_uri,
    }
}

/// "No slot" in the links; "no Path".
const NONE: u32 = u32::MAX;

/// Flags octet of a blob: the listener kind (bits 0-1), a Path id follows (bit 2), the AOR's
/// scheme (bits 3-4: `sip:`, `sips:`, none).
const LISTENER_BITS: u8 = 0b11;
const HAS_PATH: u8 = 0b100;
const SCHEME_SHIFT: u8 = 3;

/// A canonical AOR as the key is stored: scheme, user part, and the rest (`@`, host, port),
/// which most AORs of a registrar share and is interned. The three give the AOR back, so two
/// AORs are equal exactly when their keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AorKey<'a> {
    scheme: u8,
    user: &'a [u8],
    tail: &'a [u8],
}

impl<'a> AorKey<'a> {
    pub(super) fn new(aor: &'a [u8]) -> Self {
        let (scheme, rest) = if let Some(r) = aor.strip_prefix(b"sips:") {
            (1, r)
        } else if let Some(r) = aor.strip_prefix(b"sip:") {
            (0, r)
        } else {
            (2, aor)
        };
        match memchr::memrchr(b'@', rest) {
            Some(at) => AorKey {
                scheme,
                user: &rest[..at],
                tail: &rest[at..],
            },
            None => AorKey {
                scheme,
                user: b"",
                tail: rest,
            },
        }
    }

    /// Keyed: clients choose AORs. Picks the stripe (see `Bindings::lane` in
    /// [`super::table`]) and the bucket.
    pub(super) fn hash(&self, hasher: &RandomState) -> u64 {
        let mut h = hasher.build_hasher();
        h.write_u8(self.scheme);
        h.write_usize(self.user.len());
        h.write(self.user);
        h.write(self.tail);
        h.finish()
    }
}

/// One binding: 56 octets here, the rest in `blob`.
#[derive(Debug)]
struct Slot {
    /// Empty for a free slot. Else: the flags octet, the Path id (4 octets, when flagged), the
    /// AOR's interned tail (LEB128 id), its user part (LEB128 length, octets), then the
    /// contact's hole values.
    blob: Box<[u8]>,
    /// Keyed hash of the Call-ID.
    call_id: u64,
    conn: ConnId,
    /// Contact template (interned).
    template: u32,
    /// Absolute expiry, epoch seconds.
    expires_at: u32,
    cseq: u32,
    /// Bindings on the same connection.
    conn_prev: u32,
    conn_next: u32,
    /// The AOR's next binding, in the order a 200 OK lists them; the free list for free slots.
    aor_next: u32,
}

/// A slot's blob, read.
#[derive(Clone, Copy, Debug)]
struct Parts<'a> {
    flags: u8,
    path: u32,
    tail: u32,
    user: &'a [u8],
    holes: &'a [u8],
}

impl Parts<'_> {
    fn listener(&self) -> ListenerKind {
        match self.flags & LISTENER_BITS {
            0 => ListenerKind::Oauth,
            1 => ListenerKind::Mra,
            2 => ListenerKind::Tcp,
            _ => ListenerKind::Udp,
        }
    }

    fn scheme(&self) -> u8 {
        self.flags >> SCHEME_SHIFT
    }
}

impl Slot {
    fn is_free(&self) -> bool {
        self.blob.is_empty()
    }

    fn parts(&self) -> Parts<'_> {
        let flags = self.blob[0];
        let mut rest = &self.blob[1..];
        let mut path = NONE;
        if flags & HAS_PATH != 0 {
            path = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            rest = &rest[4..];
        }
        let (tail, rest) = take_len(rest);
        let (n, rest) = take_len(rest);
        Parts {
            flags,
            path,
            tail: tail as u32,
            user: &rest[..n],
            holes: &rest[n..],
        }
    }
}

fn listener_code(l: ListenerKind) -> u8 {
    match l {
        ListenerKind::Oauth => 0,
        ListenerKind::Mra => 1,
        ListenerKind::Tcp => 2,
        ListenerKind::Udp => 3,
    }
}

fn blob(
    listener: ListenerKind,
    path: u32,
    scheme: u8,
    tail: u32,
    user: &[u8],
    holes: &[u8],
) -> Box<[u8]> {
    let mut b = Vec::with_capacity(12 + user.len() + holes.len());
    let has_path = if path == NONE { 0 } else { HAS_PATH };
    b.push(listener_code(listener) | has_path | scheme << SCHEME_SHIFT);
    if path != NONE {
        b.extend_from_slice(&path.to_le_bytes());
    }
    put_len(&mut b, tail as usize);
    put_len(&mut b, user.len());
    b.extend_from_slice(user);
    b.extend_from_slice(holes);
    b.into_boxed_slice()
}

/// Connection ids come from the runtime, not from clients: a multiplicative mix is enough.
fn conn_hash(conn: ConnId) -> u64 {
    crate::mix::splitmix64(conn)
}

fn expiry_of(now: u64, granted: u32) -> u32 {
    // Epoch seconds fit a u32 until 2106; a grant reaching past that is kept until then.
    now.saturating_add(u64::from(granted))
        .min(u64::from(u32::MAX)) as u32
}

#[derive(Debug)]
pub(super) struct Stripe {
    /// The first binding of each AOR, by [`AorKey::hash`].
    index: HashTable<u32>,
    slots: Vec<Slot>,
    /// Free slots, linked through `aor_next`.
    free: u32,
    /// The first binding of each connection, by `conn_hash`.
    conns: HashTable<u32>,
    pub(super) templates: Interner,
    pub(super) paths: Interner,
    /// AOR tails (`@host:port`).
    pub(super) tails: Interner,
    /// Slots by expiry second; an entry is stale when the slot expires later or is free.
    expiry: BTreeMap<u32, Vec<u32>>,
    /// Rendered contacts of the AOR being registered.
    scratch: Vec<u8>,
}

/// One REGISTER's changes, checked and applied under one stripe lock.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    pub aor: &'a Aor,
    pub call_id: &'a [u8],
    pub cseq: u32,
    pub conn: ConnId,
    pub listener: ListenerKind,
    /// Path values, comma-joined.
    pub path: Option<&'a [u8]>,
    /// `Contact: *` (checked alone and with Expires: 0 by the caller).
    pub wildcard: bool,
    pub contacts: &'a [Planned<'a>],
    pub max_contacts: usize,
}

/// One Contact of a REGISTER.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    pub uri: &'a [u8],
    pub instance: Option<&'a [u8]>,
    /// Seconds granted (0 removes); `None` when below `min_expires` (423 if reached).
    pub granted: Option<u32>,
    pub contact: CompactContact,
}

/// Why a REGISTER was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An expires below the minimum (423).
    TooBrief,
    /// RFC 3261 §10.3 step 7: a CSeq not above the stored one on the same Call-ID (500).
    Stale,
    /// More contacts than `max_contacts` after the changes (503).
    TooMany,
}

/// A binding of the list a REGISTER leaves: one already stored, or one to write.
#[derive(Clone, Copy, Debug)]
enum After {
    Keep(u32),
    /// Contact `planned` replaces slot `slot` (or is new).
    Write {
        slot: Option<u32>,
        planned: usize,
    },
}

impl Stripe {
    pub(super) fn new() -> Self {
        Stripe {
            index: HashTable::new(),
            slots: Vec::new(),
            free: NONE,
            conns: HashTable::new(),
            templates: Interner::default(),
            paths: Interner::default(),
            tails: Interner::default(),
            expiry: BTreeMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The AOR's key as slot `s` stores it.
    fn key(&self, s: u32) -> AorKey<'_> {
        let p = self.slots[s as usize].parts();
        AorKey {
            scheme: p.scheme(),
            user: p.user,
            tail: self.tails.get(p.tail),
        }
    }

    /// The first binding of the AOR.
    fn head(&self, h: u64, key: &AorKey<'_>, hasher: &RandomState) -> Option<u32> {
        let tail = self.tails.find(key.tail, hasher)?;
        let slots = &self.slots;
        self.index
            .find(h, |&s| {
                let p = slots[s as usize].parts();
                p.tail == tail && p.user == key.user && p.scheme() == key.scheme
            })
            .copied()
    }

    /// The AOR's bindings in order, expired ones included.
    fn chain(&self, head: Option<u32>) -> SmallVec<[u32; 4]> {
        let mut out = SmallVec::new();
        let mut s = head.unwrap_or(NONE);
        while s != NONE {
            out.push(s);
            s = self.slots[s as usize].aor_next;
        }
        out
    }

    pub(super) fn next_due(&self) -> u32 {
        self.expiry
            .first_key_value()
            .map_or(u32::MAX, |(&at, _)| at)
    }

    fn alloc(&mut self, slot: Slot) -> u32 {
        if self.free == NONE {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        } else {
            let s = self.free;
            self.free = self.slots[s as usize].aor_next;
            self.slots[s as usize] = slot;
            s
        }
    }

    fn conn_link(&mut self, s: u32) {
        let conn = self.slots[s as usize].conn;
        let h = conn_hash(conn);
        let Stripe { conns, slots, .. } = self;
        let old = match conns.find_mut(h, |&o| slots[o as usize].conn == conn) {
            Some(head) => std::mem::replace(head, s),
            None => {
                conns.insert_unique(h, s, |&o| conn_hash(slots[o as usize].conn));
                NONE
            }
        };
        let slot = &mut slots[s as usize];
        slot.conn_prev = NONE;
        slot.conn_next = old;
        if old != NONE {
            slots[old as usize].conn_prev = s;
        }
    }

    fn conn_unlink(&mut self, s: u32) {
        let Slot {
            conn,
            conn_prev: prev,
            conn_next: next,
            ..
        } = self.slots[s as usize];
        if prev == NONE {
            if let Ok(mut e) = self.conns.find_entry(conn_hash(conn), |&o| o == s) {
                if next == NONE {
                    e.remove();
                } else {
                    *e.get_mut() = next;
                }
            }
        } else {
            self.slots[prev as usize].conn_next = next;
        }
        if next != NONE {
            self.slots[next as usize].conn_prev = prev;
        }
    }

    fn expire_at(&mut self, s: u32, at: u32) {
        self.expiry.entry(at).or_default().push(s);
    }

    /// Frees slot `s`: its connection link, interned parts and storage. The AOR chain is the
    /// caller's to fix.
    fn detach(&mut self, s: u32, hasher: &RandomState) {
        self.conn_unlink(s);
        let Parts { path, tail, .. } = self.slots[s as usize].parts();
        let template = self.slots[s as usize].template;
        self.templates.release(template, hasher);
        self.tails.release(tail, hasher);
        if path != NONE {
            self.paths.release(path, hasher);
        }
        let free = self.free;
        let slot = &mut self.slots[s as usize];
        slot.blob = Box::default();
        slot.aor_next = free;
        self.free = s;
    }

    /// Removes one binding, fixing its AOR's chain.
    fn remove(&mut self, s: u32, hasher: &RandomState) {
        let key = self.key(s);
        let h = key.hash(hasher);
        let next = self.slots[s as usize].aor_next;
        match self.head(h, &key, hasher) {
            Some(head) if head == s => {
                if let Ok(mut e) = self.index.find_entry(h, |&o| o == s) {
                    if next == NONE {
                        e.remove();
                    } else {
                        *e.get_mut() = next;
                    }
                }
            }
            Some(head) => {
                let mut p = head;
                while self.slots[p as usize].aor_next != s {
                    p = self.slots[p as usize].aor_next;
                }
                self.slots[p as usize].aor_next = next;
            }
            None => debug_assert!(false, "a live slot is on its AOR's chain"),
        }
        self.detach(s, hasher);
    }

    /// Drops bindings whose expiry second is due, at most `budget` bucket entries.
    pub(super) fn purge(&mut self, now: u64, mut budget: usize, hasher: &RandomState) -> usize {
        let mut removed = 0;
        while budget > 0 {
            let s = {
                let Some(mut bucket) = self.expiry.first_entry() else {
                    break;
                };
                if u64::from(*bucket.key()) > now {
                    break;
                }
                match bucket.get_mut().pop() {
                    Some(s) => s,
                    None => {
                        bucket.remove();
                        continue;
                    }
                }
            };
            budget -= 1;
            let slot = &self.slots[s as usize];
            if !slot.is_free() && u64::from(slot.expires_at) <= now {
                self.remove(s, hasher);
                removed += 1;
            }
        }
        removed
    }

    pub(super) fn remove_connection(&mut self, conn: ConnId, hasher: &RandomState) -> usize {
        let slots = &self.slots;
        let Some(&head) = self
            .conns
            .find(conn_hash(conn), |&o| slots[o as usize].conn == conn)
        else {
            return 0;
        };
        let mut removed = 0;
        let mut s = head;
        while s != NONE {
            let next = self.slots[s as usize].conn_next;
            self.remove(s, hasher);
            removed += 1;
            s = next;
        }
        removed
    }

    /// Renders slot `s`'s contact into `out`.
    fn render(&self, s: u32, out: &mut Vec<u8>) -> Spans {
        let slot = &self.slots[s as usize];
        render(self.templates.get(slot.template), slot.parts().holes, out)
    }

    pub(super) fn list(
        &self,
        h: u64,
        key: &AorKey<'_>,
        now: u64,
        hasher: &RandomState,
    ) -> Vec<BindingInfo> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for s in self.chain(self.head(h, key, hasher)) {
            let slot = &self.slots[s as usize];
            if u64::from(slot.expires_at) <= now {
                continue;
            }
            buf.clear();
            let spans = self.render(s, &mut buf);
            let parts = slot.parts();
            out.push(BindingInfo {
                contact: text(&buf),
                instance: spans.instance.map(|r| text(&buf[r])),
                device: spans.device.map(|r| text(&buf[r])),
                expires_in: u64::from(slot.expires_at).saturating_sub(now),
                listener: parts.listener().as_str(),
                path: (parts.path != NONE).then(|| text(self.paths.get(parts.path))),
            });
        }
        out
    }

    /// RFC 3261 §10.3 steps 6 to 8 for one AOR: checks every contact against the current
    /// bindings, then applies the request whole (or nothing) and returns the Contact values of
    /// the 200 OK (each with `;expires=`) and how the binding count changed.
    pub(super) fn register(
        &mut self,
        h: u64,
        key: &AorKey<'_>,
        reg: &Registration<'_>,
        now: u64,
        hasher: &RandomState,
    ) -> Result<(Vec<Vec<u8>>, isize), Refusal> {
        let call_id = hasher.hash_one(reg.call_id);
        let head = self.head(h, key, hasher);
        let chain = self.chain(head);

        // The live bindings. One is rendered for the comparisons only when some contact of
        // the request differs from it; a device re-registering the same contact (the steady
        // state) needs none.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut live: SmallVec<[(u32, Option<Spans>); 4]> = SmallVec::new();
        for &s in &chain {
            if u64::from(self.slots[s as usize].expires_at) > now {
                let differs = reg.contacts.iter().any(|p| !self.holds(s, &p.contact));
                let spans = differs.then(|| {
                    let start = scratch.len();
                    self.render(s, &mut scratch).shifted(start)
                });
                live.push((s, spans));
            }
        }
        let result = self.decide(reg, call_id, &live, &scratch);
        self.scratch = scratch;
        let after = result?;

        // Apply: first what goes (expired, removed), then the writes.
        let before = chain.len() as isize;
        for &s in &chain {
            let kept = after.iter().any(|a| match *a {
                After::Keep(k) => k == s,
                After::Write { slot, .. } => slot == Some(s),
            });
            if !kept {
                self.detach(s, hasher);
            }
        }
        let mut order: SmallVec<[u32; 4]> = SmallVec::new();
        for a in &after {
            let s = match *a {
                After::Keep(s) => s,
                After::Write { slot, planned } => {
                    let p = &reg.contacts[planned];
                    let at = expiry_of(now, p.granted.unwrap_or(0));
                    match slot {
                        Some(s) => {
                            self.rewrite(s, reg, call_id, p, at, hasher);
                            s
                        }
                        None => self.insert(key, reg, call_id, p, at, hasher),
                    }
                }
            };
            order.push(s);
        }

        // The chain in the order the 200 OK lists, and the index pointing at its first slot.
        for (i, &s) in order.iter().enumerate() {
            self.slots[s as usize].aor_next = order.get(i + 1).copied().unwrap_or(NONE);
        }
        match (head, order.first()) {
            (Some(old), Some(&new)) if old != new => {
                if let Some(v) = self.index.find_mut(h, |&o| o == old) {
                    *v = new;
                }
            }
            (Some(old), None) => {
                if let Ok(e) = self.index.find_entry(h, |&o| o == old) {
                    e.remove();
                }
            }
            (None, Some(&new)) => {
                let Stripe {
                    index,
                    slots,
                    tails,
                    ..
                } = self;
                index.insert_unique(h, new, |&o| {
                    let p = slots[o as usize].parts();
                    AorKey {
                        scheme: p.scheme(),
                        user: p.user,
                        tail: tails.get(p.tail),
                    }
                    .hash(hasher)
                });
            }
            _ => {}
        }

        let mut listed = Vec::with_capacity(order.len());
        for &s in &order {
            let mut v = Vec::with_capacity(256);
            self.render(s, &mut v);
            v.extend_from_slice(b";expires=");
            let at = u64::from(self.slots[s as usize].expires_at);
            scan::push_decimal(&mut v, at.saturating_sub(now));
            listed.push(v);
        }
        Ok((listed, order.len() as isize - before))
    }

    /// Whether slot `s` holds exactly `contact` (then it is the same contact, whatever else).
    fn holds(&self, s: u32, contact: &CompactContact) -> bool {
        let slot = &self.slots[s as usize];
        slot.parts().holes == &contact.holes[..]
            && self.templates.get(slot.template) == &contact.template[..]
    }

    /// The checks, on borrowed keys: which bindings the request leaves, or why it is refused.
    /// A live binding without spans holds exactly every contact of the request.
    fn decide(
        &self,
        reg: &Registration<'_>,
        call_id: u64,
        live: &[(u32, Option<Spans>)],
        scratch: &[u8],
    ) -> Result<SmallVec<[After; 4]>, Refusal> {
        type Key<'k> = Option<(&'k [u8], Option<&'k [u8]>)>;
        let stale = |s: u32| {
            let b = &self.slots[s as usize];
            b.call_id == call_id && reg.cseq <= b.cseq
        };
        let key = |sp: &Option<Spans>| -> Key<'_> {
            sp.as_ref().map(|sp| {
                (
                    &scratch[sp.uri.clone()],
                    sp.instance.clone().map(|r| &scratch[r]),
                )
            })
        };
        let same = |k: Key<'_>, p: &Planned<'_>| match k {
            Some((u, i)) => same_contact(u, i, p.uri, p.instance),
            None => true,
        };
        if reg.wildcard {
            if live.iter().any(|(s, _)| stale(*s)) {
                return Err(Refusal::Stale);
            }
            return Ok(SmallVec::new());
        }
        for p in reg.contacts {
            if p.granted.is_none() {
                return Err(Refusal::TooBrief);
            }
            // RFC 3261 §10.3 step 7: same Call-ID and a CSeq not higher: not applied.
            if live.iter().any(|(s, sp)| same(key(sp), p) && stale(*s)) {
                return Err(Refusal::Stale);
            }
        }
        // Contacts apply in order; a contact listed twice: the later one wins.
        let mut after: SmallVec<[(After, Key<'_>); 4]> = live
            .iter()
            .map(|(s, sp)| (After::Keep(*s), key(sp)))
            .collect();
        for (n, p) in reg.contacts.iter().enumerate() {
            let pos = after.iter().position(|&(_, k)| same(k, p));
            match (pos, p.granted.unwrap_or(0)) {
                (Some(i), 0) => {
                    after.remove(i);
                }
                (Some(i), _) => {
                    let slot = match after[i].0 {
                        After::Keep(s) => Some(s),
                        After::Write { slot, .. } => slot,
                    };
                    after[i] = (After::Write { slot, planned: n }, Some((p.uri, p.instance)));
                }
                (None, 0) => {}
                (None, _) => after.push((
                    After::Write {
                        slot: None,
                        planned: n,
                    },
                    Some((p.uri, p.instance)),
                )),
            }
        }
        if after.len() > reg.max_contacts {
            return Err(Refusal::TooMany);
        }
        Ok(after.into_iter().map(|(a, _)| a).collect())
    }

    /// A new binding; the caller links it into its AOR's chain.
    fn insert(
        &mut self,
        key: &AorKey<'_>,
        reg: &Registration<'_>,
        call_id: u64,
        p: &Planned<'_>,
        at: u32,
        hasher: &RandomState,
    ) -> u32 {
        let path = reg.path.map_or(NONE, |v| self.paths.acquire(v, hasher));
        let tail = self.tails.acquire(key.tail, hasher);
        let slot = Slot {
            blob: blob(
                reg.listener,
                path,
                key.scheme,
                tail,
                key.user,
                &p.contact.holes,
            ),
            call_id,
            conn: reg.conn,
            template: self.templates.acquire(&p.contact.template, hasher),
            expires_at: at,
            cseq: reg.cseq,
            conn_prev: NONE,
            conn_next: NONE,
            aor_next: NONE,
        };
        let s = self.alloc(slot);
        self.conn_link(s);
        self.expire_at(s, at);
        s
    }

    /// A re-registration of slot `s`: only what changed is touched.
    fn rewrite(
        &mut self,
        s: u32,
        reg: &Registration<'_>,
        call_id: u64,
        p: &Planned<'_>,
        at: u32,
        hasher: &RandomState,
    ) {
        let (template, conn) = {
            let slot = &self.slots[s as usize];
            (slot.template, slot.conn)
        };
        if self.templates.get(template) != &p.contact.template[..] {
            let t = self.templates.acquire(&p.contact.template, hasher);
            self.templates.release(template, hasher);
            self.slots[s as usize].template = t;
        }
        let old = self.slots[s as usize].parts();
        let (old_path, old_listener) = (old.path, old.listener());
        let path = match (old_path, reg.path) {
            (NONE, None) => NONE,
            (old, Some(v)) if old != NONE && self.paths.get(old) == v => old,
            (old, new) => {
                let new = new.map_or(NONE, |v| self.paths.acquire(v, hasher));
                if old != NONE {
                    self.paths.release(old, hasher);
                }
                new
            }
        };
        let old = self.slots[s as usize].parts();
        if path != old_path || old_listener != reg.listener || old.holes != &p.contact.holes[..] {
            let b = blob(
                reg.listener,
                path,
                old.scheme(),
                old.tail,
                old.user,
                &p.contact.holes,
            );
            self.slots[s as usize].blob = b;
        }
        if conn != reg.conn {
            self.conn_unlink(s);
            self.slots[s as usize].conn = reg.conn;
            self.conn_link(s);
        }
        let slot = &mut self.slots[s as usize];
        slot.call_id = call_id;
        slot.cseq = reg.cseq;
        if slot.expires_at != at {
            slot.expires_at = at;
            self.expire_at(s, at);
        }
    }
}

#[cfg(test)]
impl Stripe {
    /// Checks that the links and reference counts kept by the stripe agree with its live
    /// slots; their number.
    pub(super) fn check(&self) -> usize {
        let live: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| !self.slots[i as usize].is_free())
            .collect();
        let by_aor: usize = self.index.iter().map(|&h| self.chain(Some(h)).len()).sum();
        assert_eq!(by_aor, live.len(), "every live slot is on its AOR's chain");
        let mut by_conn = 0;
        for &h in self.conns.iter() {
            let mut x = h;
            let mut prev = NONE;
            while x != NONE {
                assert_eq!(self.slots[x as usize].conn_prev, prev);
                assert_eq!(self.slots[x as usize].conn, self.slots[h as usize].conn);
                by_conn += 1;
                prev = x;
                x = self.slots[x as usize].conn_next;
            }
        }
        assert_eq!(
            by_conn,
            live.len(),
            "every live slot is on its connection's list"
        );
        assert_eq!(
            self.templates.references(),
            live.len(),
            "one template reference per binding"
        );
        assert_eq!(
            self.tails.references(),
            live.len(),
            "one AOR tail reference per binding"
        );
        let with_path = live
            .iter()
            .filter(|&&i| self.slots[i as usize].parts().path != NONE)
            .count();
        assert_eq!(
            self.paths.references(),
            with_path,
            "one Path reference per binding with one"
        );
        live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aor_keys_give_the_aor_back() {
        for (aor, user, tail) in [
            ("sip:1010@10.10.10.1", "1010", "@10.10.10.1"),
            ("sips:1010@example.com:5061", "1010", "@example.com:5061"),
            ("sip:example.com", "", "example.com"),
            (
                "sip:user;par=u%40example.net@[2001:db8::1]",
                "user;par=u%40example.net",
                "@[2001:db8::1]",
            ),
        ] {
            let k = AorKey::new(aor.as_bytes());
            assert_eq!(
                (k.user, k.tail),
                (user.as_bytes(), tail.as_bytes()),
                "{aor}"
            );
            let scheme: &[u8] = [&b"sip:"[..], b"sips:", b""][k.scheme as usize];
            assert_eq!([scheme, k.user, k.tail].concat(), aor.as_bytes());
        }
        let hasher = RandomState::new();
        let [a, b] = ["sip:1010@h", "sips:1010@h"].map(|s| AorKey::new(s.as_bytes()));
        assert_ne!(a, b);
        assert_ne!(a.hash(&hasher), b.hash(&hasher));
    }
}
