//! Typed views of address headers: From, To, Contact (RFC 3261 §20.10, §20.20, §20.39), and
//! their header parameters. Each view is parsed on demand from a borrowed header value.

use super::scan::{self, PARAM_VALUE, TOKEN};
use super::uri::{SipUri, Uri};

/// Header parameters (`;name[=value]...`), checked when the header was parsed. Names and values
/// are trimmed of white space; a quoted value keeps its quotes (see [`unquote`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params<'b> {
    raw: &'b [u8],
}

impl<'b> Params<'b> {
    /// Wraps a run already checked by `parse_params`.
    pub(crate) fn from_checked(raw: &'b [u8]) -> Self {
        Params { raw }
    }

    /// The parameters as written, starting at the first `;` (empty when there are none).
    pub fn raw(&self) -> &'b [u8] {
        self.raw
    }

    /// Iterates `(name, value)` pairs in order.
    pub fn iter(&self) -> ParamIter<'b> {
        ParamIter { s: self.raw, i: 0 }
    }

    /// The value of parameter `name` (case-insensitive): `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&'b [u8]>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// Iterator over checked header parameters.
#[derive(Clone, Debug)]
pub struct ParamIter<'b> {
    s: &'b [u8],
    i: usize,
}

impl<'b> Iterator for ParamIter<'b> {
    type Item = (&'b [u8], Option<&'b [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        // The run was validated by `parse_params`, so its shape is known here.
        let s = self.s;
        let mut i = scan::skip_lws(s, self.i);
        if s.get(i) != Some(&b';') {
            return None;
        }
        i = scan::skip_lws(s, i + 1);
        let name_end = scan::span(s, i, &TOKEN);
        let name = &s[i..name_end];
        let mut j = scan::skip_lws(s, name_end);
        let mut value = None;
        if s.get(j) == Some(&b'=') {
            let v = scan::skip_lws(s, j + 1);
            let end = if s.get(v) == Some(&b'"') {
                scan::quoted_end(s, v).unwrap_or(s.len())
            } else {
                scan::span(s, v, &PARAM_VALUE)
            };
            value = Some(&s[v..end]);
            j = end;
        }
        self.i = j;
        Some((name, value))
    }
}

/// Checks a run of `*(LWS ";" LWS token [LWS "=" LWS (token / host / quoted-string)])` from
/// `i`, returning where it stops (at `,`, `>`-free end, or anything that is not a parameter).
/// An empty name (`;;`, RFC 4475 §3.1.2.1) is an error. Each parameter is shown to `visit` in
/// the same pass (name and value trimmed, a quoted value with its quotes); `visit` refuses a
/// value by returning `None`.
#[inline]
pub(crate) fn parse_params_with<'b>(
    s: &'b [u8],
    mut i: usize,
    mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>) -> Option<()>,
) -> Option<usize> {
    loop {
        let at = scan::skip_lws(s, i);
        if s.get(at) != Some(&b';') {
            return Some(i);
        }
        let n = scan::skip_lws(s, at + 1);
        let name_end = scan::span(s, n, &TOKEN);
        if name_end == n {
            return None;
        }
        i = name_end;
        let eq = scan::skip_lws(s, name_end);
        let mut value = None;
        if s.get(eq) == Some(&b'=') {
            let v = scan::skip_lws(s, eq + 1);
            i = if s.get(v) == Some(&b'"') {
                scan::quoted_end(s, v)?
            } else {
                let end = scan::span(s, v, &PARAM_VALUE);
                if end == v {
                    return None;
                }
                end
            };
            value = Some(&s[v..i]);
        }
        visit(&s[n..name_end], value)?;
    }
}

/// [`parse_params_with`] without a visitor.
pub(crate) fn parse_params(s: &[u8], i: usize) -> Option<usize> {
    parse_params_with(s, i, |_, _| Some(()))
}

