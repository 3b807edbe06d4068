//! The binding table, shared by every core: [`Bindings`] holds a power-of-two number of
//! stripes, each a `Mutex<Stripe>` chosen by a keyed hash of the canonical AOR, so cores
//! registering different AORs rarely meet on a lock and one REGISTER takes one lock once
//! (check, then apply; tokens are verified and contacts compacted before it is taken).
//! This file is the striping; the parts it stands on each have their own: contact compaction
//! in [`super::contact`], interning in [`super::interner`], one stripe in [`super::stripe`].
//!
//! Storage is compact because a registrar holds a million devices (the goal: 300 bytes
//! of RSS per device, binding and cached token together). Per binding:
//!
//! - the Contact is split into a **template** (its text with holes, interned with a reference
//!   count: every Jabber of one model and transport shares one) and the **hole values** that
//!   are this device's own: contact user and `+sip.instance` UUIDs as 16 octets each, an IPv4
//!   host as 4, the port as 2, the device name, display name and any other host as bytes.
//!   Everything else stays literal in the template, so any contact round-trips byte for byte;
//!   one that shares nothing with others simply gets a template of its own;
//! - the AOR is its user part plus an interned tail (`@host:port`), the Call-ID a keyed 64-bit
//!   hash (RFC 3261 §10.3 step 7 only needs equality), expiry a `u32` of epoch seconds, the
//!   Path an interned, reference-counted string;
//! - a `Slot` of 56 octets in a slab ([`super::stripe`]), plus one heap block (flags, Path id,
//!   AOR tail id and user part, hole values: 59 octets for a Jabber device, a 64-octet jemalloc
//!   class);
//! - the index is a `HashTable<u32>` of the first slot of each AOR (the AOR's bindings are
//!   chained through `aor_next`); bindings by connection are an intrusive doubly linked list
//!   through the slots, headed from a second `HashTable<u32>`; expiry is bucketed by second
//!   (`BTreeMap<u32, Vec<u32>>` of slot numbers, stale entries checked on use).
//!
//! Measured: 151.5 bytes of RSS per Jabber device at 1,000,000 devices, one connection each
//! (`cargo run --release --example binding_memory -- 1000000`). Every interned part is freed
//! with its last user; slab slots are reused, never returned.

use super::contact::CompactContact;
use super::stripe::{AorKey, BindingInfo, ConnId, Planned, Refusal, Registration, Stripe};
use crate::config::ListenerKind;
use crate::sip::{Aor, Contact};
use std::fmt;
use std::hash::RandomState;
use std::sync::atomic::{AtomicIsize, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A stripe and, readable without its lock, the earliest expiry second it holds.
#[derive(Debug)]
#[repr(align(64))]
struct Lane {
    next_due: AtomicU32,
    stripe: Mutex<Stripe>,
}

/// One Contact for an AOR, as [`Bindings::register_contact`] applies it.
#[derive(Clone, Copy, Debug)]
pub struct ContactUpdate<'a> {
    pub aor: &'a Aor,
    pub contact: Contact<'a>,
    pub call_id: &'a [u8],
    pub cseq: u32,
    pub conn: ConnId,
    pub listener: ListenerKind,
    /// Seconds granted (0 removes the binding).
    pub expires: u32,
    /// The AOR's contact limit (`registrar.max_contacts`).
    pub max_contacts: usize,
}

/// Every binding of the registrar, shared by all cores (`Arc<Bindings>`): `Send + Sync`, one
/// lock per stripe.
pub struct Bindings {
    lanes: Box<[Lane]>,
    mask: usize,
    /// Keyed hashes (AOR, Call-ID, interned text): clients choose these bytes.
    hasher: RandomState,
    /// Signed: adjustments from different stripes land in any order, so the sum may dip
    /// below zero for a moment; `len` reads it clamped.
    len: AtomicIsize,
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bindings")
            .field("stripes", &self.lanes.len())
            .field("len", &self.len())
            .finish()
    }
}

/// How many interned parts the table holds (templates and Paths in use, counted per stripe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interned {
    pub templates: usize,
    pub paths: usize,
    /// AORs without their user part (`@host:port`).
    pub aor_tails: usize,
}

/// Expiry buckets purged per REGISTER when the stripe has some due, so a table whose purge
/// task is late still sheds expired bindings.
const PURGE_ON_REGISTER: usize = 8;

