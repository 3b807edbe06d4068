//! SIP and SIPS URIs (RFC 3261 §19.1, IPv6 references per RFC 5118), borrowed from the buffer,
//! and the canonical address-of-record used as the binding key (§10.3 step 5).

use super::scan::{self, HOST, IPV6, URIC, URI_HEADER, URI_PARAM, URI_PASSWORD, URI_USER};
use std::fmt;
use std::net::Ipv4Addr;

/// The host part of a SIP URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'b> {
    /// A host name, as written (compare case-insensitively).
    Name(&'b str),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// What stood between `[` and `]`. Kept as text: RFC 5118 §4.10 asks parsers to tolerate
    /// the three-colon form that RFC 3261's ABNF allowed and `std::net` refuses.
    V6(&'b str),
}

/// A `sip:` or `sips:` URI. Every part borrows the input; escapes are kept as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipUri<'b> {
    pub sips: bool,
    /// The user part, still escaped; it may hold `;` (RFC 4475 §3.1.1.9).
    pub user: Option<&'b [u8]>,
    pub password: Option<&'b [u8]>,
    pub host: Host<'b>,
    pub port: Option<u16>,
    /// The parameters, starting with `;` (empty when there are none).
    pub params: &'b [u8],
    /// The headers after `?` (without it), when present.
    pub headers: Option<&'b [u8]>,
}

/// Any URI a SIP header may carry: SIP/SIPS parsed, any other scheme kept whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uri<'b> {
    Sip(SipUri<'b>),
    /// An absolute URI of another scheme (`tel:`, `isbn:`, `http:` ...).
    Other {
        scheme: &'b str,
        rest: &'b [u8],
    },
}

impl<'b> Uri<'b> {
    /// Parses `s` as a whole URI; `None` when it is not one.
    pub fn parse(s: &'b [u8]) -> Option<Self> {
        let colon = memchr::memchr(b':', s)?;
        let scheme = &s[..colon];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return None;
        }
        let rest = &s[colon + 1..];
        if scheme.eq_ignore_ascii_case(b"sip") {
            SipUri::parse_after_scheme(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            SipUri::parse_after_scheme(rest, true).map(Uri::Sip)
        } else if scan::all_in(rest, &URIC) {
            // Checked ASCII above.
            let scheme = std::str::from_utf8(scheme).ok()?;
            Some(Uri::Other { scheme, rest })
        } else {
            None
        }
    }

    /// The SIP URI, `None` for another scheme.
    pub fn sip(&self) -> Option<&SipUri<'b>> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }
}

/// Checks `;name[=value]` runs of URI parameters; every name non-empty, escapes well formed.
fn params_ok(s: &[u8]) -> bool {
    if s.is_empty() {
        return true;
    }
    if s[0] != b';' {
        return false;
    }
    s[1..].split(|&b| b == b';').all(|p| {
        let (name, value) = match memchr::memchr(b'=', p) {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        };
        scan::all_in(name, &URI_PARAM)
            && scan::escapes_ok(name)
            && value.is_none_or(|v| scan::all_in(v, &URI_PARAM) && scan::escapes_ok(v))
    })
}

fn headers_ok(s: &[u8]) -> bool {
    s.split(|&b| b == b'&')
        .all(|h| match memchr::memchr(b'=', h) {
            Some(eq) => {
                scan::all_in(&h[..eq], &URI_HEADER)
                    && h[eq + 1..].iter().all(|&b| URI_HEADER[b as usize])
                    && scan::escapes_ok(h)
            }
            None => false,
        })
}

impl<'b> SipUri<'b> {
    /// Parses a whole `sip:`/`sips:` URI; `None` for anything else.
    pub fn parse(s: &'b [u8]) -> Option<Self> {
        Uri::parse(s)?.sip().copied()
    }

