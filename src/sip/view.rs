//! Typed access to the headers a registrar reads, parsed on demand from a [`Message`].
//! Singleton headers are checked for duplicates (RFC 4475 §3.3.8) and mandatory ones for
//! presence; every error names its header.

use super::addr::{parse_params, Contact, ContactValue, NameAddr, Params};
use super::error::Error;
use super::message::{Header, Message, Method, StartLine};
use super::name::HeaderName;
use super::scan::{self, B64TOKEN, CALL_ID, TOKEN};
use super::uri::{SipUri, Uri};
use super::via::{next_element, Via};

/// CSeq: sequence number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'b> {
    /// Below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    pub method: Method<'b>,
}

/// A media type with its parameters (Content-Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'b> {
    pub kind: &'b [u8],
    pub subtype: &'b [u8],
    pub params: Params<'b>,
}

/// Bearer credentials from Proxy-Authorization or Authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bearer<'b> {
    /// The header they came in (`ProxyAuthorization` or `Authorization`).
    pub header: HeaderName<'static>,
    /// The token bytes: the content of Cisco's `token="..."` or RFC 8898's `b64token`.
    pub token: &'b [u8],
}

/// The values of every header with one name, in wire order.
#[derive(Clone, Debug)]
pub struct Values<'h, 'b> {
    headers: &'h [Header<'b>],
    name: HeaderName<'static>,
    pos: usize,
    /// False when the index says the name appears once: stop after the first hit.
    repeated: bool,
}

impl<'b> Iterator for Values<'_, 'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        while let Some(h) = self.headers.get(self.pos) {
            self.pos += 1;
            if h.name.matches(&self.name) {
                if !self.repeated {
                    self.pos = self.headers.len();
                }
                return Some(h.value);
            }
        }
        None
    }
}

/// Parses one list element at an offset, returning it and where it ended.
type ElementParser<'b, T> = fn(&'b [u8], usize) -> Option<(T, usize)>;

/// The elements of a comma-separated list header across all its lines. After an error the
/// iterator ends.
#[derive(Clone, Debug)]
pub struct List<'h, 'b, T> {
    values: Values<'h, 'b>,
    current: &'b [u8],
    pos: usize,
    parse_at: ElementParser<'b, T>,
    failed: bool,
}

impl<'b, T> Iterator for List<'_, 'b, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if self.pos >= self.current.len() {
                self.current = self.values.next()?;
                self.pos = 0;
                if self.current.is_empty() {
                    self.failed = true;
                    return Some(Err(Error::BadValue(self.values.name)));
                }
            }
            match next_element(self.current, &mut self.pos, self.parse_at) {
                Some(Some(item)) => return Some(Ok(item)),
                Some(None) => continue,
                None => {
                    self.failed = true;
                    return Some(Err(Error::BadValue(self.values.name)));
                }
            }
        }
    }
}

fn parse_contact_at(s: &[u8], i: usize) -> Option<(ContactValue<'_>, usize)> {
    let j = scan::skip_lws(s, i);
    // `*` alone is the wildcard; `* <sip:...>` is a name-addr whose display name is `*`.
    if s.get(j) == Some(&b'*') && matches!(s.get(scan::skip_lws(s, j + 1)), None | Some(b',')) {
        return Some((ContactValue::Wildcard, j + 1));
    }
    let (contact, end) = Contact::parse_at(s, j)?;
    Some((ContactValue::Addr(contact), end))
}

fn parse_token_at(s: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let j = scan::skip_lws(s, i);
    let end = scan::span(s, j, &TOKEN);
    (end > j).then(|| (&s[j..end], end))
}

