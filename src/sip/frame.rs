//! Framing: bytes in, complete messages out. On streams a message ends after its header
//! section and Content-Length octets of body (RFC 3261 §18.3); a datagram holds one message
//! (§18.1.1 lets Content-Length be absent there, and octets past it are ignored).

use super::error::Error;
use super::message::{parse_head, Header, Limits, Message};
use super::scan;
use memchr::memmem::Finder;

/// What the stream framer found at the start of the buffer.
#[derive(Debug)]
pub enum Frame<'h, 'b> {
    /// A complete, well-framed message; consume `msg.len()` bytes.
    Message(Message<'h, 'b>),
    /// A complete message whose head is malformed but whose length is known: answer it (400,
    /// or `error.status()`), consume `len` bytes and go on. [`super::parse_lenient`] on those
    /// bytes reads the headers the answer echoes.
    Invalid { len: usize, error: Error },
    /// An RFC 5626 §4.4.1 keep-alive ping (CRLF CRLF, 4 bytes): answer with a CRLF pong.
    Ping,
    /// A lone CRLF between messages (a pong, or the stray CRLF RFC 3261 §7.5 says to ignore):
    /// consume 2 bytes.
    Crlf,
    /// More bytes are needed.
    Partial,
}

impl Frame<'_, '_> {
    /// How many bytes of the buffer this frame consumes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Message(m) => m.len(),
            Frame::Invalid { len, .. } => *len,
            Frame::Ping => 4,
            Frame::Crlf => 2,
            Frame::Partial => 0,
        }
    }

    /// True for `Partial`.
    pub fn is_empty(&self) -> bool {
        matches!(self, Frame::Partial)
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    head_len: usize,
    total: usize,
    error: Option<Error>,
}

/// The framer of one stream connection. The caller passes its receive buffer, which always
/// starts at the next message, and drains what a frame consumed. Between calls the framer
/// remembers how far it searched, so a head that arrives in pieces is scanned once, and a
/// head whose body is still on its way is not searched again.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    scanned: usize,
    pending: Option<Pending>,
    end_of_head: Finder<'static>,
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Framer {
            limits,
            scanned: 0,
            pending: None,
            end_of_head: Finder::new(b"\r\n\r\n"),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The next frame at the start of `buf`. `Err` is a framing error: close the connection.
    pub fn next<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        headers: &'h mut [Header<'b>],
    ) -> Result<Frame<'h, 'b>, Error> {
        if let Some(p) = self.pending {
            if buf.len() < p.total {
                return Ok(Frame::Partial);
            }
            self.pending = None;
            self.scanned = 0;
            return Ok(self.complete(buf, headers, p));
        }
        if self.scanned == 0 && buf.first() == Some(&b'\r') {
            match buf {
                [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Frame::Ping),
                [b'\r', b'\n', b'\r'] | [b'\r', b'\n'] | [b'\r'] => return Ok(Frame::Partial),
                [b'\r', b'\n', ..] => return Ok(Frame::Crlf),
                _ => {}
            }
        }
        // The terminator may straddle the previous end of input: back up three bytes.
        let from = self.scanned.saturating_sub(3);
        let Some(at) = self.end_of_head.find(&buf[from..]) else {
            if buf.len() > self.limits.max_head {
                return Err(Error::HeadTooLarge);
            }
            self.scanned = buf.len();
            return Ok(Frame::Partial);
        };
        let head_len = from + at + 4;
        if head_len > self.limits.max_head {
            return Err(Error::HeadTooLarge);
        }
        let max_headers = self.limits.max_headers.min(headers.len());
        let parsed = parse_head(&buf[..head_len], &mut headers[..max_headers]);
        let content_length = match &parsed {
            Ok(head) => head.content_length.unwrap_or(0) as usize,
            Err(e) if e.is_framing() => return Err(*e),
            Err(_) => recover_content_length(&buf[..head_len])?,
        };
        if content_length > self.limits.max_body {
            return Err(Error::BodyTooLarge);
        }
        let total = head_len + content_length;
        let error = match &parsed {
            Ok(head) if head.content_length.is_none() => Some(Error::MissingContentLength),
            Ok(_) => None,
            Err(e) => Some(*e),
        };
        if buf.len() < total {
            self.pending = Some(Pending {
                head_len,
                total,
                error,
            });
            return Ok(Frame::Partial);
        }
        self.scanned = 0;
        Ok(match (parsed, error) {
            (Ok(head), None) => Frame::Message(head.into_message(headers, &buf[head_len..total])),
            (_, error) => Frame::Invalid {
                len: total,
                error: error.unwrap_or(Error::BadStartLine),
            },
        })
    }

    fn complete<'h, 'b>(
        &self,
        buf: &'b [u8],
        headers: &'h mut [Header<'b>],
        p: Pending,
    ) -> Frame<'h, 'b> {
        if let Some(error) = p.error {
            return Frame::Invalid {
                len: p.total,
                error,
            };
        }
        let max_headers = self.limits.max_headers.min(headers.len());
        let headers = &mut headers[..max_headers];
        // The head parsed before (this is a second parse only when the body came later).
        match parse_head(&buf[..p.head_len], headers) {
            Ok(head) => Frame::Message(head.into_message(headers, &buf[p.head_len..p.total])),
            Err(error) => Frame::Invalid {
                len: p.total,
                error,
            },
        }
    }
}