    fn parse_after_scheme(s: &'b [u8], sips: bool) -> Option<Self> {
        // `@` can appear only as the userinfo delimiter: params and headers must escape it.
        let (user, password, rest) = match memchr::memchr(b'@', s) {
            Some(at) => {
                let info = &s[..at];
                let (user, password) = match memchr::memchr(b':', info) {
                    Some(c) => (&info[..c], Some(&info[c + 1..])),
                    None => (info, None),
                };
                if !scan::all_in(user, &URI_USER) || !scan::escapes_ok(user) {
                    return None;
                }
                if let Some(p) = password {
                    if !p.iter().all(|&b| URI_PASSWORD[b as usize]) || !scan::escapes_ok(p) {
                        return None;
                    }
                }
                (Some(user), password, &s[at + 1..])
            }
            None => (None, None, s),
        };
        let (before_headers, headers) = match memchr::memchr(b'?', rest) {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        if headers.is_some_and(|h| !headers_ok(h)) {
            return None;
        }
        let (hostport, params) = match memchr::memchr(b';', before_headers) {
            Some(p) => (&before_headers[..p], &before_headers[p..]),
            None => (before_headers, &before_headers[before_headers.len()..]),
        };
        if !params_ok(params) {
            return None;
        }
        let (host, port) = parse_hostport(hostport)?;
        Some(SipUri {
            sips,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The value of URI parameter `name` (case-insensitive): `Some(None)` when it has no value.
    pub fn param(&self, name: &str) -> Option<Option<&'b [u8]>> {
        if self.params.is_empty() {
            return None;
        }
        self.params[1..].split(|&b| b == b';').find_map(|p| {
            let (n, v) = match memchr::memchr(b'=', p) {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            };
            n.eq_ignore_ascii_case(name.as_bytes()).then_some(v)
        })
    }

    /// The user part with its escapes decoded once, appended to `out`.
    pub fn user_unescaped_into(&self, out: &mut Vec<u8>) {
        if let Some(u) = self.user {
            scan::unescape_into(u, out);
        }
    }

    /// True when the user part, unescaped, equals `user` exactly (user parts are
    /// case-sensitive, RFC 3261 §19.1.4).
    pub fn user_is(&self, user: &[u8]) -> bool {
        match self.user {
            None => user.is_empty(),
            Some(u) if memchr::memchr(b'%', u).is_none() => u == user,
            Some(u) => {
                let mut tmp = Vec::with_capacity(u.len());
                scan::unescape_into(u, &mut tmp);
                tmp == user
            }
        }
    }
}

/// `host [":" port]`, with the IPv6 reference in brackets (RFC 5118 §4.3: inside the brackets
/// everything is address, so `[2001:db8::10:5070]` has no port).
pub(crate) fn parse_hostport(s: &[u8]) -> Option<(Host<'_>, Option<u16>)> {
    let (host, rest) = if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s)?;
        let inner = &s[1..close];
        if !scan::all_in(inner, &IPV6) || memchr::memchr(b':', inner).is_none() {
            return None;
        }
        (Host::V6(std::str::from_utf8(inner).ok()?), &s[close + 1..])
    } else {
        // One pass: the host name's extent, and whether it is all digits and dots (IPv4).
        let mut end = 0;
        let mut dotted = true;
        for &b in s {
            if !HOST[b as usize] {
                break;
            }
            dotted &= b.is_ascii_digit() || b == b'.';
            end += 1;
        }
        let name = &s[..end];
        if name.is_empty() || name[0] == b'.' || name[0] == b'-' {
            return None;
        }
        let host = if dotted {
            Host::V4(parse_ipv4(name)?)
        } else {
            Host::Name(std::str::from_utf8(name).ok()?)
        };
        (host, &s[end..])
    };
    let port = match rest {
        [] => None,
        [b':', digits @ ..] => Some(scan::parse_decimal(digits, u64::from(u16::MAX))? as u16),
        _ => return None,
    };
    Some((host, port))
}

/// Dotted-quad IPv4: four decimal octets, no leading zeros beyond a lone 0 (as `std::net`).
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, o) in octets.iter_mut().enumerate() {
        if n > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            // Saturating: a run of digits longer than an octet is refused below, but MUST NOT
            // overflow on the way there (fuzz finding `uri-ipv4-digits-overflow`).
            v = v.saturating_mul(10).saturating_add(u32::from(d));
            i += 1;
        }
        let len = i - start;
        // One to three digits, no leading zero but a lone 0, at most 255 (as std::net).
        if len == 0 || len > 3 || (len > 1 && s[start] == b'0') || v > 255 {
            return None;
        }
        *o = v as u8;
    }
    (i == s.len()).then_some(Ipv4Addr::from(octets))
}

/// A canonical address-of-record: scheme, user with escapes of unreserved characters decoded
/// and all others in upper-case hex, lower-case host (IPv6 in RFC 5952 form), port when given;
/// no password, parameters or headers (RFC 3261 §10.3 step 5, §19.1.4). Two URIs that name the
/// same AOR give equal `Aor`s, different AORs differ, and a NUL in the user part survives
/// (`%00`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(Box<str>);

