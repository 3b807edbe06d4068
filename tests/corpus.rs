//! The external conformance corpus: every message of RFC 4475 and RFC 5118 (wire copies) in
//! tests/conformance (RFC 4475, RFC 5118), checked against its MANIFEST.tsv. Each file has one entry below
//! stating what regstorm does with it: the fields it reads from a valid message, the exact
//! parse or framing error of an invalid one, or the condition the registrar answers from
//! (400, 416, 420, 501, 505 ...). The manifest's category must match the entry's, and a
//! manifest row without an entry fails, so the table and the corpus cannot drift apart.

use regstorm::sip::{
    parse_datagram, ContactValue, Error, Frame, Framer, HeaderName, Host, Limits, Message, Method,
    StartLine, Uri, EMPTY_HEADER,
};
use std::path::{Path, PathBuf};

type Check = fn(&[u8]) -> Result<(), String>;

/// The RFC 4475 / RFC 5118 corpus kept in the repository (tests/conformance, its README names
/// the RFC sections and the manifests).
fn conformance_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    assert!(
        root.is_dir(),
        "{} is missing from the checkout",
        root.display()
    );
    root
}

fn ensure(cond: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> Result<(), String> {
    ensure(
        got == want,
        format_args!("{what}: got {got:?}, want {want:?}"),
    )
}

/// Parses `bytes` as a datagram and runs `f` on the message.
fn with_msg(
    bytes: &[u8],
    f: impl FnOnce(&Message<'_, '_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut headers = [EMPTY_HEADER; 96];
    let msg = parse_datagram(bytes, &mut headers, &Limits::default())
        .map_err(|e| format!("datagram parse failed: {e:?}"))?;
    f(&msg)
}

/// A valid message: parses, a request has its mandatory headers, a stream with Content-Length
/// frames it to the same length; then `f` checks fields.
fn valid(
    bytes: &[u8],
    f: impl FnOnce(&Message<'_, '_>) -> Result<(), String>,
) -> Result<(), String> {
    with_msg(bytes, |m| {
        if m.is_request() {
            m.check_mandatory()
                .map_err(|e| format!("mandatory headers: {e:?}"))?;
            m.request_uri()
                .unwrap()
                .map_err(|e| format!("Request-URI: {e:?}"))?;
        }
        if m.content_length.is_some() {
            let mut hs = [EMPTY_HEADER; 96];
            match Framer::new(Limits::default()).next(bytes, &mut hs) {
                Ok(Frame::Message(s)) => eq(s.len(), m.len(), "stream frame length")?,
                other => return Err(format!("stream framing: {other:?}")),
            }
        }
        f(m)
    })
}

fn parse_err(bytes: &[u8], want: Error) -> Result<(), String> {
    let mut headers = [EMPTY_HEADER; 96];
    match parse_datagram(bytes, &mut headers, &Limits::default()) {
        Err(e) => eq(e, want, "parse error"),
        Ok(_) => Err(format!("parsed, but {want:?} was expected")),
    }
}

fn stream_err(bytes: &[u8], want: Error) -> Result<(), String> {
    let mut hs = [EMPTY_HEADER; 96];
    match Framer::new(Limits::default()).next(bytes, &mut hs) {
        Err(e) => {
            ensure(
                e.is_framing(),
                format_args!("{e:?} should close the connection"),
            )?;
            eq(e, want, "stream framing error")
        }
        other => Err(format!("stream framing: {other:?}, want {want:?}")),
    }
}

fn request_uri<'b>(m: &Message<'_, 'b>) -> Result<Uri<'b>, String> {
    m.request_uri()
        .ok_or("not a request")?
        .map_err(|e| format!("Request-URI: {e:?}"))
}

fn sip_host<'b>(u: &Uri<'b>) -> Result<Host<'b>, String> {
    u.sip()
        .map(|s| s.host)
        .ok_or_else(|| format!("not a SIP URI: {u:?}"))
}