/// The content of a quoted string without its quotes (quoted-pairs left as written), or the
/// value itself when it is not quoted.
pub fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// `name-addr` or `addr-spec` with header parameters: the value of From, To, and of each
/// Contact, Path, Route element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'b> {
    /// The display name: a quoted string's content (quoted-pairs kept) or the tokens as written.
    pub display: Option<&'b [u8]>,
    /// The URI text, not yet parsed.
    pub uri: &'b [u8],
    /// True when the URI was in `<...>`; then URI parameters stay inside it (RFC 3261 §20.10).
    pub bracketed: bool,
    /// Header parameters after the address (for an addr-spec: everything after the first `;`).
    pub params: Params<'b>,
    /// The `tag` parameter (From/To), found while the parameters were checked.
    pub tag: Option<&'b [u8]>,
}

impl<'b> NameAddr<'b> {
    /// Parses exactly one address from the whole of `s`.
    pub fn parse(s: &'b [u8]) -> Option<Self> {
        let (addr, end) = Self::parse_at(s, 0)?;
        (scan::skip_lws(s, end) == s.len()).then_some(addr)
    }

    /// Parses one address starting at `i`; returns it and where it ended (at `,` or the end).
    pub(crate) fn parse_at(s: &'b [u8], i: usize) -> Option<(Self, usize)> {
        Self::parse_at_with(s, i, |_, _| Some(()))
    }

    /// As [`NameAddr::parse_at`], showing every header parameter to `visit` on the way.
    #[inline]
    pub(crate) fn parse_at_with(
        s: &'b [u8],
        i: usize,
        mut visit: impl FnMut(&'b [u8], Option<&'b [u8]>) -> Option<()>,
    ) -> Option<(Self, usize)> {
        let mut tag = None;
        let mut visit = |name: &'b [u8], value: Option<&'b [u8]>| {
            if name.eq_ignore_ascii_case(b"tag") {
                // tag-param = "tag" EQUAL token, once: a flag or a second tag would let
                // readers disagree on the dialog's tag.
                if tag.is_some() || value.is_none() {
                    return None;
                }
                tag = value;
            }
            visit(name, value)
        };
        let mut i = scan::skip_lws(s, i);
        let mut display = None;
        match s.get(i)? {
            b'"' => {
                let end = scan::quoted_end(s, i)?;
                display = Some(&s[i + 1..end - 1]);
                i = scan::skip_lws(s, end);
                if s.get(i) != Some(&b'<') {
                    return None;
                }
            }
            b'<' => {}
            _ => {
                // Token display names (`*(token LWS)`) end at `<`; RFC 4475 §3.1.1.6 accepts
                // one without white space before `<`. Anything else is an addr-spec.
                let start = i;
                let mut j = i;
                loop {
                    let t = scan::span(s, j, &TOKEN);
                    if t == j {
                        break;
                    }
                    j = scan::skip_lws(s, t);
                }
                if j > start && s.get(j) == Some(&b'<') {
                    display = Some(scan::trim(&s[start..j]));
                    i = j;
                }
            }
        }
        if s.get(i) == Some(&b'<') {
            let close = i + memchr::memchr(b'>', &s[i..])?;
            let uri = &s[i + 1..close];
            let end = parse_params_with(s, close + 1, &mut visit)?;
            let params = Params {
                raw: &s[close + 1..end],
            };
            return Some((
                NameAddr {
                    display,
                    uri,
                    bracketed: true,
                    params,
                    tag,
                },
                end,
            ));
        }
        // addr-spec: the URI runs to the first `;` (header parameters follow), `,` or white
        // space. It may not hold `?` (RFC 3261 §20: such a URI MUST be in brackets; RFC 4475
        // §3.1.2.13).
        let uri_end = i + s[i..]
            .iter()
            .position(|&b| matches!(b, b';' | b',') || scan::is_lws(b))
            .unwrap_or(s.len() - i);
        let uri = &s[i..uri_end];
        if uri.is_empty() || memchr::memchr(b'?', uri).is_some() {
            return None;
        }
        let end = parse_params_with(s, uri_end, &mut visit)?;
        let params = Params {
            raw: &s[uri_end..end],
        };
        Some((
            NameAddr {
                display: None,
                uri,
                bracketed: false,
                params,
                tag,
            },
            end,
        ))
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'b [u8]> {
        self.tag
    }

