//! Request and response parsing in the httparse shape: the caller owns the header array, every
//! header borrows the input buffer, and incomplete input is `Status::Partial`, not an error.

use super::error::Error;
use super::name::{HeaderName, KNOWN_NAMES};
use super::scan::{self, TOKEN};

/// Result of parsing input that may not be complete yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// The whole message (or head) was present.
    Complete(T),
    /// More bytes are needed; nothing was wrong so far.
    Partial,
}

impl<T> Status<T> {
    /// The completed value, `None` when partial.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial => None,
        }
    }
}

/// A SIP method. The set is open: an unknown method parses (the registrar answers 501), and
/// matching is case-sensitive (RFC 3261 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method<'b> {
    Register,
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Subscribe,
    Notify,
    Refer,
    Message,
    Info,
    Prack,
    Update,
    Publish,
    /// Any other token.
    Extension(&'b str),
}

impl<'b> Method<'b> {
    /// The method named by `token` (already checked to be an RFC 3261 token).
    pub fn parse(token: &'b str) -> Self {
        match token {
            "REGISTER" => Method::Register,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other),
        }
    }

    /// The method named by `token` (already checked to be an RFC 3261 token): known methods are
    /// matched as bytes, and only an extension method pays for the UTF-8 check of its name.
    pub fn from_token(token: &'b [u8]) -> Option<Self> {
        Some(match token {
            b"REGISTER" => Method::Register,
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"PUBLISH" => Method::Publish,
            other => Method::Extension(std::str::from_utf8(other).ok()?),
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &'b str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }

    /// True for the methods of RFC 3261 and its common extensions; false for `Extension`.
    pub fn is_known(&self) -> bool {
        !matches!(self, Method::Extension(_))
    }
}

/// One header line: its name and its value, trimmed of surrounding white space. A folded value
/// (RFC 3261 §7.3.1) keeps its inner CRLF + white space; the typed views read that as LWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'b> {
    pub name: HeaderName<'b>,
    pub value: &'b [u8],
}

/// An empty header slot, for initialising caller-owned arrays.
pub const EMPTY_HEADER: Header<'static> = Header {
    name: HeaderName::Other(""),
    value: b"",
};

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'b> {
    Request { method: Method<'b>, uri: &'b str },
    Response { code: u16, reason: &'b str },
}

const ABSENT: u16 = u16::MAX;

/// Where the known headers are: the first occurrence of each and whether it repeats, filled
/// while the header lines are read so typed access never searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderIndex {
    first: [u16; KNOWN_NAMES],
    repeated: u64,
}

impl HeaderIndex {
    const fn new() -> Self {
        HeaderIndex {
            first: [ABSENT; KNOWN_NAMES],
            repeated: 0,
        }
    }

    #[inline]
    fn note(&mut self, name: &HeaderName<'_>, at: usize) {
        if let Some(k) = name.index() {
            if self.first[k] == ABSENT {
                self.first[k] = at as u16;
            } else {
                self.repeated |= 1 << k;
            }
        }
    }

    #[inline]
    pub(crate) fn first(&self, name: &HeaderName<'_>) -> Option<usize> {
        let k = name.index()?;
        (self.first[k] != ABSENT).then_some(usize::from(self.first[k]))
    }

    #[inline]
    pub(crate) fn repeated(&self, name: &HeaderName<'_>) -> bool {
        name.index().is_some_and(|k| self.repeated & (1 << k) != 0)
    }
}

/// A parsed message: start line, headers in wire order, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'h, 'b> {
    pub start: StartLine<'b>,
    pub headers: &'h [Header<'b>],
    pub body: &'b [u8],
    /// Length of the header section including the empty line.
    pub head_len: usize,
    /// The Content-Length value, when the message had one.
    pub content_length: Option<u32>,
    pub(crate) index: HeaderIndex,
}

impl<'h, 'b> Message<'h, 'b> {
    /// Total length on the wire: head plus body.
    pub fn len(&self) -> usize {
        self.head_len + self.body.len()
    }

    /// Never true: a message has at least a start line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<Method<'b>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
}

