//! `regstorm::sip::Framer` on a byte stream: fed whole, split in two at a point taken from the
//! first input byte, and one byte at a time, the frames (kind and length) and the way the
//! stream ends (framing error, or bytes left waiting) must be the same. Also
//! `regstorm::sip::parse_datagram`, which must agree with `parse` on complete messages.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regstorm::sip::{
    parse, parse_datagram, parse_lenient, Error, Frame, Framer, Header, Limits, Status,
    EMPTY_HEADER,
};

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Message,
    Invalid(Error),
    Ping,
    Crlf,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Framing error: the connection would close.
    Error(Error),
    /// All input fed; this many bytes wait for more.
    Waiting(usize),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<(Kind, usize)>,
    end: End,
}

/// Feeds `chunks` one after the other into an append-only buffer, taking every frame the
/// framer finds after each append and draining the bytes it consumed.
fn feed<'a>(chunks: impl Iterator<Item = &'a [u8]>, limits: Limits) -> Outcome {
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let mut headers = [EMPTY_HEADER; 96];
            let frame = match framer.next(&buf, &mut headers) {
                Ok(Frame::Partial) => break,
                Ok(frame) => frame,
                Err(e) => {
                    assert!(e.is_framing(), "framer returned a non-framing error {e:?}");
                    return Outcome { frames, end: End::Error(e) };
                }
            };
            let len = frame.len();
            assert!(len > 0 && len <= buf.len(), "frame of {len} bytes in a buffer of {}", buf.len());
            let kind = match frame {
                Frame::Message(msg) => {
                    assert_eq!(msg.len(), len);
                    assert!(msg.head_len <= limits.max_head, "head over the limit framed");
                    assert!(msg.body.len() <= limits.max_body, "body over the limit framed");
                    assert!(msg.headers.len() <= limits.max_headers);
                    let cl = msg.content_length.expect("a stream message has Content-Length");
                    assert_eq!(cl as usize, msg.body.len());
                    check_against_parse(&buf[..len], msg.headers, msg.head_len);
                    Kind::Message
                }
                Frame::Invalid { len: n, error } => {
                    assert!(!error.is_framing(), "Invalid frame with framing error {error:?}");
                    assert_eq!(n, len);
                    // What the 400 for it echoes is read with parse_lenient.
                    let mut lenient_headers = [EMPTY_HEADER; 96];
                    if let Ok(m) = parse_lenient(&buf[..len], &mut lenient_headers) {
                        assert!(m.len() <= len, "lenient message longer than its frame");
                    }
                    Kind::Invalid(error)
                }
                Frame::Ping => {
                    assert_eq!(&buf[..4], b"\r\n\r\n");
                    Kind::Ping
                }
                Frame::Crlf => {
                    assert_eq!(&buf[..2], b"\r\n");
                    Kind::Crlf
                }
                Frame::Partial => unreachable!(),
            };
            frames.push((kind, len));
            buf.drain(..len);
        }
    }
    Outcome { frames, end: End::Waiting(buf.len()) }
}

/// A framed message is exactly what `parse` finds at the start of its bytes.
fn check_against_parse(bytes: &[u8], framed: &[Header<'_>], head_len: usize) {
    let mut headers = [EMPTY_HEADER; 96];
    match parse(bytes, &mut headers) {
        Ok(Status::Complete(m)) => {
            assert_eq!(m.len(), bytes.len(), "parse and the framer disagree on the length");
            assert_eq!(m.head_len, head_len);
            assert_eq!(m.headers, framed);
        }
        other => panic!("framed message does not parse: {other:?}"),
    }
}

fn limits_for(data: &[u8]) -> Limits {
    // Odd second byte: small limits, so that the size checks are reached by small inputs.
    match data.get(1) {
        Some(&b) if b & 1 == 1 => Limits {
            max_head: 16 + 4 * usize::from(b >> 1),
            max_body: 2 * usize::from(b >> 1),
            max_headers: 1 + usize::from(b >> 4),
        },
        _ => Limits::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits_for(data);
    let whole = feed(std::iter::once(data), limits);

    let split = data.first().map_or(0, |&b| data.len() * usize::from(b) / 255);
    let (a, b) = data.split_at(split);
    let halves = feed([a, b].into_iter(), limits);
    assert_eq!(whole, halves, "whole and split at {split} differ");

    let bytes = feed(data.chunks(1), limits);
    assert_eq!(whole, bytes, "whole and byte-at-a-time differ");

    // Datagrams: never a panic, and the same message as `parse` when it is complete.
    let mut headers = [EMPTY_HEADER; 64];
    let dgram = parse_datagram(data, &mut headers, &Limits::default());
    if let Ok(m) = &dgram {
        assert!(m.len() <= data.len());
    }
    let mut headers2 = [EMPTY_HEADER; 64];
    match (parse(data, &mut headers2), &dgram) {
        (Ok(Status::Complete(p)), Ok(d)) => {
            assert_eq!((p.head_len, p.body, p.headers), (d.head_len, d.body, d.headers));
        }
        (Ok(Status::Complete(p)), Err(e)) => {
            let limits = Limits::default();
            assert!(
                p.head_len > limits.max_head || p.body.len() > limits.max_body,
                "parse took a message parse_datagram refused with {e:?}"
            );
        }
        (Ok(Status::Partial), Ok(_)) => panic!("parse_datagram took what parse calls partial"),
        (Err(e1), Ok(_)) => panic!("parse_datagram took what parse refused with {e1:?}"),
        _ => {}
    }
});