    /// The URI, parsed.
    pub fn parsed_uri(&self) -> Option<Uri<'b>> {
        Uri::parse(self.uri)
    }

    /// The URI when it is `sip:` or `sips:`.
    pub fn sip_uri(&self) -> Option<SipUri<'b>> {
        SipUri::parse(self.uri)
    }
}

/// One Contact value (RFC 3261 §20.10) with the contact parameters a registrar reads checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact<'b> {
    pub addr: NameAddr<'b>,
    /// `expires` (0 to 2^32-1).
    pub expires: Option<u32>,
    /// `q`, in thousandths (0 to 1000).
    pub q: Option<u16>,
    /// `+sip.instance` without quotes (`<urn:uuid:...>`), RFC 5626 §4.1.
    pub instance: Option<&'b [u8]>,
    /// The Jabber device name from `+u.sip!devicename.ccm.cisco.com`, without quotes.
    pub device_name: Option<&'b [u8]>,
}

/// Cisco's contact parameter naming the Jabber device (`"CSFrado"`).
pub const DEVICE_NAME_PARAM: &str = "+u.sip!devicename.ccm.cisco.com";

impl<'b> Contact<'b> {
    /// Parses one Contact element at `i`, reading the contact parameters a registrar needs in
    /// the same pass that checks them.
    pub(crate) fn parse_at(s: &'b [u8], i: usize) -> Option<(Self, usize)> {
        let (mut expires, mut q, mut instance, mut device_name) = (None, None, None, None);
        // Each of these may appear once: with two, readers taking the first and the last would
        // disagree (a token's `dev` checked against one device name, another one stored).
        fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(v);
            Some(())
        }
        let (addr, end) = NameAddr::parse_at_with(s, i, |name, value| {
            if name.eq_ignore_ascii_case(b"expires") {
                once(
                    &mut expires,
                    scan::parse_decimal(value?, u64::from(u32::MAX))? as u32,
                )
            } else if name.eq_ignore_ascii_case(b"q") {
                once(&mut q, parse_qvalue(value?)?)
            } else if name.eq_ignore_ascii_case(b"+sip.instance") {
                once(&mut instance, unquote(value?))
            } else if name.eq_ignore_ascii_case(DEVICE_NAME_PARAM.as_bytes()) {
                once(&mut device_name, unquote(value?))
            } else {
                Some(())
            }
        })?;
        Some((
            Contact {
                addr,
                expires,
                q,
                instance,
                device_name,
            },
            end,
        ))
    }

    /// `+sip.instance` without quotes (`<urn:uuid:...>`), RFC 5626 §4.1.
    pub fn instance(&self) -> Option<&'b [u8]> {
        self.instance
    }

    /// The Jabber device name from `+u.sip!devicename.ccm.cisco.com`, without quotes.
    pub fn device_name(&self) -> Option<&'b [u8]> {
        self.device_name
    }
}

/// `qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")])`, in thousandths.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &v[v.len()..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = frac.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    thousandths *= 10u16.pow(3 - frac.len() as u32);
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One element of a Contact header field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactValue<'b> {
    /// `*`: every binding (valid only alone and with Expires 0, RFC 3261 §10.3 step 6).
    Wildcard,
    Addr(Contact<'b>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_names_keep_escaped_quotes() {
        let a = NameAddr::parse(
            br#""J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display, Some(&br#"J Rosenberg \\\""#[..]));
        assert_eq!(a.uri, b"sip:jdrosen@example.com");
        assert_eq!(a.tag(), Some(&b"98asjd8"[..]));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let a = NameAddr::parse(b"sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(a.uri, b"sip:+19725552222@gw1.example.net");
        assert_eq!(a.params.get("unknownparam"), Some(None));
        let b = NameAddr::parse(b"<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(b.uri, b"sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(b.params.get("unknownparam"), None);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        assert!(NameAddr::parse(br#""Mr. J. User <sip:j.user@example.com>"#).is_none());
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@example.com>").is_none());
        assert!(NameAddr::parse(br#""Joe" <sip:joe@example.org>;;;;"#).is_none());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:x%3E").is_none());
        assert!(NameAddr::parse(b"caller<sip:caller@example.com>").is_some());
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"0.33"), Some(330));
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.0"), Some(1000));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
    }
}