/// Lengths that framing may not exceed. The defaults fit the longest RFC 4475 messages and the
/// seed's Jabber REGISTER (about 1.5 KB of headers, a 900-byte token, a 1,271-byte body) with room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Header section, start line and empty line included.
    pub max_head: usize,
    /// Body, as declared by Content-Length.
    pub max_body: usize,
    /// Header lines (folded lines count once).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 48 * 1024,
            max_headers: 96,
        }
    }
}

/// Parses one message from `buf`. The header section must be closed by an empty line, else the
/// result is `Partial`. With a Content-Length the body is exactly that long (`Partial` until it
/// is all there; bytes after it are not part of the message); without one the body is the rest
/// of `buf`, as for a datagram.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Status<Message<'h, 'b>>, Error> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(Status::Partial);
    };
    let head_len = end + 4;
    let head = parse_head(&buf[..head_len], headers)?;
    let body = match head.content_length {
        Some(cl) => match buf.get(head_len..head_len + cl as usize) {
            Some(body) => body,
            None => return Ok(Status::Partial),
        },
        None => &buf[head_len..],
    };
    Ok(Status::Complete(head.into_message(headers, body)))
}

/// Reads what it can of a message whose header section is malformed, to answer it (400 needs
/// the Vias, From, To, Call-ID and CSeq). The start line must parse; header lines that do not
/// (no colon, a name that is not a token, a bare CR or LF inside) are skipped, as is anything
/// past the caller's array. Only for error paths: a message that [`parse`] accepts gives the
/// same headers here.
pub fn parse_lenient<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Message<'h, 'b>, Error> {
    let head_len = memchr::memmem::find(buf, b"\r\n\r\n").map_or(buf.len(), |at| at + 4);
    let head = &buf[..head_len];
    let first = memchr::memmem::find(head, b"\r\n").ok_or(Error::HeadUnterminated)?;
    let line = &head[..first];
    let start = match parse_start_line(line) {
        // A request in another SIP version is answered (505): read its method and URI.
        Err(Error::UnsupportedVersion) if !line.starts_with(b"SIP/") => {
            let mut parts = line.splitn(3, |&b| b == b' ');
            let method = parts
                .next()
                .and_then(Method::from_token)
                .ok_or(Error::BadMethod)?;
            let uri = parts
                .next()
                .and_then(|u| std::str::from_utf8(u).ok())
                .ok_or(Error::BadRequestUri)?;
            StartLine::Request { method, uri }
        }
        other => other?,
    };
    let mut index = HeaderIndex::new();
    let mut count = 0;
    let mut content_length = None;
    // Logical lines: CRLF-separated, a line starting with SP or HT continuing the one before.
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut pos = first + 2;
    while pos < head.len() {
        let end = memchr::memmem::find(&head[pos..], b"\r\n").map_or(head.len(), |k| pos + k);
        if end == pos {
            break;
        }
        match (lines.last_mut(), head[pos]) {
            (Some(last), b' ' | b'\t') => last.1 = end,
            _ => lines.push((pos, end)),
        }
        pos = end + 2;
    }
    for (s, e) in lines {
        let line = &head[s..e];
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = scan::trim(&line[..colon]);
        let value = scan::trim(&line[colon + 1..]);
        let clean = |v: &[u8]| {
            !v.iter().enumerate().any(|(i, &b)| {
                (b == b'\r' && v.get(i + 1) != Some(&b'\n'))
                    || (b == b'\n' && (i == 0 || v[i - 1] != b'\r'))
            })
        };
        if !scan::all_in(name, &TOKEN)
            || !clean(value)
            || count >= headers.len()
            || count >= usize::from(ABSENT)
        {
            continue;
        }
        let name = HeaderName::parse(name);
        if name == HeaderName::ContentLength && content_length.is_none() {
            content_length = scan::parse_decimal(value, u64::from(u32::MAX)).map(|n| n as u32);
        }
        headers[count] = Header { name, value };
        index.note(&name, count);
        count += 1;
    }
    let rest = &buf[head_len..];
    let body = match content_length {
        Some(n) => rest.get(..n as usize).unwrap_or(rest),
        None => rest,
    };
    let head = Head {
        start,
        count,
        head_len,
        content_length,
        index,
    };
    Ok(head.into_message(headers, body))
}

/// A parsed header section, before the caller's array is reborrowed.
pub(crate) struct Head<'b> {
    pub(crate) start: StartLine<'b>,
    pub(crate) count: usize,
    pub(crate) head_len: usize,
    pub(crate) content_length: Option<u32>,
    pub(crate) index: HeaderIndex,
}