fn unescaped_user(raw: &[u8]) -> Vec<u8> {
    let uri = regstorm::sip::SipUri::parse(raw).expect("SIP URI");
    let mut out = Vec::new();
    uri.user_unescaped_into(&mut out);
    out
}

fn contacts<'b>(m: &Message<'_, 'b>) -> Result<Vec<regstorm::sip::Contact<'b>>, String> {
    m.contacts()
        .map(|c| match c {
            Ok(ContactValue::Addr(c)) => Ok(c),
            Ok(ContactValue::Wildcard) => Err("unexpected *".to_string()),
            Err(e) => Err(format!("Contact: {e:?}")),
        })
        .collect()
}

fn transports(m: &Message<'_, '_>) -> Result<Vec<String>, String> {
    m.vias()
        .map(|v| v.map(|v| String::from_utf8_lossy(v.transport).into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Via: {e:?}"))
}

/// `file: category => check`; the category is the manifest's expectation column.
macro_rules! corpus {
    ($( $file:literal : $category:literal => $check:expr ),* $(,)?) => {
        &[ $( ($file, $category, $check as Check) ),* ]
    };
}

static RFC4475: &[(&str, &str, Check)] = corpus! {
    "wsinv.sip": "valid" => |b| valid(b, |m| {
        eq(m.method(), Some(Method::Invite), "method")?;
        let to = m.to().map_err(|e| format!("{e:?}"))?;
        eq(to.tag(), Some(&b"1918181833n"[..]), "To tag")?;
        let from = m.from().map_err(|e| format!("{e:?}"))?;
        eq(from.display, Some(&br#"J Rosenberg \\\""#[..]), "From display name")?;
        eq(from.tag(), Some(&b"98asjd8"[..]), "From tag")?;
        eq(m.max_forwards(), Ok(Some(68)), "Max-Forwards")?;
        let cseq = m.cseq().map_err(|e| format!("{e:?}"))?;
        eq((cseq.seq, cseq.method), (9, Method::Invite), "CSeq")?;
        eq(transports(m)?, vec!["UDP".into(), "TCP".into(), "UDP".into()], "Via transports")?;
        let c = contacts(m)?;
        eq(c.len(), 1, "contacts")?;
        eq(c[0].q, Some(330), "q")?;
        eq(c[0].addr.params.get("newparam"), Some(Some(&b"newvalue"[..])), "newparam")?;
        eq(m.header(HeaderName::Subject), Some(&b""[..]), "empty Subject")?;
        eq(m.body.len(), 150, "body")
    }),
    "intmeth.sip": "valid" => |b| valid(b, |m| {
        let method = "!interesting-Method0123456789_*+`.%indeed'~";
        eq(m.method(), Some(Method::Extension(method)), "method")?;
        eq(m.cseq().map(|c| c.method), Ok(Method::Extension(method)), "CSeq method")?;
        let uri = request_uri(m)?;
        let sip = uri.sip().ok_or("Request-URI not SIP")?;
        eq(sip.user, Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]), "user")?;
        eq(sip.password, Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..]), "password")?;
        let to = m.to().map_err(|e| format!("{e:?}"))?;
        ensure(to.display.is_some_and(|d| d.contains(&0)), "To display name keeps its NUL")?;
        let from = m.from().map_err(|e| format!("{e:?}"))?;
        eq(from.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]), "From display")?;
        eq(from.tag(), Some(&b"_token~1'+`*%!-."[..]), "From tag")?;
        eq(m.max_forwards(), Ok(Some(255)), "Max-Forwards")?;
        ensure(!m.method().unwrap().is_known(), "unknown method: the UAS answers 501")
    }),
    "esc01.sip": "valid" => |b| valid(b, |m| {
        let uri = request_uri(m)?;
        let sip = uri.sip().ok_or("not SIP")?;
        let mut user = Vec::new();
        sip.user_unescaped_into(&mut user);
        eq(&user[..], b"sips:user@example.com", "Request-URI user unescaped once")?;
        eq(unescaped_user(m.to().unwrap().uri), b"user".to_vec(), "To user")?;
        eq(unescaped_user(m.from().unwrap().uri), b"I have spaces".to_vec(), "From user")?;
        let c = contacts(m)?;
        let curi = c[0].addr.sip_uri().ok_or("Contact URI")?;
        eq(curi.param("n%61me"), Some(Some(&b"v%61lue%25%34%31"[..])), "escaped URI param kept as written")?;
        let mut v = Vec::new();
        regstorm::sip::SipUri::parse(b"sip:v%61lue%25%34%31@h").unwrap().user_unescaped_into(&mut v);
        eq(&v[..], b"value%41", "unescaped exactly once")
    }),
    "escnull.sip": "valid" => |b| valid(b, |m| {
        let to = m.to().unwrap().sip_uri().ok_or("To")?;
        eq(regstorm::sip::Aor::new(&to).as_str(), "sip:null-%00-null@example.com", "AOR keeps NUL")?;
        eq(unescaped_user(m.to().unwrap().uri), b"null-\0-null".to_vec(), "To user with NUL")?;
        let c = contacts(m)?;
        eq(c.len(), 2, "contacts")?;
        let a: Vec<_> = c.iter().map(|c| regstorm::sip::Aor::new(&c.addr.sip_uri().unwrap())).collect();
        ensure(a[0] != a[1], "two distinct contacts")
    }),
    "esc02.sip": "valid" => |b| valid(b, |m| {
        eq(m.method(), Some(Method::Extension("RE%47IST%45R")), "method is not REGISTER")?;
        eq(contacts(m)?.len(), 2, "only two real Contact headers")?;
        eq(m.values(HeaderName::Other("C%6Fntact")).count(), 1, "C%6Fntact is another header")?;
        eq(m.to().unwrap().display, Some(&b"%Z%45"[..]), "display name is not unescaped")
    }),
    "lwsdisp.sip": "valid" => |b| valid(b, |m| {
        eq(m.from().unwrap().display, Some(&b"caller"[..]), "token display name before <")
    }),
    "longreq.sip": "valid" => |b| valid(b, |m| {
        // Counted independently of the parser: lines named Via or v in any case, spaces
        // allowed before the colon (the manifest note says 28; the archive holds 34).
        let lines = b.split(|&c| c == b'\n').filter(|l| {
            let name: Vec<u8> = l.iter().take_while(|&&c| c != b':').copied().collect();
            let name = String::from_utf8_lossy(&name).trim().to_ascii_lowercase();
            (name == "via" || name == "v") && l.contains(&b':')
        });
        let want = lines.count();
        eq(m.values(HeaderName::Via).count(), want, "Via header lines")?;
        eq(transports(m)?.len(), want, "every via-parm parses")?;
        ensure(m.to().unwrap().display.is_some_and(|d| d.len() > 80), "long display name")?;
        ensure(m.call_id().is_ok_and(|c| c.len() > 100), "long Call-ID")?;
        ensure(m.from().unwrap().tag().is_some_and(|t| t.len() > 100), "long From tag")
    }),
    "dblreq.sip": "valid" => |b| with_msg(b, |m| {
        m.check_mandatory().map_err(|e| format!("{e:?}"))?;
        eq(m.method(), Some(Method::Register), "the REGISTER is handled")?;
        eq(m.body.len(), 0, "Content-Length 0")?;
        ensure(m.len() < b.len(), "the trailing INVITE octets are not part of the message")
    }),
    "semiuri.sip": "valid" => |b| valid(b, |m| {
        let uri = request_uri(m)?;
        let sip = uri.sip().ok_or("not SIP")?;
        eq(sip.user, Some(&b"user;par=u%40example.net"[..]), "user part holds the ;")?;
        eq(sip.params, &b""[..], "no URI parameters")?;
        eq(sip.host, Host::Name("example.com"), "host")
    }),
    "transports.sip": "valid" => |b| valid(b, |m| {
        let want: Vec<String> = ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"].map(String::from).to_vec();
        eq(transports(m)?, want, "transports")
    }),
    "mpart01.sip": "valid" => |b| valid(b, |m| {
        eq(Some(m.body.len() as u32), m.content_length, "body framed by Content-Length")?;
        ensure(m.body.contains(&0), "binary part kept")?;
        let ct = m.content_type().map_err(|e| format!("{e:?}"))?.ok_or("Content-Type")?;
        eq((ct.kind, ct.subtype), (&b"multipart"[..], &b"mixed"[..]), "media type")?;
        eq(ct.params.get("boundary"), Some(Some(&b"7a9cbec02ceef655"[..])), "boundary")?;
        eq(m.date().map_err(|e| format!("{e:?}"))?.is_some(), true, "Date parses")
    }),
    "unreason.sip": "valid" => |b| valid(b, |m| match m.start {
        StartLine::Response { code: 200, reason } => ensure(!reason.is_ascii() && reason.len() > 20, "UTF-8 reason"),
        s => Err(format!("{s:?}")),
    }),
    "noreason.sip": "valid" => |b| valid(b, |m| eq(m.start, StartLine::Response { code: 100, reason: "" }, "status line")),
    "badinv01.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.top_via(), Err(Error::BadValue(HeaderName::Via)), "empty Via params")?;
        ensure(m.contacts().any(|c| c.is_err()), "stray ; in Contact")
    }),
    "clerr.sip": "invalid" => |b| {
        parse_err(b, Error::BodyIncomplete)?;
        let mut hs = [EMPTY_HEADER; 96];
        match Framer::new(Limits::default()).next(b, &mut hs) {
            Ok(Frame::Partial) => Ok(()),
            other => Err(format!("a stream waits for the rest of the body: {other:?}")),
        }
    },
    "ncl.sip": "invalid" => |b| {
        parse_err(b, Error::BadContentLength)?;
        stream_err(b, Error::BadContentLength)
    },
    "scalar02.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.cseq(), Err(Error::BadValue(HeaderName::CSeq)), "CSeq above 2^31")?;
        eq(m.max_forwards(), Err(Error::BadValue(HeaderName::MaxForwards)), "Max-Forwards above 255")?;
        eq(m.expires(), Err(Error::BadValue(HeaderName::Expires)), "Expires above 2^32-1")?;
        ensure(m.contacts().any(|c| c.is_err()), "Contact expires above 2^32-1")
    }),
    "scalarlg.sip": "invalid" => |b| with_msg(b, |m| {
        ensure(!m.is_request(), "a response")?;
        eq(m.cseq(), Err(Error::BadValue(HeaderName::CSeq)), "huge CSeq: discard")
    }),
    "quotbal.sip": "invalid" => |b| with_msg(b, |m| eq(m.to(), Err(Error::BadValue(HeaderName::To)), "To")),
    "ltgtruri.sip": "invalid" => |b| parse_err(b, Error::BadRequestUri),
    "lwsruri.sip": "invalid" => |b| parse_err(b, Error::BadStartLine),
    "lwsstart.sip": "invalid" => |b| parse_err(b, Error::BadRequestUri),
    "trws.sip": "invalid" => |b| parse_err(b, Error::BadStartLine),
    "escruri.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.request_uri().map(|r| r.err()), Some(Some(Error::BadRequestUri)), "headers in Request-URI")
    }),
    "baddate.sip": "invalid" => |b| with_msg(b, |m| eq(m.date(), Err(Error::BadValue(HeaderName::Date)), "EST date")),
    "regbadct.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.contacts().next(), Some(Err(Error::BadValue(HeaderName::Contact))), "? in an unbracketed Contact")
    }),
    "badaspec.sip": "invalid" => |b| with_msg(b, |m| {
        let to = m.to().map_err(|e| format!("{e:?}"))?;
        eq(to.parsed_uri(), None, "spaces inside <> make no URI")?;
        eq(m.check_mandatory(), Err(Error::BadValue(HeaderName::To)), "400 Malformed To")
    }),
    "baddn.sip": "invalid" => |b| {
        parse_err(b, Error::HeadUnterminated)?;
        // The archive defect aside, the display names themselves are refused too.
        let mut fixed = b.to_vec();
        fixed.extend_from_slice(b"\r\n");
        with_msg(&fixed, |m| {
            eq(m.from(), Err(Error::BadValue(HeaderName::From)), "From")?;
            eq(m.to(), Err(Error::BadValue(HeaderName::To)), "To")
        })
    },
    "badvers.sip": "invalid" => |b| {
        parse_err(b, Error::UnsupportedVersion)?;
        eq(Error::UnsupportedVersion.status(), 505, "answered with 505")
    },
    "mismatch01.sip": "invalid" => |b| with_msg(b, |m| eq(m.cseq(), Err(Error::CSeqMethodMismatch), "CSeq")),
    "mismatch02.sip": "invalid" => |b| with_msg(b, |m| {
        ensure(!m.method().unwrap().is_known(), "unknown method: 501 comes first")?;
        eq(m.cseq(), Err(Error::CSeqMethodMismatch), "CSeq")
    }),
    "bigcode.sip": "invalid" => |b| parse_err(b, Error::BadStatusCode),
    "badbranch.sip": "valid-but-odd" => |b| valid(b, |m| {
        eq(m.top_via().unwrap().branch(), Some(&b"z9hG4bK"[..]), "bare magic cookie")
    }),
    "insuf.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.check_mandatory(), Err(Error::Missing(HeaderName::To)), "first missing header")?;
        eq(m.call_id(), Err(Error::Missing(HeaderName::CallId)), "Call-ID")?;
        eq(m.from().err(), Some(Error::Missing(HeaderName::From)), "From")
    }),
    "unkscm.sip": "valid-but-odd" => |b| valid(b, |m| match request_uri(m)? {
        Uri::Other { scheme: "nobodyKnowsThisScheme", .. } => Ok(()),
        u => Err(format!("{u:?}: want a non-SIP scheme (416)")),
    }),
    "novelsc.sip": "valid-but-odd" => |b| valid(b, |m| match request_uri(m)? {
        Uri::Other { scheme: "soap.beep", .. } => Ok(()),
        u => Err(format!("{u:?}: want a non-SIP scheme (416)")),
    }),
    "unksm2.sip": "valid-but-odd" => |b| valid(b, |m| {
        let to = m.to().unwrap();
        eq(to.sip_uri(), None, "To is not SIP: a registrar answers 400")?;
        ensure(matches!(to.parsed_uri(), Some(Uri::Other { scheme: "isbn", .. })), "isbn: URI")?;
        let c = contacts(m)?;
        ensure(matches!(c[0].addr.parsed_uri(), Some(Uri::Other { scheme: "name", .. })), "name: Contact")
    }),
    "bext01.sip": "valid-but-odd" => |b| valid(b, |m| {
        let req: Vec<_> = m.option_tags(HeaderName::Require).collect::<Result<_, _>>().map_err(|e| format!("{e:?}"))?;
        eq(req, vec![&b"nothingSupportsThis"[..], b"nothingSupportsThisEither"], "Require (420)")?;
        eq(m.option_tags(HeaderName::ProxyRequire).count(), 2, "Proxy-Require")
    }),
    "invut.sip": "valid-but-odd" => |b| valid(b, |m| {
        let ct = m.content_type().unwrap().ok_or("Content-Type")?;
        eq(ct.subtype, &b"unknownformat"[..], "unknown type (415)")
    }),
    "regaut01.sip": "valid-but-odd" => |b| valid(b, |m| {
        eq(m.bearer(), Ok(None), "no Bearer credentials: challenge")?;
        ensure(m.header(HeaderName::Authorization).is_some(), "Authorization kept")
    }),
    "multi01.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.call_id(), Err(Error::Duplicate(HeaderName::CallId)), "Call-ID")?;
        eq(m.to(), Err(Error::Duplicate(HeaderName::To)), "To")?;
        eq(m.from(), Err(Error::Duplicate(HeaderName::From)), "From")?;
        eq(m.cseq(), Err(Error::Duplicate(HeaderName::CSeq)), "CSeq")
    }),
    "mcl01.sip": "invalid" => |b| {
        parse_err(b, Error::ConflictingContentLength)?;
        stream_err(b, Error::ConflictingContentLength)
    },
    "bcast.sip": "valid-but-odd" => |b| valid(b, |m| {
        let vias: Vec<_> = m.vias().collect::<Result<_, _>>().map_err(|e| format!("{e:?}"))?;
        eq(vias[1].host, Host::V4("255.255.255.255".parse().unwrap()), "broadcast sent-by")
    }),
    "zeromf.sip": "valid" => |b| valid(b, |m| eq(m.max_forwards(), Ok(Some(0)), "Max-Forwards")),
    "cparam01.sip": "valid" => |b| valid(b, |m| {
        let c = contacts(m)?;
        eq(c[0].addr.bracketed, false, "addr-spec")?;
        eq(c[0].addr.uri, &b"sip:+19725552222@gw1.example.net"[..], "URI without the param")?;
        eq(c[0].addr.params.get("unknownparam"), Some(None), "contact-param")
    }),
    "cparam02.sip": "valid" => |b| valid(b, |m| {
        let c = contacts(m)?;
        let uri = c[0].addr.sip_uri().ok_or("URI")?;
        eq(uri.param("unknownparam"), Some(None), "URI param")?;
        eq(c[0].addr.params.get("unknownparam"), None, "not a contact-param")
    }),
    "regescrt.sip": "valid" => |b| valid(b, |m| {
        let c = contacts(m)?;
        let uri = c[0].addr.sip_uri().ok_or("URI")?;
        eq(uri.headers, Some(&b"Route=%3Csip:sip.example.com%3E"[..]), "escaped header stays in the URI")
    }),
    "sdp01.sip": "valid-but-odd" => |b| valid(b, |m| {
        eq(m.header(HeaderName::Accept), Some(&b"text/nobodyKnowsThis"[..]), "Accept (406)")
    }),
    "inv2543.sip": "valid-but-odd" => |b| valid(b, |m| {
        eq(m.content_length, None, "no Content-Length")?;
        ensure(!m.body.is_empty(), "body is the rest of the datagram")?;
        eq(m.top_via().unwrap().branch(), None, "no branch")?;
        eq(m.from().unwrap().tag(), None, "no From tag")?;
        eq(m.max_forwards(), Ok(None), "no Max-Forwards")?;
        let mut hs = [EMPTY_HEADER; 96];
        match Framer::new(Limits::default()).next(b, &mut hs) {
            Ok(Frame::Invalid { error: Error::MissingContentLength, .. }) => Ok(()),
            other => Err(format!("a stream needs Content-Length: {other:?}")),
        }
    }),
    "extra/test.sip": "invalid" => |b| parse_err(b, Error::BadStartLine),
};

