//! Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport): repeated and comma-joined values.

use super::addr::{parse_params_with, Params};
use super::scan::{self, TOKEN};
use super::uri::{parse_hostport, Host};

/// One via-parm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'b> {
    /// The whole via-parm as written (for echoing it in order).
    pub raw: &'b [u8],
    /// The transport token (`UDP`, `TCP`, `TLS`, `SCTP`, `WS` or any other).
    pub transport: &'b [u8],
    /// The sent-by host (an IPv6 reference without its brackets).
    pub host: Host<'b>,
    pub port: Option<u16>,
    pub params: Params<'b>,
    branch: Option<&'b [u8]>,
    received: Option<&'b [u8]>,
    rport: Option<Option<u16>>,
}

impl<'b> Via<'b> {
    /// Parses one via-parm starting at `i`; returns it and where it ended (`,` or end).
    pub(crate) fn parse_at(s: &'b [u8], i: usize) -> Option<(Self, usize)> {
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, with LWS
        // allowed around each slash (RFC 4475 §3.1.1.1).
        let start = scan::skip_lws(s, i);
        let mut j = start;
        let mut parts = [&s[..0]; 3];
        for (k, part) in parts.iter_mut().enumerate() {
            j = scan::skip_lws(s, j);
            let end = scan::span(s, j, &TOKEN);
            if end == j {
                return None;
            }
            *part = &s[j..end];
            j = end;
            if k < 2 {
                j = scan::skip_lws(s, j);
                if s.get(j) != Some(&b'/') {
                    return None;
                }
                j += 1;
            }
        }
        let [name, version, transport] = parts;
        if !name.eq_ignore_ascii_case(b"SIP") || version != b"2.0" {
            return None;
        }
        // sent-by = host [COLON port]; LWS may surround the colon.
        let h = scan::skip_lws(s, j);
        if h == j {
            return None;
        }
        let host_end = if s.get(h) == Some(&b'[') {
            h + memchr::memchr(b']', &s[h..])? + 1
        } else {
            scan::span(s, h, &scan::HOST)
        };
        let mut end = host_end;
        let c = scan::skip_lws(s, host_end);
        let mut port_text = &s[..0];
        if s.get(c) == Some(&b':') {
            let p = scan::skip_lws(s, c + 1);
            let pe = p + s[p..].iter().take_while(|b| b.is_ascii_digit()).count();
            port_text = &s[p..pe];
            end = pe;
            if port_text.is_empty() {
                return None;
            }
        }
        let (host, _) = parse_hostport(&s[h..host_end])?;
        let port = if port_text.is_empty() {
            None
        } else {
            Some(scan::parse_decimal(port_text, u64::from(u16::MAX))? as u16)
        };
        let (mut branch, mut received, mut rport) = (None, None, None);
        // branch, received and rport may each appear once (a second branch would let the
        // transaction layer and the response writer disagree).
        let params_end = parse_params_with(s, end, |name, value| {
            if name.eq_ignore_ascii_case(b"branch") {
                if branch.is_some() {
                    return None;
                }
                branch = Some(value?);
            } else if name.eq_ignore_ascii_case(b"received") {
                if received.is_some() {
                    return None;
                }
                received = Some(value?);
            } else if name.eq_ignore_ascii_case(b"rport") {
                if rport.is_some() {
                    return None;
                }
                rport = Some(match value {
                    None => None,
                    Some(v) => Some(scan::parse_decimal(v, u64::from(u16::MAX))? as u16),
                });
            }
            Some(())
        })?;
        let via = Via {
            raw: scan::trim(&s[start..params_end]),
            transport,
            host,
            port,
            params: Params::from_checked(&s[end..params_end]),
            branch,
            received,
            rport,
        };
        Some((via, params_end))
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'b [u8]> {
        self.branch
    }

    /// The `received` parameter (with or without brackets, RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'b [u8]> {
        self.received
    }

    /// `rport`: `Some(None)` when the client asks for it (RFC 3581 §3), `Some(Some(p))` when
    /// filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
    }
}

/// Iterates the comma-separated elements of a list header value with `parse_at`, then checks
/// that each is followed by `,` and another element or by the end (empty elements, as in
/// RFC 4475 §3.1.2.1 `;;,;,,`, are errors).
pub(crate) fn next_element<'b, T>(
    s: &'b [u8],
    pos: &mut usize,
    parse_at: impl Fn(&'b [u8], usize) -> Option<(T, usize)>,
) -> Option<Option<T>> {
    if *pos >= s.len() {
        return Some(None);
    }
    let (item, end) = parse_at(s, *pos)?;
    let after = scan::skip_lws(s, end);
    match s.get(after) {
        None => *pos = s.len(),
        Some(b',') => {
            *pos = after + 1;
            // A trailing comma promises another element.
            if scan::skip_lws(s, *pos) == s.len() {
                return None;
            }
        }
        Some(_) => return None,
    }
    Some(Some(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_via_with_lws_around_slashes() {
        let s = b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw";
        let (v, end) = Via::parse_at(s, 0).unwrap();
        assert_eq!(end, s.len());
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
    }

    #[test]
    fn ipv6_sent_by_and_received_forms() {
        let s = b"SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=[2001:db8::9:255];rport";
        let (v, _) = Via::parse_at(s, 0).unwrap();
        assert_eq!((v.host, v.port), (Host::V6("2001:db8::9:1"), Some(6050)));
        assert_eq!(v.received(), Some(&b"[2001:db8::9:255]"[..]));
        assert_eq!(v.rport(), Some(None));
        let s = b"SIP/2.0/UDP host;received=2001:db8::9:255";
        assert_eq!(
            Via::parse_at(s, 0).unwrap().0.received(),
            Some(&b"2001:db8::9:255"[..])
        );
    }

    #[test]
    fn empty_elements_are_errors() {
        let s = b"SIP/2.0/UDP 192.0.2.15;;,;,,";
        let mut pos = 0;
        assert_eq!(next_element(s, &mut pos, Via::parse_at), None);
        let s = b"SIP/2.0/UDP a;branch=1 ,";
        let mut pos = 0;
        assert_eq!(next_element(s, &mut pos, Via::parse_at), None);
    }
}