impl<'h, 'b> Message<'h, 'b> {
    /// Every value of header `name`, in order.
    pub fn values(&self, name: HeaderName<'static>) -> Values<'h, 'b> {
        let (pos, repeated) = match name {
            HeaderName::Other(_) => (0, true),
            _ => (
                self.index.first(&name).unwrap_or(self.headers.len()),
                self.index.repeated(&name),
            ),
        };
        Values {
            headers: self.headers,
            name,
            pos,
            repeated,
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: HeaderName<'static>) -> Option<&'b [u8]> {
        self.values(name).next()
    }

    /// The value of a header that may appear at most once.
    pub fn single(&self, name: HeaderName<'static>) -> Result<Option<&'b [u8]>, Error> {
        if self.index.repeated(&name) {
            return Err(Error::Duplicate(name));
        }
        Ok(self.header(name))
    }

    /// The value of a header that must appear exactly once.
    pub fn required(&self, name: HeaderName<'static>) -> Result<&'b [u8], Error> {
        self.single(name)?.ok_or(Error::Missing(name))
    }

    fn list<T>(
        &self,
        name: HeaderName<'static>,
        parse_at: ElementParser<'b, T>,
    ) -> List<'h, 'b, T> {
        List {
            values: self.values(name),
            current: b"",
            pos: 0,
            parse_at,
            failed: false,
        }
    }

    /// Call-ID: `word ["@" word]`.
    pub fn call_id(&self) -> Result<&'b [u8], Error> {
        let v = self.required(HeaderName::CallId)?;
        let ok = scan::span(v, 0, &CALL_ID) == v.len() && !v.is_empty();
        ok.then_some(v).ok_or(Error::BadValue(HeaderName::CallId))
    }

    /// CSeq; for a request its method must be the request's.
    pub fn cseq(&self) -> Result<CSeq<'b>, Error> {
        let v = self.required(HeaderName::CSeq)?;
        let bad = Error::BadValue(HeaderName::CSeq);
        let digits_end = v.iter().take_while(|b| b.is_ascii_digit()).count();
        let seq = scan::parse_decimal(&v[..digits_end], (1 << 31) - 1).ok_or(bad)? as u32;
        let m = scan::skip_lws(v, digits_end);
        if m == digits_end || !scan::all_in(&v[m..], &TOKEN) {
            return Err(bad);
        }
        let method = Method::from_token(&v[m..]).ok_or(bad)?;
        if let StartLine::Request {
            method: request_method,
            ..
        } = self.start
        {
            if request_method != method {
                return Err(Error::CSeqMethodMismatch);
            }
        }
        Ok(CSeq { seq, method })
    }

    fn address(&self, name: HeaderName<'static>) -> Result<NameAddr<'b>, Error> {
        NameAddr::parse(self.required(name)?).ok_or(Error::BadValue(name))
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr<'b>, Error> {
        self.address(HeaderName::From)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr<'b>, Error> {
        self.address(HeaderName::To)
    }

    /// Every via-parm, across repeated and comma-joined Via headers, top first.
    pub fn vias(&self) -> List<'h, 'b, Via<'b>> {
        self.list(HeaderName::Via, Via::parse_at)
    }

    /// The topmost via-parm (mandatory).
    pub fn top_via(&self) -> Result<Via<'b>, Error> {
        self.vias()
            .next()
            .unwrap_or(Err(Error::Missing(HeaderName::Via)))
    }

    /// Every Contact element across all Contact headers.
    pub fn contacts(&self) -> List<'h, 'b, ContactValue<'b>> {
        self.list(HeaderName::Contact, parse_contact_at)
    }

