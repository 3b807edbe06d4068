//! The binding table, shared by every core: [`Bindings`] holds a power-of-two number of
//! stripes, each a `Mutex<Stripe>` chosen by a keyed hash of the canonical AOR, so cores
//! registering different AORs rarely meet on a lock and one REGISTER takes one lock once
//! (check, then apply; tokens are verified and contacts compacted before it is taken).
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
//! - a [`Slot`] of 56 octets in a slab, plus one heap block (flags, Path id, AOR tail id and
//!   user part, hole values: 59 octets for a Jabber device, a 64-octet jemalloc class);
//! - the index is a `HashTable<u32>` of the first slot of each AOR (the AOR's bindings are
//!   chained through `aor_next`); bindings by connection are an intrusive doubly linked list
//!   through the slots, headed from a second `HashTable<u32>`; expiry is bucketed by second
//!   (`BTreeMap<u32, Vec<u32>>` of slot numbers, stale entries checked on use).
//!
//! Measured: 151.5 bytes of RSS per Jabber device at 1,000,000 devices, one connection each
//! (`cargo run --release --example binding_memory -- 1000000`). Every interned part is freed
//! with its last user; slab slots are reused, never returned.

use crate::config::ListenerKind;
use crate::sip::{scan, unquote, Aor, Contact, DEVICE_NAME_PARAM};
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::ops::Range;
use std::sync::atomic::{AtomicIsize, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

// ---------------------------------------------------------------------------------------------
// Contact compaction: template text with holes, and the hole values.

// A template is a run of records: a literal (its length as a little-endian u16, then its
// octets) and one code saying what follows it: a hole, a span boundary, or the end.
const END: u8 = 0;
/// Nothing: a literal longer than a u16 goes on in the next record.
const CONTINUE: u8 = 1;
/// Hole: a length (LEB128) and that many octets.
const HOLE_BYTES: u8 = 2;
/// Hole: 16 octets shown as a lower-case (or upper-case) 8-4-4-4-12 UUID.
const HOLE_UUID_LOWER: u8 = 3;
const HOLE_UUID_UPPER: u8 = 4;
/// Hole: 4 octets shown as a dotted-quad IPv4 address.
const HOLE_IPV4: u8 = 5;
/// Hole: 2 octets (big-endian) shown as a decimal port.
const HOLE_PORT: u8 = 6;
/// Span boundaries: where the URI, the `+sip.instance` value and the device name start and end.
const URI_START: u8 = 16;
const URI_END: u8 = 17;
const INSTANCE_START: u8 = 18;
const INSTANCE_END: u8 = 19;
const DEVICE_START: u8 = 20;
const DEVICE_END: u8 = 21;

/// A Contact as stored: the template (shared) and this device's hole values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CompactContact {
    template: Vec<u8>,
    holes: Vec<u8>,
}

/// Where the parts a registrar compares and lists lie in a rendered contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spans {
    uri: Range<usize>,
    instance: Option<Range<usize>>,
    device: Option<Range<usize>>,
}

impl Spans {
    fn shifted(self, by: usize) -> Spans {
        let shift = |r: Range<usize>| r.start + by..r.end + by;
        Spans {
            uri: shift(self.uri),
            instance: self.instance.map(shift),
            device: self.device.map(shift),
        }
    }
}

/// Builds a [`CompactContact`]; `run` is where the open record's length goes.
struct Builder {
    c: CompactContact,
    run: usize,
}