impl Bindings {
    /// A table of `stripes` stripes (rounded up to a power of two).
    pub fn new(stripes: usize) -> Bindings {
        let n = stripes.max(1).next_power_of_two();
        Bindings {
            lanes: (0..n)
                .map(|_| Lane {
                    next_due: AtomicU32::new(u32::MAX),
                    stripe: Mutex::new(Stripe::new()),
                })
                .collect(),
            mask: n - 1,
            hasher: RandomState::new(),
            len: AtomicIsize::new(0),
        }
    }

    /// Number of stripes.
    pub fn stripes(&self) -> usize {
        self.lanes.len()
    }

    /// Bindings now registered (expired ones count until purged).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lane(&self, h: u64) -> &Lane {
        // Bits the stripe's own tables do not use: hashbrown takes the low ones for the bucket
        // and the top seven for the control byte.
        &self.lanes[(h >> 32) as usize & self.mask]
    }

    fn lock(lane: &Lane) -> MutexGuard<'_, Stripe> {
        lane.stripe.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn adjust(&self, delta: isize) {
        self.len.fetch_add(delta, Ordering::Relaxed);
    }

    /// Checks and applies one REGISTER under its stripe's lock; the 200 OK's Contact values.
    pub(crate) fn register(
        &self,
        reg: &Registration<'_>,
        now: u64,
    ) -> Result<Vec<Vec<u8>>, Refusal> {
        let key = AorKey::new(reg.aor.as_str().as_bytes());
        let h = key.hash(&self.hasher);
        let lane = self.lane(h);
        let mut stripe = Self::lock(lane);
        let (listed, mut delta) = stripe.register(h, &key, reg, now, &self.hasher)?;
        if u64::from(stripe.next_due()) <= now {
            delta -= stripe.purge(now, PURGE_ON_REGISTER, &self.hasher) as isize;
        }
        lane.next_due.store(stripe.next_due(), Ordering::Relaxed);
        drop(stripe);
        self.adjust(delta);
        Ok(listed)
    }

    /// Applies `u` the way the registrar core applies a REGISTER with that one Contact and no
    /// Path once its checks passed: the contact compacted, then checked and applied under its
    /// stripe's lock. Returns how many contacts the AOR holds afterwards, or `None` when it is
    /// refused (a CSeq not above the stored one on the same Call-ID, RFC 3261 §10.3 step 7; too
    /// many contacts). The table alone, for tools and `benches/cost.rs` (binding upsert and
    /// refresh); the registrar itself goes through `Registrar::handle`.
    pub fn register_contact(&self, u: &ContactUpdate<'_>, now: u64) -> Option<usize> {
        let planned = [Planned {
            uri: u.contact.addr.uri,
            instance: u.contact.instance(),
            granted: Some(u.expires),
            contact: CompactContact::new(&u.contact),
        }];
        let registration = Registration {
            aor: u.aor,
            call_id: u.call_id,
            cseq: u.cseq,
            conn: u.conn,
            listener: u.listener,
            path: None,
            wildcard: false,
            contacts: &planned,
            max_contacts: u.max_contacts,
        };
        self.register(&registration, now)
            .ok()
            .map(|listed| listed.len())
    }

    /// Removes every binding learnt on `conn`; returns how many.
    pub fn remove_connection(&self, conn: ConnId) -> usize {
        let mut removed = 0;
        for lane in self.lanes.iter() {
            let mut stripe = Self::lock(lane);
            removed += stripe.remove_connection(conn, &self.hasher);
        }
        self.adjust(-(removed as isize));
        removed
    }

    /// Drops the bindings expired by `now`; returns how many. Stripes with nothing due are
    /// not locked, so an idle second costs one atomic load per stripe.
    pub fn purge(&self, now: u64) -> usize {
        let mut removed = 0;
        for lane in self.lanes.iter() {
            if u64::from(lane.next_due.load(Ordering::Relaxed)) > now {
                continue;
            }
            let mut stripe = Self::lock(lane);
            removed += stripe.purge(now, usize::MAX, &self.hasher);
            lane.next_due.store(stripe.next_due(), Ordering::Relaxed);
        }
        self.adjust(-(removed as isize));
        removed
    }

    /// The earliest second at which [`Bindings::purge`] may have something to do.
    pub fn next_expiry(&self) -> Option<u64> {
        self.lanes
            .iter()
            .map(|l| l.next_due.load(Ordering::Relaxed))
            .min()
            .filter(|&at| at != u32::MAX)
            .map(u64::from)
    }

    /// The live bindings of `aor` at `now`, for the admin endpoint.
    pub fn list(&self, aor: &Aor, now: u64) -> Vec<BindingInfo> {
        let key = AorKey::new(aor.as_str().as_bytes());
        let h = key.hash(&self.hasher);
        Self::lock(self.lane(h)).list(h, &key, now, &self.hasher)
    }

    /// Interned parts in use, over all stripes.
    pub fn interned(&self) -> Interned {
        let mut n = Interned::default();
        for lane in self.lanes.iter() {
            let s = Self::lock(lane);
            n.templates += s.templates.len();
            n.paths += s.paths.len();
            n.aor_tails += s.tails.len();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::SipUri;
    use std::sync::Arc;

    /// `register_contact` is the core's path: a new AOR gets its binding, the same Call-ID
    /// with a higher CSeq refreshes it, an equal CSeq is refused (RFC 3261 §10.3 step 7).
    #[test]
    fn register_contact_inserts_refreshes_and_refuses_a_stale_cseq() {
        let wire = crate::load::jabber::seed_register(crate::load::jabber::SAMPLE_TOKEN);
        let mut hs = [crate::sip::EMPTY_HEADER; 64];
        let msg = crate::sip::parse(&wire, &mut hs)
            .unwrap()
            .complete()
            .unwrap();
        let aor = Aor::new(&msg.to().unwrap().sip_uri().unwrap());
        let Some(Ok(crate::sip::ContactValue::Addr(contact))) = msg.contacts().next() else {
            panic!("the seed has a Contact")
        };
        let t = Bindings::new(4);
        let update = |cseq| ContactUpdate {
            aor: &aor,
            contact,
            call_id: b"c1",
            cseq,
            conn: 7,
            listener: ListenerKind::Oauth,
            expires: 120,
            max_contacts: 10,
        };
        assert_eq!(t.register_contact(&update(1), 1000), Some(1));
        assert_eq!(t.register_contact(&update(2), 1001), Some(1));
        assert_eq!(t.register_contact(&update(2), 1002), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.list(&aor, 1001)[0].expires_in, 120);
    }

    fn contact(s: &str) -> Contact<'_> {
        let (c, end) = Contact::parse_at(s.as_bytes(), 0).expect("contact parses");
        assert_eq!(end, s.len());
        c
    }

    // The table itself, through `register`.

    const NOW: u64 = 1_800_000_000;

    struct Req {
        user: String,
        contacts: Vec<String>,
        call_id: String,
        cseq: u32,
        conn: ConnId,
        path: Option<&'static str>,
        expires: u32,
    }

    fn jabber(user: &str, n: u32) -> String {
        format!(
            "<sip:{n:08x}-4b07-a0d7-d701-29320aed1e2e@10.1.{}.{}:{};transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-{n:012x}>\";+u.sip!devicename.ccm.cisco.com=\"CSF{user}\";+u.sip!model.ccm.cisco.com=\"503\";video",
            n / 256 % 256,
            n % 256,
            40000 + n % 20000
        )
    }

    impl Req {
        fn new(user: &str, n: u32) -> Req {
            Req {
                user: user.to_string(),
                contacts: vec![jabber(user, n)],
                call_id: format!("call-{n}@10.1.0.1"),
                cseq: 1,
                conn: u64::from(n),
                path: None,
                expires: 120,
            }
        }

        fn send(&self, b: &Bindings, now: u64) -> Result<Vec<String>, Refusal> {
            let aor_text = format!("sip:{}@10.10.10.1", self.user);
            let aor = Aor::new(&SipUri::parse(aor_text.as_bytes()).unwrap());
            let parsed: Vec<Contact<'_>> = self.contacts.iter().map(|s| contact(s)).collect();
            let planned: Vec<Planned<'_>> = parsed
                .iter()
                .map(|c| Planned {
                    uri: c.addr.uri,
                    instance: c.instance(),
                    granted: Some(c.expires.unwrap_or(self.expires)),
                    contact: CompactContact::new(c),
                })
                .collect();
            let reg = Registration {
                aor: &aor,
                call_id: self.call_id.as_bytes(),
                cseq: self.cseq,
                conn: self.conn,
                listener: ListenerKind::Oauth,
                path: self.path.map(str::as_bytes),
                wildcard: false,
                contacts: &planned,
                max_contacts: 10,
            };
            b.register(&reg, now).map(|l| {
                l.into_iter()
                    .map(|v| String::from_utf8(v).unwrap())
                    .collect()
            })
        }
    }

    fn aor(user: &str) -> Aor {
        let s = format!("sip:{user}@10.10.10.1");
        Aor::new(&SipUri::parse(s.as_bytes()).unwrap())
    }

    /// Counts kept by the stripes agree with what is registered.
    fn check(b: &Bindings) {
        let mut slots = 0;
        for lane in b.lanes.iter() {
            slots += Bindings::lock(lane).check();
        }
        assert_eq!(slots, b.len());
    }

    #[test]
    fn aors_of_several_domains_and_schemes_are_kept_apart() {
        let b = Bindings::new(1);
        for (i, aor) in [
            "sip:1010@a.example",
            "sip:1010@b.example",
            "sips:1010@a.example",
            "sip:a.example",
        ]
        .iter()
        .enumerate()
        {
            let aor = Aor::new(&SipUri::parse(aor.as_bytes()).unwrap());
            let c = jabber("1010", i as u32);
            let c = contact(&c);
            let planned = [Planned {
                uri: c.addr.uri,
                instance: c.instance(),
                granted: Some(120),
                contact: CompactContact::new(&c),
            }];
            let reg = Registration {
                aor: &aor,
                call_id: b"c",
                cseq: 1,
                conn: 1,
                listener: ListenerKind::Tcp,
                path: None,
                wildcard: false,
                contacts: &planned,
                max_contacts: 1,
            };
            assert_eq!(b.register(&reg, NOW).unwrap().len(), 1, "{aor}");
            assert_eq!(b.list(&aor, NOW).len(), 1);
            assert_eq!(b.list(&aor, NOW)[0].listener, "tcp");
        }
        assert_eq!(b.len(), 4);
        assert_eq!(b.interned().aor_tails, 3);
        check(&b);
        assert_eq!(b.remove_connection(1), 4);
        assert_eq!(b.interned(), Interned::default());
    }

    #[test]
    fn a_binding_lists_back_byte_exact() {
        let b = Bindings::new(4);
        let mut r = Req::new("1010", 7);
        r.path = Some("<sip:expc1.example.com;lr>");
        let listed = r.send(&b, NOW).unwrap();
        assert_eq!(listed, vec![format!("{};expires=120", r.contacts[0])]);
        let info = b.list(&aor("1010"), NOW + 20);
        assert_eq!(
            info,
            vec![BindingInfo {
                contact: r.contacts[0].clone(),
                instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000007>".into()),
                device: Some("CSF1010".into()),
                expires_in: 100,
                listener: "oauth",
                path: Some("<sip:expc1.example.com;lr>".into()),
            }]
        );
        assert!(b.list(&aor("1011"), NOW).is_empty());
        check(&b);
    }

    #[test]
    fn interned_parts_go_with_their_last_user() {
        let b = Bindings::new(1);
        let mut reqs: Vec<Req> = (0..50)
            .map(|i| Req::new(&format!("{}", 1000 + i), i))
            .collect();
        for r in &mut reqs {
            r.path = Some("<sip:expc1.example.com;lr>");
            r.conn = 1;
            r.send(&b, NOW).unwrap();
        }
        // Fifty devices, one template, one Path and one AOR tail between them.
        let one = Interned {
            templates: 1,
            paths: 1,
            aor_tails: 1,
        };
        assert_eq!(b.interned(), one);
        check(&b);
        // An odd contact brings a template of its own, and takes it away.
        let mut odd = Req::new("2000", 999);
        odd.contacts = vec!["\"Odd\" <sip:odd@pc.example.com;x=1>".into()];
        odd.conn = 2;
        odd.send(&b, NOW).unwrap();
        assert_eq!(b.interned().templates, 2);
        // Re-registered with another Path: the old Path goes when its last user does.
        odd.path = Some("<sip:expc2.example.com;lr>");
        odd.cseq = 2;
        odd.send(&b, NOW).unwrap();
        assert_eq!(
            b.interned(),
            Interned {
                templates: 2,
                paths: 2,
                aor_tails: 1
            }
        );
        odd.cseq = 3;
        odd.expires = 0;
        odd.send(&b, NOW).unwrap();
        assert_eq!(b.interned(), one);
        check(&b);
        // Removal by connection: all fifty on one connection (MRA through Expressway-C).
        assert_eq!(b.remove_connection(2), 0);
        assert_eq!(b.remove_connection(1), 50);
        assert_eq!(b.len(), 0);
        assert_eq!(b.interned(), Interned::default());
        check(&b);
        // And by expiry.
        for r in &mut reqs[..10] {
            r.cseq += 1;
            r.send(&b, NOW).unwrap();
        }
        assert_eq!(b.interned().templates, 1);
        assert_eq!(b.purge(NOW + 119), 0);
        assert_eq!(b.purge(NOW + 120), 10);
        assert_eq!(b.interned(), Interned::default());
        check(&b);
    }

    #[test]
    fn many_devices_on_one_connection_and_moves_between_connections() {
        let b = Bindings::new(8);
        let mut reqs: Vec<Req> = (0..2000).map(|i| Req::new(&format!("{i}"), i)).collect();
        for r in &mut reqs {
            r.conn = 1;
            r.send(&b, NOW).unwrap();
        }
        assert_eq!(b.len(), 2000);
        // Half of them re-register through another Expressway connection.
        for r in reqs.iter_mut().step_by(2) {
            r.conn = 2;
            r.cseq += 1;
            r.send(&b, NOW + 10).unwrap();
        }
        check(&b);
        assert_eq!(b.remove_connection(1), 1000);
        check(&b);
        assert_eq!(b.len(), 1000);
        assert_eq!(b.list(&aor("1"), NOW + 10), vec![]);
        assert_eq!(b.list(&aor("0"), NOW + 10).len(), 1);
        assert_eq!(b.remove_connection(2), 1000);
        assert!(b.is_empty());
        check(&b);
    }

    #[test]
    fn purge_is_cheap_when_nothing_is_due_and_skips_refreshed_bindings() {
        let b = Bindings::new(4);
        assert_eq!(b.next_expiry(), None);
        let mut r = Req::new("1010", 1);
        r.send(&b, NOW).unwrap();
        assert_eq!(b.next_expiry(), Some(NOW + 120));
        // Refreshed at NOW + 60: the entry at NOW + 120 is stale.
        r.cseq = 2;
        r.send(&b, NOW + 60).unwrap();
        assert_eq!(b.purge(NOW + 120), 0);
        assert_eq!(b.len(), 1);
        assert_eq!(b.next_expiry(), Some(NOW + 180));
        assert_eq!(b.purge(NOW + 180), 1);
        assert_eq!(b.next_expiry(), None);
        assert!(b.is_empty());
        check(&b);
    }

    #[test]
    fn register_drops_expired_bindings_and_applies_whole_or_not() {
        let b = Bindings::new(2);
        let mut r = Req::new("1010", 1);
        r.contacts.push(jabber("1010", 2));
        assert_eq!(r.send(&b, NOW).unwrap().len(), 2);
        // The same CSeq on the same Call-ID for a stored contact: nothing changes, not even
        // the new contact listed before it.
        r.contacts = vec![jabber("1010", 3), jabber("1010", 1)];
        assert_eq!(r.send(&b, NOW), Err(Refusal::Stale));
        assert_eq!(b.len(), 2);
        r.contacts = vec![jabber("1010", 3)];
        // A new Call-ID applies; once both old ones expired they are gone from the answer.
        r.call_id = "other".into();
        let listed = r.send(&b, NOW + 120).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(b.len(), 1);
        check(&b);
        // Eleven contacts: 503, nothing applied.
        r.cseq = 2;
        r.contacts = (10..21).map(|n| jabber("1010", n)).collect();
        assert_eq!(r.send(&b, NOW + 120), Err(Refusal::TooMany));
        assert_eq!(b.len(), 1);
        check(&b);
    }

    #[test]
    fn two_threads_register_at_once() {
        let b = Arc::new(Bindings::new(64));
        let threads: Vec<_> = (0..2u32)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for i in 0..5000u32 {
                        let n = t * 100_000 + i;
                        let mut r = Req::new(&format!("{n}"), n);
                        r.send(&b, NOW).unwrap();
                        r.cseq = 2;
                        r.send(&b, NOW + 1).unwrap();
                        if i % 5 == 0 {
                            b.remove_connection(u64::from(n));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.len(), 8000);
        check(&b);
        assert_eq!(b.purge(NOW + 121), 8000);
        assert_eq!(b.interned(), Interned::default());
        check(&b);
    }

    #[test]
    fn bindings_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Bindings>();
    }
}