static RFC5118: &[(&str, &str, Check)] = corpus! {
    "ipv6-good.sip": "valid" => |b| valid(b, |m| {
        eq(sip_host(&request_uri(m)?)?, Host::V6("2001:db8::10"), "Request-URI host")?;
        eq(m.top_via().unwrap().host, Host::V6("2001:db8::9:1"), "Via sent-by")?;
        eq(contacts(m)?[0].addr.sip_uri().map(|u| u.host), Some(Host::V6("2001:db8::1")), "Contact host")
    }),
    "ipv6-bad.sip": "invalid" => |b| with_msg(b, |m| {
        eq(m.request_uri().map(|r| r.err()), Some(Some(Error::BadRequestUri)), "unbracketed IPv6")
    }),
    "port-ambiguous.sip": "valid-but-odd" => |b| valid(b, |m| {
        let u = request_uri(m)?;
        eq((sip_host(&u)?, u.sip().unwrap().port), (Host::V6("2001:db8::10:5070"), None), "no port")
    }),
    "port-unambiguous.sip": "valid" => |b| valid(b, |m| {
        let u = request_uri(m)?;
        eq((sip_host(&u)?, u.sip().unwrap().port), (Host::V6("2001:db8::10"), Some(5070)), "port")
    }),
    "via-received-param-with-delim.sip": "valid" => |b| valid(b, |m| {
        eq(m.top_via().unwrap().received(), Some(&b"[2001:db8::9:255]"[..]), "received")
    }),
    "via-received-param-no-delim.sip": "valid" => |b| valid(b, |m| {
        eq(m.top_via().unwrap().received(), Some(&b"2001:db8::9:255"[..]), "received")
    }),
    "ipv6-in-sdp.sip": "valid" => |b| valid(b, |m| ensure(!m.body.is_empty(), "SDP body")),
    "mult-ip-in-header.sip": "valid" => |b| valid(b, |m| {
        let vias: Vec<_> = m.vias().collect::<Result<_, _>>().map_err(|e| format!("{e:?}"))?;
        eq(vias.len(), 3, "Vias")?;
        eq((vias[0].host, vias[0].port), (Host::V6("2001:db8::9:1"), Some(6050)), "first")?;
        eq(vias[2].received(), Some(&b"192.0.2.200"[..]), "IPv4 received on IPv6 Via")
    }),
    "mult-ip-in-sdp.sip": "valid" => |b| valid(b, |m| ensure(!m.body.is_empty(), "SDP body")),
    "ipv4-mapped-ipv6.sip": "valid" => |b| valid(b, |m| {
        let vias: Vec<_> = m.vias().collect::<Result<_, _>>().map_err(|e| format!("{e:?}"))?;
        ensure(vias.iter().all(|v| matches!(v.host, Host::V6(h) if h.contains("ffff"))), "mapped sent-by")
    }),
    "ipv6-bug-abnf-3-colons.sip": "valid-but-odd" => |b| valid(b, |m| {
        eq(sip_host(&request_uri(m)?)?, Host::V6("2001:db8:::192.0.2.1"), "tolerated")
    }),
    "ipv6-correct-abnf-2-colons.sip": "valid" => |b| valid(b, |m| {
        eq(sip_host(&request_uri(m)?)?, Host::V6("2001:db8::192.0.2.1"), "host")
    }),
};

