//! Contact compaction: a Contact as a registrar stores it, split into a **template** (its text
//! with holes, interned per stripe so every Jabber of one model and transport shares one) and
//! the **hole values** that are this device's own (contact user and `+sip.instance` UUIDs as
//! 16 octets each, an IPv4 host as 4, the port as 2, the device name, display name and any
//! other host as bytes). Everything else stays literal in the template, so any contact
//! round-trips byte for byte.

use crate::sip::{scan, unquote, Contact, DEVICE_NAME_PARAM};
use std::ops::Range;

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
    pub(super) template: Vec<u8>,
    pub(super) holes: Vec<u8>,
}

/// Where the parts a registrar compares and lists lie in a rendered contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Spans {
    pub(super) uri: Range<usize>,
    pub(super) instance: Option<Range<usize>>,
    pub(super) device: Option<Range<usize>>,
}

impl Spans {
    pub(super) fn shifted(self, by: usize) -> Spans {
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
pub(super) fn render(mut t: &[u8], mut holes: &[u8], out: &mut Vec<u8>) -> Spans {
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

pub(super) fn put_len(out: &mut impl Extend<u8>, mut n: usize) {
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

pub(super) fn take_len(s: &[u8]) -> (usize, &[u8]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