    /// Path values (RFC 3327), each a name-addr, across all Path headers.
    pub fn paths(&self) -> List<'h, 'b, NameAddr<'b>> {
        self.list(HeaderName::Path, NameAddr::parse_at)
    }

    /// Option tags of Require, Proxy-Require, Supported or Unsupported.
    pub fn option_tags(&self, name: HeaderName<'static>) -> List<'h, 'b, &'b [u8]> {
        self.list(name, parse_token_at)
    }

    /// Expires: 0 to 2^32-1 (RFC 3261 §20.19).
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.decimal(HeaderName::Expires, u64::from(u32::MAX))
            .map(|v| v.map(|v| v as u32))
    }

    /// Max-Forwards: 0 to 255.
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        self.decimal(HeaderName::MaxForwards, 255)
            .map(|v| v.map(|v| v as u8))
    }

    /// Min-Expires.
    pub fn min_expires(&self) -> Result<Option<u32>, Error> {
        self.decimal(HeaderName::MinExpires, u64::from(u32::MAX))
            .map(|v| v.map(|v| v as u32))
    }

    fn decimal(&self, name: HeaderName<'static>, max: u64) -> Result<Option<u64>, Error> {
        match self.single(name)? {
            None => Ok(None),
            Some(v) => scan::parse_decimal(v, max)
                .map(Some)
                .ok_or(Error::BadValue(name)),
        }
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType<'b>>, Error> {
        let Some(v) = self.single(HeaderName::ContentType)? else {
            return Ok(None);
        };
        parse_media_type(v)
            .map(Some)
            .ok_or(Error::BadValue(HeaderName::ContentType))
    }

    /// Date as seconds since the Unix epoch (RFC 3261 §20.17: RFC 1123 form, GMT only).
    pub fn date(&self) -> Result<Option<u64>, Error> {
        match self.single(HeaderName::Date)? {
            None => Ok(None),
            Some(v) => parse_http_date(v)
                .map(Some)
                .ok_or(Error::BadValue(HeaderName::Date)),
        }
    }

    /// The first Bearer credentials, from Proxy-Authorization (Cisco) or else Authorization
    /// (RFC 8898). Credentials of other schemes are skipped; a malformed Bearer is an error.
    pub fn bearer(&self) -> Result<Option<Bearer<'b>>, Error> {
        for name in [HeaderName::ProxyAuthorization, HeaderName::Authorization] {
            for v in self.values(name) {
                match parse_bearer(v) {
                    Ok(Some(token)) => {
                        return Ok(Some(Bearer {
                            header: name,
                            token,
                        }))
                    }
                    Ok(None) => {}
                    Err(()) => return Err(Error::BadValue(name)),
                }
            }
        }
        Ok(None)
    }

    /// The Request-URI, parsed; a SIP Request-URI may not carry headers (RFC 3261 §19.1.5,
    /// RFC 4475 §3.1.2.11). `None` for a response.
    pub fn request_uri(&self) -> Option<Result<Uri<'b>, Error>> {
        let StartLine::Request { uri, .. } = self.start else {
            return None;
        };
        Some(match Uri::parse(uri.as_bytes()) {
            Some(Uri::Sip(SipUri {
                headers: Some(_), ..
            }))
            | None => Err(Error::BadRequestUri),
            Some(u) => Ok(u),
        })
    }

    /// Checks the headers every request must have (RFC 3261 §8.1.1): To, From, CSeq, Call-ID,
    /// Max-Forwards (tolerated when absent, as RFC 2543 elements omit it) and Via. To and From
    /// must be a name-addr or addr-spec whose URI itself parses, of any scheme (RFC 3261
    /// §20.20, §20.39; RFC 4475 §3.1.2.14: `< sip:... >` holds no URI).
    pub fn check_mandatory(&self) -> Result<(), Error> {
        for name in [HeaderName::To, HeaderName::From] {
            if self.address(name)?.parsed_uri().is_none() {
                return Err(Error::BadValue(name));
            }
        }
        self.call_id()?;
        self.cseq()?;
        self.max_forwards()?;
        self.top_via()?;
        Ok(())
    }
}

fn parse_media_type(v: &[u8]) -> Option<MediaType<'_>> {
    let t_end = scan::span(v, 0, &TOKEN);
    let slash = scan::skip_lws(v, t_end);
    if t_end == 0 || v.get(slash) != Some(&b'/') {
        return None;
    }
    let s = scan::skip_lws(v, slash + 1);
    let s_end = scan::span(v, s, &TOKEN);
    if s_end == s {
        return None;
    }
    let end = parse_params(v, s_end)?;
    (scan::skip_lws(v, end) == v.len()).then(|| MediaType {
        kind: &v[..t_end],
        subtype: &v[s..s_end],
        params: Params::from_checked(&v[s_end..end]),
    })
}