impl<'b> Head<'b> {
    pub(crate) fn into_message<'h>(
        self,
        headers: &'h mut [Header<'b>],
        body: &'b [u8],
    ) -> Message<'h, 'b> {
        let headers: &'h [Header<'b>] = headers;
        Message {
            start: self.start,
            headers: &headers[..self.count],
            body,
            head_len: self.head_len,
            content_length: self.content_length,
            index: self.index,
        }
    }
}

/// Index just past the CRLF that ends the line starting at `from`. Any other CR or LF is an
/// error; running out of input means the caller passed a head without its final empty line.
#[inline]
fn line_end(head: &[u8], from: usize) -> Result<(usize, usize), Error> {
    let k = from + memchr::memchr2(b'\r', b'\n', &head[from..]).ok_or(Error::HeadUnterminated)?;
    if head[k] == b'\r' && head.get(k + 1) == Some(&b'\n') {
        Ok((k, k + 2))
    } else {
        Err(Error::BareLineEnd)
    }
}

/// Parses a header section that ends with CRLF CRLF (`head` is exactly that section).
pub(crate) fn parse_head<'b>(
    head: &'b [u8],
    headers: &mut [Header<'b>],
) -> Result<Head<'b>, Error> {
    debug_assert!(head.ends_with(b"\r\n\r\n"));
    let (eol, mut pos) = line_end(head, 0)?;
    let start = parse_start_line(&head[..eol])?;
    let mut index = HeaderIndex::new();
    let mut count = 0;
    let mut content_length: Option<u32> = None;
    loop {
        if head[pos] == b'\r' {
            // The empty line: CR LF (guaranteed by the section's end).
            if head.get(pos + 1) != Some(&b'\n') {
                return Err(Error::BareLineEnd);
            }
            break;
        }
        let name_end = scan::span(head, pos, &TOKEN);
        if name_end == pos {
            return Err(Error::BadHeaderName);
        }
        let name_bytes = &head[pos..name_end];
        let mut colon = name_end;
        while matches!(head[colon], b' ' | b'\t') {
            colon += 1;
        }
        if head[colon] != b':' {
            return Err(Error::MissingColon);
        }
        let value_start = colon + 1;
        let (mut eol, mut next) = line_end(head, value_start)?;
        // RFC 3261 §7.3.1: a line starting with white space continues the previous one.
        while matches!(head[next], b' ' | b'\t') {
            (eol, next) = line_end(head, next)?;
        }
        let value = scan::trim(&head[value_start..eol]);
        let name = HeaderName::parse(name_bytes);
        if name == HeaderName::ContentLength {
            let n = scan::parse_decimal(value, u64::from(u32::MAX))
                .ok_or(Error::BadContentLength)? as u32;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(Error::ConflictingContentLength);
            }
            content_length = Some(n);
        }
        // The index stores positions as u16 (ABSENT excluded).
        if count >= usize::from(ABSENT) {
            return Err(Error::TooManyHeaders);
        }
        let slot = headers.get_mut(count).ok_or(Error::TooManyHeaders)?;
        *slot = Header { name, value };
        index.note(&name, count);
        count += 1;
        pos = next;
    }
    Ok(Head {
        start,
        count,
        head_len: head.len(),
        content_length,
        index,
    })
}

