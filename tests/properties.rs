//! Property tests: the fast parser agrees with a naive reference parser written here from the
//! RFC 3261 text with none of the fast one's machinery (no byte tables, no memchr, no index),
//! and the stream framer yields the same messages however the bytes are split.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use regstorm::load::jabber::{seed_register, SAMPLE_TOKEN};
use regstorm::sip::{parse, Frame, Framer, Limits, StartLine, EMPTY_HEADER};

/// What the reference parser extracts: start line parts, (canonical lower-case name, value)
/// pairs, body.
#[derive(Debug, PartialEq, Eq)]
struct Naive {
    start: Vec<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn naive_canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let full = match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        "o" => "event",
        "u" => "allow-events",
        other => other,
    };
    full.to_string()
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\n'
}

/// RFC 3261 §7: start line, header lines (a line beginning with SP or HT continues the one
/// before), empty line, then Content-Length octets of body.
fn naive_parse(msg: &[u8]) -> Option<Naive> {
    let text = msg;
    let mut end = None;
    for i in 0..text.len().saturating_sub(3) {
        if &text[i..i + 4] == b"\r\n\r\n" {
            end = Some(i);
            break;
        }
    }
    let end = end?;
    let head = &text[..end + 2];
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < head.len() {
        if head[i] == b'\r' && head[i + 1] == b'\n' {
            lines.push((start, i));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    let (s0, e0) = lines[0];
    let start_line: Vec<String> = String::from_utf8_lossy(&head[s0..e0])
        .splitn(3, ' ')
        .map(String::from)
        .collect();
    // Merge continuation lines: the value keeps the CRLF and the white space.
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in &lines[1..] {
        if (head[s] == b' ' || head[s] == b'\t') && !merged.is_empty() {
            merged.last_mut().unwrap().1 = e;
        } else {
            merged.push((s, e));
        }
    }
    let mut headers = Vec::new();
    let mut content_length = None;
    for (s, e) in merged {
        let line = &head[s..e];
        let colon = line.iter().position(|&b| b == b':')?;
        let name = String::from_utf8_lossy(&line[..colon])
            .trim_end()
            .to_string();
        let mut v = &line[colon + 1..];
        while v.first().is_some_and(|&b| is_ws(b)) {
            v = &v[1..];
        }
        while v.last().is_some_and(|&b| is_ws(b)) {
            v = &v[..v.len() - 1];
        }
        let name = naive_canonical(&name);
        if name == "content-length" {
            content_length = Some(String::from_utf8_lossy(v).parse::<usize>().ok()?);
        }
        headers.push((name, v.to_vec()));
    }
    let body_start = end + 4;
    let body = match content_length {
        Some(n) => text.get(body_start..body_start + n)?.to_vec(),
        None => text[body_start..].to_vec(),
    };
    Some(Naive {
        start: start_line,
        headers,
        body,
    })
}

fn fast_parse(msg: &[u8]) -> Option<Naive> {
    let mut hs = [EMPTY_HEADER; 128];
    let m = parse(msg, &mut hs).ok()?.complete()?;
    let start = match m.start {
        StartLine::Request { method, uri } => {
            vec![
                method.as_str().to_string(),
                uri.to_string(),
                "SIP/2.0".to_string(),
            ]
        }
        StartLine::Response { code, reason } => {
            vec!["SIP/2.0".to_string(), code.to_string(), reason.to_string()]
        }
    };
    let headers = m
        .headers
        .iter()
        .map(|h| (h.name.as_str().to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    Some(Naive {
        start,
        headers,
        body: m.body.to_vec(),
    })
}

// Generators for well-formed messages with the oddities RFC 3261 allows.

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.!%*_+`'~-]{1,12}"
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Via".to_string()),
        Just("v".to_string()),
        Just("From".to_string()),
        Just("f".to_string()),
        Just("TO".to_string()),
        Just("call-id".to_string()),
        Just("i".to_string()),
        Just("CSeq".to_string()),
        Just("Contact".to_string()),
        Just("m".to_string()),
        Just("Expires".to_string()),
        Just("Proxy-Authorization".to_string()),
        Just("Supported".to_string()),
        Just("k".to_string()),
        Just("MaX-fOrWaRdS".to_string()),
        token(),
    ]
}

/// A header value: visible ASCII and spaces, maybe folded onto following lines.
fn header_value() -> impl Strategy<Value = String> {
    (
        "[!-~]([ -~]{0,40}[!-~])?",
        prop::collection::vec(("[ \t]{1,3}", "[!-~][ -~]{0,20}[!-~]"), 0..3),
    )
        .prop_map(|(first, folds)| {
            let mut v = first;
            for (ws, more) in folds {
                v.push_str("\r\n");
                v.push_str(&ws);
                v.push_str(&more);
            }
            v
        })
}

prop_compose! {
    fn message()(
        request in any::<bool>(),
        method in prop_oneof![Just("REGISTER".to_string()), Just("OPTIONS".to_string()), token()],
        user in "[a-z0-9]{1,8}",
        code in 100u16..700,
        reason in "[ -~]{0,20}",
        headers in prop::collection::vec(
            (header_name(), "[ \t]{0,2}", "[ \t]{0,3}", header_value()), 0..12),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) -> Vec<u8> {
        let mut m = if request {
            format!("{method} sip:{user}@example.com SIP/2.0\r\n")
        } else {
            format!("SIP/2.0 {code} {reason}\r\n")
        };
        for (name, before_colon, after_colon, value) in headers {
            // The generator's own Content-Length comes last.
            if naive_canonical(&name) == "content-length" {
                continue;
            }
            m.push_str(&format!("{name}{before_colon}:{after_colon}{value}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = m.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// Frames `input` delivered in the given chunk sizes; returns (kind, length) per frame and the
/// terminal error, if any.
fn frame_chunks(input: &[u8], cuts: &[usize]) -> (Vec<(String, usize)>, Option<String>) {
    let mut framer = Framer::new(Limits::default());
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut cut_iter = cuts.iter().copied().chain(std::iter::once(input.len()));
    loop {
        let mut hs = [EMPTY_HEADER; 128];
        match framer.next(&buf, &mut hs) {
            Ok(Frame::Partial) => {
                if fed == input.len() {
                    return (out, None);
                }
                let next = cut_iter
                    .next()
                    .unwrap_or(input.len())
                    .clamp(fed, input.len());
                let next = if next == fed { input.len() } else { next };
                buf.extend_from_slice(&input[fed..next]);
                fed = next;
            }
            Ok(f) => {
                let kind = match &f {
                    Frame::Message(m) => format!("message {:?}", m.start),
                    Frame::Invalid { error, .. } => format!("invalid {error:?}"),
                    Frame::Ping => "ping".into(),
                    Frame::Crlf => "crlf".into(),
                    Frame::Partial => unreachable!(),
                };
                let n = f.len();
                out.push((kind, n));
                buf.drain(..n);
            }
            Err(e) => return (out, Some(format!("{e:?}"))),
        }
    }
}

fn assert_every_split_frames_alike(stream: &[u8]) {
    let whole = frame_chunks(stream, &[]);
    for k in 1..stream.len() {
        assert_eq!(frame_chunks(stream, &[k]), whole, "split at byte {k}");
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(frame_chunks(stream, &bytewise), whole, "one byte at a time");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fast_parser_agrees_with_the_naive_one(msg in message()) {
        let naive = naive_parse(&msg).expect("generator makes well-formed messages");
        let fast = fast_parse(&msg);
        prop_assert_eq!(fast.as_ref(), Some(&naive), "message: {:?}", String::from_utf8_lossy(&msg));
    }

    #[test]
    fn framing_does_not_depend_on_how_bytes_arrive(
        msgs in prop::collection::vec(message(), 1..4),
        pings in prop::collection::vec(0usize..3, 4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            for _ in 0..pings[i] {
                stream.extend_from_slice(b"\r\n\r\n");
            }
            stream.extend_from_slice(m);
        }
        let whole = frame_chunks(&stream, &[]);
        prop_assert_eq!(whole.0.iter().filter(|(k, _)| k.starts_with("message")).count(), msgs.len());
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        cuts.sort_unstable();
        prop_assert_eq!(frame_chunks(&stream, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut hs = [EMPTY_HEADER; 16];
        let _ = parse(&bytes, &mut hs);
        let _ = frame_chunks(&bytes, &[bytes.len() / 2]);
    }
}

#[test]
fn every_split_point_of_generated_streams() {
    // Deterministic exhaustive splits over a few generated streams (proptest's own runner
    // samples split points; here every byte boundary is tried).
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..8 {
        let a = message().new_tree(&mut runner).unwrap().current();
        let b = message().new_tree(&mut runner).unwrap().current();
        let mut stream = a.clone();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(&b);
        assert_every_split_frames_alike(&stream);
    }
}

#[test]
fn every_split_point_of_the_seed_register() {
    let reg = seed_register(SAMPLE_TOKEN);
    let mut stream = reg.clone();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&reg);
    let whole = frame_chunks(&stream, &[]);
    assert_eq!(whole.0.len(), 3, "{whole:?}");
    assert_every_split_frames_alike(&stream);
}

#[test]
fn the_seed_register_agrees_with_the_naive_parser() {
    let reg = seed_register(SAMPLE_TOKEN);
    assert_eq!(fast_parse(&reg), naive_parse(&reg));
    assert!(fast_parse(&reg).is_some());
}