impl Aor {
    /// The AOR of `uri`.
    pub fn new(uri: &SipUri<'_>) -> Self {
        let mut out = Vec::with_capacity(64);
        write_aor(uri, &mut out);
        // Every byte written is ASCII: escaped user, checked host, digits.
        Aor(String::from_utf8(out).unwrap_or_default().into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aor({})", self.0)
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn write_ipv4(a: Ipv4Addr, out: &mut Vec<u8>) {
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        scan::push_decimal(out, u64::from(octet));
    }
}

/// RFC 3261 §19.1.4: an escape equals its character only when that character is unreserved.
/// So `%61` becomes `a`, while `%3B` stays an escape (with upper-case digits) and never merges
/// with a literal `;`. Every user part gets exactly one spelling.
fn write_canonical_user(user: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut i = 0;
    while i < user.len() {
        let b = user[i];
        if b == b'%' && i + 2 < user.len() {
            let decoded = scan::decode_hex_pair(user[i + 1], user[i + 2]);
            match decoded {
                Some(d) if UNRESERVED[d as usize] => out.push(d),
                Some(d) => out.extend_from_slice(&[
                    b'%',
                    HEX[usize::from(d >> 4)],
                    HEX[usize::from(d & 15)],
                ]),
                // Unreachable for a parsed URI (escapes were checked); kept as written.
                None => out.extend_from_slice(&user[i..i + 3]),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
}

/// RFC 3261 `unreserved`: alphanumerics and `-_.!~*'()`.
static UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        c += 1;
    }
    t
};

/// Appends the canonical AOR of `uri` (see [`Aor`]) to `out`.
pub fn write_aor(uri: &SipUri<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(if uri.sips { b"sips:" } else { b"sip:" });
    if let Some(user) = uri.user {
        write_canonical_user(user, out);
        out.push(b'@');
    }
    match uri.host {
        Host::Name(n) => out.extend(n.bytes().map(|b| b.to_ascii_lowercase())),
        Host::V4(a) => write_ipv4(a, out),
        Host::V6(a) => {
            out.push(b'[');
            match a.parse::<std::net::Ipv6Addr>() {
                // RFC 5952 text: one spelling per address.
                Ok(addr) => out.extend_from_slice(addr.to_string().as_bytes()),
                // Odd forms RFC 5118 §4.10 tolerates stay as written, lower-cased.
                Err(_) => out.extend(a.bytes().map(|b| b.to_ascii_lowercase())),
            }
            out.push(b']');
        }
    }
    if let Some(p) = uri.port {
        out.push(b':');
        scan::push_decimal(out, u64::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        SipUri::parse(s.as_bytes()).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn user_may_hold_a_semicolon_and_an_escaped_at() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Host::Name("example.com"));
        assert!(u.params.is_empty());
        assert_eq!(
            Aor::new(&u).as_str(),
            "sip:user;par=u%40example.net@example.com"
        );
    }

    #[test]
    fn ipv6_references_and_ports() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!((u.host, u.port), (Host::V6("2001:db8::10"), Some(5070)));
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!((u.host, u.port), (Host::V6("2001:db8::10:5070"), None));
        assert!(SipUri::parse(b"sip:2001:db8::10").is_none());
        assert!(SipUri::parse(b"sip:[2001:db8:::192.0.2.1]").is_some());
    }

    #[test]
    fn aor_drops_params_and_unescapes_once() {
        let a = Aor::new(&sip("SIP:%61lice@Example.COM;transport=tls"));
        let b = Aor::new(&sip("sip:alice@example.com"));
        assert_eq!(a, b);
        let nul = Aor::new(&sip("sip:null-%00-null@example.com"));
        assert_eq!(nul.as_str(), "sip:null-%00-null@example.com");
        assert_ne!(Aor::new(&sip("sip:%00@h")), Aor::new(&sip("sip:%00%00@h")));
    }

    #[test]
    fn ipv4_like_std() {
        for s in [
            "0.0.0.0",
            "10.10.10.1",
            "255.255.255.255",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.1.1.1",
            "1..1.1",
            "",
        ] {
            assert_eq!(parse_ipv4(s.as_bytes()), s.parse().ok(), "{s}");
        }
    }

    #[test]
    fn other_schemes_are_kept_whole() {
        assert_eq!(
            Uri::parse(b"isbn:2983792873"),
            Some(Uri::Other {
                scheme: "isbn",
                rest: b"2983792873"
            })
        );
        assert!(Uri::parse(b"sip:user@example.com >").is_none());
        assert!(Uri::parse(b" sip:user@example.com").is_none());
    }
}