fn run_manifest(
    dir: &Path,
    files_dir: &Path,
    table: &[(&str, &str, Check)],
) -> (usize, Vec<String>) {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("MANIFEST.tsv").display()));
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expectation) = (cols[0], cols[2]);
        let Some((_, category, check)) = table.iter().find(|(f, _, _)| *f == file) else {
            failures.push(format!(
                "{file}: in MANIFEST.tsv but has no entry in tests/corpus.rs"
            ));
            continue;
        };
        if *category != expectation {
            failures.push(format!(
                "{file}: table says {category}, manifest says {expectation}"
            ));
        }
        let path = files_dir.join(file);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if let Err(why) = check(&bytes) {
            failures.push(format!("{file} ({expectation}): {why}"));
        }
        checked += 1;
    }
    for (file, _, _) in table {
        if !manifest.lines().any(|l| l.split('\t').next() == Some(file)) {
            failures.push(format!(
                "{file}: in tests/corpus.rs but not in {}",
                dir.display()
            ));
        }
    }
    (checked, failures)
}

#[test]
fn rfc4475_torture_messages() {
    let root = conformance_root();
    let dir = root.join("rfc4475");
    let (checked, failures) = run_manifest(&dir, &dir, RFC4475);
    assert!(
        failures.is_empty(),
        "{} of {checked} RFC 4475 files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 50, "49 messages and extra/test.sip");
    eprintln!("RFC 4475: {checked} files met their expectations");
}

#[test]
fn rfc5118_ipv6_torture_messages() {
    let root = conformance_root();
    let dir = root.join("rfc5118");
    let (checked, failures) = run_manifest(&dir, &dir.join("wire"), RFC5118);
    assert!(
        failures.is_empty(),
        "{} of {checked} RFC 5118 files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 12);
    eprintln!("RFC 5118: {checked} files met their expectations");
}