impl CompactContact {
    /// Splits the contact as a 200 OK lists it: `["display" ]<uri>` and every parameter but
    /// `expires`, as received.
    pub(crate) fn new(c: &Contact<'_>) -> Self {
        let mut b = Builder {
            c: CompactContact {
                template: Vec::with_capacity(256),
                holes: Vec::with_capacity(64),
            },
            run: 0,
        };
        b.c.template.extend_from_slice(&[0, 0]);
        if let Some(d) = c.addr.display {
            b.literal(b"\"");
            b.bytes(d);
            b.literal(b"\" ");
        }
        b.literal(b"<");
        b.mark(URI_START);
        b.uri(c.addr.uri);
        b.mark(URI_END);
        b.literal(b">");
        for (name, value) in c.addr.params.iter() {
            if name.eq_ignore_ascii_case(b"expires") {
                continue;
            }
            b.literal(b";");
            b.literal(name);
            let Some(v) = value else { continue };
            b.literal(b"=");
            let instance = name.eq_ignore_ascii_case(b"+sip.instance");
            if !instance && !name.eq_ignore_ascii_case(DEVICE_NAME_PARAM.as_bytes()) {
                b.literal(v);
                continue;
            }
            // The value as the Contact view gives it: without its quotes.
            let inner = unquote(v);
            let quoted = inner.len() != v.len();
            if quoted {
                b.literal(b"\"");
            }
            if instance {
                b.mark(INSTANCE_START);
                match inner
                    .strip_prefix(b"<urn:uuid:")
                    .and_then(|u| u.strip_suffix(b">"))
                {
                    Some(uuid) => {
                        b.literal(b"<urn:uuid:");
                        b.uuid(uuid);
                        b.literal(b">");
                    }
                    None => b.bytes(inner),
                }
                b.mark(INSTANCE_END);
            } else {
                b.mark(DEVICE_START);
                b.bytes(inner);
                b.mark(DEVICE_END);
            }
            if quoted {
                b.literal(b"\"");
            }
        }
        b.mark(END);
        b.c
    }

    /// The contact as received (without `expires`), appended to `out`.
    #[cfg(test)]
    fn render(&self, out: &mut Vec<u8>) -> Spans {
        render(&self.template, &self.holes, out)
    }
}

impl Builder {
    /// Closes the open record with `code` and opens the next.
    fn mark(&mut self, code: u8) {
        let t = &mut self.c.template;
        let n = (t.len() - self.run - 2) as u16;
        t[self.run..self.run + 2].copy_from_slice(&n.to_le_bytes());
        t.push(code);
        if code != END {
            self.run = t.len();
            t.extend_from_slice(&[0, 0]);
        }
    }

    fn literal(&mut self, mut s: &[u8]) {
        if let [b] = s {
            if self.c.template.len() - self.run - 2 < usize::from(u16::MAX) {
                self.c.template.push(*b);
                return;
            }
        }
        while !s.is_empty() {
            let room = usize::from(u16::MAX) - (self.c.template.len() - self.run - 2);
            if room == 0 {
                self.mark(CONTINUE);
                continue;
            }
            let k = room.min(s.len());
            self.c.template.extend_from_slice(&s[..k]);
            s = &s[k..];
        }
    }

    fn bytes(&mut self, s: &[u8]) {
        self.mark(HOLE_BYTES);
        put_len(&mut self.c.holes, s.len());
        self.c.holes.extend_from_slice(s);
    }

    fn uuid(&mut self, s: &[u8]) {
        match parse_uuid(s) {
            Some((octets, upper)) => {
                self.mark(if upper {
                    HOLE_UUID_UPPER
                } else {
                    HOLE_UUID_LOWER
                });
                self.c.holes.extend_from_slice(&octets);
            }
            None => self.bytes(s),
        }
    }

    /// `sip:` / `sips:` URIs are split into user, host and port; other schemes are one hole.
    fn uri(&mut self, u: &[u8]) {
        let scheme = if u.len() >= 4 && u[..4].eq_ignore_ascii_case(b"sip:") {
            4
        } else if u.len() >= 5 && u[..5].eq_ignore_ascii_case(b"sips:") {
            5
        } else {
            return self.bytes(u);
        };
        self.literal(&u[..scheme]);
        let mut rest = &u[scheme..];
        if let Some(at) = memchr::memchr(b'@', rest) {
            self.uuid(&rest[..at]);
            self.literal(b"@");
            rest = &rest[at + 1..];
        }
        // The host: an IPv6 reference, or up to the port, parameters or headers.
        if rest.first() == Some(&b'[') {
            match memchr::memchr(b']', rest) {
                Some(close) => {
                    self.literal(b"[");
                    self.bytes(&rest[1..close]);
                    self.literal(b"]");
                    rest = &rest[close + 1..];
                }
                None => return self.bytes(rest),
            }
        } else {
            let end = rest
                .iter()
                .position(|&b| matches!(b, b':' | b';' | b'?'))
                .unwrap_or(rest.len());
            match parse_ipv4(&rest[..end]) {
                Some(a) => {
                    self.mark(HOLE_IPV4);
                    self.c.holes.extend_from_slice(&a);
                }
                None => self.bytes(&rest[..end]),
            }
            rest = &rest[end..];
        }
        if let Some(after) = rest.strip_prefix(b":") {
            let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(port) = parse_port(&after[..digits]) {
                self.literal(b":");
                self.mark(HOLE_PORT);
                self.c.holes.extend_from_slice(&port.to_be_bytes());
                rest = &after[digits..];
            }
        }
        self.literal(rest);
    }
}