/// Content-Length of a head that failed to parse, read line by line as leniently as framing
/// allows: absent means 0; negative or conflicting values are framing errors.
fn recover_content_length(head: &[u8]) -> Result<usize, Error> {
    let mut found: Option<u64> = None;
    // Header lines only: not the start line, and not continuation lines, which belong to the
    // value before them (a folded " l: 58" is text, not a header).
    for line in head.split(|&b| b == b'\n').skip(1) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = scan::trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = scan::parse_decimal(scan::trim(&line[colon + 1..]), u64::from(u32::MAX))
                .ok_or(Error::BadContentLength)?;
            if found.is_some_and(|f| f != v) {
                return Err(Error::ConflictingContentLength);
            }
            found = Some(v);
        }
    }
    Ok(found.unwrap_or(0) as usize)
}

/// Parses the one message of a datagram. Content-Length is optional (without it the body is
/// the rest of the datagram); octets after the declared body are ignored (RFC 4475 §3.1.1.8);
/// a datagram shorter than its Content-Length is an error (§3.1.2.2).
pub fn parse_datagram<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Message<'h, 'b>, Error> {
    let Some(at) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Err(if buf.len() > limits.max_head {
            Error::HeadTooLarge
        } else {
            Error::HeadUnterminated
        });
    };
    let head_len = at + 4;
    if head_len > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    let max_headers = limits.max_headers.min(headers.len());
    let headers = &mut headers[..max_headers];
    let head = parse_head(&buf[..head_len], headers)?;
    let rest = &buf[head_len..];
    let body = match head.content_length {
        Some(cl) => rest.get(..cl as usize).ok_or(Error::BodyIncomplete)?,
        None => rest,
    };
    if body.len() > limits.max_body {
        return Err(Error::BodyTooLarge);
    }
    Ok(head.into_message(headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::EMPTY_HEADER;

    const REQ: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 3\r\n\r\nabc";

    fn frame_all(framer: &mut Framer, buf: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut hs = [EMPTY_HEADER; 16];
        let mut at = 0;
        loop {
            match framer.next(&buf[at..], &mut hs) {
                Ok(Frame::Partial) => return out,
                Ok(f) => {
                    out.push(format!("{}", f.len()));
                    at += f.len();
                }
                Err(e) => {
                    out.push(format!("{e}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn pings_pongs_and_pipelined_messages() {
        let mut buf = b"\r\n\r\n\r\n".to_vec();
        buf.extend_from_slice(REQ);
        buf.extend_from_slice(REQ);
        let mut f = Framer::new(Limits::default());
        let n = REQ.len().to_string();
        assert_eq!(
            frame_all(&mut f, &buf),
            ["4".to_string(), "2".into(), n.clone(), n]
        );
    }

    #[test]
    fn negative_and_conflicting_lengths_are_framing_errors() {
        let mut f = Framer::new(Limits::default());
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nl: -999\r\n\r\n";
        assert_eq!(
            f.next(bad, &mut [EMPTY_HEADER; 4]).unwrap_err(),
            Error::BadContentLength
        );
        let mut f = Framer::new(Limits::default());
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nl: 13\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            f.next(bad, &mut [EMPTY_HEADER; 4]).unwrap_err(),
            Error::ConflictingContentLength
        );
    }

    #[test]
    fn a_bad_head_with_a_known_length_is_skipped() {
        let mut buf = b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\nl: 2\r\n\r\nxy".to_vec();
        buf.extend_from_slice(REQ);
        let mut f = Framer::new(Limits::default());
        let n = REQ.len().to_string();
        assert_eq!(frame_all(&mut f, &buf), ["50".to_string(), n]);
    }

    #[test]
    fn regression_folded_length_in_a_bad_head_does_not_swallow_the_next_message() {
        let next = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
        let bad = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: hi\r\n l: {}\r\nno colon\r\n\r\n",
            next.len()
        );
        let mut buf = bad.as_bytes().to_vec();
        buf.extend_from_slice(next);
        let mut f = Framer::new(Limits::default());
        let frames = frame_all(&mut f, &buf);
        assert_eq!(frames, [bad.len().to_string(), next.len().to_string()]);
    }

    #[test]
    fn oversize_head_closes() {
        let mut f = Framer::new(Limits {
            max_head: 64,
            ..Limits::default()
        });
        let buf = [b'a'; 65];
        assert_eq!(
            f.next(&buf, &mut [EMPTY_HEADER; 4]).unwrap_err(),
            Error::HeadTooLarge
        );
    }

    #[test]
    fn datagram_ignores_trailing_octets_and_needs_no_length() {
        let mut hs = [EMPTY_HEADER; 4];
        let d = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\nINVITE junk";
        let m = parse_datagram(d, &mut hs, &Limits::default()).unwrap();
        assert!(m.body.is_empty());
        let mut hs = [EMPTY_HEADER; 4];
        let d = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nbody";
        let m = parse_datagram(d, &mut hs, &Limits::default()).unwrap();
        assert_eq!(m.body, b"body");
        let d = b"OPTIONS sip:a@b SIP/2.0\r\nl: 9\r\n\r\nbody";
        let e = parse_datagram(d, &mut [EMPTY_HEADER; 4], &Limits::default()).unwrap_err();
        assert_eq!(e, Error::BodyIncomplete);
    }
}