/// `SIP/x.y`: `Ok(true)` for 2.0, `Ok(false)` for another well-formed version.
fn parse_version(v: &[u8]) -> Result<bool, Error> {
    if v == b"SIP/2.0" {
        return Ok(true);
    }
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(Error::BadStartLine);
    }
    let rest = &v[4..];
    let dot = memchr::memchr(b'.', rest).ok_or(Error::BadStartLine)?;
    let (major, minor) = (&rest[..dot], &rest[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) {
        return Err(Error::BadStartLine);
    }
    Ok(major == b"2" && minor == b"0")
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces (RFC 3261 §7.1).
    let m_end = scan::span(line, 0, &TOKEN);
    if m_end == 0 {
        return Err(Error::BadMethod);
    }
    if line.get(m_end) != Some(&b' ') {
        return Err(if m_end == line.len() {
            Error::BadStartLine
        } else {
            Error::BadMethod
        });
    }
    let uri_start = m_end + 1;
    let uri_end =
        uri_start + memchr::memchr(b' ', &line[uri_start..]).ok_or(Error::BadStartLine)?;
    let uri = &line[uri_start..uri_end];
    // A Request-URI starts with its scheme; `<...>` (RFC 4475 §3.1.2.7) and stray white space
    // (§3.1.2.9) are refused rather than repaired.
    if !uri.first().is_some_and(u8::is_ascii_alphabetic)
        || !uri.iter().all(|&b| b.is_ascii_graphic())
    {
        return Err(Error::BadRequestUri);
    }
    if !parse_version(&line[uri_end + 1..])? {
        return Err(Error::UnsupportedVersion);
    }
    // Both are ASCII: token characters, and graphic ASCII checked above.
    let method = Method::from_token(&line[..m_end]).ok_or(Error::BadMethod)?;
    let uri = std::str::from_utf8(uri).map_err(|_| Error::BadRequestUri)?;
    Ok(StartLine::Request { method, uri })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    let sp = memchr::memchr(b' ', line).ok_or(Error::BadStartLine)?;
    if !parse_version(&line[..sp])? {
        return Err(Error::UnsupportedVersion);
    }
    let rest = &line[sp + 1..];
    let code = rest.get(..3).ok_or(Error::BadStatusCode)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadStatusCode);
    }
    let code = code.iter().fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'));
    if !(100..=699).contains(&code) {
        return Err(Error::BadStatusCode);
    }
    // The SP after the code is mandatory even before an empty reason phrase (RFC 4475
    // §3.1.1.13); a robust reader also takes a status line that stops right after the code.
    let reason = match rest.get(3) {
        None => &[][..],
        Some(b' ') => &rest[4..],
        Some(_) => return Err(Error::BadStatusCode),
    };
    let reason = std::str::from_utf8(reason).map_err(|_| Error::BadReasonPhrase)?;
    Ok(StartLine::Response { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(buf: &[u8]) -> (StartLine<'_>, Vec<(String, Vec<u8>)>) {
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse(buf, &mut h).unwrap().complete().unwrap();
        let hs = msg
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        (msg.start, hs)
    }

    #[test]
    fn folded_value_spans_its_continuation_lines() {
        let (_, hs) =
            parse_ok(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nl: 0\r\n\r\n");
        assert_eq!(
            hs[0],
            ("Subject".into(), b"one\r\n two\r\n\tthree".to_vec())
        );
        assert_eq!(hs[1], ("Content-Length".into(), b"0".to_vec()));
    }

    #[test]
    fn lenient_parse_keeps_what_a_400_needs() {
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nno colon\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:b@b>\r\n bad header: x\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
        let mut h = [EMPTY_HEADER; 16];
        assert_eq!(parse(bad, &mut h).unwrap_err(), Error::MissingColon);
        let m = parse_lenient(bad, &mut h).unwrap();
        let names: Vec<_> = m.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length"]
        );
        assert_eq!(m.headers[2].value, b"<sip:b@b>\r\n bad header: x");
        let mut h2 = [EMPTY_HEADER; 16];
        let good = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n y\r\nl: 0\r\n\r\n";
        let strict = parse(good, &mut h2).unwrap().complete().unwrap();
        let mut h3 = [EMPTY_HEADER; 16];
        assert_eq!(
            parse_lenient(good, &mut h3).unwrap().headers,
            strict.headers
        );
    }

    #[test]
    fn partial_until_the_body_is_complete() {
        let mut h = [EMPTY_HEADER; 8];
        let buf = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nabc";
        assert_eq!(parse(buf, &mut h).unwrap(), Status::Partial);
        assert_eq!(parse(&buf[..20], &mut h).unwrap(), Status::Partial);
    }

    #[test]
    fn responses_with_empty_and_utf8_reasons() {
        let (s, _) = parse_ok(b"SIP/2.0 100 \r\n\r\n");
        assert_eq!(
            s,
            StartLine::Response {
                code: 100,
                reason: ""
            }
        );
        let (s, _) = parse_ok("SIP/2.0 200 Très bien\r\n\r\n".as_bytes());
        assert_eq!(
            s,
            StartLine::Response {
                code: 200,
                reason: "Très bien"
            }
        );
    }
}