/// `Ok(Some(token))` for Bearer, `Ok(None)` for another scheme, `Err` for a malformed Bearer.
fn parse_bearer(v: &[u8]) -> Result<Option<&[u8]>, ()> {
    let scheme_end = scan::span(v, 0, &TOKEN);
    if !v[..scheme_end].eq_ignore_ascii_case(b"Bearer") {
        return Ok(None);
    }
    let rest = scan::trim(&v[scheme_end..]);
    if scheme_end == v.len() || rest.is_empty() || !scan::is_lws(v[scheme_end]) {
        return Err(());
    }
    // RFC 8898 / RFC 6750 form: `Bearer 1*b64token *"="`.
    let t = scan::span(rest, 0, &B64TOKEN);
    if t > 0 && rest[t..].iter().all(|&b| b == b'=') {
        return Ok(Some(rest));
    }
    // Cisco form: auth-params, one of them `token="<jws>"`.
    let mut i = 0;
    loop {
        let n = scan::skip_lws(rest, i);
        let n_end = scan::span(rest, n, &TOKEN);
        let eq = scan::skip_lws(rest, n_end);
        if n_end == n || rest.get(eq) != Some(&b'=') {
            return Err(());
        }
        let v0 = scan::skip_lws(rest, eq + 1);
        let (value, end) = if rest.get(v0) == Some(&b'"') {
            let e = scan::quoted_end(rest, v0).ok_or(())?;
            (&rest[v0 + 1..e - 1], e)
        } else {
            let e = scan::span(rest, v0, &TOKEN);
            (&rest[v0..e], e)
        };
        if rest[n..n_end].eq_ignore_ascii_case(b"token") {
            return if value.is_empty() {
                Err(())
            } else {
                Ok(Some(value))
            };
        }
        let after = scan::skip_lws(rest, end);
        match rest.get(after) {
            Some(b',') => i = after + 1,
            _ => return Err(()),
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` to seconds since the epoch; only GMT is allowed.
pub fn parse_http_date(v: &[u8]) -> Option<u64> {
    let v = scan::trim(v);
    if v.len() != 29 || &v[3..5] != b", " || &v[25..] != b" GMT" {
        return None;
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0')))
    };
    let day = num(&v[5..7])?;
    let month = MONTHS.iter().position(|m| &v[8..11] == *m)? as u32 + 1;
    let year = num(&v[12..16])?;
    let (h, mi, s) = (num(&v[17..19])?, num(&v[20..22])?, num(&v[23..25])?);
    if v[7] != b' ' || v[11] != b' ' || v[16] != b' ' || v[19] != b':' || v[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    if !WEEKDAYS[days.rem_euclid(7) as usize].eq_ignore_ascii_case(&v[..3]) {
        return None;
    }
    Some(days as u64 * 86_400 + u64::from(h * 3600 + mi * 60 + s))
}

/// Appends `secs` since the epoch as an RFC 1123 date (`Mon, 30 Mar 2020 11:03:19 GMT`).
/// Year, month (1-12) and day of the month of a day count since 1970-01-01 (the inverse of
/// days_from_civil); shared by `Date` headers and the load engine's RFC 3339 times.
pub fn civil_from_days(days: i64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u64;
    (y, m, d)
}

pub fn write_http_date(secs: u64, out: &mut Vec<u8>) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let m = m as usize;
    let two = |out: &mut Vec<u8>, v: u64| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    out.extend_from_slice(WEEKDAYS[days.rem_euclid(7) as usize]);
    out.extend_from_slice(b", ");
    two(out, d);
    out.push(b' ');
    out.extend_from_slice(MONTHS[m - 1]);
    out.push(b' ');
    scan::push_decimal(out, y);
    out.push(b' ');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.extend_from_slice(b" GMT");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_refuse_other_zones() {
        let t = parse_http_date(b"Mon, 30 Mar 2020 11:03:19 GMT").unwrap();
        assert_eq!(t, 1_585_566_199);
        let mut out = Vec::new();
        write_http_date(t, &mut out);
        assert_eq!(out, b"Mon, 30 Mar 2020 11:03:19 GMT");
        assert_eq!(parse_http_date(b"Fri, 01 Jan 2010 16:00:00 EST"), None);
        assert_eq!(parse_http_date(b"Sat, 30 Mar 2020 11:03:19 GMT"), None);
    }

    #[test]
    fn bearer_forms() {
        assert_eq!(
            parse_bearer(br#"Bearer token="eyJ.a.b""#),
            Ok(Some(&b"eyJ.a.b"[..]))
        );
        assert_eq!(
            parse_bearer(b"Bearer eyJ.a-b_c.d~+/=="),
            Ok(Some(&b"eyJ.a-b_c.d~+/=="[..]))
        );
        assert_eq!(
            parse_bearer(br#"bearer realm="x", token="t""#),
            Ok(Some(&b"t"[..]))
        );
        assert_eq!(
            parse_bearer(b"NoOneKnowsThisScheme opaque-data=here"),
            Ok(None)
        );
        assert_eq!(parse_bearer(b"Bearer"), Err(()));
        assert_eq!(parse_bearer(br#"Bearer token="""#), Err(()));
        assert_eq!(parse_bearer(b"Bearer a b"), Err(()));
    }
}
