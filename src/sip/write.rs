//! Writing responses into a reused buffer (RFC 3261 §8.2.6.2): status line, every Via in order,
//! From, To (with a tag added when absent), Call-ID, CSeq, the caller's headers, Content-Length.

use super::message::Message;
use super::name::HeaderName;
use super::scan;
use std::io::Write as _;
use std::net::IpAddr;

/// Where the request came from, to stamp the top Via (RFC 3261 §18.2.1 `received`, RFC 3581
/// `rport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub ip: IpAddr,
    pub port: u16,
}

/// A response being appended to a buffer. Created by [`ResponseWriter::start`], finished by
/// [`ResponseWriter::finish`]; nothing is allocated beyond the buffer's own growth.
#[derive(Debug)]
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> ResponseWriter<'o> {
    /// Appends the status line and the headers echoed from `req`. `to_tag` is added to To when
    /// the request's To has no tag. With `source`, the top Via gets `received` when its sent-by
    /// is not that address, and a requested `rport` gets the port (then `received` always).
    pub fn start(
        out: &'o mut Vec<u8>,
        code: u16,
        reason: &[u8],
        req: &Message<'_, '_>,
        to_tag: &[u8],
        source: Option<Source>,
    ) -> Self {
        out.extend_from_slice(b"SIP/2.0 ");
        scan::push_decimal(out, u64::from(code));
        out.push(b' ');
        out.extend_from_slice(reason);
        out.extend_from_slice(b"\r\n");
        let mut first_via = true;
        for h in req.headers {
            match h.name {
                HeaderName::Via => {
                    out.extend_from_slice(b"Via: ");
                    match source.filter(|_| first_via) {
                        Some(src) => write_top_via(out, h.value, src),
                        None => out.extend_from_slice(h.value),
                    }
                    out.extend_from_slice(b"\r\n");
                    first_via = false;
                }
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out.extend_from_slice(h.name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(h.value);
                    out.extend_from_slice(b"\r\n");
                }
                HeaderName::To => {
                    out.extend_from_slice(b"To: ");
                    out.extend_from_slice(h.value);
                    // Only a well-formed To without a tag gets one; a malformed To (being
                    // answered 400) is echoed untouched rather than patched.
                    let needs_tag =
                        super::addr::NameAddr::parse(h.value).is_some_and(|a| a.tag().is_none());
                    if needs_tag && !to_tag.is_empty() {
                        out.extend_from_slice(b";tag=");
                        out.extend_from_slice(to_tag);
                    }
                    out.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        ResponseWriter { out }
    }

    /// Appends `name: value`.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.header_with(name, |out| out.extend_from_slice(value))
    }

    /// Appends `name: ` and whatever `value` writes (numbers, dates, lists) without a
    /// temporary buffer.
    pub fn header_with(&mut self, name: &str, value: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        value(self.out);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `name: n`.
    pub fn header_u64(&mut self, name: &str, n: u64) -> &mut Self {
        self.header_with(name, |out| scan::push_decimal(out, n))
    }

    /// Appends Content-Length, the empty line and `body`.
    pub fn finish(self, body: &[u8]) {
        self.out.extend_from_slice(b"Content-Length: ");
        scan::push_decimal(self.out, body.len() as u64);
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
    }
}

/// The first Via line with its first via-parm stamped; later via-parms on the line unchanged.
fn write_top_via(out: &mut Vec<u8>, value: &[u8], src: Source) {
    let mut pos = 0;
    let Some(Some(via)) = super::via::next_element(value, &mut pos, super::via::Via::parse_at)
    else {
        out.extend_from_slice(value);
        return;
    };
    let offset = |part: &[u8]| part.as_ptr() as usize - value.as_ptr() as usize;
    let via_start = offset(via.raw);
    let params_start = offset(via.params.raw());
    let via_end = via_start + via.raw.len();
    out.extend_from_slice(&value[..params_start]);
    let wants_rport = via.rport() == Some(None);
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are IPv4 peers.
    let ip = match src.ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(src.ip, IpAddr::V4),
        v4 => v4,
    };
    let sent_by_matches = match via.host {
        super::uri::Host::V4(a) => IpAddr::V4(a) == ip,
        super::uri::Host::V6(a) => a.parse::<IpAddr>().is_ok_and(|a| a == ip),
        super::uri::Host::Name(_) => false,
    };
    for (name, v) in via.params.iter() {
        if name.eq_ignore_ascii_case(b"received") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(name);
        if name.eq_ignore_ascii_case(b"rport") && wants_rport {
            out.push(b'=');
            scan::push_decimal(out, u64::from(src.port));
        } else if let Some(v) = v {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    if wants_rport || !sent_by_matches {
        out.extend_from_slice(b";received=");
        // RFC 3261 via-received is a bare IPv4address / IPv6address, without brackets (RFC 5118
        // only asks receivers to tolerate them). Formatted straight into the buffer; writing
        // into a Vec cannot fail.
        let _ = write!(out, "{ip}");
    }
    out.extend_from_slice(&value[via_end..]);
}