/// Appends the contact that `template` and `holes` describe to `out`; the spans are offsets
/// from where it started.
fn render(mut t: &[u8], mut holes: &[u8], out: &mut Vec<u8>) -> Spans {
    let base = out.len();
    let mut spans = Spans::default();
    let mut open = 0;
    loop {
        let n = usize::from(u16::from_le_bytes([t[0], t[1]]));
        out.extend_from_slice(&t[2..2 + n]);
        let code = t[2 + n];
        t = &t[3 + n..];
        let at = out.len() - base;
        match code {
            END => return spans,
            CONTINUE => {}
            HOLE_BYTES => {
                let (n, rest) = take_len(holes);
                out.extend_from_slice(&rest[..n]);
                holes = &rest[n..];
            }
            HOLE_UUID_LOWER | HOLE_UUID_UPPER => {
                write_uuid(&holes[..16], code == HOLE_UUID_UPPER, out);
                holes = &holes[16..];
            }
            HOLE_IPV4 => {
                write_ipv4(&holes[..4], out);
                holes = &holes[4..];
            }
            HOLE_PORT => {
                scan::push_decimal(out, u64::from(u16::from_be_bytes([holes[0], holes[1]])));
                holes = &holes[2..];
            }
            URI_START | INSTANCE_START | DEVICE_START => open = at,
            URI_END => spans.uri = open..at,
            INSTANCE_END => spans.instance = Some(open..at),
            DEVICE_END => spans.device = Some(open..at),
            _ => debug_assert!(false, "template code {code}"),
        }
    }
}

fn put_len(out: &mut impl Extend<u8>, mut n: usize) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.extend([low]);
            return;
        }
        out.extend([low | 0x80]);
    }
}

fn take_len(s: &[u8]) -> (usize, &[u8]) {
    let mut n = 0usize;
    for (i, &b) in s.iter().enumerate() {
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (n, &s[i + 1..]);
        }
    }
    (0, &[])
}

/// Hex digit classes: the value, with 0x10 for a-f and 0x20 for A-F; 0xFF for anything else.
static HEX: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 0x10 | (10 + i as u8);
        t[b'A' as usize + i] = 0x20 | (10 + i as u8);
        i += 1;
    }
    t
};

/// Where the 32 hex digits of an 8-4-4-4-12 UUID are.
const UUID_DIGITS: [usize; 32] = {
    let mut t = [0; 32];
    let (mut i, mut p) = (0, 0);
    while i < 32 {
        if p == 8 || p == 13 || p == 18 || p == 23 {
            p += 1;
        }
        t[i] = p;
        i += 1;
        p += 1;
    }
    t
};

/// A UUID written 8-4-4-4-12 in one case (digits only count as lower case): its 16 octets and
/// whether it was upper case. Mixed case does not round-trip, so it is not a UUID here.
fn parse_uuid(s: &[u8]) -> Option<([u8; 16], bool)> {
    if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
        return None;
    }
    let mut octets = [0u8; 16];
    let mut seen = 0u8;
    for (k, o) in octets.iter_mut().enumerate() {
        let hi = HEX[usize::from(s[UUID_DIGITS[2 * k]])];
        let lo = HEX[usize::from(s[UUID_DIGITS[2 * k + 1]])];
        if hi == 0xFF || lo == 0xFF {
            return None;
        }
        seen |= hi | lo;
        *o = (hi & 15) << 4 | (lo & 15);
    }
    (seen & 0x30 != 0x30).then_some((octets, seen & 0x20 != 0))
}

fn write_uuid(octets: &[u8], upper: bool, out: &mut Vec<u8>) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut text = [b'-'; 36];
    for (k, &o) in octets.iter().enumerate() {
        text[UUID_DIGITS[2 * k]] = digits[usize::from(o >> 4)];
        text[UUID_DIGITS[2 * k + 1]] = digits[usize::from(o & 15)];
    }
    out.extend_from_slice(&text);
}

fn write_ipv4(octets: &[u8], out: &mut Vec<u8>) {
    let mut text = [0u8; 15];
    let mut n = 0;
    for (k, &o) in octets.iter().enumerate() {
        if k > 0 {
            text[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            text[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            text[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        text[n] = b'0' + o % 10;
        n += 1;
    }
    out.extend_from_slice(&text[..n]);
}

/// A dotted quad written the one way it renders (no leading zeros).
fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in &mut out {
        *o = parse_canonical(parts.next()?, 255)? as u8;
    }
    parts.next().is_none().then_some(out)
}

fn parse_port(s: &[u8]) -> Option<u16> {
    parse_canonical(s, 65535).map(|p| p as u16)
}

/// Decimal digits with no leading zero (so rendering gives the same text), at most `max`.
fn parse_canonical(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    (v <= max).then_some(v)
}

// ---------------------------------------------------------------------------------------------
// Interned, reference-counted byte strings (contact templates, Path values).

#[derive(Debug, Default)]
struct Interner {
    index: HashTable<u32>,
    items: Vec<Entry>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Entry {
    bytes: Box<[u8]>,
    /// Users; 0 for a free item.
    refs: u32,
}

impl Interner {
    /// One more user of `bytes`; its id.
    fn acquire(&mut self, bytes: &[u8], hasher: &RandomState) -> u32 {
        let h = hasher.hash_one(bytes);
        let Interner { index, items, free } = self;
        if let Some(&id) = index.find(h, |&id| &*items[id as usize].bytes == bytes) {
            items[id as usize].refs += 1;
            return id;
        }
        let item = Entry {
            bytes: bytes.into(),
            refs: 1,
        };
        let id = match free.pop() {
            Some(id) => {
                items[id as usize] = item;
                id
            }
            None => {
                items.push(item);
                (items.len() - 1) as u32
            }
        };
        index.insert_unique(h, id, |&id| hasher.hash_one(&*items[id as usize].bytes));
        id
    }

    /// The id of `bytes`, when interned.
    fn find(&self, bytes: &[u8], hasher: &RandomState) -> Option<u32> {
        let items = &self.items;
        self.index
            .find(hasher.hash_one(bytes), |&id| {
                &*items[id as usize].bytes == bytes
            })
            .copied()
    }

    /// One user fewer; the last one frees the item.
    fn release(&mut self, id: u32, hasher: &RandomState) {
        let item = &mut self.items[id as usize];
        item.refs -= 1;
        if item.refs == 0 {
            let bytes = std::mem::take(&mut item.bytes);
            if let Ok(e) = self
                .index
                .find_entry(hasher.hash_one(&*bytes), |&other| other == id)
            {
                e.remove();
            }
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> &[u8] {
        &self.items[id as usize].bytes
    }

    /// Items in use.
    fn len(&self) -> usize {
        self.index.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The stripes.

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
struct AorKey<'a> {
    scheme: u8,
    user: &'a [u8],
    tail: &'a [u8],
}

impl<'a> AorKey<'a> {
    fn new(aor: &'a [u8]) -> Self {
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

    /// Keyed: clients choose AORs. Picks the stripe (see [`Bindings::lane`]) and the bucket.
    fn hash(&self, hasher: &RandomState) -> u64 {
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
struct Stripe {
    /// The first binding of each AOR, by [`AorKey::hash`].
    index: HashTable<u32>,
    slots: Vec<Slot>,
    /// Free slots, linked through `aor_next`.
    free: u32,
    /// The first binding of each connection, by `conn_hash`.
    conns: HashTable<u32>,
    templates: Interner,
    paths: Interner,
    /// AOR tails (`@host:port`).
    tails: Interner,
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
    fn new() -> Self {
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

    fn next_due(&self) -> u32 {
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
    fn purge(&mut self, now: u64, mut budget: usize, hasher: &RandomState) -> usize {
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

    fn remove_connection(&mut self, conn: ConnId, hasher: &RandomState) -> usize {
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

    fn list(&self, h: u64, key: &AorKey<'_>, now: u64, hasher: &RandomState) -> Vec<BindingInfo> {
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
    fn register(
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

// ---------------------------------------------------------------------------------------------
// The shared table.

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

    /// The contact as the first cut of the registrar listed it (the reference for compaction).
    fn listing(c: &Contact<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(d) = c.addr.display {
            out.push(b'"');
            out.extend_from_slice(d);
            out.extend_from_slice(b"\" ");
        }
        out.push(b'<');
        out.extend_from_slice(c.addr.uri);
        out.push(b'>');
        for (name, value) in c.addr.params.iter() {
            if name.eq_ignore_ascii_case(b"expires") {
                continue;
            }
            out.push(b';');
            out.extend_from_slice(name);
            if let Some(v) = value {
                out.push(b'=');
                out.extend_from_slice(v);
            }
        }
        out
    }

    fn contact(s: &str) -> Contact<'_> {
        let (c, end) = Contact::parse_at(s.as_bytes(), 0).expect("contact parses");
        assert_eq!(end, s.len());
        c
    }

    const JABBER: &str = "<sip:a8ae9f92-4b07-a0d7-d701-29320aed1e2e@10.10.10.10:62162;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-882323451234>\";+u.sip!devicename.ccm.cisco.com=\"CSFrado\";+u.sip!model.ccm.cisco.com=\"503\";video";

    /// Compacts `s`, renders it back and checks every span; returns the compact form.
    fn round_trip(s: &str) -> CompactContact {
        let c = contact(s);
        let compact = CompactContact::new(&c);
        let mut out = b"prefix".to_vec();
        let spans = compact.render(&mut out);
        let out = &out[6..];
        assert_eq!(
            String::from_utf8_lossy(out),
            String::from_utf8_lossy(&listing(&c))
        );
        assert_eq!(&out[spans.uri.clone()], c.addr.uri, "uri of {s}");
        assert_eq!(
            spans.instance.map(|r| &out[r]),
            c.instance(),
            "instance of {s}"
        );
        assert_eq!(
            spans.device.map(|r| &out[r]),
            c.device_name(),
            "device of {s}"
        );
        compact
    }

    #[test]
    fn jabber_contact_fits_the_template() {
        let c = round_trip(JABBER);
        // Contact user and instance as 16 octets each, IPv4 4, port 2, device name 1 + 7.
        assert_eq!(c.holes.len(), 16 + 4 + 2 + 16 + 8, "{:?}", c.holes);
        // Another device differs only in its holes: the same template.
        let other = JABBER
            .replace("a8ae9f92-4b07", "0123abcd-4b07")
            .replace("10.10.10.10:62162", "192.168.1.7:5061")
            .replace("882323451234", "00000000abcd")
            .replace("CSFrado", "CSFjdoe42");
        let o = round_trip(&other);
        assert_eq!(o.template, c.template);
        assert_ne!(o.holes, c.holes);
    }

    #[test]
    fn contacts_that_do_not_fit_round_trip() {
        for s in [
            // No instance, no device, a host name, no port.
            "<sip:alice@pc33.example.com>",
            "<sip:alice@pc33.example.com;transport=tcp>;q=0.5",
            // IPv6 host, with and without port.
            "<sip:a8ae9f92-4b07-a0d7-d701-29320aed1e2e@[2001:db8::10]:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-882323451234>\"",
            "<sip:[2001:db8::10]>",
            // Display names, quoted with escapes and as tokens.
            "\"J Rosenberg \\\\\\\"\" <sip:jdrosen@10.0.0.1:5060>",
            "Alice Smith <sip:alice@10.0.0.1>",
            // Parameters in another order, and expires among them (left out).
            "<sip:u@10.0.0.1:5060>;video;+u.sip!devicename.ccm.cisco.com=\"CSFx\";expires=60;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"",
            // Upper-case UUIDs, mixed case (not a UUID here), an instance that is not a UUID.
            "<sip:A8AE9F92-4B07-A0D7-D701-29320AED1E2E@10.0.0.1>;+sip.instance=\"<urn:uuid:ABCDEF00-0000-0000-0000-000000000001>\"",
            "<sip:A8ae9f92-4b07-a0d7-d701-29320aed1e2e@10.0.0.1>",
            "<sip:u@10.0.0.1>;+sip.instance=\"<urn:foo:bar>\"",
            "<sip:u@10.0.0.1>;+sip.instance=\"<urn:uuid:not-a-uuid>\"",
            // Leading zeros and out-of-range numbers stay literal or bytes.
            "<sip:u@010.0.0.1:05060>",
            "<sip:u@10.0.0.256:65536>",
            "<sip:u@10.0.0.1:0>",
            // Password, escaped user, URI headers, sips, other schemes, no user.
            "<sip:u:secret@10.0.0.1>",
            "<sip:user;par=u%40example.net@example.com>",
            "<sips:u@10.0.0.1:5061;transport=tls?Subject=x>",
            "<tel:+15551234567>",
            "<sip:10.0.0.1:5060>",
            // An unquoted device name.
            "<sip:u@10.0.0.1>;+u.sip!devicename.ccm.cisco.com=CSFtoken",
        ] {
            round_trip(s);
        }
    }

    #[test]
    fn odd_bytes_round_trip() {
        // A literal 0xFF (the template's mark) in a quoted display name, and a long value.
        let mut s = b"\"caf\xc3\xa9 \xff\" <sip:u@10.0.0.1>;x=\"\xff\xff\"".to_vec();
        let (c, _) = Contact::parse_at(&s, 0).expect("octets above 0x7f in a quoted string");
        let compact = CompactContact::new(&c);
        assert!(compact.template.contains(&0xFF), "kept literal");
        let mut out = Vec::new();
        compact.render(&mut out);
        assert_eq!(out, listing(&c));
        let long = "x".repeat(300);
        s = format!("<sip:{long}@{long}.example.com>;+u.sip!devicename.ccm.cisco.com=\"{long}\"")
            .into_bytes();
        round_trip(std::str::from_utf8(&s).unwrap());
        // A literal longer than one template record holds.
        let huge = "y".repeat(200_000);
        let c = round_trip(&format!("<sip:u@10.0.0.1>;x={huge};video"));
        assert!(c.template.len() > 200_000);
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
            let s = Bindings::lock(lane);
            let live: Vec<u32> = (0..s.slots.len() as u32)
                .filter(|&i| !s.slots[i as usize].is_free())
                .collect();
            slots += live.len();
            let by_aor: usize = s.index.iter().map(|&h| s.chain(Some(h)).len()).sum();
            assert_eq!(by_aor, live.len(), "every live slot is on its AOR's chain");
            let mut by_conn = 0;
            for &h in s.conns.iter() {
                let mut x = h;
                let mut prev = NONE;
                while x != NONE {
                    assert_eq!(s.slots[x as usize].conn_prev, prev);
                    assert_eq!(s.slots[x as usize].conn, s.slots[h as usize].conn);
                    by_conn += 1;
                    prev = x;
                    x = s.slots[x as usize].conn_next;
                }
            }
            assert_eq!(
                by_conn,
                live.len(),
                "every live slot is on its connection's list"
            );
            let refs = |i: &Interner| i.items.iter().map(|t| t.refs as usize).sum::<usize>();
            assert_eq!(
                refs(&s.templates),
                live.len(),
                "one template reference per binding"
            );
            assert_eq!(
                refs(&s.tails),
                live.len(),
                "one AOR tail reference per binding"
            );
            let with_path = live
                .iter()
                .filter(|&&i| s.slots[i as usize].parts().path != NONE)
                .count();
            assert_eq!(
                refs(&s.paths),
                with_path,
                "one Path reference per binding with one"
            );
        }
        assert_eq!(slots, b.len());
    }

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
